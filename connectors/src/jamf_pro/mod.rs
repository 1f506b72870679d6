//! The Jamf Pro connector: reads mobile devices (`/api/v2/mobile-devices/detail`) and
//! computers (`/api/v{4,3,1}/computers-inventory`) page by page and streams them to the sync
//! engine as `DeviceRecord`s. See vendor-apis.md section 1 for the API facts it relies on.

mod auth;
mod config;
mod mapping;

use std::collections::{HashMap, HashSet};
use std::fmt;

use async_trait::async_trait;
use bestand_core::record::DeviceRecord;
use bestand_core::sync::{FetchFailure, SourcePage};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;

use self::auth::{AuthError, Bearer, Credentials, TokenSource};
pub use self::config::{
    ComputersApiVersion, JamfProConfig, JamfProConfigError, SchoolFrom, MAX_CONCURRENCY,
    MAX_PAGE_SIZE,
};
use self::mapping::{map_computer, map_mobile_device, MappingError, Names};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::{Connector, PageSink};

/// One paged Jamf Pro collection and how to ask for it.
struct Listing {
    /// Used in page labels and error texts.
    name: &'static str,
    path: &'static str,
    sections: &'static [&'static str],
    sort: Option<&'static str>,
    /// The API-role privilege a 403 most likely means is missing.
    privilege: &'static str,
}

const COMPUTER_SECTIONS: &[&str] = &[
    "GENERAL",
    "HARDWARE",
    "USER_AND_LOCATION",
    "PURCHASING",
    "OPERATING_SYSTEM",
];

static MOBILE_DEVICES: Listing = Listing {
    name: "mobile-devices",
    path: "api/v2/mobile-devices/detail",
    sections: &["GENERAL", "HARDWARE", "USER_AND_LOCATION", "PURCHASING"],
    sort: Some("mobileDeviceId:asc"),
    privilege: "Read Mobile Devices",
};

static COMPUTERS_V4: Listing = computers_listing("api/v4/computers-inventory");
static COMPUTERS_V3: Listing = computers_listing("api/v3/computers-inventory");
static COMPUTERS_V1: Listing = computers_listing("api/v1/computers-inventory");

const fn computers_listing(path: &'static str) -> Listing {
    Listing {
        name: "computers-inventory",
        path,
        sections: COMPUTER_SECTIONS,
        sort: Some("id:asc"),
        privilege: "Read Computers",
    }
}

static BUILDINGS: Listing = Listing {
    name: "buildings",
    path: "api/v1/buildings",
    sections: &[],
    sort: None,
    privilege: "Read Buildings",
};

const SITES_PATH: &str = "api/v1/sites";
/// Buildings are few; one big page usually holds them all.
const BUILDINGS_PAGE_SIZE: u64 = 2000;

/// Why a fetch stopped. Turned into a `FetchFailure` (with the page label) at the boundary.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(HttpError),
    #[error("{source} (the API role probably lacks the privilege \"{privilege}\")")]
    Forbidden {
        source: HttpError,
        privilege: &'static str,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("page {page} of {listing} returned {} records, {} of {} announced",
        thousands(*got), thousands(*fetched), thousands(*announced))]
    ShortPage {
        listing: &'static str,
        page: u64,
        got: u64,
        fetched: u64,
        announced: u64,
    },
    #[error("page {page} of {listing} is malformed: {cause}")]
    Malformed {
        listing: &'static str,
        page: u64,
        cause: String,
    },
    #[error("{0} is malformed: {1}")]
    MalformedLookup(&'static str, String),
}

/// `1234567` as `1,234,567`, for counts in error texts.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn failure(page: Option<String>, error: impl fmt::Display) -> FetchFailure {
    FetchFailure {
        page,
        cause: error.to_string(),
    }
}

fn page_label(listing: &Listing, page: u64) -> String {
    format!("{} page {page}", listing.name)
}

/// One decoded page: the announced total and the raw records.
struct RawPage {
    index: u64,
    total: u64,
    results: Vec<Value>,
}

