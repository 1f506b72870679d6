//! Jamf Pro bearer tokens: obtained by OAuth client credentials or (legacy) a user account.
//! Sharing, renewing before expiry and once after a 401 is the shared `crate::token` cache.
//!
//! OAuth is a plain form POST through the shared `HttpClient` rather than the `oauth2` crate:
//! that way the token request gets the same timeouts, retries, concurrency limit and
//! secret-free error texts as every other request, and the legacy flow (Basic auth, ISO
//! `expires`) fits the same code.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http::{HttpClient, HttpError};
use crate::token::{IssuedToken, TokenIssuer};

/// Lifetime assumed when a token response does not say (or says something unreadable);
/// a wrong guess costs at most one 401 and a renewal.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

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

/// Jamf Pro's token request, for the shared `TokenCache`.
pub(crate) struct JamfProTokens {
    http: HttpClient,
    token_url: url::Url,
    credentials: Credentials,
}

impl fmt::Debug for JamfProTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JamfProTokens")
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

impl JamfProTokens {
    pub(crate) fn new(
        http: HttpClient,
        base: &url::Url,
        credentials: Credentials,
    ) -> Result<JamfProTokens, url::ParseError> {
        let path = match credentials {
            Credentials::OAuth { .. } => "api/oauth/token",
            Credentials::User { .. } => "api/v1/auth/token",
        };
        match &credentials {
            Credentials::OAuth { client_secret, .. } => http.redactor().add_fixed(client_secret),
            Credentials::User { password, .. } => http.redactor().add_fixed(password),
        }
        Ok(JamfProTokens {
            token_url: base.join(path)?,
            http,
            credentials,
        })
    }
}

#[async_trait]
impl TokenIssuer for JamfProTokens {
    type Error = AuthError;
    const VENDOR: &'static str = "Jamf Pro";

    async fn issue(&self) -> Result<IssuedToken, AuthError> {
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
        let (value, lifetime) = match &self.credentials {
            Credentials::OAuth { .. } => {
                let body: OAuthTokenResponse =
                    serde_json::from_slice(&response.body).map_err(malformed)?;
                let lifetime = body
                    .expires_in
                    .map_or(ASSUMED_LIFETIME, Duration::from_secs);
                (non_empty(body.access_token, url)?, lifetime)
            }
            Credentials::User { .. } => {
                let body: UserTokenResponse =
                    serde_json::from_slice(&response.body).map_err(malformed)?;
                let lifetime = body
                    .expires
                    .as_deref()
                    .and_then(lifetime_until)
                    .unwrap_or(ASSUMED_LIFETIME);
                (non_empty(body.token, url)?, lifetime)
            }
        };
        Ok(IssuedToken { value, lifetime })
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
