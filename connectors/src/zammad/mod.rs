//! The Zammad connector: reads the tickets of one Zammad instance, all of them page by page
//! (`GET /api/v1/tickets`) or those updated since a watermark (`GET /api/v1/tickets/search`
//! sorted by `updated_at`), always expanded so that states, groups and organizations come as
//! names, and streams them to the ticket engine as `TicketRecord`s. It can also write a device's
//! link back into a ticket (`TicketWriteBack`). The facts it relies on are those of
//! docs/vendors/zammad.md.

mod config;
mod mapping;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bestand_model::protocol::FetchFailure;
use bestand_model::ticket::{TicketPage, TicketRead, TicketRecord, TicketState};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use self::config::{
    WriteBackMode, ZammadConfig, ZammadConfigError, MAX_CONCURRENCY, MAX_PER_PAGE,
    SINCE_PLACEHOLDER,
};
use self::mapping::{map_ticket, MappingRules};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::{
    DeviceLinkText, TicketConnector, TicketSink, TicketWriteBack, WriteBackError, WriteBackOutcome,
};

/// The subject of the internal notes write-back posts.
pub const NOTE_SUBJECT: &str = "Inventar (bestand)";

/// Why a read stopped; becomes a `FetchFailure` naming the page.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(HttpError),
    #[error(
        "Zammad rejected the access token ({0}); it is wrong, revoked or expired, or token \
         access is switched off (Settings > System > API). Create a new token under Profile > \
         Token Access"
    )]
    Credentials(HttpError),
    #[error("{0} (the token's user needs the permission `ticket.agent` in every group to read)")]
    Forbidden(HttpError),
    #[error("page {page} is malformed: {cause}")]
    Malformed { page: u64, cause: String },
    #[error(
        "page {page} has {got} tickets, fewer than the {per_page} asked for, but page {next} is \
         not empty: the server pages by a smaller size than `per_page` or the list changed \
         during the read"
    )]
    ShortPage {
        page: u64,
        got: usize,
        per_page: u64,
        next: u64,
    },
    #[error("page {page} has {got} tickets, more than the {per_page} asked for")]
    LongPage {
        page: u64,
        got: usize,
        per_page: u64,
    },
    #[error(
        "page {page}: ticket {id} comes after ticket {previous}; the list is not sorted by id, \
         so paging could skip tickets"
    )]
    Unsorted { page: u64, id: u64, previous: u64 },
    #[error(
        "page {page}: ticket {id} was updated at {at}, {problem}; the search did not apply the \
         query or the sort order (`incremental_query`, docs/vendors/zammad.md#search)"
    )]
    SearchOrder {
        page: u64,
        id: String,
        at: String,
        problem: &'static str,
    },
    #[error("the search announced {announced} tickets but {read} were read")]
    Count { announced: u64, read: u64 },
    #[error("reading the tags of ticket {id} failed: {cause}")]
    Tags { id: String, cause: String },
    #[error("reading the history of ticket {id} (when it was forwarded) failed: {cause}")]
    History { id: String, cause: String },
}

/// What a page answer held.
#[derive(Debug)]
struct Decoded {
    records: Vec<TicketRecord>,
    /// `total_count`, where the answer is `{ "records": [...], "total_count": n }`.
    total: Option<u64>,
}

/// Decodes one listing or search answer: a plain array of expanded tickets, or (search with
/// `with_total_count`) `{ "records": [...], "total_count": n }` (docs/vendors/zammad.md#search).
fn decode(body: &[u8], rules: &MappingRules) -> Result<Decoded, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))?;
    let (items, total) = match value {
        Value::Array(items) => (items, None),
        Value::Object(mut object) => {
            if object.contains_key("tickets") || object.contains_key("assets") {
                return Err(
                    "the answer lists ticket ids and assets, not expanded tickets \
                            (`expand=true` was not honoured)"
                        .to_string(),
                );
            }
            let total = object.get("total_count").and_then(Value::as_u64);
            match object.remove("records") {
                Some(Value::Array(items)) => (items, total),
                _ => return Err("no ticket array and no `records` array".to_string()),
            }
        }
        _ => return Err("neither an array nor an object".to_string()),
    };
    let records = items
        .iter()
        .map(|item| map_ticket(item, rules))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    Ok(Decoded { records, total })
}

