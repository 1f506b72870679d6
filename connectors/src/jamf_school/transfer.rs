//! GET with HTTP Basic auth and the protocol-version header, through the shared `HttpClient`
//! (its timeouts, retries, `Retry-After` and error texts, like every other source). What is
//! Jamf School's own is the cap on the body size: `GET /api/devices` returns a whole tenant in
//! one body, so the client reads it chunk by chunk and stops past `max_response_mb`.

use std::fmt;

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};

use super::config::{JamfSchoolConfig, JamfSchoolConfigError};
use super::FetchError;
use crate::http::{HttpClient, HttpError};

/// The HTTP side of one Jamf School source.
pub(crate) struct Transfer {
    http: HttpClient,
    network_id: String,
    api_key: SecretString,
    protocol_version: String,
    max_bytes: u64,
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("http", &self.http)
            .field("network_id", &self.network_id)
            .field("api_key", &"[redacted]")
            .field("protocol_version", &self.protocol_version)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Transfer {
    pub(crate) fn new(
        config: &JamfSchoolConfig,
        api_key: SecretString,
    ) -> Result<Transfer, JamfSchoolConfigError> {
        let http = HttpClient::new(&config.request_keys().http_settings())?;
        http.redactor().add_fixed(&api_key);
        Ok(Transfer {
            http,
            network_id: config.network_id.trim().to_string(),
            api_key,
            protocol_version: config.protocol_version.to_string(),
            max_bytes: config.max_response_bytes(),
        })
    }

    pub(crate) fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// The body of a 2xx answer to `GET url`, retrying throttling, server and network errors
    /// per the shared policy (a `Retry-After` on 429/503 is obeyed up to its maximum).
    pub(crate) async fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        let sent = self
            .http
            .send_capped(
                |client| {
                    client
                        .get(url.clone())
                        .basic_auth(&self.network_id, Some(self.api_key.expose_secret()))
                        .header(ACCEPT, "application/json")
                        .header("X-Server-Protocol-Version", &self.protocol_version)
                },
                Some(self.max_bytes),
            )
            .await;
        match sent {
            Ok(response) => Ok(response.body),
            Err(HttpError::TooLarge { seen, .. }) => Err(FetchError::TooLarge {
                limit_mb: self.max_bytes / (1024 * 1024),
                seen,
            }),
            Err(error) => Err(FetchError::Http(error)),
        }
    }
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
