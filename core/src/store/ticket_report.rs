//! The ticket report (issue 18, docs/service-levels.md): reads from the ticket store what the
//! service-level figures need — each ticket's times, state, priority, topic, school, provider
//! and its linked devices' model and age — and the fleet's device counts per model and age,
//! then hands them to the pure `service_level::ticket_figures`. One authority at a time,
//! because its service hours are its own.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Berlin;
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::planning;
use crate::service_level::{
    replacement_feed, ticket_figures, CohortTickets, DeviceCounts, Quarter, ServiceCalendar,
    ServiceTargets, TicketDevice, TicketFacts, TicketFigures,
};
use crate::store::plans::in_fleet;
use crate::store::push_scope;
use crate::ticket::TicketState;

/// What `bestand reports tickets` asks for.
#[derive(Debug, Clone)]
pub struct TicketReportRequest {
    /// The authority (slug); may be left out when the scope reaches only one with tickets.
    pub authority: Option<String>,
    /// The quarter reported on; the figures cover it and the quarters before it.
    pub period: Quarter,
    /// How many quarters, `period` last (the charts show eight).
    pub quarters: usize,
}

/// The report: the figures per quarter and group, and what they were computed from.
#[derive(Debug, Clone, Serialize)]
pub struct TicketReport {
    pub authority: String,
    pub period: Quarter,
    /// Oldest first, `period` last.
    pub quarters: Vec<Quarter>,
    /// Tickets read for these quarters (merged ones included, which the figures leave out).
    pub tickets_read: u64,
    /// Devices of the fleet in the scope, the base of the rates per 100 devices.
    pub fleet_devices: u64,
    pub figures: TicketFigures,
}

#[derive(sqlx::FromRow)]
struct FactRow {
    ticket_id: Uuid,
    created_at: DateTime<Utc>,
    first_response_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    forwarded_at: Option<DateTime<Utc>>,
    state: String,
    priority: Option<String>,
    topic: String,
    school_id: Option<Uuid>,
    provider: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    model: Option<String>,
    age_years: Option<i32>,
    devices: i64,
}

