//! The store: reads and writes of the inventory outside a sync run (the configured authorities,
//! queries for the CLI, review), and what the sync engines build on (the device row, field
//! authority, the history writer). It sits below `sync`: nothing here imports it. Every public
//! function takes the pool and a `Scope`, and those that change something an `Actor`; none
//! reads the clock.

pub mod assignments;
pub mod configuration;
pub mod cost_split;
pub mod device_row;
pub mod devices;
pub mod forecast;
pub mod funding_report;
pub(crate) mod history;
pub mod inventory;
pub mod lifecycle;
pub mod merge;
pub mod overview;
pub mod persons;
pub mod plans;
pub mod repairs;
pub mod review;
pub mod runs;
pub mod ticket_report;
pub mod ticket_write_back;
pub mod tickets;

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;

pub use self::configuration::{apply_configuration, AuthoritySpec, SchoolSpec, SourceSpec};

/// Appends the scope's test for a row of authority `authority` at school `school` (column
/// expressions) to a query that already has a `where`: outside the scope, the row is not there.
pub(crate) fn push_scope(
    query: &mut QueryBuilder<'_, Postgres>,
    scope: &Scope,
    authority: &str,
    school: &str,
) {
    if let Some(authority_id) = scope.authority_param() {
        query
            .push(format!(" and {authority} = "))
            .push_bind(authority_id);
    }
    if let Some(schools) = scope.schools_param() {
        query
            .push(format!(" and {school} = any("))
            .push_bind(schools)
            .push(")");
    }
}

/// What a person typed into an optional text field: trimmed, and none when blank.
pub(crate) fn non_blank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

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

/// Connects to PostgreSQL and applies pending migrations. The one store function without a
/// scope: it changes the schema, not rows anyone owns.
pub async fn migrate(pool: &PgPool) -> Result<(), CoreError> {
    crate::MIGRATOR.run(pool).await?;
    Ok(())
}

/// Empties the whole database and migrates it again: `bestand demo`'s fresh start. Only a
/// scope of every authority may, since it removes all of them.
pub async fn recreate_schema(pool: &PgPool, scope: &Scope) -> Result<(), CoreError> {
    if *scope != Scope::All {
        return Err(CoreError::Invalid(
            "only a scope of every authority may empty the database".to_string(),
        ));
    }
    sqlx::query("drop schema public cascade")
        .execute(pool)
        .await?;
    sqlx::query("create schema public").execute(pool).await?;
    migrate(pool).await
}

/// Looks a source up by its configured name. Sources are authority-wide: a scope of some
/// schools sees none.
pub async fn source_by_name(
    pool: &PgPool,
    scope: &Scope,
    name: &str,
) -> Result<SourceRef, CoreError> {
    find_source(pool, scope, "name = $1", name).await
}

/// Looks a source up by id; authority-wide like `source_by_name`.
pub async fn source_by_id(
    pool: &PgPool,
    scope: &Scope,
    source_id: Uuid,
) -> Result<SourceRef, CoreError> {
    find_source(pool, scope, "source_id = $1", source_id).await
}

/// SQL testing a row of authority column `authority` at school column `school` against the
/// scope's params bound as `$a::uuid` and `$s::uuid[]`. A row without a school is outside any
/// scope of schools.
pub(crate) fn in_scope(authority: &str, school: &str, a: usize, s: usize) -> String {
    format!(
        "(${a}::uuid is null or {authority} = ${a}) and (${s}::uuid[] is null or {school} = any(${s}))"
    )
}

/// SQL testing the person `p` against the scope's params bound as `$a::uuid` and
/// `$s::uuid[]`: a scope of schools sees a person with a membership at one of its schools.
pub(crate) fn person_in_scope(a: usize, s: usize) -> String {
    format!(
        "(${a}::uuid is null or p.authority_id = ${a}) and (${s}::uuid[] is null or exists \
         (select 1 from person_membership pm where pm.person_id = p.person_id \
         and pm.school_id = any(${s})))"
    )
}

/// SQL testing a row that belongs to an authority as a whole (a source, a run; its authority
/// column is `authority`) against the scope's params bound as `$a::uuid` and `$s::uuid[]`: it
/// is inside the scope of its authority and outside any scope of schools.
pub(crate) fn authority_wide(authority: &str, a: usize, s: usize) -> String {
    format!("(${a}::uuid is null or {authority} = ${a}) and ${s}::uuid[] is null")
}

async fn find_source<K>(
    pool: &PgPool,
    scope: &Scope,
    condition: &str,
    key: K,
) -> Result<SourceRef, CoreError>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + ToString,
{
    let shown = key.to_string();
    let sql = format!(
        "select source_id, authority_id, name, kind from source where {condition} and {}",
        authority_wide("authority_id", 2, 3)
    );
    sqlx::query_as::<_, (Uuid, Uuid, String, String)>(&sql)
        .bind(key)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
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
