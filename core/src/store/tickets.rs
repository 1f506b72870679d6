//! Tickets for people: the filtered list, one ticket with its devices, a device's tickets, and
//! links set by hand (docs/tickets.md). A ticket is in a scope by its authority and its school
//! (from the ticket's organization); a ticket without a school is outside every scope of
//! schools, and a linked device outside the scope is left out of what a ticket shows.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::store::devices::{escape_like, resolve_device};
use crate::store::history::{insert_events, EventContext};
use crate::store::persons::push_school_filter;
use crate::store::{exactly_one, in_scope, push_scope};

/// Filters of `bestand tickets list`; they combine with AND and narrow the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// School number, name or alias (case-insensitive).
    pub school: Option<String>,
    /// `new`, `open`, `pending`, `closed` or `merged`.
    pub state: Option<String>,
    /// The provider name as mapped (case-insensitive).
    pub provider: Option<String>,
    /// Substring of a linked device's model or model identifier (case-insensitive).
    pub model: Option<String>,
    pub topic: Option<String>,
    /// Created on or after this day (the schools' calendar, Europe/Berlin).
    pub since: Option<NaiveDate>,
    /// Created on or before this day.
    pub until: Option<NaiveDate>,
    /// Only tickets linked to no device.
    pub no_device: bool,
}

/// One line of `bestand tickets list`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TicketSummary {
    pub ticket_id: Uuid,
    pub source_name: String,
    pub external_id: String,
    pub number: String,
    pub title: String,
    pub state: String,
    pub topic: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub provider: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The linked devices in the scope, by asset tag, else serial number.
    pub devices: Option<String>,
}

/// The scope's devices linked to ticket `t`, by asset tag, else serial, else id.
const DEVICES_OF_TICKET: &str = "(select string_agg(coalesce(d.asset_tag, d.serial_number, \
     d.device_id::text), ', ' order by coalesce(d.asset_tag, d.serial_number, d.device_id::text)) \
     from ticket_device td join device d using (device_id) where td.ticket_id = t.ticket_id";

/// The tickets in `scope` that pass `filter`, newest first; deleted tickets are left out.
pub async fn list_tickets(
    pool: &PgPool,
    scope: &Scope,
    filter: &TicketFilter,
) -> Result<Vec<TicketSummary>, CoreError> {
    let mut query = QueryBuilder::new(
        "select t.ticket_id, src.name as source_name, t.external_id, t.number, t.title, \
         t.state, t.topic, s.school_number, s.name as school_name, t.provider, t.created_at, ",
    );
    query.push(DEVICES_OF_TICKET);
    push_scope(&mut query, scope, "d.authority_id", "d.school_id");
    query.push(
        ") as devices from ticket t join source src on src.source_id = t.source_id \
         left join school s on s.school_id = t.school_id where t.deleted_at is null",
    );
    push_scope(&mut query, scope, "t.authority_id", "t.school_id");
    if let Some(school) = &filter.school {
        query.push(" and");
        push_school_filter(&mut query, school);
    }
    if let Some(state) = &filter.state {
        query
            .push(" and t.state = ")
            .push_bind(state.trim().to_lowercase());
    }
    if let Some(topic) = &filter.topic {
        query
            .push(" and t.topic = ")
            .push_bind(topic.trim().to_lowercase());
    }
    if let Some(provider) = &filter.provider {
        query
            .push(" and lower(t.provider) = ")
            .push_bind(provider.trim().to_lowercase());
    }
    if let Some(model) = &filter.model {
        let pattern = format!("%{}%", escape_like(model.trim()));
        query
            .push(
                " and exists (select 1 from ticket_device td join device d using (device_id) \
                 where td.ticket_id = t.ticket_id and (d.model ilike ",
            )
            .push_bind(pattern.clone())
            .push(" or d.model_identifier ilike ")
            .push_bind(pattern)
            .push(")");
        push_scope(&mut query, scope, "d.authority_id", "d.school_id");
        query.push(")");
    }
    if let Some(since) = filter.since {
        query
            .push(" and (t.created_at at time zone 'Europe/Berlin')::date >= ")
            .push_bind(since);
    }
    if let Some(until) = filter.until {
        query
            .push(" and (t.created_at at time zone 'Europe/Berlin')::date <= ")
            .push_bind(until);
    }
    if filter.no_device {
        query.push(
            " and not exists (select 1 from ticket_device td where td.ticket_id = t.ticket_id)",
        );
    }
    query.push(" order by t.created_at desc, t.number");
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// A device linked to a ticket, and how the link was found.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TicketDeviceView {
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    /// `field`, `title`, `system` or `hand`.
    pub found_by: String,
    /// Which field, pattern or value.
    pub detail: String,
    pub linked_at: DateTime<Utc>,
    pub linked_by: String,
}

