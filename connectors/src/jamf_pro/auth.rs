//! Jamf Pro bearer tokens: obtained by OAuth client credentials or (legacy) a user account,
//! shared by all concurrent requests, renewed before they expire and once after a 401.
//!
//! OAuth is a plain form POST through the shared `HttpClient` rather than the `oauth2` crate:
//! that way the token request gets the same timeouts, retries, concurrency limit and
//! secret-free error texts as every other request, and the legacy flow (Basic auth, ISO
//! `expires`) fits the same code.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::{HttpClient, HttpError};

/// Lifetime assumed when a token response does not say (or says something unreadable);
/// a wrong guess costs at most one 401 and a renewal.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);
/// Renew when less than this much of the lifetime is left (or 10 % if that is more).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// How the connector logs in.
pub(crate) enum Credentials {
    OAuth {
        client_id: String,
        client_secret: SecretString,
    },
    User {
        username: String,
        password: SecretString,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::OAuth { client_id, .. } => f
                .debug_struct("OAuth")
                .field("client_id", client_id)
                .field("client_secret", &"[redacted]")
                .finish(),
            Credentials::User { username, .. } => f
                .debug_struct("User")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
        }
    }
}

/// Why no usable token could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The server refused the credentials (a second 401, or the token endpoint said no).
    #[error("Jamf Pro rejected the credentials: {0}")]
    Rejected(String),
    #[error("token request failed: {0}")]
    Http(HttpError),
    #[error("the token response from {0} is not the expected JSON")]
    Malformed(String),
}

/// A token handed to one request. `generation` tells a later 401 which token failed, so
/// that concurrent requests failing with the same token trigger only one renewal.
pub(crate) struct Bearer {
    pub value: SecretString,
    pub generation: u64,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
    generation: u64,
}

/// Hands out the current token and renews it, one renewal at a time.
pub(crate) struct TokenSource {
    http: HttpClient,
    token_url: url::Url,
    credentials: Credentials,
    current: Mutex<Option<Token>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct OAuthTokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct UserTokenResponse {
    token: String,
    expires: Option<String>,
}

impl TokenSource {
    pub(crate) fn new(
        http: HttpClient,
        base: &url::Url,
        credentials: Credentials,
    ) -> Result<TokenSource, url::ParseError> {
        let path = match credentials {
            Credentials::OAuth { .. } => "api/oauth/token",
            Credentials::User { .. } => "api/v1/auth/token",
        };
        match &credentials {
            Credentials::OAuth { client_secret, .. } => http.redactor().add_fixed(client_secret),
            Credentials::User { password, .. } => http.redactor().add_fixed(password),
        }
        Ok(TokenSource {
            token_url: base.join(path)?,
            http,
            credentials,
            current: Mutex::new(None),
        })
    }

