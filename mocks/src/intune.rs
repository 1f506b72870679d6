//! A fake Microsoft Graph for Intune: the Entra ID token endpoint and
//! `GET /{v1.0|beta}/deviceManagement/managedDevices` paged by `@odata.nextLink`, serving a
//! generated [`Fleet`] with faults that can be switched while it runs.
//!
//! ```ignore
//! let mock = IntuneMock::start(IntuneMockConfig::new(Fleet::new(42, 500))).await?;
//! let graph = mock.base_url();             // graph_url of the connector
//! let token = mock.token_url();            // token_url of the connector
//! mock.faults().rate_limit_next(2, None);  // next 2 device requests: 429 without Retry-After
//! mock.faults().set_epoch(1);              // the fleet as it is at the next sync run
//! assert_eq!(mock.request_counts().devices, 3);
//! ```
//!
//! Wire format per docs/vendors/intune.md. Where Graph's behaviour is not documented the
//! mock picks something and says so: `$top` defaults to 100 and is clamped to 1000, `$filter`
//! and `$orderby` are refused (400), the skip token is `e<epoch>o<offset>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::error::MockError;
use crate::generator::{Device, DeviceKind, Family, Fleet, FleetSnapshot};
use crate::plumbing::{
    json_response, lock, server_error_status, take_burst, with_retry_after, Burst, IssuedTokens,
    Listener, PerEpoch, Server,
};

/// Tenant the mock accepts unless configured otherwise.
pub const DEFAULT_TENANT_ID: &str = "musterstadt.example.de";
/// Application (client) id the mock accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "bestand-intune-mock-client";
/// Client secret the mock accepts unless configured otherwise.
pub const DEFAULT_CLIENT_SECRET: &str = "bestand-intune-mock-secret";
/// `$top` when the request has none (Graph's default for this collection is undocumented).
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger `$top` values are clamped to this.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Entra's usual token lifetime.
const TOKEN_TTL: Duration = Duration::from_secs(3599);
const DEVICES_PATH: &str = "deviceManagement/managedDevices";

/// How fleet devices appear in Intune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// Every fleet device becomes a Windows PC with a serial of its own (`PW` + the middle of
    /// the Apple serial): iPads become Surface Go tablets-with-keyboard, MacBooks Windows
    /// notebooks, iMacs desktops. Mostly laptops, as in a school's Windows fleet.
    Windows,
    /// The fleet's Apple devices as Intune reports them when it manages them (iOS, macOS),
    /// with the same serial numbers the Jamf Pro mock serves.
    SameSerials,
}

/// How to start an [`IntuneMock`].
#[derive(Debug, Clone)]
pub struct IntuneMockConfig {
    pub fleet: Fleet,
    pub rendering: Rendering,
    /// Faults active from the first request on.
    pub faults: IntuneFaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl IntuneMockConfig {
    /// A healthy Windows fleet on a free local port with the default credentials.
    pub fn new(fleet: Fleet) -> IntuneMockConfig {
        IntuneMockConfig {
            fleet,
            rendering: Rendering::Windows,
            faults: IntuneFaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
        }
    }
}

/// The fault configuration. `Default` is a healthy server at epoch 0. Token requests are
/// never refused by the 429/5xx faults, so a client can always get back on its feet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntuneFaultPlan {
    /// The epoch of the fleet that is served (see [`Fleet::snapshot`]).
    pub epoch: u32,
    /// The next this many device requests answer 429.
    pub rate_limit_next: u32,
    /// `Retry-After` of those, in seconds; `None` sends none (as some Intune endpoints do).
    pub retry_after_secs: Option<u64>,
    /// The next this many device requests answer `server_error_status` (default 503).
    pub server_errors_next: u32,
    pub server_error_status: Option<u16>,
    /// Lifetime of tokens issued from now on; `None`: 3599 s.
    pub token_ttl: Option<Duration>,
    /// Page `k` (0-based position in the listing) is cut off mid-JSON, this many times
    /// (`None` in the second field: every time).
    pub malformed_page: Option<(usize, Option<u32>)>,
    /// The next request that follows a next link answers this status (400 or 410), once.
    pub stale_link_next: Option<u16>,
    /// Next links from an earlier epoch answer this status (400 or 410) instead of being
    /// served from the current epoch.
    pub stale_links_after_epoch_change: Option<u16>,
    /// Next links lose their skip token, so following them answers 400.
    pub short_next_links: bool,
    /// Next links point to another host (`graph.invalid`).
    pub foreign_next_links: bool,
}

