//! Class sets: one device for every pupil of a class, taken from a pool of the school's
//! devices (a room, such as a trolley or cupboard, or a tag), in one command and one
//! transaction. Pupils and devices are paired in a stable order so a rerun is predictable.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::loans::checks::{load_borrower, lock_device, place_borrower, NewLoan};
use crate::loans::policy::LoanPolicy;
use crate::loans::rules::{
    cannot_lend, due_date_refusal, insert_active_loan, lendable_refusal, lendable_states,
};
use crate::store::persons::find_school;

/// Where a class set's devices come from; always devices of the class's school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePool {
    /// Devices whose room is this (case-insensitive).
    Room(String),
    /// Devices carrying this tag (case-insensitive).
    Tag(String),
}

impl std::fmt::Display for DevicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevicePool::Room(room) => write!(f, "room \"{room}\""),
            DevicePool::Tag(tag) => write!(f, "tag \"{tag}\""),
        }
    }
}

/// A class set to hand out.
#[derive(Debug, Clone)]
pub struct ClassSetRequest {
    /// Only this authority (slug), when school numbers repeat across authorities.
    pub authority: Option<String>,
    /// School number, name or alias.
    pub school: String,
    pub class: String,
    pub pool: DevicePool,
    /// Default: the end of the school's current school year.
    pub due_on: Option<NaiveDate>,
    pub accessories: Vec<String>,
    /// Hand out as many devices as the pool has when it has fewer than pupils.
    pub partial: bool,
    pub dry_run: bool,
}

/// One pupil of the class and what happened to them.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSetLine {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub name: Option<String>,
    /// The device handed out (or on a dry run, chosen).
    pub device: Option<String>,
    /// `None` on a dry run.
    pub loan_id: Option<i64>,
    /// Why the pupil got no device.
    pub skipped: Option<String>,
}

/// The outcome of a class set.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSetReport {
    pub school_number: String,
    pub class: String,
    pub due_on: NaiveDate,
    pub lines: Vec<ClassSetLine>,
    pub issued: usize,
    pub skipped: usize,
    /// Lendable devices in the pool before the hand-out.
    pub pool_size: usize,
    pub applied: bool,
}

