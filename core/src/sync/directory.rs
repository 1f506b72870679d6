//! Applies one read of a school directory (UCS@school, IServ, Kelvin) to the persons of an
//! authority, with the same safety as a device sync.
//!
//! One transaction per run under the source's advisory lock; nothing is committed unless the
//! directory delivered everything it announced. Persons are matched by the directory's
//! immutable ids first, then by email, then by username, never by name; ambiguity becomes a
//! review item. A person no directory reports any more is marked as left, never deleted, and
//! the deletion guard holds back a read that suddenly returns too few persons.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::model::SyncStatus;
use crate::person::{NotPersonCounts, PersonRecord};
use crate::store::assignments::refresh_assignments;
use crate::store::SourceRef;
use crate::sync::guard::DeletionGuard;
use crate::sync::matching::{Candidates, KnownPerson, PersonIndex};
use crate::sync::protocol::{DirectoryItem, PersonPage};
use crate::sync::run::{
    apply_pages, close_run, upsert_review_item, with_heartbeat, Finish, OpenedRun, PageSink,
    Received, ReviewUpsert, RunEnd, RunError, Start, StreamWords, SyncCounts, SyncProgress,
    SyncReport, Warnings, HEARTBEAT_INTERVAL,
};
use crate::sync::schools::{how_to_map, SchoolResolver};

/// What the caller wants from a directory run.
#[derive(Debug, Clone, Default)]
pub struct DirectorySyncOptions {
    /// Read and compute everything, then roll back.
    pub dry_run: bool,
    pub guard: DeletionGuard,
    /// The directory's school keys (as the directory spells them) mapped to configured school
    /// numbers, for directories whose keys are neither a school number, name nor alias.
    pub school_map: HashMap<String, String>,
}

/// Runs one directory sync of `source` from the items arriving on `items`, for `actor` within
/// `scope`.
///
/// Returns `Err` only when the run could not be recorded (no database, source busy, a source
/// outside `scope`, which is `NotFound`); a run that fails because of its source is recorded as
/// failed and returned as a report.
#[allow(clippy::too_many_arguments)]
pub async fn run_directory_sync(
    pool: &PgPool,
    clock: &dyn Clock,
    scope: &Scope,
    actor: &Actor,
    source: &SourceRef,
    items: mpsc::Receiver<DirectoryItem>,
    options: &DirectorySyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let start = Start::new(
        pool,
        clock,
        scope,
        actor,
        source,
        options.dry_run,
        "directory",
    );
    let opened = start.open().await?;
    apply_directory_run(pool, clock, source, opened, items, options, progress).await
}

/// Applies `items` as the run `open_run` opened.
async fn apply_directory_run(
    pool: &PgPool,
    clock: &dyn Clock,
    source: &SourceRef,
    (mut conn, run_id, started_at): OpenedRun,
    mut items: mpsc::Receiver<DirectoryItem>,
    options: &DirectorySyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    let mut run = DirectoryRun::new(source, run_id, started_at, options);
    let outcome = with_heartbeat(
        pool,
        clock,
        run_id,
        HEARTBEAT_INTERVAL,
        run.execute(&mut conn, &mut items, progress),
    )
    .await;
    drop(items);
    let report = SyncReport::new(
        run_id,
        source,
        "directory",
        options.dry_run,
        run.counts.clone(),
        run.warnings_with_summaries(),
        RunEnd::of(source, outcome),
    );
    close_run(conn, clock, source, &report).await?;
    Ok(report)
}

