//! Person and school queries for people: who is at which school in which class, who has which
//! device, and which MDM user hints could not be resolved.
//!
//! A person is in a scope by its authority and, for a scope of schools, by a membership at one
//! of them; a school by its own id; a device by its school (`store::devices`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::PersonRole;
use crate::store::{in_scope, person_in_scope};

/// One school with what the inventory knows of it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SchoolSummary {
    pub authority: String,
    pub school_number: String,
    pub name: String,
    pub school_type: String,
    pub devices: i64,
    pub pupils: i64,
    pub teachers: i64,
    pub classes: i64,
}

/// Lists the configured schools in `scope` with device, pupil, teacher and class counts
/// (persons who left are not counted).
pub async fn list_schools(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<SchoolSummary>, CoreError> {
    Ok(sqlx::query_as(
        "select a.slug as authority, s.school_number, s.name, s.school_type, \
         (select count(*) from device d where d.school_id = s.school_id) as devices, \
         (select count(distinct m.person_id) from person_membership m join person p using (person_id) \
          where m.school_id = s.school_id and m.role = 'student' and p.left_at is null) as pupils, \
         (select count(distinct m.person_id) from person_membership m join person p using (person_id) \
          where m.school_id = s.school_id and m.role = 'teacher' and p.left_at is null) as teachers, \
         (select count(distinct m.class_name) from person_membership m join person p using (person_id) \
          where m.school_id = s.school_id and m.class_name is not null and p.left_at is null) as classes \
         from school s join school_authority a using (authority_id) \
         where ($1::text is null or a.slug = $1) \
         and ($2::uuid is null or s.authority_id = $2) and ($3::uuid[] is null or s.school_id = any($3)) \
         order by a.slug, s.school_number",
    )
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// Filters of `bestand persons list`; they combine with AND and narrow the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    pub authority: Option<String>,
    /// School number, name or alias (case-insensitive).
    pub school: Option<String>,
    pub role: Option<PersonRole>,
    /// Class name as the directory spells it (case-insensitive), e.g. `5a`.
    pub class: Option<String>,
    /// Only persons who left (no directory reports them any more); otherwise only current ones.
    pub left: bool,
    /// Substring of username, email or name.
    pub search: Option<String>,
    pub limit: Option<i64>,
}

/// One line of the person list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PersonSummary {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `role@school` entries with the class, e.g. `student@100001 (4b)`.
    pub roles: Option<String>,
    pub devices: i64,
    pub left_at: Option<DateTime<Utc>>,
}

/// SQL matching a school given as number, name or alias against `s`.
pub(crate) fn push_school_filter(query: &mut QueryBuilder<'_, sqlx::Postgres>, school: &str) {
    let school = school.trim().to_lowercase();
    query
        .push(" (s.school_number = ")
        .push_bind(school.clone())
        .push(" or lower(s.name) = ")
        .push_bind(school.clone())
        .push(" or ")
        .push_bind(school)
        .push(" = any(select lower(x) from unnest(s.aliases) x))");
}

/// Appends the scope's test for the person `p`: its authority, and for a scope of schools a
/// membership at one of them.
fn push_person_scope(query: &mut QueryBuilder<'_, sqlx::Postgres>, scope: &Scope) {
    if let Some(authority_id) = scope.authority_param() {
        query.push(" and p.authority_id = ").push_bind(authority_id);
    }
    if let Some(schools) = scope.schools_param() {
        query
            .push(
                " and exists (select 1 from person_membership pm where pm.person_id = p.person_id \
                 and pm.school_id = any(",
            )
            .push_bind(schools)
            .push("))");
    }
}

/// Lists the persons in `scope` matching `filter`, ordered by school, class and name.
pub async fn list_persons(
    pool: &PgPool,
    scope: &Scope,
    filter: &PersonFilter,
) -> Result<Vec<PersonSummary>, CoreError> {
    let mut query = QueryBuilder::new(
        "select p.person_id, p.username, \
         nullif(concat_ws(' ', p.given_name, p.family_name), '') as name, p.email, \
         (select string_agg(distinct m.role || '@' || s.school_number \
              || coalesce(' (' || m.class_name || ')', ''), ', ') \
          from person_membership m join school s using (school_id) \
          where m.person_id = p.person_id) as roles, \
         (select count(*) from device_assignment da where da.person_id = p.person_id) as devices, \
         p.left_at \
         from person p join school_authority a on a.authority_id = p.authority_id where ",
    );
    query.push(if filter.left {
        "p.left_at is not null"
    } else {
        "p.left_at is null"
    });
    push_person_scope(&mut query, scope);
    if let Some(authority) = &filter.authority {
        query.push(" and a.slug = ").push_bind(authority.clone());
    }
    if filter.school.is_some() || filter.role.is_some() || filter.class.is_some() {
        query.push(
            " and exists (select 1 from person_membership m join school s using (school_id) \
             where m.person_id = p.person_id",
        );
        if let Some(school) = &filter.school {
            query.push(" and");
            push_school_filter(&mut query, school);
        }
        if let Some(role) = filter.role {
            query.push(" and m.role = ").push_bind(role.as_str());
        }
        if let Some(class) = &filter.class {
            query
                .push(" and lower(m.class_name) = ")
                .push_bind(class.trim().to_lowercase());
        }
        query.push(")");
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", crate::store::devices::escape_like(search.trim()));
        query
            .push(" and (p.username ilike ")
            .push_bind(pattern.clone())
            .push(" or p.email ilike ")
            .push_bind(pattern.clone())
            .push(" or concat_ws(' ', p.given_name, p.family_name) ilike ")
            .push_bind(pattern)
            .push(")");
    }
    query.push(
        " order by (select min(s.school_number || coalesce(m.class_name, '')) \
          from person_membership m join school s using (school_id) \
          where m.person_id = p.person_id) nulls last, \
          p.family_name nulls last, p.given_name nulls last, p.username, p.person_id",
    );
    if let Some(limit) = filter.limit {
        query.push(" limit ").push_bind(limit);
    }
    Ok(query
        .build_query_as::<PersonSummary>()
        .fetch_all(pool)
        .await?)
}

/// A person's place at one school, as one source reports it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MembershipView {
    pub school_number: String,
    pub school_name: String,
    pub role: String,
    pub class_name: Option<String>,
    pub source_name: String,
}