#[derive(Debug, Default)]
struct FaultState {
    plan: IntuneFaultPlan,
    token_generation: u64,
}

/// Shared handle to the running server's faults; every change applies to the next request.
#[derive(Debug, Clone, Default)]
pub struct IntuneFaults {
    state: Arc<Mutex<FaultState>>,
}

impl IntuneFaults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        lock(&self.state)
    }

    pub fn plan(&self) -> IntuneFaultPlan {
        self.lock().plan.clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut IntuneFaultPlan)) {
        change(&mut self.lock().plan);
    }

    pub fn set_epoch(&self, epoch: u32) {
        self.update(|plan| plan.epoch = epoch);
    }

    pub fn epoch(&self) -> u32 {
        self.lock().plan.epoch
    }

    /// The next `count` device requests answer 429, with `Retry-After` if given.
    pub fn rate_limit_next(&self, count: u32, retry_after_secs: Option<u64>) {
        self.update(|plan| {
            plan.rate_limit_next = count;
            plan.retry_after_secs = retry_after_secs;
        });
    }

    /// The next `count` device requests answer `status` (default 503).
    pub fn server_errors_next(&self, count: u32, status: Option<u16>) {
        self.update(|plan| {
            plan.server_errors_next = count;
            plan.server_error_status = status;
        });
    }

    pub fn set_token_ttl(&self, ttl: Option<Duration>) {
        self.update(|plan| plan.token_ttl = ttl);
    }

    /// Every token issued so far stops working now (401 on its next use).
    pub fn expire_tokens(&self) {
        self.lock().token_generation += 1;
    }

    pub fn set_malformed_page(&self, page: Option<usize>, times: Option<u32>) {
        self.update(|plan| plan.malformed_page = page.map(|page| (page, times)));
    }

    pub fn stale_link_next(&self, status: u16) {
        self.update(|plan| plan.stale_link_next = Some(status));
    }

    fn token_generation(&self) -> u64 {
        self.lock().token_generation
    }

    fn take_refusal(&self) -> Option<Response> {
        let mut state = self.lock();
        let plan = &mut state.plan;
        let response = match take_burst(&mut plan.rate_limit_next, &mut plan.server_errors_next)? {
            Burst::RateLimit => {
                let response = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "activityLimitReached",
                    "The request has been throttled",
                );
                match plan.retry_after_secs {
                    Some(secs) => with_retry_after(response, secs),
                    None => response,
                }
            }
            Burst::ServerErrors => graph_error(
                server_error_status(plan.server_error_status),
                "serviceNotAvailable",
                "Injected failure",
            ),
        };
        Some(response)
    }

    fn take_malformed(&self, page: usize) -> bool {
        let mut state = self.lock();
        match state.plan.malformed_page {
            Some((at, times)) if at == page => {
                state.plan.malformed_page = match times {
                    None => Some((at, None)),
                    Some(0 | 1) => None,
                    Some(n) => Some((at, Some(n - 1))),
                };
                times != Some(0)
            }
            _ => false,
        }
    }
}

/// Requests so far, per endpoint and per fault answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntuneRequestCounts {
    pub token: u64,
    /// `managedDevices` requests, whatever they were answered with.
    pub devices: u64,
    /// Of those, the ones that followed a next link.
    pub next_links: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub malformed_pages: u64,
    pub stale_links: u64,
    /// Paths the mock does not serve.
    pub unknown: u64,
}

