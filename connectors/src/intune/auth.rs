//! App-only Graph tokens from the Entra ID client-credentials grant (docs/vendors/intune.md#token).
//! Sharing the token, renewing it before expiry and once after a 401 is the shared
//! `crate::token` cache; this is only the token request.
//!
//! The grant is made with the `oauth2` crate, but its one HTTP request goes through the shared
//! `HttpClient` (oauth2 takes any async function as its client), so the token request gets the
//! same timeouts, 429/5xx retries with `Retry-After`, and redaction of error excerpts as every
//! Graph request.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::http::{HttpClient, HttpError};
use crate::token::{IssuedToken, TokenIssuer};

/// Lifetime assumed when the response has no `expires_in`; Entra says 3599 s in practice.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// Why no usable token could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("Entra ID rejected the client credentials: {0}")]
    Rejected(String),
    #[error("token request failed: {0}")]
    Http(HttpError),
    #[error("the token response from {0} is not the expected JSON")]
    Malformed(String),
}

/// Why the one HTTP call of the grant failed.
#[derive(Debug, thiserror::Error)]
enum GrantCallError {
    #[error("{0}")]
    Http(HttpError),
    #[error("cannot pass the response on: {0}")]
    Response(#[from] oauth2::http::Error),
}

/// The Entra ID token request, for the shared `TokenCache`.
pub(crate) struct IntuneTokens {
    http: HttpClient,
    url: url::Url,
    client_id: String,
    client_secret: SecretString,
    scope: String,
}

impl fmt::Debug for IntuneTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntuneTokens")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl IntuneTokens {
    pub(crate) fn new(
        http: HttpClient,
        url: url::Url,
        client_id: String,
        client_secret: SecretString,
        scope: String,
    ) -> IntuneTokens {
        http.redactor().add_fixed(&client_secret);
        IntuneTokens {
            http,
            url,
            client_id,
            client_secret,
            scope,
        }
    }
}

#[async_trait]
impl TokenIssuer for IntuneTokens {
    type Error = AuthError;
    const VENDOR: &'static str = "Entra ID";

    async fn issue(&self) -> Result<IssuedToken, AuthError> {
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_string(),
            ))
            .set_token_uri(TokenUrl::from_url(self.url.clone()))
            // Entra documents the secret in the form body (docs/vendors/intune.md#token).
            .set_auth_type(AuthType::RequestBody);
        let http = self.http.clone();
        let send = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let (parts, body) = request.into_parts();
                let response = http
                    .send(|client| {
                        client
                            .request(parts.method.clone(), parts.uri.to_string())
                            .headers(parts.headers.clone())
                            .body(body.clone())
                    })
                    .await
                    .map_err(GrantCallError::Http)?;
                let mut builder = oauth2::http::Response::builder().status(response.status);
                for (name, value) in &response.headers {
                    builder = builder.header(name, value);
                }
                Ok::<_, GrantCallError>(builder.body(response.body)?)
            }
        };
        let body = client
            .exchange_client_credentials()
            .add_scope(Scope::new(self.scope.clone()))
            .request_async(&send)
            .await
            .map_err(|error| match error {
                RequestTokenError::Request(GrantCallError::Http(error)) => match error.status() {
                    // Entra answers 400 (invalid_client, AADSTS7000215) or 401 for bad secrets.
                    Some(
                        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN,
                    ) => AuthError::Rejected(error.to_string()),
                    _ => AuthError::Http(error),
                },
                RequestTokenError::ServerResponse(response) => {
                    AuthError::Rejected(response.to_string())
                }
                // A parse error may quote the body, which holds the token: not shown.
                _ => AuthError::Malformed(self.url.to_string()),
            })?;
        if body.access_token().secret().trim().is_empty() {
            return Err(AuthError::Malformed(self.url.to_string()));
        }
        Ok(IssuedToken {
            value: SecretString::from(body.access_token().secret().clone()),
            lifetime: body.expires_in().unwrap_or(ASSUMED_LIFETIME),
        })
    }
}
