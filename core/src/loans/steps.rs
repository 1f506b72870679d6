//! What happens to a loan after the hand-out: return, extension, loss or theft, cancellation
//! of a mistaken entry, and the signed agreement arriving. Each step locks the device row,
//! changes the loan and appends one device event, in one transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{lock_device, write_event, LockedDevice};
use crate::loans::queries::{get_loan, LoanView};
use crate::loans::rules::due_date_refusal;
use crate::loans::scoped::{push_scope, resolve_device};
use crate::model::{LifecycleState, LoanState};
use crate::store::lifecycle::move_locked;

/// Resolves what a person typed to one loan: `loan:17` or `#17` is a loan id; a device id,
/// asset tag or serial means that device's active loan; bare digits are a loan id unless they
/// also name a device (then the caller must say which). Loans and devices outside `scope` are
/// unknown.
pub async fn resolve_loan(pool: &PgPool, scope: &Scope, key: &str) -> Result<i64, CoreError> {
    let key = key.trim();
    let explicit = key
        .strip_prefix("loan:")
        .or_else(|| key.strip_prefix('#'))
        .map(str::trim);
    if let Some(id) = explicit {
        let loan_id: i64 = id
            .parse()
            .map_err(|_| CoreError::Invalid(format!("\"{key}\" is not a loan id")))?;
        return loan_exists(pool, scope, loan_id, key).await;
    }
    let device = match resolve_device(pool, scope, key).await {
        Ok(device_id) => Some(device_id),
        Err(CoreError::NotFound { .. }) => None,
        Err(other) => return Err(other),
    };
    let as_loan_id = key.parse::<i64>().ok();
    match (device, as_loan_id) {
        (Some(_), Some(loan_id)) if loan_exists(pool, scope, loan_id, key).await.is_ok() => {
            Err(CoreError::Conflict(format!(
                "'{key}' is both a device and loan {loan_id}; write loan:{loan_id} for the loan \
                 or the device's serial number for the device"
            )))
        }
        (Some(device_id), _) => active_loan_id(pool, scope, device_id)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                what: "active loan of device",
                key: key.to_string(),
            }),
        (None, Some(loan_id)) => loan_exists(pool, scope, loan_id, key).await,
        (None, None) => Err(CoreError::NotFound {
            what: "loan (by loan id, device id, asset tag or serial number)",
            key: key.to_string(),
        }),
    }
}

