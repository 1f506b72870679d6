//! A fake Jamf Pro server: the token endpoints and the read side of the inventory API, serving a
//! generated [`Fleet`] page by page, with faults that can be switched while it runs.
//!
//! ```ignore
//! let mock = JamfProMock::start(MockConfig::new(Fleet::new(42, 5000))).await?;
//! let base = mock.base_url();            // http://127.0.0.1:PORT, no trailing slash
//! mock.faults().rate_limit_next(3, 1);    // next 3 data requests: 429, Retry-After: 1
//! mock.faults().set_epoch(1);             // serve the fleet as it is at the next sync run
//! assert_eq!(mock.request_counts().mobile_devices, 4);
//! mock.shutdown().await?;
//! ```
//!
//! Served paths (all under the base URL): `POST /api/oauth/token` (also `/api/v1/oauth/token`),
//! `POST /api/v1/auth/token`, `POST /api/v1/auth/keep-alive`,
//! `POST /api/v1/auth/invalidate-token`, `GET /api/v2/mobile-devices/detail`,
//! `GET /api/v{1,2,3,4}/computers-inventory`, `GET /api/v1/sites`, `GET /api/v1/buildings`,
//! `GET /api/v1/jamf-pro-version`. Paging, sections and errors follow
//! docs/vendors/jamf-pro.md; where the mock differs it says so below.
//!
//! Inventory pages are rendered once per epoch and then served from a cache (see
//! [`MockConfig::page_cache_bytes`] and [`JamfProMock::warm_page_cache`]); faults are applied on
//! top of the cached page and never stored.

mod faults;
mod page_cache;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub(crate) use faults::PageOutcome;
use faults::Refusal;
pub use faults::{Fault, FaultParseError, FaultPlan, Faults, PageFault, ShortPage};
use page_cache::{PageCache, PageKey};
pub use page_cache::{PageCacheStats, DEFAULT_PAGE_CACHE_BYTES};
use wire::Sections;

use crate::error::MockError;
use crate::generator::{page_range, DeviceKind, Fleet, FleetSnapshot};
use crate::musterstadt;
use crate::plumbing::{
    basic_credentials, bearer_token, json_response, pause, with_retry_after, IssuedTokens,
    Listener, PerEpoch, Server, TokenRefused,
};

/// OAuth client id the mock accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "bestand-mock-client";
/// OAuth client secret the mock accepts unless configured otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "bestand-mock-secret";
/// Jamf user for `POST /api/v1/auth/token` unless configured otherwise.
pub const DEFAULT_USERNAME: &str = "bestand-api";
/// Password of [`DEFAULT_USERNAME`].
pub const DEFAULT_PASSWORD: &str = "bestand-mock-password";

/// Jamf's default page size when `page-size` is absent.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Jamf silently clamps larger `page-size` values to this.
pub const MAX_PAGE_SIZE: usize = 2000;

const OAUTH_TOKEN_TTL: Duration = Duration::from_secs(599);
const USER_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// The OAuth scope of the one API role the mock's client holds.
const SCOPE: &str = "api-role:1";

/// How to start a [`JamfProMock`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub fleet: Fleet,
    /// Faults active from the first request on.
    pub faults: FaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    /// Upper bound of the rendered pages kept in memory (bodies plus a little bookkeeping);
    /// past it, further pages are rendered per request. `0` turns the cache off.
    pub page_cache_bytes: usize,
}

impl MockConfig {
    /// A healthy server on a free local port with the default credentials.
    pub fn new(fleet: Fleet) -> MockConfig {
        MockConfig {
            fleet,
            faults: FaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
            username: DEFAULT_USERNAME.to_string(),
            password: DEFAULT_PASSWORD.to_string(),
            page_cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
        }
    }
}

/// Which endpoint a request hit, for [`RequestCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    OauthToken,
    UserToken,
    KeepAlive,
    InvalidateToken,
    MobileDevices,
    ComputersV1,
    ComputersV2,
    ComputersV3,
    ComputersV4,
    Sites,
    Buildings,
    Version,
    Unknown,
}

/// What the server answered other than data, for [`RequestCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unauthorized,
    RateLimited,
    ServerError,
    NotFound,
    MalformedPage,
    ShortPage,
}

