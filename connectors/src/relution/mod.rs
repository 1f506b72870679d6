//! The Relution connector: pages through `POST .../devices/baseInfo/query` of one
//! organisation by `offset` and streams the devices to the sync engine as `DeviceRecord`s.
//! Relution has no public API reference; the facts used are those of docs/vendors/relution.md,
//! and every unverified one is a config key (see `RelutionConfig`).

mod config;
mod mapping;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bestand_model::protocol::{FetchFailure, SourcePage};
use bestand_model::record::DeviceRecord;
use futures::stream::{self, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use self::config::{
    ApiPath, RelutionConfig, RelutionConfigError, MAX_CONCURRENCY, MAX_PAGE_SIZE,
};
use self::mapping::{map_device, MappingError, SchoolRule};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::{Connector, PageSink};

/// The header that carries the personal access token [V-3p].
pub const TOKEN_HEADER: &str = "X-User-Access-Token";
/// The organisation parameter (query, and header as one observed client sends it) [V-3p].
pub const ORGANIZATION_PARAMETER: &str = "tenantOrganizationUuid";

/// Why a fetch stopped; becomes a `FetchFailure` naming the page.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(HttpError),
    #[error(
        "Relution rejected the access token ({0}); it is wrong, revoked or expired. Static \
         tokens cannot be renewed: create a new one under Profile -> Access Tokens"
    )]
    Credentials(HttpError),
    #[error("{0} (the token's user lacks the permission to read devices)")]
    Forbidden(HttpError),
    #[error(
        "no device query path answered ({0}); a 404 here can also mean that `organization` \
         is not an organisation UUID of this server"
    )]
    NoPath(HttpError),
    #[error("page {page} returned {got} records, {fetched} of {announced} announced")]
    ShortPage {
        page: u64,
        got: u64,
        fetched: u64,
        announced: u64,
    },
    #[error("page {page} is malformed: {cause}")]
    Malformed { page: u64, cause: String },
}

fn page_label(page: u64) -> String {
    format!("devices page {page}")
}

/// The envelope of a v2 query answer: `{ "results": [...], "nonpagedCount": n }`; some decoders
/// read `total`, and v1 lists say `items` (docs/vendors/relution.md#paging), so those are accepted
/// too.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(rename = "nonpagedCount", default)]
    nonpaged_count: Option<u64>,
    #[serde(default)]
    total: Option<u64>,
}

/// One decoded and mapped page.
#[derive(Debug)]
struct Page {
    total: u64,
    /// Records on the page, duplicates included; the paging checks count these.
    count: u64,
    records: Vec<DeviceRecord>,
}

/// Decodes `body` and maps every device; the error is the cause of "page ... is malformed".
fn decode(body: &[u8], rule: &SchoolRule) -> Result<Page, String> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON ({error})"))?;
    let total = envelope
        .nonpaged_count
        .or(envelope.total)
        .ok_or_else(|| "no numeric `nonpagedCount`".to_string())?;
    let items = envelope
        .results
        .or(envelope.items)
        .ok_or_else(|| "no `results` array".to_string())?;
    let records = items
        .iter()
        .map(|raw| map_device(raw, rule))
        .collect::<Result<Vec<_>, MappingError>>()
        .map_err(|error| error.to_string())?;
    Ok(Page {
        total,
        count: items.len() as u64,
        records,
    })
}

/// The Relution source. Build it with `Relution::new`, run it with `spawn_fetch`.
pub struct Relution {
    source_name: String,
    http: HttpClient,
    base: url::Url,
    token: SecretString,
    organization: Option<String>,
    api_path: ApiPath,
    page_size: u64,
    max_concurrency: usize,
    sort_field: String,
    school: Arc<SchoolRule>,
}

impl fmt::Debug for Relution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relution")
            .field("source_name", &self.source_name)
            .field("base", &display_url(&self.base))
            .field("token", &"[redacted]")
            .field("organization", &self.organization)
            .field("api_path", &self.api_path)
            .field("page_size", &self.page_size)
            .field("max_concurrency", &self.max_concurrency)
            .field("sort_field", &self.sort_field)
            .field("school", &self.school)
            .field("http", &self.http)
            .finish()
    }
}

