//! The effective plan of every device (expected life, replacement price, purchase date, end
//! of life) as one SQL expression, and the two reports that read it device by device: warranty
//! and depreciation. The replacement forecast (`store::forecast`) and the funding report build
//! on the same expression, so every report resolves a device's life and price the same way
//! (docs/reports.md, "Life and price").

use chrono::{Months, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::{DeviceCategory, LifecycleState};
use crate::planning;
use crate::store::in_scope;

/// States in which a device no longer belongs to the fleet: nothing to replace, insure or
/// depreciate.
pub const OUT_OF_FLEET: &[&str] = &["retired", "disposed", "lost", "stolen"];

/// SQL: whether the plan row `p` belongs to the fleet.
pub(crate) fn in_fleet(p: &str) -> String {
    let states: Vec<String> = OUT_OF_FLEET.iter().map(|s| format!("'{s}'")).collect();
    format!("{p}.lifecycle_state not in ({})", states.join(", "))
}

/// The `with` clause that defines `plan`, one row per device in the scope (and at the school,
/// if one is given), with its effective category, purchase date, life and replacement price.
/// Binds: `$1` authority and `$2` schools (the scope), `$3` and `$4` the default lives per
/// category (`default_lives`), `$5` a school id or null.
///
/// - Life: the device's own `life_expectancy_years` (0 counts as not given), else the
///   catalogue entry's, else the authority's `category_life`, else `planning::default_life_years`.
/// - Catalogue entry: by model identifier, else by model name, both case-insensitive.
/// - Category: the device's, except that a device of category `other` takes its catalogue
///   entry's (a purchase import may not know what a model is).
/// - Replacement price: the catalogue's list price (what the model costs today), else what the
///   device cost (all that is known). Book values use the purchase price alone.
/// - Purchase date: `purchase_date`, else the day a source first reported the device, flagged
///   as estimated.
pub(crate) fn plan_cte() -> String {
    let scope = in_scope("d.authority_id", "d.school_id", 1, 2);
    plan_over(
        "d.device_id, d.asset_tag, d.serial_number, d.model, d.lifecycle_state, \
         d.purchase_price, d.warranty_end, d.building, d.room, d.funding_programme, d.earmark_end, \
         coalesce(d.purchase_date, (d.first_seen_at at time zone 'Europe/Berlin')::date) as purchased, \
         d.purchase_date is null as purchase_estimated",
        &format!("(select * from device d where {scope} and ($5::uuid is null or d.school_id = $5)) d"),
    )
}

/// `plan_cte` over cohorts instead of devices, for the forecast over a large fleet: the fleet's
/// devices grouped by everything their plan depends on (authority, school, category, model,
/// identifier, own life, purchase price, year of purchase), each row with its `devices` and
/// `estimated` counts, so the catalogue and the lives are resolved once per group, not once per
/// device. Same binds as `plan_cte`; `purchased` is the first of January of the purchase year,
/// all the end-of-life year needs.
///
/// `early` marks the devices of cohorts to replace early for their tickets (in the column
/// `early`, which also splits the groups): with it, `$6` authorities, `$7` models (trimmed) and
/// `$8` ages name the cohorts, by age in whole years on the day `$9`, as the ticket figures
/// count ages (`store::ticket_report::early_cohorts`). Without it `early` is false throughout
/// and nothing more is bound.
pub(crate) fn cohort_cte(early: bool) -> String {
    let scope = in_scope("d.authority_id", "d.school_id", 1, 2);
    let marked = if early {
        "(d.authority_id, btrim(d.model), extract(year from age($9::date, \
           coalesce(d.purchase_date, (d.first_seen_at at time zone 'Europe/Berlin')::date)))::int) \
         in (select * from unnest($6::uuid[], $7::text[], $8::int[]))"
    } else {
        "false"
    };
    plan_over(
        "d.devices, d.estimated, d.purchase_price, d.purchased, d.early",
        &format!(
            "(select d.authority_id, d.school_id, d.category, d.model, d.model_identifier, \
             d.life_expectancy_years, d.purchase_price, make_date(extract(year from \
               coalesce(d.purchase_date, (d.first_seen_at at time zone 'Europe/Berlin')::date))::int, \
               1, 1) as purchased, \
             {marked} as early, \
             count(*) as devices, count(*) filter (where d.purchase_date is null) as estimated \
             from device d where {scope} and ($5::uuid is null or d.school_id = $5) and {} \
             group by 1, 2, 3, 4, 5, 6, 7, 8, 9) d",
            in_fleet("d")
        ),
    )
}

/// The resolution `plan_cte` documents, over `rows` (a `from` item aliased `d` with the
/// device's columns the rules read), carrying `columns` of it through.
fn plan_over(columns: &str, rows: &str) -> String {
    format!(
        "with default_life as (select * from unnest($3::text[], $4::int[]) as t(category, life_years)), \
         base as (select d.authority_id, d.school_id, {columns}, \
           case when d.category = 'other' and coalesce(mi.category, mn.category) is not null \
             then coalesce(mi.category, mn.category) else d.category end as category, \
           nullif(d.life_expectancy_years, 0) as own_life, \
           case when mi.device_model_id is not null then mi.life_years else mn.life_years end as model_life, \
           case when mi.device_model_id is not null then mi.list_price else mn.list_price end as list_price \
           from {rows} \
           left join device_model mi on mi.authority_id = d.authority_id \
             and lower(mi.model_identifier) = lower(d.model_identifier) \
           left join device_model mn on mn.authority_id = d.authority_id \
             and lower(mn.model) = lower(d.model)), \
         plan as (select b.*, \
           coalesce(b.own_life, b.model_life, cl.life_years, dl.life_years) as life_years, \
           case when b.own_life is not null then 'device' when b.model_life is not null then 'catalogue' \
             when cl.life_years is not null then 'category' else 'default' end as life_from, \
           coalesce(b.list_price, b.purchase_price) as replacement_price, \
           case when b.list_price is not null then 'catalogue' \
             when b.purchase_price is not null then 'purchase' end as price_from, \
           extract(year from b.purchased)::int \
             + coalesce(b.own_life, b.model_life, cl.life_years, dl.life_years) as due_year \
           from base b \
           left join category_life cl on cl.authority_id = b.authority_id and cl.category = b.category \
           left join default_life dl on dl.category = b.category) "
    )
}

/// The default lives of `planning::default_life_years`, as the arrays `plan_cte` binds.
pub(crate) fn default_lives() -> (Vec<String>, Vec<i32>) {
    DeviceCategory::ALL
        .iter()
        .map(|category| {
            let years = planning::default_life_years(*category);
            (
                category.as_str().to_string(),
                i32::try_from(years).unwrap_or(i32::MAX),
            )
        })
        .unzip()
}

/// Binds the five parameters of `plan_cte` to a query built on it.
macro_rules! bind_plan {
    ($query:expr, $scope:expr, $school:expr) => {{
        let (categories, lives) = $crate::store::plans::default_lives();
        $query
            .bind($scope.authority_param())
            .bind($scope.schools_param())
            .bind(categories)
            .bind(lives)
            .bind($school)
    }};
}
pub(crate) use bind_plan;

/// The school a person named with `--school` (number, name or alias), inside the scope; outside
/// it, or unknown, it is not found.
pub(crate) async fn resolve_school(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<Uuid, CoreError> {
    let sql = format!(
        "select s.school_id from school s where (s.school_number = $3 or lower(s.name) = $3 \
         or $3 = any(select lower(x) from unnest(s.aliases) x)) and {}",
        in_scope("s.authority_id", "s.school_id", 1, 2)
    );
    let found: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .bind(key.trim().to_lowercase())
        .fetch_all(pool)
        .await?;
    crate::store::exactly_one(&found, key, "school (by number, name or alias)", "school")
}

/// The school given to a report, resolved, or none.
pub(crate) async fn school_filter(
    pool: &PgPool,
    scope: &Scope,
    school: Option<&str>,
) -> Result<Option<Uuid>, CoreError> {
    match school {
        Some(key) => Ok(Some(resolve_school(pool, scope, key).await?)),
        None => Ok(None),
    }
}

/// One device with what every report assumes about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicePlan {
    pub device_id: Uuid,
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub category: DeviceCategory,
    pub lifecycle_state: LifecycleState,
    /// Whether the device counts to the fleet (not retired, disposed, lost or stolen).
    pub in_fleet: bool,
    /// The purchase date, or the day a source first reported it (`purchase_date_estimated`).
    pub purchase_date: NaiveDate,
    pub purchase_date_estimated: bool,
    pub life_years: u32,
    /// Where the life comes from: `device`, `catalogue`, `category` or `default`.
    pub life_from: String,
    pub end_of_life_year: i32,
    pub purchase_price: Option<Decimal>,
    pub replacement_price: Option<Decimal>,
    /// Where the replacement price comes from: `catalogue` or `purchase`; none without one.
    pub price_from: Option<String>,
    pub warranty_end: Option<NaiveDate>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct PlanRow {
    pub(crate) authority_id: Uuid,
    pub(crate) school_id: Option<Uuid>,
    device_id: Uuid,
    authority: String,
    school_number: Option<String>,
    school_name: Option<String>,
    asset_tag: Option<String>,
    serial_number: Option<String>,
    model: Option<String>,
    category: String,
    lifecycle_state: String,
    purchased: NaiveDate,
    purchase_estimated: bool,
    life_years: i32,
    life_from: String,
    purchase_price: Option<Decimal>,
    replacement_price: Option<Decimal>,
    price_from: Option<String>,
    warranty_end: Option<NaiveDate>,
}

impl From<PlanRow> for DevicePlan {
    fn from(row: PlanRow) -> DevicePlan {
        let life_years = u32::try_from(row.life_years).unwrap_or(0);
        let lifecycle_state = row.lifecycle_state.parse().unwrap_or(LifecycleState::InUse);
        DevicePlan {
            device_id: row.device_id,
            authority: row.authority,
            school_number: row.school_number,
            school_name: row.school_name,
            asset_tag: row.asset_tag,
            serial_number: row.serial_number,
            model: row.model,
            category: row.category.parse().unwrap_or_default(),
            in_fleet: !OUT_OF_FLEET.contains(&row.lifecycle_state.as_str()),
            lifecycle_state,
            purchase_date: row.purchased,
            purchase_date_estimated: row.purchase_estimated,
            life_years,
            life_from: row.life_from,
            end_of_life_year: planning::end_of_life_year(row.purchased, life_years),
            purchase_price: row.purchase_price,
            replacement_price: row.replacement_price,
            price_from: row.price_from,
            warranty_end: row.warranty_end,
        }
    }
}

/// The columns of `PlanRow`, selected from `plan p` joined to `school s` and
/// `school_authority a`.
pub(crate) const PLAN_COLUMNS: &str = "p.authority_id, p.school_id, p.device_id, a.slug as authority, s.school_number, s.name as school_name, \
    p.asset_tag, p.serial_number, p.model, p.category, p.lifecycle_state, p.purchased, \
    p.purchase_estimated, p.life_years, p.life_from, p.purchase_price, p.replacement_price, \
    p.price_from, p.warranty_end \
    from plan p join school_authority a on a.authority_id = p.authority_id \
    left join school s on s.school_id = p.school_id";

const PLAN_ORDER: &str =
    "a.slug, s.school_number nulls last, p.asset_tag nulls last, p.serial_number nulls last, p.device_id";

/// The effective plan of every device in `scope` (at `school`, if given), the fleet and the
/// devices that left it alike, ordered by authority, school and asset tag.
pub async fn device_plans(
    pool: &PgPool,
    scope: &Scope,
    school: Option<&str>,
) -> Result<Vec<DevicePlan>, CoreError> {
    let school = school_filter(pool, scope, school).await?;
    let sql = format!("{} select {PLAN_COLUMNS} order by {PLAN_ORDER}", plan_cte());
    let rows: Vec<PlanRow> = bind_plan!(sqlx::query_as(&sql), scope, school)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(DevicePlan::from).collect())
}

/// One device in the warranty report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WarrantyDevice {
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub lifecycle_state: String,
    pub warranty_end: Option<NaiveDate>,
    /// For devices in repair: the day the open repair was opened, if one is recorded.
    pub repair_opened_on: Option<NaiveDate>,
}

