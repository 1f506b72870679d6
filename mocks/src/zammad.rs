//! A fake Zammad (the service desk of issue 18): tickets generated on the fly from their index
//! (deterministic per seed, so 500,000 tickets cost no memory), served over the ticket listing,
//! the search sorted by `updated_at`, states, links, tags, history and articles, with token auth and the
//! faults of the Jamf Pro mock, so the Zammad connector is checked from the outside.
//!
//! ```ignore
//! let mock = ZammadMock::start(ZammadMockConfig::new(42, 500)).await?;
//! mock.faults().rate_limit_next(2, 1);                   // next 2 data requests: 429
//! mock.faults().set_malformed_page(Some(PageFault::mobile(3)));    // listing page 4 cut off
//! mock.faults().set_malformed_page(Some(PageFault::computers(0))); // first search page cut off
//! mock.touch(1000);                                       // 1,000 tickets updated (closed) now
//! ```
//!
//! Tickets refer to the devices of the [`Fleet`] of the same seed, so they can be linked: about
//! 40 % carry the device's asset tag in the custom attribute `inventarnummer`, 15 % its serial
//! in the title, 10 % its asset tag in the title, the rest name no device. The organization is
//! the device's school, groups include providers (`Dienstleister::...`), 5 % are merged into the
//! ticket before them, and one state is an authority's own (`wartet auf Dienstleister`, of
//! state type `pending action`). Every ticket names its customer by a made-up e-mail address,
//! as Zammad does, so tests can check that it is never kept. What is imitated is written down
//! in docs/vendors/zammad.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::error::MockError;
use crate::generator::{DeviceKind, Fleet};
use crate::jamf_pro::{FaultPlan, Faults, PageOutcome};
use crate::plumbing::{
    json_response, lock, pause, server_error_status, take_burst, with_retry_after, Burst, Listener,
    Server,
};

/// The access token the mock accepts unless configured otherwise.
pub const DEFAULT_TOKEN: &str = "bestand-zammad-mock-token";
/// `GET /api/v1/tickets` caps `per_page` here and defaults to it (docs/vendors/zammad.md#paging).
pub const LIST_MAX_PER_PAGE: usize = 100;
/// The search caps `per_page` at 200 and defaults to 50.
pub const SEARCH_MAX_PER_PAGE: usize = 200;
pub const SEARCH_DEFAULT_PER_PAGE: usize = 50;
/// `POST` here with `?count=N` updates N tickets, as [`ZammadMock::touch`] does, for a
/// benchmark that runs the mock as its own process. Not Zammad's: no token needed.
pub const TOUCH_PATH: &str = "/_mock/touch";
/// The custom ticket attribute the generated tickets carry asset tags in.
pub const ASSET_ATTRIBUTE: &str = "inventarnummer";
/// Ticket `n` (1-based id) was created `n - 1` minutes after this instant, unless the
/// configuration says otherwise (`first_created`, `minutes_between`).
pub const FIRST_CREATED: &str = "2025-08-01T06:00:00Z";
/// Every ticket was last updated this long after it was created (until `touch`).
const UPDATED_AFTER_DAYS: i64 = 5;

