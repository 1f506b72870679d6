//! The Microsoft Intune connector: reads `GET /v1.0/deviceManagement/managedDevices` from
//! Microsoft Graph page by page, following `@odata.nextLink`, and streams the devices to the
//! sync engine as `DeviceRecord`s. See docs/vendors/intune.md for the API facts it relies on
//! and docs/vendors/README.md#retries for the retry rules (which the shared `HttpClient` applies).

mod auth;
mod config;
mod mapping;

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use bestand_model::protocol::{FetchFailure, SourcePage};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use self::auth::{AuthError, IntuneTokens};
pub use self::config::{IntuneConfig, IntuneConfigError, SchoolFrom, MAX_PAGE_SIZE, SELECT_FIELDS};
use self::mapping::Page;
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::token::{AuthorizedError, TokenCache};
use crate::{Connector, PageSink};

/// The Graph permission a 403 most likely means is missing (docs/vendors/intune.md#token).
const PERMISSION: &str = "DeviceManagementManagedDevices.Read.All";
/// How often a listing starts over after Graph rejected a stale `@odata.nextLink` (400/410,
/// docs/vendors/README.md#paging). Records already delivered are not sent twice.
const MAX_RESTARTS: u32 = 1;
/// Label prefix of the pages: `managed-devices page 0`, `managed-devices page 1`, ...
const LISTING: &str = "managed-devices";

/// Why a fetch stopped. Turned into a `FetchFailure` naming the page at the boundary.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(HttpError),
    #[error("{0} (the app registration probably lacks the application permission {PERMISSION})")]
    Forbidden(HttpError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("malformed page: {0}")]
    Malformed(String),
    #[error("@odata.nextLink {0:?} does not point to the configured Graph host; not following it with the token")]
    ForeignLink(String),
    #[error("@odata.nextLink points back to the page just fetched; the listing would never end")]
    LinkLoop,
}

/// The Intune source. Build it with `Intune::new`, run it with `spawn_fetch`.
pub struct Intune {
    source_name: String,
    http: HttpClient,
    tokens: TokenCache<IntuneTokens>,
    graph: url::Url,
    first_page: url::Url,
    school_from: SchoolFrom,
}

impl fmt::Debug for Intune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intune")
            .field("source_name", &self.source_name)
            .field("graph", &display_url(&self.graph))
            .field("first_page", &display_url(&self.first_page))
            .field("tokens", &self.tokens)
            .field("http", &self.http)
            .field("school_from", &self.school_from)
            .finish()
    }
}

impl Intune {
    /// Checks the configuration and resolves the client secret. Makes no network request.
    pub fn new(
        config: IntuneConfig,
        source_name: impl Into<String>,
    ) -> Result<Intune, IntuneConfigError> {
        let endpoints = config.validate()?;
        let secret = resolve_secret(
            "client_secret",
            config.client_secret_env.as_deref(),
            config.client_secret_file.as_deref(),
        )?;
        let http = HttpClient::new(&config.request_keys().http_settings())?;
        let issuer = IntuneTokens::new(
            http.clone(),
            endpoints.token,
            config.client_id.trim().to_string(),
            secret,
            endpoints.scope,
        );
        let source_name = source_name.into();
        let tokens = TokenCache::new(issuer, http.clone(), &source_name);
        Ok(Intune {
            source_name,
            http,
            tokens,
            graph: endpoints.graph,
            first_page: endpoints.first_page,
            school_from: config.school_from,
        })
    }