#[derive(Debug, Default)]
struct Counters {
    token: AtomicU64,
    devices: AtomicU64,
    next_links: AtomicU64,
    unauthorized: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    malformed_pages: AtomicU64,
    stale_links: AtomicU64,
    unknown: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> IntuneRequestCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        IntuneRequestCounts {
            token: get(&self.token),
            devices: get(&self.devices),
            next_links: get(&self.next_links),
            unauthorized: get(&self.unauthorized),
            rate_limited: get(&self.rate_limited),
            server_errors: get(&self.server_errors),
            malformed_pages: get(&self.malformed_pages),
            stale_links: get(&self.stale_links),
            unknown: get(&self.unknown),
        }
    }
}

struct App {
    config: IntuneMockConfig,
    base_url: String,
    faults: IntuneFaults,
    counters: Counters,
    tokens: IssuedTokens,
    snapshots: PerEpoch<Arc<FleetSnapshot>>,
}

/// A running fake Graph. Dropping it stops the server; [`IntuneMock::shutdown`] also waits.
pub struct IntuneMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for IntuneMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntuneMock")
            .field("base_url", &self.app.base_url)
            .field("fleet", &self.app.config.fleet)
            .finish()
    }
}

impl IntuneMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: IntuneMockConfig) -> Result<IntuneMock, MockError> {
        let listener = Listener::bind(config.bind, "Intune").await?;
        let faults = IntuneFaults::default();
        faults.update(|plan| *plan = config.faults.clone());
        let app = Arc::new(App {
            config,
            base_url: listener.base_url(),
            faults,
            counters: Counters::default(),
            tokens: IssuedTokens::default(),
            snapshots: PerEpoch::new(),
        });
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/{version}/deviceManagement/managedDevices", get(devices))
            .fallback(unknown_path)
            .with_state(app.clone());
        let server = listener.serve(router);
        Ok(IntuneMock { app, server })
    }

    /// `http://127.0.0.1:PORT`: the connector's `graph_url`.
    pub fn base_url(&self) -> &str {
        &self.app.base_url
    }

    /// The connector's `token_url` for the configured tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.app.base_url, self.app.config.tenant_id
        )
    }

    pub fn faults(&self) -> &IntuneFaults {
        &self.app.faults
    }

    pub fn config(&self) -> &IntuneMockConfig {
        &self.app.config
    }

    /// The fleet as served right now (current epoch).
    pub fn snapshot(&self) -> Arc<FleetSnapshot> {
        self.app.snapshot(self.app.faults.epoch())
    }

    /// Device `position` of the current listing as the mock renders it (all properties).
    pub fn device_json(&self, position: usize) -> Option<Value> {
        let snapshot = self.snapshot();
        device_at(&snapshot, position).map(|device| render(&device, self.app.config.rendering))
    }

    pub fn request_counts(&self) -> IntuneRequestCounts {
        self.app.counters.snapshot()
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

    fn issue_token(&self) -> (String, Duration) {
        let ttl = self.faults.plan().token_ttl.unwrap_or(TOKEN_TTL);
        let serial = self.tokens.next_serial();
        let token = format!(
            "eyJ.mock-intune.{serial}.{:x}",
            self.config.fleet.seed() ^ serial
        );
        self.tokens
            .insert(token.clone(), ttl, self.faults.token_generation());
        (token, ttl)
    }

    /// The 401 answer for a missing, unknown, revoked or expired token; `None` if it is valid.
    fn refuse_token(&self, headers: &HeaderMap) -> Option<Response> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let generation = self.faults.token_generation();
        let valid = presented.is_some_and(|token| {
            self.tokens
                .use_token(token.trim(), generation, None)
                .is_ok()
        });
        if valid {
            return None;
        }
        bump(&self.counters.unauthorized);
        Some(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ))
    }
}