/// Everything stored about one ticket.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TicketDetail {
    pub ticket_id: Uuid,
    pub source_name: String,
    pub external_id: String,
    pub number: String,
    pub title: String,
    pub state: String,
    pub source_state: String,
    pub priority: Option<String>,
    pub topic: String,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    pub provider: Option<String>,
    pub group_name: Option<String>,
    pub customer_role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub forwarded_at: Option<DateTime<Utc>>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub close_due_at: Option<DateTime<Utc>>,
    /// The number of the ticket this one was merged into, once the source listed it.
    pub merged_into: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub devices: Vec<TicketDeviceView>,
}

/// What a person typed for a ticket: its number, or `SOURCE:EXTERNAL_ID`.
const TICKET_KEYS: &str = "ticket (by number or source:id)";

/// Resolves `key` to exactly one ticket in `scope`: a number (several sources may share one:
/// then the answer lists the ticket ids), or `source:external id`.
async fn resolve_ticket(pool: &PgPool, scope: &Scope, key: &str) -> Result<Uuid, CoreError> {
    let key = key.trim();
    // $1 and $2 are the key's parts; a key of one part binds null as the second.
    let (condition, first, second) = if let Ok(ticket_id) = Uuid::parse_str(key) {
        ("t.ticket_id = $1::text::uuid", ticket_id.to_string(), None)
    } else if let Some((source, external_id)) = key.split_once(':') {
        (
            "src.name = $1 and t.external_id = $2",
            source.trim().to_string(),
            Some(external_id.trim().to_string()),
        )
    } else {
        ("t.number = $1", key.to_string(), None)
    };
    let sql = format!(
        "select t.ticket_id from ticket t join source src on src.source_id = t.source_id \
         where {condition} and ($2::text is null or true) and {} order by t.ticket_id",
        in_scope("t.authority_id", "t.school_id", 3, 4)
    );
    let found: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(first)
        .bind(second)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_all(pool)
        .await?;
    exactly_one(&found, key, TICKET_KEYS, "ticket")
}