/// The Jamf Pro source. Build it with `JamfPro::new`, run it with `spawn_fetch`.
pub struct JamfPro {
    source_name: String,
    http: HttpClient,
    base: url::Url,
    tokens: TokenSource,
    page_size: u64,
    max_concurrency: usize,
    computers_api_version: ComputersApiVersion,
    school_from: SchoolFrom,
    include_computers: bool,
    include_mobile_devices: bool,
}

impl fmt::Debug for JamfPro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JamfPro")
            .field("source_name", &self.source_name)
            .field("base", &display_url(&self.base))
            .field("tokens", &self.tokens)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .field("max_concurrency", &self.max_concurrency)
            .field("computers_api_version", &self.computers_api_version)
            .field("school_from", &self.school_from)
            .field("include_computers", &self.include_computers)
            .field("include_mobile_devices", &self.include_mobile_devices)
            .finish()
    }
}

impl JamfPro {
    /// Checks the configuration and resolves the secrets. Makes no network request.
    pub fn new(
        config: JamfProConfig,
        source_name: impl Into<String>,
    ) -> Result<JamfPro, JamfProConfigError> {
        let base = config.validate()?;
        let credentials = credentials(&config)?;
        let http = HttpClient::new(&config.http_settings())?;
        let tokens = TokenSource::new(http.clone(), &base, credentials)
            .map_err(|error| JamfProConfigError::BaseUrl(error.to_string()))?;
        Ok(JamfPro {
            source_name: source_name.into(),
            http,
            base,
            tokens,
            page_size: u64::from(config.page_size),
            max_concurrency: config.max_concurrency,
            computers_api_version: config.computers_api_version,
            school_from: config.school_from,
            include_computers: config.include_computers,
            include_mobile_devices: config.include_mobile_devices,
        })
    }

    /// GETs `url` with the bearer token; on a 401 renews the token once and replays.
    async fn get(&self, url: &url::Url, privilege: &'static str) -> Result<Vec<u8>, FetchError> {
        let bearer = self.tokens.bearer().await?;
        let answer = match self.get_with(url, &bearer).await {
            Err(error) if error.status() == Some(StatusCode::UNAUTHORIZED) => {
                tracing::warn!(
                    source = %self.source_name,
                    %url,
                    "Jamf Pro answered 401; renewing the token and replaying the request"
                );
                let renewed = self
                    .tokens
                    .renew_after_unauthorized(bearer.generation)
                    .await?;
                match self.get_with(url, &renewed).await {
                    Err(error) if error.status() == Some(StatusCode::UNAUTHORIZED) => {
                        return Err(AuthError::Rejected(format!(
                            "{error}, again after renewing the token"
                        ))
                        .into());
                    }
                    answer => answer,
                }
            }
            answer => answer,
        };
        answer.map_err(|error| {
            if error.status() == Some(StatusCode::FORBIDDEN) {
                FetchError::Forbidden {
                    source: error,
                    privilege,
                }
            } else {
                FetchError::Http(error)
            }
        })
    }

    async fn get_with(&self, url: &url::Url, bearer: &Bearer) -> Result<Vec<u8>, HttpError> {
        let response = self
            .http
            .send(|client| {
                client
                    .get(url.clone())
                    .header(ACCEPT, "application/json")
                    .bearer_auth(bearer.value.expose_secret())
            })
            .await?;
        Ok(response.body)
    }

    fn url(&self, path: &str) -> Result<url::Url, FetchError> {
        // The base was checked to be joinable in `new`; a failure here is a bug, not a panic.
        self.base
            .join(path)
            .map_err(|error| FetchError::Http(HttpError::Request(error.to_string())))
    }