/// Graph's error body (docs/vendors/intune.md#errors).
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message,
        "innerError": { "request-id": "00000000-0000-4000-8000-000000000000", "date": "2026-11-23T06:00:00" } } });
    json_response(status, body.to_string())
}

/// `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant, Entra-style errors.
async fn token(
    State(app): State<Arc<App>>,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    bump(&app.counters.token);
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        let body = json!({ "error": error, "error_description": description,
            "error_codes": [7000215], "trace_id": "mock", "correlation_id": "mock" });
        json_response(status, body.to_string())
    };
    let field = |name: &str| form.get(name).map(String::as_str);
    if tenant != app.config.tenant_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002: Tenant not found.",
        );
    }
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: grant_type must be client_credentials",
        );
    }
    if !field("scope").is_some_and(|scope| scope.ends_with("/.default")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for scope is not valid.",
        );
    }
    if field("client_id") != Some(app.config.client_id.as_str())
        || field("client_secret") != Some(app.config.client_secret.as_str())
    {
        bump(&app.counters.unauthorized);
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let (token, ttl) = app.issue_token();
    let body = json!({ "token_type": "Bearer", "expires_in": ttl.as_secs(),
        "ext_expires_in": ttl.as_secs(), "access_token": token });
    json_response(StatusCode::OK, body.to_string())
}

type Params = Vec<(String, String)>;

/// `GET /{v1.0|beta}/deviceManagement/managedDevices`.
async fn devices(
    State(app): State<Arc<App>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    bump(&app.counters.devices);
    if version != "v1.0" && version != "beta" {
        bump(&app.counters.unknown);
        return graph_error(StatusCode::NOT_FOUND, "BadRequest", "Invalid version");
    }
    let skip_token = params
        .iter()
        .find(|(name, _)| name == "$skiptoken")
        .map(|(_, value)| value.as_str());
    if skip_token.is_some() {
        bump(&app.counters.next_links);
    }
    if let Some(refusal) = app.faults.take_refusal() {
        match refusal.status() {
            StatusCode::TOO_MANY_REQUESTS => bump(&app.counters.rate_limited),
            _ => bump(&app.counters.server_errors),
        }
        return refusal;
    }
    if let Some(response) = app.refuse_token(&headers) {
        return response;
    }
    let mut select: Option<Vec<String>> = None;
    let mut top = DEFAULT_PAGE_SIZE;
    for (name, value) in &params {
        match name.as_str() {
            "$select" => select = Some(value.split(',').map(|f| f.trim().to_string()).collect()),
            "$top" => match value.parse::<usize>() {
                Ok(n) if n > 0 => top = n.min(MAX_PAGE_SIZE),
                _ => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid $top"),
            },
            "$filter" | "$orderby" | "$search" => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The mock does not support $filter, $orderby or $search",
                )
            }
            _ => {}
        }
    }
    let epoch = app.faults.epoch();
    let offset = match skip_token {
        None => 0,
        Some(token) => match stale_or_offset(&app, token, epoch) {
            Ok(offset) => offset,
            Err((status, code, message)) => {
                bump(&app.counters.stale_links);
                return graph_error(status, code, message);
            }
        },
    };
    let snapshot = app.snapshot(epoch);
    let total = snapshot.total();
    let end = offset.saturating_add(top).min(total);
    let rendering = app.config.rendering;
    let value: Vec<Value> = (offset.min(end)..end)
        .filter_map(|position| device_at(&snapshot, position))
        .map(|device| selected(render(&device, rendering), select.as_deref()))
        .collect();
    let mut page = Map::new();
    page.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/{version}/$metadata#deviceManagement/managedDevices",
            app.base_url
        )),
    );
    page.insert("value".into(), Value::Array(value));
    if end < total {
        page.insert(
            "@odata.nextLink".into(),
            json!(next_link(&app, &version, &params, epoch, end)),
        );
    }
    let mut body = Value::Object(page).to_string();
    if app.faults.take_malformed(offset / top) {
        bump(&app.counters.malformed_pages);
        body.truncate(body.len() * 2 / 3);
    }
    json_response(StatusCode::OK, body)
}

