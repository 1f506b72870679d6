//! The run machinery the device run, the directory run and approvals share: opening and
//! closing a run under its source's lock, its heartbeat, its report, starting it again when it
//! lost a deadlock, one page loop with its end-of-stream checks, and review items.
//!
//! The device run (`sync::devices`) and the directory run (`sync::directory`) differ only in
//! what they do with a page; everything around the pages is here, once.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::identity::IDENTIFIER_SHARED;
use crate::model::SyncStatus;
use crate::store::SourceRef;

/// How many record problems a run keeps verbatim; the rest are counted.
pub const MAX_KEPT_WARNINGS: usize = 200;

/// Told about every page as it is applied, for progress bars and log lines.
pub trait SyncProgress: Send + Sync {
    fn page_applied(
        &self,
        label: &str,
        records: usize,
        received: u64,
        announced_total: Option<u64>,
    );
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl SyncProgress for NoProgress {
    fn page_applied(&self, _: &str, _: usize, _: u64, _: Option<u64>) {}
}

/// The counts of a run, as stored in `sync_run`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub fetched: i32,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub marked_missing: i32,
    /// Links ended because another source now reports the device.
    pub moved: i32,
    pub reappeared: i32,
    pub review_items: i32,
}

impl SyncCounts {
    /// Whether the run wrote anything that device assignments depend on (a link's user hint
    /// or liveness, a person's login, email or leaving). A run that did not is spared the
    /// assignment refresh, which would find nothing to change.
    pub fn changed_links_or_persons(&self) -> bool {
        self.created + self.updated + self.marked_missing + self.moved + self.reappeared > 0
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    pub run_id: i64,
    pub source_name: String,
    /// `devices` or `directory`.
    pub kind: &'static str,
    pub status: SyncStatus,
    pub dry_run: bool,
    pub counts: SyncCounts,
    /// Devices the run would mark missing (for blocked and dry runs, what was not marked).
    pub would_mark_missing: i32,
    pub warnings: Vec<String>,
    pub n_warnings: usize,
    pub error: Option<String>,
    pub blocked_reason: Option<String>,
    /// Earlier runs of this sync that lost a deadlock against a run of another source and
    /// were rolled back (`run_sync_retrying`).
    pub retried_runs: Vec<i64>,
    /// What writing the device links back into the tickets did after a ticket run (app,
    /// `docs/tickets.md`, "Write back"); `None` when nothing was written back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackCounts>,
    /// This run lost such a deadlock: it changed nothing, and starting it again will do.
    #[serde(skip)]
    pub(crate) lost_deadlock: bool,
}

/// Counts of a ticket run's write-back: notes (or attributes) written, already present in the
/// ticket, and failed (each failure is also one of the report's warnings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteBackCounts {
    pub written: u64,
    pub already_present: u64,
    pub failed: u64,
}

impl SyncReport {
    /// The rows the run changed, when it wrote them (not a dry run, not failed) and they are
    /// at least 1,000, enough that the planner's statistics of its tables may be stale.
    pub(crate) fn rows_changed(&self) -> Option<i32> {
        let c = &self.counts;
        let changed = c.created + c.updated + c.marked_missing + c.moved + c.reappeared;
        (!self.dry_run
            && matches!(self.status, SyncStatus::Succeeded | SyncStatus::Blocked)
            && changed >= 1_000)
            .then_some(changed)
    }
}

/// What a run that failed on `error` reports, and whether it lost a deadlock (see
/// `retry_lost_deadlocks`).
pub(crate) fn database_failure(source: &SourceRef, error: &sqlx::Error) -> (String, bool) {
    if lost_deadlock(error) {
        let message = format!(
            "source '{}': a run of another source changed the same rows at the same time, and \
             PostgreSQL rolled this run back to end the deadlock; nothing was changed ({error})",
            source.name
        );
        (message, true)
    } else {
        let message = format!(
            "source '{}': database error while applying: {error}",
            source.name
        );
        (message, false)
    }
}

/// How many runs `run_sync_retrying` and `run_directory_sync_retrying` start at most for one
/// sync.
pub const RUN_ATTEMPTS: usize = 3;

/// Asks the source for a fresh stream of pages, once the run holds the source's lock. The
/// `Mutex` only lets the retry loop's futures share the caller's `FnMut`; nothing contends.
fn fetch_next<T>(fetch: &std::sync::Mutex<impl FnMut() -> T>) -> T {
    match fetch.lock() {
        Ok(mut fetch) => fetch(),
        Err(poisoned) => (poisoned.into_inner())(),
    }
}

