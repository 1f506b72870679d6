//! A fake UCS@school Kelvin REST API (docs/vendors/ucs-kelvin-ldap.md#kelvin): the token endpoint,
//! schools, users filtered by `school` and `roles`, and classes, serving a generated [`Directory`]
//! — the persons whose usernames the MDM mocks' devices carry — with faults that can be switched
//! while it runs.
//!
//! ```ignore
//! let mock = KelvinMock::start(KelvinMockConfig::new(Directory::musterstadt(42))).await?;
//! mock.faults().server_errors_next(2, Some(502));  // next 2 requests: 502
//! mock.faults().expire_tokens();                  // every token issued so far: 401
//! assert_eq!(mock.request_counts().tokens, 2);
//! ```
//!
//! Tokens are JWT-shaped (`header.payload.signature`, base64url) with `sub`, `iat`, `exp` and
//! `jti`; the server accepts only tokens it issued, until their `exp` or until
//! [`Faults::expire_tokens`]. Like Kelvin v1 it does not page: every listing is one array.
//! Where the real server's behaviour is unknown the mock picks one: an unknown school lists
//! no users, and `/classes/` of an unknown school answers 404 with a `detail`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::directory::{ou, Directory, Person, Role};
use crate::error::MockError;
use crate::musterstadt::School;
use crate::plumbing::{
    bearer_token, json_response, lock, pause, server_error_status, take_burst, with_retry_after,
    Burst, Listener, PerEpoch, Server,
};

/// Username the mock accepts unless configured otherwise.
pub const DEFAULT_USERNAME: &str = "bestand-kelvin";
/// Password the mock accepts unless configured otherwise.
pub const DEFAULT_PASSWORD: &str = "bestand-mock-kelvin-password";
/// Kelvin's default token lifetime.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// The LDAP base of the fake directory.
pub const LDAP_BASE: &str = "dc=musterstadt,dc=example";

const PREFIX: &str = "/ucsschool/kelvin";

/// How to start a [`KelvinMock`].
#[derive(Debug, Clone)]
pub struct KelvinMockConfig {
    /// The directory at epoch 0; [`FaultPlan::epoch`] picks the epoch served.
    pub directory: Directory,
    /// Faults active from the first request on.
    pub faults: FaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub username: String,
    pub password: String,
}

impl KelvinMockConfig {
    /// A healthy server on a free local port with the default credentials.
    pub fn new(directory: Directory) -> KelvinMockConfig {
        KelvinMockConfig {
            directory,
            faults: FaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            username: DEFAULT_USERNAME.to_string(),
            password: DEFAULT_PASSWORD.to_string(),
        }
    }
}

/// The fault configuration. `Default` is a healthy server at epoch 0. The request faults
/// apply to every request, the token request included, in arrival order, as a proxy in front
/// of the server would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// Which state of the directory is served; pupils leave and arrive from epoch to epoch.
    pub epoch: u32,
    /// The next this many requests answer 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_next: u32,
    pub retry_after_secs: u64,
    /// The next this many requests answer `server_error_status` (default 503).
    pub server_errors_next: u32,
    pub server_error_status: Option<u16>,
    /// Every request waits this long before answering.
    pub delay: Duration,
    /// Lifetime of the tokens issued from now on: their `exp` and the server's check.
    pub token_ttl_secs: u64,
    /// The next this many user listings answer a body cut off in the middle.
    pub malformed_next: u32,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            epoch: 0,
            rate_limit_next: 0,
            retry_after_secs: 0,
            server_errors_next: 0,
            server_error_status: None,
            delay: Duration::ZERO,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            malformed_next: 0,
        }
    }
}

