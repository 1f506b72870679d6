//! The proof of use of a funding programme (*Verwendungsnachweis*, `bestand reports funding`):
//! every device the programme paid for, where it is, who uses it (by role, never by name), what
//! the programme paid, and the flags a funding body asks about: a device that left service
//! before its earmark ended (a repayment risk), a device whose location is unknown, a device no
//! source has seen for a long time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::clock::school_date;
use crate::error::CoreError;
use crate::procurement::funding::Programme;
use crate::store::in_scope;
use crate::store::plans::OUT_OF_FLEET;

/// One funded device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundedDevice {
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub category: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub lifecycle_state: String,
    pub building: Option<String>,
    pub room: Option<String>,
    /// The role of the person it is lent to (`loan`) or assigned to (`assignment`): `student`,
    /// `teacher`, `staff` or `school_admin`. Never a name.
    pub used_by_role: Option<String>,
    pub used_by_via: Option<String>,
    pub price: Option<Decimal>,
    /// Price times the programme's funding share, to the cent; none without either.
    pub funded_amount: Option<Decimal>,
    /// The device's own earmark end, else the programme's.
    pub earmark_end: Option<NaiveDate>,
    /// For a device out of service: the day it left (its history, else its disposal record).
    pub left_on: Option<NaiveDate>,
    /// The day the last source that reported it stopped, when every source has.
    pub missing_since: Option<NaiveDate>,
    /// Retired, disposed, lost or stolen before the earmark end (or on an unknown day while
    /// the earmark runs): the funding body may ask for money back.
    pub repayment_risk: bool,
    /// No school, or no room.
    pub unknown_location: bool,
    /// Missing from every source that reported it for more than the report's days.
    pub missing: bool,
}

/// The totals of one school (none: devices without a school), or of the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundingTotal {
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub devices: u32,
    pub price: Decimal,
    pub funded_amount: Decimal,
    pub devices_without_price: u32,
    pub repayment_risks: u32,
}

/// `bestand reports funding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundingReport {
    pub programme: Programme,
    pub today: NaiveDate,
    pub missing_days: u32,
    pub devices: Vec<FundedDevice>,
    pub schools: Vec<FundingTotal>,
    pub total: FundingTotal,
}

#[derive(sqlx::FromRow)]
struct ProgrammeRow {
    authority_id: Uuid,
    #[sqlx(flatten)]
    view: Programme,
}

#[derive(sqlx::FromRow)]
struct Row {
    asset_tag: Option<String>,
    serial_number: Option<String>,
    model: Option<String>,
    category: String,
    school_number: Option<String>,
    school_name: Option<String>,
    lifecycle_state: String,
    building: Option<String>,
    room: Option<String>,
    loan_role: Option<String>,
    assigned_role: Option<String>,
    price: Option<Decimal>,
    earmark_end: Option<NaiveDate>,
    left_at: Option<DateTime<Utc>>,
    disposed_on: Option<NaiveDate>,
    links: i64,
    missing_since: Option<DateTime<Utc>>,
}

/// The role a person has, preferring their membership at `school`, then `student` over
/// `teacher` over the rest (as the loan agreement does). `person` and `school` are SQL.
fn role_of(person: &str, school: &str) -> String {
    format!(
        "(select m.role from person_membership m where m.person_id = {person} \
         order by m.school_id is not distinct from {school} desc, \
         case m.role when 'student' then 0 when 'teacher' then 1 when 'staff' then 2 else 3 end \
         limit 1)"
    )
}