/// The lock connection, id and start time of a run `open_run` recorded.
pub(crate) type OpenedRun = (PgConnection, i64, DateTime<Utc>);

/// How often a running run says it is alive (`sync_run.heartbeat_at`), so that a run whose
/// process died shows as stale within minutes, and is recorded as ended when it last was alive.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Drives `work` while writing the run's heartbeat every `interval` (`HEARTBEAT_INTERVAL` in
/// runs) on a connection of the pool (the run's own is inside its transaction). A heartbeat that
/// fails is only logged: it must never fail the run.
pub async fn with_heartbeat<T>(
    pool: &PgPool,
    clock: &dyn Clock,
    run_id: i64,
    interval: std::time::Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let beat = async {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let written =
                sqlx::query("update sync_run set heartbeat_at = $2 where sync_run_id = $1")
                    .bind(run_id)
                    .bind(clock.now())
                    .execute(pool)
                    .await;
            if let Err(error) = written {
                tracing::warn!(run = run_id, error = %error, "could not record the run's heartbeat");
            }
        }
    };
    tokio::select! {
        biased;
        outcome = work => outcome,
        never = beat => never,
    }
}

/// Starts `run` again while it loses a deadlock, at most `RUN_ATTEMPTS` runs in all. Runs of
/// two sources that report the same devices (or persons), scheduled at the same time, take
/// those rows' locks in different orders; PostgreSQL then rolls one of them back, which
/// changes nothing, and the run started again waits for the other's locks instead. The report
/// is the last run's, with the rolled-back runs in `retried_runs`.
async fn retry_lost_deadlocks<Run>(
    source: &SourceRef,
    mut run: impl FnMut() -> Run,
) -> Result<SyncReport, CoreError>
where
    Run: std::future::Future<Output = Result<SyncReport, CoreError>>,
{
    let mut retried_runs = Vec::new();
    loop {
        let mut report = run().await?;
        if report.lost_deadlock && retried_runs.len() + 1 < RUN_ATTEMPTS {
            tracing::warn!(
                source = %source.name,
                run = report.run_id,
                "the run lost a deadlock against a run of another source and changed nothing; \
                 starting it again"
            );
            retried_runs.push(report.run_id);
            continue;
        }
        report.retried_runs = retried_runs;
        return Ok(report);
    }
}

/// Whether PostgreSQL ended the transaction to break a deadlock or a serialization conflict
/// (SQLSTATE 40P01, 40001): nothing it did stays, and running it again can succeed.
pub(crate) fn lost_deadlock(error: &sqlx::Error) -> bool {
    matches!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("40P01" | "40001")
    )
}

/// Starts a run of `source`: takes the source's advisory lock on a dedicated connection (closed
/// by `close_run`, so the session lock can never outlive the run even if the task is
/// cancelled), marks runs left `running` by a dead process as aborted, and records the new run.
async fn open_run(
    pool: &PgPool,
    clock: &dyn Clock,
    source: &SourceRef,
    dry_run: bool,
    kind: &str,
) -> Result<OpenedRun, CoreError> {
    let mut conn = lock_source(pool, source).await?;
    // We hold the lock, so any run still marked running died with its process: it ended when
    // it last said it was alive.
    sqlx::query(
        "update sync_run set status = 'aborted', \
         finished_at = coalesce(heartbeat_at, started_at), \
         error = 'the process running this sync ended before the run finished (last alive ' \
         || to_char(coalesce(heartbeat_at, started_at) at time zone 'UTC', \
         'YYYY-MM-DD HH24:MI:SS') || ' UTC); nothing it read was applied' \
         where source_id = $1 and status = 'running'",
    )
    .bind(source.source_id)
    .execute(&mut conn)
    .await?;

    let started_at = clock.now();
    let run_id: i64 = sqlx::query_scalar(
        "insert into sync_run (authority_id, source_id, started_at, heartbeat_at, status, \
         dry_run, kind) values ($1, $2, $3, $3, 'running', $4, $5) returning sync_run_id",
    )
    .bind(source.authority_id)
    .bind(source.source_id)
    .bind(started_at)
    .bind(dry_run)
    .bind(kind)
    .fetch_one(&mut conn)
    .await?;
    Ok((conn, run_id, started_at))
}

