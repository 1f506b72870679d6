//! Kelvin access tokens (docs/vendors/ucs-kelvin-ldap.md#kelvin): `POST /ucsschool/kelvin/token` with the
//! account's username and password as a form, answered by a JWT. The shared `crate::token`
//! cache shares it across the read and renews it once after a 401; Kelvin's own part is the
//! request and the margin: renewed when less than 30 s of its `exp` remain (as the official
//! client does).
//!
//! The JWT's payload is decoded without checking the signature: only the server needs to
//! trust the token, the client merely wants to know when it runs out.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::describe;
use crate::http::{display_url, HttpClient};
use crate::token::{IssuedToken, TokenIssuer};

/// Kelvin's default token lifetime, assumed when the token's `exp` cannot be read.
const ASSUMED_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Renew when less than this much validity is left (`TOKEN_LEEWAY` of the official client).
const LEEWAY: Duration = Duration::from_secs(30);

/// Why no usable token could be had. Never holds the password or a token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error(
        "Kelvin rejected the username `{username}` or its password ({detail}); the account \
         must exist and be in the group ucsschool-kelvin-rest-api-readers or \
         ucsschool-kelvin-rest-api-admins"
    )]
    Rejected { username: String, detail: String },
    #[error("the token request failed: {0}")]
    Http(String),
    #[error("the answer of POST {0} is not a Kelvin token response")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
}

/// Kelvin's token request, for the shared `TokenCache`.
pub(crate) struct KelvinTokens {
    http: HttpClient,
    url: url::Url,
    username: String,
    password: SecretString,
}

impl fmt::Debug for KelvinTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KelvinTokens")
            .field("url", &display_url(&self.url))
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl KelvinTokens {
    pub(crate) fn new(
        http: HttpClient,
        url: url::Url,
        username: String,
        password: SecretString,
    ) -> KelvinTokens {
        http.redactor().add_fixed(&password);
        KelvinTokens {
            http,
            url,
            username,
            password,
        }
    }
}

#[async_trait]
impl TokenIssuer for KelvinTokens {
    type Error = AuthError;
    const VENDOR: &'static str = "Kelvin";

    fn renew_margin(&self, _lifetime: Duration) -> Duration {
        LEEWAY
    }

    async fn issue(&self) -> Result<IssuedToken, AuthError> {
        let response = self
            .http
            .send(|client| {
                client
                    .post(self.url.clone())
                    .header(ACCEPT, "application/json")
                    .form(&[
                        ("username", self.username.as_str()),
                        ("password", self.password.expose_secret()),
                    ])
            })
            .await
            .map_err(|error| match error.status() {
                // FastAPI answers a missing form field with 422; bad credentials with 401.
                Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => AuthError::Rejected {
                    username: self.username.clone(),
                    detail: describe(&error),
                },
                _ => AuthError::Http(describe(&error)),
            })?;
        // A parse error may quote the body, which holds the token: it is not shown.
        let body: TokenBody = serde_json::from_slice(&response.body)
            .map_err(|_| AuthError::Malformed(display_url(&self.url)))?;
        let access_token = body.access_token.trim();
        if access_token.is_empty() {
            return Err(AuthError::Malformed(display_url(&self.url)));
        }
        if let Some(kind) = body
            .token_type
            .as_deref()
            .filter(|kind| !kind.eq_ignore_ascii_case("bearer"))
        {
            tracing::warn!(
                token_type = kind,
                "Kelvin issued a token that is not a bearer token; using it as one"
            );
        }
        let value = SecretString::from(access_token.to_string());
        let lifetime = match remaining_validity(access_token, SystemTime::now()) {
            Some(remaining) => remaining,
            None => {
                tracing::info!(
                    assumed_secs = ASSUMED_LIFETIME.as_secs(),
                    "the Kelvin token has no readable `exp`; assuming the default lifetime"
                );
                ASSUMED_LIFETIME
            }
        };
        if lifetime <= LEEWAY {
            tracing::warn!(
                lifetime_secs = lifetime.as_secs(),
                "the Kelvin token is valid for less than 30 s (short token lifetime or clock \
                 skew?); it is renewed before every request"
            );
        }
        Ok(IssuedToken { value, lifetime })
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<serde_json::Number>,
}

/// How long a JWT stays valid from `now` on, read from its payload's `exp` (seconds since
/// the epoch) without verifying the signature; `None` if the token is no readable JWT.
pub(crate) fn remaining_validity(token: &str, now: SystemTime) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    // Base64url without padding, as RFC 7519 has it; some issuers pad anyway.
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.exp?.as_f64()?;
    if !exp.is_finite() || exp < 0.0 {
        return None;
    }
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(Duration::from_secs_f64((exp - now).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            encode(payload)
        )
    }

    #[test]
    fn exp_is_read_without_verification() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            remaining_validity(&jwt(r#"{"sub":"x","exp":1700003600}"#), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            remaining_validity(&jwt(r#"{"exp":1699999000}"#), now),
            Some(Duration::ZERO)
        );
        // Padded payloads and fractional seconds occur in the wild.
        let padded = format!(
            "x.{}.y",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":1700000060.5}"#)
        );
        assert_eq!(
            remaining_validity(&padded, now),
            Some(Duration::from_millis(60_500))
        );
        for unreadable in [
            "opaque-token".to_string(),
            "a.b.c".to_string(),
            jwt(r#"{"sub":"x"}"#),
            jwt(r#"{"exp":"soon"}"#),
        ] {
            assert_eq!(remaining_validity(&unreadable, now), None, "{unreadable}");
        }
    }
}
