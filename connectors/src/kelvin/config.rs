//! The kind-specific keys of a `kind = "kelvin"` `[[source]]` table, and their checks.
//! The CLI strips the keys common to all sources before deserializing the rest into
//! `KelvinConfig`, so unknown keys here are typos.

use std::path::PathBuf;

use bestand_model::model::PersonRole;
use serde::Deserialize;

use crate::http::HttpError;
use crate::request_keys::{
    MaxConcurrency, MaxConcurrencyKey, RequestDefaults, RequestKeyError, RequestKeys,
    RequestSettings,
};
use crate::secret::SecretError;
use crate::url_keys::{self, UrlKeyError};

/// docs/vendors/README.md#concurrency: Kelvin runs on the school server; a few requests at a time
/// at most.
pub const MAX_CONCURRENCY: usize = 4;
/// Persons per page handed to the engine, at most.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// Configuration of one UCS@school Kelvin REST API source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KelvinConfig {
    /// Root URL of the UCS server, e.g. `https://ucs.schultraeger.example`. The connector
    /// appends `ucsschool/kelvin/...` itself; a URL that already ends in `/ucsschool/kelvin`
    /// is accepted too.
    pub base_url: String,
    /// The Kelvin account; it must be in `ucsschool-kelvin-rest-api-readers` (read-only,
    /// Kelvin 3.3.0 and later) or `ucsschool-kelvin-rest-api-admins`.
    pub username: String,
    /// Name of the environment variable that holds the account's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Path of a file that holds the password (a trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The school OUs to read (as Kelvin names them, e.g. `GSL`); all schools Kelvin lists
    /// when unset. A listed school that Kelvin does not know fails the read, because reading
    /// nothing for it would mark all its people as left.
    #[serde(default)]
    pub schools: Option<Vec<String>>,
    /// The roles to read, any of `student`, `teacher`, `staff`, `school_admin`. Memberships in
    /// other roles are not reported, even for a person read through one of these.
    #[serde(default = "default_roles")]
    pub roles: Vec<PersonRole>,
    /// Whether deactivated accounts (`disabled: true`) count as members. UCS@school imports
    /// deactivate leavers before deleting them, so by default they are left out and show up
    /// as left; how many were left out is logged.
    #[serde(default)]
    pub include_disabled: bool,
    /// Whether to list each school's classes too (`GET /v1/classes/?school=`), only to log
    /// how many classes have no members. Users carry their classes themselves.
    #[serde(default = "default_read_classes")]
    pub read_classes: bool,
    /// Persons per page handed to the sync engine (Kelvin itself does not page).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Requests in flight at once (`max_concurrency`, 1 to 4, default 2), time limit (default 120 s) and retries (backoff 2 s up to 20 s).
    #[serde(flatten)]
    pub request: RequestKeys,
    #[serde(flatten)]
    pub concurrency: MaxConcurrencyKey,
}

/// This kind's defaults for the request keys.
const REQUEST_DEFAULTS: RequestDefaults = RequestDefaults {
    timeout_secs: 120,
    max_concurrency: Some(MaxConcurrency {
        configured: 2,
        max: MAX_CONCURRENCY,
    }),
    retry_base_ms: 2000,
    retry_cap_ms: 20_000,
    ..RequestDefaults::STANDARD
};

fn default_roles() -> Vec<PersonRole> {
    vec![
        PersonRole::Student,
        PersonRole::Teacher,
        PersonRole::Staff,
        PersonRole::SchoolAdmin,
    ]
}

fn default_read_classes() -> bool {
    true
}

fn default_page_size() -> usize {
    1000
}