/// The handle to switch faults while the server runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    plan: Arc<Mutex<FaultPlan>>,
    /// Tokens with a lower `jti` are rejected.
    valid_from_jti: Arc<AtomicU64>,
    next_jti: Arc<AtomicU64>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultPlan> {
        lock(&self.plan)
    }

    pub fn plan(&self) -> FaultPlan {
        self.lock().clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut FaultPlan)) {
        change(&mut self.lock());
    }

    /// Back to a healthy server, keeping the epoch.
    pub fn clear(&self) {
        self.update(|plan| {
            *plan = FaultPlan {
                epoch: plan.epoch,
                ..FaultPlan::default()
            }
        });
    }

    pub fn set_epoch(&self, epoch: u32) {
        self.update(|plan| plan.epoch = epoch);
    }

    pub fn epoch(&self) -> u32 {
        self.lock().epoch
    }

    pub fn rate_limit_next(&self, count: u32, retry_after_secs: u64) {
        self.update(|plan| {
            plan.rate_limit_next = count;
            plan.retry_after_secs = retry_after_secs;
        });
    }

    pub fn server_errors_next(&self, count: u32, status: Option<u16>) {
        self.update(|plan| {
            plan.server_errors_next = count;
            plan.server_error_status = status;
        });
    }

    pub fn set_delay(&self, delay: Duration) {
        self.update(|plan| plan.delay = delay);
    }

    /// Tokens issued from now on live `secs` seconds (their `exp` says so too).
    pub fn set_token_ttl(&self, secs: u64) {
        self.update(|plan| plan.token_ttl_secs = secs);
    }

    /// Every token issued so far is rejected from now on, although its `exp` lies ahead:
    /// the next request with it gets a 401, as after a server restart with a new key.
    pub fn expire_tokens(&self) {
        self.valid_from_jti
            .store(self.next_jti.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn malformed_next(&self, count: u32) {
        self.update(|plan| plan.malformed_next = count);
    }

    /// The plan this request meets, and the burst it falls into (which it uses up).
    fn take_request(&self) -> (FaultPlan, Option<Burst>) {
        let mut guard = self.lock();
        let plan = &mut *guard;
        let burst = take_burst(&mut plan.rate_limit_next, &mut plan.server_errors_next);
        (plan.clone(), burst)
    }
}

/// Requests the server has received per endpoint, and the fault answers it gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Token requests, whatever their answer.
    pub tokens: u64,
    /// Token requests refused for a wrong username or password.
    pub bad_credentials: u64,
    pub schools: u64,
    pub users: u64,
    pub classes: u64,
    /// API requests refused for a missing, foreign or expired token.
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub malformed_bodies: u64,
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Tokens,
    BadCredentials,
    Schools,
    Users,
    Classes,
    Unauthorized,
    RateLimited,
    ServerErrors,
    MalformedBodies,
}

const COUNTERS: usize = Counter::MalformedBodies as usize + 1;

struct App {
    config: KelvinMockConfig,
    faults: Faults,
    counters: [AtomicU64; COUNTERS],
    directories: PerEpoch<Directory>,
    /// `http://127.0.0.1:PORT/ucsschool/kelvin/v1`, for the `url` fields.
    v1: String,
    /// Signs the tokens; a fresh one per server, so tokens of another run are foreign.
    key: u64,
}

impl App {
    fn count(&self, counter: Counter) {
        self.counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn directory(&self, epoch: u32) -> Directory {
        self.directories
            .get(epoch, || self.config.directory.at_epoch(epoch))
    }
}

/// A running fake Kelvin server. Dropping it stops the server.
pub struct KelvinMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for KelvinMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KelvinMock")
            .field("base_url", &self.server.base_url())
            .finish_non_exhaustive()
    }
}

