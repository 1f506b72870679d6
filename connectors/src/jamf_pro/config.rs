//! The kind-specific keys of a `kind = "jamf_pro"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources (name, kind, authority, schedule, guards)
//! before deserializing the rest into `JamfProConfig`, so unknown keys here are typos.

use std::path::PathBuf;

use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    MaxConcurrency, MaxConcurrencyKey, RequestDefaults, RequestKeyError, RequestKeys,
    RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// Jamf Pro caps `page-size` at this silently; asking for more only hides the cap.
pub const MAX_PAGE_SIZE: u32 = 2000;
/// Jamf's scalability guide asks for at most five concurrent connections per instance.
pub const MAX_CONCURRENCY: usize = 5;

/// Configuration of one Jamf Pro source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JamfProConfig {
    /// Root URL of the Jamf Pro instance, e.g. `https://schulen.jamfcloud.com` or
    /// `https://jamf.example.de:8443`; the connector appends `api/...` itself.
    pub base_url: String,
    /// OAuth API client id (Settings > API Roles and Clients); the preferred way to log in.
    /// Needs `client_secret_env` or `client_secret_file`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Name of the environment variable that holds the OAuth client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Path of a file that holds the OAuth client secret (a trailing newline is ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Legacy alternative to `client_id`: a Jamf Pro user account that gets bearer tokens
    /// from `POST /api/v1/auth/token`. Needs `password_env` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable that holds the password of `username`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Path of a file that holds the password of `username` (a trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Which computers-inventory API to read: `auto` tries v4, then v3, then v1 when the
    /// server answers 404; `v4`, `v3` or `v1` use that one only.
    #[serde(default = "default_computers_api_version")]
    pub computers_api_version: ComputersApiVersion,
    /// Records per page, 1 to 2000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Which Jamf field names the school of a device: `site` (the Jamf site) or `building`.
    #[serde(default = "default_school_from")]
    pub school_from: SchoolFrom,
    /// Whether to read computers (Macs).
    #[serde(default = "default_true")]
    pub include_computers: bool,
    /// Whether to read mobile devices (iPads, Apple TVs).
    #[serde(default = "default_true")]
    pub include_mobile_devices: bool,
    /// Requests in flight at once (`max_concurrency`, 1 to 5, default 5), time limit and retries.
    #[serde(flatten)]
    pub request: RequestKeys,
    #[serde(flatten)]
    pub concurrency: MaxConcurrencyKey,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    max_concurrency: Some(MaxConcurrency {
        configured: MAX_CONCURRENCY,
        max: MAX_CONCURRENCY,
    }),
    ..RequestDefaults::STANDARD
};

/// The computers-inventory API version to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputersApiVersion {
    /// Probe v4, then v3, then v1.
    Auto,
    V4,
    V3,
    V1,
}

/// Which Jamf field becomes the school of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchoolFrom {
    /// The Jamf site (one site per school is the common setup).
    Site,
    /// The Jamf building (for instances that model schools as buildings).
    Building,
}

fn default_computers_api_version() -> ComputersApiVersion {
    ComputersApiVersion::Auto
}

fn default_page_size() -> u32 {
    1000
}

fn default_school_from() -> SchoolFrom {
    SchoolFrom::Site
}

fn default_true() -> bool {
    true
}