/// Why a skip token is not served: the status, Graph error code and message.
type Refused = (StatusCode, &'static str, &'static str);

/// The offset a skip token stands for, or why a stale or broken one is refused.
fn stale_or_offset(app: &App, token: &str, epoch: u32) -> Result<usize, Refused> {
    let stale = |status: u16| {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GONE);
        (
            status,
            "resyncRequired",
            "The skip token is no longer valid",
        )
    };
    if let Some(status) = app.faults.lock().plan.stale_link_next.take() {
        return Err(stale(status));
    }
    let parsed = token
        .strip_prefix('e')
        .and_then(|rest| rest.split_once('o'))
        .and_then(|(e, o)| Some((e.parse::<u32>().ok()?, o.parse::<usize>().ok()?)));
    let Some((issued_in, offset)) = parsed else {
        return Err((StatusCode::BAD_REQUEST, "BadRequest", "Invalid skip token"));
    };
    match app.faults.plan().stale_links_after_epoch_change {
        Some(status) if issued_in != epoch => Err(stale(status)),
        _ => Ok(offset),
    }
}

/// The next link: the request's own query options plus a skip token, as Graph builds it.
fn next_link(app: &App, version: &str, params: &Params, epoch: u32, offset: usize) -> String {
    let plan = app.faults.plan();
    let base = if plan.foreign_next_links {
        "https://graph.invalid".to_string()
    } else {
        app.base_url.clone()
    };
    let token = if plan.short_next_links {
        String::new()
    } else {
        format!("e{epoch}o{offset}")
    };
    let query: Vec<String> = params
        .iter()
        .filter(|(name, _)| name != "$skiptoken")
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain([("$skiptoken", token.as_str())])
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    format!("{base}/{version}/{DEVICES_PATH}?{}", query.join("&"))
}

/// Percent-encodes a query component (`$` and `,` stay readable, as Graph leaves them).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'$' | b',' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Device `position` of the listing: mobile devices first, then computers, each by id.
fn device_at(snapshot: &FleetSnapshot, position: usize) -> Option<Device> {
    let mobile = snapshot.count(DeviceKind::Mobile);
    let (kind, at) = if position < mobile {
        (DeviceKind::Mobile, position)
    } else {
        (DeviceKind::Computer, position - mobile)
    };
    snapshot.page(kind, at, 1).next()
}

/// Only the `$select`ed properties, as Graph returns them.
fn selected(device: Value, select: Option<&[String]>) -> Value {
    match (device, select) {
        (Value::Object(mut object), Some(select)) => {
            object.retain(|key, _| select.iter().any(|wanted| wanted == key));
            Value::Object(object)
        }
        (device, _) => device,
    }
}