impl KelvinMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: KelvinMockConfig) -> Result<KelvinMock, MockError> {
        let listener = Listener::bind(config.bind, "Kelvin").await?;
        let key = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(listener.addr().port());
        let faults = Faults {
            plan: Arc::new(Mutex::new(config.faults.clone())),
            ..Faults::default()
        };
        let app = Arc::new(App {
            faults,
            config,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            directories: PerEpoch::new(),
            v1: format!("{}{PREFIX}/v1", listener.base_url()),
            key,
        });
        let router = Router::new()
            .route(&format!("{PREFIX}/token"), post(token))
            .route(&format!("{PREFIX}/v1/schools/"), get(schools))
            .route(&format!("{PREFIX}/v1/schools"), get(schools))
            .route(&format!("{PREFIX}/v1/schools/{{name}}"), get(school))
            .route(&format!("{PREFIX}/v1/users/"), get(users))
            .route(&format!("{PREFIX}/v1/users"), get(users))
            .route(&format!("{PREFIX}/v1/classes/"), get(classes))
            .route(&format!("{PREFIX}/v1/classes"), get(classes))
            .with_state(app.clone());
        let server = listener.serve(router);
        Ok(KelvinMock { app, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; the API lives under
    /// `/ucsschool/kelvin`. This is what a Kelvin source's `base_url` takes.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    pub fn config(&self) -> &KelvinMockConfig {
        &self.app.config
    }

    /// The directory as served right now.
    pub fn directory(&self) -> Directory {
        self.app.directory(self.app.faults.epoch())
    }

    pub fn request_counts(&self) -> RequestCounts {
        let c = |counter: Counter| self.app.counters[counter as usize].load(Ordering::Relaxed);
        RequestCounts {
            tokens: c(Counter::Tokens),
            bad_credentials: c(Counter::BadCredentials),
            schools: c(Counter::Schools),
            users: c(Counter::Users),
            classes: c(Counter::Classes),
            unauthorized: c(Counter::Unauthorized),
            rate_limited: c(Counter::RateLimited),
            server_errors: c(Counter::ServerErrors),
            malformed_bodies: c(Counter::MalformedBodies),
        }
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.server.shutdown().await
    }
}

/// A FastAPI-style error: `{"detail": ...}`.
fn detail(status: StatusCode, detail: Value) -> Response {
    let mut answer = json_response(status, json!({ "detail": detail }).to_string());
    if status == StatusCode::UNAUTHORIZED {
        answer.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    answer
}

fn json_body(body: String) -> Response {
    json_response(StatusCode::OK, body)
}

/// Counts the request and applies the switchable request faults; `Err` is the answer.
async fn faults(app: &App, endpoint: Counter) -> Result<FaultPlan, Box<Response>> {
    app.count(endpoint);
    let (plan, burst) = app.faults.take_request();
    pause(plan.delay).await;
    match burst {
        None => Ok(plan),
        Some(Burst::RateLimit) => {
            app.count(Counter::RateLimited);
            let answer = detail(
                StatusCode::TOO_MANY_REQUESTS,
                json!("Too many requests, slow down."),
            );
            Err(Box::new(with_retry_after(answer, plan.retry_after_secs)))
        }
        Some(Burst::ServerErrors) => {
            app.count(Counter::ServerErrors);
            let status = server_error_status(plan.server_error_status);
            // Proxies in front of Kelvin answer HTML, not JSON.
            let body = format!("<html><body><h1>{status}</h1></body></html>");
            Err(Box::new(
                (status, [(header::CONTENT_TYPE, "text/html")], body).into_response(),
            ))
        }
    }
}

/// [`faults`], then the bearer token check every API endpoint shares.
async fn admit(
    app: &App,
    endpoint: Counter,
    headers: &HeaderMap,
) -> Result<FaultPlan, Box<Response>> {
    let plan = faults(app, endpoint).await?;
    let token = bearer_token(headers);
    if !token.is_some_and(|token| token_is_valid(app, token)) {
        app.count(Counter::Unauthorized);
        return Err(Box::new(detail(
            StatusCode::UNAUTHORIZED,
            json!("Could not validate credentials"),
        )));
    }
    Ok(plan)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A keyed FNV-1a over the signed part: no security, only "issued by this server".
fn signature(key: u64, signed: &str) -> String {
    let hash = signed
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64 ^ key, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    b64(&hash.to_be_bytes())
}

fn issue_token(app: &App, username: &str, ttl_secs: u64) -> String {
    let jti = app.faults.next_jti.fetch_add(1, Ordering::SeqCst);
    let now = now_secs();
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(json!({
        "sub": username, "iat": now, "exp": now + ttl_secs, "jti": jti
    })
    .to_string()
    .as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = signature(app.key, &signed);
    format!("{signed}.{signature}")
}

fn token_is_valid(app: &App, token: &str) -> bool {
    let Some((signed, given)) = token.rsplit_once('.') else {
        return false;
    };
    if signature(app.key, signed) != given {
        return false;
    }
    let Some((_, payload)) = signed.split_once('.') else {
        return false;
    };
    let claims: Option<Value> = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let Some(claims) = claims else {
        return false;
    };
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    let jti = claims.get("jti").and_then(Value::as_u64).unwrap_or(0);
    exp > now_secs() && jti >= app.faults.valid_from_jti.load(Ordering::SeqCst)
}

/// `POST /ucsschool/kelvin/token` with the form `username`, `password`.
async fn token(State(app): State<Arc<App>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let plan = match faults(&app, Counter::Tokens).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let username = form.get("username").map(String::as_str);
    let password = form.get("password").map(String::as_str);
    if username != Some(app.config.username.as_str())
        || password != Some(app.config.password.as_str())
    {
        app.count(Counter::BadCredentials);
        return detail(
            StatusCode::UNAUTHORIZED,
            json!("Incorrect username or password"),
        );
    }
    let token = issue_token(&app, &app.config.username, plan.token_ttl_secs);
    json_body(json!({ "access_token": token, "token_type": "bearer" }).to_string())
}

fn school_json(app: &App, school: &School) -> Value {
    let name = ou(school);
    let server = format!("dc-{}", name.to_lowercase());
    json!({
        "dn": format!("ou={name},{LDAP_BASE}"),
        "url": format!("{}/schools/{name}", app.v1),
        "ucsschool_roles": [format!("school:school:{name}")],
        "name": name,
        "display_name": school.name,
        "educational_servers": [server],
        "administrative_servers": [],
        "class_share_file_server": server,
        "home_share_file_server": server,
        "udm_properties": {}
    })
}

/// `GET /v1/schools/`: every school of the directory.
async fn schools(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let plan = match admit(&app, Counter::Schools, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let directory = app.directory(plan.epoch);
    let schools: Vec<Value> = directory
        .schools()
        .iter()
        .map(|school| school_json(&app, school))
        .collect();
    json_body(Value::Array(schools).to_string())
}

/// `GET /v1/schools/{name}`.
async fn school(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let plan = match admit(&app, Counter::Schools, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    match app.directory(plan.epoch).school_by_ou(&name) {
        Some(school) => json_body(school_json(&app, &school).to_string()),
        None => detail(
            StatusCode::NOT_FOUND,
            json!(format!("No school with name {name:?} found.")),
        ),
    }
}

/// The query pairs of a request, repeated keys kept.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A FastAPI validation error for query parameter `name` (at `index` for list parameters).
fn invalid_query(name: &str, index: Option<usize>, message: &str) -> Response {
    let mut location = vec![json!("query"), json!(name)];
    if let Some(index) = index {
        location.push(json!(index));
    }
    detail(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!([{ "loc": location, "msg": message, "type": "value_error" }]),
    )
}

/// `GET /v1/users/?school=OU&roles=student&roles=teacher&name=...`: the users with any of the
/// roles (a role name or its URL `.../roles/student`) who belong to the school, in one array.
async fn users(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let plan = match admit(&app, Counter::Users, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let mut school_name: Option<String> = None;
    let mut name: Option<String> = None;
    let mut roles: Vec<Role> = Vec::new();
    for (key, value) in query_pairs(query.as_deref()) {
        match key.as_str() {
            "school" => school_name = Some(value),
            "name" => name = Some(value),
            "roles" => {
                // The role URL form `https://.../v1/roles/student` names the role last.
                let role_name = value.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                match Role::from_name(role_name) {
                    Some(role) => roles.push(role),
                    None => {
                        return invalid_query(
                            "roles",
                            Some(roles.len()),
                            "value is not a valid enumeration member; permitted: 'staff', \
                             'student', 'teacher', 'school_admin'",
                        )
                    }
                }
            }
            _ => {}
        }
    }
    let directory = app.directory(plan.epoch);
    let school = match &school_name {
        Some(wanted) => match directory.school_by_ou(wanted) {
            Some(school) => Some(school),
            None => return json_body("[]".to_string()),
        },
        None => None,
    };
    let wanted_roles: &[Role] = if roles.is_empty() { &Role::ALL } else { &roles };
    let selected: Vec<&Person> = match &school {
        Some(school) => {
            // Members of the school in any role, then filtered by role anywhere, as Kelvin's
            // role filter looks at the account, not at one school.
            let mut seen: HashSet<u32> = HashSet::new();
            let mut members: Vec<&Person> = Role::ALL
                .iter()
                .flat_map(|role| directory.members(school, *role))
                .filter(|person| seen.insert(person.number))
                .collect();
            members.sort_by_key(|person| person.number);
            members
        }
        None => directory.persons().iter().collect(),
    };
    let rendered: Vec<Value> = selected
        .into_iter()
        .filter(|person| {
            person
                .memberships
                .iter()
                .any(|membership| wanted_roles.contains(&membership.role))
        })
        .filter(|person| {
            name.as_deref()
                .is_none_or(|name| person.username.eq_ignore_ascii_case(name))
        })
        .map(|person| user_json(&app, person))
        .collect();
    let mut body = Value::Array(rendered).to_string();
    let malformed = {
        let mut plan = app.faults.lock();
        let now = plan.malformed_next > 0;
        plan.malformed_next = plan.malformed_next.saturating_sub(1);
        now
    };
    if malformed {
        app.count(Counter::MalformedBodies);
        body.truncate(body.len() / 2);
    }
    json_body(body)
}

/// One user in Kelvin's v1 shape, with everything a real one has (`birthday`,
/// `legal_guardians`, ...), so that clients can show they ignore what they must not keep.
fn user_json(app: &App, person: &Person) -> Value {
    let schools = person.schools();
    let primary = schools.first().map(ou).unwrap_or_default();
    let primary_role = person.roles().first().copied().unwrap_or(Role::Student);
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for membership in &person.memberships {
        if let Some(class) = &membership.class {
            classes
                .entry(ou(&membership.school))
                .or_default()
                .push(class.clone());
        }
    }
    json!({
        "dn": format!(
            "uid={},cn={},cn=users,ou={primary},{LDAP_BASE}",
            person.username,
            primary_role.container()
        ),
        "url": format!("{}/users/{}", app.v1, person.username),
        "ucsschool_roles": person
            .memberships
            .iter()
            .map(|m| format!("{}:school:{}", m.role.as_str(), ou(&m.school)))
            .collect::<Vec<_>>(),
        "name": person.username,
        "school": format!("{}/schools/{primary}", app.v1),
        "schools": schools
            .iter()
            .map(|school| format!("{}/schools/{}", app.v1, ou(school)))
            .collect::<Vec<_>>(),
        "firstname": person.first_name,
        "lastname": person.last_name,
        "birthday": person.birthday.to_string(),
        "disabled": false,
        "email": person.email,
        "expiration_date": null,
        "record_uid": person.record_uid,
        "source_uid": person.source_uid,
        "roles": person
            .roles()
            .iter()
            .map(|role| format!("{}/roles/{}", app.v1, role.as_str()))
            .collect::<Vec<_>>(),
        "school_classes": classes,
        "workgroups": {},
        "legal_guardians": [],
        "legal_wards": [],
        "udm_properties": {}
    })
}

/// `GET /v1/classes/?school=OU`: the school's classes with their members' URLs.
async fn classes(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let plan = match admit(&app, Counter::Classes, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let Some(wanted) = query_pairs(query.as_deref())
        .into_iter()
        .find(|(key, _)| key == "school")
        .map(|(_, value)| value)
    else {
        return invalid_query("school", None, "field required");
    };
    let directory = app.directory(plan.epoch);
    let Some(school) = directory.school_by_ou(&wanted) else {
        return detail(
            StatusCode::NOT_FOUND,
            json!(format!("No school with name {wanted:?} found.")),
        );
    };
    let name = ou(&school);
    let mut members: HashMap<&str, Vec<String>> = HashMap::new();
    for person in directory.members(&school, Role::Student) {
        for membership in &person.memberships {
            if let (Some(class), true) = (
                &membership.class,
                membership.school.site_id == school.site_id,
            ) {
                members
                    .entry(class.as_str())
                    .or_default()
                    .push(format!("{}/users/{}", app.v1, person.username));
            }
        }
    }
    let rendered: Vec<Value> = directory
        .classes(&school)
        .iter()
        .map(|class| {
            json!({
                "dn": format!("cn={name}-{class},cn=klassen,cn=schueler,cn=groups,ou={name},{LDAP_BASE}"),
                "url": format!("{}/classes/{name}/{class}", app.v1),
                "ucsschool_roles": [format!("school_class:school:{name}")],
                "name": class,
                "school": format!("{}/schools/{name}", app.v1),
                "description": null,
                "users": members.get(class.as_str()).cloned().unwrap_or_default(),
                "create_share": true,
                "udm_properties": {}
            })
        })
        .collect();
    json_body(Value::Array(rendered).to_string())
}