/// The active loan of the device `key` names (id, asset tag or serial): what a scanner reads.
pub async fn active_loan_of_device(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<i64, CoreError> {
    let device_id = resolve_device(pool, scope, key).await?;
    active_loan_id(pool, scope, device_id)
        .await?
        .ok_or_else(|| CoreError::Conflict(format!("{} is not on loan", key.trim())))
}

/// The device's active loan, if its lending school is inside `scope`.
async fn active_loan_id(
    pool: &PgPool,
    scope: &Scope,
    device_id: Uuid,
) -> Result<Option<i64>, CoreError> {
    let mut query = QueryBuilder::new("select l.loan_id from loan l where l.state = 'active'");
    query.push(" and l.device_id = ").push_bind(device_id);
    push_scope(&mut query, scope, "l");
    Ok(query.build_query_scalar().fetch_optional(pool).await?)
}

async fn loan_exists(
    pool: &PgPool,
    scope: &Scope,
    loan_id: i64,
    key: &str,
) -> Result<i64, CoreError> {
    loan_device(&mut *pool.acquire().await?, scope, loan_id)
        .await?
        .map(|_| loan_id)
        .ok_or_else(|| CoreError::NotFound {
            what: "loan",
            key: key.to_string(),
        })
}

/// The device of loan `loan_id`, if the loan is inside `scope`.
async fn loan_device(
    conn: &mut PgConnection,
    scope: &Scope,
    loan_id: i64,
) -> Result<Option<Uuid>, CoreError> {
    let mut query = QueryBuilder::new("select l.device_id from loan l where l.loan_id = ");
    query.push_bind(loan_id);
    push_scope(&mut query, scope, "l");
    Ok(query.build_query_scalar().fetch_optional(conn).await?)
}

/// The loan row as a step needs it, read after the device is locked.
struct LockedLoan {
    loan_id: i64,
    state: String,
    due_on: NaiveDate,
    accessories: Vec<String>,
    agreement_signed_on: Option<NaiveDate>,
    device: LockedDevice,
}

/// Locks the loan's device (so steps and hand-outs on it queue) and reads the loan.
async fn lock_loan(
    conn: &mut PgConnection,
    scope: &Scope,
    loan_id: i64,
) -> Result<LockedLoan, CoreError> {
    let device_id = loan_device(conn, scope, loan_id)
        .await?
        .ok_or(CoreError::NotFound {
            what: "loan",
            key: loan_id.to_string(),
        })?;
    let device = lock_device(conn, device_id).await?;
    let (state, due_on, accessories, agreement_signed_on): (
        String,
        NaiveDate,
        Vec<String>,
        Option<NaiveDate>,
    ) = sqlx::query_as(
        "select state, due_on, accessories, agreement_signed_on from loan where loan_id = $1",
    )
    .bind(loan_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(LockedLoan {
        loan_id,
        state,
        due_on,
        accessories,
        agreement_signed_on,
        device,
    })
}

impl LockedLoan {
    /// Refuses a step that needs one of `allowed` states.
    fn require(&self, allowed: &[LoanState], step: &str) -> Result<(), CoreError> {
        if allowed.iter().any(|state| state.as_str() == self.state) {
            return Ok(());
        }
        Err(CoreError::Conflict(format!(
            "cannot {step} loan {} of {}: it is {}",
            self.loan_id, self.device.label, self.state
        )))
    }
}

/// What comes back with a device.
#[derive(Debug, Clone, Default)]
pub struct ReturnRequest {
    pub condition: Option<String>,
    /// Accessories handed out with the loan that did not come back (any case).
    pub missing: Vec<String>,
    /// Damage seen at the return; any text sends the device to `to_check`.
    pub damage: Option<String>,
}

/// A finished return.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReturnOutcome {
    pub loan: LoanView,
    /// The device came back damaged or incomplete and is `to_check` instead of lendable.
    pub to_check: bool,
}

/// Takes a device back. Damage or missing accessories leave the device `to_check`; otherwise
/// it goes from `on_loan` back to `in_use` and can be lent again at once.
pub async fn return_loan(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    loan_id: i64,
    request: &ReturnRequest,
    actor: &Actor,
) -> Result<ReturnOutcome, CoreError> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let loan = lock_loan(&mut tx, scope, loan_id).await?;
    loan.require(&[LoanState::Active], "return")?;
    let mut missing: Vec<String> = Vec::new();
    for name in request
        .missing
        .iter()
        .filter(|name| !name.trim().is_empty())
    {
        let wanted = name.trim().to_lowercase();
        let Some(known) = loan.accessories.iter().find(|a| a.to_lowercase() == wanted) else {
            return Err(CoreError::Invalid(format!(
                "\"{}\" was not handed out with loan {} of {} (handed out: {})",
                name.trim(),
                loan.loan_id,
                loan.device.label,
                if loan.accessories.is_empty() {
                    "no accessories".to_string()
                } else {
                    loan.accessories.join(", ")
                }
            )));
        };
        if !missing.contains(known) {
            missing.push(known.clone());
        }
    }
    let returned: Vec<String> = loan
        .accessories
        .iter()
        .filter(|a| !missing.contains(a))
        .cloned()
        .collect();
    let damage = request
        .damage
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    sqlx::query(
        "update loan set state = 'returned', returned_at = $2, returned_by = $3, closed_at = $2, \
         closed_by = $3, condition_in = $4, accessories_returned = $5, accessories_missing = $6, \
         damage_notes = $7, updated_at = $2 where loan_id = $1",
    )
    .bind(loan.loan_id)
    .bind(now)
    .bind(actor.name())
    .bind(request.condition.as_deref())
    .bind(&returned)
    .bind(&missing)
    .bind(damage)
    .execute(&mut *tx)
    .await?;
    let to_check = damage.is_some() || !missing.is_empty();
    let mut changes = json!({
        "loan_id": { "new": loan.loan_id },
        "state": { "old": "active", "new": "returned" },
    });
    if !missing.is_empty() {
        changes["accessories_missing"] = json!({ "new": missing });
    }
    if damage.is_some() {
        // Only the fact: the notes are free text and stay in the loan, which can be purged.
        changes["damaged"] = json!({ "new": true });
    }
    let back = if to_check {
        LifecycleState::ToCheck
    } else {
        LifecycleState::InUse
    };
    // A device lent before it had its own state stays as it is unless it needs checking.
    let on_loan = loan.device.lifecycle_state == LifecycleState::OnLoan.as_str();
    if on_loan || (to_check && loan.device.lifecycle_state != back.as_str()) {
        changes["lifecycle_state"] = move_locked(&mut tx, &loan.device, back, now, actor).await?;
    }
    write_event(&mut tx, &loan.device, "loan_returned", changes, now, actor).await?;
    tx.commit().await?;
    Ok(ReturnOutcome {
        loan: get_loan(pool, scope, loan_id).await?,
        to_check,
    })
}