const ENDPOINTS: usize = Endpoint::Unknown as usize + 1;
const OUTCOMES: usize = Outcome::ShortPage as usize + 1;

/// Requests the server has received, per endpoint, and the faults it answered with. Every
/// request counts, whether it succeeded or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub oauth_token: u64,
    pub user_token: u64,
    pub keep_alive: u64,
    pub invalidate_token: u64,
    pub mobile_devices: u64,
    pub computers_v1: u64,
    pub computers_v2: u64,
    pub computers_v3: u64,
    pub computers_v4: u64,
    pub sites: u64,
    pub buildings: u64,
    pub version: u64,
    /// Paths the mock does not serve (answered 404).
    pub unknown: u64,
    /// Answers: 401.
    pub unauthorized: u64,
    /// Answers: 429.
    pub rate_limited: u64,
    /// Answers: 5xx.
    pub server_errors: u64,
    /// Answers: 404 (unserved API versions and unknown paths).
    pub not_found: u64,
    /// Answers: a cut-off page.
    pub malformed_pages: u64,
    /// Answers: a page with records left out.
    pub short_pages: u64,
}

impl RequestCounts {
    /// All requests on all paths.
    pub fn total(&self) -> u64 {
        self.oauth_token
            + self.user_token
            + self.keep_alive
            + self.invalidate_token
            + self.data_requests()
            + self.version
            + self.unknown
    }

    /// Requests for inventory, sites and buildings.
    pub fn data_requests(&self) -> u64 {
        self.mobile_devices + self.computers() + self.sites + self.buildings
    }

    /// Requests to any `computers-inventory` version.
    pub fn computers(&self) -> u64 {
        self.computers_v1 + self.computers_v2 + self.computers_v3 + self.computers_v4
    }
}

#[derive(Debug)]
struct Counters {
    endpoints: [AtomicU64; ENDPOINTS],
    outcomes: [AtomicU64; OUTCOMES],
}