impl Relution {
    /// Checks the configuration and resolves the access token. Makes no network request.
    pub fn new(
        config: RelutionConfig,
        source_name: impl Into<String>,
    ) -> Result<Relution, RelutionConfigError> {
        let base = config.validate()?;
        let token = resolve_secret(
            "access_token",
            config.access_token_env.as_deref(),
            config.access_token_file.as_deref(),
        )?;
        let http = HttpClient::new(&config.request_keys().http_settings())?;
        http.redactor().add_fixed(&token);
        let trimmed = |value: Option<String>| value.map(|text| text.trim().to_string());
        let max_concurrency = config.request_keys().http_settings().max_concurrency;
        Ok(Relution {
            source_name: source_name.into(),
            http,
            base,
            token,
            organization: trimmed(config.organization),
            api_path: config.api_path,
            page_size: u64::from(config.page_size),
            max_concurrency,
            sort_field: config.sort_field.trim().to_string(),
            school: Arc::new(SchoolRule {
                field: trimmed(config.school_from),
                fixed: trimmed(config.school),
            }),
        })
    }

    /// The JSON body of the query for `limit` devices from `offset`.
    fn query_body(&self, offset: u64, limit: u64) -> serde_json::Value {
        let mut body = serde_json::json!({
            "getItems": true,
            "getNonpagedCount": true,
            "limit": limit,
            "offset": offset,
        });
        if !self.sort_field.is_empty() {
            body["sortOrder"] = serde_json::json!({
                "sortFields": [ { "name": self.sort_field, "ascending": true } ]
            });
        }
        body
    }

    /// POSTs one query; retries are the client's (the query is a read).
    async fn query(&self, path: ApiPath, offset: u64, limit: u64) -> Result<Vec<u8>, HttpError> {
        let relative = path.query_path().unwrap_or_default();
        let mut url = self
            .base
            .join(relative)
            .map_err(|error| HttpError::Request(error.to_string()))?;
        if let Some(organization) = &self.organization {
            url.query_pairs_mut()
                .append_pair(ORGANIZATION_PARAMETER, organization);
        }
        let body = self.query_body(offset, limit);
        let response = self
            .http
            .send(|client| {
                let request = client
                    .post(url.clone())
                    .header(ACCEPT, "application/json")
                    .header(TOKEN_HEADER, self.token.expose_secret())
                    .json(&body);
                match &self.organization {
                    Some(organization) => request.header(ORGANIZATION_PARAMETER, organization),
                    None => request,
                }
            })
            .await?;
        Ok(response.body)
    }

    /// Fetches and decodes page `index` (at `offset`) from `path`.
    async fn page(
        &self,
        path: ApiPath,
        index: u64,
        offset: u64,
        limit: u64,
    ) -> Result<Page, FetchError> {
        let body = self.query(path, offset, limit).await.map_err(classify)?;
        let rule = Arc::clone(&self.school);
        // Mapping a page is CPU work; the blocking pool keeps the runtime threads free.
        tokio::task::spawn_blocking(move || decode(&body, &rule))
            .await
            .map_err(|error| format!("decoding stopped ({error})"))
            .and_then(|decoded| decoded)
            .map_err(|cause| FetchError::Malformed { page: index, cause })
    }

    /// Page 0, probing the path styles in `auto` mode; returns the style that answered.
    async fn first_page(&self) -> Result<(ApiPath, Page), FetchError> {
        let mut candidates = self.api_path.candidates().iter().peekable();
        while let Some(&path) = candidates.next() {
            match self.page(path, 0, 0, self.page_size).await {
                Err(FetchError::Http(error)) if error.status() == Some(StatusCode::NOT_FOUND) => {
                    if candidates.peek().is_none() {
                        return Err(FetchError::NoPath(error));
                    }
                    tracing::info!(
                        source = %self.source_name,
                        path = path.query_path().unwrap_or_default(),
                        "device query path answered 404; trying the other path style"
                    );
                }
                answer => return answer.map(|page| (path, page)),
            }
        }
        Err(FetchError::NoPath(HttpError::Request(
            "no query path to try".to_string(),
        )))
    }