/// Moves the due date of an active loan.
pub async fn extend_loan(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    loan_id: i64,
    due_on: NaiveDate,
    actor: &Actor,
) -> Result<LoanView, CoreError> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let loan = lock_loan(&mut tx, scope, loan_id).await?;
    loan.require(&[LoanState::Active], "extend")?;
    if let Some(reason) = due_date_refusal(due_on, crate::clock::school_date(now)) {
        return Err(CoreError::Invalid(format!(
            "cannot extend loan {} of {}: {reason}",
            loan.loan_id, loan.device.label
        )));
    }
    if due_on == loan.due_on {
        return Err(CoreError::Invalid(format!(
            "loan {} of {} is already due {due_on}",
            loan.loan_id, loan.device.label
        )));
    }
    sqlx::query("update loan set due_on = $2, updated_at = $3 where loan_id = $1")
        .bind(loan.loan_id)
        .bind(due_on)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let changes = json!({
        "loan_id": { "new": loan.loan_id },
        "due_on": { "old": loan.due_on, "new": due_on },
    });
    write_event(&mut tx, &loan.device, "loan_extended", changes, now, actor).await?;
    tx.commit().await?;
    get_loan(pool, scope, loan_id).await
}

/// How a device was lost to its borrower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    Lost,
    Stolen,
}

/// Closes an active loan as lost or stolen on `on`; the device becomes `lost` or `stolen`.
// Scope, clock and actor come with every step; the loss itself is three plain values.
#[allow(clippy::too_many_arguments)]
pub async fn mark_lost(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    loan_id: i64,
    loss: Loss,
    on: NaiveDate,
    note: &str,
    actor: &Actor,
) -> Result<LoanView, CoreError> {
    let now = clock.now();
    let (state, kind, device_state) = match loss {
        Loss::Lost => (LoanState::Lost, "loan_lost", LifecycleState::Lost),
        Loss::Stolen => (LoanState::Stolen, "loan_stolen", LifecycleState::Stolen),
    };
    let mut tx = pool.begin().await?;
    let loan = lock_loan(&mut tx, scope, loan_id).await?;
    loan.require(&[LoanState::Active], &format!("mark as {state}"))?;
    if on > crate::clock::school_date(now) {
        return Err(CoreError::Invalid(format!(
            "loan {} of {}: the day of the loss ({on}) is in the future",
            loan.loan_id, loan.device.label
        )));
    }
    close(&mut tx, loan.loan_id, state, now, actor, Some(on), note).await?;
    let mut changes = json!({
        "loan_id": { "new": loan.loan_id },
        "state": { "old": "active", "new": state.as_str() },
        "lost_on": { "new": on },
    });
    if loan.device.lifecycle_state != device_state.as_str() {
        changes["lifecycle_state"] =
            move_locked(&mut tx, &loan.device, device_state, now, actor).await?;
    }
    write_event(&mut tx, &loan.device, kind, changes, now, actor).await?;
    tx.commit().await?;
    get_loan(pool, scope, loan_id).await
}

/// Marks an active loan that was entered by mistake as cancelled; it stays in the history and
/// the device is free again, back in the state it had before the hand-out.
pub async fn cancel_loan(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    loan_id: i64,
    reason: &str,
    actor: &Actor,
) -> Result<LoanView, CoreError> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let loan = lock_loan(&mut tx, scope, loan_id).await?;
    loan.require(&[LoanState::Active], "cancel")?;
    if reason.trim().is_empty() {
        return Err(CoreError::Invalid(
            "a cancellation needs a reason".to_string(),
        ));
    }
    close(
        &mut tx,
        loan.loan_id,
        LoanState::Cancelled,
        now,
        actor,
        None,
        reason,
    )
    .await?;
    let mut changes = json!({
        "loan_id": { "new": loan.loan_id },
        "state": { "old": "active", "new": "cancelled" },
    });
    if loan.device.lifecycle_state == LifecycleState::OnLoan.as_str() {
        let before = state_before_loan(&mut tx, &loan).await?;
        changes["lifecycle_state"] = move_locked(&mut tx, &loan.device, before, now, actor).await?;
    }
    write_event(&mut tx, &loan.device, "loan_cancelled", changes, now, actor).await?;
    tx.commit().await?;
    get_loan(pool, scope, loan_id).await
}

