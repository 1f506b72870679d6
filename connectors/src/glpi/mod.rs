//! The GLPI connector: reads tickets over GLPI's REST API v1 (`apirest.php`) together with the
//! assets GLPI itself links to them (`Item_Ticket`), so that the ticket engine gets each ticket
//! with the serials and inventory numbers of its computers, monitors, phones and printers.
//! What it relies on is written down, with sources, in docs/vendors/glpi.md.
//!
//! One read is one API session: `initSession` with the user token (and the App-Token, if the
//! API client has one), the lists with `range` paging checked against `Content-Range`, and
//! `killSession` at the end, also when the read failed.

mod config;
mod mapping;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use async_trait::async_trait;
use bestand_model::protocol::FetchFailure;
use bestand_model::ticket::{LinkedItem, TicketPage, TicketRead, TicketRecord};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use self::config::{GlpiConfig, GlpiConfigError, MAX_CONCURRENCY, MAX_PER_PAGE};
pub use self::mapping::{local_time, map_status};
use self::mapping::{map_asset, map_link, map_ticket, AssetFacts};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::{TicketConnector, TicketSink};

/// The header that carries the API client's App-Token (docs/vendors/glpi.md#authentication).
pub const APP_TOKEN_HEADER: &str = "App-Token";
/// The header that carries the session token of every call after `initSession`.
pub const SESSION_TOKEN_HEADER: &str = "Session-Token";
/// The asset types whose serial (`serial`) and inventory number (`otherserial`) are read for
/// the linked items (docs/vendors/glpi.md#linked-items).
pub const ASSET_TYPES: &[&str] = &[
    "Computer",
    "Monitor",
    "Phone",
    "Peripheral",
    "NetworkEquipment",
    "Printer",
];

/// Why a read stopped; becomes a `FetchFailure` naming the request.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(HttpError),
    #[error(
        "GLPI refused to open a session ({code}): check `user_token_env`/`user_token_file` (the \
         API user's token), `app_token_env`/`app_token_file` (the API client's App-Token) and \
         that the REST API and login with a token are enabled (Setup > General > API): {error}"
    )]
    Login { code: String, error: HttpError },
    #[error(
        "GLPI no longer accepts the session token (ERROR_SESSION_TOKEN_INVALID): the session \
         expired or was ended on the server; the next run opens a new one: {0}"
    )]
    Session(HttpError),
    #[error("the API user's profile lacks the right to read this list: {0}")]
    Right(HttpError),
    #[error("initSession answered without a `session_token`")]
    NoSessionToken,
    #[error(
        "{what} were deleted while they were read ({before} announced, then {now}); nothing of \
         this read is used, the next run reads again"
    )]
    Vanished {
        what: &'static str,
        before: u64,
        now: u64,
    },
    #[error(
        "{what} were deleted while they were read (GLPI has fewer than the {start} already \
         read); nothing of this read is used, the next run reads again"
    )]
    RangePastEnd { what: &'static str, start: u64 },
    #[error(
        "the page is short: rows {first}-{last} of {total} arrived, {expected} were asked for"
    )]
    ShortPage {
        first: u64,
        last: u64,
        total: u64,
        expected: u64,
    },
    #[error("{read} distinct tickets were read, GLPI announced {announced}")]
    Count { read: u64, announced: u64 },
    #[error("the page is malformed: {0}")]
    Malformed(String),
}