    /// Fetches and decodes one page of `listing`.
    async fn fetch_page(
        &self,
        listing: &'static Listing,
        index: u64,
        size: u64,
    ) -> Result<RawPage, FetchError> {
        let mut url = self.url(listing.path)?;
        {
            let mut query = url.query_pairs_mut();
            for section in listing.sections {
                query.append_pair("section", section);
            }
            query.append_pair("page", &index.to_string());
            query.append_pair("page-size", &size.to_string());
            if let Some(sort) = listing.sort {
                query.append_pair("sort", sort);
            }
        }
        let body = self.get(&url, listing.privilege).await?;
        let malformed = |cause: String| FetchError::Malformed {
            listing: listing.name,
            page: index,
            cause,
        };
        let mut page: Value = serde_json::from_slice(&body)
            .map_err(|error| malformed(format!("invalid JSON ({error})")))?;
        let total = page
            .get("totalCount")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("no numeric `totalCount`".to_string()))?;
        let results = match page.get_mut("results").map(Value::take) {
            Some(Value::Array(results)) => results,
            Some(_) => return Err(malformed("`results` is not an array".to_string())),
            None => return Err(malformed("no `results`".to_string())),
        };
        Ok(RawPage {
            index,
            total,
            results,
        })
    }

    /// Fetches page 0 of `listing` and plans the rest from it.
    async fn open(
        &self,
        listing: &'static Listing,
        requested: u64,
    ) -> Result<Pager<'_>, FetchError> {
        let first = self.fetch_page(listing, 0, requested).await?;
        let total = first.total;
        let got = first.results.len() as u64;
        if got == 0 && total > 0 {
            return Err(FetchError::ShortPage {
                listing: listing.name,
                page: 0,
                got,
                fetched: 0,
                announced: total,
            });
        }
        // Jamf silently caps page-size (at 2000 today): when page 0 holds fewer records than
        // asked for but more remain, that count is the server's real page size.
        let step = if got < requested && got < total {
            tracing::info!(
                source = %self.source_name,
                listing = listing.name,
                requested,
                returned = got,
                "server returns fewer records per page than requested; paging by its size"
            );
            got
        } else {
            requested
        };
        let pages = total.div_ceil(step.max(1)).max(1);
        let rest = stream::iter(1..pages)
            .map(move |index| async move {
                self.fetch_page(listing, index, step)
                    .await
                    .map_err(|error| PageFailure { index, error })
            })
            .buffered(self.max_concurrency)
            .boxed();
        Ok(Pager {
            listing,
            total,
            step,
            fetched: 0,
            first: Some(first),
            rest,
        })
    }

    /// Opens the computers inventory, falling back from v4 to v3 to v1 on 404 in `auto` mode.
    async fn open_computers(&self) -> Result<Pager<'_>, FetchError> {
        let candidates: &[&'static Listing] = match self.computers_api_version {
            ComputersApiVersion::Auto => &[&COMPUTERS_V4, &COMPUTERS_V3, &COMPUTERS_V1],
            ComputersApiVersion::V4 => &[&COMPUTERS_V4],
            ComputersApiVersion::V3 => &[&COMPUTERS_V3],
            ComputersApiVersion::V1 => &[&COMPUTERS_V1],
        };
        let mut tried = candidates.iter().peekable();
        while let Some(listing) = tried.next() {
            match self.open(listing, self.page_size).await {
                Err(FetchError::Http(error))
                    if error.status() == Some(StatusCode::NOT_FOUND) && tried.peek().is_some() =>
                {
                    tracing::info!(
                        source = %self.source_name,
                        path = listing.path,
                        "computers-inventory version not available (404); trying an older one"
                    );
                }
                opened => return opened,
            }
        }
        // Only reached with an empty candidate list, which the match above never builds.
        Err(FetchError::Http(HttpError::Request(
            "no computers-inventory version to try".to_string(),
        )))
    }

    /// Site names by id, for mobile devices (which carry only `siteId`).
    async fn load_sites(&self) -> Result<HashMap<String, String>, FetchError> {
        let body = self.get(&self.url(SITES_PATH)?, "Read Sites").await?;
        let sites: Value = serde_json::from_slice(&body).map_err(|error| {
            FetchError::MalformedLookup("sites", format!("invalid JSON ({error})"))
        })?;
        let Value::Array(sites) = sites else {
            return Err(FetchError::MalformedLookup(
                "sites",
                "not a JSON array".to_string(),
            ));
        };
        Ok(sites.iter().filter_map(id_and_name).collect())
    }

    /// Building names by id, for computers (which carry only `buildingId`).
    async fn load_buildings(&self) -> Result<HashMap<String, String>, FetchError> {
        let mut buildings = HashMap::new();
        let mut pager = self.open(&BUILDINGS, BUILDINGS_PAGE_SIZE).await?;
        while let Some(page) = pager.next().await {
            let page = page.map_err(|failure| failure.error)?;
            buildings.extend(page.results.iter().filter_map(id_and_name));
        }
        Ok(buildings)
    }

    async fn load_names(&self) -> Result<Names, FetchFailure> {
        let mut names = Names::default();
        if self.include_mobile_devices && self.school_from == SchoolFrom::Site {
            names.sites = self
                .load_sites()
                .await
                .map_err(|error| failure(Some("sites".to_string()), error))?;
        }
        // Buildings fill `location.building` of computers, and name the school in `building`
        // mode; only for computers in `building` mode is the list essential (mobile devices
        // carry the building name themselves).
        let essential = self.include_computers && self.school_from == SchoolFrom::Building;
        if self.include_computers || self.school_from == SchoolFrom::Building {
            match self.load_buildings().await {
                Ok(buildings) => names.buildings = buildings,
                Err(FetchError::Forbidden { source, .. }) if !essential => {
                    tracing::warn!(
                        source = %self.source_name,
                        error = %source,
                        "cannot read buildings (403); devices get no building names from ids"
                    );
                }
                Err(error) => return Err(failure(Some("buildings".to_string()), error)),
            }
        }
        Ok(names)
    }

    async fn run(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let names = self.load_names().await?;
        // Both listings are opened before anything is sent, so that every page can carry the
        // full announced total for progress reporting.
        let mobile = if self.include_mobile_devices {
            let opened = self
                .open(&MOBILE_DEVICES, self.page_size)
                .await
                .map_err(|error| failure(Some(page_label(&MOBILE_DEVICES, 0)), error))?;
            Some(opened)
        } else {
            None
        };
        let computers = if self.include_computers {
            let opened = self
                .open_computers()
                .await
                .map_err(|error| failure(Some(page_label(&COMPUTERS_V4, 0)), error))?;
            Some(opened)
        } else {
            None
        };
        let announced = mobile.as_ref().map_or(0, |pager| pager.total)
            + computers.as_ref().map_or(0, |pager| pager.total);
        let mut delivery = Delivery {
            connector: self,
            sink,
            names,
            announced,
            seen: HashSet::new(),
        };
        if let Some(pager) = mobile {
            delivery.drain(pager, map_mobile_device).await?;
        }
        if let Some(pager) = computers {
            delivery.drain(pager, map_computer).await?;
        }
        tracing::info!(
            source = %self.source_name,
            announced,
            distinct = delivery.seen.len(),
            "Jamf Pro fetch complete"
        );
        Ok(announced)
    }
}

