//! The privacy purge: an authority's retention period, counted in months after a person left,
//! governs how long the inventory may name them. Past it, closed loans keep the device's story
//! under a pseudonym, the person is removed, and the text that still names them elsewhere
//! (review items, run warnings, the MDMs' records of their devices) is scrubbed.
//! `docs/privacy.md` lists every place personal data is held and how this removes it.
//!
//! Nothing here touches device history: loan events carry only loan and person ids, never
//! names, so the append-only history stays whole while the person disappears.

mod terms;

use std::collections::HashSet;

use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use self::terms::{Identity, Kept, Terms, REMOVED, TOKENS};

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::store::assignments::refresh_assignments;

/// What a purge changed (or, as a dry run, would change).
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    pub authority: String,
    pub dry_run: bool,
    pub retention_months: u32,
    /// Persons who left before this moment are past retention.
    pub cutoff: DateTime<Utc>,
    pub loans: Vec<PurgedLoan>,
    pub persons: Vec<PurgedPerson>,
    /// Persons past retention kept because a loan of theirs is still open.
    pub kept_with_open_loans: Vec<PurgedPerson>,
    /// What else named the removed persons, and was removed or scrubbed with them.
    pub scrubbed: Scrubbed,
}

/// Rows outside the person tables that named a removed person (`docs/privacy.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Scrubbed {
    /// `person_ambiguous` review items whose directory record was a removed person's, or that
    /// offered one as a candidate: deleted (a next run raises the record again if it is still
    /// reported and still ambiguous).
    pub review_items_deleted: usize,
    /// Other review items (device kinds) whose record, summary or resolution named one.
    pub review_items_scrubbed: usize,
    /// Sync runs whose warnings, error or blocked reason named one.
    pub sync_runs: usize,
    /// Device links whose normalized record or user hint named one.
    pub device_links: usize,
    /// Raw source payloads (every stored version) that named one.
    pub raw_payloads: usize,
}

/// A closed loan whose borrower was replaced by a pseudonym.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PurgedLoan {
    pub loan_id: i64,
    pub state: String,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub pseudonym: String,
}

/// A person removed (or kept) by the purge. The report names them once, for the operator who
/// runs it; afterwards the inventory does not.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PurgedPerson {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub left_at: DateTime<Utc>,
}

// The pseudonym is stable per person and authority, so the loans of one former borrower still
// read as one borrower, and cannot be turned back into the person once the person row is gone.
const PSEUDONYM: &str =
    "'P-' || upper(substr(md5(l.person_id::text || ':' || l.authority_id::text), 1, 10))";

