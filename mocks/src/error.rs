//! The one error type of the mocks library, so that its callers (tests, the demo, the
//! `bestand-mock` binary) get a typed error and the library needs no anyhow.

use std::net::SocketAddr;

/// Why a mock server could not start, stop or warm its cache.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("binding the {name} mock to {addr}")]
    Bind {
        name: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the {name} mock server failed")]
    Serve {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} panicked")]
    Panicked {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
}