/// Takes `source`'s advisory lock on a new connection of its own; fails with `SourceBusy` when
/// another process holds it. Closing the connection releases the lock.
pub(crate) async fn lock_source(
    pool: &PgPool,
    source: &SourceRef,
) -> Result<PgConnection, CoreError> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(source.lock_key())
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        return Err(CoreError::SourceBusy {
            source_name: source.name.clone(),
        });
    }
    Ok(conn)
}

/// Records how a run ended, releases the source's lock and closes the run's connection.
pub(crate) async fn close_run(
    mut conn: PgConnection,
    clock: &dyn Clock,
    source: &SourceRef,
    report: &SyncReport,
) -> Result<(), CoreError> {
    record_end(&mut conn, clock.now(), report).await?;
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(source.lock_key())
        .execute(&mut conn)
        .await?;
    if let Some(changed) = report.rows_changed() {
        refresh_statistics(&mut conn, report, changed).await;
    }
    conn.close().await?;
    Ok(())
}

/// Has the planner's statistics of the tables a run rewrote largely (a first import, say)
/// brought up to date at once. Until autovacuum gets to them (a minute or more later), the
/// planner takes a table it has never analyzed for a few dozen rows, and a query joining
/// devices, memberships and persons chose a plan that took seconds instead of milliseconds.
///
/// Only the columns queries join and filter on are analyzed: the table sizes and those
/// columns are what the plans need, it takes a third of the time of the whole tables (0.12 s
/// instead of 0.45 s for 50,000 devices), and PostgreSQL leaves autovacuum's full analyze due
/// after an analyze of some columns. Only the statistics are at stake, so a failure is logged,
/// not returned.
///
/// Stale means the run changed a tenth of the rows the planner last counted in the run's main
/// table (autovacuum's own analyze threshold, taken at once instead of a minute later), or the
/// table was never analyzed. Measured against the table, not against what the run fetched: an
/// incremental ticket read fetches only what changed, and its 1,000 changed tickets of 500,000
/// analyzed the table after every read (0.2 to 2 s each).
async fn refresh_statistics(conn: &mut PgConnection, report: &SyncReport, changed: i32) {
    let main = match report.kind {
        "tickets" => "ticket",
        "directory" => "person",
        _ => "device",
    };
    let counted: Result<f32, _> = sqlx::query_scalar(&format!(
        "select reltuples from pg_class where oid = '{main}'::regclass"
    ))
    .fetch_one(&mut *conn)
    .await;
    // -1 (never analyzed) and 0 compare as nothing: a first import is always analyzed.
    if counted.is_ok_and(|rows| f64::from(changed) * 10.0 < f64::from(rows)) {
        return;
    }
    let tables = match report.kind {
        // `external_id` and the merge columns for the engine's own lookups: without their
        // statistics the planner took `external_id = any($2)` with 100 ids for half the table
        // and read all of it for each page of an incremental read. `deleted_at`, `closed_at`
        // and `state` for the ticket report's filter: without them it expected a few hundred of
        // 500,000 tickets and joined their links by 500,000 index probes (0.72 s, not 0.45 s).
        "tickets" => {
            "ticket (authority_id, source_id, external_id, school_id, created_at, closed_at, \
             deleted_at, state, changed_in_run, merged_into_external_id), \
             ticket_device (ticket_id, device_id)"
        }
        "directory" => {
            "person (authority_id, left_at), \
             person_link (person_id, source_id, missing_since), \
             person_membership (person_id, school_id, role, class_name), \
             device_assignment (device_id, person_id, status)"
        }
        _ => {
            "device (authority_id, school_id, category, lifecycle_state), \
             source_link (authority_id, device_id, source_id, missing_since, ended_at), \
             device_assignment (device_id, person_id, status)"
        }
    };
    if let Err(error) = sqlx::query(&format!("analyze {tables}"))
        .execute(&mut *conn)
        .await
    {
        tracing::warn!(source = %report.source_name, %error, "refreshing planner statistics failed");
    }
}

/// Why a run failed: its source (nothing was changed) or the database.
pub(crate) enum RunError {
    Source(String),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for RunError {
    fn from(error: sqlx::Error) -> Self {
        RunError::Database(error)
    }
}

/// A review item a run raises about one record of its source.
pub(crate) struct ReviewUpsert<'a> {
    pub source: &'a SourceRef,
    pub run_id: i64,
    pub now: DateTime<Utc>,
    pub kind: &'a str,
    pub external_id: &'a str,
    pub summary: &'a str,
    pub record_json: String,
    pub candidates: &'a [Uuid],
}