/// The state the device had before `loan` put it on loan, as the hand-out's event recorded
/// it; `in_use` for a loan from before devices went `on_loan`.
async fn state_before_loan(
    conn: &mut PgConnection,
    loan: &LockedLoan,
) -> Result<LifecycleState, CoreError> {
    let before: Option<String> = sqlx::query_scalar(
        "select changes->'lifecycle_state'->>'old' from device_event \
         where device_id = $1 and kind = 'loan_issued' \
         and (changes->'loan_id'->>'new')::bigint = $2 \
         order by device_event_id desc limit 1",
    )
    .bind(loan.device.device_id)
    .bind(loan.loan_id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    Ok(before
        .and_then(|state| state.parse().ok())
        .filter(|state| *state != LifecycleState::OnLoan)
        .unwrap_or(LifecycleState::InUse))
}

async fn close(
    conn: &mut PgConnection,
    loan_id: i64,
    state: LoanState,
    now: DateTime<Utc>,
    actor: &Actor,
    lost_on: Option<NaiveDate>,
    note: &str,
) -> Result<(), sqlx::Error> {
    let note = Some(note.trim()).filter(|note| !note.is_empty());
    sqlx::query(
        "update loan set state = $2, closed_at = $3, closed_by = $4, lost_on = $5, \
         close_note = $6, updated_at = $3 where loan_id = $1",
    )
    .bind(loan_id)
    .bind(state.as_str())
    .bind(now)
    .bind(actor.name())
    .bind(lost_on)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the day the signed loan agreement (Leihvertrag) was received.
pub async fn record_agreement(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    loan_id: i64,
    signed_on: NaiveDate,
    actor: &Actor,
) -> Result<LoanView, CoreError> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let loan = lock_loan(&mut tx, scope, loan_id).await?;
    loan.require(
        &[LoanState::Active, LoanState::Returned],
        "record the agreement of",
    )?;
    if signed_on > crate::clock::school_date(now) {
        return Err(CoreError::Invalid(format!(
            "loan {} of {}: the signing day ({signed_on}) is in the future",
            loan.loan_id, loan.device.label
        )));
    }
    sqlx::query("update loan set agreement_signed_on = $2, updated_at = $3 where loan_id = $1")
        .bind(loan.loan_id)
        .bind(signed_on)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let changes = json!({
        "loan_id": { "new": loan.loan_id },
        "agreement_signed_on": { "old": loan.agreement_signed_on, "new": signed_on },
    });
    write_event(
        &mut tx,
        &loan.device,
        "loan_agreement_signed",
        changes,
        now,
        actor,
    )
    .await?;
    tx.commit().await?;
    get_loan(pool, scope, loan_id).await
}

/// Ends the check of a device that came back damaged or incomplete: from `to_check` to
/// `state` (lendable again with `in_stock` or `in_use`, or `in_repair`, `retired`, ...).
pub async fn finish_check(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    device_key: &str,
    state: LifecycleState,
    actor: &Actor,
) -> Result<LifecycleState, CoreError> {
    let device_id = resolve_device(pool, scope, device_key).await?;
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    if device.lifecycle_state != LifecycleState::ToCheck.as_str() {
        return Err(CoreError::Conflict(format!(
            "{} is not waiting to be checked (lifecycle state {})",
            device.label, device.lifecycle_state
        )));
    }
    if state == LifecycleState::ToCheck {
        return Err(CoreError::Invalid(
            "a checked device needs another state than to_check".to_string(),
        ));
    }
    let changes = json!({
        "lifecycle_state": move_locked(&mut tx, &device, state, now, actor).await?,
    });
    write_event(&mut tx, &device, "check_finished", changes, now, actor).await?;
    tx.commit().await?;
    Ok(state)
}
