//! Foreign keys checked once per run instead of once per row, for the rows a run creates.
//!
//! PostgreSQL checks a foreign key with one locking lookup per inserted row. A device the run
//! creates, its link and its history row make five such lookups, which were about a sixth of a
//! first sync (50,000 devices: 0.9 s of 5.5 s on the benchmark machine). Every one of them looks
//! up a row that is known to exist: the run's authority, its source, a school of the authority,
//! or a device inserted earlier in the same transaction.
//!
//! So the run takes the locks those lookups would take, once, when its transaction begins
//! (`lock_run_references`), and inserts the rows of the devices it creates with per-row triggers
//! switched off for those statements only (`RowChecks`). The payload writer does the same for
//! its rows, which reference only the source. Everything else (updates, links to devices that
//! existed before the run, assignments, other writers) keeps PostgreSQL's own checks, and the
//! constraints stay declared, so cascades and every other path are unchanged.
//!
//! Switching triggers off needs `session_replication_role`, which only a superuser, or on
//! PostgreSQL 15 and later a role granted `SET` on it, may change. Without that right the run
//! keeps the per-row checks and is only slower.

use sqlx::PgConnection;
use uuid::Uuid;

/// Locks the run's authority, source and the authority's schools against deletion until the
/// transaction ends (`for key share`, what a foreign-key check takes), and returns the
/// schools so matched records can only point at a locked one; `None` when the authority or the
/// source no longer exists.
pub(crate) async fn lock_run_references(
    tx: &mut PgConnection,
    authority_id: Uuid,
    source_id: Uuid,
) -> Result<Option<Vec<School>>, sqlx::Error> {
    let locked: i64 = sqlx::query_scalar(
        "select (select count(*) from (select 1 from school_authority \
                 where authority_id = $1 for key share) a) \
              + (select count(*) from (select 1 from source \
                 where source_id = $2 for key share) s)",
    )
    .bind(authority_id)
    .bind(source_id)
    .fetch_one(&mut *tx)
    .await?;
    if locked != 2 {
        return Ok(None);
    }
    sqlx::query_as(
        "select school_id, school_number, name, aliases from school \
         where authority_id = $1 for key share",
    )
    .bind(authority_id)
    .fetch_all(&mut *tx)
    .await
    .map(Some)
}

/// A school of the run's authority: id, number, name and aliases.
pub(crate) type School = (Uuid, String, String, Vec<String>);

/// Whether this transaction may insert rows without PostgreSQL's per-row foreign-key checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowChecks {
    /// The rows' references are checked per row by PostgreSQL.
    PerRow,
    /// The role may switch per-row triggers off for a statement.
    Skippable,
}

impl RowChecks {
    /// What the connection's role is allowed.
    pub(crate) async fn for_connection(conn: &mut PgConnection) -> Result<RowChecks, sqlx::Error> {
        // `has_parameter_privilege` and `GRANT SET ON PARAMETER` exist from PostgreSQL 15 on.
        let sql = if conn.server_version_num().is_some_and(|v| v >= 150_000) {
            "select current_setting('is_superuser') = 'on' \
             or has_parameter_privilege('session_replication_role', 'SET')"
        } else {
            "select current_setting('is_superuser') = 'on'"
        };
        let allowed: bool = sqlx::query_scalar(sql).fetch_one(&mut *conn).await?;
        Ok(if allowed {
            RowChecks::Skippable
        } else {
            RowChecks::PerRow
        })
    }

    /// Switches per-row triggers off (`off = true`) or back on for the rest of the transaction.
    /// Only ever switched off around inserts whose references `lock_run_references` holds or
    /// the same transaction created.
    pub(crate) async fn switch(self, tx: &mut PgConnection, off: bool) -> Result<(), sqlx::Error> {
        if self == RowChecks::PerRow {
            return Ok(());
        }
        let role = if off { "replica" } else { "origin" };
        sqlx::query(&format!("set local session_replication_role = {role}"))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// Locks what the devices an import creates point at (`for key share`): the authority, the
/// schools `schools` and the funding programmes `programmes` (codes) of the authority. True
/// when every one still exists, so the inserts may skip their per-row checks; false when one
/// was deleted since the rows were checked, and PostgreSQL's own checks must report it.
pub(crate) async fn lock_import_references(
    tx: &mut PgConnection,
    authority_id: Uuid,
    schools: &[Uuid],
    programmes: &[&str],
) -> Result<bool, sqlx::Error> {
    let locked: (i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from (select 1 from school_authority \
                 where authority_id = $1 for key share) a), \
                (select count(*) from (select 1 from school \
                 where authority_id = $1 and school_id = any($2) for key share) s), \
                (select count(*) from (select 1 from funding_programme \
                 where authority_id = $1 and code = any($3) for key share) p)",
    )
    .bind(authority_id)
    .bind(schools)
    .bind(programmes)
    .fetch_one(&mut *tx)
    .await?;
    let wanted = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(locked == (1, wanted(schools.len()), wanted(programmes.len())))
}
