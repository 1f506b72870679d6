//! Stocktaking (Inventur): a count at one school, the asset tags scanned there (every scan
//! kept, also a tag that names no device), and the comparison of what was seen with what the
//! inventory books there. A count belongs to its school: outside the scope it is unknown, and
//! a scan only finds devices inside the scope.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::model::LifecycleState;
use crate::store::history::{insert_events, EventContext};
use crate::store::in_scope;
use crate::store::non_blank;
use crate::store::persons::find_school;

/// The states of a device that should be at its school, and so be seen by a count there.
const PRESENT_STATES: [LifecycleState; 4] = [
    LifecycleState::Delivered,
    LifecycleState::InStock,
    LifecycleState::InUse,
    LifecycleState::ToCheck,
];

/// The states of a device booked at the school that is away for a known reason: listed, not
/// expected.
const AWAY_STATES: [LifecycleState; 2] = [LifecycleState::OnLoan, LifecycleState::InRepair];

/// One count.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StocktakeView {
    pub stocktake_id: i64,
    pub authority: String,
    pub school_number: String,
    pub school_name: String,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    /// Distinct tags scanned so far.
    pub scanned: i64,
}

/// Where a batch of tags was scanned.
#[derive(Debug, Clone, Default)]
pub struct ScanPlace {
    pub building: Option<String>,
    pub room: Option<String>,
}

/// What a batch of scans did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub stocktake_id: i64,
    /// Tags recorded now, in the order scanned.
    pub recorded: Vec<String>,
    /// Tags this count had already (scanned before, or twice in this batch): counted once.
    pub repeated: Vec<String>,
    /// Tags recorded now that name no device (inside the scope): kept and listed.
    pub unknown: Vec<String>,
}

/// One line of a count's result.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Finding {
    /// `not_seen`, `on_loan` / `in_repair` (booked here, away, not expected), `other_school`,
    /// `other_room`, `not_present_state` (seen, but booked as retired, lost, ...),
    /// `unknown_tag`.
    pub finding: String,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub lifecycle_state: Option<String>,
    pub booked_school: Option<String>,
    pub booked_building: Option<String>,
    pub booked_room: Option<String>,
    pub seen_building: Option<String>,
    pub seen_room: Option<String>,
}

/// The result of a count: what was expected, what was seen, and every difference.
#[derive(Debug, Clone, Serialize)]
pub struct CountResult {
    pub count: StocktakeView,
    /// Devices booked at the school in a state that should be present.
    pub expected: i64,
    /// Of those, seen by the count.
    pub expected_seen: i64,
    pub findings: Vec<Finding>,
}

/// A device moved to the room it was seen in when a count closed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Relocation {
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub old_building: Option<String>,
    pub old_room: Option<String>,
    pub new_building: Option<String>,
    pub new_room: Option<String>,
}

/// A closed count.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedCount {
    pub count: StocktakeView,
    pub relocated: Vec<Relocation>,
}

const COUNT_SELECT: &str = "select t.stocktake_id, a.slug as authority, s.school_number, \
    s.name as school_name, t.started_at, t.started_by, t.closed_at, t.closed_by, \
    (select count(*) from stocktake_scan x where x.stocktake_id = t.stocktake_id) as scanned \
    from stocktake t join school s using (school_id) \
    join school_authority a on a.authority_id = t.authority_id";

fn states(list: &[LifecycleState]) -> Vec<&'static str> {
    list.iter().map(|state| state.as_str()).collect()
}

/// Starts a count at the school `school` (number, name or alias) inside `scope`; a school has
/// at most one open count.
pub async fn start_count(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    school: &str,
    at: DateTime<Utc>,
) -> Result<StocktakeView, CoreError> {
    let (school_id, school_number, _) = find_school(pool, scope, None, school).await?;
    let open: Option<i64> = sqlx::query_scalar(
        "select stocktake_id from stocktake where school_id = $1 and closed_at is null",
    )
    .bind(school_id)
    .fetch_optional(pool)
    .await?;
    if let Some(open) = open {
        return Err(CoreError::Conflict(format!(
            "school {school_number} has an open count already ({open}); scan into it or close it"
        )));
    }
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "insert into stocktake (authority_id, school_id, started_at, started_by) \
         select authority_id, school_id, $2, $3 from school where school_id = $1 \
         returning stocktake_id",
    )
    .bind(school_id)
    .bind(at)
    .bind(actor.name())
    .fetch_one(pool)
    .await;
    let stocktake_id = match inserted {
        Ok(id) => id,
        // Two counts started at once: the index lets one through.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            return Err(CoreError::Conflict(format!(
                "school {school_number} has an open count already; scan into it or close it"
            )))
        }
        Err(error) => return Err(error.into()),
    };
    count_view(pool, stocktake_id).await
}