/// The watermark as the search syntax wants it: RFC 3339 UTC with milliseconds, colons
/// escaped (a bare `:` separates field and value in the query string).
pub fn search_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace(':', "\\:")
}

/// The Zammad source. Build it with `Zammad::new`, run it with `spawn_ticket_fetch`.
pub struct Zammad {
    source_name: String,
    http: HttpClient,
    /// Sends the one request that is not safe to repeat (posting a note) without retries.
    write_http: HttpClient,
    base: url::Url,
    token: SecretString,
    per_page: u64,
    max_concurrency: usize,
    read_tags: bool,
    /// `forwarding_groups`, in lower case.
    forwarding_groups: Vec<String>,
    incremental: bool,
    incremental_query: String,
    write_back: WriteBackMode,
    write_back_attribute: Option<String>,
    asset_fields: Vec<String>,
}

impl fmt::Debug for Zammad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zammad")
            .field("source_name", &self.source_name)
            .field("base", &display_url(&self.base))
            .field("token", &"[redacted]")
            .field("per_page", &self.per_page)
            .field("max_concurrency", &self.max_concurrency)
            .field("read_tags", &self.read_tags)
            .field("incremental", &self.incremental)
            .field("write_back", &self.write_back)
            .field("asset_fields", &self.asset_fields)
            .finish()
    }
}

/// Which listing a page belongs to, for labels.
#[derive(Debug, Clone, Copy)]
enum Listing {
    All,
    Search,
}

fn page_label(listing: Listing, page: u64) -> String {
    match listing {
        Listing::All => format!("tickets page {page}"),
        Listing::Search => format!("tickets/search request {page}"),
    }
}

fn failure(listing: Listing, page: u64, error: FetchError) -> FetchFailure {
    FetchFailure {
        page: Some(page_label(listing, page)),
        cause: error.to_string(),
    }
}

/// Sorts an HTTP error into what it means for a Zammad read.
fn classify(error: HttpError) -> FetchError {
    match error.status() {
        Some(StatusCode::UNAUTHORIZED) => FetchError::Credentials(error),
        Some(StatusCode::FORBIDDEN) => FetchError::Forbidden(error),
        _ => FetchError::Http(error),
    }
}

impl Zammad {
    /// Checks the configuration and resolves the token. Makes no network request.
    pub fn new(
        config: ZammadConfig,
        source_name: impl Into<String>,
    ) -> Result<Zammad, ZammadConfigError> {
        let base = config.validate()?;
        let token = resolve_secret(
            "token",
            config.token_env.as_deref(),
            config.token_file.as_deref(),
        )?;
        let settings = config.request_keys().http_settings();
        let http = HttpClient::new(&settings)?;
        http.redactor().add_fixed(&token);
        let mut write_settings = settings.clone();
        write_settings.retry.max_attempts = 1;
        let write_http = HttpClient::new(&write_settings)?;
        write_http.redactor().add_fixed(&token);
        Ok(Zammad {
            source_name: source_name.into(),
            http,
            write_http,
            base,
            token,
            per_page: u64::from(config.per_page),
            max_concurrency: settings.max_concurrency,
            read_tags: config.read_tags,
            forwarding_groups: config
                .forwarding_groups
                .iter()
                .map(|group| group.trim().to_lowercase())
                .collect(),
            incremental: config.incremental,
            incremental_query: config.incremental_query,
            write_back: config.write_back,
            write_back_attribute: config.write_back_attribute,
            asset_fields: config.asset_fields,
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<url::Url, HttpError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|error| HttpError::Request(error.to_string()))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        Ok(url)
    }

    fn authorization(&self) -> String {
        format!("Token token={}", self.token.expose_secret())
    }

    /// GETs `path` (relative to the base URL) with `query`; retries are the client's.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<u8>, HttpError> {
        let url = self.url(path, query)?;
        let response = self
            .http
            .send(|client| {
                client
                    .get(url.clone())
                    .header(ACCEPT, "application/json")
                    .header(AUTHORIZATION, self.authorization())
            })
            .await?;
        Ok(response.body)
    }

