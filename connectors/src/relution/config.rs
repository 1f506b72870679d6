//! The kind-specific keys of a `kind = "relution"` `[[source]]` table, and their checks.
//! Relution publishes no stable API reference (docs/vendors/relution.md), so every assumption the
//! connector makes about the wire is a key here with the observed value as its default.

use std::path::PathBuf;

use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    MaxConcurrency, MaxConcurrencyKey, RequestDefaults, RequestKeyError, RequestKeys,
    RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// No page limit is documented; larger pages than this only make one slow request slower.
pub const MAX_PAGE_SIZE: u32 = 5000;
/// docs/vendors/README.md#concurrency: Relution servers are small; one or two requests at a time.
pub const MAX_CONCURRENCY: usize = 2;

/// Configuration of one Relution source (one Relution organisation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelutionConfig {
    /// Root URL of the Relution server, e.g. `https://live.relution.io` or
    /// `https://mdm.schulen.example.de`; the connector appends `api/...` itself.
    pub base_url: String,
    /// Name of the environment variable that holds the personal API access token
    /// (Relution portal: Profile -> Access Tokens), sent as `X-User-Access-Token`.
    #[serde(default)]
    pub access_token_env: Option<String>,
    /// Path of a file that holds the access token (a trailing newline is ignored).
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The organisation UUID (`tenantOrganizationUuid`, visible in the portal URL). Sent as
    /// query parameter and, as one observed client does, also as header. Leave it out only
    /// on a single-organisation server. A Schulträger with one organisation per school
    /// configures one source per organisation.
    #[serde(default)]
    pub organization: Option<String>,
    /// Which device query path to use: `auto` tries `/api/management/v2/...` and falls back
    /// to `/api/v2/...` on 404; `management_v2` or `v2` use that one only. Both styles are
    /// seen in the field (releases and cloud vs on-premise differ).
    #[serde(default = "default_api_path")]
    pub api_path: ApiPath,
    /// Records per request (`limit` in the query body), 1 to 5000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The device field sorted on (ascending) so that offset paging is stable. `uuid` is an
    /// inference (docs/vendors/relution.md#devices only shows `lastConnectionDate` sorting); set it
    /// to "" to send no sort order if a server rejects it.
    #[serde(default = "default_sort_field")]
    pub sort_field: String,
    /// The top-level device field whose text names the school (matched against official
    /// school number, name or alias). No Relution field is known to carry the school, so
    /// nothing is read by default; set e.g. a custom field name once seen on a real instance.
    #[serde(default)]
    pub school_from: Option<String>,
    /// The school of every device of this source, for the common setup of one Relution
    /// organisation per school. Used when `school_from` is unset or empty on a device.
    #[serde(default)]
    pub school: Option<String>,
    /// Requests in flight at once (`max_concurrency`, 1 to 2, default 1), time limit and retries.
    #[serde(flatten)]
    pub request: RequestKeys,
    #[serde(flatten)]
    pub concurrency: MaxConcurrencyKey,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    max_concurrency: Some(MaxConcurrency {
        configured: 1,
        max: MAX_CONCURRENCY,
    }),
    ..RequestDefaults::STANDARD
};

/// Which of the two observed device query paths to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiPath {
    /// Probe `management_v2`, then `v2` on 404.
    Auto,
    /// `POST /api/management/v2/devices/baseInfo/query`.
    ManagementV2,
    /// `POST /api/v2/devices/baseInfo/query`.
    V2,
}

impl ApiPath {
    /// The query path of an explicit style (`Auto` has none of its own).
    pub fn query_path(self) -> Option<&'static str> {
        match self {
            ApiPath::Auto => None,
            ApiPath::ManagementV2 => Some("api/management/v2/devices/baseInfo/query"),
            ApiPath::V2 => Some("api/v2/devices/baseInfo/query"),
        }
    }

    /// The styles to try, in order.
    pub(crate) fn candidates(self) -> &'static [ApiPath] {
        match self {
            ApiPath::Auto => &[ApiPath::ManagementV2, ApiPath::V2],
            ApiPath::ManagementV2 => &[ApiPath::ManagementV2],
            ApiPath::V2 => &[ApiPath::V2],
        }
    }
}

fn default_api_path() -> ApiPath {
    ApiPath::Auto
}

fn default_page_size() -> u32 {
    500
}

fn default_sort_field() -> String {
    "uuid".to_string()
}

/// Why a Relution source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum RelutionConfigError {
    #[error(transparent)]
    BaseUrl(#[from] UrlKeyError),
    #[error("`page_size` must be between 1 and {MAX_PAGE_SIZE}, got {0}")]
    PageSize(u32),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error("`{0}` is set but empty")]
    EmptyKey(&'static str),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl RelutionConfig {
    /// Checks the plain values (no secrets, no IO) and returns the parsed base URL.
    pub(crate) fn validate(&self) -> Result<url::Url, RelutionConfigError> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(RelutionConfigError::PageSize(self.page_size));
        }
        self.request_keys().validate()?;
        for (value, key) in [
            (&self.organization, "organization"),
            (&self.school_from, "school_from"),
            (&self.school, "school"),
        ] {
            if value.as_deref().is_some_and(|text| text.trim().is_empty()) {
                return Err(RelutionConfigError::EmptyKey(key));
            }
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

    fn config(extra: serde_json::Value) -> Result<RelutionConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({ "base_url": "https://mdm.example/relution" }),
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
    fn defaults_and_paths() {
        let config = config(serde_json::json!({})).unwrap();
        assert_eq!(config.api_path, ApiPath::Auto);
        assert_eq!(config.page_size, 500);
        assert_eq!(config.request_keys().http_settings().max_concurrency, 1);
        assert_eq!(config.sort_field, "uuid");
        let url = config.validate().unwrap();
        assert_eq!(
            url.join(ApiPath::V2.query_path().unwrap())
                .unwrap()
                .as_str(),
            "https://mdm.example/relution/api/v2/devices/baseInfo/query"
        );
        assert_eq!(ApiPath::Auto.candidates().len(), 2);
    }

    #[test]
    fn unknown_keys_bad_enums_and_ranges_are_rejected() {
        assert!(config(serde_json::json!({ "access_token": "x" })).is_err());
        assert!(config(serde_json::json!({ "api_path": "v1" })).is_err());
        let explicit = config(serde_json::json!({ "api_path": "management_v2" })).unwrap();
        assert_eq!(explicit.api_path, ApiPath::ManagementV2);
        for (extra, expected) in [
            (serde_json::json!({ "page_size": 0 }), "`page_size`"),
            (
                serde_json::json!({ "max_concurrency": 3 }),
                "`max_concurrency`",
            ),
            (serde_json::json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (serde_json::json!({ "organization": " " }), "`organization`"),
            (
                serde_json::json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
            (
                serde_json::json!({ "base_url": "ftp://u:geheim@mdm.example" }),
                "`base_url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!error.to_string().contains("geheim"));
        }
    }
}
