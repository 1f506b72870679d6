//! The HTTP layer every connector shares, so that timeouts, retries, backoff, concurrency
//! limits and error texts behave the same against every vendor API (see docs/vendors/README.md).
//!
//! Errors name the request and the HTTP status with a short excerpt of the body; credentials
//! registered with the client's `Redactor` are cut out of those excerpts, and URLs lose any
//! user-info part, so an error text can be logged and stored as it is.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// How long error excerpts of response bodies may be, in characters.
const EXCERPT_CHARS: usize = 200;
/// How much of an error body is looked at for the excerpt; error bodies are small, and this
/// keeps a misbehaving server from making us redact megabytes.
const EXCERPT_SCAN_BYTES: usize = 16 * 1024;
/// How many short-lived secrets (access tokens) the redactor remembers besides the fixed ones.
const ROTATING_SECRETS: usize = 4;

/// When and how long to wait before trying a request again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first one included; 1 disables retries.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles with every further retry.
    pub base: Duration,
    /// The backoff ceiling never grows beyond this.
    pub cap: Duration,
    /// The longest `Retry-After` the client obeys; a server asking for more gets this much,
    /// so a confused server cannot park a sync for hours.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            retry_after_max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait before retry number `retry` (1 = the first retry):
    /// `base * 2^(retry-1)`, capped at `cap`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A wait drawn uniformly from `[0, backoff_ceiling(retry)]` ("full jitter"), which spreads
    /// the retries of many clients instead of having them hit a recovering server together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.backoff_ceiling(retry).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }
}

/// Whether a response status is worth another try: throttling, request timeout and server
/// errors, except 501 (the server will never implement the method, however often we ask).
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// Reads a `Retry-After` value: either delay seconds or an HTTP date (a date in the past
/// means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Settings of one `HttpClient`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Limit for one whole request, body included.
    pub timeout: Duration,
    /// Limit for establishing the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Requests in flight at once through this client (at least 1).
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Leave the query out of the URLs in logs and errors: a file share's download link keeps
    /// its access token there.
    pub query_is_secret: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 2,
            retry: RetryPolicy::default(),
            user_agent: concat!("bestand/", env!("CARGO_PKG_VERSION")).to_string(),
            query_is_secret: false,
        }
    }
}

/// Why a request failed. The texts name method, URL and status, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("could not set up the HTTP client: {0}")]
    Client(String),
    #[error("could not build the request: {0}")]
    Request(String),
    #[error("{method} {url} answered HTTP {status}{}: {excerpt}", after_attempts(*attempts))]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        /// The start of the response body, whitespace collapsed, secrets cut out.
        excerpt: String,
        attempts: u32,
    },
    #[error("{method} {url} failed{}: {cause}", after_attempts(*attempts))]
    Transport {
        method: Method,
        url: String,
        cause: String,
        attempts: u32,
    },
    /// A 2xx body past the caller's limit (`send_capped`); not retried, the next try would
    /// be as large.
    #[error("{method} {url}: the response is larger than {limit_bytes} bytes ({seen})")]
    TooLarge {
        method: Method,
        url: String,
        limit_bytes: u64,
        /// What showed the size: the announced `Content-Length` or how much was read.
        seen: String,
    },
}

fn after_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl HttpError {
    /// The HTTP status of the final answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Cuts known secrets out of texts that came from a server (error bodies), in case a server
/// echoes a credential back.
#[derive(Clone, Default)]
pub struct Redactor {
    state: Arc<Mutex<RedactorState>>,
}

#[derive(Default)]
struct RedactorState {
    fixed: Vec<SecretString>,
    rotating: VecDeque<SecretString>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}

impl Redactor {
    fn lock(&self) -> MutexGuard<'_, RedactorState> {
        // A panic elsewhere cannot leave the list half-updated in a harmful way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers a long-lived secret (a client secret, a password) for the client's lifetime.
    pub fn add_fixed(&self, secret: &SecretString) {
        self.lock().fixed.push(secret.clone());
    }

    /// Remembers a short-lived secret (an access token); only the latest few are kept.
    pub fn add_rotating(&self, secret: &SecretString) {
        let mut state = self.lock();
        if state.rotating.len() >= ROTATING_SECRETS {
            state.rotating.pop_front();
        }
        state.rotating.push_back(secret.clone());
    }

    /// `text` with every remembered secret replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let state = self.lock();
        let mut text = text.to_string();
        for secret in state.fixed.iter().chain(state.rotating.iter()) {
            let secret = secret.expose_secret();
            // Very short "secrets" would shred ordinary words and protect nothing.
            if secret.len() >= 4 {
                text = text.replace(secret, "[redacted]");
            }
        }
        text
    }
}

