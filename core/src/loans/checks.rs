//! What every hand-out shares besides the loan rules (`rules.rs`): the device lock, who may
//! borrow a device and from which school, and how a loan and its events are written.
//! Everything here runs inside the caller's transaction, after the device row is locked.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::Actor;
use crate::error::CoreError;
use crate::model::LifecycleState;
use crate::store::device_row::device_label;
use crate::store::history::{insert_events, EventContext};
use crate::store::lifecycle::move_locked;

/// A device row locked for a loan step.
#[derive(Debug, Clone)]
pub(crate) struct LockedDevice {
    pub device_id: Uuid,
    pub authority_id: Uuid,
    pub authority_slug: String,
    pub label: String,
    pub lifecycle_state: String,
    pub school_id: Option<Uuid>,
    pub school_number: Option<String>,
}

/// How long a step waits for a device row another transaction holds, unless the session has a
/// `lock_timeout` of its own. A sync run holds the devices it changes until it commits, which
/// against a real MDM can take minutes; a counter should say so rather than seem to hang.
const DEVICE_LOCK_WAIT: &str = "10s";

/// Locks the device row until the transaction ends, so that two steps on one device (two
/// hand-outs at two counters, a return and a hand-out) happen one after the other.
pub(crate) async fn lock_device(
    conn: &mut PgConnection,
    device_id: Uuid,
) -> Result<LockedDevice, CoreError> {
    // Read without a lock first, so that a step that cannot get the lock can name the device;
    // the same statement bounds the wait for the rest of the transaction.
    let (asset_tag, serial_number, _): (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as(
            "select asset_tag, serial_number, \
             case when current_setting('lock_timeout') = '0' \
             then set_config('lock_timeout', $2, true) end \
             from device where device_id = $1",
        )
        .bind(device_id)
        .bind(DEVICE_LOCK_WAIT)
        .fetch_one(&mut *conn)
        .await?;
    #[derive(sqlx::FromRow)]
    struct Locked {
        authority_id: Uuid,
        slug: String,
        asset_tag: Option<String>,
        serial_number: Option<String>,
        lifecycle_state: String,
        school_id: Option<Uuid>,
        school_number: Option<String>,
    }
    let row: Locked = sqlx::query_as(
        "select d.authority_id, a.slug, d.asset_tag, d.serial_number, d.lifecycle_state, \
         d.school_id, s.school_number \
         from device d join school_authority a on a.authority_id = d.authority_id \
         left join school s on s.school_id = d.school_id \
         where d.device_id = $1 for update of d",
    )
    .bind(device_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(|error| {
        if is_lock_timeout(&error) {
            CoreError::Conflict(format!(
                "{} is being changed right now, by a running sync (see `bestand sync status`) \
                 or another step at another counter; nothing was done, try again when it has \
                 finished",
                device_label(asset_tag.as_deref(), serial_number.as_deref(), device_id)
            ))
        } else {
            CoreError::Database(error)
        }
    })?;
    Ok(LockedDevice {
        device_id,
        authority_id: row.authority_id,
        authority_slug: row.slug,
        label: device_label(
            row.asset_tag.as_deref(),
            row.serial_number.as_deref(),
            device_id,
        ),
        lifecycle_state: row.lifecycle_state,
        school_id: row.school_id,
        school_number: row.school_number,
    })
}

/// A borrower as the hand-out rules see them.
#[derive(Debug, Clone)]
pub(crate) struct Borrower {
    pub person_id: Uuid,
    pub authority_id: Uuid,
    /// Username, else email, else id: how refusals name the person (no full names in errors).
    pub label: String,
    pub left_at: Option<DateTime<Utc>>,
    /// (school, school number, role) of every membership.
    pub memberships: Vec<(Uuid, String, String)>,
}

pub(crate) async fn load_borrower(
    conn: &mut PgConnection,
    person_id: Uuid,
) -> Result<Borrower, sqlx::Error> {
    let (authority_id, label, left_at): (Uuid, String, Option<DateTime<Utc>>) = sqlx::query_as(
        "select authority_id, coalesce(username, email, person_id::text), left_at \
         from person where person_id = $1",
    )
    .bind(person_id)
    .fetch_one(&mut *conn)
    .await?;
    let memberships = sqlx::query_as(
        "select distinct m.school_id, s.school_number, m.role from person_membership m \
         join school s using (school_id) where m.person_id = $1 order by 2, 3",
    )
    .bind(person_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Borrower {
        person_id,
        authority_id,
        label,
        left_at,
        memberships,
    })
}

/// Where a loan will be lent from and whether the borrower belongs there.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub school_id: Option<Uuid>,
    pub school_number: Option<String>,
    pub member_at_hand_out: bool,
}

/// Checks that `borrower` may borrow `device`; returns the lending school or the refusal.
/// A pupil must belong to the device's school unless `override_reason` says why not.
pub(crate) fn place_borrower(
    device: &LockedDevice,
    borrower: &Borrower,
    override_reason: Option<&str>,
) -> Result<Placement, String> {
    if borrower.authority_id != device.authority_id {
        return Err(format!(
            "borrower {} belongs to another school authority than {}",
            borrower.label, device.label
        ));
    }
    if let Some(left) = borrower.left_at {
        return Err(format!(
            "borrower {} has left (no directory reports them since {})",
            borrower.label,
            left.format("%Y-%m-%d")
        ));
    }
    let (school_id, school_number) = match (device.school_id, &device.school_number) {
        (Some(id), number) => (id, number.clone()),
        (None, _) => {
            // A device without a school is lent by the borrower's school, if that is one.
            let mut schools: Vec<(Uuid, String)> = borrower
                .memberships
                .iter()
                .map(|(id, number, _)| (*id, number.clone()))
                .collect();
            schools.dedup();
            match schools.as_slice() {
                [(id, number)] => (*id, Some(number.clone())),
                _ => {
                    return Err(format!(
                        "{} belongs to no school and borrower {} is not at exactly one school; \
                         the device needs a school first",
                        device.label, borrower.label
                    ))
                }
            }
        }
    };
    let member = borrower
        .memberships
        .iter()
        .any(|(id, _, _)| *id == school_id);
    let pupil = borrower
        .memberships
        .iter()
        .any(|(_, _, role)| role == "student");
    let has_override = override_reason.is_some_and(|reason| !reason.trim().is_empty());
    if pupil && !member && !has_override {
        let theirs: Vec<&str> = borrower
            .memberships
            .iter()
            .filter(|(_, _, role)| role == "student")
            .map(|(_, number, _)| number.as_str())
            .collect();
        return Err(format!(
            "borrower {} is a pupil of school {}, but {} belongs to school {}; \
             give an override reason to lend it anyway",
            borrower.label,
            theirs.join(", "),
            device.label,
            school_number.as_deref().unwrap_or("?")
        ));
    }
    Ok(Placement {
        school_id: Some(school_id),
        school_number,
        member_at_hand_out: member,
    })
}

/// Everything a new loan row holds.
#[derive(Debug, Clone)]
pub(crate) struct NewLoan<'a> {
    pub device: &'a LockedDevice,
    pub borrower: &'a Borrower,
    pub placement: &'a Placement,
    pub due_on: NaiveDate,
    pub accessories: &'a [String],
    pub condition_out: Option<&'a str>,
    pub agreement_signed_on: Option<NaiveDate>,
    pub override_reason: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub actor: &'a Actor,
}

