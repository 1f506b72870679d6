//! The kind-specific keys of a `kind = "jamf_school"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources before deserializing the rest into
//! `JamfSchoolConfig`, so unknown keys here are typos.

use std::path::PathBuf;

use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    OneAtATime, RequestDefaults, RequestKeyError, RequestKeys, RequestSettings,
};
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
    /// The largest response body accepted, in MiB; a larger one fails the fetch instead of
    /// filling memory. Whether Jamf School truncates huge tenants is unverified.
    #[serde(default = "default_max_response_mb")]
    pub max_response_mb: u64,
    /// Records per page handed to the sync engine (the API itself does not page).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Which field names the school of a device. Jamf School models schools as "locations";
    /// devices carry only `locationId` (verified only in third-party code). See [`SchoolFrom`].
    #[serde(default = "default_school_from")]
    pub school_from: SchoolFrom,
    /// Time limit (default 300 s: one body holds the whole tenant) and retries; requests go one after another.
    #[serde(flatten)]
    pub request: RequestKeys,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    // One body holds the whole tenant.
    timeout_secs: 300,
    ..RequestDefaults::STANDARD
};

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

fn default_max_response_mb() -> u64 {
    512
}

fn default_page_size() -> usize {
    1000
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
    #[error(transparent)]
    Http(#[from] HttpError),
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

    /// The request keys with this kind's defaults, for their checks and the HTTP client
    /// settings they describe.
    pub(crate) fn request_keys(&self) -> RequestSettings {
        self.request.resolve(&OneAtATime, &REQUEST_DEFAULTS)
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
    use crate::request_keys::testing::bad_keys;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<JamfSchoolConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({
                "base_url": "https://schule.jamfcloud.com",
                "network_id": "123456",
                "api_key_env": "JAMF_SCHOOL_KEY",
            }),
            extra,
        ))
    }

    #[test]
    fn request_keys_are_checked() {
        for (extra, key) in bad_keys() {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn defaults_and_base_urls() {
        let parsed = config(serde_json::json!({})).unwrap();
        assert_eq!(parsed.protocol_version, 3);
        assert_eq!(parsed.request_keys().timeout_secs, 300);
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
