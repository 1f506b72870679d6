//! The Jamf School connector: reads every device with one `GET /api/devices` (the API does not
//! page; it returns the whole array and its `count`) and hands them to the sync engine in pages
//! of `page_size` records. See vendor-apis.md section 2 for the API facts it relies on.
//!
//! The body of a large tenant is one big buffer, so it is read chunk by chunk against
//! `max_response_mb` instead of trusting the server; the array is then decoded into borrowed
//! `RawValue`s (no value tree), and records are mapped and sent one page at a time.

mod config;
mod mapping;
mod transfer;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use bestand_model::protocol::{FetchFailure, SourcePage};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

pub use self::config::{
    JamfSchoolConfig, JamfSchoolConfigError, SchoolFrom, DEFAULT_PROTOCOL_VERSION,
};
use self::mapping::{map_device, MappingError, Schools};
use self::transfer::Transfer;
use crate::http::{display_url, HttpError};
use crate::secret::resolve_secret;
use crate::{Connector, PageSink};

const DEVICES: &str = "api/devices";
const LOCATIONS: &str = "api/locations";

/// Why a fetch failed; the `Display` text is the cause of the `FetchFailure`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(
        "Jamf School rejected the network ID and API key (check `network_id` and the key): {0}"
    )]
    Unauthorized(HttpError),
    #[error("the API key lacks the access right to read {what} (Organization > Settings > API): {source}")]
    Forbidden {
        source: HttpError,
        what: &'static str,
    },
    #[error(
        "{source} (Jamf School also answers 404 to an unsupported `X-Server-Protocol-Version`; \
             this source sends {protocol})"
    )]
    NotFound { source: HttpError, protocol: String },
    #[error(transparent)]
    Http(HttpError),
    #[error(
        "the response is larger than `max_response_mb` = {limit_mb} MiB ({seen}); \
             raise the limit if the tenant really is that large"
    )]
    TooLarge { limit_mb: u64, seen: String },
    #[error("the response is malformed: {0}")]
    Malformed(String),
    #[error("the response holds {got} devices, but its `count` is {count}")]
    Short { got: u64, count: u64 },
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// The label of a request in failures, e.g. `GET /api/devices`.
fn request_label(path: &str) -> String {
    format!("GET /{path}")
}

fn failure(path: &str, error: FetchError) -> FetchFailure {
    FetchFailure {
        page: Some(request_label(path)),
        cause: error.to_string(),
    }
}

/// The Jamf School source. Build it with `JamfSchool::new`, run it with `spawn_fetch`.
pub struct JamfSchool {
    source_name: String,
    base: url::Url,
    transfer: Transfer,
    page_size: usize,
    school_from: SchoolFrom,
}

impl fmt::Debug for JamfSchool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JamfSchool")
            .field("source_name", &self.source_name)
            .field("base", &display_url(&self.base))
            .field("transfer", &self.transfer)
            .field("page_size", &self.page_size)
            .field("school_from", &self.school_from)
            .finish()
    }
}

/// The envelope `{ "code": 200, "count": n, "devices": [...] }`; records stay raw text.
#[derive(Deserialize)]
struct DevicesBody<'a> {
    count: Option<u64>,
    #[serde(borrow)]
    devices: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct LocationsBody {
    locations: Option<Vec<serde_json::Value>>,
}

impl JamfSchool {
    /// Checks the configuration and resolves the API key. Makes no network request.
    pub fn new(
        config: JamfSchoolConfig,
        source_name: impl Into<String>,
    ) -> Result<JamfSchool, JamfSchoolConfigError> {
        let base = config.validate()?;
        let api_key = resolve_secret(
            "api_key",
            config.api_key_env.as_deref(),
            config.api_key_file.as_deref(),
        )?;
        let transfer = Transfer::new(&config, api_key)?;
        Ok(JamfSchool {
            source_name: source_name.into(),
            base,
            transfer,
            page_size: config.page_size,
            school_from: config.school_from,
        })
    }