/// The authority the report is about: the one named, else the only one in the scope that has
/// tickets. An authority outside the scope answers like an unknown one.
async fn report_authority(
    pool: &PgPool,
    scope: &Scope,
    slug: Option<&str>,
) -> Result<(Uuid, String), CoreError> {
    let mut query =
        QueryBuilder::new("select a.authority_id, a.slug from school_authority a where true");
    if let Some(authority_id) = scope.authority_param() {
        query.push(" and a.authority_id = ").push_bind(authority_id);
    }
    if let Some(slug) = slug {
        query
            .push(" and a.slug = ")
            .push_bind(slug.trim().to_string());
    } else {
        query.push(" and exists (select 1 from ticket t where t.authority_id = a.authority_id)");
    }
    query.push(" order by a.slug");
    let found: Vec<(Uuid, String)> = query.build_query_as().fetch_all(pool).await?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CoreError::NotFound {
            what: "authority",
            key: slug.unwrap_or("with tickets").to_string(),
        }),
        several => Err(CoreError::Conflict(format!(
            "tickets of {} authorities ({}): name one with --authority",
            several.len(),
            several
                .iter()
                .map(|(_, slug)| slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The ticket report of `request` within `scope`, counted in `calendar`'s service hours
/// against `targets`. Tickets and devices outside the scope are not counted; a ticket without
/// a school is outside every scope of schools.
pub async fn ticket_report(
    pool: &PgPool,
    scope: &Scope,
    calendar: &ServiceCalendar,
    targets: &ServiceTargets,
    request: &TicketReportRequest,
) -> Result<TicketReport, CoreError> {
    let (authority_id, slug) = report_authority(pool, scope, request.authority.as_deref()).await?;
    let quarters = request.period.last(request.quarters.max(1));
    let first = quarters[0];
    let start = first.start();
    let end = request.period.end();

    // Every ticket that can count in one of the quarters.
    let mut query = QueryBuilder::new(
        "select t.ticket_id, t.created_at, t.first_response_at, t.closed_at, t.forwarded_at, \
         t.state, t.priority, t.topic, t.school_id, t.provider from ticket t \
         where t.deleted_at is null and t.authority_id = ",
    );
    query.push_bind(authority_id);
    push_scope(&mut query, scope, "t.authority_id", "t.school_id");
    push_counting(&mut query, start, end);
    let rows: Vec<FactRow> = query.build_query_as().fetch_all(pool).await?;

    // The linked devices in the scope, each with its age in whole years when the ticket was
    // opened (from its purchase date, else the day a source first reported it). The links are
    // read as bare pairs and joined to the tickets and the (few) devices here: joining them to
    // half a million tickets in the database took longer than the rest of the report.
    let mut query = QueryBuilder::new(
        "select d.device_id, d.model, coalesce(d.purchase_date, \
         (d.first_seen_at at time zone 'Europe/Berlin')::date) from device d \
         where d.authority_id = ",
    );
    query.push_bind(authority_id);
    push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    let devices: HashMap<Uuid, (Option<String>, NaiveDate)> = query
        .build_query_as::<(Uuid, Option<String>, NaiveDate)>()
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id, model, purchased)| (id, (model, purchased)))
        .collect();
    // Schools by id, named "number name" as the figures show them.
    let schools: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "select school_id, school_number || ' ' || name from school where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let at: HashMap<Uuid, usize> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| (row.ticket_id, index))
        .collect();
    let links: Vec<(Uuid, Uuid)> =
        sqlx::query_as("select ticket_id, device_id from ticket_device where authority_id = $1")
            .bind(authority_id)
            .fetch_all(pool)
            .await?;
    let mut devices_of: Vec<Vec<TicketDevice>> = vec![Vec::new(); rows.len()];
    for (ticket_id, device_id) in links {
        let (Some(&index), Some((model, purchased))) =
            (at.get(&ticket_id), devices.get(&device_id))
        else {
            continue;
        };
        let opened = rows[index].created_at.with_timezone(&Berlin).date_naive();
        devices_of[index].push(TicketDevice {
            model: model.clone(),
            age_years: u32::try_from(planning::whole_years(*purchased, opened)).ok(),
        });
    }

    let facts: Vec<TicketFacts> = rows
        .into_iter()
        .zip(devices_of)
        .map(|(row, devices)| {
            let state = ticket_state(&row.state);
            TicketFacts {
                created: row.created_at,
                first_response: row.first_response_at,
                closed: row.closed_at,
                forwarded_at: row.forwarded_at,
                state,
                priority: row.priority,
                topic: Some(row.topic),
                school: row.school_id.and_then(|id| schools.get(&id)).cloned(),
                provider: row.provider,
                devices,
                merged: state == TicketState::Merged,
            }
        })
        .collect();

    let (counts, fleet_devices) = fleet_counts(pool, scope, authority_id, end).await?;
    let figures = ticket_figures(&facts, calendar, targets, &quarters, &counts);
    Ok(TicketReport {
        authority: slug,
        period: request.period,
        quarters,
        tickets_read: facts.len() as u64,
        fleet_devices,
        figures,
    })
}

/// The fleet in the scope per model and per age in whole years at `at` (the end of the period),
/// and its size (devices without a model or a date count there, not per model or age).
async fn fleet_counts(
    pool: &PgPool,
    scope: &Scope,
    authority_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(DeviceCounts, u64), CoreError> {
    let rows = fleet_rows(pool, scope, authority_id, at).await?;
    let mut by_model: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_age_year: BTreeMap<u32, u64> = BTreeMap::new();
    let mut total = 0;
    for row in rows {
        let devices = u64::try_from(row.devices).unwrap_or(0);
        total += devices;
        if let Some(model) = row.model {
            *by_model.entry(model).or_default() += devices;
        }
        if let Some(age) = row.age_years.and_then(|age| u32::try_from(age).ok()) {
            *by_age_year.entry(age).or_default() += devices;
        }
    }
    Ok((
        DeviceCounts {
            by_model,
            by_age_year,
        },
        total,
    ))
}

/// The fleet of the authority in the scope grouped by model and age in whole years at `at`
/// (from the purchase date, else the day a source first reported the device).
async fn fleet_rows(
    pool: &PgPool,
    scope: &Scope,
    authority_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<CountRow>, CoreError> {
    let mut query = QueryBuilder::new("select d.model, extract(year from age(");
    query
        .push_bind(at)
        .push(
            "::timestamptz at time zone 'Europe/Berlin', coalesce(d.purchase_date, \
             (d.first_seen_at at time zone 'Europe/Berlin')::date)))::int as age_years, \
             count(*) as devices from device d where d.authority_id = ",
        )
        .push_bind(authority_id);
    push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    query.push(format!(" and {} group by 1, 2", in_fleet("d")));
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Tickets `t` that can count in `[start, end)`: opened before it ends, and not closed before it
/// starts (a ticket closed earlier is in no figure).
fn push_counting(
    query: &mut QueryBuilder<'_, sqlx::Postgres>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    query
        .push(" and t.created_at < ")
        .push_bind(end)
        .push(" and (t.closed_at is null or t.closed_at >= ")
        .push_bind(start)
        .push(" or t.state <> 'closed')");
}

fn ticket_state(text: &str) -> TicketState {
    match text {
        "new" => TicketState::New,
        "open" => TicketState::Open,
        "pending" => TicketState::Pending,
        "closed" => TicketState::Closed,
        _ => TicketState::Merged,
    }
}

/// A cohort of devices (one authority's devices of one model and age) whose tickets per device
/// over a year exceed the threshold the replacement forecast was given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarlyCohort {
    pub authority: String,
    #[serde(skip)]
    pub authority_id: Uuid,
    #[serde(flatten)]
    pub tickets: CohortTickets,
}

/// The cohorts to replace early for their tickets: per authority in the scope, the devices of
/// each (model, age in years at the end of `last`) and the tickets of the four quarters up to
/// `last` that name one of them (`service_level::replacement_feed`), those above `threshold`
/// tickets per device and year, ordered by authority, model and age. Tickets and devices outside the
/// scope are not counted, and a cohort is one authority's: tickets of one authority never move
/// another's devices.
pub async fn early_cohorts(
    pool: &PgPool,
    scope: &Scope,
    last: Quarter,
    threshold: f64,
) -> Result<Vec<EarlyCohort>, CoreError> {
    let start = last.last(4)[0].start();
    let end = last.end();
    // Each ticket's linked devices with their age at the end of `last`, the day the cohorts'
    // devices are counted on: a cohort is one set of devices, and a ticket counts for the cohort
    // its device belongs to now, not for the one it belonged to when the ticket was opened
    // (else a cohort would be charged the tickets of devices that have since grown older).
    // Merged tickets count as their target only.
    let mut query = QueryBuilder::new(
        "select t.ticket_id, t.authority_id, t.created_at, d.model, extract(year from age(",
    );
    query.push_bind(end).push(
        "::timestamptz at time zone 'Europe/Berlin', coalesce(d.purchase_date, \
         (d.first_seen_at at time zone 'Europe/Berlin')::date)))::int as age_years \
         from ticket t join ticket_device td using (ticket_id) join device d using (device_id) \
         where t.deleted_at is null and t.state <> 'merged' and d.authority_id = t.authority_id",
    );
    push_scope(&mut query, scope, "t.authority_id", "t.school_id");
    push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    query
        .push(" and t.created_at >= ")
        .push_bind(start)
        .push(" and t.created_at < ")
        .push_bind(end)
        .push(" order by t.authority_id, t.ticket_id");
    type Row = (Uuid, Uuid, DateTime<Utc>, Option<String>, Option<i32>);
    let rows: Vec<Row> = query.build_query_as().fetch_all(pool).await?;
    let mut facts: BTreeMap<Uuid, Vec<TicketFacts>> = BTreeMap::new();
    let mut last_ticket = None;
    for (ticket_id, authority_id, created, model, age) in rows {
        let of_authority = facts.entry(authority_id).or_default();
        if last_ticket != Some(ticket_id) {
            of_authority.push(TicketFacts {
                created,
                first_response: None,
                closed: None,
                forwarded_at: None,
                state: TicketState::Open,
                priority: None,
                topic: None,
                school: None,
                provider: None,
                devices: Vec::new(),
                merged: false,
            });
            last_ticket = Some(ticket_id);
        }
        if let Some(fact) = of_authority.last_mut() {
            fact.devices.push(TicketDevice {
                model,
                age_years: age.and_then(|age| u32::try_from(age).ok()),
            });
        }
    }
    let mut cohorts = Vec::new();
    for (authority_id, facts) in facts {
        let (slug, devices) = cohort_devices(pool, scope, authority_id, end).await?;
        cohorts.extend(
            replacement_feed(&facts, &devices, last, threshold)
                .into_iter()
                .filter(|cohort| cohort.exceeds)
                .map(|tickets| EarlyCohort {
                    authority: slug.clone(),
                    authority_id,
                    tickets,
                }),
        );
    }
    // By authority, then (from the feed) model and age.
    cohorts.sort_by(|a, b| a.authority.cmp(&b.authority));
    Ok(cohorts)
}

/// The authority's slug and its fleet in the scope per (model, age in whole years at `at`),
/// models trimmed as the feed keys them.
async fn cohort_devices(
    pool: &PgPool,
    scope: &Scope,
    authority_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(String, BTreeMap<(String, u32), u64>), CoreError> {
    let slug: String =
        sqlx::query_scalar("select slug from school_authority where authority_id = $1")
            .bind(authority_id)
            .fetch_one(pool)
            .await?;
    let rows = fleet_rows(pool, scope, authority_id, at).await?;
    let mut devices: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for row in rows {
        if let (Some(model), Some(age)) = (row.model, row.age_years) {
            let (model, Ok(age)) = (model.trim().to_string(), u32::try_from(age)) else {
                continue;
            };
            if !model.is_empty() {
                *devices.entry((model, age)).or_default() +=
                    u64::try_from(row.devices).unwrap_or(0);
            }
        }
    }
    Ok((slug, devices))
}