/// Turns an HTTP error into what it means for GLPI, read from the error code GLPI puts first in
/// its error body (`["ERROR_SESSION_TOKEN_INVALID", "…"]`).
fn classify(error: HttpError, login: bool) -> FetchError {
    let code = error_code(&error);
    if login
        && matches!(
            error.status(),
            Some(StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
        )
    {
        return FetchError::Login {
            code: code.unwrap_or_else(|| "no error code".to_string()),
            error,
        };
    }
    match code.as_deref() {
        Some("ERROR_SESSION_TOKEN_INVALID" | "ERROR_SESSION_TOKEN_MISSING") => {
            FetchError::Session(error)
        }
        Some("ERROR_RIGHT_MISSING") => FetchError::Right(error),
        _ if error.status() == Some(StatusCode::FORBIDDEN) => FetchError::Right(error),
        _ => FetchError::Http(error),
    }
}

/// The `ERROR_…` code at the start of a GLPI error body, if the excerpt shows one.
fn error_code(error: &HttpError) -> Option<String> {
    let HttpError::Status { excerpt, .. } = error else {
        return None;
    };
    let start = excerpt.find("ERROR_")?;
    let code: String = excerpt[start..]
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    Some(code)
}

fn failure(label: &str, error: FetchError) -> FetchFailure {
    FetchFailure {
        page: Some(label.to_string()),
        cause: error.to_string(),
    }
}

/// One page of a list and the range GLPI says it holds.
struct ListPage {
    rows: Vec<Value>,
    /// `Content-Range: first-last/total`; `None` when GLPI sent none (it sends none for an
    /// empty list).
    range: Option<(u64, u64, u64)>,
}

/// Reads `Content-Range: 0-499/1312`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.trim().split_once('/')?;
    let (first, last) = span.trim().split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// Walks one list by `range` and checks every page against what GLPI announced
/// (docs/vendors/glpi.md#paging).
struct Pager {
    what: &'static str,
    per_page: u64,
    index: u64,
    start: u64,
    total: Option<u64>,
}

impl Pager {
    fn new(what: &'static str, per_page: u64) -> Pager {
        Pager {
            what,
            per_page,
            index: 0,
            start: 0,
            total: None,
        }
    }

    fn range(&self) -> String {
        format!("{}-{}", self.start, self.start + self.per_page - 1)
    }

    fn label(&self) -> String {
        format!("{} page {}", self.what, self.index)
    }

    /// Checks `page` (the answer to `range()`) and moves on; `Ok(true)` while pages remain.
    fn accept(&mut self, page: &ListPage) -> Result<bool, FetchError> {
        let count = page.rows.len() as u64;
        let Some((first, last, total)) = page.range else {
            if count > 0 {
                return Err(FetchError::Malformed(format!(
                    "{count} rows without a Content-Range header"
                )));
            }
            return self.ended(0).map(|()| false);
        };
        if first != self.start {
            return Err(FetchError::Malformed(format!(
                "Content-Range starts at row {first}, row {} was asked for",
                self.start
            )));
        }
        if last < first || last - first + 1 != count {
            return Err(FetchError::Malformed(format!(
                "Content-Range {first}-{last}/{total} announces {} rows, the page has {count}",
                (last + 1).saturating_sub(first)
            )));
        }
        self.ended(total)?;
        let expected_last = (self.start + self.per_page - 1).min(total.saturating_sub(1));
        if last < expected_last {
            return Err(FetchError::ShortPage {
                first,
                last,
                total,
                expected: expected_last - self.start + 1,
            });
        }
        self.index += 1;
        self.start += self.per_page;
        Ok(self.start < total)
    }

    /// Records the total a page announced; a smaller one than before means rows vanished
    /// while paging, which may have moved an unread row onto a page already read.
    fn ended(&mut self, total: u64) -> Result<(), FetchError> {
        if let Some(before) = self.total.filter(|before| total < *before) {
            return Err(FetchError::Vanished {
                what: self.what,
                before,
                now: total,
            });
        }
        self.total = Some(total);
        Ok(())
    }
}

/// An open API session; its token is a secret like the others.
struct Session {
    token: SecretString,
}

/// Links of tickets: ticket id to its items (type, id).
type Links = HashMap<i64, Vec<(String, i64)>>;
/// Assets of the linked types: (type, id) to what the asset row says.
type Assets = HashMap<(String, i64), AssetFacts>;

/// The GLPI source. Build it with `Glpi::new`, run it with `spawn_ticket_fetch`.
pub struct Glpi {
    source_name: String,
    http: HttpClient,
    api: url::Url,
    zone: Tz,
    app_token: Option<SecretString>,
    user_token: SecretString,
    per_page: u64,
    max_concurrency: usize,
}

impl fmt::Debug for Glpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Glpi")
            .field("source_name", &self.source_name)
            .field("api", &display_url(&self.api))
            .field("zone", &self.zone)
            .field("app_token", &self.app_token.as_ref().map(|_| "[redacted]"))
            .field("user_token", &"[redacted]")
            .field("per_page", &self.per_page)
            .field("max_concurrency", &self.max_concurrency)
            .field("http", &self.http)
            .finish()
    }
}