/// A name from `{ "id": "1", "name": "..." }`.
fn id_and_name(item: &Value) -> Option<(String, String)> {
    let id = match item.get("id")? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let name = item.get("name")?.as_str()?.trim();
    (!name.is_empty()).then(|| (id, name.to_string()))
}

/// Builds the connector's credentials from the config: exactly one of OAuth and user account.
fn credentials(config: &JamfProConfig) -> Result<Credentials, JamfProConfigError> {
    let non_empty = |value: &Option<String>, key: &'static str| match value.as_deref() {
        Some(text) if text.trim().is_empty() => Err(JamfProConfigError::EmptyKey(key)),
        other => Ok(other.map(|text| text.trim().to_string())),
    };
    let client_id = non_empty(&config.client_id, "client_id")?;
    let username = non_empty(&config.username, "username")?;
    let stray = |secret_set: bool, identity: &Option<String>, secret_key, needs| {
        if secret_set && identity.is_none() {
            return Err(JamfProConfigError::SecretWithoutIdentity { secret_key, needs });
        }
        Ok(())
    };
    stray(
        config.client_secret_env.is_some() || config.client_secret_file.is_some(),
        &client_id,
        "client_secret_env/client_secret_file",
        "client_id",
    )?;
    stray(
        config.password_env.is_some() || config.password_file.is_some(),
        &username,
        "password_env/password_file",
        "username",
    )?;
    match (client_id, username) {
        (Some(_), Some(_)) => Err(JamfProConfigError::BothCredentials),
        (None, None) => Err(JamfProConfigError::NoCredentials),
        (Some(client_id), None) => Ok(Credentials::OAuth {
            client_id,
            client_secret: resolve_secret(
                "client_secret",
                config.client_secret_env.as_deref(),
                config.client_secret_file.as_deref(),
            )?,
        }),
        (None, Some(username)) => Ok(Credentials::User {
            username,
            password: resolve_secret(
                "password",
                config.password_env.as_deref(),
                config.password_file.as_deref(),
            )?,
        }),
    }
}