impl Counters {
    fn new() -> Counters {
        Counters {
            endpoints: std::array::from_fn(|_| AtomicU64::new(0)),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn hit(&self, endpoint: Endpoint) {
        self.endpoints[endpoint as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn answered(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RequestCounts {
        let e = |endpoint: Endpoint| self.endpoints[endpoint as usize].load(Ordering::Relaxed);
        let o = |outcome: Outcome| self.outcomes[outcome as usize].load(Ordering::Relaxed);
        RequestCounts {
            oauth_token: e(Endpoint::OauthToken),
            user_token: e(Endpoint::UserToken),
            keep_alive: e(Endpoint::KeepAlive),
            invalidate_token: e(Endpoint::InvalidateToken),
            mobile_devices: e(Endpoint::MobileDevices),
            computers_v1: e(Endpoint::ComputersV1),
            computers_v2: e(Endpoint::ComputersV2),
            computers_v3: e(Endpoint::ComputersV3),
            computers_v4: e(Endpoint::ComputersV4),
            sites: e(Endpoint::Sites),
            buildings: e(Endpoint::Buildings),
            version: e(Endpoint::Version),
            unknown: e(Endpoint::Unknown),
            unauthorized: o(Outcome::Unauthorized),
            rate_limited: o(Outcome::RateLimited),
            server_errors: o(Outcome::ServerError),
            not_found: o(Outcome::NotFound),
            malformed_pages: o(Outcome::MalformedPage),
            short_pages: o(Outcome::ShortPage),
        }
    }
}

struct App {
    config: MockConfig,
    faults: Faults,
    counters: Counters,
    tokens: IssuedTokens,
    snapshots: PerEpoch<Arc<FleetSnapshot>>,
    /// Intact inventory pages of the epoch served last. The fleet is fixed for the life of the
    /// server, so only an epoch change invalidates them.
    pages: PageCache,
}

/// A running fake Jamf Pro server. Dropping it stops the server; [`JamfProMock::shutdown`]
/// also waits until it has stopped.
pub struct JamfProMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for JamfProMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JamfProMock")
            .field("base_url", &self.server.base_url())
            .field("fleet", &self.app.config.fleet)
            .finish()
    }
}

impl JamfProMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: MockConfig) -> Result<JamfProMock, MockError> {
        let listener = Listener::bind(config.bind, "Jamf Pro").await?;
        let faults = Faults::new(config.faults.clone());
        let pages = PageCache::new(config.page_cache_bytes);
        let app = Arc::new(App {
            pages,
            config,
            faults,
            counters: Counters::new(),
            tokens: IssuedTokens::default(),
            snapshots: PerEpoch::new(),
        });
        // Build the first epoch now, so the first request does not pay for it.
        app.snapshot(app.faults.epoch());
        let server = listener.serve(router(app.clone()));
        Ok(JamfProMock { app, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; the Jamf API lives under `/api`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The handle to switch faults and epochs while the server runs.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    pub fn config(&self) -> &MockConfig {
        &self.app.config
    }

    /// The fleet as served right now (current epoch): expected totals, ids and serials.
    pub fn snapshot(&self) -> Arc<FleetSnapshot> {
        self.app.snapshot(self.app.faults.epoch())
    }

    /// Requests so far, per endpoint and per fault answer.
    pub fn request_counts(&self) -> RequestCounts {
        self.app.counters.snapshot()
    }

    /// All requests so far.
    pub fn request_count(&self) -> u64 {
        self.request_counts().total()
    }

    /// Size and hits of the rendered-page cache.
    pub fn page_cache_stats(&self) -> PageCacheStats {
        self.app.pages.stats()
    }

    /// Renders every page of `kind` in the current epoch at `page_size` (clamped as a request's
    /// would be) with `sections` into the page cache, so that a client's first pass through
    /// them costs no more than the next ones. Runs on a blocking thread, because rendering a
    /// large fleet takes seconds of CPU. Returns the number of pages rendered; pages already
    /// cached or past the cache's bound are not rendered again or kept.
    pub async fn warm_page_cache(
        &self,
        kind: DeviceKind,
        page_size: usize,
        sections: Sections,
    ) -> Result<usize, MockError> {
        let app = self.app.clone();
        let warm = move || {
            let epoch = app.faults.epoch();
            let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
            let pages = app.snapshot(epoch).count(kind).div_ceil(page_size);
            for page in 0..pages {
                let request = PageRequest {
                    page,
                    page_size,
                    sections,
                };
                app.intact_page(epoch, kind, &request);
            }
            pages
        };
        tokio::task::spawn_blocking(warm)
            .await
            .map_err(|source| MockError::Panicked {
                what: "warming the page cache".to_string(),
                source,
            })
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.server.shutdown().await
    }
}

impl App {
    fn snapshot(&self, epoch: u32) -> Arc<FleetSnapshot> {
        self.snapshots
            .get(epoch, || Arc::new(self.config.fleet.snapshot(epoch)))
    }

    /// Page `request` of `kind` in `epoch` as it is without faults: from the cache, or rendered
    /// and then kept unless the epoch moved on meanwhile (a store for a past epoch would only
    /// throw away the new epoch's pages) or the page is past the end (any number of those
    /// would fit an empty body, and rendering one costs nothing).
    fn intact_page(&self, epoch: u32, kind: DeviceKind, request: &PageRequest) -> Bytes {
        let key = PageKey {
            kind,
            page: request.page,
            page_size: request.page_size,
            sections: request.sections,
        };
        if let Some(body) = self.pages.get(epoch, &key) {
            return body;
        }
        let snapshot = self.snapshot(epoch);
        let body = Bytes::from(render_page(&snapshot, kind, request, 0));
        self.pages.rendered();
        let past_end = page_range(snapshot.count(kind), request.page, request.page_size).is_empty();
        if !past_end && self.faults.epoch() == epoch {
            self.pages.store(epoch, key, body.clone());
        }
        body
    }

    fn issue_token(&self, default_ttl: Duration) -> (String, Duration) {
        let ttl = self.faults.plan().token_ttl.unwrap_or(default_ttl);
        let serial = self.tokens.next_serial();
        // Unique and unguessable enough for a fixture; not a JWT, clients must treat it as opaque.
        let token = format!(
            "mock.{serial}.{:016x}",
            std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                serial
            )
        );
        self.tokens
            .insert(token.clone(), ttl, self.faults.token_generation());
        (token, ttl)
    }

    /// Checks the bearer token and uses up one of its requests; says why it is not valid.
    fn check_token(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(token) = bearer_token(headers) else {
            return Err("No bearer token");
        };
        let max_requests = self.faults.plan().token_max_requests;
        let generation = self.faults.token_generation();
        self.tokens
            .use_token(token, generation, max_requests)
            .map_err(|refused| match refused {
                TokenRefused::Unknown => "Unknown token",
                TokenRefused::Expired => "Token expired",
            })
    }

    fn unauthorized(&self, description: &str) -> Response {
        self.counters.answered(Outcome::Unauthorized);
        tracing::debug!(description, "answering 401");
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            wire::error_json(401, "INVALID_TOKEN", description),
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }

    /// What every data request goes through: count, delay, injected refusals, token check.
    async fn admit(&self, endpoint: Endpoint, headers: &HeaderMap) -> Result<(), Response> {
        self.counters.hit(endpoint);
        pause(self.faults.delay()).await;
        if let Some(refusal) = self.faults.take_refusal() {
            return Err(self.refuse(refusal));
        }
        self.check_token(headers)
            .map_err(|description| self.unauthorized(description))
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        match refusal {
            Refusal::RateLimited { retry_after_secs } => {
                self.counters.answered(Outcome::RateLimited);
                tracing::info!(retry_after_secs, "fault: answering 429");
                let response = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    wire::error_json(429, "TOO_MANY_REQUESTS", "Rate limit exceeded"),
                );
                with_retry_after(response, retry_after_secs)
            }
            Refusal::ServerError(status) => {
                self.counters.answered(Outcome::ServerError);
                tracing::info!(status, "fault: answering server error");
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json_response(
                    code,
                    wire::error_json(code.as_u16(), "SERVER_ERROR", "Injected server error"),
                )
            }
        }
    }

    fn not_found(&self, description: &str) -> Response {
        self.counters.answered(Outcome::NotFound);
        json_response(
            StatusCode::NOT_FOUND,
            wire::error_json(404, "NOT_FOUND", description),
        )
    }
}

fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/api/oauth/token", post(oauth_token))
        .route("/api/v1/oauth/token", post(oauth_token))
        .route("/api/v1/auth/token", post(user_token))
        .route("/api/v1/auth/keep-alive", post(keep_alive))
        .route("/api/v1/auth/invalidate-token", post(invalidate_token))
        .route("/api/v2/mobile-devices/detail", get(mobile_devices))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/buildings", get(buildings))
        .route("/api/v1/jamf-pro-version", get(version));
    for version in 1..=4u8 {
        router = router.route(
            &format!("/api/v{version}/computers-inventory"),
            get(
                move |state: State<Arc<App>>, headers: HeaderMap, query: Query<Params>| {
                    computers(state, headers, query, version)
                },
            ),
        );
    }
    router.fallback(unknown_path).with_state(app)
}

type Params = Vec<(String, String)>;

fn bad_request(description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        wire::error_json(400, "INVALID_FIELD", description),
    )
}