/// Purges the persons of `authority` who left more than `retention_months` before `now`:
/// closed loans get a pseudonym instead of the person, then persons without open loans are
/// deleted with their links, memberships and device assignments. A person with an open loan
/// is kept (and listed): the school still has to get the device back. One transaction; a dry
/// run rolls it back.
///
/// The retention period is the authority's, so the purge needs a scope that covers the whole
/// authority; to any other scope the authority is not found.
pub async fn purge(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    now: DateTime<Utc>,
    authority: &str,
    retention_months: u32,
    dry_run: bool,
) -> Result<PurgeReport, CoreError> {
    let authority_id: Uuid = sqlx::query_scalar(&format!(
        "select authority_id from school_authority where slug = $1 and {}",
        crate::store::authority_wide("authority_id", 2, 3)
    ))
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CoreError::NotFound {
        what: "authority",
        key: authority.to_string(),
    })?;
    let purged_by = &actor.name();
    let cutoff = now
        .checked_sub_months(Months::new(retention_months))
        .ok_or_else(|| {
            CoreError::Invalid(format!(
                "a retention of {retention_months} months reaches before the calendar"
            ))
        })?;

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // Locked, so a directory run cannot bring one of them back while they are being removed.
    let purged: Vec<Identity> = sqlx::query_as(
        "select p.person_id, p.username, p.email, p.given_name, p.family_name, \
         p.directory_uuid, p.entra_object_id, \
         array(select k.external_id from person_link k where k.person_id = p.person_id \
               order by k.external_id) as link_ids \
         from person p where p.authority_id = $1 and p.left_at < $2 \
         and not exists (select 1 from loan l where l.person_id = p.person_id \
                         and l.state = 'active') \
         order by p.person_id for update of p",
    )
    .bind(authority_id)
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    let purged_ids: Vec<Uuid> = purged.iter().map(|person| person.person_id).collect();
    let kept = kept_strings(&mut tx, authority_id, &purged_ids).await?;
    let terms: Vec<Terms> = purged
        .iter()
        .map(|person| terms::terms(person, &kept))
        .collect();
    let loan_scrubs: Vec<Option<&str>> = terms.iter().map(|t| t.scrub.as_deref()).collect();
    // The free text of a loan (conditions, damage, notes) may name the borrower ("Lea dropped
    // it"); the loan is theirs, so their names go from it with the person.
    let scrub_text = |column: &str| {
        format!(
            "{column} = case when t.scrub is null then l.{column} \
             else regexp_replace(l.{column}, t.scrub, '{REMOVED}', 'gi') end"
        )
    };
    let loans: Vec<PurgedLoan> = sqlx::query_as(&format!(
        "update loan l set borrower_pseudonym = {PSEUDONYM}, person_id = null, \
         pseudonymised_at = $3, updated_at = $3, {}, {}, {}, {}, {} \
         from device d, unnest($2::uuid[], $4::text[]) as t(person_id, scrub) \
         where l.person_id = t.person_id and d.device_id = l.device_id \
         and l.authority_id = $1 and l.state <> 'active' \
         returning l.loan_id, l.state, d.asset_tag, d.serial_number, \
         l.borrower_pseudonym as pseudonym",
        scrub_text("condition_out"),
        scrub_text("condition_in"),
        scrub_text("damage_notes"),
        scrub_text("close_note"),
        scrub_text("school_override_reason"),
    ))
    .bind(authority_id)
    .bind(&purged_ids)
    .bind(now)
    .bind(&loan_scrubs)
    .fetch_all(&mut *tx)
    .await?;
    let mut loans = loans;
    loans.sort_by_key(|loan| loan.loan_id);
    let kept_with_open_loans: Vec<PurgedPerson> = sqlx::query_as(
        "select p.person_id, p.username, p.left_at from person p \
         where p.authority_id = $1 and p.left_at < $2 \
         and exists (select 1 from loan l where l.person_id = p.person_id and l.state = 'active') \
         order by p.left_at, p.username",
    )
    .bind(authority_id)
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    let scrubbed = scrub(&mut tx, authority_id, &purged_ids, &terms).await?;
    let persons: Vec<PurgedPerson> = sqlx::query_as(
        "delete from person p where p.person_id = any($1) \
         returning p.person_id, p.username, p.left_at",
    )
    .bind(&purged_ids)
    .fetch_all(&mut *tx)
    .await?;
    let record = PurgeRecord {
        authority_id,
        now,
        purged_by,
        retention_months,
        cutoff,
        loans: loans.len(),
        persons: persons.len(),
        dry_run,
    };
    if dry_run {
        tx.rollback().await?;
        // A dry run is recorded too, so "dry run first" can be shown afterwards.
        record.insert(&mut conn).await?;
    } else {
        record.insert(&mut tx).await?;
        // The removed persons' assignments went with them, and the hints that named them
        // are gone: rebuilt, no assignment names them, not even as a stray hint.
        refresh_assignments(&mut tx, authority_id, now).await?;
        tx.commit().await?;
    }
    let mut persons = persons;
    persons.sort_by(|a, b| (a.left_at, &a.username).cmp(&(b.left_at, &b.username)));
    Ok(PurgeReport {
        authority: authority.to_string(),
        dry_run,
        retention_months,
        cutoff,
        loans,
        persons,
        kept_with_open_loans,
        scrubbed,
    })
}

/// The logins and emails of the authority's persons who stay.
async fn kept_strings(
    conn: &mut PgConnection,
    authority_id: Uuid,
    purged: &[Uuid],
) -> Result<Kept, sqlx::Error> {
    let strings: Vec<String> = sqlx::query_scalar(
        "select v.s from person p, lateral (values (p.username), (p.email)) as v(s) \
         where p.authority_id = $1 and p.person_id <> all($2) and v.s is not null",
    )
    .bind(authority_id)
    .bind(purged)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Kept::new(strings))
}

