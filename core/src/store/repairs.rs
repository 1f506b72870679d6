//! Repairs: one case per broken device, from opening (the device goes `in_repair`) to closing
//! (back in use, to stock, to be checked, or retired), with who pays and what it cost; the
//! costs add up to the device's total cost of ownership. A repair belongs to its device's
//! school: outside the scope it answers as unknown.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::loans::checks::{lock_device, write_event};
use crate::model::{LifecycleState, RepairBilling, RepairOutcome};
use crate::store::devices::resolve_device;
use crate::store::lifecycle::{move_locked, LIFECYCLE_CHANGED};
use crate::store::non_blank;
use crate::store::persons::push_school_filter;
use crate::store::{in_scope, push_scope};

/// The currency of a cost that names none, and of a device without a price.
const DEFAULT_CURRENCY: &str = "EUR";

/// What staff say when a device goes to repair.
#[derive(Debug, Clone)]
pub struct RepairOpening {
    pub billing: RepairBilling,
    pub provider: Option<String>,
    /// What is broken, in the staff's words (never a pupil's name: it is shown to everyone
    /// who sees the device).
    pub defect: Option<String>,
    pub opened_on: NaiveDate,
    /// Claim warranty although the device's warranty has ended (a goodwill claim in
    /// disguise is better recorded as `goodwill`).
    pub force: bool,
}

/// What staff say when a repair comes back.
#[derive(Debug, Clone)]
pub struct RepairClosing {
    pub outcome: RepairOutcome,
    /// What the authority paid, if anything (read with `money::parse_price`).
    pub cost: Option<Decimal>,
    /// ISO code the cost was given in, if it named one.
    pub currency: Option<String>,
    pub closed_on: NaiveDate,
    /// Where the device goes; default: `in_use` after a repair or replacement, `retired`
    /// when it is not repairable.
    pub to: Option<LifecycleState>,
}

/// One repair, for lists and the device detail.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RepairView {
    pub repair_id: i64,
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub school_number: Option<String>,
    pub lifecycle_state: String,
    pub opened_on: NaiveDate,
    pub provider: Option<String>,
    pub billing: String,
    pub defect: Option<String>,
    pub warranty_end: Option<NaiveDate>,
    pub cost: Option<Decimal>,
    pub currency: Option<String>,
    pub closed_on: Option<NaiveDate>,
    pub outcome: Option<String>,
    pub opened_by: String,
    pub closed_by: Option<String>,
}

/// A repair just opened, with what staff should know about it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenedRepair {
    pub repair: RepairView,
    pub warnings: Vec<String>,
}

/// Filters of `bestand repairs list`.
#[derive(Debug, Clone, Default)]
pub struct RepairFilter {
    /// School number, name or alias.
    pub school: Option<String>,
    /// Only repairs not closed yet.
    pub open_only: bool,
}

/// What a device has cost so far: its price and its repairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CostOfOwnership {
    pub device_id: Uuid,
    /// None when no price is recorded: the total is then the repairs alone.
    pub purchase_price: Option<Decimal>,
    pub repairs: i64,
    pub repair_costs: Decimal,
    pub total: Decimal,
    pub currency: String,
}

const REPAIR_COLUMNS: &str = "r.repair_id, r.device_id, d.asset_tag, d.serial_number, d.model, \
    s.school_number, d.lifecycle_state, r.opened_on, r.provider, r.billing, r.defect, \
    d.warranty_end, r.cost, r.currency, r.closed_on, r.outcome, r.opened_by, r.closed_by";

const REPAIR_FROM: &str =
    "from repair r join device d using (device_id) left join school s on s.school_id = d.school_id";

