//! What every vendor mock needs besides its vendor's protocol: serving and stopping the HTTP
//! server, staged 429 and 5xx bursts, bearer tokens that can be expired, per-epoch data. Kept in
//! one place so the mocks cannot drift apart in how they start, stop and refuse, and so that each
//! mock's file shows only what its vendor does differently.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::MockError;

/// How long [`Server::shutdown`] waits for open requests before it cuts them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Tokens kept before expired ones are swept out, so a long benchmark does not grow the map
/// without bound.
const TOKENS_BEFORE_SWEEP: usize = 10_000;

/// Locks `mutex` even if a thread panicked while holding it: the mocks keep plain data behind
/// their locks, and a test that panics must not take the server down for the tests after it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A mock's listening socket before it serves: some mocks put their own address into what their
/// routes answer, so they need it before they can build the router.
pub(crate) struct Listener {
    listener: TcpListener,
    addr: SocketAddr,
    /// The mock's name in logs and errors, such as "Jamf Pro".
    name: &'static str,
}

impl Listener {
    /// Binds `bind`; port 0 picks a free one.
    pub(crate) async fn bind(bind: SocketAddr, name: &'static str) -> Result<Listener, MockError> {
        let failed = |source| MockError::Bind {
            name,
            addr: bind,
            source,
        };
        let listener = TcpListener::bind(bind).await.map_err(failed)?;
        let addr = listener.local_addr().map_err(failed)?;
        Ok(Listener {
            listener,
            addr,
            name,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `router` in a background task of the current Tokio runtime.
    pub(crate) fn serve(self, router: Router) -> Server {
        let Listener {
            listener,
            addr,
            name,
        } = self;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "{name} mock listening");
        Server {
            addr,
            base_url: format!("http://{addr}"),
            name,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A mock's running HTTP server. Dropping it stops the server at once; [`Server::shutdown`] lets
/// open requests finish first.
pub(crate) struct Server {
    addr: SocketAddr,
    base_url: String,
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops accepting requests and waits (up to 5 s) for open ones to finish.
    pub(crate) async fn shutdown(mut self) -> Result<(), MockError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(joined) => joined
                    .map_err(|source| MockError::Panicked {
                        what: format!("the {} mock task", self.name),
                        source,
                    })?
                    .map_err(|source| MockError::Serve {
                        name: self.name,
                        source,
                    })?,
                // Clients holding connections open must not block a test's teardown.
                Err(_) => task.abort(),
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What a mock serves in each epoch, built on first use and then kept, because tests switch
/// back and forth between epochs and building one can take seconds.
#[derive(Debug)]
pub(crate) struct PerEpoch<T>(Mutex<HashMap<u32, T>>);

impl<T: Clone> PerEpoch<T> {
    pub(crate) fn new() -> PerEpoch<T> {
        PerEpoch(Mutex::new(HashMap::new()))
    }

    /// The value of `epoch`, built by `build` if this is the first time it is asked for.
    pub(crate) fn get(&self, epoch: u32, build: impl FnOnce() -> T) -> T {
        lock(&self.0).entry(epoch).or_insert_with(build).clone()
    }
}

/// `body` as `application/json` with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// The credentials of the `Authorization` header if its scheme is `scheme` (in any case).
fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credentials) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then_some(credentials.trim())
}

/// The token of `Authorization: Bearer TOKEN`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "bearer")
}

/// The decoded `user:password` of `Authorization: Basic ...`.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let encoded = authorization(headers, "basic")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// Which staged burst a request falls into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Burst {
    RateLimit,
    ServerErrors,
}

/// Uses up one request of the staged bursts, given as the counts of requests still to refuse:
/// the 429s first, then the 5xx, as every mock's fault plan promises.
pub(crate) fn take_burst(rate_limit_next: &mut u32, server_errors_next: &mut u32) -> Option<Burst> {
    if *rate_limit_next > 0 {
        *rate_limit_next -= 1;
        Some(Burst::RateLimit)
    } else if *server_errors_next > 0 {
        *server_errors_next -= 1;
        Some(Burst::ServerErrors)
    } else {
        None
    }
}

/// The status of a staged server error: the one asked for, else 503.
pub(crate) fn server_error_status(status: Option<u16>) -> StatusCode {
    status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// `response` with `Retry-After: secs`.
pub(crate) fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Waits `delay`, the staged slowness of every answer; no wait at all when it is zero.
pub(crate) async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Why a bearer token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefused {
    /// Never issued by this server, or swept out after it expired.
    Unknown,
    /// Past its lifetime, issued before the tokens were expired, or used up.
    Expired,
}

#[derive(Debug)]
struct IssuedToken {
    expires_at: Instant,
    /// The token generation when it was issued; expiring the tokens starts a new one.
    generation: u64,
    used: u32,
}

/// The opaque bearer tokens a mock has issued. Expiring all of them is a fault the mock's
/// handle switches, so the current generation comes in from there.
#[derive(Debug, Default)]
pub(crate) struct IssuedTokens {
    tokens: Mutex<HashMap<String, IssuedToken>>,
    issued: AtomicU64,
}

impl IssuedTokens {
    /// A number no earlier token of this server had, to build the next token from.
    pub(crate) fn next_serial(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::Relaxed)
    }

    /// Accepts `token` from now on for `ttl`, while the generation stays `generation`.
    pub(crate) fn insert(&self, token: String, ttl: Duration, generation: u64) {
        let mut tokens = lock(&self.tokens);
        let now = Instant::now();
        if tokens.len() > TOKENS_BEFORE_SWEEP {
            tokens.retain(|_, issued| issued.expires_at > now);
        }
        tokens.insert(
            token,
            IssuedToken {
                expires_at: now + ttl,
                generation,
                used: 0,
            },
        );
    }

    pub(crate) fn remove(&self, token: &str) {
        lock(&self.tokens).remove(token);
    }

    /// Checks `token` against the current `generation` and, if it is valid, counts one use of
    /// it; a token that has answered `max_uses` requests is refused.
    pub(crate) fn use_token(
        &self,
        token: &str,
        generation: u64,
        max_uses: Option<u32>,
    ) -> Result<(), TokenRefused> {
        let mut tokens = lock(&self.tokens);
        let issued = tokens.get_mut(token).ok_or(TokenRefused::Unknown)?;
        if issued.generation != generation || Instant::now() >= issued.expires_at {
            return Err(TokenRefused::Expired);
        }
        if max_uses.is_some_and(|max| issued.used >= max) {
            return Err(TokenRefused::Expired);
        }
        issued.used += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_refuse_429s_first_then_5xx_then_nothing() {
        let (mut rate_limit, mut server_errors) = (1, 2);
        let mut take = || take_burst(&mut rate_limit, &mut server_errors);
        assert_eq!(take(), Some(Burst::RateLimit));
        assert_eq!(take(), Some(Burst::ServerErrors));
        assert_eq!(take(), Some(Burst::ServerErrors));
        assert_eq!(take(), None);
    }

    #[test]
    fn tokens_expire_with_their_generation_and_wear_out_after_their_uses() {
        let tokens = IssuedTokens::default();
        tokens.insert("a".to_string(), Duration::from_secs(60), 0);
        assert_eq!(tokens.use_token("b", 0, None), Err(TokenRefused::Unknown));
        assert_eq!(tokens.use_token("a", 0, Some(1)), Ok(()));
        assert_eq!(
            tokens.use_token("a", 0, Some(1)),
            Err(TokenRefused::Expired)
        );
        assert_eq!(tokens.use_token("a", 0, None), Ok(()));
        assert_eq!(tokens.use_token("a", 1, None), Err(TokenRefused::Expired));
        tokens.remove("a");
        assert_eq!(tokens.use_token("a", 0, None), Err(TokenRefused::Unknown));
    }
}
