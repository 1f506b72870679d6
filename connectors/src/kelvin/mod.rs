//! The UCS@school Kelvin REST API connector: reads the schools and, per school and role, the users
//! of a UCS@school directory (docs/vendors/ucs-kelvin-ldap.md#kelvin) and hands them to the sync
//! engine as `PersonRecord`s.
//!
//! Kelvin does not page: every `GET /v1/users/?school=&roles=` answers one JSON array. Asking
//! per school and per role keeps each response to one school's pupils (or teachers, ...), and
//! only the fields a record needs are decoded, so memory per response stays small. A person
//! can turn up in several responses (a teacher at two schools, a teacher who is also staff);
//! the read collects each person's memberships across all responses and sends every person
//! once, at the end, in pages.
//!
//! The person key is `source_uid/record_uid` (the school administration's id,
//! docs/vendors/README.md#identity-joins). Kelvin v1 exposes no `entryUUID`, so a user without
//! those two ids is keyed as `name:<username>` with a problem on the record: a rename then looks
//! like a new person.

mod auth;
mod config;
mod mapping;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bestand_model::model::PersonRole;
use bestand_model::person::{DirectorySchool, PersonRecord};
use bestand_model::protocol::FetchFailure;
use futures::stream::{self, StreamExt};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use self::auth::{AuthError, KelvinTokens};
pub use self::config::{KelvinConfig, KelvinConfigError, MAX_CONCURRENCY, MAX_PAGE_SIZE};
use self::mapping::{Mapped, Scope};
use crate::http::{display_url, HttpClient, HttpError};
use crate::secret::resolve_secret;
use crate::token::{AuthorizedError, TokenCache};
use crate::url_keys::UrlKeyError;
use crate::{DirectoryConnector, DirectorySink};

const TOKEN: &str = "token";
const SCHOOLS: &str = "v1/schools/";
const USERS: &str = "v1/users/";
const CLASSES: &str = "v1/classes/";

/// Why a read stopped; becomes a `FetchFailure` naming the request.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(
        "{0}, again with a token issued just before; the account cannot read this (is it in \
         ucsschool-kelvin-rest-api-readers or ucsschool-kelvin-rest-api-admins?)"
    )]
    Unauthorized(String),
    #[error(
        "{0} (the account lacks the right to read this; it must be in \
         ucsschool-kelvin-rest-api-readers or ucsschool-kelvin-rest-api-admins)"
    )]
    Forbidden(String),
    #[error("the response is not the expected JSON array: {0}")]
    Malformed(String),
    #[error("school `{school}` of `schools` is not listed by Kelvin (it lists {listed})")]
    UnknownSchool { school: String, listed: String },
}

/// The UCS@school Kelvin source. Build it with `Kelvin::new`, run it with
/// `spawn_directory_fetch`.
pub struct Kelvin {
    source_name: String,
    http: HttpClient,
    tokens: TokenCache<KelvinTokens>,
    root: url::Url,
    schools: Option<Vec<String>>,
    roles: Vec<PersonRole>,
    include_disabled: bool,
    read_classes: bool,
    page_size: usize,
    max_concurrency: usize,
}

impl fmt::Debug for Kelvin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kelvin")
            .field("source_name", &self.source_name)
            .field("root", &display_url(&self.root))
            .field("tokens", &self.tokens)
            .field("schools", &self.schools)
            .field("roles", &self.roles)
            .field("include_disabled", &self.include_disabled)
            .field("read_classes", &self.read_classes)
            .field("page_size", &self.page_size)
            .field("max_concurrency", &self.max_concurrency)
            .field("http", &self.http)
            .finish()
    }
}

/// One school-and-role listing, decoded and mapped.
struct Listing {
    school: String,
    role: PersonRole,
    mapped: Vec<Mapped>,
}