const GROUPS: &[&str] = &[
    "Service Desk",
    "Service Desk::Netzwerk",
    "Schulserver",
    "Endgeräte",
    "Dienstleister::Muster IT GmbH",
    "Dienstleister::Schul-IT Nord",
];
const PRIORITIES: &[&str] = &["1 low", "2 normal", "2 normal", "2 normal", "3 high"];
const TOPICS: &[(&str, &str)] = &[
    ("iPad lädt nicht", "akku"),
    ("Display gesprungen", "bruch"),
    ("WLAN bricht ab", "wlan"),
    ("Anmeldung nicht möglich", "login"),
    ("Drucker druckt nicht", "drucker"),
    ("App fehlt", "software"),
];
const FIRST_NAMES: &[&str] = &[
    "lena", "jonas", "mia", "paul", "emma", "ben", "sofia", "elias",
];
const LAST_NAMES: &[&str] = &["schmidt", "mueller", "yilmaz", "nowak", "weber", "fischer"];
const OWNERS: &[&str] = &[
    "agent1@servicedesk.musterstadt.de",
    "agent2@servicedesk.musterstadt.de",
    "techniker@muster-it.de",
    "support@schul-it-nord.de",
];
/// The states and their types, as `GET /api/v1/ticket_states?expand=true` lists them; the last
/// is an authority's own.
const STATES: &[(u64, &str, &str)] = &[
    (1, "new", "new"),
    (2, "open", "open"),
    (3, "pending reminder", "pending reminder"),
    (4, "closed", "closed"),
    (5, "merged", "merged"),
    (7, "pending close", "pending action"),
    (8, "wartet auf Dienstleister", "pending action"),
];

/// How to start a [`ZammadMock`].
#[derive(Debug, Clone)]
pub struct ZammadMockConfig {
    pub seed: u64,
    pub tickets: usize,
    /// The devices the tickets refer to: the fleet of the same seed.
    pub fleet: Fleet,
    /// Faults active from the first request on. `token_max_requests` makes the token answer
    /// 401 after that many data requests; `malformed_page` and `short_page` with
    /// `PageFault::mobile(k)` spoil listing page `k + 1`, with `PageFault::computers(k)` search
    /// page `k + 1`.
    pub faults: FaultPlan,
    /// `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    pub token: String,
    /// When the first ticket was created (`FIRST_CREATED`), and the minutes between one ticket
    /// and the next (1): the demo spreads its tickets over the quarters before today.
    pub first_created: DateTime<Utc>,
    pub minutes_between: u32,
}

impl ZammadMockConfig {
    /// A healthy server on a free local port with `tickets` tickets about a fleet of 1,000.
    pub fn new(seed: u64, tickets: usize) -> ZammadMockConfig {
        ZammadMockConfig {
            seed,
            tickets,
            fleet: Fleet::new(seed, 1000),
            faults: FaultPlan::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: DEFAULT_TOKEN.to_string(),
            first_created: DateTime::parse_from_rfc3339(FIRST_CREATED)
                .map(|at| at.with_timezone(&Utc))
                .unwrap_or_default(),
            minutes_between: 1,
        }
    }
}

/// Requests so far, by endpoint, and the answers that were no data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZammadRequestCounts {
    pub listing: u64,
    pub search: u64,
    pub states: u64,
    pub links: u64,
    pub tags: u64,
    pub history: u64,
    pub articles: u64,
    pub writes: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub malformed_pages: u64,
    pub short_pages: u64,
    pub bad_requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    listing: AtomicU64,
    search: AtomicU64,
    states: AtomicU64,
    links: AtomicU64,
    tags: AtomicU64,
    history: AtomicU64,
    articles: AtomicU64,
    writes: AtomicU64,
    unauthorized: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    malformed_pages: AtomicU64,
    short_pages: AtomicU64,
    bad_requests: AtomicU64,
    /// Authorized data requests, for `token_max_requests`.
    authorized: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> ZammadRequestCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ZammadRequestCounts {
            listing: load(&self.listing),
            search: load(&self.search),
            states: load(&self.states),
            links: load(&self.links),
            tags: load(&self.tags),
            history: load(&self.history),
            articles: load(&self.articles),
            writes: load(&self.writes),
            unauthorized: load(&self.unauthorized),
            rate_limited: load(&self.rate_limited),
            server_errors: load(&self.server_errors),
            malformed_pages: load(&self.malformed_pages),
            short_pages: load(&self.short_pages),
            bad_requests: load(&self.bad_requests),
        }
    }
}

