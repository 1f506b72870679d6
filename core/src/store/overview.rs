//! Figures about the inventory as a whole, for overviews: the demo's tour now, a start page
//! later. Every figure counts only what the scope reaches.

use sqlx::PgPool;

use crate::access::Scope;
use crate::error::CoreError;
use crate::store::in_scope;

/// What an overview shows beside the device lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InventoryFigures {
    /// Devices that two or more sources report right now (one device each, linked to all).
    pub devices_in_several_sources: i64,
    /// Distinct persons who have not left, by role; a teacher at two schools counts once.
    pub pupils: i64,
    pub teachers: i64,
    /// MDM user hints resolved to one person, to nobody, and to several candidates.
    pub assignments_matched: i64,
    pub assignments_no_match: i64,
    pub assignments_ambiguous: i64,
}

/// The figures of the inventory inside `scope`.
pub async fn inventory_figures(
    pool: &PgPool,
    scope: &Scope,
) -> Result<InventoryFigures, CoreError> {
    let device_scope = in_scope("d.authority_id", "d.school_id", 1, 2);
    let devices_in_several_sources: i64 = sqlx::query_scalar(&format!(
        "select count(*) from (select l.device_id from source_link l \
         join device d using (device_id) where l.ended_at is null and {device_scope} \
         group by l.device_id having count(distinct l.source_id) > 1) several"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_one(pool)
    .await?;
    let membership_scope = in_scope("m.authority_id", "m.school_id", 1, 2);
    let (pupils, teachers): (i64, i64) = sqlx::query_as(&format!(
        "select count(distinct m.person_id) filter (where m.role = 'student'), \
         count(distinct m.person_id) filter (where m.role = 'teacher') \
         from person_membership m join person p using (person_id) \
         where p.left_at is null and {membership_scope}"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_one(pool)
    .await?;
    let (assignments_matched, assignments_no_match, assignments_ambiguous): (i64, i64, i64) =
        sqlx::query_as(&format!(
            "select count(*) filter (where a.status = 'matched'), \
             count(*) filter (where a.status = 'no_match'), \
             count(*) filter (where a.status = 'ambiguous') \
             from device_assignment a join device d using (device_id) where {device_scope}"
        ))
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_one(pool)
        .await?;
    Ok(InventoryFigures {
        devices_in_several_sources,
        pupils,
        teachers,
        assignments_matched,
        assignments_no_match,
        assignments_ambiguous,
    })
}
