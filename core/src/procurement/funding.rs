//! Funding programmes (DigitalPakt Schule, Sofortausstattung, ...) per authority and how
//! devices come to name one: by the purchase file's column, by a rule (an order number or a
//! purchase date range, optionally one school) that applies at once and to every later
//! purchase import, or by hand. A device that already names another programme is never moved
//! by a rule: it is reported. Every assignment is a device event (docs/procurement.md).

use chrono::{DateTime, Months, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{authority_id, school_id};
use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::store::devices::resolve_device;
use crate::store::history::{insert_events, EventContext};
use crate::store::merge::change;

/// A programme to add.
#[derive(Debug, Clone, Default)]
pub struct NewProgramme {
    pub code: String,
    pub name: String,
    pub body: Option<String>,
    pub grant_reference: Option<String>,
    pub funded_amount: Option<Decimal>,
    /// 0..1 (`90%` is 0.9).
    pub funding_share: Option<Decimal>,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub earmark_end: Option<NaiveDate>,
    /// Years of earmark after the period's end (NRW: 5), when no earmark end is given.
    pub earmark_years: Option<u32>,
}

/// A programme as lists and the proof of use head it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Programme {
    pub authority: String,
    pub code: String,
    pub name: String,
    pub body: Option<String>,
    pub grant_reference: Option<String>,
    pub funded_amount: Option<Decimal>,
    pub funding_share: Option<Decimal>,
    pub period_start: Option<NaiveDate>,
    pub period_end: Option<NaiveDate>,
    pub earmark_end: Option<NaiveDate>,
}

/// A programme as listed, with what it funds.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProgrammeView {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub programme: Programme,
    /// Devices naming the programme.
    pub devices: i64,
    /// The sum of their purchase prices (devices without a price count nothing).
    pub price_sum: Decimal,
}

/// A rule as `funding show` lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleView {
    pub funding_rule_id: i64,
    pub order_number: Option<String>,
    pub purchased_from: Option<NaiveDate>,
    pub purchased_until: Option<NaiveDate>,
    pub school_number: Option<String>,
    pub created_by: String,
}

/// A programme with its rules.
#[derive(Debug, Clone, Serialize)]
pub struct ProgrammeDetail {
    #[serde(flatten)]
    pub programme: ProgrammeView,
    pub rules: Vec<RuleView>,
}

/// What a rule covers; the conditions given must all hold.
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    pub order_number: Option<String>,
    pub purchased_from: Option<NaiveDate>,
    pub purchased_until: Option<NaiveDate>,
    /// A school number of the authority.
    pub school: Option<String>,
}

/// What an assignment did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Assignment {
    /// The rule stored, for `funding assign` by rule.
    pub funding_rule_id: Option<i64>,
    /// The devices that now name the programme.
    pub assigned: Vec<String>,
    /// Devices already naming it.
    pub unchanged: Vec<String>,
    /// Devices naming another programme, left as they are (rules), or moved (by hand: listed
    /// with the programme they left).
    pub conflicts: Vec<String>,
}

const PROGRAMME_VIEW: &str =
    "select a.slug as authority, f.code, f.name, f.body, f.grant_reference, \
    f.funded_amount, f.funding_share, f.period_start, f.period_end, f.earmark_end, \
    (select count(*) from device d where d.authority_id = f.authority_id \
     and d.funding_programme = f.code) as devices, \
    (select coalesce(sum(d.purchase_price), 0) from device d where d.authority_id = f.authority_id \
     and d.funding_programme = f.code) as price_sum \
    from funding_programme f join school_authority a using (authority_id)";

/// Adds a programme to the authority; the earmark end defaults to the period's end plus
/// `earmark_years`.
pub async fn add_programme(
    pool: &PgPool,
    scope: &Scope,
    _actor: &Actor,
    authority: Option<&str>,
    programme: &NewProgramme,
    now: DateTime<Utc>,
) -> Result<ProgrammeView, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let code = programme.code.trim();
    if code.is_empty() || programme.name.trim().is_empty() {
        return Err(CoreError::Invalid(
            "a funding programme needs a code and a name".into(),
        ));
    }
    if let (Some(start), Some(end)) = (programme.period_start, programme.period_end) {
        if end < start {
            return Err(CoreError::Invalid(format!(
                "the funding period ends ({end}) before it starts ({start})"
            )));
        }
    }
    if let Some(share) = programme.funding_share {
        if share < Decimal::ZERO || share > Decimal::ONE {
            return Err(CoreError::Invalid(format!(
                "the funding share {share} is not between 0 and 1 (0% and 100%)"
            )));
        }
    }
    let earmark_end = match (programme.earmark_end, programme.earmark_years) {
        (Some(end), _) => Some(end),
        (None, Some(years)) => {
            let period_end = programme.period_end.ok_or_else(|| {
                CoreError::Invalid(
                    "--earmark-years counts from the end of the funding period: give --period"
                        .into(),
                )
            })?;
            period_end.checked_add_months(Months::new(years * 12))
        }
        (None, None) => None,
    };
    let inserted = sqlx::query(
        "insert into funding_programme (authority_id, code, name, body, grant_reference, \
         funded_amount, funding_share, period_start, period_end, earmark_end, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) on conflict do nothing",
    )
    .bind(authority_id)
    .bind(code)
    .bind(programme.name.trim())
    .bind(&programme.body)
    .bind(&programme.grant_reference)
    .bind(programme.funded_amount)
    .bind(programme.funding_share)
    .bind(programme.period_start)
    .bind(programme.period_end)
    .bind(earmark_end)
    .bind(now)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(CoreError::Conflict(format!(
            "the funding programme {code} exists already"
        )));
    }
    programme_view(pool, authority_id, code).await
}

