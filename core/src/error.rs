//! The core's error type, returned at its boundary.

use thiserror::Error;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("source '{source_name}' is already being synced by another process; try again when that run has finished")]
    SourceBusy { source_name: String },
    #[error("sync of source '{source_name}' failed: {message}")]
    SyncFailed {
        source_name: String,
        message: String,
    },
}
