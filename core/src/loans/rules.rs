//! The loan rules, one function each, so that single, bulk, scanned and class-set hand-outs
//! and the extension of a loan refuse with the same words: the due date, the lendable device,
//! and at most one active loan per device (also when the database index is what refuses).

use chrono::NaiveDate;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::error::CoreError;
use crate::loans::checks::{insert_loan, LockedDevice, NewLoan};
use crate::model::LifecycleState;

/// The index that allows one active loan per device; its violation is a refusal, not a failure.
const ONE_ACTIVE_INDEX: &str = "loan_one_active_per_device";

/// The lifecycle states a device can be lent in. The class-set pool query binds these, so
/// the rule has no second spelling in SQL.
const LENDABLE_STATES: [LifecycleState; 2] = [LifecycleState::InStock, LifecycleState::InUse];

/// How every hand-out words a refusal of `device`: "cannot lend INV-0001: <reason>".
pub(crate) fn cannot_lend(device: &LockedDevice, reason: &str) -> String {
    format!("cannot lend {}: {reason}", device.label)
}

/// Rule "due date": a loan cannot be due before the school day `today` (hand-out or
/// extension). The refusal names the date; callers say what was refused.
pub(crate) fn due_date_refusal(due_on: NaiveDate, today: NaiveDate) -> Option<String> {
    (due_on < today).then(|| format!("due date {due_on} is in the past"))
}

/// `LENDABLE_STATES` as the text `device.lifecycle_state` holds, for binding as `text[]`.
pub(crate) fn lendable_states() -> Vec<&'static str> {
    LENDABLE_STATES.iter().map(|state| state.as_str()).collect()
}

/// Rule "lendable device", part one: why a device in lifecycle `state` cannot be lent.
fn lifecycle_refusal(state: &str) -> Option<String> {
    if LENDABLE_STATES
        .iter()
        .any(|lendable| lendable.as_str() == state)
    {
        return None;
    }
    let why = match state.parse::<LifecycleState>() {
        Ok(LifecycleState::Ordered) => "it is ordered but not delivered yet",
        Ok(LifecycleState::Delivered) => "it is delivered but not inventoried yet",
        Ok(LifecycleState::OnLoan) => "it is on loan",
        Ok(LifecycleState::Stolen) => "it is stolen",
        Ok(LifecycleState::InRepair) => "it is in repair",
        Ok(LifecycleState::Retired) => "it is retired",
        Ok(LifecycleState::Disposed) => "it is disposed of",
        Ok(LifecycleState::Lost) => "it is lost",
        Ok(LifecycleState::ToCheck) => {
            "it came back damaged or incomplete and is waiting to be checked (to_check)"
        }
        _ => "its lifecycle state does not allow lending",
    };
    Some(format!("{why} (lifecycle state {state})"))
}

/// Rule "lendable device", part two: a device no source reports any more is missing.
async fn missing_refusal(
    conn: &mut PgConnection,
    device_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let missing: Option<String> = sqlx::query_scalar(
        "select string_agg(src.name || ' since ' || to_char(l.missing_since, 'YYYY-MM-DD'), ', ' \
         order by src.name) from source_link l join source src using (source_id) \
         where l.device_id = $1 and l.missing_since is not null and l.ended_at is null \
         and not exists (select 1 from source_link live where live.device_id = l.device_id \
                         and live.missing_since is null and live.ended_at is null)",
    )
    .bind(device_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(missing.map(|missing| format!("it is missing: no source reports it any more ({missing})")))
}

/// Rule "one active loan", as read under the device lock: the refusal for a device that
/// already has an active loan.
async fn active_loan_refusal(
    conn: &mut PgConnection,
    device_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let active: Option<(i64, NaiveDate)> = sqlx::query_as(
        "select loan_id, due_on from loan where device_id = $1 and state = 'active'",
    )
    .bind(device_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(active
        .map(|(loan_id, due_on)| format!("it is already on loan (loan {loan_id}, due {due_on})")))
}

/// Why `device` (locked) cannot be lent now, or `None` when it can: an active loan, its
/// lifecycle state, or no source reporting it. Every hand-out asks this after taking the lock.
pub(crate) async fn lendable_refusal(
    conn: &mut PgConnection,
    device: &LockedDevice,
) -> Result<Option<String>, sqlx::Error> {
    // A device on an active loan is `on_loan`: the loan, with its number and due date, is
    // the better answer than the state.
    if let Some(refusal) = active_loan_refusal(conn, device.device_id).await? {
        return Ok(Some(refusal));
    }
    if let Some(refusal) = lifecycle_refusal(&device.lifecycle_state) {
        return Ok(Some(refusal));
    }
    missing_refusal(conn, device.device_id).await
}

/// Rule "one active loan", at the write: inserts the loan and its event inside a savepoint.
/// When the index refuses a second active loan (a writer that skipped the device lock), the
/// savepoint is rolled back, the caller's transaction stays usable, and the answer is the
/// same refusal `lendable_refusal` gives.
pub(crate) async fn insert_active_loan(
    conn: &mut PgConnection,
    loan: &NewLoan<'_>,
) -> Result<Result<i64, String>, CoreError> {
    let mut savepoint = conn.begin().await?;
    match insert_loan(&mut savepoint, loan).await {
        Ok(loan_id) => {
            savepoint.commit().await?;
            Ok(Ok(loan_id))
        }
        Err(CoreError::Database(error)) if is_second_active_loan(&error) => {
            savepoint.rollback().await?;
            let refusal = active_loan_refusal(conn, loan.device.device_id)
                .await?
                // The other loan was written in the refused statement itself and went with it.
                .unwrap_or_else(|| "it is already on loan".to_string());
            Ok(Err(refusal))
        }
        Err(error) => Err(error),
    }
}

/// Whether `error` is the one-active-loan index refusing a second active loan.
fn is_second_active_loan(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(ONE_ACTIVE_INDEX)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_due_date_before_today_is_refused_and_today_is_not() {
        let today = day("2026-11-23");
        assert_eq!(
            due_date_refusal(day("2026-11-22"), today).as_deref(),
            Some("due date 2026-11-22 is in the past")
        );
        assert_eq!(due_date_refusal(today, today), None);
    }

    #[test]
    fn only_devices_in_stock_or_in_use_are_lendable() {
        assert_eq!(lifecycle_refusal("in_stock"), None);
        assert_eq!(lifecycle_refusal("in_use"), None);
        assert_eq!(
            lifecycle_refusal("retired").as_deref(),
            Some("it is retired (lifecycle state retired)")
        );
        assert_eq!(lendable_states(), vec!["in_stock", "in_use"]);
    }
}