    /// The state type of every state (`GET /api/v1/ticket_states?expand=true`), so that states
    /// an authority added map by their type. Not essential: without it only Zammad's own state
    /// names map, and others become a problem on their tickets.
    async fn state_types(&self) -> HashMap<String, String> {
        let answer = self
            .get("api/v1/ticket_states", &[("expand", "true".to_string())])
            .await
            .map_err(|error| error.to_string())
            .and_then(|body| serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string()));
        match answer {
            Ok(Value::Array(states)) => states
                .iter()
                .filter_map(|state| {
                    let name = state.get("name")?.as_str()?;
                    let state_type = state.get("state_type")?.as_str()?;
                    Some((name.trim().to_lowercase(), state_type.to_string()))
                })
                .collect(),
            Ok(_) => {
                tracing::warn!(source = %self.source_name, "ticket_states is not an array; only Zammad's own state names map");
                HashMap::new()
            }
            Err(error) => {
                tracing::warn!(source = %self.source_name, %error, "cannot read ticket_states; only Zammad's own state names map");
                HashMap::new()
            }
        }
    }

    /// Fetches and decodes one page.
    async fn page(
        &self,
        index: u64,
        path: &str,
        query: Vec<(&str, String)>,
        rules: &Arc<MappingRules>,
    ) -> Result<(usize, Decoded), FetchError> {
        let body = self.get(path, &query).await.map_err(classify)?;
        let rules = Arc::clone(rules);
        // Mapping a page is CPU work; the blocking pool keeps the runtime threads free.
        let decoded = tokio::task::spawn_blocking(move || decode(&body, &rules))
            .await
            .map_err(|error| format!("decoding stopped ({error})"))
            .and_then(|decoded| decoded)
            .map_err(|cause| FetchError::Malformed { page: index, cause })?;
        let count = decoded.records.len();
        if count as u64 > self.per_page {
            return Err(FetchError::LongPage {
                page: index,
                got: count,
                per_page: self.per_page,
            });
        }
        Ok((count, decoded))
    }

    /// Fills in what the listings do not carry: the merge target of merged tickets (their
    /// `parent` link, docs/vendors/zammad.md#merges) and, if configured, the tags and the time a
    /// ticket in a provider's group went there.
    async fn complete(&self, records: Vec<TicketRecord>) -> Result<Vec<TicketRecord>, FetchError> {
        stream::iter(records)
            .map(|mut record| async move {
                if record.state == TicketState::Merged {
                    self.merge_target(&mut record).await;
                }
                if self.read_tags {
                    record.tags = self.tags(&record.external_id).await?;
                }
                if self.forwarded(&record) {
                    record.group_since = Some(self.group_since(&record).await?);
                }
                Ok::<_, FetchError>(record)
            })
            .buffered(self.max_concurrency)
            .try_collect()
            .await
    }

    /// Whether `record` is in one of the `forwarding_groups`.
    fn forwarded(&self, record: &TicketRecord) -> bool {
        record.group.as_deref().is_some_and(|group| {
            self.forwarding_groups
                .contains(&group.trim().to_lowercase())
        })
    }

    /// When `record` went to its current group: the last `group` change of its history that
    /// names that group (docs/vendors/zammad.md#history), else its creation (opened there).
    async fn group_since(&self, record: &TicketRecord) -> Result<DateTime<Utc>, FetchError> {
        let id = &record.external_id;
        let history_error = |cause: String| FetchError::History {
            id: id.clone(),
            cause,
        };
        let value = self
            .detail(&format!("api/v1/ticket_history/{id}"), &[], history_error)
            .await?;
        let entries = value
            .get("history")
            .or(Some(&value))
            .and_then(Value::as_array)
            .ok_or_else(|| history_error("no `history` array".to_string()))?;
        let group = record
            .group
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        let names_group = |entry: &Value| {
            entry.get("attribute").and_then(Value::as_str) == Some("group")
                && entry
                    .get("value_to")
                    .and_then(Value::as_str)
                    .is_some_and(|to| {
                        // Older versions name the group by its last part only.
                        let to = to.trim().to_lowercase();
                        to == group || group.ends_with(&format!("::{to}"))
                    })
        };
        let mut since = None;
        for entry in entries.iter().filter(|entry| names_group(entry)) {
            let at = entry
                .get("created_at")
                .and_then(Value::as_str)
                .and_then(|at| at.parse::<DateTime<Utc>>().ok())
                .ok_or_else(|| {
                    history_error(format!("a group change has no valid `created_at`: {entry}"))
                })?;
            since = since.max(Some(at));
        }
        Ok(since.unwrap_or(record.created_at))
    }

    /// One ticket's detail (its tags, its history) as JSON; a failed request or an answer that
    /// is no JSON becomes `error` with the cause.
    async fn detail(
        &self,
        path: &str,
        query: &[(&str, String)],
        error: impl Fn(String) -> FetchError,
    ) -> Result<Value, FetchError> {
        let body = self
            .get(path, query)
            .await
            .map_err(|cause| error(classify(cause).to_string()))?;
        serde_json::from_slice(&body).map_err(|cause| error(format!("invalid JSON ({cause})")))
    }

    async fn tags(&self, id: &str) -> Result<Vec<String>, FetchError> {
        let tags_error = |cause: String| FetchError::Tags {
            id: id.to_string(),
            cause,
        };
        let value = self
            .detail(
                "api/v1/tags",
                &[("object", "Ticket".to_string()), ("o_id", id.to_string())],
                tags_error,
            )
            .await?;
        let tags = value
            .get("tags")
            .and_then(Value::as_array)
            .ok_or_else(|| tags_error("no `tags` array".to_string()))?;
        Ok(tags
            .iter()
            .filter_map(Value::as_str)
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect())
    }

    /// Sets `merged_into` from the ticket's one `parent` link to a ticket; anything else is a
    /// problem on the record, never a failed read (the merge target is a detail).
    async fn merge_target(&self, record: &mut TicketRecord) {
        let answer = self
            .get(
                "api/v1/links",
                &[
                    ("link_object", "Ticket".to_string()),
                    ("link_object_value", record.external_id.clone()),
                ],
            )
            .await
            .map_err(|error| error.to_string())
            .and_then(|body| serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string()));
        let links = match answer {
            Ok(value) => value.get("links").and_then(Value::as_array).cloned(),
            Err(error) => {
                record
                    .problems
                    .push(format!("merged, but its links cannot be read: {error}"));
                return;
            }
        };
        let parents: Vec<String> = links
            .unwrap_or_default()
            .iter()
            .filter(|link| {
                link.get("link_type").and_then(Value::as_str) == Some("parent")
                    && link.get("link_object").and_then(Value::as_str) == Some("Ticket")
            })
            .filter_map(|link| match link.get("link_object_value")? {
                Value::Number(number) => Some(number.to_string()),
                Value::String(text) => Some(text.trim().to_string()),
                _ => None,
            })
            .collect();
        match parents.as_slice() {
            [target] => record.merged_into = Some(target.clone()),
            [] => record
                .problems
                .push("merged, but Zammad names no ticket it was merged into".to_string()),
            several => record.problems.push(format!(
                "merged, but {} tickets are linked as parent; the merge target is unclear",
                several.len()
            )),
        }
    }

    /// Every ticket, by `GET /api/v1/tickets` (sorted by id) page by page until a short page,
    /// confirmed by the next page being empty.
    async fn read_all(
        &self,
        sink: &TicketSink,
        rules: Arc<MappingRules>,
    ) -> Result<u64, FetchFailure> {
        let listing = Listing::All;
        let rules = &rules;
        let mut pages = stream::iter(1u64..)
            .map(|index| async move {
                let query = vec![
                    ("expand", "true".to_string()),
                    ("page", index.to_string()),
                    ("per_page", self.per_page.to_string()),
                ];
                (
                    index,
                    self.page(index, "api/v1/tickets", query, rules).await,
                )
            })
            .buffered(self.max_concurrency);
        let mut last_id: Option<u64> = None;
        let mut fetched = 0u64;
        let mut short: Option<(u64, usize)> = None;
        while let Some((index, answer)) = pages.next().await {
            let (count, decoded) = answer.map_err(|error| failure(listing, index, error))?;
            if let Some((page, got)) = short {
                if count > 0 {
                    return Err(failure(
                        listing,
                        page,
                        FetchError::ShortPage {
                            page,
                            got,
                            per_page: self.per_page,
                            next: index,
                        },
                    ));
                }
                break;
            }
            for record in &decoded.records {
                let id: u64 = record.external_id.parse().unwrap_or_default();
                if let Some(previous) = last_id.filter(|&previous| id <= previous) {
                    return Err(failure(
                        listing,
                        index,
                        FetchError::Unsorted {
                            page: index,
                            id,
                            previous,
                        },
                    ));
                }
                last_id = Some(id);
            }
            fetched += count as u64;
            if (count as u64) < self.per_page {
                short = Some((index, count));
            }
            if count > 0 {
                let records = self
                    .complete(decoded.records)
                    .await
                    .map_err(|error| failure(listing, index, error))?;
                sink.send(TicketPage {
                    label: page_label(listing, index),
                    records,
                    announced_total: None,
                })
                .await?;
            }
        }
        Ok(fetched)
    }

    /// The tickets updated at or after `since`: the search sorted by `updated_at` ascending,
    /// paged by keyset (each request starts at the last `updated_at` read), so a ticket updated
    /// during the read moves behind the cursor instead of shifting the pages. Tickets read
    /// twice (at the cursor's instant) are sent once.
    async fn read_since(
        &self,
        since: DateTime<Utc>,
        sink: &TicketSink,
        rules: Arc<MappingRules>,
    ) -> Result<u64, FetchFailure> {
        let listing = Listing::Search;
        let mut cursor = since;
        let mut page_at_cursor = 1u64;
        let mut seen: HashSet<String> = HashSet::new();
        let mut announced: Option<u64> = None;
        for request in 1u64.. {
            let query = vec![
                (
                    "query",
                    self.incremental_query
                        .replace(SINCE_PLACEHOLDER, &search_time(cursor)),
                ),
                ("sort_by", "updated_at".to_string()),
                ("order_by", "asc".to_string()),
                ("page", page_at_cursor.to_string()),
                ("per_page", self.per_page.to_string()),
                ("expand", "true".to_string()),
                ("with_total_count", "true".to_string()),
            ];
            let (count, decoded) = self
                .page(request, "api/v1/tickets/search", query, &rules)
                .await
                .map_err(|error| failure(listing, request, error))?;
            if announced.is_none() {
                announced = decoded.total;
            }
            let mut previous = cursor;
            for record in &decoded.records {
                let problem = if record.updated_at < cursor {
                    Some("before the watermark")
                } else if record.updated_at < previous {
                    Some("before the ticket ahead of it")
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(failure(
                        listing,
                        request,
                        FetchError::SearchOrder {
                            page: request,
                            id: record.external_id.clone(),
                            at: record.updated_at.to_rfc3339(),
                            problem,
                        },
                    ));
                }
                previous = record.updated_at;
            }
            let records: Vec<TicketRecord> = decoded
                .records
                .into_iter()
                .filter(|record| seen.insert(record.external_id.clone()))
                .collect();
            if !records.is_empty() {
                let records = self
                    .complete(records)
                    .await
                    .map_err(|error| failure(listing, request, error))?;
                sink.send(TicketPage {
                    label: page_label(listing, request),
                    records,
                    announced_total: announced,
                })
                .await?;
            }
            if (count as u64) < self.per_page {
                break;
            }
            if previous > cursor {
                cursor = previous;
                page_at_cursor = 1;
            } else {
                // A whole page at one instant (a bulk update): page on within it.
                page_at_cursor += 1;
            }
        }
        let read = seen.len() as u64;
        // Tickets only ever leave the result by deletion, so fewer than announced means some
        // were skipped or deleted during the read; either way the read is not complete.
        if let Some(announced) = announced.filter(|&announced| read < announced) {
            return Err(FetchFailure {
                page: None,
                cause: FetchError::Count { announced, read }.to_string(),
            });
        }
        Ok(read)
    }
}

