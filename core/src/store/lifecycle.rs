//! The one way a device's lifecycle state changes: checked against the allowed moves of
//! `lifecycle_transition` under the device's lock, recorded as the actor's decision, with one
//! history event carrying the reason. Loans, repairs and `bestand devices state` all move
//! devices through here; the database trigger refuses any other move, and its refusal reads
//! the same as ours. docs/lifecycle.md explains the states for people.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::loans::checks::{lock_device, write_event, LockedDevice};
use crate::model::{DisposalMethod, LifecycleState};
use crate::store::devices::resolve_device;
use crate::store::non_blank;

/// The kind of the history event of a state change.
pub const LIFECYCLE_CHANGED: &str = "lifecycle_changed";

/// One allowed move between two states, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Transition {
    pub from_state: String,
    pub to_state: String,
    pub meaning: String,
}

/// How a device left the authority for good; required for a move to `disposed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposal {
    pub method: DisposalMethod,
    /// The recycler, buyer or receiving organisation (never a private person's name).
    pub recipient: Option<String>,
    pub certificate_number: Option<String>,
    pub data_wiped: bool,
    pub disposed_on: NaiveDate,
}

/// A device's disposal record as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DisposalView {
    pub disposed_on: NaiveDate,
    pub method: String,
    pub recipient: Option<String>,
    pub certificate_number: Option<String>,
    pub data_wiped: bool,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// What a person asks for: the new state, why, and for `disposed` the disposal record.
#[derive(Debug, Clone)]
pub struct StateRequest {
    pub to: LifecycleState,
    pub reason: String,
    pub disposal: Option<Disposal>,
}

/// A state change that happened.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    pub device_id: Uuid,
    pub device: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
}

/// Every allowed move, ordered by the state it starts from. The table belongs to no one, so
/// this takes no scope (like `store::migrate`).
pub async fn transitions(pool: &PgPool) -> Result<Vec<Transition>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select from_state, to_state, meaning from lifecycle_transition order by {}, {}",
        state_order("from_state"),
        state_order("to_state")
    ))
    .fetch_all(pool)
    .await?)
}

/// SQL ordering `column` by the states' order of life (ordered first, stolen last).
fn state_order(column: &str) -> String {
    let states: Vec<String> = LifecycleState::ALL
        .iter()
        .map(|state| format!("'{}'", state.as_str()))
        .collect();
    format!("array_position(array[{}], {column})", states.join(", "))
}

/// Moves the device `key` (id, asset tag or serial) inside `scope` to `request.to`, as
/// `actor`, at `at`. Refused when the move is not allowed (the message names the device, both
/// states and where it could go instead), without a reason, for a device on an active loan
/// (loans move those), and for `disposed` without a disposal record.
pub async fn change_state(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    key: &str,
    request: &StateRequest,
    at: DateTime<Utc>,
) -> Result<StateChange, CoreError> {
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(CoreError::Invalid(format!(
            "a change of lifecycle state needs a reason (device {})",
            key.trim()
        )));
    }
    if request.to == LifecycleState::OnLoan {
        return Err(CoreError::Invalid(format!(
            "{} goes on loan with `bestand loans issue`, which records the borrower",
            key.trim()
        )));
    }
    match (&request.disposal, request.to) {
        (None, LifecycleState::Disposed) => {
            return Err(CoreError::Invalid(format!(
                "disposing of {} needs a disposal record: method, data wiped yes or no, and \
                 the date (recipient and certificate number if there are any)",
                key.trim()
            )))
        }
        (Some(_), to) if to != LifecycleState::Disposed => {
            return Err(CoreError::Invalid(format!(
                "a disposal record belongs to a move to disposed, not to {to}"
            )))
        }
        _ => {}
    }
    let device_id = resolve_device(pool, scope, key).await?;
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    if device.lifecycle_state == LifecycleState::OnLoan.as_str() {
        let loan: Option<i64> = sqlx::query_scalar(
            "select loan_id from loan where device_id = $1 and state = 'active'",
        )
        .bind(device_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(loan_id) = loan {
            return Err(CoreError::Conflict(format!(
                "{} is on loan (loan {loan_id}); take it back, or mark it lost or stolen, with \
                 `bestand loans`",
                device.label
            )));
        }
    }
    if let Some(disposal) = &request.disposal {
        insert_disposal(&mut tx, &device, disposal, actor, at).await?;
    }
    let change = move_locked(&mut tx, &device, request.to, at, actor).await?;
    let mut changes = json!({ "lifecycle_state": change, "reason": reason });
    if let Some(disposal) = &request.disposal {
        // The facts only: the recipient and certificate stay in `device_disposal`.
        changes["disposal"] = json!({ "new": {
            "method": disposal.method.as_str(),
            "data_wiped": disposal.data_wiped,
        }});
    }
    write_event(&mut tx, &device, LIFECYCLE_CHANGED, changes, at, actor).await?;
    tx.commit().await?;
    Ok(StateChange {
        device_id,
        device: device.label,
        from_state: device.lifecycle_state,
        to_state: request.to.as_str().to_string(),
        reason: reason.to_string(),
    })
}