/// Removes or scrubs every row outside the person tables that names a purged person: one
/// statement per table, whose `hit` step reads the authority's rows once, picks those with a
/// key of a purged person among their words, and gives each the scrub expressions of the
/// persons it names (`$2`/`$3`: person and key, `$4`/`$5`: person and expression).
async fn scrub(
    conn: &mut PgConnection,
    authority_id: Uuid,
    purged: &[Uuid],
    terms: &[Terms],
) -> Result<Scrubbed, sqlx::Error> {
    let mut key_owners = Vec::new();
    let mut keys = Vec::new();
    let mut scrub_owners = Vec::new();
    let mut scrubs = Vec::new();
    for (person, terms) in (0i32..).zip(terms) {
        if let Some(scrub) = &terms.scrub {
            key_owners.extend(std::iter::repeat_n(person, terms.keys.len()));
            keys.extend(terms.keys.iter().map(String::as_str));
            scrub_owners.push(person);
            scrubs.push(scrub.as_str());
        }
    }
    let bound = Bound {
        authority_id,
        key_owners: &key_owners,
        keys: &keys,
        scrub_owners: &scrub_owners,
        scrubs: &scrubs,
    };
    let replaced =
        |column: &str| format!("regexp_replace({column}, hit.pattern, '{REMOVED}', 'gi')");

    // An ambiguous directory record is not applied until a person picks a candidate: with a
    // candidate gone its question is moot (a next run raises the record again if it is still
    // reported and still ambiguous), and a record that was the purged person's is theirs.
    let ambiguous = crate::store::review::PERSON_AMBIGUOUS;
    let mut deleted: HashSet<String> = sqlx::query_scalar(&format!(
        "delete from review_item where authority_id = $1 and kind = '{ambiguous}' \
         and candidates && $2 returning review_item_id::text"
    ))
    .bind(authority_id)
    .bind(purged)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let review_text = "x.record::text || ' ' || x.summary || ' ' || coalesce(x.resolution, '')";
    deleted.extend(
        bound
            .rows(
                conn,
                &format!(
                    "{} delete from review_item x using hit where x.ctid = hit.rid \
                     returning x.review_item_id::text",
                    hits(
                        "review_item",
                        review_text,
                        &format!("t.kind = '{ambiguous}'")
                    )
                ),
            )
            .await?,
    );
    // Device items stay, scrubbed: a dismissed one keeps its record from being raised again.
    let items =
        bound
            .rows(
                conn,
                &format!(
                "{} update review_item x set record = {}::jsonb, summary = {}, resolution = {} \
                 from hit where x.ctid = hit.rid returning x.review_item_id::text",
                hits("review_item", review_text, &format!("t.kind <> '{ambiguous}'")),
                replaced("x.record::text"),
                replaced("x.summary"),
                replaced("x.resolution"),
            ),
            )
            .await?;
    // Warnings one by one: a run's list names many persons, and only those of the purged go.
    let mut runs: HashSet<String> = bound
        .rows(
            conn,
            &format!(
                "{TERMS}, {}, \
                 rebuilt as (select e.rid, jsonb_agg(case when hit.pattern is null then e.value \
                 else to_jsonb({}) end order by e.n) as warnings \
                 from elements e left join hit using (rid, n) \
                 where e.rid in (select rid from hit) group by e.rid) \
                 update sync_run x set warnings = rebuilt.warnings from rebuilt \
                 where x.ctid = rebuilt.rid returning x.sync_run_id::text",
                "elements as (select x.ctid as rid, w.value, w.n from sync_run x, \
                 jsonb_array_elements(x.warnings) with ordinality as w(value, n) \
                 where x.authority_id = $1 and jsonb_typeof(x.warnings) = 'array'), "
                    .to_string()
                    + &picked_hits("select * from elements", "x.value #>> '{}'", "x.rid, x.n"),
                replaced("e.value #>> '{}'"),
            ),
        )
        .await?
        .into_iter()
        .collect();
    runs.extend(
        bound
            .rows(
                conn,
                &format!(
                    "{} update sync_run x set error = {}, blocked_reason = {} \
                     from hit where x.ctid = hit.rid returning x.sync_run_id::text",
                    hits(
                        "sync_run",
                        "coalesce(x.error, '') || ' ' || coalesce(x.blocked_reason, '')",
                        "true"
                    ),
                    replaced("x.error"),
                    replaced("x.blocked_reason"),
                ),
            )
            .await?,
    );
    // A hint naming a purged person names nobody now: it goes, so the device is no longer
    // assigned to (or listed as a stray hint for) someone the inventory may not know.
    let links = bound
        .rows(
            conn,
            &format!(
                "{} update source_link x set normalized = {}::json, \
                 hint_username = case when x.hint_username ~* hit.pattern then null \
                 else x.hint_username end, \
                 hint_email = case when x.hint_email ~* hit.pattern then null \
                 else x.hint_email end \
                 from hit where x.ctid = hit.rid returning x.source_link_id::text",
                hits(
                    "source_link",
                    "x.normalized::text || ' ' || coalesce(x.hint_username, '') || ' ' || \
                     coalesce(x.hint_email, '')",
                    "true"
                ),
                replaced("x.normalized::text"),
            ),
        )
        .await?;
    // The raw payload is the device's forensic record: only the person's strings go.
    let payloads = bound
        .rows(
            conn,
            &format!(
                "{} update source_payload x set payload = {}::jsonb \
                 from hit where x.ctid = hit.rid returning x.external_id",
                hits("source_payload", "x.payload::text", "true"),
                replaced("x.payload::text"),
            ),
        )
        .await?;
    Ok(Scrubbed {
        review_items_deleted: deleted.len(),
        review_items_scrubbed: items.len(),
        sync_runs: runs.len(),
        device_links: links.len(),
        raw_payloads: payloads.len(),
    })
}

