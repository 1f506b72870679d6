//! A fake Jamf School server: `GET /api/devices`, `/api/users` and `/api/locations` as
//! docs/vendors/jamf-school.md describes them (HTTP Basic `networkId:apiKey`, the
//! `X-Server-Protocol-Version` header, the whole collection in one body with `count`), serving
//! the iPads of a generated [`Fleet`] — the same serials and UDIDs as the Jamf Pro mock — with
//! faults that can be switched while it runs.
//!
//! ```ignore
//! let mock = JamfSchoolMock::start(MockConfig::new(Fleet::new(42, 500))).await?;
//! mock.faults().rate_limit_next(2, 1);     // next 2 requests: 429, Retry-After: 1
//! mock.faults().set_count_surplus(3);      // `count` claims 3 devices more than sent
//! assert_eq!(mock.request_counts().devices, 3);
//! ```
//!
//! Where the real server's behaviour is unknown the mock picks one: a wrong protocol version
//! answers 404 (as a third-party client reports), bad credentials 401 with a JSON body.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::error::MockError;
use crate::generator::{Device, DeviceKind, Fleet, FleetSnapshot};
use crate::musterstadt;
use crate::plumbing::{
    basic_credentials, json_response, lock, pause, server_error_status, take_burst,
    with_retry_after, Burst, Listener, PerEpoch, Server,
};

/// Network ID the mock accepts unless configured otherwise.
pub const DEFAULT_NETWORK_ID: &str = "bestand-mock-network";
/// API key the mock accepts unless configured otherwise.
pub const DEFAULT_API_KEY: &str = "bestand-mock-api-key";
/// The `X-Server-Protocol-Version` the mock serves unless configured otherwise.
pub const DEFAULT_PROTOCOL_VERSION: &str = "3";

/// How to start a [`JamfSchoolMock`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub fleet: Fleet,
    /// Faults active from the first request on.
    pub faults: FaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub network_id: String,
    pub api_key: String,
    pub protocol_version: String,
}

impl MockConfig {
    /// A healthy server on a free local port with the default credentials.
    pub fn new(fleet: Fleet) -> MockConfig {
        MockConfig {
            fleet,
            faults: FaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            network_id: DEFAULT_NETWORK_ID.to_string(),
            api_key: DEFAULT_API_KEY.to_string(),
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_string(),
        }
    }
}

/// The fault configuration. `Default` is a healthy server at epoch 0. Faults apply to every
/// authenticated request (devices, users, locations) in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Which state of the fleet is served; devices vanish from epoch to epoch.
    pub epoch: u32,
    /// The next this many requests answer 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_next: u32,
    pub retry_after_secs: u64,
    /// The next this many requests answer `server_error_status` (default 503).
    pub server_errors_next: u32,
    pub server_error_status: Option<u16>,
    /// Every request waits this long before answering.
    pub delay: Duration,
    /// `/api/devices` answers a body cut off in the middle.
    pub malformed_body: bool,
    /// `/api/devices` reports a `count` this much larger than the array it sends.
    pub count_surplus: u32,
}

/// The handle to switch faults while the server runs.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultPlan>>);

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultPlan> {
        lock(&self.0)
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

    pub fn set_malformed_body(&self, on: bool) {
        self.update(|plan| plan.malformed_body = on);
    }

    pub fn set_count_surplus(&self, surplus: u32) {
        self.update(|plan| plan.count_surplus = surplus);
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
    pub devices: u64,
    pub users: u64,
    pub locations: u64,
    /// Answers: 401 (missing or wrong Basic credentials).
    pub unauthorized: u64,
    /// Answers: 404 for a wrong `X-Server-Protocol-Version`.
    pub wrong_protocol: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub malformed_bodies: u64,
    /// Answers: `count` larger than the array.
    pub short_bodies: u64,
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Devices,
    Users,
    Locations,
    Unauthorized,
    WrongProtocol,
    RateLimited,
    ServerErrors,
    MalformedBodies,
    ShortBodies,
}

const COUNTERS: usize = Counter::ShortBodies as usize + 1;

struct App {
    config: MockConfig,
    faults: Faults,
    counters: [AtomicU64; COUNTERS],
    snapshots: PerEpoch<Arc<FleetSnapshot>>,
}

impl App {
    fn count(&self, counter: Counter) {
        self.counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, epoch: u32) -> Arc<FleetSnapshot> {
        self.snapshots
            .get(epoch, || Arc::new(self.config.fleet.snapshot(epoch)))
    }
}

/// A running fake Jamf School server. Dropping it stops the server.
pub struct JamfSchoolMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for JamfSchoolMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JamfSchoolMock")
            .field("base_url", &self.server.base_url())
            .finish_non_exhaustive()
    }
}