/// `run_directory_sync`, started again on fresh items from `fetch` while a run loses a
/// deadlock against a run of another source (`retry_lost_deadlocks`).
#[allow(clippy::too_many_arguments)]
pub async fn run_directory_sync_retrying(
    pool: &PgPool,
    clock: &dyn Clock,
    scope: &Scope,
    actor: &Actor,
    source: &SourceRef,
    fetch: impl FnMut() -> mpsc::Receiver<DirectoryItem>,
    options: &DirectorySyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, CoreError> {
    // As `run_sync_retrying`: the directory is read only once the run holds the source's lock.
    let start = Start::new(
        pool,
        clock,
        scope,
        actor,
        source,
        options.dry_run,
        "directory",
    );
    let apply =
        |opened, items| apply_directory_run(pool, clock, source, opened, items, options, progress);
    start.retrying(fetch, apply).await
}

/// This source's link to a person, as loaded at the start of the run.
struct KnownLink {
    link_id: Uuid,
    person_id: Uuid,
    content_hash: Vec<u8>,
    missing: bool,
}

/// The writes one page causes, applied in bulk.
#[derive(Default)]
struct PageWrites {
    new_persons: Vec<(Uuid, usize)>,
    changed_persons: Vec<(Uuid, usize)>,
    new_links: Vec<(Uuid, usize)>,
    changed_links: Vec<(Uuid, usize)>,
    memberships_of: Vec<(Uuid, usize)>,
}

struct DirectoryRun<'a> {
    source: &'a SourceRef,
    options: &'a DirectorySyncOptions,
    run_id: i64,
    now: DateTime<Utc>,
    counts: SyncCounts,
    warnings: Warnings,
    /// The directory's school keys to schools, as the source's device run resolves them too.
    schools: SchoolResolver,
    persons: PersonIndex,
    links: HashMap<String, KnownLink>,
    /// Persons this source reports (live links), so weak keys do not merge two of its persons.
    linked_here: HashSet<Uuid>,
    seen: HashSet<String>,
    /// Links whose record says the person has left (a former pupils' group), marked like links
    /// the directory no longer lists.
    leaving: Vec<Uuid>,
    /// Records of persons who had left before this source ever reported them; not stored.
    n_left_unknown: u64,
    /// Accounts the directory left out as no persons, by kind.
    not_persons: NotPersonCounts,
}

impl PageSink for DirectoryRun<'_> {
    type Item = DirectoryItem;
    type Page = PersonPage;
    const WORDS: StreamWords = StreamWords {
        read: "directory read",
        records: "persons",
        announcer: "directory",
    };

    fn sort(&mut self, item: DirectoryItem) -> Received<PersonPage> {
        match item {
            DirectoryItem::Schools(schools) => {
                self.schools.learn(&schools);
                Received::Noted
            }
            DirectoryItem::NotPersons(counts) => {
                for (kind, n) in counts {
                    *self.not_persons.entry(kind).or_default() += n;
                }
                Received::Noted
            }
            DirectoryItem::Persons(page) => Received::Page {
                label: page.label.clone(),
                records: page.records.len(),
                announced_total: None,
                page,
            },
            DirectoryItem::Complete { reported_total } => Received::Complete { reported_total },
            DirectoryItem::Failed(failure) => Received::Failed(failure.to_string()),
        }
    }

    async fn apply_page(
        &mut self,
        tx: &mut PgConnection,
        page: PersonPage,
    ) -> Result<(), RunError> {
        self.apply_person_page(tx, page).await
    }

    /// Progress of a directory run counts the distinct persons received.
    fn received(&self) -> u64 {
        self.seen.len() as u64
    }

    fn distinct(&self) -> u64 {
        self.seen.len() as u64
    }
}