/// One ticket in `scope` by number, `source:external id` or id, with its devices in `scope`.
pub async fn show_ticket(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<TicketDetail, CoreError> {
    let ticket_id = resolve_ticket(pool, scope, key).await?;
    let mut detail: TicketDetail = sqlx::query_as(
        "select t.ticket_id, src.name as source_name, t.external_id, t.number, t.title, \
         t.state, t.source_state, t.priority, t.topic, s.school_number, s.name as school_name, \
         t.provider, t.group_name, t.customer_role, t.created_at, t.updated_at, \
         t.first_response_at, t.closed_at, t.forwarded_at, t.first_response_due_at, \
         t.close_due_at, m.number as merged_into, t.deleted_at \
         from ticket t join source src on src.source_id = t.source_id \
         left join school s on s.school_id = t.school_id \
         left join ticket m on m.ticket_id = t.merged_into_ticket_id where t.ticket_id = $1",
    )
    .bind(ticket_id)
    .fetch_one(pool)
    .await?;
    detail.devices = sqlx::query_as(&format!(
        "select d.device_id, d.asset_tag, d.serial_number, d.model, td.found_by, td.detail, \
         td.linked_at, td.linked_by from ticket_device td join device d using (device_id) \
         where td.ticket_id = $1 and {} order by td.linked_at, d.asset_tag",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(ticket_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?;
    Ok(detail)
}

/// A ticket as `bestand devices show` lists it under a device.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceTicketView {
    pub number: String,
    pub title: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub found_by: String,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The tickets in `scope` linked to `device` (by id, asset tag or serial in `scope`), newest
/// first.
pub async fn tickets_of_device(
    pool: &PgPool,
    scope: &Scope,
    device: &str,
) -> Result<Vec<DeviceTicketView>, CoreError> {
    let device_id = resolve_device(pool, scope, device).await?;
    Ok(device_tickets(pool, scope, device_id).await?)
}

/// The tickets in `scope` linked to the device `device_id` (already found in `scope`).
pub(crate) async fn device_tickets(
    pool: &PgPool,
    scope: &Scope,
    device_id: Uuid,
) -> Result<Vec<DeviceTicketView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select t.number, t.title, t.state, t.created_at, td.found_by, t.deleted_at \
         from ticket_device td join ticket t using (ticket_id) where td.device_id = $1 and {} \
         order by t.created_at desc, t.number",
        in_scope("t.authority_id", "t.school_id", 2, 3)
    ))
    .bind(device_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await
}

/// What a hand link or unlink did.
#[derive(Debug, Clone, Serialize)]
pub struct HandLink {
    pub ticket_id: Uuid,
    pub number: String,
    pub device_id: Uuid,
    /// How the link had been found before (`field`, `title`, ...) when a person now holds an
    /// automatic link by hand, or removed one; `None` for a new link.
    pub before: Option<String>,
}

/// Links ticket `ticket` to device `device` by hand, as `actor`, at `now`: the link survives
/// every later read of the ticket. An automatic link to the same device becomes a hand link.
/// Both must be in `scope` (else `NotFound`, as for unknown keys) and of one authority.
pub async fn link_ticket(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    ticket: &str,
    device: &str,
    now: DateTime<Utc>,
) -> Result<HandLink, CoreError> {
    let (ticket_id, number, authority_id, device_id) =
        ticket_and_device(pool, scope, ticket, device).await?;
    let by = actor.name();
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar(
        "select found_by from ticket_device where ticket_id = $1 and device_id = $2 for update",
    )
    .bind(ticket_id)
    .bind(device_id)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "insert into ticket_device (ticket_id, device_id, authority_id, found_by, detail, \
         linked_at, linked_by) values ($1, $2, $3, 'hand', 'set by hand', $4, $5) \
         on conflict (ticket_id, device_id) do update set found_by = 'hand', \
         detail = 'set by hand', linked_at = excluded.linked_at, linked_by = excluded.linked_by",
    )
    .bind(ticket_id)
    .bind(device_id)
    .bind(authority_id)
    .bind(now)
    .bind(&by)
    .execute(&mut *tx)
    .await?;
    if before.as_deref() != Some("hand") {
        let changes = json!({ "ticket": { "old": null, "new": number } }).to_string();
        let context = EventContext::user(authority_id, None, now, &by);
        insert_events(&mut tx, &context, &[(device_id, "ticket_linked", changes)]).await?;
    }
    tx.commit().await?;
    Ok(HandLink {
        ticket_id,
        number,
        device_id,
        before,
    })
}

/// Removes the link of ticket `ticket` to device `device`, however it was found, as `actor` at
/// `now`. An automatic link comes back when the ticket, changed, still names the device.
pub async fn unlink_ticket(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    ticket: &str,
    device: &str,
    now: DateTime<Utc>,
) -> Result<HandLink, CoreError> {
    let (ticket_id, number, authority_id, device_id) =
        ticket_and_device(pool, scope, ticket, device).await?;
    let by = actor.name();
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar(
        "delete from ticket_device where ticket_id = $1 and device_id = $2 returning found_by",
    )
    .bind(ticket_id)
    .bind(device_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found_by) = before else {
        return Err(CoreError::NotFound {
            what: "ticket link",
            key: format!("{} → {}", ticket.trim(), device.trim()),
        });
    };
    let changes = json!({ "ticket": { "old": number, "new": null } }).to_string();
    let context = EventContext::user(authority_id, None, now, &by);
    insert_events(
        &mut tx,
        &context,
        &[(device_id, "ticket_unlinked", changes)],
    )
    .await?;
    tx.commit().await?;
    Ok(HandLink {
        ticket_id,
        number,
        device_id,
        before: Some(found_by),
    })
}

/// The ticket and the device a person named, both in `scope`; a device of another authority
/// than the ticket's is refused.
async fn ticket_and_device(
    pool: &PgPool,
    scope: &Scope,
    ticket: &str,
    device: &str,
) -> Result<(Uuid, String, Uuid, Uuid), CoreError> {
    let ticket_id = resolve_ticket(pool, scope, ticket).await?;
    let device_id = resolve_device(pool, scope, device).await?;
    let (number, authority_id, same): (String, Uuid, bool) = sqlx::query_as(
        "select t.number, t.authority_id, t.authority_id = d.authority_id \
         from ticket t, device d where t.ticket_id = $1 and d.device_id = $2",
    )
    .bind(ticket_id)
    .bind(device_id)
    .fetch_one(pool)
    .await?;
    if !same {
        return Err(CoreError::Invalid(format!(
            "ticket {number} and device '{}' belong to different school authorities; a ticket \
             links only devices of its own authority",
            device.trim()
        )));
    }
    Ok((ticket_id, number, authority_id, device_id))
}