/// A response with a 2xx status and its whole body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A reqwest client with timeouts, a retry policy and a concurrency limit. Cheap to clone;
/// clones share the limit and the redactor.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    retry: RetryPolicy,
    max_concurrency: usize,
    permits: Arc<Semaphore>,
    redactor: Redactor,
    query_is_secret: bool,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("retry", &self.retry)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// What one try of a request came to.
enum Attempt {
    Done(HttpResponse),
    Retryable {
        wait_hint: Option<Duration>,
        error: HttpError,
    },
    Fatal(HttpError),
}

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Result<HttpClient, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|error| HttpError::Client(error_chain(&error)))?;
        let max_concurrency = settings.max_concurrency.max(1);
        Ok(HttpClient {
            client,
            retry: settings.retry.clone(),
            max_concurrency,
            permits: Arc::new(Semaphore::new(max_concurrency)),
            redactor: Redactor::default(),
            query_is_secret: settings.query_is_secret,
        })
    }

    /// The redactor applied to error excerpts; register credentials with it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends the request `build` makes, retrying per the policy, and returns the 2xx response
    /// with its body. `build` runs once per try, because a sent request cannot be reused.
    pub async fn send<F>(&self, build: F) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.send_capped(build, None).await
    }

    /// `send` that stops reading a 2xx body past `max_body_bytes` (checked against the
    /// announced `Content-Length` first, then chunk by chunk while reading), for an API that
    /// answers with a whole tenant in one body instead of pages.
    pub async fn send_capped<F>(
        &self,
        build: F,
        max_body_bytes: Option<u64>,
    ) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut attempt: u32 = 1;
        loop {
            let request = build(&self.client)
                .build()
                .map_err(|error| HttpError::Request(error_chain(&error)))?;
            let method = request.method().clone();
            let url = if self.query_is_secret {
                display_url_without_query(request.url())
            } else {
                display_url(request.url())
            };
            let outcome = {
                // The permit covers the request and reading its body, not the backoff sleep,
                // so a waiting request does not block others.
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| HttpError::Client("the request limiter was closed".into()))?;
                self.try_once(request, &method, &url, attempt, max_body_bytes)
                    .await
            };
            let (wait_hint, error) = match outcome {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fatal(error) => return Err(error),
                Attempt::Retryable { wait_hint, error } => (wait_hint, error),
            };
            if attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let wait = match wait_hint {
                Some(hint) => hint.min(self.retry.retry_after_max),
                None => self.retry.backoff(attempt),
            };
            tracing::warn!(
                %method,
                %url,
                attempt,
                max_attempts = self.retry.max_attempts,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                retry_after = wait_hint.is_some(),
                error = %error,
                "request failed, retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn try_once(
        &self,
        request: reqwest::Request,
        method: &Method,
        url: &str,
        attempts: u32,
        max_body_bytes: Option<u64>,
    ) -> Attempt {
        let transport = |error: reqwest::Error| {
            let retryable = !(error.is_builder() || error.is_redirect() || error.is_status());
            let error = HttpError::Transport {
                method: method.clone(),
                url: url.to_string(),
                cause: error_chain(&error),
                attempts,
            };
            if retryable {
                Attempt::Retryable {
                    wait_hint: None,
                    error,
                }
            } else {
                Attempt::Fatal(error)
            }
        };
        let response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(error) => return transport(error),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let limit = max_body_bytes.filter(|_| status.is_success());
        // Reading the body belongs to the try: a connection reset mid-body is retried too.
        let body = match read_body(response, limit).await {
            Ok(Ok(body)) => body,
            Ok(Err(seen)) => {
                return Attempt::Fatal(HttpError::TooLarge {
                    method: method.clone(),
                    url: url.to_string(),
                    limit_bytes: limit.unwrap_or_default(),
                    seen,
                })
            }
            Err(error) => return transport(error),
        };
        if status.is_success() {
            return Attempt::Done(HttpResponse {
                status,
                headers,
                body,
            });
        }
        let error = HttpError::Status {
            method: method.clone(),
            url: url.to_string(),
            status,
            excerpt: excerpt(&body, &self.redactor),
            attempts,
        };
        if !is_retryable_status(status) {
            return Attempt::Fatal(error);
        }
        let wait_hint = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()))
        } else {
            None
        };
        Attempt::Retryable { wait_hint, error }
    }
}