/// Inserts the loan, moves the device to `on_loan` (through the lifecycle rules) and writes
/// the `loan_issued` event, which carries that move; returns the loan id.
pub(crate) async fn insert_loan(
    conn: &mut PgConnection,
    loan: &NewLoan<'_>,
) -> Result<i64, CoreError> {
    let override_reason = loan
        .override_reason
        .map(str::trim)
        .filter(|reason| !reason.is_empty());
    let loan_id: i64 = sqlx::query_scalar(
        "insert into loan (authority_id, device_id, person_id, school_id, member_at_hand_out, \
         state, handed_out_at, handed_out_by, due_on, accessories, condition_out, \
         agreement_signed_on, school_override_reason, updated_at) \
         values ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $11, $12, $6) \
         returning loan_id",
    )
    .bind(loan.device.authority_id)
    .bind(loan.device.device_id)
    .bind(loan.borrower.person_id)
    .bind(loan.placement.school_id)
    .bind(loan.placement.member_at_hand_out)
    .bind(loan.now)
    .bind(loan.actor.name())
    .bind(loan.due_on)
    .bind(loan.accessories)
    .bind(loan.condition_out)
    .bind(loan.agreement_signed_on)
    .bind(override_reason)
    .fetch_one(&mut *conn)
    .await?;
    let mut changes = json!({
        "loan_id": { "new": loan_id },
        "state": { "new": "active" },
        "person_id": { "new": loan.borrower.person_id },
        "due_on": { "new": loan.due_on },
    });
    if !loan.accessories.is_empty() {
        changes["accessories"] = json!({ "new": loan.accessories });
    }
    if let Some(signed) = loan.agreement_signed_on {
        changes["agreement_signed_on"] = json!({ "new": signed });
    }
    if override_reason.is_some() {
        // Only the fact: the reason is free text and may name people.
        changes["school_override"] = json!({ "new": true });
    }
    changes["lifecycle_state"] = move_locked(
        conn,
        loan.device,
        LifecycleState::OnLoan,
        loan.now,
        loan.actor,
    )
    .await?;
    write_event(
        conn,
        loan.device,
        "loan_issued",
        changes,
        loan.now,
        loan.actor,
    )
    .await?;
    Ok(loan_id)
}

/// Appends one event of a person's act (a loan step, a state change, a repair) to the
/// device's history. `changes` holds ids, dates, states, accessory names and the reasons staff
/// give for a state change only: history cannot be purged, names must stay in `loan`.
pub(crate) async fn write_event(
    conn: &mut PgConnection,
    device: &LockedDevice,
    kind: &str,
    changes: Value,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    let actor = actor.name();
    let context = EventContext::user(device.authority_id, None, now, &actor);
    insert_events(
        conn,
        &context,
        &[(device.device_id, kind, changes.to_string())],
    )
    .await
}

/// Whether `error` is PostgreSQL giving up waiting for a lock (`lock_timeout`).
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("55P03"),
        _ => false,
    }
}