    /// The current token, renewed first if it is missing or close to expiry.
    pub(crate) async fn bearer(&self) -> Result<Bearer, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(bearer_of(token));
            }
        }
        let reason = if current.is_some() {
            "expiring"
        } else {
            "first request"
        };
        self.renew(&mut current, reason).await
    }

    /// Called after a request with token `rejected` got a 401: renews unless another request
    /// has already replaced that token.
    pub(crate) async fn renew_after_unauthorized(
        &self,
        rejected: u64,
    ) -> Result<Bearer, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if token.generation != rejected {
                return Ok(bearer_of(token));
            }
        }
        self.renew(&mut current, "401 Unauthorized").await
    }

    async fn renew(&self, current: &mut Option<Token>, reason: &str) -> Result<Bearer, AuthError> {
        let requested_at = Instant::now();
        let (value, lifetime) = self.request_token().await?;
        self.http.redactor().add_rotating(&value);
        let margin = RENEW_MARGIN.max(lifetime / 10);
        let generation = current.as_ref().map_or(1, |token| token.generation + 1);
        tracing::info!(
            url = %self.token_url,
            reason,
            lifetime_secs = lifetime.as_secs(),
            generation,
            "obtained a Jamf Pro access token"
        );
        let token = Token {
            value,
            // Counting from the request start errs on the early side.
            renew_at: requested_at + lifetime.saturating_sub(margin),
            generation,
        };
        let bearer = bearer_of(&token);
        *current = Some(token);
        Ok(bearer)
    }

    async fn request_token(&self) -> Result<(SecretString, Duration), AuthError> {
        let url = &self.token_url;
        let sent = match &self.credentials {
            Credentials::OAuth {
                client_id,
                client_secret,
            } => {
                self.http
                    .send(|client| {
                        client
                            .post(url.clone())
                            .header(ACCEPT, "application/json")
                            .form(&[
                                ("grant_type", "client_credentials"),
                                ("client_id", client_id.as_str()),
                                ("client_secret", client_secret.expose_secret()),
                            ])
                    })
                    .await
            }
            Credentials::User { username, password } => {
                self.http
                    .send(|client| {
                        client
                            .post(url.clone())
                            .header(ACCEPT, "application/json")
                            .basic_auth(username, Some(password.expose_secret()))
                    })
                    .await
            }
        };
        let response = sent.map_err(|error| match error.status() {
            Some(StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                AuthError::Rejected(error.to_string())
            }
            _ => AuthError::Http(error),
        })?;
        // serde's messages may quote parts of the body, which holds the token: not shown.
        let malformed = |_| AuthError::Malformed(url.to_string());
        match &self.credentials {
            Credentials::OAuth { .. } => {
                let body: OAuthTokenResponse =
                    serde_json::from_slice(&response.body).map_err(malformed)?;
                let lifetime = body
                    .expires_in
                    .map_or(ASSUMED_LIFETIME, Duration::from_secs);
                Ok((non_empty(body.access_token, url)?, lifetime))
            }
            Credentials::User { .. } => {
                let body: UserTokenResponse =
                    serde_json::from_slice(&response.body).map_err(malformed)?;
                let lifetime = body
                    .expires
                    .as_deref()
                    .and_then(lifetime_until)
                    .unwrap_or(ASSUMED_LIFETIME);
                Ok((non_empty(body.token, url)?, lifetime))
            }
        }
    }
}

fn bearer_of(token: &Token) -> Bearer {
    Bearer {
        value: token.value.clone(),
        generation: token.generation,
    }
}

fn non_empty(token: String, url: &url::Url) -> Result<SecretString, AuthError> {
    if token.trim().is_empty() {
        return Err(AuthError::Malformed(url.to_string()));
    }
    Ok(SecretString::from(token))
}

/// The time left until an ISO timestamp such as `2022-01-24T21:35:20.373Z` (legacy tokens
/// state their expiry as a point in time, so this one place reads the wall clock).
fn lifetime_until(expires: &str) -> Option<Duration> {
    let expires = chrono::DateTime::parse_from_rfc3339(expires.trim()).ok()?;
    let expires = SystemTime::from(expires.with_timezone(&chrono::Utc));
    Some(
        expires
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let credentials = Credentials::OAuth {
            client_id: "client-1".into(),
            client_secret: SecretString::from("very-secret"),
        };
        let text = format!("{credentials:?}");
        assert!(text.contains("client-1"));
        assert!(!text.contains("very-secret"));
    }

    #[test]
    fn legacy_expiry_is_read_as_a_point_in_time() {
        assert_eq!(
            lifetime_until("2000-01-01T00:00:00.000Z"),
            Some(Duration::ZERO)
        );
        let later = chrono::Utc::now() + chrono::Duration::minutes(30);
        let left = lifetime_until(&later.to_rfc3339()).unwrap();
        assert!(left > Duration::from_secs(29 * 60) && left <= Duration::from_secs(30 * 60));
        assert_eq!(lifetime_until("tomorrow"), None);
    }
}