/// How many devices of one model at one school leave their warranty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarrantyGroup {
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub model: Option<String>,
    pub devices: u32,
    /// The earliest warranty end among them.
    pub first_end: NaiveDate,
}

/// `bestand reports warranty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarrantyReport {
    pub today: NaiveDate,
    pub months: u32,
    /// Warranties ending from `today` up to and including this day are listed.
    pub until: NaiveDate,
    pub groups: Vec<WarrantyGroup>,
    pub expiring: Vec<WarrantyDevice>,
    /// Devices in repair (state `in_repair` or an open repair) whose warranty has ended or is
    /// not known: the authority pays.
    pub in_repair_outside_warranty: Vec<WarrantyDevice>,
}

/// Devices of the fleet in `scope` whose warranty ends within `months` from `today`, per
/// school and model, and devices in repair outside their warranty.
pub async fn warranty_report(
    pool: &PgPool,
    scope: &Scope,
    today: NaiveDate,
    months: u32,
    school: Option<&str>,
) -> Result<WarrantyReport, CoreError> {
    let school = school_filter(pool, scope, school).await?;
    let until = today
        .checked_add_months(Months::new(months))
        .ok_or_else(|| CoreError::Invalid(format!("{months} months from {today} is no date")))?;
    let columns = "a.slug as authority, s.school_number, s.name as school_name, p.asset_tag, \
         p.serial_number, p.model, p.lifecycle_state, p.warranty_end, \
         (select r.opened_on from repair r where r.device_id = p.device_id and r.closed_on is null) \
           as repair_opened_on \
         from plan p join school_authority a on a.authority_id = p.authority_id \
         left join school s on s.school_id = p.school_id";
    let sql = format!(
        "{} select {columns} where {} and p.warranty_end between $6 and $7 \
         order by a.slug, s.school_number nulls last, p.model nulls last, p.warranty_end, p.asset_tag nulls last",
        plan_cte(),
        in_fleet("p")
    );
    let expiring: Vec<WarrantyDevice> = bind_plan!(sqlx::query_as(&sql), scope, school)
        .bind(today)
        .bind(until)
        .fetch_all(pool)
        .await?;
    let sql = format!(
        "{} select {columns} where (p.lifecycle_state = 'in_repair' or exists (select 1 from repair r \
         where r.device_id = p.device_id and r.closed_on is null)) \
         and (p.warranty_end is null or p.warranty_end < $6) \
         order by a.slug, s.school_number nulls last, p.asset_tag nulls last",
        plan_cte()
    );
    let in_repair: Vec<WarrantyDevice> = bind_plan!(sqlx::query_as(&sql), scope, school)
        .bind(today)
        .fetch_all(pool)
        .await?;
    let mut groups: Vec<WarrantyGroup> = Vec::new();
    for device in &expiring {
        let end = device.warranty_end.unwrap_or(until);
        match groups.last_mut() {
            Some(group)
                if group.authority == device.authority
                    && group.school_number == device.school_number
                    && group.model == device.model =>
            {
                group.devices += 1;
                group.first_end = group.first_end.min(end);
            }
            _ => groups.push(WarrantyGroup {
                authority: device.authority.clone(),
                school_number: device.school_number.clone(),
                school_name: device.school_name.clone(),
                model: device.model.clone(),
                devices: 1,
                first_end: end,
            }),
        }
    }
    Ok(WarrantyReport {
        today,
        months,
        until,
        groups,
        expiring,
        in_repair_outside_warranty: in_repair,
    })
}