/// A small, fast hash of seed and index: what a ticket looks like depends on nothing else.
fn mix(seed: u64, index: u64, salt: u64) -> u64 {
    let mut x =
        seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(list: &[&'a str], hash: u64) -> &'a str {
    list[(hash % list.len() as u64) as usize]
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What changed after generation: tickets `touch`ed, notes and attributes written.
#[derive(Debug, Default)]
struct Changes {
    /// Index → sequence number of its update; later updates have higher numbers.
    touched: HashMap<u32, u64>,
    next_touch: u64,
    /// Ticket indexes in `updated_at` order, rebuilt after every `touch`.
    order: Arc<Vec<u32>>,
    notes: HashMap<u64, Vec<Value>>,
    attributes: HashMap<u64, Map<String, Value>>,
}

struct App {
    config: ZammadMockConfig,
    faults: Faults,
    counters: Counters,
    changes: Mutex<Changes>,
    first_created: DateTime<Utc>,
}

impl App {
    fn created(&self, index: u32) -> DateTime<Utc> {
        self.first_created
            + Duration::minutes(i64::from(index) * i64::from(self.config.minutes_between.max(1)))
    }

    /// When touched tickets were updated: after every generated update.
    fn touch_time(&self, sequence: u64) -> DateTime<Utc> {
        let last = self.created(self.config.tickets.saturating_sub(1) as u32)
            + Duration::days(UPDATED_AFTER_DAYS);
        last + Duration::minutes(1) + Duration::seconds(sequence as i64)
    }

    fn updated(&self, index: u32, touched: Option<u64>) -> DateTime<Utc> {
        match touched {
            Some(sequence) => self.touch_time(sequence),
            None => self.created(index) + Duration::days(UPDATED_AFTER_DAYS),
        }
    }

    /// Ticket `index` as `expand=true` renders it (`expand = false`: ids only, no names).
    fn render(&self, index: u32, touched: Option<u64>, expand: bool) -> Value {
        let seed = self.config.seed;
        let id = u64::from(index) + 1;
        let h = |salt| mix(seed, u64::from(index), salt);
        let created = self.created(index);
        let merged = index % 20 == 19;
        let state = if merged {
            "merged"
        } else if touched.is_some() {
            "closed"
        } else if index % 50 == 7 {
            "wartet auf Dienstleister"
        } else {
            match h(1) % 20 {
                0 | 1 => "new",
                2..=5 => "open",
                6 => "pending reminder",
                7 => "pending close",
                _ => "closed",
            }
        };
        let state_id = STATES
            .iter()
            .find(|(_, name, _)| *name == state)
            .map_or(1, |(id, _, _)| *id);
        let fleet = &self.config.fleet;
        let device = (!fleet.is_empty())
            .then(|| fleet.device((h(2) % fleet.len() as u64) as usize))
            .flatten();
        let (topic, _) = TOPICS[(h(3) % TOPICS.len() as u64) as usize];
        let reference = h(4) % 100;
        let mut title = topic.to_string();
        let mut inventarnummer = Value::Null;
        if let Some(device) = &device {
            let tag_text = device.asset_tag.clone();
            match reference {
                0..=39 => inventarnummer = tag_text.map_or(Value::Null, Value::String),
                40..=54 => title = format!("{topic} (SN {})", device.serial_number),
                55..=64 => {
                    if let Some(asset_tag) = tag_text {
                        title = format!("{topic} – Inventar-Nr. {asset_tag}");
                    }
                }
                _ => {}
            }
        }
        let organization = device.as_ref().map(|device| device.school.name.to_string());
        let first_response =
            (state != "new").then(|| created + Duration::minutes(5 + (h(5) % 600) as i64));
        let close = matches!(state, "closed" | "merged").then(|| match touched {
            Some(sequence) => self.touch_time(sequence) - Duration::seconds(1),
            None => created + Duration::minutes(30 + (h(6) % (4 * 24 * 60 - 60)) as i64),
        });
        let priority = pick(PRIORITIES, h(7));
        let group = pick(GROUPS, h(8));
        let owner = if state == "new" {
            "-"
        } else {
            pick(OWNERS, h(9))
        };
        let customer = format!(
            "{}.{}{}@schule.musterstadt.de",
            pick(FIRST_NAMES, h(10)),
            pick(LAST_NAMES, h(11)),
            h(12) % 100
        );
        let escalation_hours = if priority == "3 high" { 24 } else { 72 };
        let mut ticket = json!({
            "id": id,
            "group_id": (h(8) % GROUPS.len() as u64) + 1,
            "priority_id": (h(7) % 3) + 1,
            "state_id": state_id,
            "organization_id": device.as_ref().map(|device| device.school.site_id),
            "number": format!("{}", 31000 + id),
            "title": title,
            "owner_id": if owner == "-" { 1 } else { (h(9) % 4) + 2 },
            "customer_id": 100 + (h(12) % 5000),
            "note": null,
            "first_response_at": first_response.map(stamp),
            "first_response_escalation_at": (state == "new").then(|| stamp(created + Duration::hours(4))),
            "close_at": close.map(stamp),
            "close_escalation_at": (!matches!(state, "closed" | "merged"))
                .then(|| stamp(created + Duration::hours(escalation_hours))),
            "escalation_at": null,
            "pending_time": null,
            "article_count": 2,
            "created_at": stamp(created),
            "updated_at": stamp(self.updated(index, touched)),
            ASSET_ATTRIBUTE: inventarnummer,
            "article_ids": [id * 2 - 1, id * 2],
        });
        if let Some(attributes) = lock(&self.changes).attributes.get(&id) {
            for (key, value) in attributes {
                ticket[key.as_str()] = value.clone();
            }
        }
        if expand {
            let extra = json!({
                "group": group,
                "organization": organization,
                "state": state,
                "priority": priority,
                "owner": owner,
                "customer": customer,
                "created_by": customer,
                "updated_by": if owner == "-" { customer.clone() } else { owner.to_string() },
                "create_article_type": "email",
                "create_article_sender": "Customer",
            });
            if let (Some(ticket), Some(extra)) = (ticket.as_object_mut(), extra.as_object()) {
                ticket.extend(extra.clone());
            }
        }
        ticket
    }

    fn tags(&self, index: u32) -> Vec<&'static str> {
        let h = |salt| mix(self.config.seed, u64::from(index), salt);
        let (_, tag) = TOPICS[(h(3) % TOPICS.len() as u64) as usize];
        let mut tags = vec![tag];
        if h(13) % 4 == 0 {
            tags.push("vor-ort");
        }
        tags
    }

    /// Ticket `index`'s history as `GET /api/v1/ticket_history/{id}` answers it: its creation,
    /// and for three in four tickets of a provider's group the move from the service desk into
    /// that group, 15 minutes to 10 hours after creation.
    fn history(&self, index: u32) -> Value {
        let h = |salt| mix(self.config.seed, u64::from(index), salt);
        let id = u64::from(index) + 1;
        let created = self.created(index);
        let mut history = vec![json!({
            "id": id * 10, "o_id": id, "object": "Ticket", "type": "created",
            "created_at": stamp(created), "created_by_id": 3,
        })];
        let group = pick(GROUPS, h(8));
        if group.starts_with("Dienstleister::") && h(14) % 4 != 0 {
            let moved = created + Duration::minutes(15 + (h(14) % 585) as i64);
            history.push(json!({
                "id": id * 10 + 1, "o_id": id, "object": "Ticket", "type": "updated",
                "attribute": "group", "value_from": GROUPS[0], "value_to": group,
                "id_from": 1, "id_to": (h(8) % GROUPS.len() as u64) + 1,
                "created_at": stamp(moved), "created_by_id": 4,
            }));
        }
        json!({ "history": history, "assets": {} })
    }

    fn touch(&self, count: usize) -> Vec<u64> {
        let tickets = self.config.tickets;
        let mut changes = lock(&self.changes);
        let untouched: Vec<u32> = (0..tickets as u32)
            .filter(|index| !changes.touched.contains_key(index))
            .collect();
        let step = (untouched.len() / count.max(1)).max(1);
        let chosen: Vec<u32> = untouched
            .iter()
            .step_by(step)
            .take(count)
            .copied()
            .collect();
        for &index in &chosen {
            let sequence = changes.next_touch;
            changes.next_touch += 1;
            changes.touched.insert(index, sequence);
        }
        changes.order = Arc::new(build_order(tickets, &changes.touched));
        chosen
            .into_iter()
            .map(|index| u64::from(index) + 1)
            .collect()
    }

    fn order(&self) -> (Arc<Vec<u32>>, HashMap<u32, u64>) {
        let changes = lock(&self.changes);
        (Arc::clone(&changes.order), changes.touched.clone())
    }
}

/// Indexes in `updated_at` order: untouched tickets by index (their update times grow with
/// it), then touched ones by when they were touched.
fn build_order(tickets: usize, touched: &HashMap<u32, u64>) -> Vec<u32> {
    let mut late: Vec<(u64, u32)> = touched.iter().map(|(&index, &seq)| (seq, index)).collect();
    late.sort_unstable();
    let mut order: Vec<u32> = (0..tickets as u32)
        .filter(|index| !touched.contains_key(index))
        .collect();
    order.extend(late.into_iter().map(|(_, index)| index));
    order
}

/// A running fake Zammad. Dropping it stops the server.
pub struct ZammadMock {
    app: Arc<App>,
    server: Server,
}

impl std::fmt::Debug for ZammadMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZammadMock")
            .field("base_url", &self.server.base_url())
            .field("tickets", &self.app.config.tickets)
            .finish()
    }
}

impl ZammadMock {
    /// Binds `config.bind` and serves in a background task of the current Tokio runtime.
    pub async fn start(config: ZammadMockConfig) -> Result<ZammadMock, MockError> {
        let listener = Listener::bind(config.bind, "Zammad").await?;
        let first_created = config.first_created;
        let changes = Changes {
            order: Arc::new(build_order(config.tickets, &HashMap::new())),
            ..Changes::default()
        };
        let app = Arc::new(App {
            faults: Faults::new(config.faults.clone()),
            counters: Counters::default(),
            changes: Mutex::new(changes),
            first_created,
            config,
        });
        let router = Router::new()
            .route("/api/v1/tickets", get(listing))
            .route("/api/v1/tickets/search", get(search))
            .route("/api/v1/tickets/{id}", get(show).put(update))
            .route("/api/v1/ticket_states", get(states))
            .route("/api/v1/links", get(links))
            .route("/api/v1/tags", get(tags))
            .route("/api/v1/ticket_history/{id}", get(history))
            .route("/api/v1/ticket_articles/by_ticket/{id}", get(articles))
            .route("/api/v1/ticket_articles", post(create_article))
            .route(TOUCH_PATH, post(touch))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "No route matches") })
            .with_state(app.clone());
        let server = listener.serve(router);
        Ok(ZammadMock { app, server })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    pub fn config(&self) -> &ZammadMockConfig {
        &self.app.config
    }

    /// The handle to switch faults while the server runs.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    pub fn request_counts(&self) -> ZammadRequestCounts {
        self.app.counters.snapshot()
    }

    /// Ticket `id` (1-based) as the listing renders it with `expand=true`.
    pub fn ticket(&self, id: u64) -> Option<Value> {
        let index = u32::try_from(id.checked_sub(1)?).ok()?;
        ((index as usize) < self.app.config.tickets).then(|| {
            let touched = lock(&self.app.changes).touched.get(&index).copied();
            self.app.render(index, touched, true)
        })
    }

    /// Updates `count` tickets now (spread evenly, ones not touched before first): each is
    /// closed and its `updated_at` moves past every other ticket's. Returns their ids.
    pub fn touch(&self, count: usize) -> Vec<u64> {
        self.app.touch(count)
    }

    /// The `updated_at` of the latest update, for a watermark.
    pub fn latest_update(&self) -> DateTime<Utc> {
        let (order, touched) = self.app.order();
        order.last().map_or(self.app.first_created, |&index| {
            self.app.updated(index, touched.get(&index).copied())
        })
    }

    /// The internal notes posted to ticket `id` through the API.
    pub fn notes(&self, id: u64) -> Vec<Value> {
        lock(&self.app.changes)
            .notes
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.server.shutdown().await
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        json!({ "error": message, "error_human": message }).to_string(),
    )
}