/// The disposal record of the device `device_id`, if it has one; the caller has checked the
/// scope (the device detail).
pub(crate) async fn disposal_of(
    pool: &PgPool,
    device_id: Uuid,
) -> Result<Option<DisposalView>, CoreError> {
    Ok(sqlx::query_as(
        "select disposed_on, method, recipient, certificate_number, data_wiped, recorded_by, \
         recorded_at from device_disposal where device_id = $1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await?)
}

async fn insert_disposal(
    conn: &mut PgConnection,
    device: &LockedDevice,
    disposal: &Disposal,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<(), CoreError> {
    sqlx::query(
        "insert into device_disposal (device_id, authority_id, disposed_on, method, recipient, \
         certificate_number, data_wiped, recorded_by, recorded_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(device.device_id)
    .bind(device.authority_id)
    .bind(disposal.disposed_on)
    .bind(disposal.method.as_str())
    .bind(non_blank(&disposal.recipient))
    .bind(non_blank(&disposal.certificate_number))
    .bind(disposal.data_wiped)
    .bind(actor.name())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The states a device in `from` may move to, in the states' order of life.
async fn next_states(conn: &mut PgConnection, from: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "select to_state from lifecycle_transition where from_state = $1 order by {}",
        state_order("to_state")
    ))
    .bind(from)
    .fetch_all(&mut *conn)
    .await
}

/// How every refusal of a move reads, from our check or from the trigger.
fn refusal(device: &LockedDevice, to: LifecycleState, allowed: &[String]) -> CoreError {
    let from = &device.lifecycle_state;
    let onwards = if allowed.is_empty() {
        format!("{from} is final")
    } else {
        format!("from {from} it can go to {}", allowed.join(", "))
    };
    CoreError::Conflict(format!(
        "{} cannot go from {from} to {to}: that move is not allowed; {onwards}",
        device.label
    ))
}

/// Moves the locked `device` to `to` as `actor`'s decision (field origin `user:<actor>`) and
/// returns the change as history records it (`{"old": .., "new": ..}`). Writes no event: the
/// caller's event carries the change with its reason (a loan step, a repair, a state change).
pub(crate) async fn move_locked(
    conn: &mut PgConnection,
    device: &LockedDevice,
    to: LifecycleState,
    at: DateTime<Utc>,
    actor: &Actor,
) -> Result<Value, CoreError> {
    if device.lifecycle_state == to.as_str() {
        return Err(CoreError::Conflict(format!(
            "{} is already {to}",
            device.label
        )));
    }
    let allowed = next_states(conn, &device.lifecycle_state).await?;
    if !allowed.iter().any(|state| state == to.as_str()) {
        return Err(refusal(device, to, &allowed));
    }
    let updated = sqlx::query(
        "update device set lifecycle_state = $2, updated_at = $3, \
         field_origin = (field_origin::jsonb || jsonb_build_object('lifecycle_state', 'user:' || $4::text))::json \
         where device_id = $1",
    )
    .bind(device.device_id)
    .bind(to.as_str())
    .bind(at)
    .bind(actor.name())
    .execute(&mut *conn)
    .await;
    match updated {
        Ok(_) => Ok(json!({ "old": device.lifecycle_state, "new": to.as_str() })),
        Err(error) => Err(match trigger_refusal(&error) {
            Some(TriggerRefusal::Transition) => refusal(device, to, &allowed),
            Some(TriggerRefusal::NoDisposal) => CoreError::Conflict(format!(
                "{} cannot be disposed of without a disposal record (method, data wiped, date)",
                device.label
            )),
            None => CoreError::Database(error),
        }),
    }
}

/// Which check of the trigger `device_lifecycle_transition` refused an update, if it did.
enum TriggerRefusal {
    Transition,
    NoDisposal,
}

fn trigger_refusal(error: &sqlx::Error) -> Option<TriggerRefusal> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if db.code().as_deref() != Some("23514") {
        return None;
    }
    match db.constraint() {
        Some("lifecycle_transition") => Some(TriggerRefusal::Transition),
        Some("device_disposal") => Some(TriggerRefusal::NoDisposal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_by_their_place_in_life() {
        let order = state_order("s");
        assert!(order.starts_with("array_position(array['ordered', 'delivered', 'in_stock'"));
        assert!(order.ends_with("], s)"));
    }
}
