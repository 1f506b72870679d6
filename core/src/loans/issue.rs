//! One hand-out across the counter: checks the device and the borrower, picks the due date,
//! writes the loan and its event in one transaction.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{load_borrower, lock_device, place_borrower, NewLoan};
use crate::loans::policy::LoanPolicy;
use crate::loans::queries::{get_loan, LoanView};
use crate::loans::rules::{cannot_lend, due_date_refusal, insert_active_loan, lendable_refusal};
use crate::loans::scoped::{resolve_device, resolve_person};

/// What the person at the counter says about a hand-out.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    /// Device id, asset tag or serial number.
    pub device: String,
    /// Person id, username or email.
    pub borrower: String,
    /// Default: the end of the lending school's current school year.
    pub due_on: Option<NaiveDate>,
    /// Accessory names from the configured list (any case).
    pub accessories: Vec<String>,
    pub condition: Option<String>,
    pub agreement_signed_on: Option<NaiveDate>,
    /// Why a pupil may borrow a device of another school; without it that is refused.
    pub school_override_reason: Option<String>,
}

/// Hands a device out; the refusal names the device and the reason. Device and borrower must
/// be inside `scope`.
pub async fn issue_loan(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    request: &IssueRequest,
    actor: &Actor,
) -> Result<LoanView, CoreError> {
    let device_id = resolve_device(pool, scope, &request.device).await?;
    let person_id = resolve_borrower(pool, scope, device_id, &request.borrower).await?;
    let now = clock.now();
    let today = crate::clock::school_date(now);
    let accessories = policy.accessories_of(&request.accessories)?;
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    let refuse = |reason: String| CoreError::Conflict(cannot_lend(&device, &reason));
    if let Some(reason) = lendable_refusal(&mut tx, &device).await? {
        return Err(refuse(reason));
    }
    let borrower = load_borrower(&mut tx, person_id).await?;
    let placement = place_borrower(
        &device,
        &borrower,
        request.school_override_reason.as_deref(),
    )
    .map_err(refuse)?;
    let due_on = request.due_on.unwrap_or_else(|| {
        policy.default_due(
            &device.authority_slug,
            placement.school_number.as_deref(),
            today,
        )
    });
    if let Some(reason) = due_date_refusal(due_on, today) {
        return Err(CoreError::Invalid(cannot_lend(&device, &reason)));
    }
    let new_loan = NewLoan {
        device: &device,
        borrower: &borrower,
        placement: &placement,
        due_on,
        accessories: &accessories,
        condition_out: request.condition.as_deref(),
        agreement_signed_on: request.agreement_signed_on,
        override_reason: request.school_override_reason.as_deref(),
        now,
        actor,
    };
    match insert_active_loan(&mut tx, &new_loan).await? {
        Ok(loan_id) => {
            tx.commit().await?;
            get_loan(pool, scope, loan_id).await
        }
        Err(reason) => {
            tx.rollback().await?;
            Err(refuse(reason))
        }
    }
}

/// The borrower as typed, looked up within `scope` and the device's authority; a person of
/// another authority (inside the scope) gets a refusal that says so rather than "not found".
pub(crate) async fn resolve_borrower(
    pool: &PgPool,
    scope: &Scope,
    device_id: Uuid,
    key: &str,
) -> Result<Uuid, CoreError> {
    let authority_id: Uuid =
        sqlx::query_scalar("select authority_id from device where device_id = $1")
            .bind(device_id)
            .fetch_one(pool)
            .await?;
    match resolve_person(pool, scope, Some(authority_id), key).await {
        Err(CoreError::NotFound { .. }) if resolve_person(pool, scope, None, key).await.is_ok() => {
            Err(CoreError::Conflict(format!(
                "borrower {} belongs to another school authority than the device",
                key.trim()
            )))
        }
        other => other,
    }
}
