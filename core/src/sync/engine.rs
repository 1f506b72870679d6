//! Applies one run of one source to the inventory.
//!
//! A run holds a PostgreSQL advisory lock for its source on its own connection, applies every
//! page inside one transaction, and only commits when the source delivered everything it
//! announced. A failed fetch therefore changes nothing but the run's own record.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::identity::{self, MatchingRules, IDENTIFIER_SHARED};
use crate::model::SyncStatus;
use crate::record::DeviceRecord;
use crate::store::assignments::refresh_assignments;
use crate::store::device_row::{
    device_label, devices_by_keys, insert_devices, load_devices_for_update, update_devices,
    AssetTagBefore, DeviceRow, KeyLookup,
};
use crate::store::review::{IDENTIFIER_CONFLICT, SERIAL_CHANGED, SERIAL_CONFLICT};
use crate::store::SourceRef;
use crate::sync::guard::DeletionGuard;
use crate::sync::merge::{self, Changes, HardwareId, NormalizedIds};
use crate::sync::payloads::{PayloadRow, PayloadWriter};
use crate::sync::prepare::{spawn_normalizer, NormalizedPage, NormalizedRecord, PreparedItem};
use crate::sync::protocol::SourceItem;
use crate::sync::references::{lock_run_references, RowChecks};
use crate::sync::schools::{how_to_map, SchoolResolver};

/// Inserts links from column arrays; an `on conflict` clause may follow.
const INSERT_LINKS: &str = "insert into source_link (source_link_id, authority_id, source_id, \
    device_id, external_id, normalized, content_hash, hint_username, hint_email, \
    first_seen_at, last_seen_at) \
    select u.source_link_id, $2, $3, u.device_id, u.external_id, \
    u.normalized::json, u.content_hash, u.hint_username, u.hint_email, $4, $4 \
    from unnest($1::uuid[], $5::uuid[], $6::text[], $7::text[], $8::bytea[], $9::text[], \
    $10::text[]) \
    as u(source_link_id, device_id, external_id, normalized, content_hash, hint_username, \
    hint_email)";

/// The cause of the device events a run writes.
const SYNC_CAUSE: &str = "sync";

/// How many record problems a run keeps verbatim; the rest are counted.
const MAX_KEPT_WARNINGS: usize = 200;

/// What the caller wants from a run.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Fetch and compute everything, then roll back.
    pub dry_run: bool,
    pub guard: DeletionGuard,
    /// Which source wins a field several sources report.
    pub field_priority: merge::FieldPriority,
    /// The source's `school_map`: its school keys mapped to configured school numbers, as for
    /// its directory run (`sync::schools`).
    pub school_map: HashMap<String, String>,
}

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
    /// This run lost such a deadlock: it changed nothing, and starting it again will do.
    #[serde(skip)]
    pub(crate) lost_deadlock: bool,
}

impl SyncReport {
    /// Whether the run changed enough rows (at least 1,000, and a tenth of what it fetched)
    /// that the planner's statistics of its tables are stale.
    pub(crate) fn changed_much(&self) -> bool {
        let c = &self.counts;
        let changed = c.created + c.updated + c.marked_missing + c.moved + c.reappeared;
        !self.dry_run
            && matches!(self.status, SyncStatus::Succeeded | SyncStatus::Blocked)
            && changed >= 1_000
            && changed * 10 >= c.fetched
    }
}

/// Runs one sync of `source` from the pages arriving on `pages`.
///
/// Returns `Err` only when the run could not even be recorded (no database, source busy);
/// a run that fails because of its source or a database error mid-run is recorded as failed
/// and returned as a report with status `Failed`.
pub async fn run_sync(
    pool: &PgPool,
    clock: &dyn Clock,
    source: &SourceRef,
    pages: mpsc::Receiver<SourceItem>,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let opened = open_run(pool, clock, source, options.dry_run, "devices").await?;
    apply_run(pool, clock, source, opened, pages, options, progress).await
}