/// Walks the pages of one opened listing in order and checks them against `totalCount`.
struct Pager<'a> {
    listing: &'static Listing,
    total: u64,
    step: u64,
    fetched: u64,
    first: Option<RawPage>,
    rest: BoxStream<'a, Result<RawPage, PageFailure>>,
}

/// A failed page of a listing: which page, and why.
struct PageFailure {
    index: u64,
    error: FetchError,
}

impl Pager<'_> {
    /// The next page, or `None` once `totalCount` records have arrived. A page that leaves
    /// the count short of what its position promises fails the listing; a short page alone
    /// never ends it.
    async fn next(&mut self) -> Option<Result<RawPage, PageFailure>> {
        if self.fetched >= self.total && self.first.is_none() {
            return None;
        }
        let page = match self.first.take() {
            Some(page) => page,
            None => match self.rest.next().await? {
                Ok(page) => page,
                Err(error) => return Some(Err(error)),
            },
        };
        let got = page.results.len() as u64;
        self.fetched += got;
        if page.total != self.total {
            tracing::warn!(
                listing = self.listing.name,
                page = page.index,
                first_total = self.total,
                now_total = page.total,
                "totalCount changed while paging; keeping the first one"
            );
        }
        let expected = self.total.min((page.index + 1).saturating_mul(self.step));
        if self.fetched < expected {
            return Some(Err(PageFailure {
                index: page.index,
                error: FetchError::ShortPage {
                    listing: self.listing.name,
                    page: page.index,
                    got,
                    fetched: self.fetched,
                    announced: self.total,
                },
            }));
        }
        tracing::info!(
            listing = self.listing.name,
            page = page.index,
            records = got,
            fetched = self.fetched,
            announced = self.total,
            "fetched page"
        );
        Some(Ok(page))
    }
}

/// Maps pages and hands them to the engine, dropping records already sent in this run
/// (offset paging is not snapshot-isolated, so a record can show up on two pages).
struct Delivery<'a> {
    connector: &'a JamfPro,
    sink: &'a PageSink,
    names: Names,
    announced: u64,
    seen: HashSet<String>,
}

impl Delivery<'_> {
    async fn drain(
        &mut self,
        mut pager: Pager<'_>,
        map: fn(Value, &Names, SchoolFrom) -> Result<DeviceRecord, MappingError>,
    ) -> Result<(), FetchFailure> {
        let listing = pager.listing;
        let mut duplicates: u64 = 0;
        while let Some(page) = pager.next().await {
            let page = page
                .map_err(|failed| failure(Some(page_label(listing, failed.index)), failed.error))?;
            let label = page_label(listing, page.index);
            let mut records = Vec::with_capacity(page.results.len());
            for raw in page.results {
                let record =
                    map(raw, &self.names, self.connector.school_from).map_err(|error| {
                        failure(
                            Some(label.clone()),
                            FetchError::Malformed {
                                listing: listing.name,
                                page: page.index,
                                cause: error.to_string(),
                            },
                        )
                    })?;
                if self.seen.insert(record.external_id.clone()) {
                    records.push(record);
                } else {
                    duplicates += 1;
                }
            }
            self.sink
                .send(SourcePage {
                    label,
                    records,
                    announced_total: Some(self.announced),
                })
                .await?;
        }
        if duplicates > 0 {
            tracing::warn!(
                source = %self.connector.source_name,
                listing = listing.name,
                duplicates,
                "skipped records seen twice while paging (the data changed during the fetch)"
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for JamfPro {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, base = %display_url(&self.base), "Jamf Pro fetch starting");
        let result = self.run(sink).await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "Jamf Pro fetch failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3000), "3,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