/// Opens a repair of the device `key` inside `scope` and moves the device to `in_repair`
/// (unless it is there already). A warranty claim after the recorded warranty end is refused
/// unless `force`; without a recorded warranty end it is opened with a warning.
pub async fn open_repair(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    key: &str,
    opening: &RepairOpening,
    at: DateTime<Utc>,
) -> Result<OpenedRepair, CoreError> {
    let device_id = resolve_device(pool, scope, key).await?;
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    let open: Option<i64> = sqlx::query_scalar(
        "select repair_id from repair where device_id = $1 and closed_on is null",
    )
    .bind(device_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(open) = open {
        return Err(CoreError::Conflict(format!(
            "{} is already in repair {open}; close it first",
            device.label
        )));
    }
    let mut warnings = Vec::new();
    if opening.billing == RepairBilling::Warranty {
        let warranty_end: Option<NaiveDate> =
            sqlx::query_scalar("select warranty_end from device where device_id = $1")
                .bind(device_id)
                .fetch_one(&mut *tx)
                .await?;
        match warranty_end {
            Some(end) if end < opening.opened_on && !opening.force => {
                return Err(CoreError::Conflict(format!(
                    "the warranty of {} ended on {end}, before {}; open the repair as paid or \
                     goodwill, or force the warranty claim",
                    device.label, opening.opened_on
                )))
            }
            Some(end) if end < opening.opened_on => warnings.push(format!(
                "warranty claim although the warranty of {} ended on {end}",
                device.label
            )),
            None => warnings.push(format!(
                "no warranty end is recorded for {}; check the claim",
                device.label
            )),
            Some(_) => {}
        }
    }
    let repair_id: i64 = sqlx::query_scalar(
        "insert into repair (authority_id, device_id, opened_on, provider, billing, defect, \
         opened_by) values ($1, $2, $3, $4, $5, $6, $7) returning repair_id",
    )
    .bind(device.authority_id)
    .bind(device_id)
    .bind(opening.opened_on)
    .bind(non_blank(&opening.provider))
    .bind(opening.billing.as_str())
    .bind(non_blank(&opening.defect))
    .bind(actor.name())
    .fetch_one(&mut *tx)
    .await?;
    let reason = format!("repair {repair_id} opened");
    let mut changes = json!({
        "repair_id": { "new": repair_id },
        "billing": { "new": opening.billing.as_str() },
        "reason": reason,
    });
    let kind = if device.lifecycle_state == LifecycleState::InRepair.as_str() {
        "repair_opened"
    } else {
        changes["lifecycle_state"] =
            move_locked(&mut tx, &device, LifecycleState::InRepair, at, actor).await?;
        LIFECYCLE_CHANGED
    };
    write_event(&mut tx, &device, kind, changes, at, actor).await?;
    let repair = repair_view(&mut tx, repair_id).await?;
    tx.commit().await?;
    Ok(OpenedRepair { repair, warnings })
}

/// Closes repair `repair_id` inside `scope` with its outcome and cost, and moves the device on
/// from `in_repair` (to `closing.to`, else `in_use`, or `retired` when not repairable).
pub async fn close_repair(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    repair_id: i64,
    closing: &RepairClosing,
    at: DateTime<Utc>,
) -> Result<RepairView, CoreError> {
    let not_found = || CoreError::NotFound {
        what: "repair",
        key: repair_id.to_string(),
    };
    let device_id: Uuid = sqlx::query_scalar(&format!(
        "select r.device_id {REPAIR_FROM} where r.repair_id = $1 and {}",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(repair_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?
    .ok_or_else(not_found)?;
    let mut tx = pool.begin().await?;
    let device = lock_device(&mut tx, device_id).await?;
    let current = repair_view(&mut tx, repair_id).await?;
    if let Some(closed) = current.closed_on {
        return Err(CoreError::Conflict(format!(
            "repair {repair_id} of {} was closed on {closed}",
            device.label
        )));
    }
    if closing.closed_on < current.opened_on {
        return Err(CoreError::Invalid(format!(
            "repair {repair_id} of {} cannot close on {}, before it was opened ({})",
            device.label, closing.closed_on, current.opened_on
        )));
    }
    let device_currency: Option<String> =
        sqlx::query_scalar("select currency from device where device_id = $1")
            .bind(device_id)
            .fetch_one(&mut *tx)
            .await?;
    let currency = device_currency.unwrap_or_else(|| DEFAULT_CURRENCY.to_string());
    if let Some(given) = closing.currency.as_deref().filter(|c| *c != currency) {
        return Err(CoreError::Invalid(format!(
            "the cost of repair {repair_id} is in {given}, but {} is kept in {currency}; give \
             the cost in {currency}",
            device.label
        )));
    }
    sqlx::query(
        "update repair set closed_on = $2, outcome = $3, cost = $4, currency = $5, \
         closed_by = $6 where repair_id = $1",
    )
    .bind(repair_id)
    .bind(closing.closed_on)
    .bind(closing.outcome.as_str())
    .bind(closing.cost)
    .bind(closing.cost.map(|_| currency.as_str()))
    .bind(actor.name())
    .execute(&mut *tx)
    .await?;
    let to = closing.to.unwrap_or(match closing.outcome {
        RepairOutcome::NotRepairable => LifecycleState::Retired,
        RepairOutcome::Repaired | RepairOutcome::Replaced => LifecycleState::InUse,
    });
    let mut changes = json!({
        "repair_id": { "new": repair_id },
        "outcome": { "new": closing.outcome.as_str() },
        "reason": format!("repair {repair_id} closed: {}", closing.outcome.as_str().replace('_', " ")),
    });
    if let Some(cost) = closing.cost {
        changes["cost"] = json!({ "new": format!("{cost} {currency}") });
    }
    // Someone may have moved the device on already; then only the repair closes.
    let kind = if device.lifecycle_state == LifecycleState::InRepair.as_str() {
        changes["lifecycle_state"] = move_locked(&mut tx, &device, to, at, actor).await?;
        LIFECYCLE_CHANGED
    } else {
        "repair_closed"
    };
    write_event(&mut tx, &device, kind, changes, at, actor).await?;
    let repair = repair_view(&mut tx, repair_id).await?;
    tx.commit().await?;
    Ok(repair)
}

/// The repairs inside `scope`, the newest first.
pub async fn list_repairs(
    pool: &PgPool,
    scope: &Scope,
    filter: &RepairFilter,
) -> Result<Vec<RepairView>, CoreError> {
    let mut query = QueryBuilder::new(format!("select {REPAIR_COLUMNS} {REPAIR_FROM} where true"));
    push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    if let Some(school) = &filter.school {
        query.push(" and");
        push_school_filter(&mut query, school);
    }
    if filter.open_only {
        query.push(" and r.closed_on is null");
    }
    query.push(" order by r.opened_on desc, r.repair_id desc");
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// The repairs of device `device_id`, the newest first; the caller has checked the scope.
pub(crate) async fn repairs_of(
    pool: &PgPool,
    device_id: Uuid,
) -> Result<Vec<RepairView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select {REPAIR_COLUMNS} {REPAIR_FROM} where r.device_id = $1 \
         order by r.opened_on desc, r.repair_id desc"
    ))
    .bind(device_id)
    .fetch_all(pool)
    .await?)
}

/// The total cost of ownership of the device `key` inside `scope`: its purchase price plus
/// what its repairs cost (every billing; a warranty claim usually records none).
pub async fn device_cost_of_ownership(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<CostOfOwnership, CoreError> {
    let device_id = resolve_device(pool, scope, key).await?;
    cost_of_ownership(pool, device_id).await
}

/// `device_cost_of_ownership` of a device whose scope the caller has checked.
pub(crate) async fn cost_of_ownership(
    pool: &PgPool,
    device_id: Uuid,
) -> Result<CostOfOwnership, CoreError> {
    Ok(sqlx::query_as(
        "select d.device_id, d.purchase_price, \
         (select count(*) from repair r where r.device_id = d.device_id) as repairs, \
         coalesce((select sum(r.cost) from repair r where r.device_id = d.device_id), 0) \
           as repair_costs, \
         coalesce(d.purchase_price, 0) \
           + coalesce((select sum(r.cost) from repair r where r.device_id = d.device_id), 0) \
           as total, \
         coalesce(d.currency, $2) as currency \
         from device d where d.device_id = $1",
    )
    .bind(device_id)
    .bind(DEFAULT_CURRENCY)
    .fetch_one(pool)
    .await?)
}

async fn repair_view(conn: &mut PgConnection, repair_id: i64) -> Result<RepairView, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select {REPAIR_COLUMNS} {REPAIR_FROM} where r.repair_id = $1"
    ))
    .bind(repair_id)
    .fetch_one(&mut *conn)
    .await?)
}
