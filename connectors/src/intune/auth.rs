//! App-only Graph tokens from the Entra ID client-credentials grant (docs/vendors/intune.md#token):
//! one token shared by the fetch, renewed before it expires and once after a 401.
//!
//! The grant is made with the `oauth2` crate, but its one HTTP request goes through the shared
//! `HttpClient` (oauth2 takes any async function as its client), so the token request gets the
//! same timeouts, 429/5xx retries with `Retry-After`, and redaction of error excerpts as every
//! Graph request.

use std::fmt;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::{HttpClient, HttpError};

/// Lifetime assumed when the response has no `expires_in`; Entra says 3599 s in practice.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);
/// Renew when less than this much of the lifetime is left, or 10 % if that is more
/// (docs/vendors/README.md#retries).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

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

/// A token handed to one request; `generation` lets a 401 say which token failed.
pub(crate) struct Bearer {
    pub value: SecretString,
    pub generation: u64,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
    generation: u64,
}

/// Why the one HTTP call of the grant failed.
#[derive(Debug, thiserror::Error)]
enum GrantCallError {
    #[error("{0}")]
    Http(HttpError),
    #[error("cannot pass the response on: {0}")]
    Response(#[from] oauth2::http::Error),
}

/// Hands out the current token and renews it, one renewal at a time.
pub(crate) struct TokenSource {
    http: HttpClient,
    url: url::Url,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    current: Mutex<Option<Token>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(
        http: HttpClient,
        url: url::Url,
        client_id: String,
        client_secret: SecretString,
        scope: String,
    ) -> TokenSource {
        http.redactor().add_fixed(&client_secret);
        TokenSource {
            http,
            url,
            client_id,
            client_secret,
            scope,
            current: Mutex::new(None),
        }
    }

    /// The current token, renewed first if it is missing or close to expiry.
    pub(crate) async fn bearer(&self) -> Result<Bearer, AuthError> {
        let mut current = self.current.lock().await;
        match current.as_ref() {
            Some(token) if Instant::now() < token.renew_at => Ok(bearer_of(token)),
            _ => self.renew(&mut current).await,
        }
    }

    /// After token `rejected` got a 401: renews unless it was already replaced.
    pub(crate) async fn renew_after_unauthorized(
        &self,
        rejected: u64,
    ) -> Result<Bearer, AuthError> {
        let mut current = self.current.lock().await;
        match current.as_ref() {
            Some(token) if token.generation != rejected => Ok(bearer_of(token)),
            _ => self.renew(&mut current).await,
        }
    }

    async fn renew(&self, current: &mut Option<Token>) -> Result<Bearer, AuthError> {
        let requested_at = Instant::now();
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
        let value = SecretString::from(body.access_token().secret().clone());
        self.http.redactor().add_rotating(&value);
        let lifetime = body.expires_in().unwrap_or(ASSUMED_LIFETIME);
        let generation = current.as_ref().map_or(1, |token| token.generation + 1);
        tracing::info!(
            url = %self.url,
            lifetime_secs = lifetime.as_secs(),
            generation,
            "obtained a Graph access token"
        );
        let token = Token {
            value,
            // Counting from the request start errs on the early side.
            renew_at: requested_at + lifetime.saturating_sub(RENEW_MARGIN.max(lifetime / 10)),
            generation,
        };
        let bearer = bearer_of(&token);
        *current = Some(token);
        Ok(bearer)
    }
}

fn bearer_of(token: &Token) -> Bearer {
    Bearer {
        value: token.value.clone(),
        generation: token.generation,
    }
}