async fn programme_view(
    pool: &PgPool,
    authority_id: Uuid,
    code: &str,
) -> Result<ProgrammeView, CoreError> {
    sqlx::query_as(&format!(
        "{PROGRAMME_VIEW} where f.authority_id = $1 and f.code = $2"
    ))
    .bind(authority_id)
    .bind(code)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CoreError::NotFound {
        what: "funding programme",
        key: code.to_string(),
    })
}

/// Lists the programmes of the authorities in `scope` (or of `authority`).
pub async fn list_programmes(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<ProgrammeView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "{PROGRAMME_VIEW} where ($1::text is null or a.slug = $1) and {} order by a.slug, f.code",
        crate::store::authority_wide("f.authority_id", 2, 3)
    ))
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// One programme with its device count, price sum and rules.
pub async fn show_programme(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
    code: &str,
) -> Result<ProgrammeDetail, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let programme = programme_view(pool, authority_id, code.trim()).await?;
    let rules = sqlx::query_as(
        "select r.funding_rule_id, r.order_number, r.purchased_from, r.purchased_until, \
         s.school_number, r.created_by from funding_rule r \
         join funding_programme f using (funding_programme_id) \
         left join school s on s.school_id = r.school_id \
         where f.authority_id = $1 and f.code = $2 order by r.funding_rule_id",
    )
    .bind(authority_id)
    .bind(code.trim())
    .fetch_all(pool)
    .await?;
    Ok(ProgrammeDetail { programme, rules })
}

/// A stored rule, as purchase imports apply it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FundingRule {
    pub funding_rule_id: i64,
    pub code: String,
    pub grant_reference: Option<String>,
    pub order_number: Option<String>,
    pub purchased_from: Option<NaiveDate>,
    pub purchased_until: Option<NaiveDate>,
    pub school_id: Option<Uuid>,
}

impl FundingRule {
    /// Whether every condition the rule sets holds for a device with these values.
    pub fn covers(
        &self,
        order_number: Option<&str>,
        purchased: Option<NaiveDate>,
        school_id: Option<Uuid>,
    ) -> bool {
        let order = self
            .order_number
            .as_deref()
            .is_none_or(|wanted| order_number.map(str::trim) == Some(wanted));
        let from = self
            .purchased_from
            .is_none_or(|from| purchased.is_some_and(|date| date >= from));
        let until = self
            .purchased_until
            .is_none_or(|until| purchased.is_some_and(|date| date <= until));
        let school = self
            .school_id
            .is_none_or(|wanted| school_id == Some(wanted));
        order && from && until && school
    }
}

/// The authority's rules, oldest first (the first that covers a device wins).
pub(crate) async fn load_rules(
    conn: &mut PgConnection,
    authority_id: Uuid,
) -> Result<Vec<FundingRule>, sqlx::Error> {
    sqlx::query_as(
        "select r.funding_rule_id, f.code, f.grant_reference, r.order_number, r.purchased_from, \
         r.purchased_until, r.school_id from funding_rule r \
         join funding_programme f using (funding_programme_id) \
         where r.authority_id = $1 order by r.funding_rule_id",
    )
    .bind(authority_id)
    .fetch_all(&mut *conn)
    .await
}

/// The programme `code` of the authority: its id and grant reference.
async fn programme(
    conn: &mut PgConnection,
    authority_id: Uuid,
    code: &str,
) -> Result<(i64, Option<String>), CoreError> {
    sqlx::query_as(
        "select funding_programme_id, grant_reference from funding_programme \
         where authority_id = $1 and code = $2",
    )
    .bind(authority_id)
    .bind(code.trim())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| CoreError::NotFound {
        what: "funding programme",
        key: code.trim().to_string(),
    })
}