    /// GETs `url` with the bearer token; on a 401 renews the token once and replays.
    async fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        let answer = self
            .tokens
            .send(|client| client.get(url.clone()).header(ACCEPT, "application/json"))
            .await;
        match answer {
            Ok(response) => Ok(response.body),
            Err(AuthorizedError::Token(error)) => Err(error.into()),
            Err(AuthorizedError::RejectedAgain(error)) => {
                Err(AuthError::Rejected(format!("{error}, again after renewing the token")).into())
            }
            Err(AuthorizedError::Http(error)) if error.status() == Some(StatusCode::FORBIDDEN) => {
                Err(FetchError::Forbidden(error))
            }
            Err(AuthorizedError::Http(error)) => Err(FetchError::Http(error)),
        }
    }

    /// Fetches and decodes one page; decoding runs on the blocking pool so the runtime
    /// threads keep serving sockets, and the body is dropped there once mapped.
    async fn page(&self, url: &url::Url) -> Result<Page, FetchError> {
        let body = self.get(url).await?;
        let school_from = self.school_from;
        tokio::task::spawn_blocking(move || mapping::decode_page(&body, school_from))
            .await
            .map_err(|error| FetchError::Malformed(format!("decoding stopped ({error})")))?
            .map_err(FetchError::Malformed)
    }

    /// The next page's URL: `@odata.nextLink` taken verbatim (it is opaque), but only on the
    /// configured Graph origin, so that the bearer token never goes to another host.
    fn next_url(&self, link: &str) -> Result<url::Url, FetchError> {
        let foreign = || FetchError::ForeignLink(link.chars().take(200).collect());
        let url = url::Url::parse(link).map_err(|_| foreign())?;
        let same_origin = url.scheme() == self.graph.scheme()
            && url.host_str() == self.graph.host_str()
            && url.port_or_known_default() == self.graph.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path().starts_with(self.graph.path());
        if same_origin {
            Ok(url)
        } else {
            Err(foreign())
        }
    }

    async fn run(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut announced: Option<u64> = None;
        let mut restarts = 0;
        let mut index: u64 = 0;
        let mut url = self.first_page.clone();
        let mut on_link = false;
        loop {
            let label = format!("{LISTING} page {index}");
            let fail = |error: FetchError| FetchFailure {
                page: Some(label.clone()),
                cause: error.to_string(),
            };
            let page = match self.page(&url).await {
                Err(FetchError::Http(error))
                    if on_link
                        && restarts < MAX_RESTARTS
                        && matches!(
                            error.status(),
                            Some(StatusCode::BAD_REQUEST | StatusCode::GONE)
                        ) =>
                {
                    restarts += 1;
                    tracing::warn!(source = %self.source_name, page = index, %error,
                        "Graph rejected the @odata.nextLink (stale skip token?); restarting the listing");
                    url = self.first_page.clone();
                    on_link = false;
                    index += 1;
                    continue;
                }
                page => page.map_err(fail)?,
            };
            if announced.is_none() {
                announced = page.count;
            }
            let mut records = page.records;
            let received = records.len();
            records.retain(|record| seen.insert(record.external_id.clone()));
            if records.len() < received {
                tracing::warn!(source = %self.source_name, page = index,
                    skipped = received - records.len(),
                    "skipped devices already delivered in this run");
            }
            let next = page
                .next_link
                .map(|link| self.next_url(&link))
                .transpose()
                .and_then(|next| match next {
                    Some(next) if next == url => Err(FetchError::LinkLoop),
                    next => Ok(next),
                })
                .map_err(fail)?;
            tracing::info!(source = %self.source_name, page = index, records = records.len(),
                delivered = seen.len(), "fetched page");
            sink.send(SourcePage {
                label: label.clone(),
                records,
                announced_total: announced,
            })
            .await?;
            match next {
                Some(next) => {
                    url = next;
                    on_link = true;
                    index += 1;
                }
                None => break,
            }
        }
        let delivered = seen.len() as u64;
        if let Some(count) = announced.filter(|count| *count != delivered) {
            tracing::warn!(source = %self.source_name, count, delivered,
                "@odata.count differs from the devices delivered (devices changed during the fetch?)");
        }
        tracing::info!(source = %self.source_name, delivered, "Intune fetch complete");
        // Without `@odata.count` Graph promises no total; what arrived is all there is.
        Ok(announced.unwrap_or(delivered))
    }
}

#[async_trait]
impl Connector for Intune {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, graph = %display_url(&self.graph), "Intune fetch starting");
        let result = self.run(sink).await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "Intune fetch failed");
        }
        result
    }
}
