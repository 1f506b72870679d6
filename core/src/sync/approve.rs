//! Approving a blocked run: a person confirms that the devices a run could not find are gone.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::store::assignments::refresh_assignments;
use crate::store::{self, SourceRef};
use crate::sync::devices::missing::{end_moved, mark_missing, split_moved};
use crate::sync::directory::mark_left;
use crate::sync::run::lock_source;

/// What an approval did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    pub run_id: i64,
    pub source_name: String,
    /// Devices marked missing, or (for a directory run) persons marked as left.
    pub marked_missing: i32,
    /// Whether the run was a directory read.
    pub directory: bool,
}

/// Marks the devices a blocked run held back as missing, and records `actor` as who approved
/// it. A run of a source outside `scope` is `NotFound`, as if it did not exist, before anything
/// of it is read or locked.
pub async fn approve_run(
    pool: &PgPool,
    clock: &dyn Clock,
    scope: &Scope,
    actor: &Actor,
    run_id: i64,
) -> Result<Approval, CoreError> {
    let not_found = || CoreError::NotFound {
        what: "sync run",
        key: run_id.to_string(),
    };
    // Filtered by the scope's authority in SQL, so a run outside it is never read.
    let row: Option<(Uuid, String, bool, DateTime<Utc>, String)> = sqlx::query_as(
        "select source_id, status, dry_run, started_at, kind from sync_run \
         where sync_run_id = $1 and ($2::uuid is null or authority_id = $2)",
    )
    .bind(run_id)
    .bind(scope.authority_param())
    .fetch_optional(pool)
    .await?;
    let Some((source_id, status, dry_run, started_at, kind)) = row else {
        return Err(not_found());
    };
    let source = store::source_by_id(pool, &Scope::All, source_id).await?;
    // A scope of some schools reaches no run: runs are authority-wide.
    if !scope.covers_authority(source.authority_id) {
        return Err(not_found());
    }
    let approved_by = actor.name();
    let approved_by = approved_by.as_str();
    if status != "blocked" || dry_run {
        return Err(CoreError::Conflict(format!(
            "run {run_id} of source '{}' is {}{}; only blocked runs can be approved",
            source.name,
            status,
            if dry_run { " (a dry run)" } else { "" }
        )));
    }
    let newer: Option<i64> = sqlx::query_scalar(
        "select sync_run_id from sync_run where source_id = $1 and sync_run_id > $2 \
         and kind = $3 and status in ('succeeded', 'blocked') and not dry_run \
         order by sync_run_id limit 1",
    )
    .bind(source_id)
    .bind(run_id)
    .bind(&kind)
    .fetch_optional(pool)
    .await?;
    if let Some(newer) = newer {
        return Err(CoreError::Conflict(format!(
            "run {run_id} of source '{}' was superseded by run {newer}; approve that one or run a new sync",
            source.name
        )));
    }

    let mut conn = lock_source(pool, &source).await?;
    let result = if kind == "directory" {
        apply_directory_approval(&mut conn, clock, &source, run_id, started_at, approved_by).await
    } else {
        apply_approval(&mut conn, clock, &source, run_id, started_at, approved_by).await
    };
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(source.lock_key())
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    result
}

async fn apply_approval(
    conn: &mut PgConnection,
    clock: &dyn Clock,
    source: &SourceRef,
    run_id: i64,
    started_at: DateTime<Utc>,
    approved_by: &str,
) -> Result<Approval, CoreError> {
    let mut tx = conn.begin().await?;
    let links: Vec<Uuid> = sqlx::query_scalar(
        "select source_link_id from sync_run_pending_missing where sync_run_id = $1",
    )
    .bind(run_id)
    .fetch_all(&mut *tx)
    .await?;
    let previous_complete: Option<DateTime<Utc>> =
        sqlx::query_scalar("select last_complete_run_at from source where source_id = $1")
            .bind(source.source_id)
            .fetch_one(&mut *tx)
            .await?;
    // Links that a later run saw again, or that ended meanwhile, are left alone.
    let links: Vec<Uuid> = sqlx::query_scalar(
        "select source_link_id from source_link where source_link_id = any($1) \
         and missing_since is null and ended_at is null",
    )
    .bind(&links)
    .fetch_all(&mut *tx)
    .await?;
    let (moved, gone) = split_moved(&mut tx, source, &links).await?;
    let before = gone.len() as i64;
    // The devices went missing (or moved) as of the blocked run, not as of the approval.
    end_moved(
        &mut tx,
        source,
        &moved,
        started_at,
        previous_complete,
        Some(run_id),
    )
    .await?;
    mark_missing(
        &mut tx,
        source,
        &gone,
        started_at,
        previous_complete,
        Some(run_id),
    )
    .await?;
    sqlx::query("update source set last_complete_run_at = greatest(last_complete_run_at, $2) where source_id = $1")
        .bind(source.source_id)
        .bind(started_at)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update sync_run set status = 'succeeded', marked_missing = $2, approved_at = $3, \
         approved_by = $4, moved = $5 where sync_run_id = $1",
    )
    .bind(run_id)
    .bind(before as i32)
    .bind(clock.now())
    .bind(approved_by)
    .bind(moved.len() as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from sync_run_pending_missing where sync_run_id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    refresh_assignments(&mut tx, source.authority_id, clock.now()).await?;
    tx.commit().await?;
    Ok(Approval {
        run_id,
        source_name: source.name.clone(),
        marked_missing: before as i32,
        directory: false,
    })
}

/// Marks the persons a blocked directory run held back as left, as of that run.
async fn apply_directory_approval(
    conn: &mut PgConnection,
    clock: &dyn Clock,
    source: &SourceRef,
    run_id: i64,
    started_at: DateTime<Utc>,
    approved_by: &str,
) -> Result<Approval, CoreError> {
    let mut tx = conn.begin().await?;
    // Links that a later run saw again are left alone.
    let links: Vec<Uuid> = sqlx::query_scalar(
        "select l.person_link_id from sync_run_pending_left p \
         join person_link l using (person_link_id) \
         where p.sync_run_id = $1 and l.missing_since is null",
    )
    .bind(run_id)
    .fetch_all(&mut *tx)
    .await?;
    let (left, _) = mark_left(&mut tx, source, &links, started_at).await?;
    sqlx::query("update source set last_complete_run_at = greatest(last_complete_run_at, $2) where source_id = $1")
        .bind(source.source_id)
        .bind(started_at)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update sync_run set status = 'succeeded', marked_missing = $2, approved_at = $3, \
         approved_by = $4 where sync_run_id = $1",
    )
    .bind(run_id)
    .bind(left)
    .bind(clock.now())
    .bind(approved_by)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from sync_run_pending_left where sync_run_id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    refresh_assignments(&mut tx, source.authority_id, clock.now()).await?;
    tx.commit().await?;
    Ok(Approval {
        run_id,
        source_name: source.name.clone(),
        marked_missing: left,
        directory: true,
    })
}
