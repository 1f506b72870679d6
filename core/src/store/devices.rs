//! Device queries for people: the filtered list and the full record of one device. A device
//! is in a scope by its authority and its school (`device.school_id`).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::{DeviceCategory, LifecycleState};
use crate::normalize;
use crate::store::device_row::{DeviceRow, DEVICE_COLUMNS};
use crate::store::in_scope;
use crate::store::persons::{
    device_assignments, push_school_filter, resolve_person, DeviceAssignmentView,
};

/// Filters of `bestand devices list`; every one is optional and they combine with AND. They
/// narrow the caller's scope, never widen it.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub authority: Option<String>,
    /// School number, name or alias (case-insensitive).
    pub school: Option<String>,
    pub category: Option<DeviceCategory>,
    pub lifecycle_state: Option<LifecycleState>,
    /// Substring of model or model identifier.
    pub model: Option<String>,
    /// Only devices that a source no longer reports.
    pub missing: bool,
    /// Only devices whose live sources disagree on a field they both report.
    pub conflicts: bool,
    /// Only devices whose warranty ends before this date (and has not ended before `warranty_from`).
    pub warranty_before: Option<NaiveDate>,
    pub warranty_from: Option<NaiveDate>,
    /// Free text over asset tag, serial, name, model, UDID, IMEI and MAC.
    pub search: Option<String>,
    /// Only devices a source assigns to this person (id, username or email).
    pub assigned_to: Option<String>,
    /// Only devices no source assigns to anyone.
    pub unassigned: bool,
    pub limit: Option<i64>,
}

/// One line of the device list: every field of the device that `devices show` has, so a
/// script needs no call per device; the per-device history, links and loans stay in `show`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceSummary {
    pub device_id: Uuid,
    pub authority: String,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub imei: Option<String>,
    pub wifi_mac: Option<String>,
    pub name: Option<String>,
    pub category: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub model_identifier: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub lifecycle_state: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub building: Option<String>,
    pub room: Option<String>,
    pub order_number: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub supplier: Option<String>,
    pub purchase_price: Option<Decimal>,
    pub currency: Option<String>,
    pub warranty_end: Option<NaiveDate>,
    pub life_expectancy_years: Option<i32>,
    pub funding_programme: Option<String>,
    pub grant_reference: Option<String>,
    pub earmark_end: Option<NaiveDate>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sources: Option<String>,
    /// Usernames of the persons sources assign the device to.
    pub assigned_to: Option<String>,
    pub missing_from: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// The effective "last seen" of a link: links that are neither missing nor ended were confirmed
/// by the source's last complete run, which is not written to each link (see docs/sync.md).
pub const LINK_LAST_SEEN: &str = "case when l.missing_since is null and l.ended_at is null \
    then greatest(l.last_seen_at, src.last_complete_run_at) else l.last_seen_at end";