    async fn run(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let (path, first) = self.first_page().await.map_err(|error| failure(0, error))?;
        let total = first.total;
        // A server that pages by fewer records than asked pages by its own size; only a
        // page short of what its position promises is an error.
        let step = if first.count < self.page_size && first.count < total {
            first.count.max(1)
        } else {
            self.page_size
        };
        let pages = total.div_ceil(step).max(1);
        // Later pages: at most `max_concurrency` in flight or decoded and waiting, so memory
        // stays bounded however large the organisation is.
        let mut rest = stream::iter(1..pages)
            .map(|index| async move {
                self.page(path, index, index.saturating_mul(step), step)
                    .await
                    .map(|page| (index, page))
                    .map_err(|error| failure(index, error))
            })
            .buffered(self.max_concurrency);
        let mut seen: HashSet<String> = HashSet::new();
        let mut fetched = 0u64;
        let mut duplicates = 0u64;
        let mut next = Some((0, first));
        loop {
            let (index, page) = match next.take() {
                Some(first) => first,
                None => match rest.next().await {
                    Some(page) => page?,
                    None => break,
                },
            };
            if page.total != total {
                tracing::warn!(
                    source = %self.source_name,
                    page = index,
                    first_total = total,
                    now_total = page.total,
                    "nonpagedCount changed while paging; keeping the first one"
                );
            }
            fetched += page.count;
            let expected = total.min((index + 1).saturating_mul(step));
            if fetched < expected {
                return Err(failure(
                    index,
                    FetchError::ShortPage {
                        page: index,
                        got: page.count,
                        fetched,
                        announced: total,
                    },
                ));
            }
            let mut records = page.records;
            let mapped = records.len();
            // Offset paging is not snapshot-isolated: a device can show up on two pages.
            records.retain(|record| seen.insert(record.external_id.clone()));
            duplicates += (mapped - records.len()) as u64;
            sink.send(SourcePage {
                label: page_label(index),
                records,
                announced_total: Some(total),
            })
            .await?;
        }
        if duplicates > 0 {
            tracing::warn!(
                source = %self.source_name,
                duplicates,
                "skipped devices seen twice while paging (the data changed during the fetch)"
            );
        }
        tracing::info!(
            source = %self.source_name,
            announced = total,
            distinct = seen.len(),
            "Relution fetch complete"
        );
        Ok(total)
    }
}

/// Sorts an HTTP error into what it means for a Relution fetch.
fn classify(error: HttpError) -> FetchError {
    match error.status() {
        Some(StatusCode::UNAUTHORIZED) => FetchError::Credentials(error),
        Some(StatusCode::FORBIDDEN) => FetchError::Forbidden(error),
        _ => FetchError::Http(error),
    }
}

fn failure(index: u64, error: FetchError) -> FetchFailure {
    FetchFailure {
        page: Some(page_label(index)),
        cause: error.to_string(),
    }
}

#[async_trait]
impl Connector for Relution {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, base = %display_url(&self.base), "Relution fetch starting");
        let result = self.run(sink).await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "Relution fetch failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_accept_both_spellings_and_name_what_is_missing() {
        let rule = SchoolRule::default();
        let page = decode(
            br#"{"nonpagedCount": 3, "results": [{"uuid": "a"}, {"uuid": "b"}]}"#,
            &rule,
        )
        .unwrap();
        assert_eq!((page.total, page.count, page.records.len()), (3, 2, 2));
        let page = decode(br#"{"total": 1, "items": [{"uuid": "a"}]}"#, &rule).unwrap();
        assert_eq!(page.total, 1);
        assert!(decode(br#"{"results": []}"#, &rule)
            .unwrap_err()
            .contains("nonpagedCount"));
        assert!(decode(br#"{"nonpagedCount": 1}"#, &rule)
            .unwrap_err()
            .contains("results"));
        assert!(decode(br#"{"nonpagedCount": 1, "results": [{"#, &rule)
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert!(decode(br#"{"nonpagedCount": 1, "results": [{}]}"#, &rule)
            .unwrap_err()
            .contains("uuid"));
    }
}