/// The staged slowness, bursts and token refusals every data request meets first.
async fn gate(app: &App, headers: &HeaderMap) -> Option<Response> {
    pause(app.faults.plan().delay).await;
    let mut taken = None;
    app.faults.update(|plan| {
        taken = take_burst(&mut plan.rate_limit_next, &mut plan.server_errors_next)
            .map(|burst| (burst, plan.retry_after_secs, plan.server_error_status));
    });
    if let Some((burst, retry_after_secs, status)) = taken {
        return Some(match burst {
            Burst::RateLimit => {
                bump(&app.counters.rate_limited);
                with_retry_after(
                    error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
                    retry_after_secs,
                )
            }
            Burst::ServerErrors => {
                bump(&app.counters.server_errors);
                error(server_error_status(status), "Injected fault")
            }
        });
    }
    let expected = format!("Token token={}", app.config.token);
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let worn_out = app
        .faults
        .plan()
        .token_max_requests
        .is_some_and(|max| app.counters.authorized.load(Ordering::Relaxed) >= u64::from(max));
    if given != Some(expected.as_str()) || worn_out {
        bump(&app.counters.unauthorized);
        return Some(error(StatusCode::UNAUTHORIZED, "Authentication failed"));
    }
    bump(&app.counters.authorized);
    None
}

fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    params
        .get(key)
        .is_some_and(|value| matches!(value.as_str(), "true" | "1"))
}

fn paging(
    params: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<(usize, usize), String> {
    let number = |key: &str, fallback: usize| match params.get(key) {
        None => Ok(fallback),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| format!("{key} must be a number")),
    };
    let per_page = number("per_page", default)?.clamp(1, max);
    let page = number("page", 1)?.max(1);
    Ok((page, per_page))
}

/// The page's body after the staged page faults: short pages lose their last tickets,
/// malformed pages are cut off mid-JSON (as if a proxy dropped the connection).
fn page_body(
    app: &App,
    kind: DeviceKind,
    page: usize,
    mut tickets: Vec<Value>,
    wrap: impl FnOnce(Vec<Value>) -> Value,
) -> Response {
    let outcome = app.faults.take_page_outcome(kind, page - 1);
    if let PageOutcome::Short(missing) = outcome {
        bump(&app.counters.short_pages);
        let keep = tickets.len().saturating_sub(missing as usize);
        tickets.truncate(keep);
    }
    let body = wrap(tickets).to_string();
    if outcome == PageOutcome::Malformed {
        bump(&app.counters.malformed_pages);
        let cut = body.len() * 2 / 3;
        return json_response(StatusCode::OK, body.into_bytes()[..cut].to_vec());
    }
    json_response(StatusCode::OK, body)
}