/// Opens a review item, or refreshes the open one for the same record and kind. A record whose
/// item of this kind a person dismissed is not raised again.
pub(crate) async fn upsert_review_item(
    tx: &mut PgConnection,
    review: ReviewUpsert<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into review_item (authority_id, source_id, sync_run_id, kind, external_id, \
         summary, record, candidates, created_at, last_seen_at) \
         select $1, $2, $3, $9, $4, $5, $6::jsonb, $7, $8, $8 \
         where not exists (select 1 from review_item d where d.source_id = $2 \
         and d.external_id = $4 and d.kind = $9 and d.status = 'dismissed') \
         on conflict (source_id, external_id, kind) where status = 'open' \
         do update set sync_run_id = excluded.sync_run_id, summary = excluded.summary, \
         record = excluded.record, candidates = excluded.candidates, \
         last_seen_at = excluded.last_seen_at",
    )
    .bind(review.source.authority_id)
    .bind(review.source.source_id)
    .bind(review.run_id)
    .bind(review.external_id)
    .bind(review.summary)
    .bind(review.record_json)
    .bind(review.candidates)
    .bind(review.now)
    .bind(review.kind)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Opens the `identifier_shared` item of an identifier, or adds `devices` to the open one: one
/// item per identifier and authority, whichever source found it, so it carries no source. An
/// identifier whose item a person dismissed is not raised again.
pub(crate) async fn upsert_shared_identifier(
    tx: &mut PgConnection,
    source: &SourceRef,
    run_id: i64,
    now: DateTime<Utc>,
    key: &str,
    summary: &str,
    devices: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into review_item (authority_id, source_id, sync_run_id, kind, external_id, \
         summary, candidates, created_at, last_seen_at) \
         select $1, null, $2, $3, $4, $5, $6, $7, $7 \
         where not exists (select 1 from review_item d where d.authority_id = $1 \
         and d.source_id is null and d.kind = $3 and d.external_id = $4 and d.status = 'dismissed') \
         on conflict (authority_id, kind, external_id) where status = 'open' and source_id is null \
         do update set sync_run_id = excluded.sync_run_id, summary = excluded.summary, \
         candidates = array(select distinct c from unnest(review_item.candidates || \
         excluded.candidates) c order by c), last_seen_at = excluded.last_seen_at",
    )
    .bind(source.authority_id)
    .bind(run_id)
    .bind(IDENTIFIER_SHARED)
    .bind(key)
    .bind(summary)
    .bind(devices)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes a finished run's outcome into its `sync_run` row.
async fn record_end(
    conn: &mut PgConnection,
    finished_at: DateTime<Utc>,
    report: &SyncReport,
) -> Result<(), sqlx::Error> {
    // A failed run changed nothing, so its counts would only mislead: keep what was fetched.
    let counts = if report.status == SyncStatus::Failed {
        SyncCounts {
            fetched: report.counts.fetched,
            ..SyncCounts::default()
        }
    } else {
        report.counts.clone()
    };
    let mut warnings = report.warnings.clone();
    if report.n_warnings > warnings.len() {
        warnings.push(format!(
            "... and {} more",
            report.n_warnings - warnings.len()
        ));
    }
    sqlx::query(
        "update sync_run set finished_at = $2, status = $3, fetched = $4, created = $5, \
         updated = $6, unchanged = $7, marked_missing = $8, reappeared = $9, review_items = $10, \
         warnings = $11, error = $12, blocked_reason = $13, moved = $14 where sync_run_id = $1",
    )
    .bind(report.run_id)
    .bind(finished_at)
    .bind(report.status.as_str())
    .bind(counts.fetched)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.unchanged)
    .bind(counts.marked_missing)
    .bind(counts.reappeared)
    .bind(counts.review_items)
    .bind(Value::from(warnings))
    .bind(&report.error)
    .bind(&report.blocked_reason)
    .bind(counts.moved)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A run's warnings: the first `MAX_KEPT_WARNINGS` verbatim, the rest counted, so a source
/// with a problem in every record cannot fill the run's row.
#[derive(Debug, Clone, Default)]
pub(crate) struct Warnings {
    pub kept: Vec<String>,
    /// All warnings, kept or not.
    pub count: usize,
}

