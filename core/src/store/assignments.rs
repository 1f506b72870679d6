//! Who has which device: the MDMs' user hints (Jamf username or email, Intune UPN, Relution
//! user, Jamf School owner) resolved to persons from the school directories.
//!
//! The result is derived data, rebuilt for a whole authority at the end of every sync run
//! (device or directory) inside that run's transaction, so it is never staler than the
//! inventory. A hint that matches nobody, or several persons, keeps that status and its
//! candidates so it can be listed instead of guessed.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// How the hints of one authority resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AssignmentCounts {
    pub matched: i64,
    pub no_match: i64,
    pub ambiguous: i64,
}

// The hints of every live link. A hint matches persons in this order, and the first level
// with any candidate decides: email = email; username = username or email; a UPN-like
// username's local part = username. Among several candidates, persons still at a school win
// over persons who left; more than one left over is ambiguous.
const HINTS: &str = "\
    hints as ( \
        select l.device_id, l.source_id, \
               nullif(lower(btrim(l.normalized #>> '{user,username}')), '') as username, \
               nullif(lower(btrim(l.normalized #>> '{user,email}')), '') as email \
        from source_link l \
        where l.authority_id = $1 and l.ended_at is null and l.missing_since is null \
          and (l.normalized #>> '{user,username}' is not null \
               or l.normalized #>> '{user,email}' is not null)), \
    wanted as (select * from hints where username is not null or email is not null)";

const PREFER_ACTIVE: &str = "case when count(*) filter (where p.left_at is null) > 0 \
     then array_agg(p.person_id order by p.person_id) filter (where p.left_at is null) \
     else array_agg(p.person_id order by p.person_id) end";

/// Recomputes every device assignment of `authority_id`; rows whose outcome did not change
/// are not written, and keep the time they were first resolved that way.
pub async fn refresh_assignments(
    conn: &mut PgConnection,
    authority_id: Uuid,
    now: DateTime<Utc>,
) -> Result<AssignmentCounts, sqlx::Error> {
    let upsert = format!(
        "with {HINTS}, \
         resolved as ( \
            select w.*, coalesce( \
                (select {PREFER_ACTIVE} from person p where p.authority_id = $1 \
                    and w.email is not null and lower(p.email) = w.email), \
                (select {PREFER_ACTIVE} from person p where p.authority_id = $1 \
                    and w.username is not null \
                    and (lower(p.username) = w.username or lower(p.email) = w.username)), \
                (select {PREFER_ACTIVE} from person p where p.authority_id = $1 \
                    and position('@' in w.username) > 1 \
                    and lower(p.username) = split_part(w.username, '@', 1)), \
                '{{}}'::uuid[]) as ids \
            from wanted w) \
         insert into device_assignment (authority_id, device_id, source_id, hint_username, \
             hint_email, status, person_id, candidates, since) \
         select $1, r.device_id, r.source_id, r.username, r.email, \
             case cardinality(r.ids) when 0 then 'no_match' when 1 then 'matched' else 'ambiguous' end, \
             case when cardinality(r.ids) = 1 then r.ids[1] end, \
             case when cardinality(r.ids) > 1 then r.ids else '{{}}'::uuid[] end, \
             $2 \
         from resolved r \
         on conflict (device_id, source_id) do update set \
             hint_username = excluded.hint_username, hint_email = excluded.hint_email, \
             status = excluded.status, person_id = excluded.person_id, \
             candidates = excluded.candidates, \
             since = case when device_assignment.status = excluded.status \
                 and device_assignment.person_id is not distinct from excluded.person_id \
                 then device_assignment.since else excluded.since end \
         where (device_assignment.hint_username, device_assignment.hint_email, \
                device_assignment.status, device_assignment.person_id, device_assignment.candidates) \
             is distinct from (excluded.hint_username, excluded.hint_email, excluded.status, \
                excluded.person_id, excluded.candidates)"
    );
    sqlx::query(&upsert)
        .bind(authority_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let stale = format!(
        "with {HINTS} delete from device_assignment d where d.authority_id = $1 \
         and not exists (select 1 from wanted w \
             where w.device_id = d.device_id and w.source_id = d.source_id)"
    );
    sqlx::query(&stale)
        .bind(authority_id)
        .execute(&mut *conn)
        .await?;
    let (matched, no_match, ambiguous): (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'matched'), \
                count(*) filter (where status = 'no_match'), \
                count(*) filter (where status = 'ambiguous') \
         from device_assignment where authority_id = $1",
    )
    .bind(authority_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AssignmentCounts {
        matched,
        no_match,
        ambiguous,
    })
}
