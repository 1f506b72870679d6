//! The kind-specific keys of a `kind = "glpi"` `[[source]]` table, and their checks: where the
//! GLPI REST API lives, which secrets open a session, and in which time zone the server writes
//! its times (docs/vendors/glpi.md#times).

use std::path::PathBuf;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    MaxConcurrency, MaxConcurrencyKey, RequestDefaults, RequestKeyError, RequestKeys,
    RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// GLPI enforces no page limit on lists (docs/vendors/glpi.md#paging); larger pages only make
/// one PHP request slower and hungrier.
pub const MAX_PER_PAGE: u32 = 1000;
/// docs/vendors/glpi.md#limits: GLPI runs on the authority's own, usually small, PHP server.
pub const MAX_CONCURRENCY: usize = 4;

/// Configuration of one GLPI source (one GLPI instance, read with one API user).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlpiConfig {
    /// The REST API's entry point, e.g. `https://glpi.schulen.example.de/apirest.php`; the
    /// connector appends `initSession`, `Ticket` and so on.
    pub url: String,
    /// The environment variable that holds the API client's App-Token (Setup > General > API).
    /// Only needed when the API client is configured with one.
    #[serde(default)]
    pub app_token_env: Option<String>,
    /// A file that holds the App-Token (a trailing newline is ignored).
    #[serde(default)]
    pub app_token_file: Option<PathBuf>,
    /// The environment variable that holds the API user's personal token ("API token" in the
    /// user's remote access keys).
    #[serde(default)]
    pub user_token_env: Option<String>,
    /// A file that holds the user token.
    #[serde(default)]
    pub user_token_file: Option<PathBuf>,
    /// The IANA time zone the GLPI server writes its times in (they carry no offset).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Tickets (and links, and assets) per request, 1 to 1000.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// Requests in flight at once (`max_concurrency`, 1 to 4, default 2), time limit, retries.
    #[serde(flatten)]
    pub request: RequestKeys,
    #[serde(flatten)]
    pub concurrency: MaxConcurrencyKey,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    max_concurrency: Some(MaxConcurrency {
        configured: 2,
        max: MAX_CONCURRENCY,
    }),
    ..RequestDefaults::STANDARD
};

fn default_timezone() -> String {
    "Europe/Berlin".to_string()
}

fn default_per_page() -> u32 {
    500
}

/// Why a GLPI source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum GlpiConfigError {
    #[error(transparent)]
    Url(#[from] UrlKeyError),
    #[error("`per_page` must be between 1 and {MAX_PER_PAGE}, got {0}")]
    PerPage(u32),
    #[error("`timezone`: \"{0}\" is not an IANA time zone such as \"Europe/Berlin\"")]
    Timezone(String),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl GlpiConfig {
    /// Checks the plain values (no secrets, no IO) and returns the API URL (ending in a slash)
    /// and the server's time zone.
    pub(crate) fn validate(&self) -> Result<(url::Url, Tz), GlpiConfigError> {
        if !(1..=MAX_PER_PAGE).contains(&self.per_page) {
            return Err(GlpiConfigError::PerPage(self.per_page));
        }
        self.request_keys().validate()?;
        let zone = self
            .timezone
            .trim()
            .parse::<Tz>()
            .map_err(|_| GlpiConfigError::Timezone(self.timezone.clone()))?;
        Ok((url_keys::base_url("url", &self.url)?, zone))
    }

    /// The request keys with this kind's defaults.
    pub(crate) fn request_keys(&self) -> RequestSettings {
        self.request.resolve(&self.concurrency, &REQUEST_DEFAULTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_keys::testing::bad_keys;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<GlpiConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({ "url": "https://glpi.example/apirest.php" }),
            extra,
        ))
    }

    #[test]
    fn defaults_and_the_api_url() {
        let config = config(serde_json::json!({})).unwrap();
        assert_eq!(config.per_page, 500);
        assert_eq!(config.request_keys().http_settings().max_concurrency, 2);
        let (url, zone) = config.validate().unwrap();
        assert_eq!(
            url.join("initSession").unwrap().as_str(),
            "https://glpi.example/apirest.php/initSession"
        );
        assert_eq!(zone, chrono_tz::Europe::Berlin);
    }

    #[test]
    fn bad_values_name_their_key_and_never_the_url() {
        for (extra, key) in bad_keys() {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        for (extra, expected) in [
            (serde_json::json!({ "per_page": 0 }), "`per_page`"),
            (serde_json::json!({ "per_page": 1001 }), "`per_page`"),
            (
                serde_json::json!({ "max_concurrency": 5 }),
                "`max_concurrency`",
            ),
            (serde_json::json!({ "timezone": "Berlin" }), "`timezone`"),
            (
                serde_json::json!({ "url": "ftp://u:geheim@glpi.example/apirest.php" }),
                "`url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("geheim"), "{error}");
        }
        assert!(config(serde_json::json!({ "user_token": "x" })).is_err());
    }
}
