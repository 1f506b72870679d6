//! The Jamf Pro connector: reads mobile devices (`/api/v2/mobile-devices/detail`) and
//! computers (`/api/v{4,3,1}/computers-inventory`) page by page and streams them to the sync
//! engine as `DeviceRecord`s. See docs/vendors/jamf-pro.md for the API facts it relies on.

mod auth;
mod config;
mod lenient;
mod mapping;
mod page;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bestand_model::protocol::{FetchFailure, SourcePage};
use bestand_model::record::DeviceRecord;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::value::RawValue;
use serde_json::Value;

use self::auth::{AuthError, Credentials, JamfProTokens};
pub use self::config::{
    ComputersApiVersion, JamfProConfig, JamfProConfigError, SchoolFrom, MAX_CONCURRENCY,
    MAX_PAGE_SIZE,
};
use self::mapping::{map_computer, map_mobile_device, MappingError, Names};
use self::page::{Mapper, Page};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::token::{AuthorizedError, TokenCache};
use crate::url_keys::UrlKeyError;
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
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
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

/// One decoded and mapped page of a listing.
struct IndexedPage<T> {
    index: u64,
    page: Page<T>,
}

/// The Jamf Pro source. Build it with `JamfPro::new`, run it with `spawn_fetch`.
pub struct JamfPro {
    source_name: String,
    http: HttpClient,
    base: url::Url,
    tokens: TokenCache<JamfProTokens>,
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
        let http = HttpClient::new(&config.request_keys().http_settings())?;
        let issuer = JamfProTokens::new(http.clone(), &base, credentials)
            .map_err(|error| UrlKeyError::parse("base_url", error))?;
        let source_name = source_name.into();
        let tokens = TokenCache::new(issuer, http.clone(), &source_name);
        let max_concurrency = config.request_keys().http_settings().max_concurrency;
        Ok(JamfPro {
            source_name,
            http,
            base,
            tokens,
            page_size: u64::from(config.page_size),
            max_concurrency,
            computers_api_version: config.computers_api_version,
            school_from: config.school_from,
            include_computers: config.include_computers,
            include_mobile_devices: config.include_mobile_devices,
        })
    }

    /// GETs `url` with the bearer token; on a 401 renews the token once and replays.
    async fn get(&self, url: &url::Url, privilege: &'static str) -> Result<Vec<u8>, FetchError> {
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
                Err(FetchError::Forbidden {
                    source: error,
                    privilege,
                })
            }
            Err(AuthorizedError::Http(error)) => Err(FetchError::Http(error)),
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, FetchError> {
        // The base was checked to be joinable in `new`; a failure here is a bug, not a panic.
        self.base
            .join(path)
            .map_err(|error| FetchError::Http(HttpError::Request(error.to_string())))
    }

    /// Fetches one page of `listing`, then decodes and maps it with `map`.
    async fn fetch_page<T: Send + 'static>(
        &self,
        listing: &'static Listing,
        index: u64,
        size: u64,
        map: &Mapper<T>,
    ) -> Result<IndexedPage<T>, FetchError> {
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
        // Decoding and mapping 2000 records is milliseconds of CPU: on the blocking pool the
        // pages in flight decode in parallel, and the runtime threads keep reading sockets.
        // The body moves in and is dropped there as soon as its page is mapped.
        let map = Arc::clone(map);
        let capacity = usize::try_from(size.min(u64::from(MAX_PAGE_SIZE))).unwrap_or(0);
        let decoded = tokio::task::spawn_blocking(move || page::decode(&body, capacity, &map))
            .await
            .map_err(|error| malformed(format!("decoding stopped ({error})")))?;
        let page = decoded.map_err(malformed)?;
        Ok(IndexedPage { index, page })
    }

    /// Fetches page 0 of `listing` and plans the rest from it; `map` maps every record.
    async fn open<T: Send + 'static>(
        &self,
        listing: &'static Listing,
        requested: u64,
        map: Mapper<T>,
    ) -> Result<Opened<T>, FetchError> {
        let first = self.fetch_page(listing, 0, requested, &map).await?;
        let total = first.page.total;
        let got = first.page.count;
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
        Ok(Opened {
            listing,
            total,
            step,
            pages: total.div_ceil(step.max(1)).max(1),
            first,
            map,
        })
    }

    /// Pages through the `opened` listings in order. One stream fetches the later pages of
    /// all of them, so that the pages of the next listing are already in flight while the
    /// last ones of the previous listing are delivered.
    fn pager<T: Send + 'static>(&self, opened: Vec<Opened<T>>) -> Pager<'_, T> {
        let requests: Vec<_> = opened
            .iter()
            .enumerate()
            .flat_map(|(slot, opened)| {
                (1..opened.pages).map(move |index| {
                    let map = Arc::clone(&opened.map);
                    (slot, opened.listing, index, opened.step, map)
                })
            })
            .collect();
        let rest = stream::iter(requests)
            .map(move |(slot, listing, index, step, map)| async move {
                let page = self
                    .fetch_page(listing, index, step, &map)
                    .await
                    .map_err(|error| PageFailure { index, error });
                (slot, page)
            })
            .buffered(self.max_concurrency)
            .boxed();
        let listings = opened
            .into_iter()
            .map(|opened| Progress {
                listing: opened.listing,
                total: opened.total,
                step: opened.step,
                fetched: 0,
                first: Some(opened.first),
            })
            .collect();
        Pager {
            listings,
            current: 0,
            pending: None,
            rest,
        }
    }

    /// Opens the computers inventory, falling back from v4 to v3 to v1 on 404 in `auto` mode.
    async fn open_computers(
        &self,
        map: Mapper<DeviceRecord>,
    ) -> Result<Opened<DeviceRecord>, FetchError> {
        let candidates: &[&'static Listing] = match self.computers_api_version {
            ComputersApiVersion::Auto => &[&COMPUTERS_V4, &COMPUTERS_V3, &COMPUTERS_V1],
            ComputersApiVersion::V4 => &[&COMPUTERS_V4],
            ComputersApiVersion::V3 => &[&COMPUTERS_V3],
            ComputersApiVersion::V1 => &[&COMPUTERS_V1],
        };
        let mut tried = candidates.iter().peekable();
        while let Some(listing) = tried.next() {
            match self.open(listing, self.page_size, Arc::clone(&map)).await {
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
        // Buildings are few: a `Value` per building is cheap, and keeps one reading of names.
        let map: Mapper<Option<(String, String)>> = Arc::new(|raw: &RawValue| {
            Ok(serde_json::from_str(raw.get())
                .ok()
                .as_ref()
                .and_then(id_and_name))
        });
        let mut buildings = HashMap::new();
        let opened = self.open(&BUILDINGS, BUILDINGS_PAGE_SIZE, map).await?;
        let mut pager = self.pager(vec![opened]);
        while let Some((_, page)) = pager.next().await {
            let page = page.map_err(|failure| failure.error)?;
            // The mapping above never fails.
            if let Ok(items) = page.page.items {
                buildings.extend(items.into_iter().flatten());
            }
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

    /// A mapper of device records, for the blocking pool (hence the shared names).
    fn device_mapper(
        &self,
        names: &Arc<Names>,
        map: fn(&RawValue, &Names, SchoolFrom) -> Result<DeviceRecord, MappingError>,
    ) -> Mapper<DeviceRecord> {
        let names = Arc::clone(names);
        let school_from = self.school_from;
        Arc::new(move |raw: &RawValue| map(raw, &names, school_from))
    }

    async fn run(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let names = Arc::new(self.load_names().await?);
        // Both listings are opened before anything is sent, so that every page can carry the
        // full announced total for progress reporting. They are opened at once to save a
        // round trip; the first failure ends the fetch (and drops the other request).
        let mobile = async {
            if !self.include_mobile_devices {
                return Ok(None);
            }
            let map = self.device_mapper(&names, map_mobile_device);
            self.open(&MOBILE_DEVICES, self.page_size, map)
                .await
                .map(Some)
                .map_err(|error| failure(Some(page_label(&MOBILE_DEVICES, 0)), error))
        };
        let computers = async {
            if !self.include_computers {
                return Ok(None);
            }
            self.open_computers(self.device_mapper(&names, map_computer))
                .await
                .map(Some)
                .map_err(|error| failure(Some(page_label(&COMPUTERS_V4, 0)), error))
        };
        let (mobile, computers) = tokio::try_join!(mobile, computers)?;
        let opened: Vec<Opened<DeviceRecord>> = mobile.into_iter().chain(computers).collect();
        let announced = opened.iter().map(|listing| listing.total).sum();
        let mut delivery = Delivery {
            connector: self,
            sink,
            announced,
            seen: HashSet::new(),
        };
        delivery.drain(self.pager(opened)).await?;
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

/// A listing whose page 0 has arrived, with the paging planned from it.
struct Opened<T> {
    listing: &'static Listing,
    total: u64,
    /// Records per page as the server really pages.
    step: u64,
    pages: u64,
    first: IndexedPage<T>,
    map: Mapper<T>,
}

/// Walks the pages of opened listings in order and checks each listing against its
/// `totalCount`. At most `max_concurrency` later pages are in flight (fetching, decoding, or
/// decoded and waiting for their turn), so memory stays bounded by that many bodies and
/// mapped pages besides the first pages.
struct Pager<'a, T> {
    /// In delivery order.
    listings: Vec<Progress<T>>,
    /// The listing being delivered.
    current: usize,
    /// A page of a later listing, pulled while looking for more of the current one.
    pending: Option<(usize, Result<IndexedPage<T>, PageFailure>)>,
    /// Pages 1 and on of every listing, each with the slot of its listing.
    rest: BoxStream<'a, (usize, Result<IndexedPage<T>, PageFailure>)>,
}

/// How far one listing has been delivered.
struct Progress<T> {
    listing: &'static Listing,
    total: u64,
    step: u64,
    fetched: u64,
    first: Option<IndexedPage<T>>,
}

/// A failed page of a listing: which page, and why.
struct PageFailure {
    index: u64,
    error: FetchError,
}

impl<T> Pager<'_, T> {
    /// The next page and its listing, or `None` once every listing has delivered its
    /// `totalCount` records. A page that leaves the count short of what its position promises
    /// fails the listing; a short page alone never ends it.
    async fn next(&mut self) -> Option<(&'static Listing, Result<IndexedPage<T>, PageFailure>)> {
        loop {
            let progress = self.listings.get_mut(self.current)?;
            if let Some(first) = progress.first.take() {
                return Some((progress.listing, progress.check(first)));
            }
            if progress.fetched >= progress.total {
                self.current += 1;
                continue;
            }
            let (slot, page) = match self.pending.take() {
                Some(pulled) => pulled,
                None => self.rest.next().await?,
            };
            if slot < self.current {
                // A page past the total of a listing already complete: not needed.
                continue;
            }
            if slot > self.current {
                // The current listing has no pages left.
                self.pending = Some((slot, page));
                self.current += 1;
                continue;
            }
            return Some((progress.listing, page.and_then(|page| progress.check(page))));
        }
    }
}

impl<T> Progress<T> {
    /// Counts `page` in and checks the count against what the page's position promises.
    fn check(&mut self, page: IndexedPage<T>) -> Result<IndexedPage<T>, PageFailure> {
        let got = page.page.count;
        self.fetched += got;
        if page.page.total != self.total {
            tracing::warn!(
                listing = self.listing.name,
                page = page.index,
                first_total = self.total,
                now_total = page.page.total,
                "totalCount changed while paging; keeping the first one"
            );
        }
        let expected = self.total.min((page.index + 1).saturating_mul(self.step));
        if self.fetched < expected {
            return Err(PageFailure {
                index: page.index,
                error: FetchError::ShortPage {
                    listing: self.listing.name,
                    page: page.index,
                    got,
                    fetched: self.fetched,
                    announced: self.total,
                },
            });
        }
        tracing::info!(
            listing = self.listing.name,
            page = page.index,
            records = got,
            fetched = self.fetched,
            announced = self.total,
            "fetched page"
        );
        Ok(page)
    }
}

/// Hands mapped pages to the engine, dropping records already sent in this run
/// (offset paging is not snapshot-isolated, so a record can show up on two pages).
struct Delivery<'a> {
    connector: &'a JamfPro,
    sink: &'a PageSink,
    announced: u64,
    seen: HashSet<String>,
}

impl Delivery<'_> {
    async fn drain(&mut self, mut pager: Pager<'_, DeviceRecord>) -> Result<(), FetchFailure> {
        let mut duplicates: BTreeMap<&'static str, u64> = BTreeMap::new();
        while let Some((listing, page)) = pager.next().await {
            let page = page
                .map_err(|failed| failure(Some(page_label(listing, failed.index)), failed.error))?;
            let label = page_label(listing, page.index);
            let mut records = page.page.items.map_err(|error| {
                failure(
                    Some(label.clone()),
                    FetchError::Malformed {
                        listing: listing.name,
                        page: page.index,
                        cause: error.to_string(),
                    },
                )
            })?;
            let mapped = records.len();
            records.retain(|record| self.seen.insert(record.external_id.clone()));
            if records.len() < mapped {
                *duplicates.entry(listing.name).or_default() += (mapped - records.len()) as u64;
            }
            self.sink
                .send(SourcePage {
                    label,
                    records,
                    announced_total: Some(self.announced),
                })
                .await?;
        }
        for (listing, duplicates) in duplicates {
            tracing::warn!(
                source = %self.connector.source_name,
                listing,
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