impl JamfSchoolMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: MockConfig) -> Result<JamfSchoolMock, MockError> {
        let listener = Listener::bind(config.bind, "Jamf School").await?;
        let app = Arc::new(App {
            faults: Faults(Arc::new(Mutex::new(config.faults.clone()))),
            config,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            snapshots: PerEpoch::new(),
        });
        let router = Router::new()
            .route("/api/devices", get(devices))
            .route("/api/users", get(users))
            .route("/api/locations", get(locations))
            .with_state(app.clone());
        let server = listener.serve(router);
        Ok(JamfSchoolMock { app, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash; the API lives under `/api`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    pub fn config(&self) -> &MockConfig {
        &self.app.config
    }

    /// The fleet as served right now; its iPads are the devices of `/api/devices`.
    pub fn snapshot(&self) -> Arc<FleetSnapshot> {
        self.app.snapshot(self.app.faults.epoch())
    }

    /// How many devices `/api/devices` serves right now (its honest `count`).
    pub fn device_count(&self) -> usize {
        self.snapshot().count(DeviceKind::Mobile)
    }

    pub fn request_counts(&self) -> RequestCounts {
        let c = |counter: Counter| self.app.counters[counter as usize].load(Ordering::Relaxed);
        RequestCounts {
            devices: c(Counter::Devices),
            users: c(Counter::Users),
            locations: c(Counter::Locations),
            unauthorized: c(Counter::Unauthorized),
            wrong_protocol: c(Counter::WrongProtocol),
            rate_limited: c(Counter::RateLimited),
            server_errors: c(Counter::ServerErrors),
            malformed_bodies: c(Counter::MalformedBodies),
            short_bodies: c(Counter::ShortBodies),
        }
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.server.shutdown().await
    }
}

/// The error envelope Jamf School uses, as far as public clients show it.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "code": status.as_u16(), "message": message });
    json_response(status, body.to_string())
}

/// Counts the request, then checks auth, protocol version and the switchable faults every
/// endpoint shares; `Err` is the answer.
async fn admit(
    app: &App,
    endpoint: Counter,
    headers: &HeaderMap,
) -> Result<FaultPlan, Box<Response>> {
    app.count(endpoint);
    let expected = format!("{}:{}", app.config.network_id, app.config.api_key);
    if basic_credentials(headers).as_deref() != Some(expected.as_bytes()) {
        app.count(Counter::Unauthorized);
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, "Unauthorized")));
    }
    let version = headers
        .get("x-server-protocol-version")
        .and_then(|value| value.to_str().ok());
    if version != Some(app.config.protocol_version.as_str()) {
        app.count(Counter::WrongProtocol);
        return Err(Box::new(
            (StatusCode::NOT_FOUND, "Not Found").into_response(),
        ));
    }
    let (plan, burst) = app.faults.take_request();
    pause(plan.delay).await;
    match burst {
        None => Ok(plan),
        Some(Burst::RateLimit) => {
            app.count(Counter::RateLimited);
            let answer = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            Err(Box::new(with_retry_after(answer, plan.retry_after_secs)))
        }
        Some(Burst::ServerErrors) => {
            app.count(Counter::ServerErrors);
            let status = server_error_status(plan.server_error_status);
            Err(Box::new(error(status, "Server Error")))
        }
    }
}

fn json_body(body: String) -> Response {
    json_response(StatusCode::OK, body)
}

