//! The kind-specific keys of a `kind = "zammad"` `[[source]]` table, and their checks.
//! What the keys rely on from Zammad is written down in docs/vendors/zammad.md; every fact there
//! graded "assumed" that the connector depends on is a key here with the assumption as default.

use std::path::PathBuf;

use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    MaxConcurrency, MaxConcurrencyKey, RequestDefaults, RequestKeyError, RequestKeys,
    RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// `GET /api/v1/tickets` caps `per_page` at 100 (docs/vendors/zammad.md#paging); asking for more
/// would make every page look short.
pub const MAX_PER_PAGE: u32 = 100;
/// docs/vendors/README.md#concurrency: Zammad runs on the authority's own (small) server.
pub const MAX_CONCURRENCY: usize = 4;
/// The placeholder of `incremental_query` that the watermark replaces.
pub const SINCE_PLACEHOLDER: &str = "{since}";

/// Configuration of one Zammad source (one Zammad instance, the authority's service desk).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZammadConfig {
    /// Root URL of the Zammad instance, e.g. `https://servicedesk.musterstadt.de`; the
    /// connector appends `api/v1/...` itself.
    pub url: String,
    /// Name of the environment variable that holds the access token (Profile > Token Access;
    /// permission `ticket.agent`), sent as `Authorization: Token token=...`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Path of a file that holds the access token (a trailing newline is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Names of the custom ticket attributes (Admin > Objects > Ticket) that name an asset,
    /// such as `inventarnummer` or `seriennummer`; their values become the ticket's asset fields.
    #[serde(default)]
    pub asset_fields: Vec<String>,
    /// Tickets per request, 1 to 100.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// Read each ticket's tags (`GET /api/v1/tags`, one request per ticket, because neither
    /// listing carries them). Off by default: a full read of many tickets then takes one
    /// request per ticket more.
    #[serde(default)]
    pub read_tags: bool,
    /// The groups a provider works in (usually the group keys of the source's `providers`).
    /// For a ticket in one of them the connector reads its history
    /// (`GET /api/v1/ticket_history/{id}`, one request per such ticket) for the time it was
    /// moved into that group, the forwarding time the provider's figures count from; a ticket
    /// opened in the group was forwarded when it was opened. Compared without case.
    #[serde(default)]
    pub forwarding_groups: Vec<String>,
    /// The search query of an incremental read; `{since}` becomes the watermark, written as
    /// RFC 3339 UTC with milliseconds and its colons escaped for the search syntax.
    #[serde(default = "default_incremental_query")]
    pub incremental_query: String,
    /// Whether a read with a watermark uses the search (which needs Zammad's Elasticsearch
    /// index). `false` makes every read a full read.
    #[serde(default = "default_true")]
    pub incremental: bool,
    /// Write the device link back into tickets: `off` (default), `note` (an internal note) or
    /// `attribute` (the custom attribute `write_back_attribute`).
    #[serde(default)]
    pub write_back: WriteBackMode,
    /// The custom ticket attribute `write_back = "attribute"` writes into.
    #[serde(default)]
    pub write_back_attribute: Option<String>,
    /// Requests in flight at once (`max_concurrency`, 1 to 4, default 2), time limit, retries.
    #[serde(flatten)]
    pub request: RequestKeys,
    #[serde(flatten)]
    pub concurrency: MaxConcurrencyKey,
}

/// Where the device link goes, if anywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteBackMode {
    #[default]
    Off,
    /// An internal note (`POST /api/v1/ticket_articles`, `internal: true`, type `note`).
    Note,
    /// A custom ticket attribute (`PUT /api/v1/tickets/{id}`).
    Attribute,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    max_concurrency: Some(MaxConcurrency {
        configured: 2,
        max: MAX_CONCURRENCY,
    }),
    ..RequestDefaults::STANDARD
};

fn default_per_page() -> u32 {
    MAX_PER_PAGE
}

fn default_true() -> bool {
    true
}

fn default_incremental_query() -> String {
    format!("updated_at:>={SINCE_PLACEHOLDER}")
}

/// Why a Zammad source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum ZammadConfigError {
    #[error(transparent)]
    Url(#[from] UrlKeyError),
    #[error("`per_page` must be between 1 and {MAX_PER_PAGE}, got {0}")]
    PerPage(u32),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error("`asset_fields` entry {0} is not an attribute name (letters, digits and `_` only)")]
    AssetField(String),
    #[error("`incremental_query` must contain `{SINCE_PLACEHOLDER}`")]
    IncrementalQuery,
    #[error("`write_back = \"attribute\"` needs `write_back_attribute` (a custom ticket attribute name)")]
    WriteBackAttributeMissing,
    #[error("`write_back_attribute` {0} is not an attribute name (letters, digits and `_` only)")]
    WriteBackAttribute(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Zammad's attribute names are lower-case identifiers; anything else is a typo (a label such
/// as "Inventar-Nr." copied from the form instead of the name).
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ZammadConfig {
    /// Checks the plain values (no secrets, no IO) and returns the parsed base URL.
    pub(crate) fn validate(&self) -> Result<url::Url, ZammadConfigError> {
        if !(1..=MAX_PER_PAGE).contains(&self.per_page) {
            return Err(ZammadConfigError::PerPage(self.per_page));
        }
        self.request_keys().validate()?;
        for field in &self.asset_fields {
            if !is_attribute_name(field) {
                return Err(ZammadConfigError::AssetField(format!("{field:?}")));
            }
        }
        if !self.incremental_query.contains(SINCE_PLACEHOLDER) {
            return Err(ZammadConfigError::IncrementalQuery);
        }
        match (&self.write_back, &self.write_back_attribute) {
            (WriteBackMode::Attribute, None) => {
                return Err(ZammadConfigError::WriteBackAttributeMissing)
            }
            (_, Some(attribute)) if !is_attribute_name(attribute) => {
                return Err(ZammadConfigError::WriteBackAttribute(format!(
                    "{attribute:?}"
                )))
            }
            _ => {}
        }
        Ok(url_keys::base_url("url", &self.url)?)
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

    fn config(extra: serde_json::Value) -> Result<ZammadConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({ "url": "https://servicedesk.example" }),
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
        assert_eq!(config.per_page, 100);
        assert_eq!(config.write_back, WriteBackMode::Off);
        assert!(config.incremental && !config.read_tags);
        assert_eq!(config.incremental_query, "updated_at:>={since}");
        assert_eq!(config.request_keys().http_settings().max_concurrency, 2);
        assert_eq!(
            config.validate().unwrap().as_str(),
            "https://servicedesk.example/"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        assert!(config(serde_json::json!({ "token": "x" })).is_err());
        assert!(config(serde_json::json!({ "write_back": "email" })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "per_page": 0 }), "`per_page`"),
            (serde_json::json!({ "per_page": 101 }), "`per_page`"),
            (
                serde_json::json!({ "max_concurrency": 5 }),
                "`max_concurrency`",
            ),
            (
                serde_json::json!({ "asset_fields": ["Inventar-Nr."] }),
                "`asset_fields`",
            ),
            (
                serde_json::json!({ "incremental_query": "updated_at:>now-1h" }),
                "`incremental_query`",
            ),
            (
                serde_json::json!({ "write_back": "attribute" }),
                "`write_back_attribute`",
            ),
            (
                serde_json::json!({ "url": "ftp://u:geheim@zammad.example" }),
                "`url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
            assert!(!error.to_string().contains("geheim"));
        }
    }
}
