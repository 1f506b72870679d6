//! The store: reads and writes of the inventory outside a sync run (directory setup, queries
//! for the CLI, review), and what the sync engines build on (the device row, field authority,
//! the history writer). It sits below `sync`: nothing here imports it. Every function takes
//! the pool or a connection; none reads the clock.

pub mod assignments;
pub mod device_row;
pub mod devices;
pub mod directory;
pub(crate) mod history;
pub mod merge;
pub mod persons;
pub mod review;
pub mod runs;

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::CoreError;

pub use self::directory::{apply_directory, AuthoritySpec, SchoolSpec, SourceSpec};

/// A configured source as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceRef {
    pub source_id: Uuid,
    pub authority_id: Uuid,
    pub name: String,
    pub kind: String,
}

impl SourceRef {
    /// The advisory-lock key that keeps two runs of this source apart, across processes and hosts.
    /// The high bits spell "bestand" so we do not collide with other users of advisory locks.
    pub fn lock_key(&self) -> i64 {
        let bytes = self.source_id.as_bytes();
        let mut low = [0u8; 4];
        low.copy_from_slice(&bytes[12..16]);
        let tag: i64 = 0x6265_7374; // "best"
        (tag << 32) | i64::from(u32::from_be_bytes(low))
    }
}

/// The one id a person typed `key` resolved to; none is "not found" (`what` says by which
/// keys), several is a conflict that lists them so the person can use an id instead.
pub(crate) fn exactly_one(
    found: &[Uuid],
    key: &str,
    what: &'static str,
    noun: &str,
) -> Result<Uuid, CoreError> {
    match found {
        [] => Err(CoreError::NotFound {
            what,
            key: key.to_string(),
        }),
        [id] => Ok(*id),
        several => Err(CoreError::Conflict(format!(
            "'{key}' matches {} {noun}s: {}; use the {noun} id",
            several.len(),
            several
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Connects to PostgreSQL and applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), CoreError> {
    crate::MIGRATOR.run(pool).await?;
    Ok(())
}

/// Looks a source up by its configured name.
pub async fn source_by_name(pool: &PgPool, name: &str) -> Result<SourceRef, CoreError> {
    find_source(pool, "name = $1", name).await
}

/// Looks a source up by id.
pub async fn source_by_id(pool: &PgPool, source_id: Uuid) -> Result<SourceRef, CoreError> {
    find_source(pool, "source_id = $1", source_id).await
}

async fn find_source<K>(pool: &PgPool, condition: &str, key: K) -> Result<SourceRef, CoreError>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + ToString,
{
    let shown = key.to_string();
    let sql = format!("select source_id, authority_id, name, kind from source where {condition}");
    sqlx::query_as::<_, (Uuid, Uuid, String, String)>(&sql)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .map(|(source_id, authority_id, name, kind)| SourceRef {
            source_id,
            authority_id,
            name,
            kind,
        })
        .ok_or(CoreError::NotFound {
            what: "source",
            key: shown,
        })
}