/// One directory's link to a person.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PersonLinkView {
    pub source_name: String,
    pub external_id: String,
    pub first_seen_at: DateTime<Utc>,
    pub missing_since: Option<DateTime<Utc>>,
}

/// A device assigned to a person, and which source says so.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssignedDevice {
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub category: String,
    pub source_name: String,
    pub since: DateTime<Utc>,
}

/// The stored fields of a person.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PersonRow {
    pub person_id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub record_uid: Option<String>,
    pub record_source_uid: Option<String>,
    pub directory_uuid: Option<String>,
    pub entra_object_id: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Everything known about one person.
#[derive(Debug, Clone, Serialize)]
pub struct PersonDetail {
    pub person: PersonRow,
    pub authority: String,
    pub memberships: Vec<MembershipView>,
    pub sources: Vec<PersonLinkView>,
    pub devices: Vec<AssignedDevice>,
    /// The person's loans, open ones first.
    pub loans: Vec<crate::loans::LoanView>,
}

/// Finds a person in `scope` by id, username or email and loads memberships, sources and
/// devices. A scope of schools sees only the memberships at its schools and the devices of its
/// schools: the person's place at another school is that school's business.
pub async fn show_person(
    pool: &PgPool,
    scope: &Scope,
    key: &str,
) -> Result<PersonDetail, CoreError> {
    let person_id = resolve_person(pool, scope, None, key).await?;
    let person: PersonRow = sqlx::query_as(
        "select person_id, username, email, given_name, family_name, record_uid, \
         record_source_uid, directory_uuid, entra_object_id, left_at, first_seen_at, updated_at \
         from person where person_id = $1",
    )
    .bind(person_id)
    .fetch_one(pool)
    .await?;
    let authority: String = sqlx::query_scalar(
        "select a.slug from person p join school_authority a using (authority_id) \
         where p.person_id = $1",
    )
    .bind(person_id)
    .fetch_one(pool)
    .await?;
    let memberships = sqlx::query_as(
        "select s.school_number, s.name as school_name, m.role, m.class_name, \
         src.name as source_name from person_membership m join school s using (school_id) \
         join source src using (source_id) where m.person_id = $1 \
         and ($2::uuid[] is null or m.school_id = any($2)) \
         order by s.school_number, m.role, m.class_name, src.name",
    )
    .bind(person_id)
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?;
    let sources = sqlx::query_as(
        "select src.name as source_name, l.external_id, l.first_seen_at, l.missing_since \
         from person_link l join source src using (source_id) where l.person_id = $1 \
         order by src.name",
    )
    .bind(person_id)
    .fetch_all(pool)
    .await?;
    let devices = assigned_devices(pool, scope, person_id).await?;
    let loans = crate::loans::loans_of_person(pool, scope, person_id).await?;
    Ok(PersonDetail {
        person,
        authority,
        memberships,
        sources,
        devices,
        loans,
    })
}