/// Applies `pages` as the run `open_run` opened.
async fn apply_run(
    pool: &PgPool,
    clock: &dyn Clock,
    source: &SourceRef,
    (mut conn, run_id, started_at): OpenedRun,
    pages: mpsc::Receiver<SourceItem>,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let mut run = Run::new(source, run_id, started_at);
    run.priority = options.field_priority.clone();
    // Asked once for both connections, which log in as the same role. Not knowing only costs
    // speed, so a failure here keeps PostgreSQL's per-row checks.
    run.row_checks = RowChecks::for_connection(&mut conn)
        .await
        .unwrap_or(RowChecks::PerRow);
    // A dry run writes nothing, payloads included.
    let writer = match options.dry_run {
        true => Ok(None),
        false => PayloadWriter::start(pool, source, run.row_checks)
            .await
            .map(Some),
    };
    let mut pages = spawn_normalizer(pages);
    let outcome = match writer {
        Ok(writer) => {
            run.payloads = writer;
            with_heartbeat(
                pool,
                clock,
                run_id,
                HEARTBEAT_INTERVAL,
                run.execute(&mut conn, &mut pages, options, progress),
            )
            .await
        }
        Err(error) => Err(payload_error(error)),
    };
    // Rolls back the payloads of a run that did not commit.
    run.payloads = None;
    // Stop the connector: it sees the closed channel on its next send.
    drop(pages);

    let report = match outcome {
        Ok(Finish::Committed {
            status,
            blocked_reason,
            would_mark_missing,
        }) => run.report(
            status,
            None,
            blocked_reason,
            would_mark_missing,
            options.dry_run,
        ),
        Err(RunError::Source(message)) => {
            let message = format!("source '{}': {message}", source.name);
            run.report(SyncStatus::Failed, Some(message), None, 0, options.dry_run)
        }
        Err(RunError::Database(error)) => {
            let (message, lost) = database_failure(source, &error);
            let mut report =
                run.report(SyncStatus::Failed, Some(message), None, 0, options.dry_run);
            report.lost_deadlock = lost;
            report
        }
    };
    close_run(conn, clock, source, &report).await?;
    Ok(report)
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

/// `run_sync`, started again on fresh pages from `fetch` while a run loses a deadlock against
/// a run of another source (`retry_lost_deadlocks`).
pub async fn run_sync_retrying(
    pool: &PgPool,
    clock: &dyn Clock,
    source: &SourceRef,
    fetch: impl FnMut() -> mpsc::Receiver<SourceItem>,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    // The source is asked for pages only once the run holds its lock: a run skipped because
    // another process syncs the source costs the source nothing.
    let fetch = &std::sync::Mutex::new(fetch);
    retry_lost_deadlocks(source, || async move {
        let opened = open_run(pool, clock, source, options.dry_run, "devices").await?;
        let pages = fetch_next(fetch);
        apply_run(pool, clock, source, opened, pages, options, progress).await
    })
    .await
}

/// Asks the source for a fresh stream of pages, once the run holds the source's lock. The
/// `Mutex` only lets the retry loop's futures share the caller's `FnMut`; nothing contends.
pub(crate) fn fetch_next<T>(fetch: &std::sync::Mutex<impl FnMut() -> T>) -> T {
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
pub(crate) async fn retry_lost_deadlocks<Run>(
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
pub(crate) async fn open_run(
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
    if report.changed_much() {
        refresh_statistics(&mut conn, report).await;
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
async fn refresh_statistics(conn: &mut PgConnection, report: &SyncReport) {
    let tables = match report.kind {
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

enum Finish {
    Committed {
        status: SyncStatus,
        blocked_reason: Option<String>,
        would_mark_missing: i32,
    },
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

/// The state of one run while its pages are applied.
struct Run<'a> {
    source: &'a SourceRef,
    origin: String,
    run_id: i64,
    now: DateTime<Utc>,
    counts: SyncCounts,
    warnings: Vec<String>,
    n_warnings: usize,
    /// The source's school keys to schools, as its directory run resolves them too.
    schools: SchoolResolver,
    received: u64,
    /// External ids received in this run: a few bytes per record, never the records themselves.
    seen: HashSet<String>,
    priority: merge::FieldPriority,
    /// The second connection storing raw payloads; `None` in a dry run.
    payloads: Option<PayloadWriter>,
    /// How the references of the devices this run creates are checked (`sync::references`).
    row_checks: RowChecks,
    /// Which identifiers may match (the authority's `shared_macs` and the fixed MAC rules).
    rules: MatchingRules,
    /// The shared identifiers this run reported, so that each counts once.
    shared_reported: HashSet<(HardwareId, String)>,
}

/// A record with its identifiers normalized (in `record` too), its JSON, its hash and school.
struct Prepared {
    record: DeviceRecord,
    ids: NormalizedIds,
    school_id: Option<Uuid>,
    /// The normalized record as stored with the link.
    json: String,
    hash: Vec<u8>,
}

struct ExistingLink {
    source_link_id: Uuid,
    device_id: Uuid,
    content_hash: Vec<u8>,
    missing: bool,
    ended: bool,
}

/// What to do with a record that has no live link yet.
enum Decision {
    Create {
        device_id: Uuid,
    },
    Attach {
        device_id: Uuid,
        replaces: Option<(Uuid, String)>,
    },
    Review {
        summary: String,
        candidates: Vec<Uuid>,
    },
}

/// Indexes of candidate devices by identifier, for one page. It holds identifiers in their
/// matching form (`MatchingRules::matching_ids`): a MAC that identifies no one is not in it.
#[derive(Default)]
struct CandidateIndex {
    by_serial: HashMap<String, Vec<Uuid>>,
    by_other: HashMap<(HardwareId, String), Vec<Uuid>>,
    /// Devices by asset tag, with their serial number.
    by_asset_tag: HashMap<String, Vec<(Uuid, Option<String>)>>,
    /// Each indexed device's serial number, which decides whether another identifier it
    /// carries is its own or shared with devices of other serials.
    serial_of: HashMap<Uuid, Option<String>>,
}

/// What matching found for a record.
struct Matched {
    found: Vec<Uuid>,
    matched_by: &'static str,
    /// Identifiers of the record that devices with different serial numbers carry (the record
    /// included, if it has a serial): they matched nothing, and are reported once each.
    shared: Vec<(HardwareId, String, Vec<Uuid>)>,
}

impl CandidateIndex {
    fn add(&mut self, device_id: Uuid, ids: &NormalizedIds, asset_tag: Option<&str>) {
        if let Some(serial) = &ids.serial_number {
            push_unique(self.by_serial.entry(serial.clone()).or_default(), device_id);
        }
        for id in OTHER_IDS {
            if let Some(value) = ids.get(id) {
                push_unique(
                    self.by_other.entry((id, value.to_string())).or_default(),
                    device_id,
                );
            }
        }
        if let Some(tag) = asset_tag_key(asset_tag) {
            let devices = self.by_asset_tag.entry(tag).or_default();
            if !devices.iter().any(|(known, _)| *known == device_id) {
                devices.push((device_id, ids.serial_number.clone()));
            }
        }
        self.serial_of
            .entry(device_id)
            .or_insert_with(|| ids.serial_number.clone());
    }

    /// By serial; else by UDID, IMEI or MAC; else by asset tag (Inventarnummer), which is
    /// unique per authority and the only key some sources share with the MDMs (UCS@school
    /// computer objects carry a MAC and an inventory number, never a serial).
    ///
    /// A serial outranks every other identifier: a UDID, IMEI or MAC that devices with
    /// different serials carry (the record's own serial counted) is no identifier at all, so it
    /// matches nothing and is reported as shared; two serials that differ outweigh an equal
    /// asset tag too (a sticker on the wrong device, not a match). `ids` is in matching form.
    fn candidates(&self, ids: &NormalizedIds, asset_tag: Option<&str>) -> Matched {
        if let Some(serial) = &ids.serial_number {
            if let Some(found) = self.by_serial.get(serial) {
                return Matched {
                    found: found.clone(),
                    matched_by: "serial number",
                    shared: Vec::new(),
                };
            }
        }
        let mut found = Vec::new();
        let mut shared = Vec::new();
        for id in OTHER_IDS {
            let Some(value) = ids.get(id) else {
                continue;
            };
            let Some(carriers) = self.by_other.get(&(id, value.to_string())) else {
                continue;
            };
            let serials = carriers
                .iter()
                .map(|device_id| {
                    self.serial_of
                        .get(device_id)
                        .and_then(|serial| serial.as_deref())
                })
                .chain([ids.serial_number.as_deref()]);
            if identity::serials_agree(serials) {
                for device_id in carriers {
                    push_unique(&mut found, *device_id);
                }
            } else {
                shared.push((id, value.to_string(), carriers.clone()));
            }
        }
        if found.is_empty() {
            let by_tag = asset_tag_key(asset_tag).and_then(|tag| self.by_asset_tag.get(&tag));
            let compatible: Vec<Uuid> = by_tag
                .into_iter()
                .flatten()
                .filter(|(_, serial)| {
                    serial.is_none() || ids.serial_number.is_none() || *serial == ids.serial_number
                })
                .map(|(device_id, _)| *device_id)
                .collect();
            if !compatible.is_empty() {
                return Matched {
                    found: compatible,
                    matched_by: "asset tag",
                    shared,
                };
            }
        }
        Matched {
            found,
            matched_by: "UDID, IMEI or Wi-Fi MAC",
            shared,
        }
    }
}

/// The hardware identifiers besides the serial number, which match only when no serial does.
const OTHER_IDS: [HardwareId; 3] = [HardwareId::Udid, HardwareId::Imei, HardwareId::WifiMac];

/// An asset tag in the form devices are matched by (trimmed; empty means none).
/// Who carries which hardware identifier, with the label messages name the carrier by and the
/// carrier's serial number (which tells a shared identifier from a clash).
#[derive(Default)]
struct Carriers(HashMap<(HardwareId, String), Vec<Carrier>>);

#[derive(Clone)]
struct Carrier {
    device_id: Uuid,
    label: String,
    serial: Option<String>,
}

impl Carriers {
    fn add(&mut self, ids: &NormalizedIds, device_id: Uuid, label: &str) {
        for id in HardwareId::ALL {
            if let Some(value) = ids.get(id) {
                self.add_one(id, value, device_id, label, ids.serial_number.as_deref());
            }
        }
    }

    fn add_one(
        &mut self,
        id: HardwareId,
        value: &str,
        device_id: Uuid,
        label: &str,
        serial: Option<&str>,
    ) {
        let carriers = self.0.entry((id, value.to_string())).or_default();
        if !carriers.iter().any(|known| known.device_id == device_id) {
            carriers.push(Carrier {
                device_id,
                label: label.to_string(),
                serial: serial.map(str::to_string),
            });
        }
    }

    /// The devices other than `device_id` that carry `value` as `id`.
    fn others(&self, id: HardwareId, value: &str, device_id: Uuid) -> Vec<Carrier> {
        self.0
            .get(&(id, value.to_string()))
            .into_iter()
            .flatten()
            .filter(|carrier| carrier.device_id != device_id)
            .cloned()
            .collect()
    }
}

fn asset_tag_key(asset_tag: Option<&str>) -> Option<String> {
    asset_tag
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_string)
}

fn push_unique(list: &mut Vec<Uuid>, device_id: Uuid) {
    if !list.contains(&device_id) {
        list.push(device_id);
    }
}

/// Everything one page writes, gathered so each table gets one statement.
#[derive(Default)]
struct PageWrites {
    new_devices: Vec<DeviceRow>,
    changed_devices: Vec<DeviceRow>,
    new_links: Vec<(Uuid, Uuid, usize)>,
    changed_links: Vec<(Uuid, usize)>,
    /// Devices updated from a record of this page, with the record's index.
    changed_links_devices: Vec<(Uuid, usize)>,
    reappeared_links: Vec<Uuid>,
    ended_links: Vec<(Uuid, String)>,
    events: Vec<(Uuid, &'static str, String)>,
    reviews: Vec<(usize, &'static str, String, Vec<Uuid>)>,
    /// Identifiers devices with different serial numbers carry, with those devices: one review
    /// item each (`identifier_shared`), whichever records found them.
    shared: HashMap<(HardwareId, String), Vec<Uuid>>,
}

impl PageWrites {
    fn report_shared(&mut self, id: HardwareId, value: &str, devices: &[Uuid]) {
        let carriers = self.shared.entry((id, value.to_string())).or_default();
        for device_id in devices {
            push_unique(carriers, *device_id);
        }
    }
}

impl<'a> Run<'a> {
    fn new(source: &'a SourceRef, run_id: i64, now: DateTime<Utc>) -> Run<'a> {
        Run {
            source,
            origin: format!("source:{}", source.name),
            run_id,
            now,
            counts: SyncCounts::default(),
            warnings: Vec::new(),
            n_warnings: 0,
            schools: SchoolResolver::default(),
            received: 0,
            seen: HashSet::new(),
            priority: merge::FieldPriority::default(),
            payloads: None,
            row_checks: RowChecks::PerRow,
            rules: MatchingRules::default(),
            shared_reported: HashSet::new(),
        }
    }

    fn warn(&mut self, warning: String) {
        self.n_warnings += 1;
        if self.warnings.len() < MAX_KEPT_WARNINGS {
            self.warnings.push(warning);
        }
    }

    async fn execute(
        &mut self,
        conn: &mut PgConnection,
        pages: &mut mpsc::Receiver<PreparedItem>,
        options: &SyncOptions,
        progress: &dyn SyncProgress,
    ) -> Result<Finish, RunError> {
        let mut tx = conn.begin().await?;
        self.load_schools(&mut tx, &options.school_map).await?;
        self.rules = MatchingRules::load(&mut tx, self.source.authority_id).await?;
        let active_before: i64 = sqlx::query_scalar(
            "select count(*) from source_link \
             where source_id = $1 and ended_at is null and missing_since is null",
        )
        .bind(self.source.source_id)
        .fetch_one(&mut *tx)
        .await?;

        let reported_total = loop {
            match pages.recv().await {
                Some(PreparedItem::Page(page)) => {
                    let label = page.label.clone();
                    let n_records = page.records.len();
                    let announced_total = page.announced_total;
                    self.apply_page(&mut tx, page)
                        .await
                        .map_err(|error| match error {
                            // Kept as such: `run_sync` tells a lost deadlock from other errors.
                            RunError::Database(error) if !lost_deadlock(&error) => {
                                RunError::Source(format!(
                                    "{label}: database error while applying the page: {error}"
                                ))
                            }
                            other => other,
                        })?;
                    progress.page_applied(&label, n_records, self.received, announced_total);
                }
                Some(PreparedItem::Schools(schools)) => self.schools.learn(&schools),
                Some(PreparedItem::Complete { reported_total }) => break reported_total,
                Some(PreparedItem::Failed(failure)) => {
                    return Err(RunError::Source(format!(
                        "fetch failed, nothing was changed: {failure}"
                    )))
                }
                None => {
                    return Err(RunError::Source(
                        "the connector stopped without finishing; nothing was changed".to_string(),
                    ))
                }
            }
        };

        let distinct = self.seen.len() as u64;
        if distinct < reported_total {
            return Err(RunError::Source(format!(
                "received {distinct} distinct records but the source reported {reported_total}; \
                 nothing was changed"
            )));
        }

        let seen: Vec<&str> = self.seen.iter().map(String::as_str).collect();
        let missing: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "select l.source_link_id, l.device_id from source_link l \
             where l.source_id = $1 and l.ended_at is null and l.missing_since is null \
             and not (l.external_id = any($2))",
        )
        .bind(self.source.source_id)
        .bind(&seen)
        .fetch_all(&mut *tx)
        .await?;
        let links: Vec<Uuid> = missing.iter().map(|(link, _)| *link).collect();
        let (moved, gone) = split_moved(&mut tx, self.source, &links).await?;
        let n_missing = gone.len() as i32;

        // Devices that moved to another source are accounted for; only the rest can look like
        // a broken source.
        if let Some(reason) = options.guard.check(gone.len() as u64, active_before as u64) {
            let reason = if options.dry_run {
                format!("{reason} (dry run: a real run would wait for approval)")
            } else {
                format!(
                    "{reason}; approve with `bestand sync approve {}`",
                    self.run_id
                )
            };
            if options.dry_run {
                tx.rollback().await?;
            } else {
                sqlx::query(
                    "insert into sync_run_pending_missing (sync_run_id, source_link_id) \
                     select $1, unnest($2::uuid[])",
                )
                .bind(self.run_id)
                .bind(missing.iter().map(|(link, _)| *link).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
                if self.counts.changed_links_or_persons() {
                    refresh_assignments(&mut tx, self.source.authority_id, self.now).await?;
                }
                self.commit_payloads().await?;
                tx.commit().await?;
            }
            return Ok(Finish::Committed {
                status: SyncStatus::Blocked,
                blocked_reason: Some(reason),
                would_mark_missing: n_missing,
            });
        }

        let previous_complete: Option<DateTime<Utc>> =
            sqlx::query_scalar("select last_complete_run_at from source where source_id = $1")
                .bind(self.source.source_id)
                .fetch_one(&mut *tx)
                .await?;
        end_moved(
            &mut tx,
            self.source,
            &moved,
            self.now,
            previous_complete,
            Some(self.run_id),
        )
        .await?;
        mark_missing(
            &mut tx,
            self.source,
            &gone,
            self.now,
            previous_complete,
            Some(self.run_id),
        )
        .await?;
        self.counts.marked_missing = n_missing;
        self.counts.moved = moved.len() as i32;
        sqlx::query("update source set last_complete_run_at = $2 where source_id = $1")
            .bind(self.source.source_id)
            .bind(self.now)
            .execute(&mut *tx)
            .await?;
        if self.counts.changed_links_or_persons() {
            refresh_assignments(&mut tx, self.source.authority_id, self.now).await?;
        }
        if options.dry_run {
            tx.rollback().await?;
        } else {
            self.commit_payloads().await?;
            tx.commit().await?;
        }
        Ok(Finish::Committed {
            status: SyncStatus::Succeeded,
            blocked_reason: None,
            would_mark_missing: n_missing,
        })
    }

    /// Commits the payload writer; the run's own transaction commits only after this did.
    async fn commit_payloads(&mut self) -> Result<(), RunError> {
        match self.payloads.take() {
            Some(writer) => writer.commit().await.map_err(payload_error),
            None => Ok(()),
        }
    }

    /// Loads the authority's schools, locked with the run's authority and source for the whole
    /// run, so the rows the run creates may skip their per-row reference checks.
    async fn load_schools(
        &mut self,
        tx: &mut PgConnection,
        school_map: &HashMap<String, String>,
    ) -> Result<(), RunError> {
        let rows = lock_run_references(tx, self.source.authority_id, self.source.source_id)
            .await?
            .ok_or_else(|| {
                RunError::Source(
                    "the source or its school authority is no longer in the database".into(),
                )
            })?;
        self.schools = SchoolResolver::new(rows, school_map);
        Ok(())
    }

    fn prepare(&mut self, page_label: &str, normalized: NormalizedRecord) -> Prepared {
        let NormalizedRecord {
            record,
            ids,
            json,
            hash,
        } = normalized;
        let school_id = match record.location.school.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(hint) => {
                let found = self.schools.resolve(hint);
                if found.is_none() && self.schools.first_unknown(hint) {
                    self.warn(format!(
                        "{page_label}: school '{hint}' (first seen on {}) matches no school of this \
                         authority by number, name or alias; {}",
                        record.external_id,
                        how_to_map(&self.source.name, hint)
                    ));
                }
                found
            }
        };
        for problem in &record.problems {
            self.warn(format!("{page_label}: {}: {problem}", record.external_id));
        }
        Prepared {
            record,
            ids,
            school_id,
            json,
            hash,
        }
    }

    async fn apply_page(
        &mut self,
        tx: &mut PgConnection,
        page: NormalizedPage,
    ) -> Result<(), RunError> {
        let label = page.label;
        self.counts.fetched += page.records.len() as i32;
        self.received += page.records.len() as u64;

        // Keep the first occurrence of each external id in this run (paging drift repeats records).
        let mut prepared = Vec::with_capacity(page.records.len());
        for normalized in page.records {
            let record = &normalized.record;
            if record.external_id.trim().is_empty() {
                self.warn(format!("{label}: a record without an id was skipped"));
                continue;
            }
            if !self.seen.insert(record.external_id.clone()) {
                self.warn(format!(
                    "{label}: record {} was delivered twice in this run; the first copy was used",
                    record.external_id
                ));
                continue;
            }
            prepared.push(self.prepare(&label, normalized));
        }

        let links = self.load_links(tx, &prepared).await?;
        let mut writes = PageWrites::default();
        let mut unlinked = Vec::new();
        let mut changed = Vec::new();
        for (index, item) in prepared.iter().enumerate() {
            match links.get(&item.record.external_id) {
                Some(link) if !link.ended => {
                    if link.content_hash == item.hash {
                        if link.missing {
                            writes.reappeared_links.push(link.source_link_id);
                            writes.events.push((
                                link.device_id,
                                "reappeared",
                                json!({ "missing_from": { "old": self.source.name, "new": null } })
                                    .to_string(),
                            ));
                            self.counts.reappeared += 1;
                        } else {
                            self.counts.unchanged += 1;
                        }
                    } else {
                        if link.missing {
                            self.counts.reappeared += 1;
                            writes.events.push((
                                link.device_id,
                                "reappeared",
                                json!({ "missing_from": { "old": self.source.name, "new": null } })
                                    .to_string(),
                            ));
                        }
                        changed.push((index, link.device_id, link.source_link_id));
                    }
                }
                _ => unlinked.push(index),
            }
        }

        let decisions = self.decide(tx, &prepared, &unlinked, &mut writes).await?;

        let mut device_ids: Vec<Uuid> =
            changed.iter().map(|(_, device_id, _)| *device_id).collect();
        for (_, decision) in &decisions {
            if let Decision::Attach { device_id, .. } = decision {
                device_ids.push(*device_id);
            }
        }
        let mut devices: HashMap<Uuid, DeviceRow> = load_devices_for_update(tx, &device_ids)
            .await?
            .into_iter()
            .map(|row| (row.device_id, row))
            .collect();
        let tags_before: HashMap<Uuid, AssetTagBefore> = devices
            .values()
            .map(|device| (device.device_id, device.asset_tag_before()))
            .collect();
        let mut touched: Vec<Uuid> = Vec::new();
        let targets: Vec<(usize, Uuid)> = changed
            .iter()
            .map(|(index, device_id, _)| (*index, *device_id))
            .chain(
                decisions
                    .iter()
                    .filter_map(|(index, decision)| match decision {
                        Decision::Attach { device_id, .. } => Some((*index, *device_id)),
                        _ => None,
                    }),
            )
            .collect();
        let created: Vec<(usize, Uuid)> = decisions
            .iter()
            .filter_map(|(index, decision)| match decision {
                Decision::Create { device_id } => Some((*index, *device_id)),
                _ => None,
            })
            .collect();
        let held_ids = self
            .hold_clashing_hardware_ids(tx, &prepared, &targets, &devices, created, &mut writes)
            .await?;

        for (index, device_id, source_link_id) in changed {
            let item = &prepared[index];
            writes.changed_links.push((source_link_id, index));
            writes.changed_links_devices.push((device_id, index));
            self.counts.updated += 1;
            if let Some(device) = devices.get_mut(&device_id) {
                let changes = merge::merge_with_priority(
                    device,
                    &item.record,
                    held_ids.get(&index).unwrap_or(&item.ids),
                    item.school_id,
                    &self.origin,
                    &self.priority,
                    self.now,
                );
                if !changes.is_empty() {
                    writes
                        .events
                        .push((device_id, "updated", changes_json(changes)));
                    push_unique(&mut touched, device_id);
                }
            }
        }

        for (index, decision) in decisions {
            let item = &prepared[index];
            match decision {
                Decision::Create { device_id } => {
                    let (row, mut changes) = merge::new_device(
                        device_id,
                        self.source.authority_id,
                        &item.record,
                        &item.ids,
                        item.school_id,
                        &self.origin,
                        self.now,
                    );
                    changes.insert(
                        "source_link".into(),
                        link_change(None, Some(&self.link_name(item))),
                    );
                    writes
                        .events
                        .push((device_id, "created", changes_json(changes)));
                    writes.new_devices.push(row);
                    writes.new_links.push((Uuid::now_v7(), device_id, index));
                    self.counts.created += 1;
                }
                Decision::Attach {
                    device_id,
                    replaces,
                } => {
                    let mut changes = match devices.get_mut(&device_id) {
                        Some(device) => merge::merge_with_priority(
                            device,
                            &item.record,
                            held_ids.get(&index).unwrap_or(&item.ids),
                            item.school_id,
                            &self.origin,
                            &self.priority,
                            self.now,
                        ),
                        None => Changes::new(),
                    };
                    if !changes.is_empty() {
                        push_unique(&mut touched, device_id);
                    }
                    let old_link = replaces
                        .as_ref()
                        .map(|(_, external_id)| format!("{}:{external_id}", self.source.name));
                    changes.insert(
                        "source_link".into(),
                        link_change(old_link.as_deref(), Some(&self.link_name(item))),
                    );
                    if let Some((old_link_id, old_external_id)) = replaces {
                        writes.ended_links.push((
                            old_link_id,
                            format!("re-enrolled as {}", item.record.external_id),
                        ));
                        writes.events.push((
                            device_id,
                            "re_enrolled",
                            json!({ "external_id": { "old": old_external_id, "new": item.record.external_id } }).to_string(),
                        ));
                    }
                    writes
                        .events
                        .push((device_id, "linked", changes_json(changes)));
                    writes.new_links.push((Uuid::now_v7(), device_id, index));
                    self.counts.updated += 1;
                }
                Decision::Review {
                    summary,
                    candidates,
                } => {
                    writes
                        .reviews
                        .push((index, "ambiguous_match", summary, candidates));
                    self.counts.review_items += 1;
                }
            }
        }
        writes.changed_devices = touched.iter().filter_map(|id| devices.remove(id)).collect();
        self.keep_asset_tags_unique(tx, &prepared, tags_before, &mut writes)
            .await?;
        let revive: HashSet<&str> = links
            .iter()
            .filter(|(_, link)| link.ended)
            .map(|(external_id, _)| external_id.as_str())
            .collect();
        self.write(tx, &mut prepared, &revive, writes).await?;
        Ok(())
    }

    /// A record that reaches a device (through its link, or attached by another identifier) but
    /// reports a serial number, UDID, IMEI or Wi-Fi MAC another device of the authority
    /// carries says that one record is two devices. Writing it would give both devices the
    /// identifier, and every later match by it would be ambiguous; so the device keeps its own,
    /// the rest of the record applies, and a review item names the devices (`serial_conflict`
    /// when the serial is among them, else `identifier_conflict`). An identifier is also
    /// carried by a device this page creates with it (`created`), and by a device an earlier
    /// record of this page gave it.
    ///
    /// Two exceptions: a UDID, IMEI or MAC whose carriers have serial numbers other than the
    /// device's is shared (a dock, an adapter, a clone), not a clash: it is written, matches
    /// nothing, and is reported once as `identifier_shared`; a MAC that may not match at all
    /// (private, group or listed in `shared_macs`) is written without a check. And a device's
    /// serial never changes silently: a different serial for a device that has one is held
    /// (`serial_changed`) until a person decides.
    ///
    /// Returns, per record index, the identifiers to merge instead (the held ones left out,
    /// which a merge never clears).
    async fn hold_clashing_hardware_ids(
        &mut self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        targets: &[(usize, Uuid)],
        devices: &HashMap<Uuid, DeviceRow>,
        created: Vec<(usize, Uuid)>,
        writes: &mut PageWrites,
    ) -> Result<HashMap<usize, NormalizedIds>, sqlx::Error> {
        // Per target, the identifiers its record would change on the device that may match.
        let changing: Vec<(usize, &DeviceRow, NormalizedIds)> = targets
            .iter()
            .filter_map(|&(index, device_id)| {
                let device = devices.get(&device_id)?;
                let mut new_ids = self.rules.matching_ids(&prepared[index].ids);
                for id in HardwareId::ALL {
                    if new_ids.get(id) == device.hardware_id(id) {
                        new_ids.clear(id);
                    }
                }
                (!new_ids.is_empty()).then_some((index, device, new_ids))
            })
            .collect();
        let mut held = HashMap::new();
        if changing.is_empty() {
            return Ok(held);
        }
        let mut keys = KeyLookup::default();
        for (_, _, new_ids) in &changing {
            keys.add(new_ids);
        }
        let mut carriers = Carriers::default();
        for device in devices_by_keys(tx, self.source.authority_id, &keys).await? {
            carriers.add(&device.ids, device.device_id, &device.label());
        }
        for (index, device_id) in created {
            let ids = &prepared[index].ids;
            // Its asset tag may yet go to another device: named by its serial.
            let label = device_label(None, ids.serial_number.as_deref(), device_id);
            carriers.add(ids, device_id, &label);
        }

        for (index, device, new_ids) in changing {
            let item = &prepared[index];
            let device_id = device.device_id;
            let label = device.label();
            let own_serial = device
                .serial_number
                .as_deref()
                .or(item.ids.serial_number.as_deref());
            let mut clashes: Vec<(HardwareId, &str, Carrier)> = Vec::new();
            let mut serial_changed = None;
            for id in HardwareId::ALL {
                let Some(value) = new_ids.get(id) else {
                    continue;
                };
                let others = carriers.others(id, value, device_id);
                let shared = id != HardwareId::Serial
                    && !others.is_empty()
                    && !identity::serials_agree(
                        others
                            .iter()
                            .map(|other| other.serial.as_deref())
                            .chain([own_serial]),
                    );
                if shared {
                    let mut sharing: Vec<Uuid> = others.iter().map(|o| o.device_id).collect();
                    sharing.push(device_id);
                    writes.report_shared(id, value, &sharing);
                } else if let Some(other) = others.into_iter().next() {
                    clashes.push((id, value, other));
                    continue;
                } else if id == HardwareId::Serial && device.serial_number.is_some() {
                    serial_changed = Some(value);
                    continue;
                }
                // Claimed now: a later record of this page reporting it clashes.
                carriers.add_one(id, value, device_id, &label, own_serial);
            }
            let external_id = &item.record.external_id;
            let mut ids = item.ids.clone();
            if let Some(new_serial) = serial_changed {
                let old_serial = device.serial_number.as_deref().unwrap_or_default();
                self.warn(format!(
                    "{external_id}: reports serial number '{new_serial}' for device {label}, \
                     which has '{old_serial}'; the device keeps it until a person decides (see \
                     `bestand review list`)"
                ));
                writes.reviews.push((
                    index,
                    SERIAL_CHANGED,
                    format!(
                        "{external_id} of source '{}' belongs to device {label} (serial number \
                         '{old_serial}') but now reports serial number '{new_serial}': a replaced \
                         logic board, a reused id or two devices in one; --link {label} takes the \
                         new serial, --split makes the record a device of its own",
                        self.source.name
                    ),
                    vec![device_id],
                ));
                self.counts.review_items += 1;
                ids.clear(HardwareId::Serial);
            }
            if !clashes.is_empty() {
                let mut candidates = Vec::new();
                let mut reports = Vec::new();
                for (id, value, other) in &clashes {
                    let name = id.name();
                    let kept = device.hardware_id(*id).unwrap_or("none");
                    let other_label = &other.label;
                    self.warn(format!(
                        "{external_id}: {name} '{value}' is already carried by device \
                         {other_label}; device {label} keeps {name} '{kept}' (see `bestand review \
                         list`)"
                    ));
                    reports.push(format!(
                        "{name} '{value}', which device {other_label} carries"
                    ));
                    push_unique(&mut candidates, other.device_id);
                    ids.clear(*id);
                }
                candidates.push(device_id);
                let kind = if clashes.iter().any(|(id, ..)| *id == HardwareId::Serial) {
                    SERIAL_CONFLICT
                } else {
                    IDENTIFIER_CONFLICT
                };
                writes.reviews.push((
                    index,
                    kind,
                    format!(
                        "{external_id} of source '{}' belongs to device {label} but now reports {}",
                        self.source.name,
                        reports.join(" and ")
                    ),
                    candidates,
                ));
                self.counts.review_items += 1;
            }
            if serial_changed.is_some() || !clashes.is_empty() {
                held.insert(index, ids);
            }
        }
        Ok(held)
    }

    /// An asset tag is unique within an authority, but sources do report a tag that another
    /// device already carries (a reused label, a typo). Such a tag is left unchanged on the
    /// device that would take it, and a review item names both devices, instead of the
    /// unique index failing the whole run.
    async fn keep_asset_tags_unique(
        &mut self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        mut tags_before: HashMap<Uuid, AssetTagBefore>,
        writes: &mut PageWrites,
    ) -> Result<(), sqlx::Error> {
        let record_of: HashMap<Uuid, usize> = writes
            .new_links
            .iter()
            .map(|(_, device_id, index)| (*device_id, *index))
            .chain(
                writes
                    .changed_links_devices
                    .iter()
                    .map(|(device_id, index)| (*device_id, *index)),
            )
            .collect();
        let tags: Vec<&str> = writes
            .new_devices
            .iter()
            .chain(writes.changed_devices.iter())
            .filter_map(|row| row.asset_tag.as_deref())
            .collect();
        if tags.is_empty() {
            return Ok(());
        }
        // A tag stays with the device that holds it now for the rest of this page, even if that
        // device gives it up here: inserts run before updates, so it is free only next run.
        // With the holder's serial, to name it by: its tag is the one in question.
        let keys = KeyLookup {
            asset_tags: tags.iter().map(|tag| tag.to_string()).collect(),
            ..KeyLookup::default()
        };
        let mut holder: HashMap<String, (Uuid, Option<String>)> =
            devices_by_keys(tx, self.source.authority_id, &keys)
                .await?
                .into_iter()
                .filter_map(|device| {
                    let tag = device.asset_tag?;
                    Some((tag, (device.device_id, device.ids.serial_number)))
                })
                .collect();
        for row in writes
            .new_devices
            .iter_mut()
            .chain(writes.changed_devices.iter_mut())
        {
            let Some(tag) = row.asset_tag.clone() else {
                continue;
            };
            match holder.get(&tag) {
                Some((other, other_serial)) if *other != row.device_id => {
                    let other = *other;
                    let other_label = device_label(None, other_serial.as_deref(), other);
                    // Its own current tag is still its own (see above).
                    row.keep_asset_tag(tags_before.remove(&row.device_id).unwrap_or_default());
                    let Some(&index) = record_of.get(&row.device_id) else {
                        continue;
                    };
                    let external_id = &prepared[index].record.external_id;
                    self.warn(format!(
                        "{external_id}: asset tag '{tag}' is already held by device \
                         {other_label}; left unchanged on device {} (see `bestand review list`)",
                        row.label()
                    ));
                    writes.reviews.push((
                        index,
                        "asset_tag_conflict",
                        format!(
                            "{external_id} of source '{}' reports asset tag '{tag}', which device \
                             {other_label} already carries",
                            self.source.name
                        ),
                        vec![other, row.device_id],
                    ));
                    self.counts.review_items += 1;
                    for (device_id, _, changes) in writes.events.iter_mut() {
                        if *device_id == row.device_id {
                            *changes = without_field(changes, "asset_tag");
                        }
                    }
                }
                _ => {
                    holder.insert(tag, (row.device_id, row.serial_number.clone()));
                }
            }
        }
        Ok(())
    }

    fn link_name(&self, item: &Prepared) -> String {
        format!("{}:{}", self.source.name, item.record.external_id)
    }

    async fn load_links(
        &self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
    ) -> Result<HashMap<String, ExistingLink>, sqlx::Error> {
        let external_ids: Vec<&str> = prepared
            .iter()
            .map(|p| p.record.external_id.as_str())
            .collect();
        let rows: Vec<(String, Uuid, Uuid, Vec<u8>, bool, bool)> = sqlx::query_as(
            "select external_id, source_link_id, device_id, content_hash, \
             missing_since is not null, ended_at is not null \
             from source_link where source_id = $1 and external_id = any($2)",
        )
        .bind(self.source.source_id)
        .bind(&external_ids)
        .fetch_all(&mut *tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(external_id, source_link_id, device_id, content_hash, missing, ended)| {
                    (
                        external_id,
                        ExistingLink {
                            source_link_id,
                            device_id,
                            content_hash,
                            missing,
                            ended,
                        },
                    )
                },
            )
            .collect())
    }

    /// Matches records without a live link to devices: by serial, else by UDID, IMEI or MAC,
    /// else by asset tag (`CandidateIndex::candidates`), with the identifiers that may match.
    async fn decide(
        &self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        unlinked: &[usize],
        writes: &mut PageWrites,
    ) -> Result<Vec<(usize, Decision)>, sqlx::Error> {
        if unlinked.is_empty() {
            return Ok(Vec::new());
        }
        let matching: HashMap<usize, NormalizedIds> = unlinked
            .iter()
            .map(|&index| (index, self.rules.matching_ids(&prepared[index].ids)))
            .collect();
        let mut keys = KeyLookup::default();
        for &index in unlinked {
            keys.add(&matching[&index]);
            keys.asset_tags
                .extend(asset_tag_key(prepared[index].record.asset_tag.as_deref()));
        }
        let candidates = devices_by_keys(tx, self.source.authority_id, &keys).await?;
        let mut index = CandidateIndex::default();
        let candidate_ids: Vec<Uuid> = candidates.iter().map(|c| c.device_id).collect();
        for candidate in &candidates {
            index.add(
                candidate.device_id,
                &self.rules.matching_ids(&candidate.ids),
                candidate.asset_tag.as_deref(),
            );
        }
        // The live links these candidates already have from this source, and whether this run
        // has seen them: that tells a re-enrollment from two records claiming one device.
        let live_links: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "select l.device_id, l.source_link_id, l.external_id \
             from source_link l where l.source_id = $1 and l.device_id = any($2) and l.ended_at is null",
        )
        .bind(self.source.source_id)
        .bind(&candidate_ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut live: HashMap<Uuid, (Uuid, String, bool)> = live_links
            .into_iter()
            .map(|(device_id, link_id, external_id)| {
                let seen = self.seen.contains(&external_id);
                (device_id, (link_id, external_id, seen))
            })
            .collect();

        let mut decisions = Vec::with_capacity(unlinked.len());
        for &record_index in unlinked {
            let item = &prepared[record_index];
            let ids = &matching[&record_index];
            let Matched {
                found,
                matched_by,
                shared,
            } = index.candidates(ids, item.record.asset_tag.as_deref());
            let decision = match found.as_slice() {
                [] => Decision::Create {
                    device_id: Uuid::now_v7(),
                },
                [device_id] => match live.get(device_id) {
                    Some((_, other_external_id, true)) => Decision::Review {
                        summary: format!(
                            "{} and {} of source '{}' both match one device by {matched_by}",
                            other_external_id, item.record.external_id, self.source.name
                        ),
                        candidates: vec![*device_id],
                    },
                    Some((link_id, other_external_id, false)) => Decision::Attach {
                        device_id: *device_id,
                        replaces: Some((*link_id, other_external_id.clone())),
                    },
                    None => Decision::Attach {
                        device_id: *device_id,
                        replaces: None,
                    },
                },
                several => Decision::Review {
                    summary: format!(
                        "{} of source '{}' matches {} devices by {matched_by}; refusing to guess",
                        item.record.external_id,
                        self.source.name,
                        several.len()
                    ),
                    candidates: several.to_vec(),
                },
            };
            // The device the record becomes or joins carries the shared identifiers too.
            let carrier = match &decision {
                Decision::Create { device_id } | Decision::Attach { device_id, .. } => {
                    Some(*device_id)
                }
                Decision::Review { .. } => None,
            };
            for (id, value, mut carriers) in shared {
                carriers.extend(carrier);
                writes.report_shared(id, &value, &carriers);
            }
            // Later records of this page must see what this one claimed: a device created
            // here can be matched, and a device attached here counts as seen.
            match &decision {
                Decision::Create { device_id } => {
                    index.add(*device_id, ids, item.record.asset_tag.as_deref());
                    live.insert(
                        *device_id,
                        (Uuid::nil(), item.record.external_id.clone(), true),
                    );
                }
                Decision::Attach { device_id, .. } => {
                    live.insert(
                        *device_id,
                        (Uuid::nil(), item.record.external_id.clone(), true),
                    );
                }
                Decision::Review { .. } => {}
            }
            decisions.push((record_index, decision));
        }
        Ok(decisions)
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        prepared: &mut [Prepared],
        revive: &HashSet<&str>,
        writes: PageWrites,
    ) -> Result<(), RunError> {
        // The writer converts this page's payloads while this connection writes the rest.
        if let Some(writer) = &mut self.payloads {
            let written = writes.new_links.iter().map(|(_, _, index)| *index);
            let changed = writes.changed_links.iter().map(|(_, index)| *index);
            let mut rows = Vec::with_capacity(writes.new_links.len() + writes.changed_links.len());
            for index in written.chain(changed) {
                let item = &mut prepared[index];
                rows.push(PayloadRow {
                    external_id: item.record.external_id.clone(),
                    content_hash: item.hash.clone(),
                    payload: std::mem::take(&mut item.record.payload),
                });
            }
            writer.write(rows).await.map_err(payload_error)?;
        }

        // The devices this page creates, their fresh links and their history reference only
        // rows this run locked or created: they skip per-row reference checks where allowed.
        let created: HashSet<Uuid> = writes.new_devices.iter().map(|d| d.device_id).collect();
        let (created_events, other_events): (Vec<_>, Vec<_>) = writes
            .events
            .into_iter()
            .partition(|(device_id, _, _)| created.contains(device_id));
        let (revived, fresh): (Vec<_>, Vec<_>) =
            writes.new_links.into_iter().partition(|(_, _, index)| {
                revive.contains(prepared[*index].record.external_id.as_str())
            });
        let (fresh_of_created, fresh): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|(_, device_id, _)| created.contains(device_id));
        if !created.is_empty() {
            self.row_checks.switch(tx, true).await?;
            // Each statement's arguments are encoded while the database runs the one before:
            // `biased` polls the statement first, which sends it and waits for the answer.
            let (devices_written, links) = tokio::join!(
                biased;
                insert_devices(tx, writes.new_devices),
                async { self.link_insert(INSERT_LINKS, prepared, &fresh_of_created) },
            );
            devices_written?;
            let (links_written, events) = tokio::join!(
                biased;
                links.execute(&mut *tx),
                async {
                    let run_id = Some(self.run_id);
                    event_insert(self.source, &created_events, self.now, SYNC_CAUSE, run_id, None)
                },
            );
            links_written?;
            events.execute(&mut *tx).await?;
            self.row_checks.switch(tx, false).await?;
        }

        update_devices(tx, writes.changed_devices).await?;

        if !writes.ended_links.is_empty() {
            let (ids, reasons): (Vec<Uuid>, Vec<String>) = writes.ended_links.into_iter().unzip();
            sqlx::query(
                "update source_link l set ended_at = $2, ended_reason = u.reason \
                 from unnest($1::uuid[], $3::text[]) as u(source_link_id, reason) \
                 where l.source_link_id = u.source_link_id",
            )
            .bind(ids)
            .bind(self.now)
            .bind(reasons)
            .execute(&mut *tx)
            .await?;
        }

        // A record whose external id has an ended link revives that row; all others are fresh,
        // and a plain insert is cheaper than one prepared for conflicts.
        self.insert_links(tx, prepared, &fresh, "").await?;
        self.insert_links(
            tx,
            prepared,
            &revived,
            " on conflict (source_id, external_id) do update set device_id = excluded.device_id, \
             normalized = excluded.normalized, content_hash = excluded.content_hash, \
             hint_username = excluded.hint_username, hint_email = excluded.hint_email, \
             last_seen_at = excluded.last_seen_at, \
             missing_since = null, ended_at = null, ended_reason = null",
        )
        .await?;

        if !writes.changed_links.is_empty() {
            let mut link_ids = Vec::new();
            let mut normalized = Vec::new();
            let mut hashes = Vec::new();
            let mut usernames = Vec::new();
            let mut emails = Vec::new();
            for (link_id, index) in &writes.changed_links {
                let item = &prepared[*index];
                link_ids.push(*link_id);
                normalized.push(item.json.as_str());
                hashes.push(item.hash.as_slice());
                usernames.push(item.record.user.username.as_deref());
                emails.push(item.record.user.email.as_deref());
            }
            sqlx::query(
                "update source_link l set normalized = u.normalized::json, \
                 content_hash = u.content_hash, hint_username = u.hint_username, \
                 hint_email = u.hint_email, last_seen_at = $2, missing_since = null \
                 from unnest($1::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[]) \
                 as u(source_link_id, normalized, content_hash, hint_username, hint_email) \
                 where l.source_link_id = u.source_link_id",
            )
            .bind(link_ids)
            .bind(self.now)
            .bind(normalized)
            .bind(hashes)
            .bind(usernames)
            .bind(emails)
            .execute(&mut *tx)
            .await?;
        }

        if !writes.reappeared_links.is_empty() {
            sqlx::query(
                "update source_link set missing_since = null, last_seen_at = $2 \
                 where source_link_id = any($1)",
            )
            .bind(&writes.reappeared_links)
            .bind(self.now)
            .execute(&mut *tx)
            .await?;
        }

        insert_events(tx, self.source, &other_events, self.now, Some(self.run_id)).await?;

        for (index, kind, summary, candidates) in writes.reviews {
            let item = &prepared[index];
            let review = ReviewUpsert {
                source: self.source,
                run_id: self.run_id,
                now: self.now,
                kind,
                external_id: &item.record.external_id,
                summary: &summary,
                record_json: item.json.clone(),
                candidates: &candidates,
            };
            upsert_review_item(tx, review).await?;
        }
        let mut shared: Vec<_> = writes.shared.into_iter().collect();
        // In one order, so that two runs reporting the same identifiers wait rather than deadlock.
        shared.sort_by(|((_, a), _), ((_, b), _)| a.cmp(b));
        for ((id, value), devices) in shared {
            if self.shared_reported.insert((id, value.clone())) {
                self.counts.review_items += 1;
            }
            let key = identity::shared_identifier_key(id, &value);
            let summary = identity::shared_identifier_summary(id, &value);
            upsert_shared_identifier(
                tx,
                self.source,
                self.run_id,
                self.now,
                &key,
                &summary,
                &devices,
            )
            .await?;
        }
        Ok(())
    }

    /// Inserts `links` (link id, device id, record index), with `on_conflict` appended.
    async fn insert_links(
        &self,
        tx: &mut PgConnection,
        prepared: &[Prepared],
        links: &[(Uuid, Uuid, usize)],
        on_conflict: &str,
    ) -> Result<(), sqlx::Error> {
        if links.is_empty() {
            return Ok(());
        }
        let sql = format!("{INSERT_LINKS}{on_conflict}");
        self.link_insert(&sql, prepared, links)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The insert of `links` as a bound query, built apart from running it so the engine can
    /// build it while the database runs the statement before.
    fn link_insert<'q>(
        &self,
        sql: &'q str,
        prepared: &'q [Prepared],
        links: &[(Uuid, Uuid, usize)],
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut link_ids = Vec::with_capacity(links.len());
        let mut device_ids = Vec::with_capacity(links.len());
        let mut external_ids = Vec::with_capacity(links.len());
        let mut normalized = Vec::with_capacity(links.len());
        let mut hashes = Vec::with_capacity(links.len());
        let mut usernames = Vec::with_capacity(links.len());
        let mut emails = Vec::with_capacity(links.len());
        for &(link_id, device_id, index) in links {
            let item = &prepared[index];
            link_ids.push(link_id);
            device_ids.push(device_id);
            external_ids.push(item.record.external_id.as_str());
            normalized.push(item.json.as_str());
            hashes.push(item.hash.as_slice());
            usernames.push(item.record.user.username.as_deref());
            emails.push(item.record.user.email.as_deref());
        }
        sqlx::query(sql)
            .bind(link_ids)
            .bind(self.source.authority_id)
            .bind(self.source.source_id)
            .bind(self.now)
            .bind(device_ids)
            .bind(external_ids)
            .bind(normalized)
            .bind(hashes)
            .bind(usernames)
            .bind(emails)
    }

    fn report(
        &self,
        status: SyncStatus,
        error: Option<String>,
        blocked_reason: Option<String>,
        would_mark_missing: i32,
        dry_run: bool,
    ) -> SyncReport {
        SyncReport {
            run_id: self.run_id,
            source_name: self.source.name.clone(),
            kind: "devices",
            status,
            dry_run,
            counts: self.counts.clone(),
            would_mark_missing,
            warnings: self.warnings.clone(),
            n_warnings: self.n_warnings,
            error,
            blocked_reason,
            retried_runs: Vec::new(),
            lost_deadlock: false,
        }
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

fn payload_error(error: sqlx::Error) -> RunError {
    RunError::Source(format!(
        "storing the raw payloads failed, nothing was changed: {error}"
    ))
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

/// The same changes without `field` (a change that was not applied after all).
fn without_field(changes: &str, field: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, Value>>(changes) {
        Ok(mut map) => {
            map.remove(field);
            Value::Object(map).to_string()
        }
        Err(_) => changes.to_string(),
    }
}

fn changes_json(changes: Changes) -> String {
    serde_json::to_string(&changes).unwrap_or_else(|_| "{}".to_string())
}

fn link_change(old: Option<&str>, new: Option<&str>) -> Box<serde_json::value::RawValue> {
    merge::change(old, new)
}

/// Appends device events caused by a sync run, in one statement.
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    source: &SourceRef,
    events: &[(Uuid, &'static str, String)],
    now: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    write_events(conn, source, events, now, SYNC_CAUSE, run_id, None).await
}

/// Appends device events a person caused about a source's record (review decisions).
pub(crate) async fn insert_events_by(
    conn: &mut PgConnection,
    source: &SourceRef,
    events: &[(Uuid, &'static str, String)],
    now: DateTime<Utc>,
    cause: &str,
    actor: Option<&str>,
) -> Result<(), sqlx::Error> {
    write_events(conn, source, events, now, cause, None, actor).await
}

async fn write_events(
    conn: &mut PgConnection,
    source: &SourceRef,
    events: &[(Uuid, &'static str, String)],
    now: DateTime<Utc>,
    cause: &str,
    run_id: Option<i64>,
    actor: Option<&str>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    event_insert(source, events, now, cause, run_id, actor)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The insert of `events` as a bound query (see `Run::link_insert`).
fn event_insert<'q>(
    source: &SourceRef,
    events: &'q [(Uuid, &'static str, String)],
    now: DateTime<Utc>,
    cause: &'q str,
    run_id: Option<i64>,
    actor: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let device_ids: Vec<Uuid> = events.iter().map(|(device_id, _, _)| *device_id).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| *kind).collect();
    let changes: Vec<&str> = events
        .iter()
        .map(|(_, _, changes)| changes.as_str())
        .collect();
    sqlx::query(
        "insert into device_event (authority_id, device_id, occurred_at, kind, cause, sync_run_id, \
         source_id, actor, changes) \
         select $1, u.device_id, $2, u.kind, $8, $3, $4, $9, u.changes::json \
         from unnest($5::uuid[], $6::text[], $7::text[]) as u(device_id, kind, changes)",
    )
    .bind(source.authority_id)
    .bind(now)
    .bind(run_id)
    .bind(source.source_id)
    .bind(device_ids)
    .bind(kinds)
    .bind(changes)
    .bind(cause)
    .bind(actor)
}

/// A link the source no longer reports whose device another source still reports.
pub(crate) struct MovedLink {
    source_link_id: Uuid,
    device_id: Uuid,
    external_id: String,
    now_in: String,
}

/// Splits unreported links into those whose device moved to another source and the rest.
pub(crate) async fn split_moved(
    conn: &mut PgConnection,
    source: &SourceRef,
    links: &[Uuid],
) -> Result<(Vec<MovedLink>, Vec<Uuid>), sqlx::Error> {
    if links.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "select l.source_link_id, l.device_id, l.external_id, \
         string_agg(distinct s.name, ', ' order by s.name) \
         from source_link l \
         join source_link o on o.device_id = l.device_id and o.source_id <> $2 \
          and o.ended_at is null and o.missing_since is null \
         join source s on s.source_id = o.source_id \
         where l.source_link_id = any($1) group by l.source_link_id, l.device_id, l.external_id",
    )
    .bind(links)
    .bind(source.source_id)
    .fetch_all(&mut *conn)
    .await?;
    let moved: Vec<MovedLink> = rows
        .into_iter()
        .map(
            |(source_link_id, device_id, external_id, now_in)| MovedLink {
                source_link_id,
                device_id,
                external_id,
                now_in,
            },
        )
        .collect();
    let moved_ids: HashSet<Uuid> = moved.iter().map(|m| m.source_link_id).collect();
    let gone = links
        .iter()
        .copied()
        .filter(|link| !moved_ids.contains(link))
        .collect();
    Ok((moved, gone))
}

/// Ends the links of devices that moved to another source, with an event saying where to.
pub(crate) async fn end_moved(
    conn: &mut PgConnection,
    source: &SourceRef,
    moved: &[MovedLink],
    now: DateTime<Utc>,
    previous_complete: Option<DateTime<Utc>>,
    run_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    if moved.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = moved.iter().map(|m| m.source_link_id).collect();
    let reasons: Vec<String> = moved
        .iter()
        .map(|m| format!("moved to {}", m.now_in))
        .collect();
    sqlx::query(
        "update source_link l set ended_at = $2, ended_reason = u.reason, \
         last_seen_at = greatest(l.last_seen_at, coalesce($4, l.last_seen_at)) \
         from unnest($1::uuid[], $3::text[]) as u(source_link_id, reason) \
         where l.source_link_id = u.source_link_id",
    )
    .bind(&ids)
    .bind(now)
    .bind(&reasons)
    .bind(previous_complete)
    .execute(&mut *conn)
    .await?;
    let events: Vec<(Uuid, &'static str, String)> = moved
        .iter()
        .map(|m| {
            let old_link = format!("{}:{}", source.name, m.external_id);
            let changes = json!({
                "source_link": { "old": old_link, "new": null },
                "moved_to": { "old": source.name, "new": m.now_in },
            });
            (m.device_id, "moved", changes.to_string())
        })
        .collect();
    insert_events(conn, source, &events, now, run_id).await
}

/// Marks links missing from their source and records it in each device's history.
/// `previous_complete` is when the source last confirmed these links (their last sighting).
pub(crate) async fn mark_missing(
    conn: &mut PgConnection,
    source: &SourceRef,
    links: &[Uuid],
    now: DateTime<Utc>,
    previous_complete: Option<DateTime<Utc>>,
    run_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    if links.is_empty() {
        return Ok(());
    }
    let devices: Vec<Uuid> = sqlx::query_scalar(
        "update source_link set missing_since = $2, \
         last_seen_at = greatest(last_seen_at, coalesce($3, last_seen_at)) \
         where source_link_id = any($1) and missing_since is null and ended_at is null \
         returning device_id",
    )
    .bind(links)
    .bind(now)
    .bind(previous_complete)
    .fetch_all(&mut *conn)
    .await?;
    let events: Vec<(Uuid, &'static str, String)> = devices
        .into_iter()
        .map(|device_id| {
            (
                device_id,
                "missing",
                json!({ "missing_from": { "old": null, "new": source.name } }).to_string(),
            )
        })
        .collect();
    insert_events(conn, source, &events, now, run_id).await
}
