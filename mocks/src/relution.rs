//! A fake Relution server: the device query (`POST .../devices/baseInfo/query`) under both
//! path styles seen in the field, serving a generated [`Fleet`] by limit/offset with the
//! faults of the Jamf Pro mock, so the Relution connector is checked from the outside.
//!
//! ```ignore
//! let mock = RelutionMock::start(RelutionMockConfig::new(Fleet::new(42, 500))).await?;
//! mock.set_paths(PathStyles::V2Only);          // `/api/management/v2/...` answers 404
//! mock.faults().rate_limit_next(2, 1);          // next 2 queries: 429, Retry-After: 1
//! mock.faults().set_short_page(Some(ShortPage { at: PageFault::mobile(3), missing: 1 }));
//! mock.faults().set_epoch(1);                   // some devices vanish
//! ```
//!
//! The fleet renders as Relution devices: iPads as `platform: IOS`, Macs as Windows
//! notebooks (`platform: WINDOWS`, a Windows model), both with the serial numbers the Jamf Pro
//! mock serves for the same seed, so a test can move a device from Jamf Pro to Relution.
//! Page faults count pages as `offset / limit` and are set with `PageFault::mobile(page)`
//! (Relution has one device list). The field names are those of docs/vendors/relution.md#devices;
//! `model`, `manufacturer`, `osVersion`, `wifiMacAddress` and `userName` are not confirmed
//! there, the mock sends them the way the connector reads them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::error::MockError;
use crate::generator::{DeviceKind, Family, Fleet, FleetSnapshot};
use crate::jamf_pro::{FaultPlan, Faults, PageOutcome};
use crate::plumbing::{
    json_response, pause, server_error_status, take_burst, with_retry_after, Burst, Listener,
    PerEpoch, Server,
};
use crate::Device;

/// The access token the mock accepts unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "bestand-relution-mock-token";
/// The organisation UUID the mock serves unless configured otherwise
/// (docs/vendors/relution.md#devices).
pub const DEFAULT_ORGANIZATION: &str = "C7A1F3E2-0B4D-4E6F-8A9B-1C2D3E4F5A6B";
/// `limit` when the body has none; an assumption, Relution documents none.
pub const DEFAULT_LIMIT: usize = 25;
/// Larger `limit`s are clamped silently, as some servers do; an assumption as well.
pub const MAX_LIMIT: usize = 1000;
/// The path styles of the device query.
pub const MANAGEMENT_V2_PATH: &str = "/api/management/v2/devices/baseInfo/query";
pub const V2_PATH: &str = "/api/v2/devices/baseInfo/query";

/// Which query paths answer; the others answer 404, as on a server of the other style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyles {
    Both,
    ManagementV2Only,
    V2Only,
}

impl PathStyles {
    fn code(self) -> u8 {
        match self {
            PathStyles::Both => 0,
            PathStyles::ManagementV2Only => 1,
            PathStyles::V2Only => 2,
        }
    }

    fn from_code(code: u8) -> PathStyles {
        match code {
            1 => PathStyles::ManagementV2Only,
            2 => PathStyles::V2Only,
            _ => PathStyles::Both,
        }
    }

    fn serves(self, management: bool) -> bool {
        match self {
            PathStyles::Both => true,
            PathStyles::ManagementV2Only => management,
            PathStyles::V2Only => !management,
        }
    }
}

/// How to start a [`RelutionMock`].
#[derive(Debug, Clone)]
pub struct RelutionMockConfig {
    pub fleet: Fleet,
    /// Faults active from the first request on (the token faults do not apply here).
    pub faults: FaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub token: String,
    /// The `tenantOrganizationUuid` required; `None` accepts requests without one.
    pub organization: Option<String>,
    pub paths: PathStyles,
}

impl RelutionMockConfig {
    /// A healthy server on a free local port serving both path styles.
    pub fn new(fleet: Fleet) -> RelutionMockConfig {
        RelutionMockConfig {
            fleet,
            faults: FaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: DEFAULT_TOKEN.to_string(),
            organization: Some(DEFAULT_ORGANIZATION.to_string()),
            paths: PathStyles::Both,
        }
    }
}

