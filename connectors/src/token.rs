//! The one bearer-token cache every token-based connector (Jamf Pro, Intune, Kelvin) uses, so
//! that the concurrency-sensitive part lives once: one token shared by all requests, renewed a
//! margin before it expires, and renewed once after a 401 while concurrent requests wait for
//! that same renewal (single flight) instead of each asking for a token of its own.
//!
//! A connector supplies only its vendor's token request (a `TokenIssuer`); the cache hands the
//! token to requests, and `send` replays a request once with a renewed token after a 401.
//! A second 401 with the renewed token is the caller's error, never another renewal.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::{HttpClient, HttpError, HttpResponse};

/// Renew when less than this much of the lifetime is left, or 10 % if that is more: a token
/// must not run out between being handed to a request and the server checking it.
pub(crate) const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// A token as its issuer handed it out, with how long it stays valid from the request on.
pub(crate) struct IssuedToken {
    pub value: SecretString,
    pub lifetime: Duration,
}

/// One vendor's token request. Implementations keep their credentials out of `Debug`.
#[async_trait]
pub(crate) trait TokenIssuer: fmt::Debug + Send + Sync {
    /// Why no token could be had, in the vendor's words.
    type Error: Send;
    /// The vendor's name in logs, e.g. `Jamf Pro`.
    const VENDOR: &'static str;

    /// Asks the vendor for a new token. Runs under the cache's lock: one request at a time.
    async fn issue(&self) -> Result<IssuedToken, Self::Error>;

    /// How long before the end of `lifetime` the token is renewed.
    fn renew_margin(&self, lifetime: Duration) -> Duration {
        RENEW_MARGIN.max(lifetime / 10)
    }
}

/// Why an authorized request failed.
#[derive(Debug)]
pub(crate) enum AuthorizedError<E> {
    /// No token could be had.
    Token(E),
    /// The request failed for another reason than a 401, or after it was replayed.
    Http(HttpError),
    /// The request got a 401 again with a token issued right after the first 401: the
    /// credentials work for tokens but not for this request. Never renewed a second time.
    RejectedAgain(HttpError),
}

/// A token handed to one request. `generation` tells a later 401 which token failed, so that
/// concurrent requests failing with the same token trigger only one renewal.
struct Bearer {
    value: SecretString,
    generation: u64,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
    generation: u64,
}

impl Token {
    fn bearer(&self) -> Bearer {
        Bearer {
            value: self.value.clone(),
            generation: self.generation,
        }
    }
}

/// Hands out the current token of one source and renews it, one renewal at a time.
pub(crate) struct TokenCache<I> {
    issuer: I,
    http: HttpClient,
    /// The configured source's name, for logs.
    source: String,
    // A tokio mutex, held across the token request: requests arriving during a renewal wait
    // for it and then take the token it brought, which is what makes the renewal single flight.
    current: Mutex<Option<Token>>,
}

