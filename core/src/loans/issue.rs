//! One hand-out across the counter: checks the device and the borrower, picks the due date,
//! writes the loan and its event in one transaction.

use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{
    self, already_on_loan, insert_loan, is_second_active_loan, lendable_refusal, load_borrower,
    lock_device, place_borrower, NewLoan,
};
use crate::loans::policy::LoanPolicy;
use crate::loans::queries::{get_loan, LoanView};
use crate::store::devices::resolve_device;
use crate::store::persons::resolve_person;

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

/// Hands a device out; the refusal names the device and the reason.
pub async fn issue_loan(
    pool: &PgPool,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    request: &IssueRequest,
    actor: &str,
) -> Result<LoanView, CoreError> {
    let device_id = resolve_device(pool, &crate::access::Scope::All, &request.device).await?;
    let person_id = resolve_borrower(pool, device_id, &request.borrower).await?;
    issue_resolved(pool, clock, policy, device_id, person_id, request, actor).await
}

/// The borrower as typed, looked up within the device's authority; a person of another
/// authority gets a refusal that says so rather than "not found".
pub(crate) async fn resolve_borrower(
    pool: &PgPool,
    device_id: Uuid,
    key: &str,
) -> Result<Uuid, CoreError> {
    let authority_id: Uuid =
        sqlx::query_scalar("select authority_id from device where device_id = $1")
            .bind(device_id)
            .fetch_one(pool)
            .await?;
    match resolve_person(pool, &crate::access::Scope::All, Some(authority_id), key).await {
        Err(CoreError::NotFound { .. })
            if resolve_person(pool, &crate::access::Scope::All, None, key)
                .await
                .is_ok() =>
        {
            Err(CoreError::Conflict(format!(
                "borrower {} belongs to another school authority than the device",
                key.trim()
            )))
        }
        other => other,
    }
}

/// `issue_loan` once device and borrower are known (the scan loop resolves them itself).
pub(crate) async fn issue_resolved(
    pool: &PgPool,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    device_id: Uuid,
    person_id: Uuid,
    request: &IssueRequest,
    actor: &str,
) -> Result<LoanView, CoreError> {
    let now = clock.now();
    let today = crate::clock::school_date(now);
    let accessories = policy.accessories_of(&request.accessories)?;
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    let refuse =
        |reason: String| CoreError::Conflict(format!("cannot lend {}: {reason}", device.label));
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
    if due_on < today {
        return Err(CoreError::Invalid(format!(
            "cannot lend {}: due date {due_on} is in the past",
            device.label
        )));
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
    let inserted = match insert_loan(&mut tx, &new_loan).await {
        Ok(loan_id) => tx.commit().await.map(|()| loan_id),
        Err(error) => {
            // Given back before the lookup below, so a full pool cannot starve it.
            tx.rollback().await?;
            Err(error)
        }
    };
    match inserted {
        Ok(loan_id) => get_loan(pool, loan_id).await,
        // The row lock makes this rare (a writer that skipped it); the index still refuses.
        Err(error) if is_second_active_loan(&error) => {
            let mut conn = pool.acquire().await?;
            let reason = match checks::active_loan_of(&mut conn, device_id).await? {
                Some(active) => already_on_loan(active),
                None => "it is already on loan".to_string(),
            };
            Err(refuse(reason))
        }
        Err(error) => Err(error.into()),
    }
}
