//! Applies one run of one source to the inventory.
//!
//! A run holds a PostgreSQL advisory lock for its source on its own connection, applies every
//! page inside one transaction, and only commits when the source delivered everything it
//! announced. A failed fetch therefore changes nothing but the run's own record.

mod identifiers;
pub(crate) mod missing;
mod write;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::identity::MatchingRules;
use crate::model::SyncStatus;
use crate::record::DeviceRecord;
use crate::store::assignments::refresh_assignments;
use crate::store::device_row::devices_by_keys;
use crate::store::device_row::{load_devices_for_update, AssetTagBefore, DeviceRow, KeyLookup};
use crate::store::merge::{self, Changes, HardwareId, NormalizedIds};
use crate::store::SourceRef;
use crate::sync::guard::DeletionGuard;
use crate::sync::matching::{asset_tag_key, push_unique, CandidateIndex, Decision, Matched};
use crate::sync::payloads::PayloadWriter;
use crate::sync::prepare::{spawn_normalizer, NormalizedPage, NormalizedRecord, PreparedItem};
use crate::sync::protocol::SourceItem;
use crate::sync::references::{lock_run_references, RowChecks};
use crate::sync::run::{
    apply_pages, close_run, with_heartbeat, Finish, OpenedRun, PageSink, Received, RunEnd,
    RunError, Start, StreamWords, SyncCounts, SyncProgress, SyncReport, Warnings,
    HEARTBEAT_INTERVAL,
};
use crate::sync::schools::{how_to_map, SchoolResolver};

use self::missing::{end_moved, mark_missing, split_moved};

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

/// Runs one sync of `source` from the pages arriving on `pages`, for `actor` within `scope`.
///
/// Returns `Err` only when the run could not even be recorded (no database, source busy, a
/// source outside `scope`, which is `NotFound` as if it did not exist); a run that fails
/// because of its source or a database error mid-run is recorded as failed and returned as a
/// report with status `Failed`.
#[allow(clippy::too_many_arguments)]
pub async fn run_sync(
    pool: &PgPool,
    clock: &dyn Clock,
    scope: &Scope,
    actor: &Actor,
    source: &SourceRef,
    pages: mpsc::Receiver<SourceItem>,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let start = Start::new(
        pool,
        clock,
        scope,
        actor,
        source,
        options.dry_run,
        "devices",
    );
    let opened = start.open().await?;
    apply_run(pool, clock, source, opened, pages, options, progress).await
}

/// `run_sync`, started again on fresh pages from `fetch` while a run loses a deadlock against
/// a run of another source (`retry_lost_deadlocks`).
#[allow(clippy::too_many_arguments)]
pub async fn run_sync_retrying(
    pool: &PgPool,
    clock: &dyn Clock,
    scope: &Scope,
    actor: &Actor,
    source: &SourceRef,
    fetch: impl FnMut() -> mpsc::Receiver<SourceItem>,
    options: &SyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let start = Start::new(
        pool,
        clock,
        scope,
        actor,
        source,
        options.dry_run,
        "devices",
    );
    let apply = |opened, pages| apply_run(pool, clock, source, opened, pages, options, progress);
    start.retrying(fetch, apply).await
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

    let report = SyncReport::new(
        run_id,
        source,
        "devices",
        options.dry_run,
        run.counts.clone(),
        run.warnings.clone(),
        RunEnd::of(source, outcome),
    );
    close_run(conn, clock, source, &report).await?;
    Ok(report)
}

/// The state of one run while its pages are applied.
struct Run<'a> {
    source: &'a SourceRef,
    origin: String,
    run_id: i64,
    now: DateTime<Utc>,
    counts: SyncCounts,
    warnings: Warnings,
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

impl PageSink for Run<'_> {
    type Item = PreparedItem;
    type Page = NormalizedPage;
    const WORDS: StreamWords = StreamWords {
        read: "fetch",
        records: "records",
        announcer: "source",
    };

    fn sort(&mut self, item: PreparedItem) -> Received<NormalizedPage> {
        match item {
            PreparedItem::Page(page) => Received::Page {
                label: page.label.clone(),
                records: page.records.len(),
                announced_total: page.announced_total,
                page,
            },
            PreparedItem::Schools(schools) => {
                self.schools.learn(&schools);
                Received::Noted
            }
            PreparedItem::Complete { reported_total } => Received::Complete { reported_total },
            PreparedItem::Failed(failure) => Received::Failed(failure.to_string()),
        }
    }

    async fn apply_page(
        &mut self,
        tx: &mut PgConnection,
        page: NormalizedPage,
    ) -> Result<(), RunError> {
        self.apply_device_page(tx, page).await
    }

    /// Every record, duplicates included: what the source has sent so far.
    fn received(&self) -> u64 {
        self.received
    }

    fn distinct(&self) -> u64 {
        self.seen.len() as u64
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
            warnings: Warnings::default(),
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
        self.warnings.push(warning);
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

        apply_pages(self, &mut tx, pages, progress).await?;

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
            return Ok(Finish {
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
        Ok(Finish {
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

    async fn apply_device_page(
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
                    if let Some(device) = devices.get_mut(&device_id) {
                        if let Some(enrolled) = enrol(device) {
                            writes.events.push((device_id, "enrolled", enrolled));
                            push_unique(&mut touched, device_id);
                        }
                    }
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
}

/// A device known only from a purchase (`ordered` or `delivered`) that a source now reports is
/// in use: the lifecycle table allows the move ("enrolled: a source reports the device").
/// Returns the event's changes, none for a device in any other state.
fn enrol(device: &mut DeviceRow) -> Option<String> {
    if !matches!(device.lifecycle_state.as_str(), "ordered" | "delivered") {
        return None;
    }
    let changes = json!({
        "lifecycle_state": { "old": device.lifecycle_state, "new": "in_use" },
        "reason": "enrolled: a source reports the device",
    });
    device.lifecycle_state = "in_use".to_string();
    Some(changes.to_string())
}

fn payload_error(error: sqlx::Error) -> RunError {
    RunError::Source(format!(
        "storing the raw payloads failed, nothing was changed: {error}"
    ))
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