impl Glpi {
    /// Checks the configuration and resolves the tokens. Makes no network request.
    pub fn new(
        config: GlpiConfig,
        source_name: impl Into<String>,
    ) -> Result<Glpi, GlpiConfigError> {
        let (api, zone) = config.validate()?;
        let user_token = resolve_secret(
            "user_token",
            config.user_token_env.as_deref(),
            config.user_token_file.as_deref(),
        )?;
        // The App-Token is optional in GLPI: an API client may be defined without one.
        let app_token = match (&config.app_token_env, &config.app_token_file) {
            (None, None) => None,
            (env, file) => Some(resolve_secret(
                "app_token",
                env.as_deref(),
                file.as_deref(),
            )?),
        };
        let settings = config.request_keys().http_settings();
        let http = HttpClient::new(&settings)?;
        http.redactor().add_fixed(&user_token);
        if let Some(token) = &app_token {
            http.redactor().add_fixed(token);
        }
        Ok(Glpi {
            source_name: source_name.into(),
            http,
            api,
            zone,
            app_token,
            user_token,
            per_page: u64::from(config.per_page),
            max_concurrency: settings.max_concurrency,
        })
    }

    fn endpoint(&self, path: &str) -> Result<url::Url, HttpError> {
        self.api
            .join(path)
            .map_err(|error| HttpError::Request(error.to_string()))
    }

    /// A GET of `path` with the App-Token and, once there is one, the session token.
    async fn get(
        &self,
        path: &str,
        session: Option<&Session>,
        query: &[(&str, String)],
        authorization: Option<String>,
    ) -> Result<crate::http::HttpResponse, HttpError> {
        let url = self.endpoint(path)?;
        self.http
            .send(|client| {
                let mut request = client
                    .get(url.clone())
                    .query(query)
                    .header(ACCEPT, "application/json")
                    .header(CONTENT_TYPE, "application/json");
                if let Some(token) = &self.app_token {
                    request = request.header(APP_TOKEN_HEADER, token.expose_secret());
                }
                if let Some(session) = session {
                    request = request.header(SESSION_TOKEN_HEADER, session.token.expose_secret());
                }
                if let Some(authorization) = &authorization {
                    request = request.header(AUTHORIZATION, authorization);
                }
                request
            })
            .await
    }

