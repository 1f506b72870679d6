//! What the replacement forecast and the cost split need per school, entered by hand: the
//! target equipment of the media development plan (devices per pupil or per class room) and
//! pupils per level where the directory's count is not the one to use. The reports read the
//! tables (`school_target_equipment`, `school_pupils`); this writes them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

use crate::access::{Actor, Scope};
use crate::error::CoreError;
use crate::model::DeviceCategory;

/// How many devices of a category a school should have.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    PerPupil(Decimal),
    PerRoom { per_room: Decimal, rooms: u32 },
}

/// The school levels of the cost split's key.
pub const LEVELS: &[&str] = &[
    "primary",
    "lower_secondary",
    "upper_secondary",
    "vocational",
];

/// The school `number` in `scope` (of `authority`, when several have the number).
async fn school(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
    number: &str,
) -> Result<(uuid::Uuid, uuid::Uuid), CoreError> {
    let found: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(&format!(
        "select s.school_id, s.authority_id from school s join school_authority a using (authority_id) \
         where s.school_number = $1 and ($4::text is null or a.slug = $4) and {}",
        crate::store::in_scope("s.authority_id", "s.school_id", 2, 3)
    ))
    .bind(number.trim())
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(authority)
    .fetch_all(pool)
    .await?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(CoreError::NotFound {
            what: "school",
            key: number.trim().to_string(),
        }),
        _ => Err(CoreError::Invalid(format!(
            "school number {} exists in several authorities; name one with --authority",
            number.trim()
        ))),
    }
}

/// Sets the target equipment of a school for a category.
pub async fn set_target_equipment(
    pool: &PgPool,
    scope: &Scope,
    _actor: &Actor,
    authority: Option<&str>,
    school_number: &str,
    category: DeviceCategory,
    target: Target,
) -> Result<(), CoreError> {
    let (school_id, authority_id) = school(pool, scope, authority, school_number).await?;
    let (per_pupil, per_room, rooms) = match target {
        Target::PerPupil(per_pupil) => (Some(per_pupil), None, None),
        Target::PerRoom { per_room, rooms } => (None, Some(per_room), Some(rooms as i32)),
    };
    if per_pupil.or(per_room).is_some_and(|n| n.is_sign_negative()) {
        return Err(CoreError::Invalid("a target cannot be negative".into()));
    }
    sqlx::query(
        "insert into school_target_equipment (school_id, authority_id, category, \
         devices_per_pupil, devices_per_room, class_rooms) values ($1, $2, $3, $4, $5, $6) \
         on conflict (school_id, category) do update set \
         devices_per_pupil = excluded.devices_per_pupil, \
         devices_per_room = excluded.devices_per_room, class_rooms = excluded.class_rooms",
    )
    .bind(school_id)
    .bind(authority_id)
    .bind(category.as_str())
    .bind(per_pupil)
    .bind(per_room)
    .bind(rooms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets the number of pupils of a school at a level (`LEVELS`).
#[allow(clippy::too_many_arguments)]
pub async fn set_pupils(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    authority: Option<&str>,
    school_number: &str,
    level: &str,
    pupils: u32,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    if !LEVELS.contains(&level) {
        return Err(CoreError::Invalid(format!(
            "unknown level '{level}' (levels: {})",
            LEVELS.join(", ")
        )));
    }
    let (school_id, authority_id) = school(pool, scope, authority, school_number).await?;
    sqlx::query(
        "insert into school_pupils (school_id, authority_id, level, pupils, entered_at, \
         entered_by) values ($1, $2, $3, $4, $5, $6) on conflict (school_id, level) do update \
         set pupils = excluded.pupils, entered_at = excluded.entered_at, \
         entered_by = excluded.entered_by",
    )
    .bind(school_id)
    .bind(authority_id)
    .bind(level)
    .bind(pupils as i32)
    .bind(now)
    .bind(actor.name())
    .execute(pool)
    .await?;
    Ok(())
}