async fn listing(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    bump(&app.counters.listing);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let (page, per_page) = match paging(&params, LIST_MAX_PER_PAGE, LIST_MAX_PER_PAGE) {
        Ok(paging) => paging,
        Err(message) => return bad_request(&app, &message),
    };
    let expand = flag(&params, "expand");
    let start = (page - 1).saturating_mul(per_page).min(app.config.tickets);
    let end = start.saturating_add(per_page).min(app.config.tickets);
    let touched = lock(&app.changes).touched.clone();
    let tickets = (start..end)
        .map(|index| {
            let index = index as u32;
            app.render(index, touched.get(&index).copied(), expand)
        })
        .collect();
    page_body(&app, DeviceKind::Mobile, page, tickets, Value::Array)
}

fn bad_request(app: &App, message: &str) -> Response {
    bump(&app.counters.bad_requests);
    error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// The instant of `updated_at:>=TIME` (colons may be escaped), the one query the mock knows.
fn since(query: &str) -> Option<DateTime<Utc>> {
    let time = query
        .trim()
        .strip_prefix("updated_at:>=")?
        .replace("\\:", ":");
    DateTime::parse_from_rfc3339(time.trim_matches('"'))
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

async fn search(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    bump(&app.counters.search);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let (page, per_page) = match paging(&params, SEARCH_DEFAULT_PER_PAGE, SEARCH_MAX_PER_PAGE) {
        Ok(paging) => paging,
        Err(message) => return bad_request(&app, &message),
    };
    if params.get("sort_by").map(String::as_str) != Some("updated_at")
        || params.get("order_by").map(String::as_str) != Some("asc")
    {
        return bad_request(&app, "the mock sorts by updated_at asc only");
    }
    let Some(since) = params.get("query").and_then(|query| since(query)) else {
        return bad_request(
            &app,
            "the mock understands only the query updated_at:>=TIME",
        );
    };
    let (order, touched) = app.order();
    let updated = |index: u32| app.updated(index, touched.get(&index).copied());
    let first = order.partition_point(|&index| updated(index) < since);
    let matching = order.len() - first;
    let start = first
        .saturating_add((page - 1).saturating_mul(per_page))
        .min(order.len());
    let end = start.saturating_add(per_page).min(order.len());
    let expand = flag(&params, "expand");
    let tickets: Vec<Value> = order[start..end]
        .iter()
        .map(|&index| app.render(index, touched.get(&index).copied(), expand))
        .collect();
    let with_total = flag(&params, "with_total_count");
    page_body(&app, DeviceKind::Computer, page, tickets, |tickets| {
        if !expand {
            let ids: Vec<Value> = tickets.iter().map(|ticket| ticket["id"].clone()).collect();
            let assets: Map<String, Value> = tickets
                .into_iter()
                .map(|ticket| (ticket["id"].to_string(), ticket))
                .collect();
            json!({ "tickets": ids, "tickets_count": matching, "assets": { "Ticket": assets } })
        } else if with_total {
            json!({ "records": tickets, "total_count": matching })
        } else {
            Value::Array(tickets)
        }
    })
}

async fn touch(
    State(app): State<Arc<App>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(count) = params
        .get("count")
        .and_then(|count| count.parse::<usize>().ok())
    else {
        return bad_request(&app, "count=N is required");
    };
    let touched = app.touch(count).len();
    json_response(StatusCode::OK, json!({ "touched": touched }).to_string())
}

fn known(app: &App, id: &str) -> Option<u32> {
    let id: u64 = id.trim().parse().ok()?;
    let index = u32::try_from(id.checked_sub(1)?).ok()?;
    ((index as usize) < app.config.tickets).then_some(index)
}

async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let Some(index) = known(&app, &id) else {
        return error(StatusCode::NOT_FOUND, "Couldn't find Ticket");
    };
    let touched = lock(&app.changes).touched.get(&index).copied();
    json_response(
        StatusCode::OK,
        app.render(index, touched, flag(&params, "expand"))
            .to_string(),
    )
}

async fn update(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    bump(&app.counters.writes);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let Some(index) = known(&app, &id) else {
        return error(StatusCode::NOT_FOUND, "Couldn't find Ticket");
    };
    let Some(fields) = body.as_object() else {
        return bad_request(&app, "the body must be an object");
    };
    lock(&app.changes)
        .attributes
        .entry(u64::from(index) + 1)
        .or_default()
        .extend(fields.clone());
    let touched = lock(&app.changes).touched.get(&index).copied();
    json_response(
        StatusCode::OK,
        app.render(index, touched, false).to_string(),
    )
}

async fn states(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    bump(&app.counters.states);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let states: Vec<Value> = STATES
        .iter()
        .map(|(id, name, state_type)| json!({ "id": id, "name": name, "state_type": state_type, "active": true }))
        .collect();
    json_response(StatusCode::OK, Value::Array(states).to_string())
}

async fn links(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    bump(&app.counters.links);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let index = params
        .get("link_object_value")
        .and_then(|id| known(&app, id));
    if params.get("link_object").map(String::as_str) != Some("Ticket") || index.is_none() {
        return bad_request(&app, "link_object=Ticket and a ticket id are required");
    }
    let index = index.unwrap_or_default();
    // A merged ticket is the target of a `parent` link from the ticket it was merged into
    // (docs/vendors/zammad.md#merges); listed from its side, the link type stays `parent`.
    let links: Vec<Value> = if index % 20 == 19 {
        vec![json!({ "link_type": "parent", "link_object": "Ticket", "link_object_value": index })]
    } else {
        Vec::new()
    };
    json_response(
        StatusCode::OK,
        json!({ "links": links, "assets": {} }).to_string(),
    )
}

async fn tags(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    bump(&app.counters.tags);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let index = params.get("o_id").and_then(|id| known(&app, id));
    match (params.get("object").map(String::as_str), index) {
        (Some("Ticket"), Some(index)) => json_response(
            StatusCode::OK,
            json!({ "tags": app.tags(index) }).to_string(),
        ),
        _ => bad_request(&app, "object=Ticket and a ticket id are required"),
    }
}

async fn history(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    bump(&app.counters.history);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    match known(&app, &id) {
        Some(index) => json_response(StatusCode::OK, app.history(index).to_string()),
        None => error(StatusCode::NOT_FOUND, "Couldn't find Ticket"),
    }
}

async fn articles(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    bump(&app.counters.articles);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let Some(index) = known(&app, &id) else {
        return error(StatusCode::NOT_FOUND, "Couldn't find Ticket");
    };
    let id = u64::from(index) + 1;
    let mut list = vec![json!({
        "id": id * 2 - 1, "ticket_id": id, "type": "email", "sender": "Customer",
        "internal": false, "body": "Hallo, das Gerät geht nicht mehr. Viele Grüße",
    })];
    list.extend(
        lock(&app.changes)
            .notes
            .get(&id)
            .cloned()
            .unwrap_or_default(),
    );
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

async fn create_article(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    bump(&app.counters.writes);
    if let Some(refusal) = gate(&app, &headers).await {
        return refusal;
    }
    let index = match &body["ticket_id"] {
        Value::Number(id) => known(&app, &id.to_string()),
        _ => None,
    };
    let Some(index) = index else {
        return bad_request(&app, "ticket_id must be the id of a ticket");
    };
    let id = u64::from(index) + 1;
    let mut changes = lock(&app.changes);
    let notes = changes.notes.entry(id).or_default();
    let mut article = body.clone();
    article["id"] = json!(1_000_000 + notes.len() as u64);
    notes.push(article.clone());
    json_response(StatusCode::CREATED, article.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_puts_touched_tickets_last_in_touch_order() {
        let touched = HashMap::from([(1, 1), (3, 0)]);
        assert_eq!(build_order(5, &touched), vec![0, 2, 4, 3, 1]);
    }

    #[test]
    fn the_query_reads_escaped_and_plain_times() {
        let expected = DateTime::parse_from_rfc3339("2026-03-02T08:00:00.5Z").unwrap();
        assert_eq!(
            since("updated_at:>=2026-03-02T08\\:00\\:00.500Z"),
            Some(expected.into())
        );
        assert_eq!(
            since("updated_at:>=2026-03-02T08:00:00.500Z"),
            Some(expected.into())
        );
        assert_eq!(since("title:drucker"), None);
    }
}