/// The URL as it may appear in logs and errors: without any user-info part.
pub fn display_url(url: &url::Url) -> String {
    let mut url = url.clone();
    // Both calls only fail for URLs that cannot carry credentials anyway.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// `display_url` without the query and fragment (marked `?…`), for links that carry an
/// access token there.
pub fn display_url_without_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = display_url(&shown);
    if url.query().is_some() || url.fragment().is_some() {
        text.push_str("?…");
    }
    text
}

/// The start of a response body, fit for an error message.
fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    let scanned = &body[..body.len().min(EXCERPT_SCAN_BYTES)];
    let text = redactor.redact(&String::from_utf8_lossy(scanned));
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty body)".to_string();
    }
    match collapsed.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

/// The body of `response`: whole, or with `limit` the text saying how its size showed past
/// it (the announced length, or how much arrived before reading stopped).
async fn read_body(
    response: reqwest::Response,
    limit: Option<u64>,
) -> Result<Result<Vec<u8>, String>, reqwest::Error> {
    let Some(limit) = limit else {
        // `Vec::from` takes over a uniquely owned buffer instead of copying it, which spares
        // a second copy of every multi-megabyte page.
        return Ok(Ok(Vec::from(response.bytes().await?)));
    };
    let mut response = response;
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = announced.filter(|length| *length > limit) {
        return Ok(Err(format!("Content-Length {length} bytes")));
    }
    let capacity = announced.unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        let read = body.len() + chunk.len();
        if read as u64 > limit {
            return Ok(Err(format!("stopped reading after {read} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// An error and its causes as one line, e.g. `timed out: error trying to connect: …`, so
/// that every connector (and the application's logs, `AppError::chain`) words a failure the
/// same. A reqwest error starts with what kind of failure it was; a cause whose text the line
/// already ends with is left out. URLs are not added (the caller names the request).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match error.downcast_ref::<reqwest::Error>() {
        Some(error) => reqwest_kind(error).to_string(),
        None => error.to_string(),
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        // A wrapper that shows its cause's text (`#[error(transparent)]`, `{0}`) adds nothing.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// What kind of failure a reqwest error is, in the words of `error_chain`.
fn reqwest_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else if error.is_request() {
        "sending the request failed"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base_ms: u64, cap_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            retry_after_max: Duration::from_secs(300),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_the_ceiling() {
        let policy = policy(100, 1_000);
        let ceilings: Vec<u128> = (1..=6)
            .map(|retry| policy.backoff_ceiling(retry).as_millis())
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        for retry in 1..=6 {
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= policy.backoff_ceiling(retry));
            }
        }
        // Huge retry numbers must not overflow.
        assert_eq!(
            policy.backoff_ceiling(u32::MAX),
            Duration::from_millis(1_000)
        );
    }

    #[test]
    fn retryable_statuses() {
        for code in [429, 408, 500, 502, 503, 504] {
            assert!(
                is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 409, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn excerpts_are_short_collapsed_and_redacted() {
        let redactor = Redactor::default();
        redactor.add_fixed(&SecretString::from("hunter22"));
        let body = format!(
            "{{\"error\":  \"bad\n secret hunter22\"}}{}",
            "x".repeat(500)
        );
        let text = excerpt(body.as_bytes(), &redactor);
        assert!(text.starts_with("{\"error\": \"bad secret [redacted]\"}"));
        assert!(!text.contains("hunter22"));
        assert_eq!(text.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b" \n", &redactor), "(empty body)");
    }

    #[test]
    fn rotating_secrets_are_bounded() {
        let redactor = Redactor::default();
        for n in 0..10 {
            redactor.add_rotating(&SecretString::from(format!("token-{n}")));
        }
        assert_eq!(redactor.redact("token-9"), "[redacted]");
        assert_eq!(redactor.redact("token-0"), "token-0");
    }

    #[test]
    fn error_chains_are_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Same(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("reading the export failed")]
        struct Outer(#[source] Same);
        let error = Outer(Same(std::io::Error::other("connection reset")));
        assert_eq!(
            error_chain(&error),
            "reading the export failed: connection reset"
        );
    }

    #[tokio::test]
    async fn a_reqwest_error_starts_with_its_kind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        let text = error_chain(&error);
        assert!(text.starts_with("could not connect: "), "{text}");
        assert!(
            !text.contains("could not connect: could not connect"),
            "{text}"
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        let url = url::Url::parse("https://user:pw@jamf.example/api?page=1").unwrap();
        assert_eq!(display_url(&url), "https://jamf.example/api?page=1");
    }
}