/// Requests and non-data answers so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelutionRequestCounts {
    pub management_v2: u64,
    pub v2: u64,
    pub unknown: u64,
    pub unauthorized: u64,
    pub not_found: u64,
    pub bad_requests: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub malformed_pages: u64,
    pub short_pages: u64,
}

impl RelutionRequestCounts {
    /// Requests to either query path.
    pub fn queries(&self) -> u64 {
        self.management_v2 + self.v2
    }
}

#[derive(Debug, Default)]
struct Counters {
    management_v2: AtomicU64,
    v2: AtomicU64,
    unknown: AtomicU64,
    unauthorized: AtomicU64,
    not_found: AtomicU64,
    bad_requests: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    malformed_pages: AtomicU64,
    short_pages: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> RelutionRequestCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RelutionRequestCounts {
            management_v2: load(&self.management_v2),
            v2: load(&self.v2),
            unknown: load(&self.unknown),
            unauthorized: load(&self.unauthorized),
            not_found: load(&self.not_found),
            bad_requests: load(&self.bad_requests),
            rate_limited: load(&self.rate_limited),
            server_errors: load(&self.server_errors),
            malformed_pages: load(&self.malformed_pages),
            short_pages: load(&self.short_pages),
        }
    }
}

/// The devices present in one epoch, in uuid order (which is fleet index order).
struct Listing {
    snapshot: FleetSnapshot,
    present: Vec<u32>,
}

struct App {
    config: RelutionMockConfig,
    faults: Faults,
    paths: AtomicU8,
    counters: Counters,
    listings: PerEpoch<Arc<Listing>>,
}

impl App {
    fn listing(&self, epoch: u32) -> Arc<Listing> {
        self.listings.get(epoch, || {
            let snapshot = self.config.fleet.snapshot(epoch);
            let present = (0..self.config.fleet.len())
                .filter(|&index| snapshot.device(index).is_some())
                .filter_map(|index| u32::try_from(index).ok())
                .collect();
            Arc::new(Listing { snapshot, present })
        })
    }
}

/// What the next request meets instead of data, if anything. Unlike the Jamf Pro mock, whose
/// fault plan this is, a 5xx without a status asked for is always 503.
fn take_refusal(faults: &Faults) -> Option<Response> {
    let mut taken = None;
    faults.update(|plan| {
        taken = take_burst(&mut plan.rate_limit_next, &mut plan.server_errors_next)
            .map(|burst| (burst, plan.retry_after_secs, plan.server_error_status));
    });
    let (burst, retry_after_secs, status) = taken?;
    let response = match burst {
        Burst::RateLimit => with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "Injected fault"),
            retry_after_secs,
        ),
        Burst::ServerErrors => error(server_error_status(status), "Injected fault"),
    };
    Some(response)
}

/// A running fake Relution server. Dropping it stops the server.
pub struct RelutionMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for RelutionMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelutionMock")
            .field("base_url", &self.server.base_url())
            .field("fleet", &self.app.config.fleet)
            .finish()
    }
}