/// The proof of use of programme `code` (of `authority`, a slug, when several authorities in
/// the scope have that code) at `now`: the programme's devices in `scope`, totals per school,
/// and the flags. An unknown programme, or one outside the scope, is not found.
pub async fn funding_report(
    pool: &PgPool,
    scope: &Scope,
    now: DateTime<Utc>,
    code: &str,
    authority: Option<&str>,
    missing_days: u32,
) -> Result<FundingReport, CoreError> {
    let programmes: Vec<ProgrammeRow> = sqlx::query_as(
        "select p.authority_id, a.slug as authority, p.code, p.name, p.body, \
         p.grant_reference, p.funded_amount, p.funding_share, p.period_start, p.period_end, \
         p.earmark_end from funding_programme p join school_authority a using (authority_id) \
         where p.code = $1 and ($2::text is null or a.slug = $2) \
         and ($3::uuid is null or p.authority_id = $3) order by a.slug",
    )
    .bind(code)
    .bind(authority)
    .bind(scope.authority_param())
    .fetch_all(pool)
    .await?;
    let (authority_id, programme) = match programmes.as_slice() {
        [] => {
            return Err(CoreError::NotFound {
                what: "funding programme",
                key: code.to_string(),
            })
        }
        [one] => (one.authority_id, one.view.clone()),
        several => {
            let slugs: Vec<&str> = several.iter().map(|p| p.view.authority.as_str()).collect();
            return Err(CoreError::Conflict(format!(
                "funding programme '{code}' exists for {}; name the authority with --authority",
                slugs.join(", ")
            )));
        }
    };
    let out: Vec<String> = OUT_OF_FLEET.iter().map(|s| format!("'{s}'")).collect();
    let out = out.join(", ");
    let sql = format!(
        "select d.asset_tag, d.serial_number, d.model, d.category, s.school_number, \
         s.name as school_name, d.lifecycle_state, d.building, d.room, \
         (select {} from loan l where l.device_id = d.device_id and l.state = 'active' limit 1) as loan_role, \
         (select {} from device_assignment da where da.device_id = d.device_id \
          and da.status = 'matched' order by da.since desc limit 1) as assigned_role, \
         d.purchase_price as price, coalesce(d.earmark_end, $4) as earmark_end, \
         case when d.lifecycle_state in ({out}) then (select min(e.occurred_at) from device_event e \
           where e.device_id = d.device_id and e.changes->'lifecycle_state'->>'new' in ({out}) \
           and e.device_event_id > coalesce((select max(e2.device_event_id) from device_event e2 \
             where e2.device_id = d.device_id and e2.changes->'lifecycle_state'->>'new' is not null \
             and e2.changes->'lifecycle_state'->>'new' not in ({out})), 0)) end as left_at, \
         (select dd.disposed_on from device_disposal dd where dd.device_id = d.device_id) as disposed_on, \
         (select count(*) from source_link sl where sl.device_id = d.device_id and sl.ended_at is null) as links, \
         (select case when bool_and(sl.missing_since is not null) then max(sl.missing_since) end \
          from source_link sl where sl.device_id = d.device_id and sl.ended_at is null) as missing_since \
         from device d left join school s on s.school_id = d.school_id \
         where d.authority_id = $3 and d.funding_programme = $5 and {} \
         order by s.school_number nulls last, d.asset_tag nulls last, d.serial_number nulls last, d.device_id",
        role_of("l.person_id", "l.school_id"),
        role_of("da.person_id", "d.school_id"),
        in_scope("d.authority_id", "d.school_id", 1, 2)
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .bind(authority_id)
        .bind(programme.earmark_end)
        .bind(code)
        .fetch_all(pool)
        .await?;
    let today = school_date(now);
    let missing_before = now - Duration::days(i64::from(missing_days));
    let share = programme.funding_share;
    let devices: Vec<FundedDevice> = rows
        .into_iter()
        .map(|row| {
            let left_on = row.left_at.map(school_date).or(row.disposed_on);
            let out_of_service = OUT_OF_FLEET.contains(&row.lifecycle_state.as_str());
            let repayment_risk = out_of_service
                && match (left_on, row.earmark_end) {
                    (Some(left), Some(end)) => left < end,
                    // The day is not known: a risk while the earmark runs (or has no end).
                    (None, Some(end)) => today < end,
                    (_, None) => true,
                };
            let missing_since = row.missing_since.filter(|_| row.links > 0);
            let (used_by_role, used_by_via) = match (row.loan_role, row.assigned_role) {
                (Some(role), _) => (Some(role), Some("loan".to_string())),
                (None, Some(role)) => (Some(role), Some("assignment".to_string())),
                (None, None) => (None, None),
            };
            FundedDevice {
                unknown_location: row.school_number.is_none() || row.room.is_none(),
                missing: missing_since.is_some_and(|since| since < missing_before),
                missing_since: missing_since.map(school_date),
                asset_tag: row.asset_tag,
                serial_number: row.serial_number,
                model: row.model,
                category: row.category,
                school_number: row.school_number,
                school_name: row.school_name,
                lifecycle_state: row.lifecycle_state,
                building: row.building,
                room: row.room,
                used_by_role,
                used_by_via,
                funded_amount: row
                    .price
                    .zip(share)
                    .map(|(price, share)| crate::planning::cents(price * share)),
                price: row.price,
                earmark_end: row.earmark_end,
                left_on,
                repayment_risk,
            }
        })
        .collect();
    let mut schools: BTreeMap<(bool, Option<String>), FundingTotal> = BTreeMap::new();
    let empty = |number: Option<String>, name: Option<String>| FundingTotal {
        school_number: number,
        school_name: name,
        devices: 0,
        price: Decimal::ZERO,
        funded_amount: Decimal::ZERO,
        devices_without_price: 0,
        repayment_risks: 0,
    };
    let mut total = empty(None, None);
    for device in &devices {
        let school = schools
            .entry((device.school_number.is_none(), device.school_number.clone()))
            .or_insert_with(|| empty(device.school_number.clone(), device.school_name.clone()));
        for sum in [&mut *school, &mut total] {
            sum.devices += 1;
            match device.price {
                Some(price) => sum.price += price,
                None => sum.devices_without_price += 1,
            }
            sum.funded_amount += device.funded_amount.unwrap_or_default();
            sum.repayment_risks += u32::from(device.repayment_risk);
        }
    }
    Ok(FundingReport {
        programme,
        today,
        missing_days,
        devices,
        schools: schools.into_values().collect(),
        total,
    })
}
