//! Links a run no longer finds: those whose device another source now reports (moved) and
//! the rest (missing), for the device run and for the approval of a blocked one.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::history::{insert_events, EventContext};
use crate::store::SourceRef;

/// A link the source no longer reports whose device another source still reports.
pub(crate) struct MovedLink {
    source_link_id: Uuid,
    device_id: Uuid,
    external_id: String,
    now_in: String,
}

/// Splits unreported links into those whose device moved to another source and the rest.
pub(crate) async fn split_moved(
    conn: &mut PgConnection,
    source: &SourceRef,
    links: &[Uuid],
) -> Result<(Vec<MovedLink>, Vec<Uuid>), sqlx::Error> {
    if links.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<(Uuid, Uuid, String, String)> = sqlx::query_as(
        "select l.source_link_id, l.device_id, l.external_id, \
         string_agg(distinct s.name, ', ' order by s.name) \
         from source_link l \
         join source_link o on o.device_id = l.device_id and o.source_id <> $2 \
          and o.ended_at is null and o.missing_since is null \
         join source s on s.source_id = o.source_id \
         where l.source_link_id = any($1) group by l.source_link_id, l.device_id, l.external_id",
    )
    .bind(links)
    .bind(source.source_id)
    .fetch_all(&mut *conn)
    .await?;
    let moved: Vec<MovedLink> = rows
        .into_iter()
        .map(
            |(source_link_id, device_id, external_id, now_in)| MovedLink {
                source_link_id,
                device_id,
                external_id,
                now_in,
            },
        )
        .collect();
    let moved_ids: HashSet<Uuid> = moved.iter().map(|m| m.source_link_id).collect();
    let gone = links
        .iter()
        .copied()
        .filter(|link| !moved_ids.contains(link))
        .collect();
    Ok((moved, gone))
}

/// Ends the links of devices that moved to another source, with an event saying where to.
pub(crate) async fn end_moved(
    conn: &mut PgConnection,
    source: &SourceRef,
    moved: &[MovedLink],
    now: DateTime<Utc>,
    previous_complete: Option<DateTime<Utc>>,
    run_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    if moved.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = moved.iter().map(|m| m.source_link_id).collect();
    let reasons: Vec<String> = moved
        .iter()
        .map(|m| format!("moved to {}", m.now_in))
        .collect();
    sqlx::query(
        "update source_link l set ended_at = $2, ended_reason = u.reason, \
         last_seen_at = greatest(l.last_seen_at, coalesce($4, l.last_seen_at)) \
         from unnest($1::uuid[], $3::text[]) as u(source_link_id, reason) \
         where l.source_link_id = u.source_link_id",
    )
    .bind(&ids)
    .bind(now)
    .bind(&reasons)
    .bind(previous_complete)
    .execute(&mut *conn)
    .await?;
    let events: Vec<(Uuid, &'static str, String)> = moved
        .iter()
        .map(|m| {
            let old_link = format!("{}:{}", source.name, m.external_id);
            let changes = json!({
                "source_link": { "old": old_link, "new": null },
                "moved_to": { "old": source.name, "new": m.now_in },
            });
            (m.device_id, "moved", changes.to_string())
        })
        .collect();
    let context = EventContext::sync(source, now, run_id);
    insert_events(conn, &context, &events).await
}

/// Marks links missing from their source and records it in each device's history.
/// `previous_complete` is when the source last confirmed these links (their last sighting).
pub(crate) async fn mark_missing(
    conn: &mut PgConnection,
    source: &SourceRef,
    links: &[Uuid],
    now: DateTime<Utc>,
    previous_complete: Option<DateTime<Utc>>,
    run_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    if links.is_empty() {
        return Ok(());
    }
    let devices: Vec<Uuid> = sqlx::query_scalar(
        "update source_link set missing_since = $2, \
         last_seen_at = greatest(last_seen_at, coalesce($3, last_seen_at)) \
         where source_link_id = any($1) and missing_since is null and ended_at is null \
         returning device_id",
    )
    .bind(links)
    .bind(now)
    .bind(previous_complete)
    .fetch_all(&mut *conn)
    .await?;
    let events: Vec<(Uuid, &'static str, String)> = devices
        .into_iter()
        .map(|device_id| {
            (
                device_id,
                "missing",
                json!({ "missing_from": { "old": null, "new": source.name } }).to_string(),
            )
        })
        .collect();
    let context = EventContext::sync(source, now, run_id);
    insert_events(conn, &context, &events).await
}
