//! The kind-specific keys of a `kind = "intune"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources (name, kind, authority, schedule, guards)
//! before deserializing the rest into `IntuneConfig`, so unknown keys here are typos.

use std::path::PathBuf;

use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    OneAtATime, RequestDefaults, RequestKeyError, RequestKeys, RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// The largest `$top` the connector sends. Microsoft does not document the maximum for
/// `managedDevices` (docs/vendors/intune.md#managed-devices); 1000 is what community reports see
/// honoured. Graph may clamp or ignore `$top` anyway, so paging never relies on it.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The managed-device properties always asked for with `$select` (all in the v1.0 property
/// table, docs/vendors/intune.md#managed-devices). `extra_fields` adds to them.
pub const SELECT_FIELDS: &[&str] = &[
    "id",
    "deviceName",
    "managedDeviceName",
    "serialNumber",
    "imei",
    "meid",
    "wiFiMacAddress",
    "model",
    "manufacturer",
    "operatingSystem",
    "osVersion",
    "userPrincipalName",
    "emailAddress",
    "userDisplayName",
    "userId",
    "azureADDeviceId",
    "deviceCategoryDisplayName",
    "enrolledDateTime",
    "lastSyncDateTime",
    "complianceState",
    "managedDeviceOwnerType",
    "totalStorageSpaceInBytes",
];

/// Configuration of one Intune (Microsoft Graph) source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntuneConfig {
    /// Entra ID tenant: its GUID or a verified domain (`schulen-musterstadt.de`).
    pub tenant_id: String,
    /// Application (client) id of the app registration; it needs the application permission
    /// `DeviceManagementManagedDevices.Read.All` with admin consent.
    pub client_id: String,
    /// Name of the environment variable that holds the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Path of a file that holds the client secret (a trailing newline is ignored).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Token endpoint; default
    /// `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`. `{tenant_id}` is
    /// replaced. Override for national clouds or tests.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Graph root, default `https://graph.microsoft.com`. Also the scope
    /// (`<graph_url>/.default`) and the only host `@odata.nextLink` may point to.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Graph API version in the path: `v1.0` (default) or `beta`. Beta is needed for
    /// `chassisType` (see `extra_fields`) but may change without notice.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `$top`, 1 to 1000. Graph may clamp or ignore it; paging follows `@odata.nextLink`.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Properties added to `$select` besides the built-in list, e.g. `["chassisType"]` with
    /// `api_version = "beta"`. Unverified: whether Graph accepts a given property in `$select`
    /// on the list call; a rejected one fails the first page with HTTP 400.
    #[serde(default)]
    pub extra_fields: Vec<String>,
    /// An OData `$filter`, e.g. `operatingSystem eq 'Windows'`. Graph supports only a few
    /// filters on this collection (docs/vendors/intune.md#managed-devices); keep it simple.
    #[serde(default)]
    pub filter: Option<String>,
    /// Which Intune field names the school of a device (see `SchoolFrom`).
    #[serde(default = "default_school_from")]
    pub school_from: SchoolFrom,
    /// Time limit and retries of each request; Graph pages are read one after another.
    #[serde(flatten)]
    pub request: RequestKeys,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults::STANDARD;

/// Which Intune field becomes the school of a device. Intune has no notion of a school or
/// site; which field a school authority uses for it is a matter of local convention, and none
/// of these has been verified against a real school tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolFrom {
    /// `deviceCategoryDisplayName`: Intune device categories are the built-in way to sort
    /// devices into groups, and one category per school is the setup we expect most often.
    /// The category "Unknown" (Intune's "none") counts as no school.
    DeviceCategory,
    /// The domain of `userPrincipalName` (`m.fischer@gym-altstadt.example.de` gives
    /// `gym-altstadt.example.de`), for tenants with one mail domain per school. Userless
    /// devices get no school.
    UpnDomain,
    /// No school from Intune; the engine places devices by other sources.
    None,
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com".to_string()
}

