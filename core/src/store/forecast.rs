//! The replacement forecast over the fleet (`bestand reports replacement`): the database
//! aggregates devices into cohorts (school, category, year the life ends, price, count) and
//! `planning::forecast_cohorts` forecasts over those, so a million devices cost one grouped
//! scan; the devices behind each line are read only when asked for.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::DeviceCategory;
use crate::planning::{self, Cohort, ForecastOptions, GrowthNeed, LineKind};
use crate::service_level::Quarter;
use crate::store::in_scope;
use crate::store::plans::{
    bind_plan, cohort_cte, in_fleet, plan_cte, school_filter, DevicePlan, PlanRow, PLAN_COLUMNS,
};
use crate::store::ticket_report::{self, EarlyCohort};

/// What to forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacementRequest {
    pub first_year: i32,
    pub last_year: i32,
    /// The year catalogue prices are quoted in: the current year.
    pub price_year: i32,
    /// Yearly price increase as a fraction (0.025 for 2,5 %).
    pub yearly_increase: Decimal,
    pub smooth: bool,
    /// Add growth lines for the target equipment of each school.
    pub target: bool,
    /// Spread growth over every year of the range instead of the first.
    pub spread_growth: bool,
    pub school: Option<String>,
    /// List the devices behind each replacement line.
    pub devices: bool,
    /// Replace cohorts early that cause more tickets than this.
    pub early_by_tickets: Option<EarlyByTickets>,
}

/// `--early-by-tickets`: replace in the first budget year every cohort (an authority's devices
/// of one model and age) with more than `threshold` tickets per device over the four quarters
/// up to `last` (docs/reports.md, "Early replacement for tickets").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EarlyByTickets {
    /// Tickets per device and year.
    pub threshold: Decimal,
    /// The last quarter of the four counted, usually the last complete one.
    pub last: Quarter,
}

/// One line of the forecast: a budget year, school, category and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplacementLine {
    pub year: i32,
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub category: DeviceCategory,
    pub kind: LineKind,
    pub devices: u32,
    /// At the year's prices, for the devices with a price.
    pub cost: Decimal,
    pub devices_without_price: u32,
}

/// One total of the chart: a year, or a year and a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForecastTotal {
    pub year: i32,
    pub category: Option<DeviceCategory>,
    pub devices: u32,
    pub cost: Decimal,
    pub devices_without_price: u32,
}

/// What a school's target equipment asks for in one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    pub authority: String,
    pub school_number: String,
    pub school_name: String,
    pub category: DeviceCategory,
    /// The pupils the target counts with, and where they come from (`entered`, `directory`).
    pub pupils: u32,
    pub pupils_from: String,
    pub target: u32,
    pub current: u32,
    pub growth: u32,
    pub price: Option<Decimal>,
}

/// A device behind a replacement line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForecastDevice {
    /// The budget year it is planned in (after smoothing).
    pub year: i32,
    #[serde(flatten)]
    pub plan: DevicePlan,
}

/// `bestand reports replacement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplacementForecast {
    pub first_year: i32,
    pub last_year: i32,
    pub price_year: i32,
    pub yearly_increase: Decimal,
    pub smooth: bool,
    pub lines: Vec<ReplacementLine>,
    /// Per year, all categories (`category` empty), then per year and category: the chart's
    /// data (cost per year, stacked by category).
    pub by_year: Vec<ForecastTotal>,
    pub by_year_and_category: Vec<ForecastTotal>,
    /// The targets behind the growth lines (with `target`).
    pub targets: Vec<TargetView>,
    /// Devices in the lines whose purchase date is estimated from their first sighting.
    pub estimated_purchase_dates: u64,
    /// With `devices`: every device behind a replacement line.
    pub devices: Vec<ForecastDevice>,
    /// With `early_by_tickets`: what was asked, and the cohorts above the threshold, whose
    /// devices are on the early replacement lines (those due by the first year anyway stay on
    /// the ordinary ones).
    pub early_by_tickets: Option<EarlyByTickets>,
    pub early_cohorts: Vec<EarlyCohort>,
}

