//! The history writer: the one place that appends rows to `device_event`, for sync runs,
//! approvals, review decisions and loans alike, so a device's history has one shape.
//!
//! History is append-only (a trigger refuses updates and deletes), so every writer of it is
//! here, where that is easy to check.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::store::SourceRef;

/// One event of a device: the device, the kind (`created`, `updated`, `missing`, `loan_issued`,
/// ...) and its changes as JSON text (`{"field": {"old": .., "new": ..}}`).
pub(crate) type Event<'a> = (Uuid, &'a str, String);

/// What the events of one write share: whose they are, when, why and who caused them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventContext<'a> {
    pub authority_id: Uuid,
    /// The source whose record or run caused them; none for a person's own act (a loan).
    pub source_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    /// `sync` for a run's events, `user` for a person's decisions.
    pub cause: &'a str,
    pub sync_run_id: Option<i64>,
    /// Who, when a person caused them (`Actor::name`); runs record none.
    pub actor: Option<&'a str>,
}

/// The cause of the events a sync run writes.
pub(crate) const SYNC_CAUSE: &str = "sync";

impl<'a> EventContext<'a> {
    /// The events of a run of `source` (or of the approval of a blocked run).
    pub fn sync(
        source: &SourceRef,
        occurred_at: DateTime<Utc>,
        sync_run_id: Option<i64>,
    ) -> EventContext<'static> {
        EventContext {
            authority_id: source.authority_id,
            source_id: Some(source.source_id),
            occurred_at,
            cause: SYNC_CAUSE,
            sync_run_id,
            actor: None,
        }
    }

    /// The events of a person's decision about a record of `source` (review).
    pub fn user_about(
        source: &SourceRef,
        occurred_at: DateTime<Utc>,
        actor: &'a str,
    ) -> EventContext<'a> {
        EventContext::user(
            source.authority_id,
            Some(source.source_id),
            occurred_at,
            actor,
        )
    }

    /// The events of an import a person ran (`cause` `import`: a purchase file).
    pub fn import(
        authority_id: Uuid,
        occurred_at: DateTime<Utc>,
        actor: &'a str,
    ) -> EventContext<'a> {
        EventContext {
            authority_id,
            source_id: None,
            occurred_at,
            cause: "import",
            sync_run_id: None,
            actor: Some(actor),
        }
    }

    /// The events of a person's decision (`cause` `user`), about a source's record if any.
    pub fn user(
        authority_id: Uuid,
        source_id: Option<Uuid>,
        occurred_at: DateTime<Utc>,
        actor: &'a str,
    ) -> EventContext<'a> {
        EventContext {
            authority_id,
            source_id,
            occurred_at,
            cause: "user",
            sync_run_id: None,
            actor: Some(actor),
        }
    }
}

/// Appends `events` in one statement; nothing for none.
pub(crate) async fn insert_events(
    conn: &mut PgConnection,
    context: &EventContext<'_>,
    events: &[Event<'_>],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    event_insert(context, events).execute(&mut *conn).await?;
    Ok(())
}

/// The insert of `events` as a bound query, built apart from running it so a sync run can
/// build it while the database runs the statement before.
pub(crate) fn event_insert<'q>(
    context: &EventContext<'q>,
    events: &'q [Event<'q>],
) -> Query<'q, Postgres, PgArguments> {
    let device_ids: Vec<Uuid> = events.iter().map(|(device_id, _, _)| *device_id).collect();
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| *kind).collect();
    let changes: Vec<&str> = events
        .iter()
        .map(|(_, _, changes)| changes.as_str())
        .collect();
    sqlx::query(
        "insert into device_event (authority_id, device_id, occurred_at, kind, cause, sync_run_id, \
         source_id, actor, changes) \
         select $1, u.device_id, $2, u.kind, $8, $3, $4, $9, u.changes::json \
         from unnest($5::uuid[], $6::text[], $7::text[]) as u(device_id, kind, changes)",
    )
    .bind(context.authority_id)
    .bind(context.occurred_at)
    .bind(context.sync_run_id)
    .bind(context.source_id)
    .bind(device_ids)
    .bind(kinds)
    .bind(changes)
    .bind(context.cause)
    .bind(context.actor)
}

/// Copies the events `source_id` wrote on device `from` to device `to`, as they were (time,
/// cause, run, actor), for a record split off into a device of its own: history is
/// append-only, so the old device keeps its copy. Returns how many were copied.
pub(crate) async fn copy_source_history(
    conn: &mut PgConnection,
    from: Uuid,
    to: Uuid,
    source_id: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "insert into device_event (authority_id, device_id, occurred_at, kind, cause, \
         sync_run_id, source_id, actor, changes) \
         select authority_id, $2, occurred_at, kind, cause, sync_run_id, source_id, actor, changes \
         from device_event where device_id = $1 and source_id = $3 order by device_event_id",
    )
    .bind(from)
    .bind(to)
    .bind(source_id)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}