fn default_api_version() -> String {
    "v1.0".to_string()
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

fn default_school_from() -> SchoolFrom {
    SchoolFrom::DeviceCategory
}

/// Why an Intune source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum IntuneConfigError {
    #[error(transparent)]
    Url(#[from] UrlKeyError),
    #[error("`tenant_id` must be a GUID or domain name (letters, digits, `-`, `.`)")]
    TenantId,
    #[error("`client_id` is empty")]
    ClientId,
    #[error("`api_version` must be `v1.0` or `beta`, got {0:?}")]
    ApiVersion(String),
    #[error("`page_size` must be between 1 and {MAX_PAGE_SIZE}, got {0}")]
    PageSize(u32),
    #[error("`extra_fields` entry {0:?} is not a property name")]
    ExtraField(String),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// The URLs a checked config leads to.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub token: url::Url,
    /// `https://graph.microsoft.com/` (with trailing slash), the origin links must stay on.
    pub graph: url::Url,
    /// The first page: `.../deviceManagement/managedDevices?$select=...&$top=...`.
    pub first_page: url::Url,
    /// `https://graph.microsoft.com/.default`.
    pub scope: String,
}

impl IntuneConfig {
    /// Checks the plain values (no secrets, no IO) and builds the URLs.
    pub(crate) fn validate(&self) -> Result<Endpoints, IntuneConfigError> {
        let tenant = self.tenant_id.trim();
        let tenant_ok = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !tenant_ok {
            return Err(IntuneConfigError::TenantId);
        }
        if self.client_id.trim().is_empty() {
            return Err(IntuneConfigError::ClientId);
        }
        if self.api_version != "v1.0" && self.api_version != "beta" {
            return Err(IntuneConfigError::ApiVersion(self.api_version.clone()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(IntuneConfigError::PageSize(self.page_size));
        }
        if let Some(bad) = self
            .extra_fields
            .iter()
            .find(|field| field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(IntuneConfigError::ExtraField(bad.clone()));
        }
        self.request_keys().validate()?;
        let graph = url_keys::base_url("graph_url", &self.graph_url)?;
        let token_text = match &self.token_url {
            Some(text) => text.replace("{tenant_id}", tenant),
            None => format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        };
        let token = url_keys::endpoint_url("token_url", &token_text)?;
        let mut first_page = graph
            .join(&format!(
                "{}/deviceManagement/managedDevices",
                self.api_version
            ))
            .map_err(|error| UrlKeyError::parse("graph_url", error))?;
        {
            let select: Vec<&str> = SELECT_FIELDS
                .iter()
                .copied()
                .chain(self.extra_fields.iter().map(String::as_str))
                .collect();
            let mut query = first_page.query_pairs_mut();
            query.append_pair("$select", &select.join(","));
            if let Some(filter) = self.filter.as_deref().filter(|f| !f.trim().is_empty()) {
                query.append_pair("$filter", filter.trim());
            }
            query.append_pair("$top", &self.page_size.to_string());
        }
        let scope = format!("{}.default", graph.as_str());
        Ok(Endpoints {
            token,
            graph,
            first_page,
            scope,
        })
    }

    /// The request keys with this kind's defaults, for their checks and the HTTP client
    /// settings they describe.
    pub(crate) fn request_keys(&self) -> RequestSettings {
        self.request.resolve(&OneAtATime, &REQUEST_DEFAULTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_keys::testing::bad_keys;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<IntuneConfig, serde_json::Error> {
        let base =
            serde_json::json!({ "tenant_id": "contoso.onmicrosoft.com", "client_id": "app" });
        serde_json::from_value(table(base, extra))
    }

    #[test]
    fn request_keys_are_checked() {
        for (extra, key) in bad_keys() {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn defaults_and_urls() {
        let config = config(serde_json::json!({})).unwrap();
        assert_eq!(config.page_size, 1000);
        assert_eq!(config.school_from, SchoolFrom::DeviceCategory);
        let endpoints = config.validate().unwrap();
        assert_eq!(
            endpoints.token.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(endpoints.scope, "https://graph.microsoft.com/.default");
        let first = endpoints.first_page.as_str();
        assert!(first.starts_with(
            "https://graph.microsoft.com/v1.0/deviceManagement/managedDevices?%24select=id%2CdeviceName%2C"
        ));
        assert!(first.ends_with("&%24top=1000"), "{first}");
    }

    #[test]
    fn bad_values_are_rejected_naming_the_key() {
        assert!(config(serde_json::json!({ "client_secret": "x" })).is_err());
        assert!(config(serde_json::json!({ "school_from": "site" })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "page_size": 1001 }), "`page_size`"),
            (serde_json::json!({ "tenant_id": "a/b" }), "`tenant_id`"),
            (serde_json::json!({ "api_version": "v2" }), "`api_version`"),
            (
                serde_json::json!({ "extra_fields": ["a,b"] }),
                "`extra_fields`",
            ),
            (serde_json::json!({ "graph_url": "ftp://x" }), "`graph_url`"),
            (serde_json::json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (
                serde_json::json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
            (
                serde_json::json!({ "token_url": "https://u:geheim@x/?a=1" }),
                "`token_url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("geheim"), "{error}");
        }
    }
}