impl Kelvin {
    /// Checks the configuration and resolves the password. Makes no network request.
    pub fn new(
        config: KelvinConfig,
        source_name: impl Into<String>,
    ) -> Result<Kelvin, KelvinConfigError> {
        let root = config.validate()?;
        let password = resolve_secret(
            "password",
            config.password_env.as_deref(),
            config.password_file.as_deref(),
        )?;
        let http = HttpClient::new(&config.request_keys().http_settings())?;
        let token_url = root
            .join(TOKEN)
            .map_err(|error| UrlKeyError::parse("base_url", error))?;
        let issuer = KelvinTokens::new(
            http.clone(),
            token_url,
            config.username.trim().to_string(),
            password,
        );
        let source_name = source_name.into();
        let tokens = TokenCache::new(issuer, http.clone(), &source_name);
        let roles = config.distinct_roles();
        let max_concurrency = config.request_keys().http_settings().max_concurrency;
        Ok(Kelvin {
            source_name,
            http,
            tokens,
            root,
            schools: config
                .schools
                .map(|schools| schools.iter().map(|s| s.trim().to_string()).collect()),
            roles,
            include_disabled: config.include_disabled,
            read_classes: config.read_classes,
            page_size: config.page_size,
            max_concurrency,
        })
    }

    /// The URL of `path` below the Kelvin root with `query` appended.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<url::Url, FetchError> {
        let mut url = self
            .root
            .join(path)
            .map_err(|error| FetchError::Http(error.to_string()))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// GETs `url` with the bearer token; on a 401 renews the token once and replays.
    async fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        let answer = self
            .tokens
            .send(|client| client.get(url.clone()).header(ACCEPT, "application/json"))
            .await;
        match answer {
            Ok(response) => Ok(response.body),
            Err(AuthorizedError::Token(error)) => Err(error.into()),
            Err(AuthorizedError::RejectedAgain(error)) => {
                Err(FetchError::Unauthorized(describe(&error)))
            }
            Err(AuthorizedError::Http(error)) if error.status() == Some(StatusCode::FORBIDDEN) => {
                Err(FetchError::Forbidden(describe(&error)))
            }
            Err(AuthorizedError::Http(error)) => Err(FetchError::Http(describe(&error))),
        }
    }

    /// The schools to read, as Kelvin lists them, narrowed to `schools` if configured.
    async fn read_schools(&self) -> Result<Vec<DirectorySchool>, FetchFailure> {
        let url = self.url(SCHOOLS, &[]).map_err(|e| failure(SCHOOLS, e))?;
        let label = request_label(&url);
        let fail = |error: FetchError| failure(&label, error);
        let body = self.get(&url).await.map_err(fail)?;
        let listed: Vec<DirectorySchool> = mapping::decode_schools(&body)
            .map_err(|cause| fail(FetchError::Malformed(cause)))?
            .iter()
            .map(mapping::directory_school)
            .filter(|school| !school.key.is_empty())
            .collect();
        let Some(wanted) = &self.schools else {
            return Ok(listed);
        };
        let mut chosen = Vec::with_capacity(wanted.len());
        for name in wanted {
            let found = listed
                .iter()
                .find(|school| school.key.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let names: Vec<&str> = listed.iter().map(|s| s.key.as_str()).collect();
                    fail(FetchError::UnknownSchool {
                        school: name.clone(),
                        listed: if names.is_empty() {
                            "no school at all".to_string()
                        } else {
                            names.join(", ")
                        },
                    })
                })?;
            if !chosen.contains(found) {
                chosen.push(found.clone());
            }
        }
        Ok(chosen)
    }

    /// Reads and maps the users of one school in one role.
    async fn listing(
        &self,
        school: String,
        role: PersonRole,
        scope: Arc<Scope>,
    ) -> Result<Listing, FetchFailure> {
        let url = self
            .url(USERS, &[("school", &school), ("roles", role.as_str())])
            .map_err(|e| failure(USERS, e))?;
        let label = request_label(&url);
        let fail = |error: FetchError| failure(&label, error);
        let body = self.get(&url).await.map_err(fail)?;
        let include_disabled = self.include_disabled;
        let listed_school = school.clone();
        // Decoding a large school is CPU work; the blocking pool keeps the runtime threads
        // free, and the body is dropped there once decoded.
        let mapped = tokio::task::spawn_blocking(move || {
            mapping::decode_users(&body).map(|users| {
                users
                    .into_iter()
                    .map(|user| {
                        mapping::map_user(user, &listed_school, role, &scope, include_disabled)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await
        .map_err(|error| fail(FetchError::Malformed(format!("decoding stopped ({error})"))))?
        .map_err(|cause| fail(FetchError::Malformed(cause)))?;
        Ok(Listing {
            school,
            role,
            mapped,
        })
    }

    /// Lists a school's classes and logs how many have no members and how many classes users
    /// name that the list lacks; nothing depends on it, so a failure is only logged.
    async fn log_classes(&self, school: &str, named_by_users: Option<&HashSet<String>>) {
        let url = match self.url(CLASSES, &[("school", school)]) {
            Ok(url) => url,
            Err(error) => {
                tracing::warn!(source = %self.source_name, school, %error, "cannot list classes");
                return;
            }
        };
        let listed = match self.get(&url).await {
            Ok(body) => mapping::decode_classes(&body).map_err(FetchError::Malformed),
            Err(error) => Err(error),
        };
        match listed {
            Ok(classes) => {
                let empty = classes.iter().filter(|c| c.member_count() == 0).count();
                let listed: HashSet<String> = classes
                    .iter()
                    .map(|class| class.name.trim().to_lowercase())
                    .collect();
                let unlisted = named_by_users.map_or(0, |named| {
                    named.iter().filter(|name| !listed.contains(*name)).count()
                });
                tracing::info!(
                    source = %self.source_name,
                    school,
                    classes = classes.len(),
                    empty,
                    unlisted,
                    "Kelvin classes (empty: listed without members; unlisted: named by users only)"
                );
            }
            Err(error) => tracing::warn!(
                source = %self.source_name,
                request = %request_label(&url),
                %error,
                "listing the classes failed; users carry their classes, so the read goes on"
            ),
        }
    }

    async fn run(&self, sink: &DirectorySink) -> Result<u64, FetchFailure> {
        let schools = self.read_schools().await?;
        sink.send_schools(schools.clone()).await?;
        let scope = Arc::new(Scope::new(&schools, &self.roles));
        let queries: Vec<(String, PersonRole)> = schools
            .iter()
            .flat_map(|school| self.roles.iter().map(|role| (school.key.clone(), *role)))
            .collect();
        let mut listings = stream::iter(queries)
            .map(|(school, role)| self.listing(school, role, Arc::clone(&scope)))
            .buffered(self.max_concurrency);
        let mut persons: BTreeMap<String, PersonRecord> = BTreeMap::new();
        let mut disabled: HashSet<String> = HashSet::new();
        let mut sightings = 0u64;
        while let Some(listing) = listings.next().await {
            let Listing {
                school,
                role,
                mapped,
            } = listing?;
            tracing::debug!(source = %self.source_name, school, %role, users = mapped.len(),
                "read a Kelvin listing");
            for mapped in mapped {
                let record = match mapped {
                    Mapped::Person(record) => *record,
                    Mapped::Disabled(username) => {
                        disabled.insert(username);
                        continue;
                    }
                };
                sightings += 1;
                match persons.get_mut(&record.external_id) {
                    Some(known) => mapping::merge(known, record),
                    None => {
                        persons.insert(record.external_id.clone(), record);
                    }
                }
            }
        }
        drop(listings);
        if self.read_classes {
            let mut named: HashMap<String, HashSet<String>> = HashMap::new();
            for record in persons.values() {
                for membership in &record.memberships {
                    if let Some(class) = &membership.class {
                        named
                            .entry(membership.school.to_lowercase())
                            .or_default()
                            .insert(class.to_lowercase());
                    }
                }
            }
            for school in &schools {
                let named_by_users = named.get(&school.key.to_lowercase());
                self.log_classes(&school.key, named_by_users).await;
            }
        }
        if !disabled.is_empty() {
            tracing::info!(source = %self.source_name, disabled = disabled.len(),
                "left out deactivated Kelvin accounts (set `include_disabled` to read them)");
        }
        let total = persons.len() as u64;
        tracing::info!(source = %self.source_name, persons = total, sightings,
            schools = schools.len(), "read every Kelvin listing; sending persons");
        let mut page = Vec::with_capacity(self.page_size.min(persons.len()));
        let mut first = 1u64;
        let mut sent = 0u64;
        for (_, record) in persons {
            page.push(record);
            sent += 1;
            if page.len() == self.page_size || sent == total {
                let label = format!("persons {first}-{sent} of {total}");
                sink.send_persons(label, std::mem::take(&mut page)).await?;
                first = sent + 1;
            }
        }
        tracing::info!(source = %self.source_name, persons = total, "Kelvin read complete");
        Ok(total)
    }
}

/// The label of a request in failures: method, path and query, e.g.
/// `GET /ucsschool/kelvin/v1/users/?school=GSL&roles=student`.
fn request_label(url: &url::Url) -> String {
    match url.query() {
        Some(query) => format!("GET {}?{query}", url.path()),
        None => format!("GET {}", url.path()),
    }
}

fn failure(label: &str, error: FetchError) -> FetchFailure {
    FetchFailure {
        page: Some(label.to_string()),
        cause: error.to_string(),
    }
}

/// The text of an HTTP error, with a FastAPI `{"detail": ...}` body shown as its detail
/// rather than as JSON.
fn describe(error: &HttpError) -> String {
    let HttpError::Status {
        method,
        url,
        status,
        excerpt,
        attempts,
    } = error
    else {
        return error.to_string();
    };
    let Some(detail) = fastapi_detail(excerpt) else {
        return error.to_string();
    };
    let after = if *attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    };
    format!("{method} {url} answered HTTP {status}{after}: {detail}")
}

/// The `detail` of a FastAPI error body: a message, or validation errors as `loc: msg`.
fn fastapi_detail(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let detail = value.get("detail")?;
    let text = match detail {
        serde_json::Value::String(message) => message.trim().to_string(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                let message = item.get("msg").and_then(|m| m.as_str());
                let location = item.get("loc").and_then(|l| l.as_array()).map(|parts| {
                    parts
                        .iter()
                        .map(|part| match part {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(".")
                });
                match (location, message) {
                    (Some(location), Some(message)) => format!("{location}: {message}"),
                    (None, Some(message)) => message.to_string(),
                    _ => item.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

#[async_trait]
impl DirectoryConnector for Kelvin {
    async fn fetch_directory(&self, sink: &DirectorySink) -> Result<u64, FetchFailure> {
        tracing::info!(source = %self.source_name, root = %display_url(&self.root),
            "Kelvin read starting");
        let result = self.run(sink).await;
        if let Err(failure) = &result {
            tracing::warn!(source = %self.source_name, %failure, "Kelvin read failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastapi_details_are_read_from_error_bodies() {
        assert_eq!(
            fastapi_detail(r#"{"detail": "No school with name 'XYZ' found."}"#).as_deref(),
            Some("No school with name 'XYZ' found.")
        );
        assert_eq!(
            fastapi_detail(
                r#"{"detail":[{"loc":["query","school"],"msg":"field required","type":"x"}]}"#
            )
            .as_deref(),
            Some("query.school: field required")
        );
        assert_eq!(fastapi_detail("<html>Bad Gateway</html>"), None);
        assert_eq!(fastapi_detail(r#"{"error": "x"}"#), None);
    }

    #[test]
    fn labels_name_path_and_query() {
        let url = url::Url::parse(
            "https://u:p@ucs.example/ucsschool/kelvin/v1/users/?school=GSL&roles=student",
        )
        .unwrap();
        assert_eq!(
            request_label(&url),
            "GET /ucsschool/kelvin/v1/users/?school=GSL&roles=student"
        );
    }
}