/// A fleet device as an Intune managed device (every v1.0 property the connector selects).
pub fn render(device: &Device, rendering: Rendering) -> Value {
    let windows = rendering == Rendering::Windows;
    let (manufacturer, model, short) = match (rendering, device.family) {
        (Rendering::Windows, Family::IPad) => ("Microsoft Corporation", "Surface Go 3", "TAB"),
        (Rendering::Windows, Family::MacBook) => match device.index % 3 {
            0 => ("LENOVO", "ThinkPad L14 Gen 4", "NB"),
            1 => ("Dell Inc.", "Latitude 3440", "NB"),
            _ => ("HP", "HP ProBook 450 G10", "NB"),
        },
        (Rendering::Windows, Family::IMac) => ("Dell Inc.", "OptiPlex 7010", "PC"),
        (Rendering::SameSerials, family) => ("Apple", device.model.name, family.short_name()),
    };
    let (operating_system, os_version, serial) = match (rendering, device.family) {
        (Rendering::Windows, _) => (
            "Windows",
            format!(
                "10.0.{}.{}",
                22631 + (device.index % 2) * 3469,
                4000 + device.index % 600
            ),
            format!("PW{}", &device.serial_number[3..]),
        ),
        (Rendering::SameSerials, Family::IPad) => (
            "iOS",
            device.os_version.clone(),
            device.serial_number.clone(),
        ),
        (Rendering::SameSerials, _) => (
            "macOS",
            device.os_version.clone(),
            device.serial_number.clone(),
        ),
    };
    let short_name = device.family.short_name();
    let name = device
        .display_name
        .replace(&format!("-{short_name}-"), &format!("-{short}-"));
    let mac: String = device.wifi_mac.chars().filter(|c| *c != ':').collect();
    let mac = if windows { mac.to_uppercase() } else { mac };
    let user = device.user.as_ref();
    let upn = user.map(|user| user.email.clone()).unwrap_or_default();
    json!({
        "id": device.management_id,
        "userId": user.map(|_| format!("{:08x}-0000-4000-8000-{:012x}", device.index, device.index)).unwrap_or_default(),
        "deviceName": name,
        "managedDeviceName": format!("{}_{operating_system}_{}", upn.split('@').next().unwrap_or(""), &device.enrolled_at[..10]),
        "managedDeviceOwnerType": "company",
        "enrolledDateTime": device.enrolled_at,
        "lastSyncDateTime": device.last_inventory_at,
        "operatingSystem": operating_system,
        "complianceState": if device.index.is_multiple_of(17) { "noncompliant" } else { "compliant" },
        "osVersion": os_version,
        "azureADDeviceId": if windows { device.udid.to_lowercase() } else { "00000000-0000-0000-0000-000000000000".to_string() },
        "deviceCategoryDisplayName": device.school.name,
        "userPrincipalName": upn,
        "emailAddress": upn,
        "userDisplayName": user.map(|user| user.real_name.clone()).unwrap_or_default(),
        "model": model,
        "manufacturer": manufacturer,
        "imei": "",
        "meid": "",
        "serialNumber": serial,
        "wiFiMacAddress": mac,
        "totalStorageSpaceInBytes": u64::from(device.capacity_mb) * 1_048_576,
    })
}

async fn unknown_path(State(app): State<Arc<App>>) -> Response {
    bump(&app.counters.unknown);
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "No such resource in the mock",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_rendering_keeps_identities_apart_and_same_serials_keeps_them() {
        let fleet = Fleet::new(5, 60);
        let snapshot = fleet.snapshot(0);
        let device = device_at(&snapshot, 0).unwrap();
        let windows = render(&device, Rendering::Windows);
        assert_eq!(windows["operatingSystem"], "Windows");
        assert_ne!(windows["serialNumber"], json!(device.serial_number));
        assert_eq!(windows["id"], json!(device.management_id));
        let apple = render(&device, Rendering::SameSerials);
        assert_eq!(apple["serialNumber"], json!(device.serial_number));
        assert_eq!(apple["manufacturer"], "Apple");
        let all: std::collections::HashSet<String> = (0..snapshot.total())
            .map(|p| {
                render(&device_at(&snapshot, p).unwrap(), Rendering::Windows)["serialNumber"]
                    .to_string()
            })
            .collect();
        assert_eq!(all.len(), 60);
        assert!(device_at(&snapshot, 60).is_none());
    }

    #[test]
    fn select_keeps_only_the_asked_properties() {
        let value = selected(
            json!({"id": "a", "model": "b", "x": 1}),
            Some(&["id".into(), "x".into()]),
        );
        assert_eq!(value, json!({"id": "a", "x": 1}));
    }

    #[test]
    fn limited_malformed_page_wears_off() {
        let faults = IntuneFaults::default();
        faults.set_malformed_page(Some(2), Some(1));
        assert!(!faults.take_malformed(1));
        assert!(faults.take_malformed(2));
        assert!(!faults.take_malformed(2));
    }
}