/// The devices in `scope` that sources assign to `person_id`; none if the person is outside
/// the scope.
pub async fn assigned_devices(
    pool: &PgPool,
    scope: &Scope,
    person_id: Uuid,
) -> Result<Vec<AssignedDevice>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select d.device_id, d.asset_tag, d.serial_number, d.model, d.category, \
         src.name as source_name, a.since \
         from device_assignment a join device d using (device_id) join source src using (source_id) \
         join person p on p.person_id = a.person_id \
         where a.person_id = $1 and {} and {} \
         order by d.asset_tag nulls last, d.serial_number, src.name",
        in_scope("d.authority_id", "d.school_id", 2, 3),
        person_in_scope(2, 3)
    ))
    .bind(person_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// Resolves what a person typed (id, username or email) to exactly one person in `scope`,
/// within `authority_id` when given; a person outside the scope is not found. Current persons
/// win over persons who left with the same login.
pub async fn resolve_person(
    pool: &PgPool,
    scope: &Scope,
    authority_id: Option<Uuid>,
    key: &str,
) -> Result<Uuid, CoreError> {
    let key = key.trim();
    let in_scope = person_in_scope(3, 4);
    if let Ok(person_id) = Uuid::parse_str(key) {
        let found: Option<Uuid> = sqlx::query_scalar(&format!(
            "select p.person_id from person p where p.person_id = $1 \
             and ($2::uuid is null or p.authority_id = $2) and {in_scope}"
        ))
        .bind(person_id)
        .bind(authority_id)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_optional(pool)
        .await?;
        return found.ok_or_else(|| CoreError::NotFound {
            what: "person",
            key: key.to_string(),
        });
    }
    let column = if key.contains('@') {
        "email"
    } else {
        "username"
    };
    let found: Vec<(Uuid, bool)> = sqlx::query_as(&format!(
        "select p.person_id, p.left_at is not null from person p \
         where lower(p.{column}) = lower($1) and ($2::uuid is null or p.authority_id = $2) \
         and {in_scope} order by p.left_at nulls first"
    ))
    .bind(key)
    .bind(authority_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?;
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
    crate::store::exactly_one(
        &candidates,
        key,
        "person (by id, username or email)",
        "person",
    )
}

/// An MDM user hint that matches nobody or several persons.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UnresolvedHint {
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub source_name: String,
    pub hint_username: Option<String>,
    pub hint_email: Option<String>,
    pub status: String,
    /// Usernames of the persons an ambiguous hint matches.
    pub candidates: Option<String>,
}

/// Lists the user hints that could not be resolved to exactly one person, of the devices in
/// `scope`.
pub async fn unresolved_hints(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
) -> Result<Vec<UnresolvedHint>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select d.device_id, d.asset_tag, d.serial_number, src.name as source_name, \
         h.hint_username, h.hint_email, h.status, \
         (select string_agg(coalesce(p.username, p.email, p.person_id::text), ', ' \
              order by p.username) from person p where p.person_id = any(h.candidates)) \
              as candidates \
         from device_assignment h join device d using (device_id) join source src using (source_id) \
         join school_authority a on a.authority_id = h.authority_id \
         where h.status <> 'matched' and ($1::text is null or a.slug = $1) and {} \
         order by h.status, src.name, d.asset_tag nulls last, d.serial_number",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(authority)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// Who a device is assigned to, per source that names a user for it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeviceAssignmentView {
    pub source_name: String,
    pub status: String,
    pub person_id: Option<Uuid>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    pub hint_username: Option<String>,
    pub hint_email: Option<String>,
    pub since: DateTime<Utc>,
}

/// The assignments of one device; none if the device is outside `scope`.
pub async fn device_assignments(
    pool: &PgPool,
    scope: &Scope,
    device_id: Uuid,
) -> Result<Vec<DeviceAssignmentView>, CoreError> {
    Ok(sqlx::query_as(&format!(
        "select src.name as source_name, a.status, a.person_id, p.username, \
         nullif(concat_ws(' ', p.given_name, p.family_name), '') as name, p.left_at, \
         a.hint_username, a.hint_email, a.since \
         from device_assignment a join source src using (source_id) \
         join device d on d.device_id = a.device_id \
         left join person p on p.person_id = a.person_id \
         where a.device_id = $1 and {} order by src.name",
        in_scope("d.authority_id", "d.school_id", 2, 3)
    ))
    .bind(device_id)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .fetch_all(pool)
    .await?)
}

/// The one school inside `scope` that `key` names (number, name or alias), with its number
/// and authority slug.
pub(crate) async fn find_school(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
    key: &str,
) -> Result<(Uuid, String, String), CoreError> {
    let mut query = QueryBuilder::new(
        "select s.school_id, s.school_number, a.slug from school s \
         join school_authority a using (authority_id) where",
    );
    push_school_filter(&mut query, key);
    crate::store::push_scope(&mut query, scope, "s.authority_id", "s.school_id");
    if let Some(authority) = authority {
        query
            .push(" and a.slug = ")
            .push_bind(authority.to_string());
    }
    let found: Vec<(Uuid, String, String)> = query.build_query_as().fetch_all(pool).await?;
    match found.as_slice() {
        [] => Err(CoreError::NotFound {
            what: "school (by number, name or alias)",
            key: key.trim().to_string(),
        }),
        [one] => Ok(one.clone()),
        several => Err(CoreError::Conflict(format!(
            "'{}' names {} schools (in {}); give the authority",
            key.trim(),
            several.len(),
            several
                .iter()
                .map(|(_, _, slug)| slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
