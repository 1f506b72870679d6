//! Devices a school may want to lend: what an MDM already gives a pupil without a loan on
//! record (the start of a school year, recorded after the fact), and spare devices at a pupil's
//! school. Lendable means in use or in stock, reported by every source that knows it, and on
//! no active loan.

use sqlx::PgPool;

use crate::access::Scope;
use crate::error::CoreError;
use crate::loans::rules::lendable_states;
use crate::store::in_scope;

/// A device an MDM assigns to a pupil of its own school, with no loan on record.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AssignedWithoutLoan {
    pub asset_tag: String,
    pub username: String,
    pub school_number: String,
    pub class_name: Option<String>,
}

/// The SQL that a device `d` is lendable (its state bound as `$n`, from `rules`) and free: a
/// first cut both lists share; a hand-out checks the rules again under the device's lock.
fn lendable_and_free(states: usize) -> String {
    format!(
        "d.asset_tag is not null and d.lifecycle_state = any(${states}) \
         and not exists (select 1 from source_link l where l.device_id = d.device_id \
                         and l.missing_since is not null) \
         and not exists (select 1 from loan o where o.device_id = d.device_id \
                         and o.state = 'active')"
    )
}

/// Every device inside `scope` that an MDM assigns to a pupil of the device's school and that
/// is on no loan, by school, class and asset tag.
pub async fn assigned_without_loan(
    pool: &PgPool,
    scope: &Scope,
) -> Result<Vec<AssignedWithoutLoan>, CoreError> {
    let device_scope = in_scope("d.authority_id", "d.school_id", 1, 2);
    let lendable = lendable_and_free(3);
    let rows = sqlx::query_as::<_, AssignedWithoutLoan>(&format!(
        "select distinct d.asset_tag, p.username, s.school_number, m.class_name \
         from device_assignment a join device d using (device_id) \
         join school s on s.school_id = d.school_id \
         join person p on p.person_id = a.person_id \
         join person_membership m on m.person_id = p.person_id and m.school_id = d.school_id \
              and m.role = 'student' \
         where a.status = 'matched' and p.username is not null and {lendable} \
         and {device_scope} \
         order by s.school_number, m.class_name, d.asset_tag"
    ))
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(lendable_states())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The first spare device (by asset tag) inside `scope` at a school where `username` is a
/// pupil: lendable, free and assigned to nobody by any MDM.
pub async fn spare_device_for(
    pool: &PgPool,
    scope: &Scope,
    username: &str,
) -> Result<Option<String>, CoreError> {
    let device_scope = in_scope("d.authority_id", "d.school_id", 2, 3);
    let lendable = lendable_and_free(4);
    let spare = sqlx::query_scalar(&format!(
        "select d.asset_tag from device d \
         join person_membership m on m.school_id = d.school_id and m.role = 'student' \
         join person p on p.person_id = m.person_id \
         where p.username = $1 and {lendable} \
         and not exists (select 1 from device_assignment a where a.device_id = d.device_id) \
         and {device_scope} \
         order by d.asset_tag limit 1"
    ))
    .bind(username)
    .bind(scope.authority_param())
    .bind(scope.schools_param())
    .bind(lendable_states())
    .fetch_optional(pool)
    .await?;
    Ok(spare)
}
