//! Sync-run queries: what ran when, with what result.
//!
//! A directory source that also reports devices (UCS@school) has two kinds of runs, whose
//! counts mean different things ("missing" is persons who left in a `directory` run, devices
//! gone in a `devices` run); every view here names the run kind.
//!
//! Runs and sources belong to an authority as a whole: a scope of some schools sees none.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::access::Scope;
use crate::error::CoreError;
use crate::store::authority_wide;

/// One sync run as listed by `bestand sync runs`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunView {
    pub sync_run_id: i64,
    pub source_name: String,
    /// `directory` (the source's persons) or `devices`.
    pub run_kind: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: String,
    pub dry_run: bool,
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub marked_missing: i32,
    pub moved: i32,
    pub reappeared: i32,
    pub review_items: i32,
    pub warnings: Value,
    pub error: Option<String>,
    pub blocked_reason: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
}

const RUN_SELECT: &str = "select r.sync_run_id, s.name as source_name, r.kind as run_kind, \
    r.started_at, r.finished_at, \
    r.status, r.dry_run, r.fetched, r.created, r.updated, r.unchanged, r.marked_missing, r.moved, r.reappeared, \
    r.review_items, r.warnings, r.error, r.blocked_reason, r.approved_at, r.approved_by \
    from sync_run r join source s using (source_id)";

/// The newest runs in `scope`, optionally of one source.
pub async fn list_runs(
    pool: &PgPool,
    scope: &Scope,
    source: Option<&str>,
    limit: i64,
) -> Result<Vec<RunView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "{RUN_SELECT} where ($1::text is null or s.name = $1) and {} \
         order by r.sync_run_id desc limit $2",
        authority_wide("s.authority_id", 3, 4)
    ))
    .bind(source)
    .bind(limit)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// One run in `scope` by id.
pub async fn get_run(pool: &PgPool, scope: &Scope, run_id: i64) -> Result<RunView, CoreError> {
    sqlx::query_as(&format!(
        "{RUN_SELECT} where r.sync_run_id = $1 and {}",
        authority_wide("s.authority_id", 2, 3)
    ))
    .bind(run_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CoreError::NotFound {
        what: "sync run",
        key: run_id.to_string(),
    })
}

/// Per source and run kind: the last success, the last failure, a pending block, and what the
/// source reports.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SourceStatus {
    pub source_name: String,
    /// The source's kind (`ucs_ldap`, `jamf_pro`, ...).
    pub kind: String,
    /// `directory`, `devices` or `tickets`; `None` for a source that has not run yet.
    pub run_kind: Option<String>,
    pub authority: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure_error: Option<String>,
    pub blocked_run_id: Option<i64>,
    /// Live links: persons for a `directory` line, tickets not deleted for a `tickets` line,
    /// devices otherwise.
    pub reported: i64,
    /// Links the source no longer reports: persons who left for a `directory` line, missing
    /// devices otherwise.
    pub missing: i64,
    /// The run of this kind marked `running`, if any, and when it last said it was alive.
    pub running_run_id: Option<i64>,
    pub running_last_alive_at: Option<DateTime<Utc>>,
    /// Whether that run stopped saying it is alive (`STALE_AFTER`): its process most likely died,
    /// and the source's next run will record it as aborted.
    pub running_stale: bool,
}

/// How long a running run may go without a heartbeat (written every
/// `sync::run::HEARTBEAT_INTERVAL`) before it counts as stale.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// A run marked `running`, as `running_runs` lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunningRun {
    pub source_name: String,
    pub run_id: i64,
    pub run_kind: String,
    pub started_at: DateTime<Utc>,
    pub last_alive_at: Option<DateTime<Utc>>,
    pub stale: bool,
}

/// Every run in `scope` marked `running` at `now`, with whether it is stale (no heartbeat for
/// `STALE_AFTER`), for `/metrics`.
pub async fn running_runs(
    pool: &PgPool,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Vec<RunningRun>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select s.name as source_name, r.sync_run_id as run_id, r.kind as run_kind, r.started_at, \
         r.heartbeat_at as last_alive_at, \
         coalesce(r.heartbeat_at, r.started_at) < $1 - $2 as stale \
         from sync_run r join source s using (source_id) where r.status = 'running' and {} \
         order by s.name, r.sync_run_id",
        authority_wide("s.authority_id", 3, 4)
    ))
    .bind(now)
    .bind(STALE_AFTER)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// The state of every source in `scope`: one line per kind of run it has had (a UCS@school
/// source has a `directory` and a `devices` line), one line without a run kind for a source
/// that never ran.
pub async fn source_status(
    pool: &PgPool,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Vec<SourceStatus>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select s.name as source_name, s.kind, k.run_kind, a.slug as authority, \
         (select max(r.finished_at) from sync_run r where r.source_id = s.source_id \
          and r.kind = k.run_kind and r.status = 'succeeded' and not r.dry_run) \
          as last_success_at, \
         f.finished_at as last_failure_at, f.error as last_failure_error, \
         (select max(r.sync_run_id) from sync_run r where r.source_id = s.source_id \
          and r.kind = k.run_kind and r.status = 'blocked' and not r.dry_run) as blocked_run_id, \
         case when k.run_kind = 'directory' then \
          (select count(*) from person_link l where l.source_id = s.source_id \
           and l.missing_since is null) \
         when k.run_kind = 'tickets' then \
          (select count(*) from ticket t where t.source_id = s.source_id \
           and t.deleted_at is null) \
         else (select count(*) from source_link l where l.source_id = s.source_id \
          and l.ended_at is null and l.missing_since is null) end as reported, \
         case when k.run_kind = 'directory' then \
          (select count(*) from person_link l where l.source_id = s.source_id \
           and l.missing_since is not null) \
         when k.run_kind = 'tickets' then \
          (select count(*) from ticket t where t.source_id = s.source_id \
           and t.deleted_at is not null) \
         else (select count(*) from source_link l where l.source_id = s.source_id \
          and l.ended_at is null and l.missing_since is not null) end as missing, \
         w.sync_run_id as running_run_id, w.heartbeat_at as running_last_alive_at, \
         coalesce(coalesce(w.heartbeat_at, w.started_at) < $1 - $2, false) as running_stale \
         from source s join school_authority a using (authority_id) \
         left join lateral (select distinct r.kind as run_kind from sync_run r \
          where r.source_id = s.source_id) k on true \
         left join lateral (select r.finished_at, r.error from sync_run r \
          where r.source_id = s.source_id and r.kind = k.run_kind \
          and r.status in ('failed', 'aborted') \
          order by r.sync_run_id desc limit 1) f on true \
         left join lateral (select r.sync_run_id, r.heartbeat_at, r.started_at from sync_run r \
          where r.source_id = s.source_id and r.kind = k.run_kind and r.status = 'running' \
          order by r.sync_run_id desc limit 1) w on true \
         where {} order by s.name, k.run_kind desc",
        authority_wide("s.authority_id", 3, 4)
    ))
    .bind(now)
    .bind(STALE_AFTER)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}
