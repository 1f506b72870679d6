//! GET with HTTP Basic auth, the protocol-version header, the shared retry policy and a cap on
//! the body size. The shared `HttpClient` buffers every body whole before anyone can look at
//! it; `GET /api/devices` returns a whole tenant in one body, so this reads it chunk by chunk
//! and stops past `max_response_mb`. Retry decisions, backoff, `Retry-After` and error texts
//! are the shared ones from `crate::http`, so Jamf School behaves like every other source.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::config::{JamfSchoolConfig, JamfSchoolConfigError};
use super::FetchError;
use crate::http::{
    display_url, is_retryable_status, parse_retry_after, HttpError, Redactor, RetryPolicy,
};

/// How much of an error body is kept for the excerpt.
const ERROR_BODY_BYTES: usize = 16 * 1024;
/// How long error excerpts may be, in characters (as in `crate::http`).
const EXCERPT_CHARS: usize = 200;

/// What one try came to.
enum Attempt {
    Done(Vec<u8>),
    Retry {
        wait_hint: Option<Duration>,
        error: FetchError,
    },
    Fatal(FetchError),
}

/// The HTTP side of one Jamf School source.
pub(crate) struct Transfer {
    client: reqwest::Client,
    network_id: String,
    api_key: SecretString,
    protocol_version: String,
    retry: RetryPolicy,
    max_bytes: u64,
    redactor: Redactor,
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("network_id", &self.network_id)
            .field("api_key", &"[redacted]")
            .field("protocol_version", &self.protocol_version)
            .field("retry", &self.retry)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Transfer {
    pub(crate) fn new(
        config: &JamfSchoolConfig,
        api_key: SecretString,
    ) -> Result<Transfer, JamfSchoolConfigError> {
        let settings = config.request_keys().http_settings();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(settings.user_agent)
            .build()
            .map_err(|error| JamfSchoolConfigError::Client(error.to_string()))?;
        let redactor = Redactor::default();
        redactor.add_fixed(&api_key);
        Ok(Transfer {
            client,
            network_id: config.network_id.trim().to_string(),
            api_key,
            protocol_version: config.protocol_version.to_string(),
            retry: settings.retry,
            max_bytes: config.max_response_bytes(),
            redactor,
        })
    }

    pub(crate) fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// The body of a 2xx answer to `GET url`, retrying throttling, server and network errors
    /// per the policy (a `Retry-After` on 429/503 is obeyed up to its maximum).
    pub(crate) async fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        let mut attempt: u32 = 1;
        loop {
            let (wait_hint, error) = match self.try_once(url, attempt).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fatal(error) => return Err(error),
                Attempt::Retry { wait_hint, error } => (wait_hint, error),
            };
            if attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let wait = match wait_hint {
                Some(hint) => hint.min(self.retry.retry_after_max),
                None => self.retry.backoff(attempt),
            };
            tracing::warn!(
                url = %display_url(url),
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "Jamf School request failed, retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn try_once(&self, url: &url::Url, attempts: u32) -> Attempt {
        let shown = display_url(url);
        let transport = |error: reqwest::Error| {
            let retryable = !(error.is_builder() || error.is_redirect());
            let error = FetchError::Http(HttpError::Transport {
                method: Method::GET,
                url: shown.clone(),
                cause: cause_chain(&error),
                attempts,
            });
            if retryable {
                Attempt::Retry {
                    wait_hint: None,
                    error,
                }
            } else {
                Attempt::Fatal(error)
            }
        };
        let sent = self
            .client
            .get(url.clone())
            .basic_auth(&self.network_id, Some(self.api_key.expose_secret()))
            .header(ACCEPT, "application/json")
            .header("X-Server-Protocol-Version", &self.protocol_version)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return transport(error),
        };
        let status = response.status();
        if status.is_success() {
            let announced = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            if let Some(length) = announced.filter(|length| *length > self.max_bytes) {
                return Attempt::Fatal(self.too_large(format!("Content-Length {length} bytes")));
            }
            let capacity = announced.unwrap_or(0).min(self.max_bytes);
            let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if (body.len() + chunk.len()) as u64 > self.max_bytes {
                            return Attempt::Fatal(self.too_large(format!(
                                "stopped reading after {} bytes",
                                body.len() + chunk.len()
                            )));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => return Attempt::Done(body),
                    Err(error) => return transport(error),
                }
            }
        }
        let wait_hint = (status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| response.headers().get(RETRY_AFTER).cloned())
            .flatten()
            .and_then(|value| value.to_str().ok().map(str::to_string))
            .and_then(|value| parse_retry_after(&value, SystemTime::now()));
        let mut head = Vec::new();
        // Only the start of an error body is kept; a failed read leaves what arrived.
        while head.len() < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let error = FetchError::Http(HttpError::Status {
            method: Method::GET,
            url: shown,
            status,
            excerpt: excerpt(&head, &self.redactor),
            attempts,
        });
        if is_retryable_status(status) {
            Attempt::Retry { wait_hint, error }
        } else {
            Attempt::Fatal(error)
        }
    }

    fn too_large(&self, seen: String) -> FetchError {
        FetchError::TooLarge {
            limit_mb: self.max_bytes / (1024 * 1024),
            seen,
        }
    }
}

/// The start of an error body, whitespace collapsed and secrets cut out.
fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    let text = redactor.redact(&String::from_utf8_lossy(body));
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None if collapsed.is_empty() => "(empty body)".to_string(),
        None => collapsed,
    }
}

/// A reqwest error and its causes as one line, without the URL (the caller names it).
fn cause_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts = vec![if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    }];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers one request with a chunked body (no `Content-Length`) of
    /// `chunks` chunks of 64 KiB, so only the reading loop can notice the size.
    async fn chunked_server(chunks: usize) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..chunks {
                let frame = format!("{:x}\r\n", chunk.len());
                if socket.write_all(frame.as_bytes()).await.is_err()
                    || socket.write_all(&chunk).await.is_err()
                    || socket.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        url::Url::parse(&format!("http://{addr}/api/devices")).unwrap()
    }

    fn transfer() -> Transfer {
        let config: JamfSchoolConfig = serde_json::from_value(serde_json::json!({
            "base_url": "http://127.0.0.1", "network_id": "1", "max_response_mb": 1,
            "retry_max_attempts": 1,
        }))
        .unwrap();
        Transfer::new(&config, SecretString::from("key-1234")).unwrap()
    }

    #[tokio::test]
    async fn a_chunked_body_past_the_limit_is_cut_off_while_reading() {
        let error = transfer().get(&chunked_server(32).await).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("`max_response_mb` = 1 MiB"), "{text}");
        assert!(text.contains("stopped reading after"), "{text}");
    }

    #[tokio::test]
    async fn a_chunked_body_within_the_limit_is_read_whole() {
        let body = transfer().get(&chunked_server(8).await).await.unwrap();
        assert_eq!(body.len(), 8 * 64 * 1024);
    }
}