#[async_trait]
impl TicketConnector for Zammad {
    async fn fetch_tickets(
        &self,
        read: TicketRead,
        sink: &TicketSink,
    ) -> Result<u64, FetchFailure> {
        let since = read.updated_since.filter(|_| self.incremental);
        tracing::info!(
            source = %self.source_name,
            base = %display_url(&self.base),
            since = ?since,
            "Zammad read starting"
        );
        let rules = Arc::new(MappingRules {
            asset_fields: self.asset_fields.clone(),
            state_types: self.state_types().await,
        });
        let result = match since {
            Some(since) => self.read_since(since, sink, rules).await,
            None => self.read_all(sink, rules).await,
        };
        match &result {
            Ok(total) => tracing::info!(source = %self.source_name, total, "Zammad read complete"),
            Err(failure) => {
                tracing::warn!(source = %self.source_name, %failure, "Zammad read failed")
            }
        }
        result
    }
}

impl Zammad {
    fn write_error(ticket: &str, cause: impl fmt::Display) -> WriteBackError {
        WriteBackError {
            ticket: ticket.to_string(),
            cause: cause.to_string(),
        }
    }

    /// GETs `path` for a write-back and reads it as JSON (`what` names it in errors).
    async fn read_for_write(
        &self,
        ticket: &str,
        path: &str,
        what: &str,
    ) -> Result<Value, WriteBackError> {
        let body = self
            .get(path, &[])
            .await
            .map_err(|error| Self::write_error(ticket, classify(error)))?;
        serde_json::from_slice(&body)
            .map_err(|error| Self::write_error(ticket, format!("{what}: invalid JSON ({error})")))
    }