    async fn init_session(&self) -> Result<Session, FetchError> {
        let authorization = format!("user_token {}", self.user_token.expose_secret());
        let response = self
            .get("initSession", None, &[], Some(authorization))
            .await
            .map_err(|error| classify(error, true))?;
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|error| FetchError::Malformed(format!("invalid JSON ({error})")))?;
        let token = body
            .get("session_token")
            .and_then(Value::as_str)
            .filter(|token| !token.trim().is_empty())
            .ok_or(FetchError::NoSessionToken)?;
        let token = SecretString::from(token.to_string());
        self.http.redactor().add_rotating(&token);
        Ok(Session { token })
    }

    /// Ends the session; a failure only costs a session that GLPI expires by itself.
    async fn kill_session(&self, session: &Session) {
        if let Err(error) = self.get("killSession", Some(session), &[], None).await {
            tracing::warn!(source = %self.source_name, %error, "GLPI killSession failed");
        }
    }

    /// One page of the list at `path`.
    async fn list_page(
        &self,
        session: &Session,
        path: &str,
        pager: &Pager,
        query: &[(&str, String)],
    ) -> Result<ListPage, FetchError> {
        let mut query = query.to_vec();
        query.push(("range", pager.range()));
        let response = self
            .get(path, Some(session), &query, None)
            .await
            .map_err(|error| match error_code(&error).as_deref() {
                // GLPI answers 400 when `range` starts past the total: rows vanished.
                Some("ERROR_RANGE_EXCEED_TOTAL") => FetchError::RangePastEnd {
                    what: pager.what,
                    start: pager.start,
                },
                _ => classify(error, false),
            })?;
        let range = match response.headers.get(CONTENT_RANGE) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        FetchError::Malformed(format!("unreadable Content-Range {value:?}"))
                    })?,
            ),
        };
        let rows: Vec<Value> = serde_json::from_slice(&response.body).map_err(|error| {
            FetchError::Malformed(format!("not a JSON array of rows ({error})"))
        })?;
        Ok(ListPage { rows, range })
    }

    /// Every row of the list at `path`, page by page.
    async fn list_all(
        &self,
        session: &Session,
        path: &str,
        what: &'static str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, FetchFailure> {
        let mut pager = Pager::new(what, self.per_page);
        let mut rows = Vec::new();
        loop {
            let label = pager.label();
            let page = self
                .list_page(session, path, &pager, query)
                .await
                .map_err(|error| failure(&label, error))?;
            let more = pager
                .accept(&page)
                .map_err(|error| failure(&label, error))?;
            rows.extend(page.rows);
            if !more {
                return Ok(rows);
            }
        }
    }

    /// Every `Item_Ticket` row, by ticket.
    async fn all_links(&self, session: &Session) -> Result<Links, FetchFailure> {
        let rows = self
            .list_all(session, "Item_Ticket", "Item_Ticket", &plain_query())
            .await?;
        collect_links(rows, "Item_Ticket")
    }

    /// The links of each of `tickets`, one sub-item request per ticket (an incremental read
    /// is small; listing every link would cost more).
    async fn links_of(&self, session: &Session, tickets: &[i64]) -> Result<Links, FetchFailure> {
        let query = plain_query();
        let per_ticket: Vec<Links> = stream::iter(tickets.iter().copied())
            .map(|ticket| {
                let query = query.clone();
                async move {
                    let path = format!("Ticket/{ticket}/Item_Ticket");
                    let rows = self
                        .list_all(session, &path, "Item_Ticket", &query)
                        .await
                        .map_err(|failure| FetchFailure {
                            page: Some(format!("Item_Ticket of ticket {ticket}")),
                            ..failure
                        })?;
                    collect_links(rows, &format!("Item_Ticket of ticket {ticket}"))
                }
            })
            .buffered(self.max_concurrency)
            .try_collect()
            .await?;
        Ok(per_ticket.into_iter().flatten().collect())
    }

    /// The assets of the linked types, each type listed whole (few requests however many
    /// tickets link them).
    async fn assets(&self, session: &Session, links: &Links) -> Result<Assets, FetchFailure> {
        let kinds: BTreeSet<&str> = links
            .values()
            .flatten()
            .map(|(kind, _)| kind.as_str())
            .filter(|kind| ASSET_TYPES.contains(kind))
            .collect();
        let mut assets = Assets::new();
        for kind in kinds {
            let what = ASSET_TYPES
                .iter()
                .find(|known| **known == kind)
                .copied()
                .unwrap_or("assets");
            let rows = self.list_all(session, kind, what, &plain_query()).await?;
            for row in rows {
                let (id, facts) = map_asset(&row).map_err(|error| FetchFailure {
                    page: Some(format!("{kind} list")),
                    cause: format!("the page is malformed: {error}"),
                })?;
                assets.insert((kind.to_string(), id), facts);
            }
        }
        Ok(assets)
    }

    /// Maps one page of ticket rows.
    fn map_page(&self, label: &str, rows: &[Value]) -> Result<Vec<TicketRecord>, FetchFailure> {
        rows.iter()
            .map(|row| map_ticket(row, self.zone))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| failure(label, FetchError::Malformed(error.to_string())))
    }

    /// Every ticket, by id ascending: new tickets land behind the read, and a vanished one
    /// fails the read (`Pager::ended`), so a full read never misses a ticket it then reports as
    /// deleted.
    async fn read_all(&self, session: &Session, sink: &TicketSink) -> Result<u64, FetchFailure> {
        let links = self.all_links(session).await?;
        let assets = self.assets(session, &links).await?;
        let mut pager = Pager::new("tickets", self.per_page);
        let mut seen = HashSet::new();
        loop {
            let label = pager.label();
            let page = self
                .list_page(session, "Ticket", &pager, &ticket_query("id", "ASC"))
                .await
                .map_err(|error| failure(&label, error))?;
            let more = pager
                .accept(&page)
                .map_err(|error| failure(&label, error))?;
            let mut records = self.map_page(&label, &page.rows)?;
            records.retain(|record| seen.insert(record.external_id.clone()));
            for record in &mut records {
                attach(record, &links, &assets);
            }
            sink.send(TicketPage {
                label,
                records,
                announced_total: pager.total,
            })
            .await?;
            if !more {
                break;
            }
        }
        let announced = pager.total.unwrap_or(0);
        let read = seen.len() as u64;
        if read != announced {
            return Err(failure("tickets", FetchError::Count { read, announced }));
        }
        Ok(announced)
    }

    /// The tickets changed at or after `since`, newest first until the first older one: a
    /// ticket changed during the read moves to the front (already read) and pushes the rest
    /// back, so the read sees some twice but skips none (docs/vendors/glpi.md#incremental-reads).
    async fn read_changed(
        &self,
        session: &Session,
        since: DateTime<Utc>,
        sink: &TicketSink,
    ) -> Result<u64, FetchFailure> {
        let mut pager = Pager::new("changed tickets", self.per_page);
        let mut seen = HashSet::new();
        let mut changed = Vec::new();
        loop {
            let label = pager.label();
            let page = self
                .list_page(session, "Ticket", &pager, &ticket_query("date_mod", "DESC"))
                .await
                .map_err(|error| failure(&label, error))?;
            let more = pager
                .accept(&page)
                .map_err(|error| failure(&label, error))?;
            let records = self.map_page(&label, &page.rows)?;
            let mut older = false;
            for record in records {
                if record.updated_at < since {
                    older = true;
                } else if seen.insert(record.external_id.clone()) {
                    changed.push(record);
                }
            }
            if older || !more {
                break;
            }
        }
        let ids: Vec<i64> = changed
            .iter()
            .filter_map(|record| record.external_id.parse().ok())
            .collect();
        let links = self.links_of(session, &ids).await?;
        let assets = self.assets(session, &links).await?;
        let total = changed.len() as u64;
        let per_page = usize::try_from(self.per_page).unwrap_or(usize::MAX);
        let mut parts = changed.into_iter().peekable();
        let mut part = 0;
        while parts.peek().is_some() {
            let mut records: Vec<TicketRecord> = parts.by_ref().take(per_page).collect();
            for record in &mut records {
                attach(record, &links, &assets);
            }
            sink.send(TicketPage {
                label: format!("changed tickets part {part}"),
                records,
                announced_total: Some(total),
            })
            .await?;
            part += 1;
        }
        Ok(total)
    }

    async fn run(
        &self,
        session: &Session,
        read: TicketRead,
        sink: &TicketSink,
    ) -> Result<u64, FetchFailure> {
        match read.updated_since {
            None => self.read_all(session, sink).await,
            Some(since) => self.read_changed(session, since, sink).await,
        }
    }
}