/// Why a Kelvin source cannot be set up. Names config keys, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum KelvinConfigError {
    #[error(transparent)]
    BaseUrl(#[from] UrlKeyError),
    #[error("`username` is empty")]
    Username,
    #[error("`roles` is empty; list at least one of student, teacher, staff, school_admin")]
    NoRoles,
    #[error("`schools` is empty or holds an empty name; leave it out to read every school")]
    Schools,
    #[error("`page_size` must be between 1 and {MAX_PAGE_SIZE}, got {0}")]
    PageSize(usize),
    #[error(transparent)]
    Request(#[from] RequestKeyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl KelvinConfig {
    /// Checks the plain values (no secrets, no IO) and returns the Kelvin root URL, ending in
    /// `/ucsschool/kelvin/`.
    pub(crate) fn validate(&self) -> Result<url::Url, KelvinConfigError> {
        if self.username.trim().is_empty() {
            return Err(KelvinConfigError::Username);
        }
        if self.roles.is_empty() {
            return Err(KelvinConfigError::NoRoles);
        }
        if let Some(schools) = &self.schools {
            if schools.is_empty() || schools.iter().any(|school| school.trim().is_empty()) {
                return Err(KelvinConfigError::Schools);
            }
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(KelvinConfigError::PageSize(self.page_size));
        }
        self.request_keys().validate()?;
        Ok(kelvin_root(&self.base_url)?)
    }

    /// The roles to read, each once, in the configured order.
    pub(crate) fn distinct_roles(&self) -> Vec<PersonRole> {
        let mut roles: Vec<PersonRole> = Vec::with_capacity(self.roles.len());
        for role in &self.roles {
            if !roles.contains(role) {
                roles.push(*role);
            }
        }
        roles
    }

    /// The request keys with this kind's defaults, for their checks and the HTTP client
    /// settings they describe.
    pub(crate) fn request_keys(&self) -> RequestSettings {
        self.request.resolve(&self.concurrency, &REQUEST_DEFAULTS)
    }
}

/// The Kelvin root below `base_url`: `<base>/ucsschool/kelvin/`, whether or not the
/// configured URL already names it.
fn kelvin_root(base_url: &str) -> Result<url::Url, UrlKeyError> {
    let mut url = url_keys::endpoint_url("base_url", base_url)?;
    let path = url.path().trim_end_matches('/');
    let path = path
        .strip_suffix("/ucsschool/kelvin")
        .or_else(|| path.strip_suffix("/ucsschool/kelvin/v1"))
        .unwrap_or(path);
    let path = format!("{path}/ucsschool/kelvin/");
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_keys::testing::bad_keys;
    use crate::testing::table;

    fn config(extra: serde_json::Value) -> Result<KelvinConfig, serde_json::Error> {
        serde_json::from_value(table(
            serde_json::json!({
                "base_url": "https://ucs.schultraeger.example",
                "username": "bestand-sync",
                "password_env": "KELVIN_PASSWORD",
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
    fn defaults_and_roots() {
        let parsed = config(serde_json::json!({})).unwrap();
        assert_eq!(parsed.roles, default_roles());
        assert!(parsed.schools.is_none());
        assert!(!parsed.include_disabled);
        assert!(parsed.read_classes);
        assert_eq!(
            (
                parsed.page_size,
                parsed.request_keys().http_settings().max_concurrency,
                parsed.request_keys().timeout_secs
            ),
            (1000, 2, 120)
        );
        for base in [
            "https://ucs.example",
            "https://ucs.example/",
            "https://ucs.example/ucsschool/kelvin",
            "https://ucs.example/ucsschool/kelvin/",
            "https://ucs.example/ucsschool/kelvin/v1/",
        ] {
            assert_eq!(
                kelvin_root(base).unwrap().as_str(),
                "https://ucs.example/ucsschool/kelvin/",
                "{base}"
            );
        }
        assert_eq!(
            kelvin_root("http://proxy.example/ucs").unwrap().as_str(),
            "http://proxy.example/ucs/ucsschool/kelvin/"
        );
    }

    #[test]
    fn roles_parse_by_name_and_repeat_once() {
        let parsed =
            config(serde_json::json!({ "roles": ["teacher", "school_admin", "teacher"] })).unwrap();
        assert_eq!(
            parsed.distinct_roles(),
            [PersonRole::Teacher, PersonRole::SchoolAdmin]
        );
        assert!(config(serde_json::json!({ "roles": ["pupil"] })).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(config(serde_json::json!({ "password": "geheim" })).is_err());
        for (extra, expected) in [
            (serde_json::json!({ "username": " " }), "`username`"),
            (serde_json::json!({ "roles": [] }), "`roles`"),
            (serde_json::json!({ "schools": [] }), "`schools`"),
            (serde_json::json!({ "schools": ["GSL", ""] }), "`schools`"),
            (serde_json::json!({ "page_size": 0 }), "`page_size`"),
            (
                serde_json::json!({ "max_concurrency": 5 }),
                "`max_concurrency`",
            ),
            (serde_json::json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (
                serde_json::json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
            (
                serde_json::json!({ "base_url": "ftp://u:geheim@ucs.example" }),
                "`base_url`",
            ),
        ] {
            let error = config(extra).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("geheim"), "{error}");
        }
    }
}