    /// Sends a write-back's JSON body with `method` through `http`.
    async fn send_write(
        &self,
        http: &HttpClient,
        ticket: &str,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<(), WriteBackError> {
        let url = self
            .url(path, &[])
            .map_err(|error| Self::write_error(ticket, error))?;
        http.send(|client| {
            client
                .request(method.clone(), url.clone())
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, self.authorization())
                .json(body)
        })
        .await
        .map_err(|error| Self::write_error(ticket, classify(error)))?;
        Ok(())
    }

    /// Whether an internal note of the ticket already carries `marker`.
    async fn note_present(&self, ticket: &str, marker: &str) -> Result<bool, WriteBackError> {
        let path = format!("api/v1/ticket_articles/by_ticket/{ticket}");
        let articles = self.read_for_write(ticket, &path, "articles").await?;
        let articles = articles
            .as_array()
            .ok_or_else(|| Self::write_error(ticket, "articles: not an array"))?;
        // Only the marker is looked for; the bodies are neither kept nor logged.
        Ok(articles.iter().any(|article| {
            article.get("internal").and_then(Value::as_bool) == Some(true)
                && article
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|body| body.contains(marker))
        }))
    }

    async fn write_note(
        &self,
        ticket: &str,
        id: u64,
        link: &DeviceLinkText,
    ) -> Result<WriteBackOutcome, WriteBackError> {
        if self.note_present(ticket, &link.marker).await? {
            return Ok(WriteBackOutcome::AlreadyPresent);
        }
        let body = serde_json::json!({
            "ticket_id": id,
            "subject": NOTE_SUBJECT,
            "body": format!("{}\n\n{}", link.text, link.marker),
            "content_type": "text/plain",
            "type": "note",
            "internal": true,
            "sender": "Agent",
        });
        self.send_write(
            &self.write_http,
            ticket,
            reqwest::Method::POST,
            "api/v1/ticket_articles",
            &body,
        )
        .await?;
        Ok(WriteBackOutcome::Written)
    }

    async fn write_attribute(
        &self,
        ticket: &str,
        attribute: &str,
        link: &DeviceLinkText,
    ) -> Result<WriteBackOutcome, WriteBackError> {
        let path = format!("api/v1/tickets/{ticket}");
        let current = self.read_for_write(ticket, &path, "ticket").await?;
        if current.get(attribute).and_then(Value::as_str) == Some(link.text.as_str()) {
            return Ok(WriteBackOutcome::AlreadyPresent);
        }
        let mut body = serde_json::Map::new();
        body.insert(attribute.to_string(), Value::String(link.text.clone()));
        // Setting an attribute to a value is idempotent, so the client may retry it.
        self.send_write(
            &self.http,
            ticket,
            reqwest::Method::PUT,
            &path,
            &Value::Object(body),
        )
        .await?;
        Ok(WriteBackOutcome::Written)
    }
}