    /// GETs `path` below the base URL and returns the whole body, or the failure naming it.
    async fn get(&self, path: &'static str, what: &'static str) -> Result<Vec<u8>, FetchFailure> {
        let url = self.base.join(path).map_err(|error| {
            failure(
                path,
                FetchError::Http(HttpError::Request(error.to_string())),
            )
        })?;
        self.transfer.get(&url).await.map_err(|error| {
            let error = match error {
                FetchError::Http(error) => match error.status() {
                    Some(StatusCode::UNAUTHORIZED) => FetchError::Unauthorized(error),
                    Some(StatusCode::FORBIDDEN) => FetchError::Forbidden {
                        source: error,
                        what,
                    },
                    Some(StatusCode::NOT_FOUND) => FetchError::NotFound {
                        source: error,
                        protocol: self.transfer.protocol_version().to_string(),
                    },
                    _ => FetchError::Http(error),
                },
                other => other,
            };
            failure(path, error)
        })
    }

    /// Location names by id, for `school_from = "location_name"`.
    async fn load_locations(&self) -> Result<HashMap<String, String>, FetchFailure> {
        let body = self.get(LOCATIONS, "locations").await?;
        let malformed = |cause: String| failure(LOCATIONS, FetchError::Malformed(cause));
        let parsed: LocationsBody = serde_json::from_slice(&body)
            .map_err(|error| malformed(format!("invalid JSON ({error})")))?;
        let locations = parsed
            .locations
            .ok_or_else(|| malformed("no `locations` array".to_string()))?;
        Ok(locations
            .iter()
            .filter_map(|location| {
                let id = match location.get("id")? {
                    serde_json::Value::Number(id) => id.to_string(),
                    serde_json::Value::String(id) => id.trim().to_string(),
                    _ => return None,
                };
                let name = location.get("name")?.as_str()?.trim();
                (!name.is_empty()).then(|| (id, name.to_string()))
            })
            .collect())
    }

    async fn run(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        let names = match self.school_from {
            SchoolFrom::LocationName => self.load_locations().await?,
            SchoolFrom::LocationId | SchoolFrom::None => HashMap::new(),
        };
        let schools = Schools {
            from: self.school_from,
            names,
        };
        let body = self.get(DEVICES, "devices").await?;
        let fail = |error: FetchError| failure(DEVICES, error);
        let parsed: DevicesBody<'_> = serde_json::from_slice(&body)
            .map_err(|error| fail(FetchError::Malformed(format!("invalid JSON ({error})"))))?;
        let count = parsed
            .count
            .ok_or_else(|| fail(FetchError::Malformed("no numeric `count`".to_string())))?;
        let devices = parsed
            .devices
            .ok_or_else(|| fail(FetchError::Malformed("no `devices` array".to_string())))?;
        let got = devices.len() as u64;
        if got < count {
            return Err(fail(FetchError::Short { got, count }));
        }
        if got > count {
            tracing::warn!(
                source = %self.source_name,
                got,
                count,
                "Jamf School sent more devices than its `count`; using the array length"
            );
        }
        for (chunk_index, chunk) in devices.chunks(self.page_size).enumerate() {
            let first = chunk_index * self.page_size;
            let records = chunk
                .iter()
                .enumerate()
                .map(|(offset, raw)| map_device(raw, first + offset, &schools))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| fail(FetchError::Mapping(error)))?;
            let label = format!(
                "{} devices {}-{} of {got}",
                request_label(DEVICES),
                first + 1,
                first + chunk.len()
            );
            sink.send(SourcePage {
                label,
                records,
                announced_total: Some(got),
            })
            .await?;
        }
        tracing::info!(source = %self.source_name, devices = got, "Jamf School fetch complete");
        Ok(got)
    }
}

#[async_trait]
impl Connector for JamfSchool {
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, base = %display_url(&self.base), "Jamf School fetch starting");
        let result = self.run(sink).await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "Jamf School fetch failed");
        }
        result
    }
}