/// Lists the devices in `scope` matching `filter`, ordered by school and asset tag.
pub async fn list_devices(
    pool: &PgPool,
    scope: &Scope,
    filter: &DeviceFilter,
) -> Result<Vec<DeviceSummary>, CoreError> {
    let assigned_to = match &filter.assigned_to {
        Some(key) => Some(resolve_person(pool, scope, None, key).await?),
        None => None,
    };
    let mut query = QueryBuilder::new(format!(
        "select d.device_id, a.slug as authority, d.asset_tag, d.serial_number, d.udid, d.imei, \
         d.wifi_mac, d.name, d.category, d.manufacturer, d.model, d.model_identifier, d.os_name, \
         d.os_version, d.lifecycle_state, s.school_number, s.name as school_name, d.building, \
         d.room, d.order_number, d.purchase_date, d.supplier, d.purchase_price, d.currency, \
         d.warranty_end, d.life_expectancy_years, d.funding_programme, d.grant_reference, \
         d.earmark_end, d.first_seen_at, d.updated_at, \
         (select string_agg(src.name, ', ' order by src.name) from source_link l \
          join source src using (source_id) \
          where l.device_id = d.device_id and l.ended_at is null and l.missing_since is null) as sources, \
         (select string_agg(distinct coalesce(p.username, p.email), ', ') from device_assignment da \
          join person p using (person_id) where da.device_id = d.device_id) as assigned_to, \
         (select string_agg(src.name || ' since ' || to_char(l.missing_since, 'YYYY-MM-DD'), ', ' \
          order by src.name) from source_link l join source src using (source_id) \
          where l.device_id = d.device_id and l.ended_at is null and l.missing_since is not null) \
          as missing_from, \
         (select max({LINK_LAST_SEEN}) from source_link l join source src using (source_id) \
          where l.device_id = d.device_id) as last_seen_at \
         from device d left join school s using (school_id) \
         join school_authority a on a.authority_id = d.authority_id where true"
    ));
    crate::store::push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    if let Some(authority) = &filter.authority {
        query.push(" and a.slug = ").push_bind(authority.clone());
    }
    if let Some(school) = &filter.school {
        query.push(" and");
        push_school_filter(&mut query, school);
    }
    if let Some(person_id) = assigned_to {
        query
            .push(
                " and exists (select 1 from device_assignment da where da.device_id = d.device_id \
                 and da.person_id = ",
            )
            .push_bind(person_id)
            .push(")");
    }
    if filter.unassigned {
        query.push(
            " and not exists (select 1 from device_assignment da where da.device_id = d.device_id \
             and da.status = 'matched')",
        );
    }
    if let Some(category) = filter.category {
        query
            .push(" and d.category = ")
            .push_bind(category.as_str());
    }
    if let Some(state) = filter.lifecycle_state {
        query
            .push(" and d.lifecycle_state = ")
            .push_bind(state.as_str());
    }
    if let Some(model) = &filter.model {
        let pattern = format!("%{}%", escape_like(model));
        query
            .push(" and (d.model ilike ")
            .push_bind(pattern.clone())
            .push(" or d.model_identifier ilike ")
            .push_bind(pattern)
            .push(")");
    }
    if filter.missing {
        query.push(
            " and exists (select 1 from source_link l where l.device_id = d.device_id \
             and l.missing_since is not null and l.ended_at is null)",
        );
    }
    if filter.conflicts {
        query.push(CONFLICTS.as_str());
    }
    if let Some(before) = filter.warranty_before {
        query.push(" and d.warranty_end < ").push_bind(before);
    }
    if let Some(from) = filter.warranty_from {
        query.push(" and d.warranty_end >= ").push_bind(from);
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search.trim()));
        query.push(" and (");
        for (i, column) in [
            "d.asset_tag",
            "d.serial_number",
            "d.name",
            "d.model",
            "d.udid",
            "d.imei",
            "d.wifi_mac",
            "d.room",
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                query.push(" or ");
            }
            query
                .push(format!("{column} ilike "))
                .push_bind(pattern.clone());
        }
        query.push(")");
    }
    query.push(" order by s.school_number nulls last, d.asset_tag nulls last, d.serial_number nulls last, d.device_id");
    if let Some(limit) = filter.limit {
        query.push(" limit ").push_bind(limit);
    }
    Ok(query
        .build_query_as::<DeviceSummary>()
        .fetch_all(pool)
        .await?)
}

/// Fields two sources can both report, as paths into the normalized record.
const COMPARED_FIELDS: &[&str] = &[
    "->>'name'",
    "->>'serial_number'",
    "->>'asset_tag'",
    "->>'model'",
    "->>'os_version'",
    "->'location'->>'room'",
    "->'purchase'->>'warranty_end'",
    "->'purchase'->>'order_number'",
];

/// Two live links of the device whose records disagree on a field both fill.
static CONFLICTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let differs: Vec<String> = COMPARED_FIELDS
        .iter()
        .map(|path| format!("(a.normalized{path}) <> (b.normalized{path})"))
        .collect();
    format!(
        " and exists (select 1 from source_link a join source_link b \
         on b.device_id = a.device_id and a.source_link_id < b.source_link_id \
         where a.device_id = d.device_id and a.ended_at is null and b.ended_at is null \
         and a.missing_since is null and b.missing_since is null and ({}))",
        differs.join(" or ")
    )
});

pub(crate) fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One source's link to a device, with what that source reports.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LinkView {
    pub source_name: String,
    pub source_kind: String,
    pub external_id: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub missing_since: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
    /// The normalized record as this source last reported it.
    pub reported: Value,
}

/// One entry of a device's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventView {
    pub occurred_at: DateTime<Utc>,
    pub kind: String,
    pub cause: String,
    pub sync_run_id: Option<i64>,
    pub source_name: Option<String>,
    pub actor: Option<String>,
    pub changes: Value,
}

/// Everything known about one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDetail {
    pub device: DeviceRow,
    pub authority: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    /// Who sources say has the device.
    pub assignments: Vec<DeviceAssignmentView>,
    pub links: Vec<LinkView>,
    pub history: Vec<EventView>,
    /// The device's loans, the open one first.
    pub loans: Vec<crate::loans::LoanView>,
    /// The device's repairs, the newest first.
    pub repairs: Vec<crate::store::repairs::RepairView>,
    /// How it left the authority, once it is disposed of.
    pub disposal: Option<crate::store::lifecycle::DisposalView>,
    /// Purchase price plus repair costs.
    pub cost_of_ownership: crate::store::repairs::CostOfOwnership,
    /// The tickets in the scope that concern the device, newest first (docs/tickets.md).
    pub tickets: Vec<crate::store::tickets::DeviceTicketView>,
}