/// `Authorization: Basic base64(user:password)`, split.
fn user_and_password(headers: &HeaderMap) -> Option<(String, String)> {
    let decoded = String::from_utf8(basic_credentials(headers)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn iso_in(ttl: Duration) -> String {
    let at = chrono::Utc::now()
        + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(3650));
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    json_response(status, body.to_string().into_bytes())
}

/// `POST /api/oauth/token`: client credentials in the form, or in a Basic header as OAuth
/// client libraries send them by default.
async fn oauth_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    app.counters.hit(Endpoint::OauthToken);
    pause(app.faults.delay()).await;
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (id, secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => user_and_password(&headers).unwrap_or_default(),
    };
    if id != app.config.client_id || secret != app.config.client_secret {
        app.counters.answered(Outcome::Unauthorized);
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if let Some(scope) = form.get("scope") {
        if scope.split_whitespace().any(|s| s != SCOPE) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The client does not hold that role",
            );
        }
    }
    let (token, ttl) = app.issue_token(OAUTH_TOKEN_TTL);
    let body = serde_json::json!({
        "access_token": token,
        "scope": SCOPE,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// `POST /api/v1/auth/token` with a Jamf user's Basic credentials.
async fn user_token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.counters.hit(Endpoint::UserToken);
    pause(app.faults.delay()).await;
    match user_and_password(&headers) {
        Some((user, password))
            if user == app.config.username && password == app.config.password =>
        {
            token_body(&app, USER_TOKEN_TTL)
        }
        _ => {
            app.counters.answered(Outcome::Unauthorized);
            json_response(
                StatusCode::UNAUTHORIZED,
                wire::error_json(401, "INVALID_CREDENTIALS", "Invalid username or password"),
            )
        }
    }
}

fn token_body(app: &App, default_ttl: Duration) -> Response {
    let (token, ttl) = app.issue_token(default_ttl);
    let body = serde_json::json!({ "token": token, "expires": iso_in(ttl) });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// `POST /api/v1/auth/keep-alive`: a fresh user token for a valid one, which stops working.
async fn keep_alive(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.counters.hit(Endpoint::KeepAlive);
    pause(app.faults.delay()).await;
    if let Err(description) = app.check_token(&headers) {
        return app.unauthorized(description);
    }
    if let Some(old) = bearer_token(&headers) {
        app.tokens.remove(old);
    }
    token_body(&app, USER_TOKEN_TTL)
}

/// `POST /api/v1/auth/invalidate-token`.
async fn invalidate_token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.counters.hit(Endpoint::InvalidateToken);
    if let Err(description) = app.check_token(&headers) {
        return app.unauthorized(description);
    }
    if let Some(old) = bearer_token(&headers) {
        app.tokens.remove(old);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The paging and section parameters of an inventory request.
struct PageRequest {
    page: usize,
    page_size: usize,
    sections: Sections,
}

impl PageRequest {
    /// Parses `page`, `page-size`, `section` and `sort`. Unlike Jamf, the mock sorts by id only
    /// (also when `sort` is absent, where Jamf sorts by name) and refuses `filter`, so a
    /// connector relying on either notices.
    fn parse(kind: DeviceKind, params: &Params) -> Result<PageRequest, String> {
        let (page, page_size) = paging(params)?;
        let mut sections = Vec::new();
        let id_field = match kind {
            DeviceKind::Mobile => "mobileDeviceId",
            DeviceKind::Computer => "id",
        };
        for (name, value) in params {
            match name.as_str() {
                "section" => sections.push(value.as_str()),
                "sort" => {
                    let supported = [format!("{id_field}:asc"), id_field.to_string()];
                    if !supported.iter().any(|s| s == value) {
                        return Err(format!(
                            "sort {value:?} is not supported by the mock; use {id_field}:asc"
                        ));
                    }
                }
                "filter" => {
                    return Err("filter is not supported by the mock".to_string());
                }
                _ => {}
            }
        }
        let sections =
            Sections::parse(kind, sections).map_err(|name| format!("Invalid section {name:?}"))?;
        Ok(PageRequest {
            page,
            page_size,
            sections,
        })
    }
}

/// `page` (0-based) and `page-size` (clamped to [`MAX_PAGE_SIZE`], as Jamf does silently).
fn paging(params: &Params) -> Result<(usize, usize), String> {
    let mut page = 0;
    let mut page_size = DEFAULT_PAGE_SIZE;
    for (name, value) in params {
        let parsed = value.parse::<usize>();
        match (name.as_str(), parsed) {
            ("page", Ok(value)) => page = value,
            ("page-size", Ok(value)) if value > 0 => page_size = value.min(MAX_PAGE_SIZE),
            ("page" | "page-size", _) => return Err(format!("Invalid {name} {value:?}")),
            _ => {}
        }
    }
    Ok((page, page_size))
}

/// `{"totalCount":..,"results":[..]}` for one page, leaving out its last `missing` records.
fn render_page(
    snapshot: &FleetSnapshot,
    kind: DeviceKind,
    request: &PageRequest,
    missing: usize,
) -> Vec<u8> {
    let devices = snapshot.page(kind, request.page, request.page_size);
    let keep = devices.len().saturating_sub(missing);
    wire::page_json(
        kind,
        snapshot.count(kind),
        devices.take(keep),
        request.sections,
    )
}

/// One page of an inventory, with the page faults applied.
fn inventory_page(app: &App, kind: DeviceKind, params: &Params) -> Response {
    let request = match PageRequest::parse(kind, params) {
        Ok(request) => request,
        Err(description) => return bad_request(&description),
    };
    let epoch = app.faults.epoch();
    let body = match app.faults.take_page_outcome(kind, request.page) {
        PageOutcome::Intact => app.intact_page(epoch, kind, &request),
        PageOutcome::Short(missing) => {
            app.counters.answered(Outcome::ShortPage);
            tracing::info!(page = request.page, missing, "fault: short page");
            // Rendered apart and never cached: it is not the page.
            let snapshot = app.snapshot(epoch);
            Bytes::from(render_page(&snapshot, kind, &request, missing as usize))
        }
        PageOutcome::Malformed => {
            app.counters.answered(Outcome::MalformedPage);
            tracing::info!(page = request.page, "fault: malformed page");
            // As if a proxy cut the body off: valid status and headers, JSON ends mid-record.
            // A view of the intact page, which stays whole in the cache.
            let whole = app.intact_page(epoch, kind, &request);
            whole.slice(..whole.len() * 2 / 3)
        }
    };
    json_response(StatusCode::OK, body)
}

/// An inventory request after the endpoint-specific checks.
async fn serve_inventory(
    app: &App,
    endpoint: Endpoint,
    kind: DeviceKind,
    headers: &HeaderMap,
    params: &Params,
) -> Response {
    match app.admit(endpoint, headers).await {
        Ok(()) => inventory_page(app, kind, params),
        Err(response) => response,
    }
}

/// `GET /api/v2/mobile-devices/detail`.
async fn mobile_devices(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    serve_inventory(
        &app,
        Endpoint::MobileDevices,
        DeviceKind::Mobile,
        &headers,
        &params,
    )
    .await
}

/// `GET /api/v{1,2,3,4}/computers-inventory`; identical except that versions newer than the
/// configured one answer 404.
async fn computers(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
    version: u8,
) -> Response {
    let endpoint = match version {
        1 => Endpoint::ComputersV1,
        2 => Endpoint::ComputersV2,
        3 => Endpoint::ComputersV3,
        _ => Endpoint::ComputersV4,
    };
    if version > app.faults.plan().computers_api_version {
        app.counters.hit(endpoint);
        pause(app.faults.delay()).await;
        return app.not_found("No resource found for this API version");
    }
    serve_inventory(&app, endpoint, DeviceKind::Computer, &headers, &params).await
}

/// `GET /api/v1/sites`: one site per school, not paged.
async fn sites(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = app.admit(Endpoint::Sites, &headers).await {
        return response;
    }
    let sites: Vec<_> = musterstadt::schools()
        .iter()
        .map(|s| serde_json::json!({ "id": s.site_id.to_string(), "name": s.name }))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::Value::from(sites).to_string().into_bytes(),
    )
}

/// `GET /api/v1/buildings`, paged like the inventories.
async fn buildings(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    if let Err(response) = app.admit(Endpoint::Buildings, &headers).await {
        return response;
    }
    let (page, page_size) = match paging(&params) {
        Ok(paging) => paging,
        Err(description) => return bad_request(&description),
    };
    let all = musterstadt::buildings();
    let range = page_range(all.len(), page, page_size);
    json_response(StatusCode::OK, wire::buildings_json(all.len(), &all[range]))
}

/// `GET /api/v1/jamf-pro-version`: a version that matches the newest computers API served.
async fn version(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = app.admit(Endpoint::Version, &headers).await {
        return response;
    }
    let version = match app.faults.plan().computers_api_version {
        4 => "11.30.1-t1761234567890",
        3 => "11.23.0-t1745678901234",
        2 => "11.0.0-t1698765432109",
        _ => "10.49.0-t1689012345678",
    };
    let body = serde_json::json!({ "version": version });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn unknown_path(State(app): State<Arc<App>>) -> Response {
    app.counters.hit(Endpoint::Unknown);
    app.not_found("No such resource in the mock")
}