/// Hands one device from `request.pool` to every current pupil of the class who has no active
/// loan. Fails before writing anything when the pool is too small, unless `partial`. The
/// school must be inside `scope`.
pub async fn issue_class_set(
    pool: &PgPool,
    scope: &Scope,
    clock: &dyn Clock,
    policy: &LoanPolicy,
    request: &ClassSetRequest,
    actor: &Actor,
) -> Result<ClassSetReport, CoreError> {
    let now = clock.now();
    let today = crate::clock::school_date(now);
    let accessories = policy.accessories_of(&request.accessories)?;
    let (school_id, school_number, authority_slug) =
        find_school(pool, scope, request.authority.as_deref(), &request.school).await?;
    let class = request.class.trim();
    let due_on = request
        .due_on
        .unwrap_or_else(|| policy.default_due(&authority_slug, Some(&school_number), today));
    if let Some(reason) = due_date_refusal(due_on, today) {
        return Err(CoreError::Invalid(reason));
    }

    let mut tx = pool.begin().await?;
    let pupils: Vec<Pupil> = sqlx::query_as(
        "select p.person_id, p.username, \
         nullif(concat_ws(' ', p.given_name, p.family_name), '') as name, \
         (select min(l.loan_id) from loan l where l.person_id = p.person_id \
          and l.state = 'active') as active_loan \
         from person p where p.left_at is null and exists (select 1 from person_membership m \
         where m.person_id = p.person_id and m.school_id = $1 and m.role = 'student' \
         and lower(m.class_name) = lower($2)) \
         order by p.family_name nulls last, p.given_name nulls last, p.username, p.person_id",
    )
    .bind(school_id)
    .bind(class)
    .fetch_all(&mut *tx)
    .await?;
    if pupils.is_empty() {
        return Err(CoreError::NotFound {
            what: "current pupils of class",
            key: format!("{class} at school {school_number}"),
        });
    }

    let mut candidates = QueryBuilder::new("select d.device_id from device d where d.school_id = ");
    candidates.push_bind(school_id);
    match &request.pool {
        DevicePool::Room(room) => candidates
            .push(" and lower(d.room) = lower(")
            .push_bind(room.trim().to_string())
            .push(")"),
        DevicePool::Tag(tag) => candidates
            .push(" and exists (select 1 from unnest(d.tags) t where lower(t) = lower(")
            .push_bind(tag.trim().to_string())
            .push("))"),
    };
    // A first cut only: every device is checked by the rules again under its lock below.
    candidates
        .push(" and d.lifecycle_state = any(")
        .push_bind(lendable_states())
        .push(
            ") and not exists (select 1 from loan l where l.device_id = d.device_id \
             and l.state = 'active') order by d.device_id",
        );
    let mut device_ids: Vec<Uuid> = candidates.build_query_scalar().fetch_all(&mut *tx).await?;
    device_ids.sort();
    // Locked in id order (as everywhere), checked again under the lock, then handed out in
    // asset-tag order.
    let mut lendable = Vec::new();
    for device_id in device_ids {
        let device = lock_device(&mut tx, device_id).await?;
        if lendable_refusal(&mut tx, &device).await?.is_none() {
            lendable.push(device);
        }
    }
    let order: Vec<Uuid> = sqlx::query_scalar(
        "select device_id from device where device_id = any($1) \
         order by asset_tag nulls last, serial_number nulls last, device_id",
    )
    .bind(lendable.iter().map(|d| d.device_id).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut devices = Vec::new();
    for device_id in order {
        if let Some(at) = lendable.iter().position(|d| d.device_id == device_id) {
            devices.push(lendable.swap_remove(at));
        }
    }
    let pool_size = devices.len();

    let wanting = pupils.iter().filter(|p| p.active_loan.is_none()).count();
    if wanting > pool_size && !request.partial {
        return Err(CoreError::Conflict(format!(
            "{} at school {school_number} has {pool_size} lendable device(s) for {wanting} \
             pupil(s) of class {class} without a loan; nothing was handed out \
             (use partial to hand out {pool_size})",
            request.pool
        )));
    }

    let mut lines = Vec::new();
    let mut devices = devices.into_iter().peekable();
    for Pupil {
        person_id,
        username,
        name,
        active_loan,
    } in pupils
    {
        let mut line = ClassSetLine {
            person_id,
            username,
            name,
            device: None,
            loan_id: None,
            skipped: None,
        };
        if let Some(loan_id) = active_loan {
            line.skipped = Some(format!("already has an active loan (loan {loan_id})"));
            lines.push(line);
            continue;
        }
        let Some(device) = devices.peek() else {
            line.skipped = Some(format!("no device left in {}", request.pool));
            lines.push(line);
            continue;
        };
        let borrower = load_borrower(&mut tx, person_id).await?;
        let placement = match place_borrower(device, &borrower, None) {
            Ok(placement) => placement,
            Err(reason) => {
                line.skipped = Some(reason);
                lines.push(line);
                continue;
            }
        };
        let Some(device) = devices.next() else {
            continue;
        };
        let new_loan = NewLoan {
            device: &device,
            borrower: &borrower,
            placement: &placement,
            due_on,
            accessories: &accessories,
            condition_out: None,
            agreement_signed_on: None,
            override_reason: None,
            now,
            actor,
        };
        // The index refused a second active loan (a writer that skipped the device lock):
        // the same refusal as a single hand-out, and nothing of the set is written.
        let loan_id = insert_active_loan(&mut tx, &new_loan)
            .await?
            .map_err(|reason| CoreError::Conflict(cannot_lend(&device, &reason)))?;
        line.device = Some(device.label.clone());
        line.loan_id = Some(loan_id).filter(|_| !request.dry_run);
        lines.push(line);
    }
    if request.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    let issued = lines.iter().filter(|line| line.device.is_some()).count();
    Ok(ClassSetReport {
        school_number,
        class: class.to_string(),
        due_on,
        skipped: lines.len() - issued,
        lines,
        issued,
        pool_size,
        applied: !request.dry_run,
    })
}

/// A current pupil of the class, with their active loan if they have one.
#[derive(sqlx::FromRow)]
struct Pupil {
    person_id: Uuid,
    username: Option<String>,
    name: Option<String>,
    active_loan: Option<i64>,
}