/// The query of every list: ids instead of names, no HATEOAS links (smaller answers).
fn plain_query() -> Vec<(&'static str, String)> {
    vec![("get_hateoas", "false".to_string())]
}

/// The ticket list: names of entity and category instead of their ids.
fn ticket_query(sort: &str, order: &str) -> Vec<(&'static str, String)> {
    vec![
        ("expand_dropdowns", "true".to_string()),
        ("get_hateoas", "false".to_string()),
        ("sort", sort.to_string()),
        ("order", order.to_string()),
    ]
}

fn collect_links(rows: Vec<Value>, label: &str) -> Result<Links, FetchFailure> {
    let mut links = Links::new();
    for row in rows {
        let (ticket, kind, item) = map_link(&row).map_err(|error| FetchFailure {
            page: Some(label.to_string()),
            cause: format!("the page is malformed: {error}"),
        })?;
        links.entry(ticket).or_default().push((kind, item));
    }
    Ok(links)
}

/// Puts the ticket's linked items on it, with serial and inventory number where the asset is
/// one of `ASSET_TYPES`; a linked asset GLPI does not list (in its trash, or purged) stays
/// linked by type and id, with a problem saying so.
fn attach(record: &mut TicketRecord, links: &Links, assets: &Assets) {
    let Ok(id) = record.external_id.parse::<i64>() else {
        return;
    };
    for (kind, item) in links.get(&id).into_iter().flatten() {
        let facts = assets.get(&(kind.clone(), *item));
        if facts.is_none() && ASSET_TYPES.contains(&kind.as_str()) {
            record.problems.push(format!(
                "linked {kind} {item} is not listed by GLPI (in the trash or deleted)"
            ));
        }
        let facts = facts.cloned().unwrap_or_default();
        record.linked_items.push(LinkedItem {
            kind: kind.clone(),
            item_id: item.to_string(),
            serial_number: facts.serial,
            asset_tag: facts.otherserial,
            name: facts.name,
        });
    }
}