/// The purged persons' keys and scrub expressions, as the statements of `scrub` read them.
const TERMS: &str = "with keys(person, key) as (select * from unnest($2::int[], $3::text[])), \
     scrubs(person, pattern) as (select * from unnest($4::int[], $5::text[]))";

/// The scrub expression of a row: those of every purged person it names, as alternatives.
const PATTERNS: &str = "string_agg(distinct scrubs.pattern, '|') as pattern";

/// `with ... hit(rid, pattern)`: the rows of `table` of the authority that match `filter`
/// (`t`) and whose `text` (`x`) names a purged person by a key.
fn hits(table: &str, text: &str, filter: &str) -> String {
    format!(
        "{TERMS}, {}",
        picked_hits(
            &format!(
                "select t.ctid as rid, t.* from {table} t where t.authority_id = $1 and {filter}"
            ),
            text,
            "x.rid"
        )
    )
}

/// `picked` and `hit` over the rows of the query `rows` (as `x`): first the rows whose `text`
/// has a key among its words (`= any` of a bound array, which PostgreSQL hashes, so the words
/// of each row are read once whatever the number of keys), then, for those few only, which
/// persons' scrub expressions apply, per `group`.
fn picked_hits(rows: &str, text: &str, group: &str) -> String {
    let tokens = TOKENS.replace("{text}", text);
    format!(
        "picked as (select x.* from ({rows}) x \
         where exists (select 1 from {tokens} as k where k.key = any($3))), \
         hit as (select {group}, {PATTERNS} from picked x \
         cross join lateral {tokens} as k join keys using (key) join scrubs using (person) \
         group by {group})"
    )
}

/// The binds every statement of `scrub` shares.
struct Bound<'a> {
    authority_id: Uuid,
    key_owners: &'a [i32],
    keys: &'a [&'a str],
    scrub_owners: &'a [i32],
    scrubs: &'a [&'a str],
}

impl Bound<'_> {
    /// Runs one statement and returns the keys of the rows it changed, as text.
    async fn rows(&self, conn: &mut PgConnection, sql: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(sql)
            .bind(self.authority_id)
            .bind(self.key_owners)
            .bind(self.keys)
            .bind(self.scrub_owners)
            .bind(self.scrubs)
            .fetch_all(conn)
            .await
    }
}

/// One line of `privacy_purge`, the record of who purged what and when.
struct PurgeRecord<'a> {
    authority_id: Uuid,
    now: DateTime<Utc>,
    purged_by: &'a str,
    retention_months: u32,
    cutoff: DateTime<Utc>,
    loans: usize,
    persons: usize,
    dry_run: bool,
}

impl PurgeRecord<'_> {
    async fn insert(&self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into privacy_purge (authority_id, purged_at, purged_by, retention_months, \
             cutoff, loans_pseudonymised, persons_deleted, dry_run) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.authority_id)
        .bind(self.now)
        .bind(self.purged_by)
        .bind(self.retention_months as i32)
        .bind(self.cutoff)
        .bind(self.loans as i32)
        .bind(self.persons as i32)
        .bind(self.dry_run)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