impl Warnings {
    pub fn push(&mut self, warning: String) {
        self.count += 1;
        if self.kept.len() < MAX_KEPT_WARNINGS {
            self.kept.push(warning);
        }
    }
}

/// How a caller starts a run of one source: what the entry points `run_sync`,
/// `run_directory_sync` and their retrying forms share.
pub(crate) struct Start<'a> {
    pool: &'a PgPool,
    clock: &'a dyn Clock,
    scope: &'a Scope,
    actor: &'a Actor,
    source: &'a SourceRef,
    dry_run: bool,
    /// `devices`, `directory` or `tickets`.
    kind: &'static str,
}

impl<'a> Start<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: &'a PgPool,
        clock: &'a dyn Clock,
        scope: &'a Scope,
        actor: &'a Actor,
        source: &'a SourceRef,
        dry_run: bool,
        kind: &'static str,
    ) -> Start<'a> {
        Start {
            pool,
            clock,
            scope,
            actor,
            source,
            dry_run,
            kind,
        }
    }

    /// Refuses a source outside the scope as if it did not exist: runs and sources are
    /// authority-wide, so only a scope covering the whole authority reaches them. Checked
    /// before anything is read or locked, so a refused caller cannot even learn that another
    /// process syncs the source.
    fn check_scope(&self) -> Result<(), CoreError> {
        if !self.scope.covers_authority(self.source.authority_id) {
            return Err(CoreError::NotFound {
                what: "source",
                key: self.source.name.clone(),
            });
        }
        // `sync_run` records no one: the actor is only told to the log.
        tracing::debug!(source = %self.source.name, kind = self.kind, actor = %self.actor, "run starting");
        Ok(())
    }

    /// Opens one run (`open_run`), within the scope.
    pub async fn open(&self) -> Result<OpenedRun, CoreError> {
        self.check_scope()?;
        open_run(self.pool, self.clock, self.source, self.dry_run, self.kind).await
    }

    /// Opens a run and `apply`s the items `fetch` gives once the run holds the source's lock,
    /// again while a run loses a deadlock (`retry_lost_deadlocks`). A run skipped because
    /// another process syncs the source costs the source nothing.
    pub async fn retrying<Items, Applied>(
        &self,
        fetch: impl FnMut() -> Items,
        apply: impl Fn(OpenedRun, Items) -> Applied,
    ) -> Result<SyncReport, CoreError>
    where
        Applied: Future<Output = Result<SyncReport, CoreError>>,
    {
        let fetch = &std::sync::Mutex::new(fetch);
        let apply = &apply;
        self.retrying_opened(|opened| async move { apply(opened, fetch_next(fetch)).await })
            .await
    }

    /// Opens a run and `apply`s it, again while a run loses a deadlock; for runs that ask their
    /// source for something only once they hold its lock (a ticket run reads its watermark
    /// first).
    pub async fn retrying_opened<Applied>(
        &self,
        apply: impl Fn(OpenedRun) -> Applied,
    ) -> Result<SyncReport, CoreError>
    where
        Applied: Future<Output = Result<SyncReport, CoreError>>,
    {
        self.check_scope()?;
        let apply = &apply;
        retry_lost_deadlocks(self.source, || async move {
            let opened =
                open_run(self.pool, self.clock, self.source, self.dry_run, self.kind).await?;
            apply(opened).await
        })
        .await
    }
}

/// How a run that got to its end ended: committed (or, for a dry run, rolled back as asked).
pub(crate) struct Finish {
    pub status: SyncStatus,
    pub blocked_reason: Option<String>,
    /// What the run marked, or would have marked, missing (devices) or left (persons).
    pub would_mark_missing: i32,
}

/// How a run ended, failed or not, as its report states it.
pub(crate) struct RunEnd {
    pub status: SyncStatus,
    pub error: Option<String>,
    pub blocked_reason: Option<String>,
    pub would_mark_missing: i32,
    pub lost_deadlock: bool,
}