/// `GET /api/devices`: every iPad of the fleet in one array.
async fn devices(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let plan = match admit(&app, Counter::Devices, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let snapshot = app.snapshot(plan.epoch);
    let rendered: Vec<Value> = snapshot
        .devices(DeviceKind::Mobile)
        .map(|d| device(&d))
        .collect();
    let count = rendered.len() as u64 + u64::from(plan.count_surplus);
    if plan.count_surplus > 0 {
        app.count(Counter::ShortBodies);
    }
    let mut body = json!({ "code": 200, "count": count, "devices": rendered }).to_string();
    if plan.malformed_body {
        app.count(Counter::MalformedBodies);
        body.truncate(body.len() / 2);
    }
    json_body(body)
}

/// A stable user id from a username (Jamf School ids are plain integers).
fn user_id(username: &str) -> u64 {
    // FNV-1a: deterministic across runs, unlike the std hasher.
    let hash = username
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    1000 + hash % 1_000_000
}

/// One device in the protocol-3 shape of docs/vendors/jamf-school.md#devices.
fn device(d: &Device) -> Value {
    // "2025-03-04T07:55:12.000Z" -> "2025-03-04 07:55:12", the format Jamf School shows.
    let stamp: String = d
        .last_inventory_at
        .replace('T', " ")
        .chars()
        .take(19)
        .collect();
    let mut device = json!({
        "UDID": d.udid,
        "locationId": d.school.site_id,
        "serialNumber": d.serial_number,
        "name": d.display_name,
        "isManaged": true,
        "isSupervised": d.supervised,
        "class": "ipad",
        "assetTag": d.asset_tag.clone().unwrap_or_default(),
        "os": { "prefix": "iOS", "version": d.os_version },
        "model": { "name": d.model.name, "identifier": d.model.identifier, "type": "iPad" },
        "groups": [],
        "enrollType": "dep",
        "batteryLevel": f64::from(d.battery_level) / 100.0,
        "totalCapacity": f64::from(d.capacity_mb) / 1024.0,
        "availableCapacity": f64::from(d.available_mb) / 1024.0,
        "lastCheckin": stamp,
        "modified": stamp,
        "networkInformation": {
            "IPAddress": d.ip_address, "WiFiMAC": d.wifi_mac, "BluetoothMAC": d.bluetooth_mac
        }
    });
    if let (Some(user), Some(object)) = (&d.user, device.as_object_mut()) {
        object.insert(
            "owner".to_string(),
            json!({
                "id": user_id(&user.username),
                "locationId": d.school.site_id,
                "name": user.real_name,
                "username": user.username,
                "email": user.email,
                "vpp": []
            }),
        );
    }
    device
}

/// `GET /api/users`: the owners of the fleet's iPads, once each.
async fn users(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let plan = match admit(&app, Counter::Users, &headers).await {
        Ok(plan) => plan,
        Err(answer) => return *answer,
    };
    let snapshot = app.snapshot(plan.epoch);
    let mut users: BTreeMap<String, (Value, u64)> = BTreeMap::new();
    for d in snapshot.devices(DeviceKind::Mobile) {
        let Some(user) = &d.user else { continue };
        let entry = users.entry(user.username.clone()).or_insert_with(|| {
            let (first, last) = user
                .real_name
                .split_once(' ')
                .unwrap_or(("", &user.real_name));
            let value = json!({
                "id": user_id(&user.username), "locationId": d.school.site_id, "status": "Active",
                "email": user.email, "username": user.username, "domain": "",
                "firstName": first, "lastName": last, "name": user.real_name,
                "groupIds": [], "groups": [], "teacherGroups": [], "children": [],
                "notes": user.position, "exclude": false, "vpp": []
            });
            (value, 0)
        });
        entry.1 += 1;
    }
    let users: Vec<Value> = users
        .into_values()
        .map(|(mut user, devices)| {
            if let Some(object) = user.as_object_mut() {
                object.insert("deviceCount".to_string(), json!(devices));
            }
            user
        })
        .collect();
    json_body(json!({ "code": 200, "count": users.len(), "users": users }).to_string())
}

/// `GET /api/locations`: one location per Musterstadt school, id = the Jamf Pro site id.
async fn locations(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(answer) = admit(&app, Counter::Locations, &headers).await {
        return *answer;
    }
    let locations: Vec<Value> = musterstadt::schools()
        .iter()
        .map(|school| json!({ "id": school.site_id, "name": school.name }))
        .collect();
    json_body(json!({ "code": 200, "count": locations.len(), "locations": locations }).to_string())
}