impl RelutionMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: RelutionMockConfig) -> Result<RelutionMock, MockError> {
        let listener = Listener::bind(config.bind, "Relution").await?;
        let app = Arc::new(App {
            faults: Faults::new(config.faults.clone()),
            paths: AtomicU8::new(config.paths.code()),
            counters: Counters::default(),
            listings: PerEpoch::new(),
            config,
        });
        app.listing(app.faults.epoch());
        let mut router = Router::new();
        for (route, management) in [(MANAGEMENT_V2_PATH, true), (V2_PATH, false)] {
            router = router.route(
                route,
                post(
                    move |State(app): State<Arc<App>>,
                          headers: HeaderMap,
                          Query(params): Query<HashMap<String, String>>,
                          body: Bytes| async move {
                        query(&app, management, &headers, &params, &body).await
                    },
                ),
            );
        }
        let server = listener.serve(router.fallback(unknown_path).with_state(app.clone()));
        Ok(RelutionMock { app, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The handle to switch faults and epochs while the server runs.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    pub fn config(&self) -> &RelutionMockConfig {
        &self.app.config
    }

    /// Switches which query paths answer, from the next request on.
    pub fn set_paths(&self, paths: PathStyles) {
        self.app.paths.store(paths.code(), Ordering::Relaxed);
    }

    /// The devices served right now (`nonpagedCount`).
    pub fn device_count(&self) -> usize {
        self.app.listing(self.app.faults.epoch()).present.len()
    }

    /// The devices served right now, in uuid order, generated one at a time.
    pub fn devices(&self) -> Vec<Device> {
        let listing = self.app.listing(self.app.faults.epoch());
        listing
            .present
            .iter()
            .filter_map(|&index| listing.snapshot.device(index as usize))
            .collect()
    }

    pub fn request_counts(&self) -> RelutionRequestCounts {
        self.app.counters.snapshot()
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.server.shutdown().await
    }
}

/// The uuid of fleet device `index`: upper-case like the documented example, and ordered like
/// the fleet, so that sorting by uuid is paging by index.
pub fn device_uuid(seed: u64, index: u32) -> String {
    let mix = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(index));
    format!(
        "{index:08X}-{:04X}-4{:03X}-8{:03X}-{:012X}",
        (mix >> 48) & 0xFFFF,
        (mix >> 36) & 0xFFF,
        (mix >> 24) & 0xFFF,
        mix & 0xFFFF_FFFF_FFFF
    )
}

/// Windows notebooks a Schulträger buys; Macs of the fleet are served as these.
const WINDOWS_MODELS: &[(&str, &str)] = &[
    ("LENOVO", "ThinkPad L13 Gen 4"),
    ("Dell Inc.", "Latitude 3440"),
    ("HP", "ProBook 440 G10"),
];
const WINDOWS_VERSIONS: &[&str] = &["10.0.19045", "10.0.22631", "10.0.26100"];

/// One device as Relution JSON.
pub fn render_device(fleet: &Fleet, organization: Option<&str>, device: &Device) -> Value {
    let index = device.index as usize;
    let user = device.user.as_ref();
    let (platform, manufacturer, model, os_version, name) = match device.family {
        Family::IPad => (
            "IOS",
            "Apple",
            device.model.name.to_string(),
            device.os_version.clone(),
            device.display_name.clone(),
        ),
        Family::MacBook | Family::IMac => {
            let (maker, model) = WINDOWS_MODELS[index % WINDOWS_MODELS.len()];
            (
                "WINDOWS",
                maker,
                model.to_string(),
                WINDOWS_VERSIONS[index % WINDOWS_VERSIONS.len()].to_string(),
                device
                    .display_name
                    .replace("-MB-", "-NB-")
                    .replace("-iMac-", "-NB-"),
            )
        }
    };
    json!({
        "uuid": device_uuid(fleet.seed(), device.index),
        "deviceId": device.management_id,
        "name": name,
        "platform": platform,
        "status": "COMPLIANT",
        "policyStatus": "APPLIED",
        "ownership": "CORPORATE",
        "serialNumber": device.serial_number,
        "model": model,
        "manufacturer": manufacturer,
        "osVersion": os_version,
        "wifiMacAddress": device.wifi_mac,
        "userUuid": user.map(|_| device_uuid(!fleet.seed(), device.index)),
        "userEmail": user.map(|user| user.email.clone()),
        "userName": user.map(|user| user.username.clone()),
        "organizationUuid": organization,
        "lastConnectionDate": 1_763_856_000_000u64 + u64::from(device.index) * 1000,
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "status": "ERROR", "message": message, "errors": [] });
    json_response(status, body.to_string())
}

/// `limit` and `offset` of a query body, after checking its sort order.
fn paging(body: &[u8]) -> Result<(usize, usize), String> {
    let body: Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON body: {error}"))?;
    let number = |key: &str, default: usize| match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .and_then(|value| usize::try_from(value).ok())
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    };
    let limit = number("limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT);
    let offset = number("offset", 0)?;
    if let Some(fields) = body
        .pointer("/sortOrder/sortFields")
        .and_then(Value::as_array)
    {
        for field in fields {
            let name = field.get("name").and_then(Value::as_str);
            let ascending = field.get("ascending").and_then(Value::as_bool);
            if name != Some("uuid") || ascending == Some(false) {
                return Err("the mock sorts by uuid ascending only".to_string());
            }
        }
    }
    Ok((limit, offset))
}

async fn query(
    app: &App,
    management: bool,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    bump(if management {
        &app.counters.management_v2
    } else {
        &app.counters.v2
    });
    pause(app.faults.plan().delay).await;
    if !PathStyles::from_code(app.paths.load(Ordering::Relaxed)).serves(management) {
        bump(&app.counters.not_found);
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    if let Some(refusal) = take_refusal(&app.faults) {
        if refusal.status() == StatusCode::TOO_MANY_REQUESTS {
            bump(&app.counters.rate_limited);
        } else {
            bump(&app.counters.server_errors);
        }
        return refusal;
    }
    let token = headers
        .get("x-user-access-token")
        .and_then(|value| value.to_str().ok());
    if token != Some(app.config.token.as_str()) {
        bump(&app.counters.unauthorized);
        return error(StatusCode::UNAUTHORIZED, "access token invalid");
    }
    if let Some(organization) = &app.config.organization {
        if params.get("tenantOrganizationUuid") != Some(organization) {
            // One client reads a 404 here as "organisation UUID invalid"
            // (docs/vendors/relution.md#failures).
            bump(&app.counters.not_found);
            return error(StatusCode::NOT_FOUND, "organization not found");
        }
    }
    let (limit, offset) = match paging(body) {
        Ok(paging) => paging,
        Err(message) => {
            bump(&app.counters.bad_requests);
            return error(StatusCode::BAD_REQUEST, &message);
        }
    };
    // Relution has one device list; the plan's mobile-device page faults stand for it.
    let (malformed, missing) = match app
        .faults
        .take_page_outcome(DeviceKind::Mobile, offset / limit)
    {
        PageOutcome::Intact => (false, 0),
        PageOutcome::Malformed => (true, 0),
        PageOutcome::Short(missing) => (false, missing as usize),
    };
    let listing = app.listing(app.faults.epoch());
    let start = offset.min(listing.present.len());
    let end = start.saturating_add(limit).min(listing.present.len());
    let served = end.saturating_sub(missing).max(start);
    let organization = app.config.organization.as_deref();
    let results: Vec<Value> = listing.present[start..served]
        .iter()
        .filter_map(|&index| listing.snapshot.device(index as usize))
        .map(|device| render_device(&app.config.fleet, organization, &device))
        .collect();
    let body = json!({ "results": results, "nonpagedCount": listing.present.len() }).to_string();
    if missing > 0 {
        bump(&app.counters.short_pages);
    }
    if malformed {
        bump(&app.counters.malformed_pages);
        // As if a proxy cut the body off: status 200, JSON ending mid-record.
        let cut = body.len() * 2 / 3;
        return json_response(StatusCode::OK, body.into_bytes()[..cut].to_vec());
    }
    json_response(StatusCode::OK, body)
}

async fn unknown_path(State(app): State<Arc<App>>) -> Response {
    bump(&app.counters.unknown);
    error(StatusCode::NOT_FOUND, "No such resource in the mock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_sort_like_the_fleet_and_devices_render_both_platforms() {
        let mut uuids: Vec<String> = (0..300).map(|index| device_uuid(7, index)).collect();
        let sorted = uuids.clone();
        uuids.sort();
        assert_eq!(uuids, sorted);
        assert_eq!(device_uuid(7, 1).len(), 36);
        let fleet = Fleet::new(7, 200);
        let platforms: std::collections::HashSet<String> = (0..200)
            .filter_map(|index| fleet.device(index))
            .map(|device| render_device(&fleet, None, &device)["platform"].to_string())
            .collect();
        assert_eq!(platforms.len(), 2, "{platforms:?}");
    }

    #[test]
    fn paging_reads_limit_offset_and_rejects_other_sorts() {
        assert_eq!(paging(b"{}"), Ok((DEFAULT_LIMIT, 0)));
        assert_eq!(
            paging(br#"{"limit": 5000, "offset": 10}"#),
            Ok((MAX_LIMIT, 10))
        );
        assert!(paging(br#"{"limit": -1}"#).is_err());
        let sorted = br#"{"sortOrder": {"sortFields": [{"name": "uuid", "ascending": true}]}}"#;
        assert!(paging(sorted).is_ok());
        let other = br#"{"sortOrder": {"sortFields": [{"name": "name", "ascending": true}]}}"#;
        assert!(paging(other).is_err());
    }
}