/// Stores a rule for programme `code` and applies it at once to the authority's devices it
/// covers; devices naming another programme are reported, not moved.
pub async fn add_rule(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    code: &str,
    rule: &RuleSpec,
    now: DateTime<Utc>,
) -> Result<Assignment, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let order_number = rule
        .order_number
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    if order_number.is_none() && rule.purchased_from.is_none() && rule.purchased_until.is_none() {
        return Err(CoreError::Invalid(
            "a funding rule needs --order-number or --purchased".into(),
        ));
    }
    if let (Some(from), Some(until)) = (rule.purchased_from, rule.purchased_until) {
        if until < from {
            return Err(CoreError::Invalid(format!(
                "the purchase date range ends ({until}) before it starts ({from})"
            )));
        }
    }
    let school = match &rule.school {
        Some(number) => Some(school_id(pool, scope, authority_id, number).await?),
        None => None,
    };
    let mut tx = pool.begin().await?;
    let (programme_id, grant_reference) = programme(&mut tx, authority_id, code).await?;
    let rule_id: i64 = sqlx::query_scalar(
        "insert into funding_rule (funding_programme_id, authority_id, order_number, \
         purchased_from, purchased_until, school_id, created_at, created_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning funding_rule_id",
    )
    .bind(programme_id)
    .bind(authority_id)
    .bind(order_number)
    .bind(rule.purchased_from)
    .bind(rule.purchased_until)
    .bind(school)
    .bind(now)
    .bind(actor.name())
    .fetch_one(&mut *tx)
    .await?;
    let devices: Vec<Target> = sqlx::query_as(
        "select device_id, coalesce(asset_tag, serial_number, device_id::text) as label, \
         funding_programme, grant_reference from device where authority_id = $1 \
         and ($2::text is null or order_number = $2) \
         and ($3::date is null or purchase_date >= $3) \
         and ($4::date is null or purchase_date <= $4) \
         and ($5::uuid is null or school_id = $5) order by device_id for no key update",
    )
    .bind(authority_id)
    .bind(order_number)
    .bind(rule.purchased_from)
    .bind(rule.purchased_until)
    .bind(school)
    .fetch_all(&mut *tx)
    .await?;
    let mut assignment = assign(
        &mut tx,
        authority_id,
        code.trim(),
        grant_reference.as_deref(),
        &devices,
        false,
        actor,
        now,
    )
    .await?;
    assignment.funding_rule_id = Some(rule_id);
    tx.commit().await?;
    Ok(assignment)
}

/// A device an assignment is about.
#[derive(Debug, sqlx::FromRow)]
struct Target {
    device_id: Uuid,
    label: String,
    funding_programme: Option<String>,
    grant_reference: Option<String>,
}