/// The count `stocktake_id` if it is inside `scope`; else not found.
pub async fn get_count(
    pool: &PgPool,
    scope: &Scope,
    stocktake_id: i64,
) -> Result<StocktakeView, CoreError> {
    let found: Option<StocktakeView> = sqlx::query_as(&format!(
        "{COUNT_SELECT} where t.stocktake_id = $1 and {}",
        in_scope("t.authority_id", "t.school_id", 2, 3)
    ))
    .bind(stocktake_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_optional(pool)
    .await?;
    found.ok_or(CoreError::NotFound {
        what: "count",
        key: stocktake_id.to_string(),
    })
}

async fn count_view(pool: &PgPool, stocktake_id: i64) -> Result<StocktakeView, CoreError> {
    Ok(
        sqlx::query_as(&format!("{COUNT_SELECT} where t.stocktake_id = $1"))
            .bind(stocktake_id)
            .fetch_one(pool)
            .await?,
    )
}

/// The count inside `scope`, refused when it is closed.
async fn open_count(
    pool: &PgPool,
    scope: &Scope,
    stocktake_id: i64,
) -> Result<StocktakeView, CoreError> {
    let count = get_count(pool, scope, stocktake_id).await?;
    if let Some(closed) = count.closed_at {
        return Err(CoreError::Conflict(format!(
            "count {stocktake_id} was closed on {}",
            crate::clock::school_date(closed)
        )));
    }
    Ok(count)
}

/// Records `tags` as seen by the open count `stocktake_id` inside `scope`, at `place`. Tags are
/// trimmed and blank ones ignored; a tag the count has already (in any case) is counted once;
/// a tag that names no device inside the scope is kept as unknown.
pub async fn scan_tags(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    stocktake_id: i64,
    tags: &[String],
    place: &ScanPlace,
    at: DateTime<Utc>,
) -> Result<ScanReport, CoreError> {
    open_count(pool, scope, stocktake_id).await?;
    let mut report = ScanReport {
        stocktake_id,
        ..ScanReport::default()
    };
    let mut batch: Vec<String> = Vec::new();
    for tag in tags
        .iter()
        .map(|tag| tag.trim())
        .filter(|tag| !tag.is_empty())
    {
        if batch.iter().any(|seen| seen.eq_ignore_ascii_case(tag)) {
            report.repeated.push(tag.to_string());
        } else {
            batch.push(tag.to_string());
        }
    }
    let mut tx = pool.begin().await?;
    // Two scanners of one count queue here, so "scanned before" is true for both.
    sqlx::query("select 1 from stocktake where stocktake_id = $1 for update")
        .bind(stocktake_id)
        .execute(&mut *tx)
        .await?;
    let inserted: Vec<(String, bool)> = sqlx::query_as(&format!(
        "with batch as (select tag, n from unnest($2::text[]) with ordinality as b(tag, n) \
           where not exists (select 1 from stocktake_scan x where x.stocktake_id = $1 \
                             and lower(x.asset_tag) = lower(b.tag))), \
         inserted as (insert into stocktake_scan (stocktake_id, authority_id, asset_tag, \
           device_id, building, room, scanned_at, scanned_by) \
           select t.stocktake_id, t.authority_id, b.tag, \
             (select d.device_id from device d where d.authority_id = t.authority_id \
              and lower(d.asset_tag) = lower(b.tag) and {}), \
             $3, $4, $5, $6 \
           from batch b cross join stocktake t where t.stocktake_id = $1 \
           returning asset_tag, device_id) \
         select b.tag, i.device_id is not null from batch b join inserted i on i.asset_tag = b.tag \
         order by b.n",
        in_scope("d.authority_id", "d.school_id", 7, 8)
    ))
    .bind(stocktake_id)
    .bind(&batch)
    .bind(non_blank(&place.building))
    .bind(non_blank(&place.room))
    .bind(at)
    .bind(actor.name())
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for tag in batch {
        match inserted.iter().find(|(recorded, _)| *recorded == tag) {
            Some((_, true)) => report.recorded.push(tag),
            Some((_, false)) => {
                report.recorded.push(tag.clone());
                report.unknown.push(tag);
            }
            None => report.repeated.push(tag),
        }
    }
    Ok(report)
}

/// What count `stocktake_id` inside `scope` found: devices expected at its school but not
/// seen, devices booked there but away (on loan, in repair), devices seen there but booked at
/// another school or (where a room was scanned) in another room, seen devices in a state that
/// is not present (retired, lost, ...), and unknown tags.
pub async fn count_result(
    pool: &PgPool,
    scope: &Scope,
    stocktake_id: i64,
) -> Result<CountResult, CoreError> {
    let count = get_count(pool, scope, stocktake_id).await?;
    let seen = "exists (select 1 from stocktake_scan x where x.stocktake_id = $1 \
                and x.device_id = d.device_id)";
    let (expected, expected_seen): (i64, i64) = sqlx::query_as(&format!(
        "select count(*), count(*) filter (where {seen}) from device d \
         join stocktake t on t.school_id = d.school_id \
         where t.stocktake_id = $1 and d.lifecycle_state = any($2)"
    ))
    .bind(stocktake_id)
    .bind(states(&PRESENT_STATES))
    .fetch_one(pool)
    .await?;
    let findings: Vec<Finding> = sqlx::query_as(&format!(
        "with booked as ( \
           select case when d.lifecycle_state = any($3) then d.lifecycle_state \
                  else 'not_seen' end as finding, \
             d.asset_tag, d.serial_number, d.model, d.lifecycle_state, s.school_number, \
             d.building, d.room, null::text as seen_building, null::text as seen_room, 1 as part \
           from device d join stocktake t on t.school_id = d.school_id \
           join school s on s.school_id = d.school_id \
           where t.stocktake_id = $1 and not {seen} \
             and (d.lifecycle_state = any($2) or d.lifecycle_state = any($3))), \
         scanned as ( \
           select case when d.device_id is null then 'unknown_tag' \
                  when d.school_id is distinct from t.school_id then 'other_school' \
                  when not (d.lifecycle_state = any($2) or d.lifecycle_state = any($3)) \
                    then 'not_present_state' \
                  when x.room is not null and lower(x.room) is distinct from lower(d.room) \
                    then 'other_room' end as finding, \
             coalesce(d.asset_tag, x.asset_tag) as asset_tag, d.serial_number, d.model, \
             d.lifecycle_state, s.school_number, d.building, d.room, x.building, x.room, 2 \
           from stocktake_scan x join stocktake t using (stocktake_id) \
           left join device d on d.device_id = x.device_id \
           left join school s on s.school_id = d.school_id \
           where x.stocktake_id = $1) \
         select finding, asset_tag, serial_number, model, lifecycle_state, \
           school_number as booked_school, building as booked_building, room as booked_room, \
           seen_building, seen_room from ( \
           select * from booked union all select * from scanned where finding is not null) f \
         order by part, finding, asset_tag nulls last, serial_number nulls last"
    ))
    .bind(stocktake_id)
    .bind(states(&PRESENT_STATES))
    .bind(states(&AWAY_STATES))
    .fetch_all(pool)
    .await?;
    Ok(CountResult {
        count,
        expected,
        expected_seen,
        findings,
    })
}

/// Closes count `stocktake_id` inside `scope`. With `apply`, every device of the count's
/// school seen in another room (or building) than booked takes the place it was seen at, as
/// `actor`'s change with an event; devices booked at another school keep their booking.
pub async fn close_count(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    stocktake_id: i64,
    apply: bool,
    at: DateTime<Utc>,
) -> Result<ClosedCount, CoreError> {
    open_count(pool, scope, stocktake_id).await?;
    let mut tx = pool.begin().await?;
    let closed = sqlx::query(
        "update stocktake set closed_at = $2, closed_by = $3 \
         where stocktake_id = $1 and closed_at is null",
    )
    .bind(stocktake_id)
    .bind(at)
    .bind(actor.name())
    .execute(&mut *tx)
    .await?;
    if closed.rows_affected() == 0 {
        return Err(CoreError::Conflict(format!(
            "count {stocktake_id} was closed meanwhile"
        )));
    }
    let mut relocated: Vec<Relocation> = Vec::new();
    if apply {
        relocated = sqlx::query_as(
            "with moved as (select d.device_id, d.building as old_building, d.room as old_room, \
               coalesce(x.building, d.building) as new_building, x.room as new_room \
               from stocktake_scan x join stocktake t using (stocktake_id) \
               join device d on d.device_id = x.device_id and d.school_id = t.school_id \
               where x.stocktake_id = $1 and x.room is not null \
               and (lower(x.room) is distinct from lower(d.room) \
                    or (x.building is not null \
                        and lower(x.building) is distinct from lower(d.building))) \
               order by d.device_id for update of d) \
             update device d set building = m.new_building, room = m.new_room, updated_at = $2, \
               field_origin = (d.field_origin::jsonb || jsonb_build_object( \
                 'building', 'user:' || $3::text, 'room', 'user:' || $3::text))::json \
             from moved m where d.device_id = m.device_id \
             returning d.device_id, d.asset_tag, m.old_building, m.old_room, m.new_building, \
               m.new_room",
        )
        .bind(stocktake_id)
        .bind(at)
        .bind(actor.name())
        .fetch_all(&mut *tx)
        .await?;
        relocated.sort_by(|a, b| a.asset_tag.cmp(&b.asset_tag));
        let authority_id: Uuid =
            sqlx::query_scalar("select authority_id from stocktake where stocktake_id = $1")
                .bind(stocktake_id)
                .fetch_one(&mut *tx)
                .await?;
        let events: Vec<(Uuid, &str, String)> = relocated
            .iter()
            .map(|moved| {
                let mut changes = json!({
                    "room": { "old": moved.old_room, "new": moved.new_room },
                    "stocktake_id": { "new": stocktake_id },
                });
                if moved.old_building != moved.new_building {
                    changes["building"] =
                        json!({ "old": moved.old_building, "new": moved.new_building });
                }
                (moved.device_id, "located_by_count", changes.to_string())
            })
            .collect();
        let name = actor.name();
        let context = EventContext::user(authority_id, None, at, &name);
        insert_events(&mut tx, &context, &events).await?;
    }
    tx.commit().await?;
    Ok(ClosedCount {
        count: count_view(pool, stocktake_id).await?,
        relocated,
    })
}