impl<I: fmt::Debug> fmt::Debug for TokenCache<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token itself is never shown; the issuer redacts its own credentials.
        f.debug_struct("TokenCache")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl<I: TokenIssuer> TokenCache<I> {
    /// A cache whose tokens are sent through `http` (whose redactor learns every token).
    pub(crate) fn new(issuer: I, http: HttpClient, source: &str) -> TokenCache<I> {
        TokenCache {
            issuer,
            http,
            source: source.to_string(),
            current: Mutex::new(None),
        }
    }

    /// The current token, renewed first if it is missing or close to expiry.
    async fn bearer(&self) -> Result<Bearer, I::Error> {
        let mut current = self.current.lock().await;
        let reason = match current.as_ref() {
            Some(token) if Instant::now() < token.renew_at => return Ok(token.bearer()),
            Some(_) => "expiring",
            None => "first request",
        };
        self.renew(&mut current, reason).await
    }

    /// Called after a request with token `rejected` got a 401: renews unless another request
    /// has already replaced that token, whose new token is then handed out instead.
    async fn renew_after_unauthorized(&self, rejected: u64) -> Result<Bearer, I::Error> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if token.generation != rejected {
                return Ok(token.bearer());
            }
        }
        self.renew(&mut current, "401 Unauthorized").await
    }

    async fn renew(&self, current: &mut Option<Token>, reason: &str) -> Result<Bearer, I::Error> {
        let requested_at = Instant::now();
        let IssuedToken { value, lifetime } = self.issuer.issue().await?;
        self.http.redactor().add_rotating(&value);
        let generation = current.as_ref().map_or(1, |token| token.generation + 1);
        tracing::info!(
            source = %self.source,
            vendor = I::VENDOR,
            reason,
            lifetime_secs = lifetime.as_secs(),
            generation,
            "obtained an access token"
        );
        let token = Token {
            value,
            // Counting from the request start errs on the early side.
            renew_at: requested_at + lifetime.saturating_sub(self.issuer.renew_margin(lifetime)),
            generation,
        };
        let bearer = token.bearer();
        *current = Some(token);
        Ok(bearer)
    }

    /// Sends the request `build` makes with the bearer token through the shared client (its
    /// retries included); on a 401 renews the token once and replays the request once.
    pub(crate) async fn send<F>(&self, build: F) -> Result<HttpResponse, AuthorizedError<I::Error>>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let bearer = self.bearer().await.map_err(AuthorizedError::Token)?;
        match self.send_with(&build, &bearer).await {
            Err(error) if error.status() == Some(StatusCode::UNAUTHORIZED) => {
                tracing::warn!(
                    source = %self.source,
                    vendor = I::VENDOR,
                    %error,
                    "answered 401; renewing the token and replaying the request"
                );
                let renewed = self
                    .renew_after_unauthorized(bearer.generation)
                    .await
                    .map_err(AuthorizedError::Token)?;
                match self.send_with(&build, &renewed).await {
                    Err(error) if error.status() == Some(StatusCode::UNAUTHORIZED) => {
                        Err(AuthorizedError::RejectedAgain(error))
                    }
                    answer => answer.map_err(AuthorizedError::Http),
                }
            }
            answer => answer.map_err(AuthorizedError::Http),
        }
    }

    async fn send_with<F>(&self, build: &F, bearer: &Bearer) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.http
            .send(|client| build(client).bearer_auth(bearer.value.expose_secret()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::http::{HttpSettings, RetryPolicy};

    /// Issues `token-1`, `token-2`, ... and counts its calls; each call takes a while, so
    /// concurrent requests really overlap with a renewal.
    #[derive(Debug)]
    struct Counting {
        issued: AtomicU64,
        lifetime: Duration,
    }

    #[async_trait]
    impl TokenIssuer for Counting {
        type Error = String;
        const VENDOR: &'static str = "test";

        async fn issue(&self) -> Result<IssuedToken, String> {
            let number = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(IssuedToken {
                value: SecretString::from(format!("token-{number}")),
                lifetime: self.lifetime,
            })
        }

        fn renew_margin(&self, _lifetime: Duration) -> Duration {
            Duration::ZERO
        }
    }

    fn cache(lifetime: Duration) -> Arc<TokenCache<Counting>> {
        let http = HttpClient::new(&HttpSettings {
            max_concurrency: 16,
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..HttpSettings::default()
        })
        .unwrap();
        let issuer = Counting {
            issued: AtomicU64::new(0),
            lifetime,
        };
        Arc::new(TokenCache::new(issuer, http, "test-source"))
    }

    fn issued(cache: &TokenCache<Counting>) -> u64 {
        cache.issuer.issued.load(Ordering::SeqCst)
    }

    /// Sends `count` GETs of `url` at once and returns their outcomes.
    async fn send_many(
        cache: &Arc<TokenCache<Counting>>,
        url: &str,
        count: usize,
    ) -> Vec<Result<HttpResponse, AuthorizedError<String>>> {
        let requests = (0..count).map(|_| {
            let cache = cache.clone();
            let url = url.to_string();
            tokio::spawn(async move { cache.send(|client| client.get(url.as_str())).await })
        });
        futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|joined| joined.unwrap())
            .collect()
    }

    #[tokio::test]
    async fn concurrent_requests_after_expiry_share_one_renewal() {
        let cache = cache(Duration::from_millis(100));
        let first = cache.bearer().await.unwrap();
        assert_eq!(first.value.expose_secret(), "token-1");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let bearers = futures::future::join_all((0..10).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.bearer().await.unwrap() })
        }))
        .await;
        assert_eq!(issued(&cache), 2, "one renewal for ten requests");
        for bearer in bearers {
            let bearer = bearer.unwrap();
            assert_eq!(bearer.value.expose_secret(), "token-2");
            assert_eq!(bearer.generation, 2);
        }
    }

    #[tokio::test]
    async fn a_valid_token_is_reused_without_asking_again() {
        let cache = cache(Duration::from_secs(3600));
        for _ in 0..5 {
            cache.bearer().await.unwrap();
        }
        assert_eq!(issued(&cache), 1);
    }

    #[tokio::test]
    async fn concurrent_401s_cause_exactly_one_renewal() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/data"))
            .and(header("authorization", "Bearer token-1"))
            .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(20)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/data"))
            .and(header("authorization", "Bearer token-2"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        let cache = cache(Duration::from_secs(3600));
        // Every request starts with token 1, so all ten meet the 401.
        cache.bearer().await.unwrap();
        let outcomes = send_many(&cache, &format!("{}/data", server.uri()), 10).await;
        for outcome in outcomes {
            assert_eq!(outcome.unwrap().body, b"ok");
        }
        assert_eq!(issued(&cache), 2, "one renewal for ten 401s");
    }

    #[tokio::test]
    async fn a_second_401_after_the_renewal_is_an_error_not_a_loop() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/data"))
            .respond_with(ResponseTemplate::new(401).set_body_string("no"))
            .expect(2)
            .mount(&server)
            .await;
        let cache = cache(Duration::from_secs(3600));
        let outcome = cache
            .send(|client| client.get(format!("{}/data", server.uri())))
            .await;
        match outcome {
            Err(AuthorizedError::RejectedAgain(error)) => {
                assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
            }
            other => panic!("expected RejectedAgain, got {other:?}"),
        }
        assert_eq!(issued(&cache), 2, "the first token and one renewal");
    }

    #[tokio::test]
    async fn debug_shows_no_token() {
        let cache = cache(Duration::from_secs(3600));
        cache.bearer().await.unwrap();
        let shown = format!("{cache:?}");
        assert!(!shown.contains("token-1"), "{shown}");
    }
}
