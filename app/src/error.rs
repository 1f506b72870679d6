//! The errors of the application layer, each naming what failed; the CLI prints them with
//! their causes.

use std::path::PathBuf;

use bestand_core::CoreError;
use bestand_pgcluster::ClusterError;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The URL is shown with its password replaced.
    #[error("database URL {url} is not valid: {message}")]
    DatabaseUrl { url: String, message: String },
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error(
        "the database schema is {pending} migration(s) behind; run `bestand db migrate` first"
    )]
    SchemaBehind { pending: usize },
    #[error("source '{source_name}': {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("source '{source_name}' (kind {kind}) delivers no devices")]
    DeliversNoDevices { source_name: String, kind: String },
    #[error("no enabled source has a `schedule` in {}", config.display())]
    NothingScheduled { config: PathBuf },
}

impl AppError {
    /// The message with every cause after it, `: `-separated, as logs want it on one line.
    pub fn chain(&self) -> String {
        bestand_connectors::http::error_chain(self)
    }
}