/// Why a Jamf Pro source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum JamfProConfigError {
    #[error(transparent)]
    BaseUrl(#[from] UrlKeyError),
    #[error("`page_size` must be between 1 and {MAX_PAGE_SIZE}, got {0}")]
    PageSize(u32),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error("`include_computers` and `include_mobile_devices` are both false: nothing to read")]
    NothingToRead,
    #[error(
        "no credentials: set `client_id` with `client_secret_env` or `client_secret_file` \
         (OAuth), or `username` with `password_env` or `password_file`"
    )]
    NoCredentials,
    #[error("set either `client_id` (OAuth) or `username` (legacy bearer token), not both")]
    BothCredentials,
    #[error("`{0}` is set but empty")]
    EmptyKey(&'static str),
    #[error("`{secret_key}` is set but `{needs}` is not")]
    SecretWithoutIdentity {
        secret_key: &'static str,
        needs: &'static str,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl JamfProConfig {
    /// Checks the plain values (no secrets, no IO) and returns the parsed base URL.
    pub(crate) fn validate(&self) -> Result<url::Url, JamfProConfigError> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(JamfProConfigError::PageSize(self.page_size));
        }
        self.request_keys().validate()?;
        if !self.include_computers && !self.include_mobile_devices {
            return Err(JamfProConfigError::NothingToRead);
        }
        Ok(url_keys::base_url("base_url", &self.base_url)?)
    }

    /// The request keys with this kind's defaults, for their checks and the HTTP client
    /// settings they describe.
    pub(crate) fn request_keys(&self) -> RequestSettings {
        self.request.resolve(&self.concurrency, &REQUEST_DEFAULTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_keys::testing::bad_keys;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<JamfProConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({ "base_url": "https://jamf.example/jamf" }),
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
    fn defaults() {
        let config = config(serde_json::json!({})).unwrap();
        assert_eq!(config.computers_api_version, ComputersApiVersion::Auto);
        assert_eq!(config.page_size, 1000);
        assert_eq!(config.request_keys().http_settings().max_concurrency, 5);
        assert_eq!(config.request_keys().timeout_secs, 60);
        assert_eq!(config.request_keys().retry_max_attempts, 6);
        assert_eq!(config.request_keys().retry_base_ms, 1000);
        assert_eq!(config.request_keys().retry_cap_ms, 60_000);
        assert_eq!(config.school_from, SchoolFrom::Site);
        assert!(config.include_computers && config.include_mobile_devices);
        let url = config.validate().unwrap();
        assert_eq!(
            url.join("api/v1/sites").unwrap().as_str(),
            "https://jamf.example/jamf/api/v1/sites"
        );
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_rejected() {
        assert!(config(serde_json::json!({ "page_sise": 10 })).is_err());
        assert!(config(serde_json::json!({ "client_secret": "x" })).is_err());
        assert!(config(serde_json::json!({ "computers_api_version": "v2" })).is_err());
        let parsed = config(serde_json::json!({
            "computers_api_version": "v3", "school_from": "building"
        }))
        .unwrap();
        assert_eq!(parsed.computers_api_version, ComputersApiVersion::V3);
        assert_eq!(parsed.school_from, SchoolFrom::Building);
    }

    #[test]
    fn ranges_are_checked() {
        for (extra, expected) in [
            (serde_json::json!({ "page_size": 0 }), "`page_size`"),
            (serde_json::json!({ "page_size": 2001 }), "`page_size`"),
            (
                serde_json::json!({ "max_concurrency": 0 }),
                "`max_concurrency`",
            ),
            (
                serde_json::json!({ "max_concurrency": 6 }),
                "`max_concurrency`",
            ),
            (serde_json::json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (
                serde_json::json!({ "retry_max_attempts": 0 }),
                "`retry_max_attempts`",
            ),
            (
                serde_json::json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
            (
                serde_json::json!({ "include_computers": false, "include_mobile_devices": false }),
                "nothing to read",
            ),
            (
                serde_json::json!({ "base_url": "ftp://jamf.example" }),
                "`base_url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
        let ok = config(serde_json::json!({ "page_size": 2000, "max_concurrency": 1 })).unwrap();
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn base_url_errors_do_not_echo_credentials() {
        for base_url in [
            "ftp://user:geheim@jamf.example",
            "https://user:geheim@jamf.example/jamf?a=1",
        ] {
            let error = config(serde_json::json!({ "base_url": base_url }))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.contains("`base_url`"), "{error}");
            assert!(!error.contains("geheim"), "{error}");
        }
    }
}