/// Finds a device in `scope` by id, asset tag or serial number and loads its links and history.
pub async fn show_device(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<DeviceDetail, CoreError> {
    let device_id = resolve_device(pool, scope, key).await?;
    let sql = format!("select {DEVICE_COLUMNS} from device where device_id = $1");
    let mut device: DeviceRow = sqlx::query_as(&sql).bind(device_id).fetch_one(pool).await?;
    device.expand_field_origin();
    let (authority, school_number, school_name): (String, Option<String>, Option<String>) =
        sqlx::query_as(
            "select a.slug, s.school_number, s.name from device d \
         join school_authority a using (authority_id) left join school s using (school_id) \
         where d.device_id = $1",
        )
        .bind(device_id)
        .fetch_one(pool)
        .await?;
    let links: Vec<LinkView> = sqlx::query_as(&format!(
        "select src.name as source_name, src.kind as source_kind, l.external_id, l.first_seen_at, \
         {LINK_LAST_SEEN} as last_seen_at, l.missing_since, l.ended_at, l.ended_reason, \
         l.normalized as reported \
         from source_link l join source src using (source_id) where l.device_id = $1 \
         order by l.ended_at nulls first, src.name, l.first_seen_at"
    ))
    .bind(device_id)
    .fetch_all(pool)
    .await?;
    let history: Vec<EventView> = sqlx::query_as(
        "select e.occurred_at, e.kind, e.cause, e.sync_run_id, src.name as source_name, e.actor, e.changes \
         from device_event e left join source src using (source_id) \
         where e.device_id = $1 order by e.device_event_id",
    )
    .bind(device_id)
    .fetch_all(pool)
    .await?;
    let assignments = device_assignments(pool, scope, device_id).await?;
    let loans = crate::loans::loans_of_device(pool, scope, device_id).await?;
    let repairs = crate::store::repairs::repairs_of(pool, device_id).await?;
    let disposal = crate::store::lifecycle::disposal_of(pool, device_id).await?;
    let cost_of_ownership = crate::store::repairs::cost_of_ownership(pool, device_id).await?;
    let tickets = crate::store::tickets::device_tickets(pool, scope, device_id).await?;
    Ok(DeviceDetail {
        device,
        authority,
        school_number,
        school_name,
        assignments,
        links,
        history,
        loans,
        repairs,
        disposal,
        cost_of_ownership,
        tickets,
    })
}

/// Resolves what a person typed (id, asset tag or serial) to exactly one device in `scope`; a
/// device outside it is not found, as if it did not exist.
pub async fn resolve_device(pool: &PgPool, scope: &Scope, key: &str) -> Result<Uuid, CoreError> {
    let key = key.trim();
    let find = |condition: &str| {
        format!(
            "select d.device_id from device d where {condition} and {}",
            in_scope("d.authority_id", "d.school_id", 2, 3)
        )
    };
    if let Ok(device_id) = Uuid::parse_str(key) {
        let found: Option<Uuid> = sqlx::query_scalar(&find("d.device_id = $1"))
            .bind(device_id)
            .bind(scope.authority_param())
            .bind(scope.schools_param())
            .fetch_optional(pool)
            .await?;
        return found.ok_or_else(|| CoreError::NotFound {
            what: "device",
            key: key.to_string(),
        });
    }
    let by_tag: Vec<Uuid> = sqlx::query_scalar(&find("lower(d.asset_tag) = lower($1)"))
        .bind(key)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_all(pool)
        .await?;
    let found = if by_tag.is_empty() {
        let serial = normalize::serial_number(Some(key)).unwrap_or_default();
        sqlx::query_scalar(&find("d.serial_number = $1"))
            .bind(serial)
            .bind(scope.authority_param())
            .bind(scope.schools_param())
            .fetch_all(pool)
            .await?
    } else {
        by_tag
    };
    crate::store::exactly_one(
        &found,
        key,
        "device (by id, asset tag or serial number)",
        "device",
    )
}

/// Device counts per school and category, for overviews.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SchoolCategoryCount {
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub school_type: Option<String>,
    pub category: String,
    pub devices: i64,
}

/// Counts the devices in `scope` per school and category (schools without devices are left
/// out).
pub async fn count_by_school_and_category(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<SchoolCategoryCount>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select s.school_number, s.name as school_name, s.school_type, d.category, count(*) as devices \
         from device d join school_authority a using (authority_id) left join school s using (school_id) \
         where ($1::text is null or a.slug = $1) and {} \
         group by s.school_number, s.name, s.school_type, d.category \
         order by s.school_number nulls last, d.category",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}
