//! The privacy purge: an authority's retention period, counted in months after a person left,
//! governs how long the inventory may name them. Past it, closed loans keep the device's story
//! under a pseudonym and the person is removed.
//!
//! Nothing here touches device history: loan events carry only loan and person ids, never
//! names, so the append-only history stays whole while the person disappears.

use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

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
pub async fn purge(
    pool: &PgPool,
    now: DateTime<Utc>,
    authority: &str,
    retention_months: u32,
    dry_run: bool,
    purged_by: &str,
) -> Result<PurgeReport, CoreError> {
    let authority_id: Uuid =
        sqlx::query_scalar("select authority_id from school_authority where slug = $1")
            .bind(authority)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                what: "authority",
                key: authority.to_string(),
            })?;
    let cutoff = now
        .checked_sub_months(Months::new(retention_months))
        .ok_or_else(|| {
            CoreError::Invalid(format!(
                "a retention of {retention_months} months reaches before the calendar"
            ))
        })?;

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let loans: Vec<PurgedLoan> = sqlx::query_as(&format!(
        "update loan l set borrower_pseudonym = {PSEUDONYM}, person_id = null, \
         pseudonymised_at = $3, updated_at = $3 \
         from person p, device d \
         where p.person_id = l.person_id and d.device_id = l.device_id \
         and l.authority_id = $1 and l.state <> 'active' \
         and p.left_at is not null and p.left_at < $2 \
         and not exists (select 1 from loan open where open.person_id = p.person_id \
                         and open.state = 'active') \
         returning l.loan_id, l.state, d.asset_tag, d.serial_number, \
         l.borrower_pseudonym as pseudonym"
    ))
    .bind(authority_id)
    .bind(cutoff)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
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
    let persons: Vec<PurgedPerson> = sqlx::query_as(
        "delete from person p where p.authority_id = $1 and p.left_at < $2 \
         and not exists (select 1 from loan l where l.person_id = p.person_id) \
         returning p.person_id, p.username, p.left_at",
    )
    .bind(authority_id)
    .bind(cutoff)
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
        // Devices of removed persons keep their MDM user hints, now resolving to nobody.
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
    })
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