#[async_trait]
impl TicketWriteBack for Zammad {
    fn enabled(&self) -> bool {
        self.write_back != WriteBackMode::Off
    }

    async fn write_back(
        &self,
        ticket: &str,
        link: &DeviceLinkText,
    ) -> Result<WriteBackOutcome, WriteBackError> {
        let id: u64 = ticket
            .trim()
            .parse()
            .map_err(|_| Self::write_error(ticket, "a Zammad ticket id is a number"))?;
        let ticket = id.to_string();
        match (self.write_back, self.write_back_attribute.as_deref()) {
            (WriteBackMode::Off, _) => Ok(WriteBackOutcome::Disabled),
            (WriteBackMode::Note, _) => {
                if link.marker.trim().is_empty() {
                    return Err(Self::write_error(&ticket, "the note's marker is empty"));
                }
                self.write_note(&ticket, id, link).await
            }
            (WriteBackMode::Attribute, Some(attribute)) => {
                self.write_attribute(&ticket, attribute, link).await
            }
            (WriteBackMode::Attribute, None) => Err(Self::write_error(
                &ticket,
                "`write_back_attribute` is not set",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_as_array_or_records_and_name_what_is_wrong() {
        let rules = MappingRules::default();
        let ticket = r#"{"id": 1, "state": "new", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}"#;
        let page = decode(format!("[{ticket}]").as_bytes(), &rules).unwrap();
        assert_eq!((page.records.len(), page.total), (1, None));
        let page = decode(
            format!(r#"{{"records": [{ticket}], "total_count": 7}}"#).as_bytes(),
            &rules,
        )
        .unwrap();
        assert_eq!(page.total, Some(7));
        assert!(decode(
            br#"{"tickets": [1], "tickets_count": 1, "assets": {}}"#,
            &rules
        )
        .unwrap_err()
        .contains("expand=true"));
        assert!(decode(b"[{", &rules)
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert!(decode(br#"[{"id": "x"}]"#, &rules)
            .unwrap_err()
            .contains("`id`"));
    }

    #[test]
    fn the_watermark_is_written_with_escaped_colons() {
        let at = DateTime::parse_from_rfc3339("2026-03-02T09:00:00.5+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(search_time(at), "2026-03-02T08\\:00\\:00.500Z");
    }
}