impl RunEnd {
    /// A run of `source` that failed because of its source changed nothing; one that failed in
    /// the database may have lost a deadlock, and may then be started again.
    pub fn of(source: &SourceRef, outcome: Result<Finish, RunError>) -> RunEnd {
        let failed = |error: String, lost_deadlock: bool| RunEnd {
            status: SyncStatus::Failed,
            error: Some(error),
            blocked_reason: None,
            would_mark_missing: 0,
            lost_deadlock,
        };
        match outcome {
            Ok(finish) => RunEnd {
                status: finish.status,
                error: None,
                blocked_reason: finish.blocked_reason,
                would_mark_missing: finish.would_mark_missing,
                lost_deadlock: false,
            },
            Err(RunError::Source(message)) => {
                failed(format!("source '{}': {message}", source.name), false)
            }
            Err(RunError::Database(error)) => {
                let (message, lost) = database_failure(source, &error);
                failed(message, lost)
            }
        }
    }
}

impl SyncReport {
    /// The report of run `run_id` of `source`, of `kind` `devices` or `directory`.
    pub(crate) fn new(
        run_id: i64,
        source: &SourceRef,
        kind: &'static str,
        dry_run: bool,
        counts: SyncCounts,
        warnings: Warnings,
        end: RunEnd,
    ) -> SyncReport {
        SyncReport {
            run_id,
            source_name: source.name.clone(),
            kind,
            status: end.status,
            dry_run,
            counts,
            would_mark_missing: end.would_mark_missing,
            warnings: warnings.kept,
            n_warnings: warnings.count,
            error: end.error,
            blocked_reason: end.blocked_reason,
            retried_runs: Vec::new(),
            write_back: None,
            lost_deadlock: end.lost_deadlock,
        }
    }
}

/// The words a run's messages name its stream by.
pub(crate) struct StreamWords {
    /// What failed when the stream says so: `fetch`, `directory read`.
    pub read: &'static str,
    /// What it delivers: `records`, `persons`.
    pub records: &'static str,
    /// Who announced the total: `source`, `directory`.
    pub announcer: &'static str,
}

/// One item of a run's stream, as the page loop sees it.
pub(crate) enum Received<P> {
    Page {
        label: String,
        records: usize,
        announced_total: Option<u64>,
        page: P,
    },
    /// Something the run took note of (the schools a directory lists, accounts left out).
    Noted,
    Complete {
        reported_total: u64,
    },
    Failed(String),
}

/// What the page loop needs of a run.
pub(crate) trait PageSink {
    type Item;
    type Page;
    const WORDS: StreamWords;

    /// Sorts an item of the stream, taking note of those that are no page.
    fn sort(&mut self, item: Self::Item) -> Received<Self::Page>;

    /// Applies one page inside the run's transaction.
    fn apply_page(
        &mut self,
        tx: &mut PgConnection,
        page: Self::Page,
    ) -> impl Future<Output = Result<(), RunError>> + Send;

    /// What progress reports as received so far.
    fn received(&self) -> u64;

    /// How many distinct records (by external id) the run has received.
    fn distinct(&self) -> u64;
}

/// Applies every page of `items` until the stream ends, then checks that it ended well: with
/// `Complete`, and with at least as many distinct records as it announced. Anything else fails
/// the run, which then changes nothing.
pub(crate) async fn apply_pages<S: PageSink>(
    run: &mut S,
    tx: &mut PgConnection,
    items: &mut mpsc::Receiver<S::Item>,
    progress: &dyn SyncProgress,
) -> Result<(), RunError> {
    let words = S::WORDS;
    let reported_total = loop {
        let Some(item) = items.recv().await else {
            return Err(RunError::Source(
                "the connector stopped without finishing; nothing was changed".to_string(),
            ));
        };
        match run.sort(item) {
            Received::Page {
                label,
                records,
                announced_total,
                page,
            } => {
                run.apply_page(tx, page)
                    .await
                    .map_err(|error| match error {
                        // Kept as such: the caller tells a lost deadlock from other errors.
                        RunError::Database(error) if !lost_deadlock(&error) => RunError::Source(
                            format!("{label}: database error while applying the page: {error}"),
                        ),
                        other => other,
                    })?;
                progress.page_applied(&label, records, run.received(), announced_total);
            }
            Received::Noted => {}
            Received::Complete { reported_total } => break reported_total,
            Received::Failed(failure) => {
                return Err(RunError::Source(format!(
                    "{} failed, nothing was changed: {failure}",
                    words.read
                )))
            }
        }
    };
    let distinct = run.distinct();
    if distinct < reported_total {
        return Err(RunError::Source(format!(
            "received {distinct} distinct {} but the {} reported {reported_total}; nothing was \
             changed",
            words.records, words.announcer
        )));
    }
    Ok(())
}
