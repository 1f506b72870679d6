//! How loans keep to the caller's scope: the SQL condition every loan query carries, and the
//! lookups of the device, the borrower and the school a loan step names, each within the
//! scope. A row outside the scope answers `NotFound`, exactly as an unknown key does.
//!
//! These lookups mirror `store::devices::resolve_device` and `store::persons::resolve_person`
//! with the scope in their SQL; loans keeps its own so that its scope does not wait on the
//! store's.

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::normalize;
use crate::store::exactly_one;

/// Appends ` and ...` limiting rows of `alias` (a table with `authority_id` and `school_id`:
/// loan, device, school) to `scope`. A row without a school is outside a school scope.
pub(crate) fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope, alias: &str) {
    push_authority(query, scope, alias);
    if let Some(schools) = scope.schools_param() {
        query
            .push(format!(" and {alias}.school_id = any("))
            .push_bind(schools)
            .push(")");
    }
}

fn push_authority(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope, alias: &str) {
    if let Some(authority) = scope.authority_param() {
        query
            .push(format!(" and {alias}.authority_id = "))
            .push_bind(authority);
    }
}

/// Appends ` and ...` limiting persons `alias` to `scope`: in a school scope, a person counts
/// when they have a membership at one of its schools.
pub(crate) fn push_person_scope(
    query: &mut QueryBuilder<'_, Postgres>,
    scope: &Scope,
    alias: &str,
) {
    push_authority(query, scope, alias);
    if let Some(schools) = scope.schools_param() {
        query
            .push(format!(
                " and exists (select 1 from person_membership sm \
                 where sm.person_id = {alias}.person_id and sm.school_id = any("
            ))
            .push_bind(schools)
            .push("))");
    }
}

/// The device `key` (id, asset tag or serial number) names within `scope`.
pub(crate) async fn resolve_device(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<Uuid, CoreError> {
    let key = key.trim();
    if let Ok(device_id) = Uuid::parse_str(key) {
        let found = device_ids(pool, scope, DeviceKey::Id(device_id)).await?;
        return found.first().copied().ok_or_else(|| CoreError::NotFound {
            what: "device",
            key: key.to_string(),
        });
    }
    let by_tag = device_ids(pool, scope, DeviceKey::AssetTag(key.to_string())).await?;
    let found = if by_tag.is_empty() {
        let serial = normalize::serial_number(Some(key)).unwrap_or_default();
        device_ids(pool, scope, DeviceKey::Serial(serial)).await?
    } else {
        by_tag
    };
    exactly_one(
        &found,
        key,
        "device (by id, asset tag or serial number)",
        "device",
    )
}

/// What a typed device key turned out to be.
enum DeviceKey {
    Id(Uuid),
    AssetTag(String),
    Serial(String),
}

/// The devices within `scope` that `key` matches.
async fn device_ids(pool: &PgPool, scope: &Scope, key: DeviceKey) -> Result<Vec<Uuid>, CoreError> {
    let mut query = QueryBuilder::new("select d.device_id from device d where ");
    match key {
        DeviceKey::Id(device_id) => query.push("d.device_id = ").push_bind(device_id),
        DeviceKey::AssetTag(tag) => query
            .push("lower(d.asset_tag) = lower(")
            .push_bind(tag)
            .push(")"),
        DeviceKey::Serial(serial) => query.push("d.serial_number = ").push_bind(serial),
    };
    push_scope(&mut query, scope, "d");
    Ok(query.build_query_scalar().fetch_all(pool).await?)
}

/// The person `key` (id, username or email) names within `scope` and, if given, `authority`;
/// a current person wins over one who left.
pub(crate) async fn resolve_person(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<Uuid>,
    key: &str,
) -> Result<Uuid, CoreError> {
    let key = key.trim();
    let mut query =
        QueryBuilder::new("select p.person_id, p.left_at is not null from person p where ");
    let by_id = Uuid::parse_str(key).ok();
    match by_id {
        Some(person_id) => query.push("p.person_id = ").push_bind(person_id),
        None if key.contains('@') => query
            .push("lower(p.email) = lower(")
            .push_bind(key)
            .push(")"),
        None => query
            .push("lower(p.username) = lower(")
            .push_bind(key)
            .push(")"),
    };
    if let Some(authority) = authority {
        query.push(" and p.authority_id = ").push_bind(authority);
    }
    push_person_scope(&mut query, scope, "p");
    query.push(" order by p.left_at nulls first");
    let found: Vec<(Uuid, bool)> = query.build_query_as().fetch_all(pool).await?;
    if by_id.is_some() {
        return found
            .first()
            .map(|(person_id, _)| *person_id)
            .ok_or_else(|| CoreError::NotFound {
                what: "person",
                key: key.to_string(),
            });
    }
    let current: Vec<Uuid> = found
        .iter()
        .filter(|(_, left)| !left)
        .map(|(id, _)| *id)
        .collect();
    let candidates: Vec<Uuid> = if current.is_empty() {
        found.iter().map(|(id, _)| *id).collect()
    } else {
        current
    };
    exactly_one(
        &candidates,
        key,
        "person (by id, username or email)",
        "person",
    )
}