impl<'a> DirectoryRun<'a> {
    fn new(
        source: &'a SourceRef,
        run_id: i64,
        now: DateTime<Utc>,
        options: &'a DirectorySyncOptions,
    ) -> DirectoryRun<'a> {
        DirectoryRun {
            source,
            options,
            run_id,
            now,
            counts: SyncCounts::default(),
            warnings: Warnings::default(),
            schools: SchoolResolver::default(),
            persons: PersonIndex::default(),
            links: HashMap::new(),
            linked_here: HashSet::new(),
            seen: HashSet::new(),
            leaving: Vec::new(),
            n_left_unknown: 0,
            not_persons: NotPersonCounts::new(),
        }
    }

    fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    async fn execute(
        &mut self,
        conn: &mut PgConnection,
        items: &mut mpsc::Receiver<DirectoryItem>,
        progress: &dyn SyncProgress,
    ) -> Result<Finish, RunError> {
        let mut tx = conn.begin().await?;
        self.load(&mut tx).await?;
        let active_before = self.links.values().filter(|link| !link.missing).count() as u64;

        apply_pages(self, &mut tx, items, progress).await?;

        let gone: Vec<Uuid> = self
            .links
            .iter()
            .filter(|(external_id, link)| !link.missing && !self.seen.contains(*external_id))
            .map(|(_, link)| link.link_id)
            .chain(self.leaving.iter().copied())
            .collect();
        let would_mark = gone.len() as i32;
        if let Some(reason) =
            self.options
                .guard
                .check_marking(gone.len() as u64, active_before, "persons as left")
        {
            let reason = if self.options.dry_run {
                format!("{reason} (dry run: a real run would wait for approval)")
            } else {
                format!(
                    "{reason}; approve with `bestand sync approve {}`",
                    self.run_id
                )
            };
            if self.options.dry_run {
                tx.rollback().await?;
            } else {
                sqlx::query(
                    "insert into sync_run_pending_left (sync_run_id, person_link_id) \
                     select $1, unnest($2::uuid[])",
                )
                .bind(self.run_id)
                .bind(&gone)
                .execute(&mut *tx)
                .await?;
                if self.counts.changed_links_or_persons() {
                    refresh_assignments(&mut tx, self.source.authority_id, self.now).await?;
                }
                tx.commit().await?;
            }
            return Ok(Finish {
                status: SyncStatus::Blocked,
                blocked_reason: Some(reason),
                would_mark_missing: would_mark,
            });
        }

        let (left, returned) = mark_left(&mut tx, self.source, &gone, self.now).await?;
        self.counts.marked_missing = left;
        self.counts.reappeared += returned;
        sqlx::query("update source set last_complete_run_at = $2 where source_id = $1")
            .bind(self.source.source_id)
            .bind(self.now)
            .execute(&mut *tx)
            .await?;
        if self.counts.changed_links_or_persons() {
            refresh_assignments(&mut tx, self.source.authority_id, self.now).await?;
        }
        if self.options.dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(Finish {
            status: SyncStatus::Succeeded,
            blocked_reason: None,
            would_mark_missing: would_mark,
        })
    }

    async fn load(&mut self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.schools =
            SchoolResolver::load(&mut *tx, self.source.authority_id, &self.options.school_map)
                .await?;

        type PersonRow = (
            Uuid,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            bool,
            bool,
        );
        let rows: Vec<PersonRow> = sqlx::query_as(
            "select person_id, username, email, record_uid, record_source_uid, directory_uuid, \
             entra_object_id, left_at is not null, \
             exists (select 1 from person_link l where l.person_id = p.person_id \
                     and l.source_id <> $2), \
             exists (select 1 from person_link l where l.person_id = p.person_id \
                     and l.source_id = $2) \
             from person p where authority_id = $1",
        )
        .bind(self.source.authority_id)
        .bind(self.source.source_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let (person_id, username, email, record_uid, record_source_uid, uuid, entra, left) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            self.persons.add(KnownPerson {
                person_id,
                username,
                email,
                record_uid,
                record_source_uid,
                directory_uuid: uuid,
                entra_object_id: entra,
                left,
                linked_elsewhere: row.8,
                linked_by_this_source: row.9,
            });
        }
        let links: Vec<(Uuid, Uuid, String, Vec<u8>, bool)> = sqlx::query_as(
            "select person_link_id, person_id, external_id, content_hash, \
             missing_since is not null from person_link where source_id = $1",
        )
        .bind(self.source.source_id)
        .fetch_all(&mut *tx)
        .await?;
        for (link_id, person_id, external_id, content_hash, missing) in links {
            if !missing {
                self.linked_here.insert(person_id);
            }
            self.links.insert(
                external_id,
                KnownLink {
                    link_id,
                    person_id,
                    content_hash,
                    missing,
                },
            );
        }
        Ok(())
    }

    fn school_of(&mut self, directory_key: &str) -> Option<Uuid> {
        let found = self.schools.resolve(directory_key);
        if found.is_none() && self.schools.first_unknown(directory_key) {
            self.warn(format!(
                "school '{directory_key}' of the directory matches no configured school by \
                 number, name or alias; its memberships are not stored ({})",
                how_to_map(&self.source.name, directory_key)
            ));
        }
        found
    }

    async fn apply_person_page(
        &mut self,
        tx: &mut PgConnection,
        page: PersonPage,
    ) -> Result<(), RunError> {
        let PersonPage { label, records } = page;
        let mut writes = PageWrites::default();
        self.counts.fetched += records.len() as i32;
        // Hashed once here; the link writes reuse them.
        let hashes: Vec<[u8; 16]> = records.iter().map(PersonRecord::content_hash).collect();
        for (index, record) in records.iter().enumerate() {
            let external_id = record.external_id.trim();
            if external_id.is_empty() {
                self.warn(format!(
                    "{label}: person {} has no id in the directory and was not applied",
                    record.username.as_deref().unwrap_or("(without username)")
                ));
                continue;
            }
            if !self.seen.insert(external_id.to_string()) {
                self.warn(format!(
                    "{label}: person {external_id} was sent twice; the second copy was ignored"
                ));
                continue;
            }
            for problem in &record.problems {
                self.warn(format!("{label}: person {external_id}: {problem}"));
            }
            let hash = hashes[index];
            if let Some(link) = self.links.get(external_id) {
                let person_id = link.person_id;
                let link_id = link.link_id;
                // A leaver's link is meant to be missing; anyone else's to be live.
                if link.content_hash == hash && link.missing == record.left {
                    self.counts.unchanged += 1;
                    continue;
                }
                if record.left && !link.missing {
                    self.leaving.push(link_id);
                }
                // A returning link counts as an update; the person's return is counted when
                // the run recomputes who has left.
                self.counts.updated += 1;
                writes.changed_links.push((link_id, index));
                writes.changed_persons.push((person_id, index));
                // A leaver's record has lost the groups that gave school and class; the
                // memberships this source reported before are what the inventory must keep.
                if !record.left {
                    writes.memberships_of.push((person_id, index));
                }
                if let Some(known) = self.persons.by_id.get(&person_id).copied() {
                    self.refresh_known(known, record);
                }
                continue;
            }
            if record.left {
                // Someone who had left before this source first reported them: nothing of
                // theirs is in the inventory, so nothing is kept (pupils are minors).
                self.n_left_unknown += 1;
                continue;
            }
            let Candidates { found, how, held } =
                self.persons.candidates(record, &self.linked_here);
            let person_id = match found.as_slice() {
                [] => {
                    let person_id = Uuid::new_v4();
                    self.persons.add(KnownPerson {
                        person_id,
                        username: record.username.clone(),
                        email: record.email.clone(),
                        record_uid: record.ids.record_uid.clone(),
                        record_source_uid: record.ids.source_uid.clone(),
                        directory_uuid: record.ids.directory_uuid.clone(),
                        entra_object_id: record.ids.entra_object_id.clone(),
                        ..KnownPerson::default()
                    });
                    writes.new_persons.push((person_id, index));
                    self.counts.created += 1;
                    if !held.is_empty() {
                        self.review_namesake(tx, record, person_id, &held).await?;
                    }
                    person_id
                }
                [one] => {
                    let person_id = self.persons.persons[*one].person_id;
                    self.refresh_known(*one, record);
                    writes.changed_persons.push((person_id, index));
                    self.counts.updated += 1;
                    person_id
                }
                several => {
                    let ids: Vec<Uuid> = several
                        .iter()
                        .map(|index| self.persons.persons[*index].person_id)
                        .collect();
                    let summary = format!(
                        "person {external_id} ({}) matches {} persons by {how}; link it to one \
                         with `bestand review resolve`",
                        record.username.as_deref().unwrap_or("without username"),
                        ids.len()
                    );
                    self.open_person_review(tx, record, &summary, &ids).await?;
                    continue;
                }
            };
            let link_id = Uuid::new_v4();
            self.linked_here.insert(person_id);
            self.links.insert(
                external_id.to_string(),
                KnownLink {
                    link_id,
                    person_id,
                    content_hash: hash.to_vec(),
                    missing: false,
                },
            );
            writes.new_links.push((link_id, index));
            writes.memberships_of.push((person_id, index));
        }
        self.write(tx, &records, &hashes, writes).await?;
        Ok(())
    }

    /// Opens (or refreshes) the `person_ambiguous` review item of `record`, naming `candidates`.
    async fn open_person_review(
        &mut self,
        tx: &mut PgConnection,
        record: &PersonRecord,
        summary: &str,
        candidates: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let record_json = serde_json::to_string(record).unwrap_or_default();
        upsert_review_item(
            tx,
            ReviewUpsert {
                source: self.source,
                run_id: self.run_id,
                now: self.now,
                kind: crate::store::review::PERSON_AMBIGUOUS,
                external_id: record.external_id.trim(),
                summary,
                record_json,
                candidates,
            },
        )
        .await?;
        self.counts.review_items += 1;
        Ok(())
    }

    /// `record` became the new person `person_id` although persons of other directories have
    /// its login: an admin decides whether it is one of them (`review resolve --link`, which
    /// merges the new person into that one) or someone else (`--new`).
    async fn review_namesake(
        &mut self,
        tx: &mut PgConnection,
        record: &PersonRecord,
        person_id: Uuid,
        held: &[usize],
    ) -> Result<(), sqlx::Error> {
        let ids: Vec<Uuid> = held
            .iter()
            .map(|index| self.persons.persons[*index].person_id)
            .collect();
        let summary = format!(
            "person {} ({}) has the login of {} person(s) of other directories, and nothing \
             else says it is the same person; kept as the new person {person_id}. If it is \
             one of them, merge it with `bestand review resolve ITEM --link PERSON`; if not, \
             settle it with `--new`",
            record.external_id.trim(),
            record.username.as_deref().unwrap_or("without username"),
            ids.len()
        );
        self.open_person_review(tx, record, &summary, &ids).await
    }

    /// Keeps the in-memory index in step with what this run writes, so a later page of the
    /// same run matches against the new values.
    fn refresh_known(&mut self, index: usize, record: &PersonRecord) {
        let mut person = self.persons.persons[index].clone();
        let fill = |target: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                target.clone_from(value);
            }
        };
        fill(&mut person.username, &record.username);
        fill(&mut person.email, &record.email);
        fill(&mut person.record_uid, &record.ids.record_uid);
        fill(&mut person.record_source_uid, &record.ids.source_uid);
        fill(&mut person.directory_uuid, &record.ids.directory_uuid);
        fill(&mut person.entra_object_id, &record.ids.entra_object_id);
        person.left = false;
        self.persons.index(index, &person);
        self.persons.persons[index] = person;
    }

    async fn write(
        &mut self,
        tx: &mut PgConnection,
        records: &[PersonRecord],
        hashes: &[[u8; 16]],
        writes: PageWrites,
    ) -> Result<(), sqlx::Error> {
        let columns = |list: &[(Uuid, usize)]| PersonColumns::of(records, list);
        if !writes.new_persons.is_empty() {
            let c = columns(&writes.new_persons);
            sqlx::query(
                "insert into person (person_id, authority_id, username, email, given_name, \
                 family_name, record_uid, record_source_uid, directory_uuid, entra_object_id, \
                 first_seen_at, updated_at) \
                 select u.id, $1, u.username, u.email, u.given_name, u.family_name, u.record_uid, \
                 u.source_uid, u.directory_uuid, u.entra, $2, $2 \
                 from unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::text[]) \
                 as u(id, username, email, given_name, family_name, record_uid, source_uid, \
                 directory_uuid, entra)",
            )
            .bind(self.source.authority_id)
            .bind(self.now)
            .bind(&c.ids)
            .bind(&c.username)
            .bind(&c.email)
            .bind(&c.given_name)
            .bind(&c.family_name)
            .bind(&c.record_uid)
            .bind(&c.source_uid)
            .bind(&c.directory_uuid)
            .bind(&c.entra)
            .execute(&mut *tx)
            .await?;
        }
        if !writes.changed_persons.is_empty() {
            let c = columns(&writes.changed_persons);
            // The directory is authoritative for what it sends; what it leaves out is kept
            // (another directory may know it).
            sqlx::query(
                "update person p set username = coalesce(u.username, p.username), \
                 email = coalesce(u.email, p.email), \
                 given_name = coalesce(u.given_name, p.given_name), \
                 family_name = coalesce(u.family_name, p.family_name), \
                 record_uid = coalesce(u.record_uid, p.record_uid), \
                 record_source_uid = coalesce(u.source_uid, p.record_source_uid), \
                 directory_uuid = coalesce(u.directory_uuid, p.directory_uuid), \
                 entra_object_id = coalesce(u.entra, p.entra_object_id), \
                 updated_at = $1 \
                 from unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[]) \
                 as u(id, username, email, given_name, family_name, record_uid, source_uid, \
                 directory_uuid, entra) \
                 where p.person_id = u.id",
            )
            .bind(self.now)
            .bind(&c.ids)
            .bind(&c.username)
            .bind(&c.email)
            .bind(&c.given_name)
            .bind(&c.family_name)
            .bind(&c.record_uid)
            .bind(&c.source_uid)
            .bind(&c.directory_uuid)
            .bind(&c.entra)
            .execute(&mut *tx)
            .await?;
        }
        if !writes.new_links.is_empty() {
            let link_ids: Vec<Uuid> = writes.new_links.iter().map(|(id, _)| *id).collect();
            let person_ids: Vec<Uuid> = writes
                .new_links
                .iter()
                .map(|(_, index)| self.links[records[*index].external_id.trim()].person_id)
                .collect();
            let external_ids: Vec<&str> = writes
                .new_links
                .iter()
                .map(|(_, index)| records[*index].external_id.trim())
                .collect();
            let hashes: Vec<Vec<u8>> = writes
                .new_links
                .iter()
                .map(|(_, index)| hashes[*index].to_vec())
                .collect();
            sqlx::query(
                "insert into person_link (person_link_id, authority_id, source_id, person_id, \
                 external_id, content_hash, first_seen_at, last_seen_at) \
                 select u.id, $1, $2, u.person_id, u.external_id, u.hash, $3, $3 \
                 from unnest($4::uuid[], $5::uuid[], $6::text[], $7::bytea[]) \
                 as u(id, person_id, external_id, hash)",
            )
            .bind(self.source.authority_id)
            .bind(self.source.source_id)
            .bind(self.now)
            .bind(&link_ids)
            .bind(&person_ids)
            .bind(&external_ids)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
        }
        if !writes.changed_links.is_empty() {
            let link_ids: Vec<Uuid> = writes.changed_links.iter().map(|(id, _)| *id).collect();
            let hashes: Vec<Vec<u8>> = writes
                .changed_links
                .iter()
                .map(|(_, index)| hashes[*index].to_vec())
                .collect();
            let left: Vec<bool> = writes
                .changed_links
                .iter()
                .map(|(_, index)| records[*index].left)
                .collect();
            // A leaver's link stays missing, or is marked so at the end of the run.
            sqlx::query(
                "update person_link l set content_hash = u.hash, last_seen_at = $1, \
                 missing_since = case when u.has_left then l.missing_since end \
                 from unnest($2::uuid[], $3::bytea[], $4::bool[]) as u(id, hash, has_left) \
                 where l.person_link_id = u.id",
            )
            .bind(self.now)
            .bind(&link_ids)
            .bind(&hashes)
            .bind(&left)
            .execute(&mut *tx)
            .await?;
            for (link_id, index) in &writes.changed_links {
                if let Some(link) = self.links.get_mut(records[*index].external_id.trim()) {
                    if link.link_id == *link_id && !records[*index].left {
                        link.missing = false;
                    }
                }
            }
        }
        if !writes.memberships_of.is_empty() {
            let persons: Vec<Uuid> = writes.memberships_of.iter().map(|(id, _)| *id).collect();
            sqlx::query(
                "delete from person_membership where source_id = $1 and person_id = any($2)",
            )
            .bind(self.source.source_id)
            .bind(&persons)
            .execute(&mut *tx)
            .await?;
            let mut person_ids = Vec::new();
            let mut school_ids = Vec::new();
            let mut roles = Vec::new();
            let mut classes = Vec::new();
            let mut seen = HashSet::new();
            for (person_id, index) in &writes.memberships_of {
                for membership in &records[*index].memberships {
                    let Some(school_id) = self.school_of(&membership.school) else {
                        continue;
                    };
                    let class = membership
                        .class
                        .as_deref()
                        .map(str::trim)
                        .filter(|class| !class.is_empty())
                        .map(str::to_string);
                    if !seen.insert((*person_id, school_id, membership.role, class.clone())) {
                        continue;
                    }
                    person_ids.push(*person_id);
                    school_ids.push(school_id);
                    roles.push(membership.role.as_str());
                    classes.push(class);
                }
            }
            sqlx::query(
                "insert into person_membership (authority_id, person_id, source_id, school_id, \
                 role, class_name) \
                 select $1, u.person_id, $2, u.school_id, u.role, u.class_name \
                 from unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[]) \
                 as u(person_id, school_id, role, class_name)",
            )
            .bind(self.source.authority_id)
            .bind(self.source.source_id)
            .bind(&person_ids)
            .bind(&school_ids)
            .bind(&roles)
            .bind(&classes)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// What the run left out on purpose, counted without names, ahead of the warnings so the
    /// cap on kept warnings never drops it.
    fn summaries(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let n_not_persons: u64 = self.not_persons.values().sum();
        if n_not_persons > 0 {
            let kinds: Vec<String> = self
                .not_persons
                .iter()
                .map(|(kind, n)| format!("{n} {}", kind.as_str()))
                .collect();
            lines.push(format!(
                "{n_not_persons} accounts in no role group are no persons and were not stored: {}",
                kinds.join(", ")
            ));
        }
        if self.n_left_unknown > 0 {
            lines.push(format!(
                "{} persons in a former pupils' group were never reported before and were not \
                 stored",
                self.n_left_unknown
            ));
        }
        lines
    }

    /// The run's warnings with its summaries first, which the cap never drops.
    fn warnings_with_summaries(&self) -> Warnings {
        let summaries = self.summaries();
        Warnings {
            count: self.warnings.count + summaries.len(),
            kept: summaries
                .into_iter()
                .chain(self.warnings.kept.iter().cloned())
                .collect(),
        }
    }
}

/// The columns of some records of a page, for one `unnest` write.
struct PersonColumns {
    ids: Vec<Uuid>,
    username: Vec<Option<String>>,
    email: Vec<Option<String>>,
    given_name: Vec<Option<String>>,
    family_name: Vec<Option<String>>,
    record_uid: Vec<Option<String>>,
    source_uid: Vec<Option<String>>,
    directory_uuid: Vec<Option<String>>,
    entra: Vec<Option<String>>,
}

impl PersonColumns {
    fn of(records: &[PersonRecord], list: &[(Uuid, usize)]) -> PersonColumns {
        let clean = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let pick = |field: fn(&PersonRecord) -> &Option<String>| -> Vec<Option<String>> {
            list.iter()
                .map(|(_, index)| clean(field(&records[*index])))
                .collect()
        };
        PersonColumns {
            ids: list.iter().map(|(id, _)| *id).collect(),
            username: pick(|r| &r.username),
            email: pick(|r| &r.email),
            given_name: pick(|r| &r.given_name),
            family_name: pick(|r| &r.family_name),
            record_uid: pick(|r| &r.ids.record_uid),
            source_uid: pick(|r| &r.ids.source_uid),
            directory_uuid: pick(|r| &r.ids.directory_uuid),
            entra: pick(|r| &r.ids.entra_object_id),
        }
    }
}

/// Marks the links `gone` as missing and recomputes who has left: a person whose every link is
/// missing has left (as of `at`); a person with a live link again has returned. Returns how
/// many persons left and how many returned.
pub(crate) async fn mark_left(
    tx: &mut PgConnection,
    source: &SourceRef,
    gone: &[Uuid],
    at: DateTime<Utc>,
) -> Result<(i32, i32), sqlx::Error> {
    sqlx::query(
        "update person_link set missing_since = $2 \
         where person_link_id = any($1) and missing_since is null",
    )
    .bind(gone)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let left = sqlx::query(
        "update person p set left_at = $2, updated_at = $2 \
         where p.person_id in (select person_id from person_link where source_id = $1) \
         and p.left_at is null \
         and not exists (select 1 from person_link l \
                         where l.person_id = p.person_id and l.missing_since is null)",
    )
    .bind(source.source_id)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let returned = sqlx::query(
        "update person p set left_at = null, updated_at = $2 \
         where p.person_id in (select person_id from person_link where source_id = $1) \
         and p.left_at is not null \
         and exists (select 1 from person_link l \
                     where l.person_id = p.person_id and l.missing_since is null)",
    )
    .bind(source.source_id)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok((left as i32, returned as i32))
}