#[async_trait]
impl TicketConnector for Glpi {
    async fn fetch_tickets(
        &self,
        read: TicketRead,
        sink: &TicketSink,
    ) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, api = %display_url(&self.api), incremental = read.updated_since.is_some(), "GLPI read starting");
        let session = self
            .init_session()
            .await
            .map_err(|error| failure("initSession", error))?;
        let result = self.run(&session, read, sink).await;
        self.kill_session(&session).await;
        match &result {
            Ok(total) => {
                tracing::info!(source = %self.source_name, total, "GLPI read complete");
            }
            Err(failure) => {
                tracing::warn!(source = %self.source_name, %failure, "GLPI read failed");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rows: usize, range: Option<(u64, u64, u64)>) -> ListPage {
        ListPage {
            rows: vec![Value::Null; rows],
            range,
        }
    }

    #[test]
    fn content_ranges_are_read() {
        assert_eq!(parse_content_range("0-499/1312"), Some((0, 499, 1312)));
        assert_eq!(
            parse_content_range(" 500 - 999 / 1312 "),
            Some((500, 999, 1312))
        );
        assert_eq!(parse_content_range("items 0-4/5"), None);
    }

    #[test]
    fn pages_are_checked_against_their_range() {
        let mut pager = Pager::new("tickets", 3);
        assert!(pager.accept(&page(3, Some((0, 2, 7)))).unwrap());
        assert_eq!(pager.range(), "3-5");
        // Two rows where the header announces three.
        let error = pager.accept(&page(2, Some((3, 5, 7)))).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("announces 3 rows, the page has 2"),
            "{error}"
        );
        // A page that ends early although more rows exist.
        let error = pager.accept(&page(2, Some((3, 4, 7)))).unwrap_err();
        assert!(matches!(error, FetchError::ShortPage { .. }), "{error}");
        // Fewer rows than before: a ticket vanished.
        let error = pager.accept(&page(3, Some((3, 5, 6)))).unwrap_err();
        assert!(matches!(
            error,
            FetchError::Vanished {
                before: 7,
                now: 6,
                ..
            }
        ));
        assert!(pager.accept(&page(3, Some((3, 5, 7)))).unwrap());
        assert!(!pager.accept(&page(1, Some((6, 6, 7)))).unwrap());
        // An empty list comes without Content-Range.
        let mut empty = Pager::new("tickets", 3);
        assert!(!empty.accept(&page(0, None)).unwrap());
        assert!(Pager::new("tickets", 3).accept(&page(1, None)).is_err());
    }
}