/// Sets programme `code` on `devices` (with the programme's grant reference where a device has
/// none); a device naming another programme moves only when `move_others`.
#[allow(clippy::too_many_arguments)]
async fn assign(
    tx: &mut PgConnection,
    authority_id: Uuid,
    code: &str,
    grant_reference: Option<&str>,
    devices: &[Target],
    move_others: bool,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Assignment, CoreError> {
    let mut assignment = Assignment::default();
    let mut ids = Vec::new();
    let mut events = Vec::new();
    for device in devices {
        match device.funding_programme.as_deref() {
            Some(current) if current == code => {
                assignment.unchanged.push(device.label.clone());
                continue;
            }
            Some(other) if !move_others => {
                assignment.conflicts.push(format!(
                    "{}: funded by {other}; left as it is",
                    device.label
                ));
                continue;
            }
            Some(other) => assignment
                .conflicts
                .push(format!("{}: moved from {other}", device.label)),
            None => {}
        }
        let mut changes = serde_json::Map::new();
        changes.insert(
            "funding_programme".into(),
            json!({ "old": device.funding_programme, "new": code }),
        );
        if device.grant_reference.is_none() && grant_reference.is_some() {
            changes.insert(
                "grant_reference".into(),
                json!({ "old": null, "new": grant_reference }),
            );
        }
        ids.push(device.device_id);
        assignment.assigned.push(device.label.clone());
        events.push((
            device.device_id,
            "funding_assigned",
            serde_json::Value::Object(changes).to_string(),
        ));
    }
    let origin = format!("user:{}", actor.name());
    sqlx::query(
        "update device set funding_programme = $2, \
         grant_reference = coalesce(grant_reference, $3), \
         field_origin = (field_origin::jsonb || jsonb_build_object('funding_programme', $4::text) \
           || case when grant_reference is null and $3::text is not null \
              then jsonb_build_object('grant_reference', $4::text) else '{}'::jsonb end)::json, \
         updated_at = $5 where device_id = any($1)",
    )
    .bind(&ids)
    .bind(code)
    .bind(grant_reference)
    .bind(&origin)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let name = actor.name();
    let context = EventContext::user(authority_id, None, now, &name);
    let events: Vec<(Uuid, &str, String)> = events;
    insert_events(tx, &context, &events).await?;
    Ok(assignment)
}

/// Assigns programme `code` to devices by hand (id, asset tag or serial, in `scope`); a device
/// naming another programme moves, and the outcome says from which.
pub async fn assign_devices(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    code: &str,
    devices: &[String],
    now: DateTime<Utc>,
) -> Result<Assignment, CoreError> {
    let authority_id = authority_id(pool, scope, authority).await?;
    let mut ids = Vec::new();
    for key in devices {
        ids.push(resolve_device(pool, scope, key).await?);
    }
    let mut tx = pool.begin().await?;
    let (_, grant_reference) = programme(&mut tx, authority_id, code).await?;
    let targets = lock_targets(&mut tx, authority_id, &ids, devices).await?;
    let assignment = assign(
        &mut tx,
        authority_id,
        code.trim(),
        grant_reference.as_deref(),
        &targets,
        true,
        actor,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(assignment)
}

/// Locks the devices `ids` of the authority; one of another authority is not found.
async fn lock_targets(
    tx: &mut PgConnection,
    authority_id: Uuid,
    ids: &[Uuid],
    keys: &[String],
) -> Result<Vec<Target>, CoreError> {
    let targets: Vec<Target> = sqlx::query_as(
        "select device_id, coalesce(asset_tag, serial_number, device_id::text) as label, \
         funding_programme, grant_reference from device where authority_id = $1 \
         and device_id = any($2) order by device_id for no key update",
    )
    .bind(authority_id)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    for (id, key) in ids.iter().zip(keys) {
        if !targets.iter().any(|t| t.device_id == *id) {
            return Err(CoreError::NotFound {
                what: "device (by id, asset tag or serial number)",
                key: key.trim().to_string(),
            });
        }
    }
    Ok(targets)
}

/// Removes the programme (and grant reference) from devices by hand; returns the devices
/// that named one.
pub async fn unassign_devices(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    devices: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, CoreError> {
    let mut ids = Vec::new();
    for key in devices {
        ids.push(resolve_device(pool, scope, key).await?);
    }
    let mut tx = pool.begin().await?;
    // Device, authority, label, programme and grant reference before.
    type Before = (Uuid, Uuid, String, Option<String>, Option<String>);
    let rows: Vec<Before> = sqlx::query_as(
        "select device_id, authority_id, coalesce(asset_tag, serial_number, device_id::text), \
         funding_programme, grant_reference from device where device_id = any($1) \
         and funding_programme is not null order by device_id for no key update",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let origin = format!("user:{}", actor.name());
    sqlx::query(
        "update device set funding_programme = null, grant_reference = null, \
         field_origin = (field_origin::jsonb || jsonb_build_object('funding_programme', $2::text, \
           'grant_reference', $2::text))::json, updated_at = $3 \
         where device_id = any($1) and funding_programme is not null",
    )
    .bind(&ids)
    .bind(&origin)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let name = actor.name();
    let mut labels = Vec::new();
    for (device_id, authority_id, label, programme, reference) in rows {
        let changes = json!({
            "funding_programme": change(programme.as_ref(), None),
            "grant_reference": change(reference.as_ref(), None),
        });
        let context = EventContext::user(authority_id, None, now, &name);
        insert_events(
            &mut tx,
            &context,
            &[(device_id, "funding_unassigned", changes.to_string())],
        )
        .await?;
        labels.push(label);
    }
    tx.commit().await?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_covers_only_what_all_its_conditions_hold_for() {
        let date = |d| NaiveDate::from_ymd_opt(2020, 8, d);
        let rule = FundingRule {
            funding_rule_id: 1,
            code: "DP".into(),
            grant_reference: None,
            order_number: None,
            purchased_from: date(1),
            purchased_until: date(31),
            school_id: None,
        };
        assert!(rule.covers(None, date(1), None));
        assert!(rule.covers(Some("x"), date(31), None));
        assert!(!rule.covers(None, NaiveDate::from_ymd_opt(2020, 9, 1), None));
        assert!(!rule.covers(None, None, None));
        let by_order = FundingRule {
            order_number: Some("B-7".into()),
            purchased_from: None,
            purchased_until: None,
            ..rule
        };
        assert!(by_order.covers(Some(" B-7 "), None, None));
        assert!(!by_order.covers(Some("B-8"), date(5), None));
    }
}