/// One device's book value at the report's date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepreciationDevice {
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub category: DeviceCategory,
    pub purchase_date: NaiveDate,
    pub purchase_date_estimated: bool,
    pub life_years: u32,
    pub life_from: String,
    /// None: no purchase price is known; the device is listed, not counted as 0.
    pub purchase_price: Option<Decimal>,
    pub accumulated_depreciation: Option<Decimal>,
    pub net_book_value: Option<Decimal>,
}

/// The book values of a school (`school_number` set) or an authority (none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepreciationTotal {
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    /// Devices with a purchase price, whose values the sums are.
    pub devices: u32,
    /// Devices without a purchase price: not in the sums.
    pub devices_without_price: u32,
    pub purchase_price: Decimal,
    pub accumulated_depreciation: Decimal,
    pub net_book_value: Decimal,
}

/// `bestand reports depreciation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepreciationReport {
    pub at: NaiveDate,
    pub devices: Vec<DepreciationDevice>,
    /// Per school (devices without a school under an empty school).
    pub schools: Vec<DepreciationTotal>,
    pub authorities: Vec<DepreciationTotal>,
}

/// Straight-line book values at `at` of the fleet in `scope` (at `school`, if given): every
/// device bought on or before `at`, written off over its effective life from its purchase
/// date (`planning::net_book_value`), with totals per school and authority.
pub async fn depreciation_report(
    pool: &PgPool,
    scope: &Scope,
    at: NaiveDate,
    school: Option<&str>,
) -> Result<DepreciationReport, CoreError> {
    let school = school_filter(pool, scope, school).await?;
    let sql = format!(
        "{} select {PLAN_COLUMNS} where {} and p.purchased <= $6 order by {PLAN_ORDER}",
        plan_cte(),
        in_fleet("p")
    );
    let rows: Vec<PlanRow> = bind_plan!(sqlx::query_as(&sql), scope, school)
        .bind(at)
        .fetch_all(pool)
        .await?;
    let devices: Vec<DepreciationDevice> = rows
        .into_iter()
        .map(DevicePlan::from)
        .map(|plan| {
            let value = plan.purchase_price.map(|price| {
                planning::net_book_value(price, plan.purchase_date, plan.life_years, at)
            });
            DepreciationDevice {
                authority: plan.authority,
                school_number: plan.school_number,
                school_name: plan.school_name,
                asset_tag: plan.asset_tag,
                serial_number: plan.serial_number,
                model: plan.model,
                category: plan.category,
                purchase_date: plan.purchase_date,
                purchase_date_estimated: plan.purchase_date_estimated,
                life_years: plan.life_years,
                life_from: plan.life_from,
                purchase_price: plan.purchase_price,
                accumulated_depreciation: plan
                    .purchase_price
                    .zip(value)
                    .map(|(price, value)| price - value),
                net_book_value: value,
            }
        })
        .collect();
    let total = |authority: &str, school: Option<(&Option<String>, &Option<String>)>| {
        let mut sum = DepreciationTotal {
            authority: authority.to_string(),
            school_number: school.and_then(|(number, _)| number.clone()),
            school_name: school.and_then(|(_, name)| name.clone()),
            devices: 0,
            devices_without_price: 0,
            purchase_price: Decimal::ZERO,
            accumulated_depreciation: Decimal::ZERO,
            net_book_value: Decimal::ZERO,
        };
        let members = devices.iter().filter(|d| {
            d.authority == authority && school.is_none_or(|(number, _)| d.school_number == *number)
        });
        for device in members {
            match (
                device.purchase_price,
                device.accumulated_depreciation,
                device.net_book_value,
            ) {
                (Some(price), Some(accumulated), Some(value)) => {
                    sum.devices += 1;
                    sum.purchase_price += price;
                    sum.accumulated_depreciation += accumulated;
                    sum.net_book_value += value;
                }
                _ => sum.devices_without_price += 1,
            }
        }
        sum
    };
    let mut places: Vec<(String, Option<String>, Option<String>)> = devices
        .iter()
        .map(|d| {
            (
                d.authority.clone(),
                d.school_number.clone(),
                d.school_name.clone(),
            )
        })
        .collect();
    places.dedup();
    let schools = places
        .iter()
        .map(|(authority, number, name)| total(authority, Some((number, name))))
        .collect();
    let mut authorities: Vec<String> = places.into_iter().map(|(a, _, _)| a).collect();
    authorities.dedup();
    let authorities = authorities.iter().map(|a| total(a, None)).collect();
    Ok(DepreciationReport {
        at,
        devices,
        schools,
        authorities,
    })
}