/// Where a cohort's key points: its authority and school.
#[derive(Clone)]
struct Place {
    authority: String,
    school_number: Option<String>,
    school_name: Option<String>,
}

fn place_key(authority: Uuid, school: Option<Uuid>) -> String {
    match school {
        Some(school) => format!("{authority}/{school}"),
        None => format!("{authority}/"),
    }
}

/// The replacement forecast of the fleet in `scope` (at `request.school`, if given): per
/// budget year, authority, school and category, the devices that reach the end of their life
/// and their cost at catalogue prices increased year by year from the price year; devices
/// already past it count into the first year. With `target`, growth lines bring each school
/// up to its target equipment.
pub async fn replacement_forecast(
    pool: &PgPool,
    scope: &Scope,
    request: &ReplacementRequest,
) -> Result<ReplacementForecast, CoreError> {
    if request.first_year > request.last_year {
        return Err(CoreError::Invalid(format!(
            "the years {}-{} run backwards",
            request.first_year, request.last_year
        )));
    }
    let school = school_filter(pool, scope, request.school.as_deref()).await?;
    let places = places(pool, scope).await?;
    let early_cohorts = match &request.early_by_tickets {
        Some(early) => {
            let threshold = early.threshold.to_f64().unwrap_or(f64::MAX);
            ticket_report::early_cohorts(pool, scope, early.last, threshold).await?
        }
        None => Vec::new(),
    };
    let marked = EarlyMarks::new(request.early_by_tickets.as_ref(), &early_cohorts);
    // Every cohort of the fleet, also those due after the range: the targets count the
    // current fleet and price growth from them.
    let sql = format!(
        "{} select p.authority_id, p.school_id, p.category, p.due_year, p.replacement_price, \
         p.early, sum(p.devices)::bigint, sum(p.estimated)::bigint from plan p \
         group by 1, 2, 3, 4, 5, 6",
        cohort_cte(marked.is_some())
    );
    type CohortRow = (
        Uuid,
        Option<Uuid>,
        String,
        i32,
        Option<Decimal>,
        bool,
        i64,
        i64,
    );
    // The grouping has a few thousand groups, but the planner guesses up to a tenth of the
    // fleet; with the default 4 MB it sorts a million rows on disk instead of hashing them
    // (2.7 s against 0.9 s for 1,000,000 devices), and compiling the query (JIT) costs more
    // than it saves. Both settings hold for this read-only transaction alone
    // (docs/performance.md, "Replacement forecast").
    let mut tx = pool.begin().await?;
    sqlx::query("set local work_mem = '32MB'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    let query = bind_plan!(sqlx::query_as(&sql), scope, school);
    let rows: Vec<CohortRow> = match &marked {
        Some(marks) => marks.bind(query),
        None => query,
    }
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let mut estimated = 0;
    let mut current: HashMap<(String, DeviceCategory), u32> = HashMap::new();
    let mut priced: HashMap<(Uuid, DeviceCategory), (Decimal, u32)> = HashMap::new();
    let cohorts: Vec<Cohort> = rows
        .into_iter()
        .map(
            |(authority, school, category, due_year, price, early, devices, est)| {
                let devices = u32::try_from(devices).unwrap_or(u32::MAX);
                let category: DeviceCategory = category.parse().unwrap_or_default();
                let key = place_key(authority, school);
                if due_year <= request.last_year {
                    estimated += u64::try_from(est).unwrap_or(0);
                }
                *current.entry((key.clone(), category)).or_default() += devices;
                if let Some(price) = price {
                    let sum = priced.entry((authority, category)).or_default();
                    sum.0 += price * Decimal::from(devices);
                    sum.1 += devices;
                }
                Cohort {
                    school: Some(key),
                    category,
                    due_year,
                    replacement_price: price,
                    devices,
                    early,
                }
            },
        )
        .collect();
    let fleet_price: HashMap<(Uuid, DeviceCategory), Decimal> = priced
        .into_iter()
        .filter(|(_, (_, devices))| *devices > 0)
        .map(|(key, (sum, devices))| (key, planning::cents(sum / Decimal::from(devices))))
        .collect();
    let targets = if request.target {
        targets(pool, scope, school, &current, &fleet_price).await?
    } else {
        Vec::new()
    };
    let growth: Vec<GrowthNeed> = targets
        .iter()
        .filter(|(_, view)| view.growth > 0)
        .map(|(key, view)| GrowthNeed {
            school: Some(key.clone()),
            category: view.category,
            devices: view.growth,
            price: view.price,
        })
        .collect();
    let forecast = planning::forecast_cohorts(&cohorts, &growth, &planning_options(request));
    let unknown = Place {
        authority: String::new(),
        school_number: None,
        school_name: None,
    };
    let mut lines: Vec<ReplacementLine> = forecast
        .into_iter()
        .map(|line| {
            let place = line
                .school
                .as_ref()
                .and_then(|key| places.get(key))
                .unwrap_or(&unknown)
                .clone();
            ReplacementLine {
                year: line.year,
                authority: place.authority,
                school_number: place.school_number,
                school_name: place.school_name,
                category: line.category,
                kind: line.kind,
                devices: line.devices,
                cost: line.cost,
                devices_without_price: line.devices_without_price,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        (a.year, &a.authority, &a.school_number, a.category, a.kind).cmp(&(
            b.year,
            &b.authority,
            &b.school_number,
            b.category,
            b.kind,
        ))
    });
    let mut by_year: BTreeMap<(i32, Option<DeviceCategory>), ForecastTotal> = BTreeMap::new();
    let mut by_category: BTreeMap<(i32, Option<DeviceCategory>), ForecastTotal> = BTreeMap::new();
    for line in &lines {
        for (totals, category) in [
            (&mut by_year, None),
            (&mut by_category, Some(line.category)),
        ] {
            let total = totals
                .entry((line.year, category))
                .or_insert(ForecastTotal {
                    year: line.year,
                    category,
                    devices: 0,
                    cost: Decimal::ZERO,
                    devices_without_price: 0,
                });
            total.devices += line.devices;
            total.cost += line.cost;
            total.devices_without_price += line.devices_without_price;
        }
    }
    let devices = if request.devices {
        forecast_devices(pool, scope, school, request, marked.as_ref()).await?
    } else {
        Vec::new()
    };
    Ok(ReplacementForecast {
        first_year: request.first_year,
        last_year: request.last_year,
        price_year: request.price_year,
        yearly_increase: request.yearly_increase,
        smooth: request.smooth,
        lines,
        by_year: by_year.into_values().collect(),
        by_year_and_category: by_category.into_values().collect(),
        targets: targets.into_iter().map(|(_, view)| view).collect(),
        estimated_purchase_dates: estimated,
        devices,
        early_by_tickets: request.early_by_tickets,
        early_cohorts,
    })
}

/// Every school in the scope, and every authority (for devices without a school), by the key
/// cohorts carry.
async fn places(pool: &PgPool, scope: &Scope) -> Result<HashMap<String, Place>, CoreError> {
    let sql = "select a.authority_id, a.slug, s.school_id, s.school_number, s.name \
         from school_authority a left join school s on s.authority_id = a.authority_id \
         where ($1::uuid is null or a.authority_id = $1)";
    type Row = (Uuid, String, Option<Uuid>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(sql)
        .bind(scope.authority_param())
        .fetch_all(pool)
        .await?;
    let mut places = HashMap::new();
    for (authority, slug, school, number, name) in rows {
        places.insert(
            place_key(authority, None),
            Place {
                authority: slug.clone(),
                school_number: None,
                school_name: None,
            },
        );
        if school.is_some() {
            places.insert(
                place_key(authority, school),
                Place {
                    authority: slug,
                    school_number: number,
                    school_name: name,
                },
            );
        }
    }
    Ok(places)
}

/// The target equipment of the schools in scope, with the pupils it counts, the current fleet
/// and the growth it asks for, keyed like the cohorts.
///
/// Pupils: the entered `school_pupils` (all levels) where a school has any, else the pupils
/// the directory reports at the school (role `student`, not left). Price of a new device: the
/// mean list price of the authority's catalogue entries of the category, else the mean
/// replacement price of its fleet in the category, else none.
async fn targets(
    pool: &PgPool,
    scope: &Scope,
    school: Option<Uuid>,
    current: &HashMap<(String, DeviceCategory), u32>,
    fleet_price: &HashMap<(Uuid, DeviceCategory), Decimal>,
) -> Result<Vec<(String, TargetView)>, CoreError> {
    let sql = format!(
        "select t.authority_id, t.school_id, a.slug, s.school_number, s.name, t.category, \
         t.devices_per_pupil, t.devices_per_room, t.class_rooms, \
         (select sum(sp.pupils) from school_pupils sp where sp.school_id = t.school_id)::int as entered, \
         (select count(distinct m.person_id) from person_membership m join person pe using (person_id) \
          where m.school_id = t.school_id and m.role = 'student' and pe.left_at is null)::int as directory, \
         (select round(avg(dm.list_price), 2) from device_model dm \
          where dm.authority_id = t.authority_id and dm.category = t.category) as price \
         from school_target_equipment t join school s on s.school_id = t.school_id \
         join school_authority a on a.authority_id = t.authority_id \
         where {} and ($3::uuid is null or t.school_id = $3) \
         order by a.slug, s.school_number, t.category",
        in_scope("t.authority_id", "t.school_id", 1, 2)
    );
    type Row = (
        Uuid,
        Uuid,
        String,
        String,
        String,
        String,
        Option<Decimal>,
        Option<Decimal>,
        Option<i32>,
        Option<i32>,
        i32,
        Option<Decimal>,
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .bind(school)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                authority,
                school,
                slug,
                number,
                name,
                category,
                per_pupil,
                per_room,
                rooms,
                entered,
                directory,
                catalogue_price,
            )| {
                let (pupils, pupils_from) = match entered {
                    Some(entered) => (entered, "entered"),
                    None => (directory, "directory"),
                };
                let pupils = u32::try_from(pupils).unwrap_or(0);
                let rooms = rooms.and_then(|rooms| u32::try_from(rooms).ok());
                let target = planning::target_devices(pupils, per_pupil, rooms, per_room);
                let category: DeviceCategory = category.parse().unwrap_or_default();
                let key = place_key(authority, Some(school));
                let current = current.get(&(key.clone(), category)).copied().unwrap_or(0);
                let price =
                    catalogue_price.or_else(|| fleet_price.get(&(authority, category)).copied());
                let view = TargetView {
                    authority: slug,
                    school_number: number,
                    school_name: name,
                    category,
                    pupils,
                    pupils_from: pupils_from.to_string(),
                    target,
                    current,
                    growth: target.saturating_sub(current),
                    price,
                };
                (key, view)
            },
        )
        .collect())
}

/// The devices behind the replacement lines, each in the year the forecast plans it: grouped
/// and ordered as `planning::forecast_cohorts` splits cohorts when smoothing.
async fn forecast_devices(
    pool: &PgPool,
    scope: &Scope,
    school: Option<Uuid>,
    request: &ReplacementRequest,
    marked: Option<&EarlyMarks>,
) -> Result<Vec<ForecastDevice>, CoreError> {
    // Devices marked early may be due after the range; with marks the whole fleet is read.
    let sql = format!(
        "{} select {PLAN_COLUMNS} where {} and (p.due_year <= $6 or $7)",
        plan_cte(),
        in_fleet("p")
    );
    let rows: Vec<PlanRow> = bind_plan!(sqlx::query_as(&sql), scope, school)
        .bind(request.last_year)
        .bind(marked.is_some())
        .fetch_all(pool)
        .await?;
    let options = planning_options(request);
    type GroupKey = (i32, String, DeviceCategory, LineKind);
    let mut groups: BTreeMap<GroupKey, Vec<DevicePlan>> = BTreeMap::new();
    for row in rows {
        let (authority, school) = (row.authority_id, row.school_id);
        let plan = DevicePlan::from(row);
        let cohort = Cohort {
            school: None,
            category: plan.category,
            due_year: plan.end_of_life_year,
            replacement_price: plan.replacement_price,
            devices: 1,
            early: marked.is_some_and(|marks| marks.contains(authority, &plan)),
        };
        let (year, kind) = planning::planned_year(&cohort, &options);
        if year > request.last_year {
            continue;
        }
        groups
            .entry((year, place_key(authority, school), plan.category, kind))
            .or_default()
            .push(plan);
    }
    let mut devices = Vec::new();
    for ((year, ..), mut members) in groups {
        members.sort_by(|a, b| {
            (
                a.end_of_life_year,
                a.replacement_price,
                &a.asset_tag,
                &a.serial_number,
                a.device_id,
            )
                .cmp(&(
                    b.end_of_life_year,
                    b.replacement_price,
                    &b.asset_tag,
                    &b.serial_number,
                    b.device_id,
                ))
        });
        let total = members.len();
        let stay = if request.smooth {
            total - total / 2
        } else {
            total
        };
        for (index, plan) in members.into_iter().enumerate() {
            let planned = if index < stay { year } else { year + 1 };
            if planned <= request.last_year {
                devices.push(ForecastDevice {
                    year: planned,
                    plan,
                });
            }
        }
    }
    devices.sort_by(|a, b| {
        (
            a.year,
            &a.plan.authority,
            &a.plan.school_number,
            a.plan.category,
            &a.plan.asset_tag,
        )
            .cmp(&(
                b.year,
                &b.plan.authority,
                &b.plan.school_number,
                b.plan.category,
                &b.plan.asset_tag,
            ))
    });
    Ok(devices)
}

fn planning_options(request: &ReplacementRequest) -> ForecastOptions {
    ForecastOptions {
        first_year: request.first_year,
        last_year: request.last_year,
        price_year: request.price_year,
        yearly_increase: request.yearly_increase,
        smooth: request.smooth,
        spread_growth: request.spread_growth,
    }
}

/// The cohorts to replace early, as the cohort query binds them (`plans::cohort_cte`) and as
/// the device list tests each device: by authority, trimmed model and age in whole years on
/// `on`, the day after the last quarter counted.
struct EarlyMarks {
    cohorts: HashSet<(Uuid, String, i32)>,
    on: NaiveDate,
}

impl EarlyMarks {
    /// None without `--early-by-tickets`; with it, marks for the cohorts found (maybe none).
    fn new(request: Option<&EarlyByTickets>, cohorts: &[EarlyCohort]) -> Option<EarlyMarks> {
        Some(EarlyMarks {
            cohorts: cohorts
                .iter()
                .map(|cohort| {
                    let age = i32::try_from(cohort.tickets.age_years).unwrap_or(i32::MAX);
                    (cohort.authority_id, cohort.tickets.model.clone(), age)
                })
                .collect(),
            on: request?.last.next().first_day(),
        })
    }

    /// Binds `$6` authorities, `$7` models, `$8` ages and `$9` the day, as `cohort_cte(true)`
    /// reads them.
    fn bind<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        let mut authorities = Vec::with_capacity(self.cohorts.len());
        let mut models = Vec::with_capacity(self.cohorts.len());
        let mut ages = Vec::with_capacity(self.cohorts.len());
        for (authority, model, age) in &self.cohorts {
            authorities.push(*authority);
            models.push(model.clone());
            ages.push(*age);
        }
        query
            .bind(authorities)
            .bind(models)
            .bind(ages)
            .bind(self.on)
    }

    /// Whether `plan` (a device of `authority`) belongs to a marked cohort: its age counted as
    /// PostgreSQL's `age` counts whole years, as the cohort query does.
    fn contains(&self, authority: Uuid, plan: &DevicePlan) -> bool {
        let Some(model) = plan.model.as_deref().map(str::trim) else {
            return false;
        };
        let age = planning::whole_years(plan.purchase_date, self.on);
        self.cohorts.contains(&(authority, model.to_string(), age))
    }
}
