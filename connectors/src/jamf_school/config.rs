//! The kind-specific keys of a `kind = "jamf_school"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources before deserializing the rest into
//! `JamfSchoolConfig`, so unknown keys here are typos.

use std::path::PathBuf;

use serde::Deserialize;

use crate::request_keys::{RequestKeyError, RequestKeys};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// The schema version public clients pin (docs/vendors/jamf-school.md#authentication).
pub const DEFAULT_PROTOCOL_VERSION: u32 = 3;

/// Configuration of one Jamf School source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JamfSchoolConfig {
    /// Root URL of the Jamf School instance, e.g. `https://musterstadt.jamfcloud.com`. The
    /// connector appends `api/devices` itself; a URL that already ends in `/api` (as the
    /// vendor documents the base URL) is accepted too.
    pub base_url: String,
    /// The "Network ID" (Devices > Enroll Device(s)); the user part of HTTP Basic auth.
    pub network_id: String,
    /// Name of the environment variable that holds the API key (Organization > Settings > API).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Path of a file that holds the API key (a trailing newline is ignored).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Sent as `X-Server-Protocol-Version`; selects the response schema. Public clients send 3
    /// (verified only in third-party code); a wrong version can surface as HTTP 404.
    #[serde(default = "default_protocol_version")]
    pub protocol_version: u32,
    /// Time limit for one request including its whole body, in seconds. Generous, because
    /// `GET /api/devices` returns every device in one response.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The largest response body accepted, in MiB; a larger one fails the fetch instead of
    /// filling memory. Whether Jamf School truncates huge tenants is unverified.
    #[serde(default = "default_max_response_mb")]
    pub max_response_mb: u64,
    /// Records per page handed to the sync engine (the API itself does not page).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Tries per request (the first included) on throttling, server errors and network errors.
    #[serde(default = "default_retry_max_attempts")]
    pub retry_max_attempts: u32,
    /// Backoff ceiling before the first retry in milliseconds; it doubles per retry.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Largest backoff ceiling in milliseconds.
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// Which field names the school of a device. Jamf School models schools as "locations";
    /// devices carry only `locationId` (verified only in third-party code). See [`SchoolFrom`].
    #[serde(default = "default_school_from")]
    pub school_from: SchoolFrom,
}

/// Which Jamf School field becomes the school of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolFrom {
    /// The name of the device's location, looked up once per fetch from `GET /api/locations`
    /// (`locations[].id`/`name`); the usual setup is one location per school.
    LocationName,
    /// The device's `locationId` as text, for authorities that list those ids as school
    /// aliases; needs no extra request.
    LocationId,
    /// No school from this source.
    None,
}

fn default_protocol_version() -> u32 {
    DEFAULT_PROTOCOL_VERSION
}

fn default_timeout_secs() -> u64 {
    300
}

fn default_max_response_mb() -> u64 {
    512
}

fn default_page_size() -> usize {
    1000
}

fn default_retry_max_attempts() -> u32 {
    6
}

fn default_retry_base_ms() -> u64 {
    1000
}

fn default_retry_cap_ms() -> u64 {
    60_000
}

fn default_school_from() -> SchoolFrom {
    SchoolFrom::LocationName
}

/// Why a Jamf School source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum JamfSchoolConfigError {
    #[error(transparent)]
    BaseUrl(#[from] UrlKeyError),
    #[error("`network_id` is empty")]
    NetworkId,
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("could not set up the HTTP client: {0}")]
    Client(String),
}

impl JamfSchoolConfig {
    /// Checks the plain values (no secrets, no IO) and returns the parsed base URL.
    pub(crate) fn validate(&self) -> Result<url::Url, JamfSchoolConfigError> {
        if self.network_id.trim().is_empty() {
            return Err(JamfSchoolConfigError::NetworkId);
        }
        for (key, value) in [
            ("max_response_mb", self.max_response_mb),
            ("page_size", self.page_size as u64),
            ("protocol_version", u64::from(self.protocol_version)),
        ] {
            if value == 0 {
                return Err(JamfSchoolConfigError::Zero(key));
            }
        }
        self.request_keys().validate()?;
        Ok(instance_root(&self.base_url)?)
    }

    /// The request keys, for their checks and the HTTP client settings they describe.
    pub(crate) fn request_keys(&self) -> RequestKeys {
        RequestKeys {
            timeout_secs: self.timeout_secs,
            // `Transfer` sends its requests one after another: the devices come in one body.
            max_concurrency: None,
            retry_max_attempts: self.retry_max_attempts,
            retry_base_ms: self.retry_base_ms,
            retry_cap_ms: self.retry_cap_ms,
        }
    }

    pub(crate) fn max_response_bytes(&self) -> u64 {
        self.max_response_mb.saturating_mul(1024 * 1024)
    }
}

/// The URL `api/...` paths are joined onto: the instance root, with a trailing slash. The
/// vendor documents the base URL with a trailing `/api`, which is dropped so that it is not
/// doubled.
fn instance_root(base_url: &str) -> Result<url::Url, UrlKeyError> {
    let mut url = url_keys::endpoint_url("base_url", base_url)?;
    let path = url.path().trim_end_matches('/');
    let root = format!("{}/", path.strip_suffix("/api").unwrap_or(path));
    url.set_path(&root);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Result<JamfSchoolConfig, serde_json::Error> {
        let mut value = serde_json::json!({
            "base_url": "https://schule.jamfcloud.com",
            "network_id": "123456",
            "api_key_env": "JAMF_SCHOOL_KEY",
        });
        if let (Some(object), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            object.extend(extra.clone());
        }
        serde_json::from_value(value)
    }

    #[test]
    fn defaults_and_base_urls() {
        let parsed = config(serde_json::json!({})).unwrap();
        assert_eq!(parsed.protocol_version, 3);
        assert_eq!(parsed.timeout_secs, 300);
        assert_eq!(parsed.max_response_bytes(), 512 * 1024 * 1024);
        assert_eq!(parsed.page_size, 1000);
        assert_eq!(parsed.school_from, SchoolFrom::LocationName);
        for (base, expected) in [
            (
                "https://schule.jamfcloud.com",
                "https://schule.jamfcloud.com/api/devices",
            ),
            (
                "https://schule.jamfcloud.com/api",
                "https://schule.jamfcloud.com/api/devices",
            ),
            (
                "https://schule.jamfcloud.com/api/",
                "https://schule.jamfcloud.com/api/devices",
            ),
            (
                "http://onprem.example/jamf",
                "http://onprem.example/jamf/api/devices",
            ),
        ] {
            let url = instance_root(base).unwrap().join("api/devices").unwrap();
            assert_eq!(url.as_str(), expected, "{base}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(config(serde_json::json!({ "api_key": "x" })).is_err());
        assert!(config(serde_json::json!({ "school_from": "site" })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "network_id": " " }), "`network_id`"),
            (
                serde_json::json!({ "max_response_mb": 0 }),
                "`max_response_mb`",
            ),
            (serde_json::json!({ "page_size": 0 }), "`page_size`"),
            (
                serde_json::json!({ "protocol_version": 0 }),
                "`protocol_version`",
            ),
            (serde_json::json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (
                serde_json::json!({ "retry_max_attempts": 0 }),
                "`retry_max_attempts`",
            ),
            (serde_json::json!({ "retry_base_ms": 0 }), "`retry_base_ms`"),
            (
                serde_json::json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
            (
                serde_json::json!({ "base_url": "ftp://user:geheim@x" }),
                "`base_url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("geheim"), "{error}");
        }
    }
}
