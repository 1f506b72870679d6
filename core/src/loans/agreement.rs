//! What a printed loan agreement (Leihvertrag) says about a loan, read from the inventory in
//! one query: authority, lending school, borrower with role and class, device, accessories,
//! dates and condition. The CLI turns these facts into the agreement's layout; core knows
//! nothing of PDFs or templates.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::model::{DeviceCategory, LoanState, PersonRole};

/// Everything an agreement prints about one loan, complete: a loan that cannot have an
/// agreement (pseudonymised, cancelled, without a lending school) never becomes facts.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementFacts {
    pub loan_id: i64,
    pub state: LoanState,
    /// The school authority (Schulträger) that owns the device.
    pub authority_name: String,
    /// The lending school.
    pub school_name: String,
    pub school_number: String,
    pub person_id: Uuid,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Given and family name, `None` when the directory reports neither.
    pub borrower_name: Option<String>,
    pub username: Option<String>,
    /// The borrower's class at the lending school, as the directory reports it now.
    pub class_name: Option<String>,
    /// The borrower's role: at the lending school if they belong to it, else at any school of
    /// the authority (a pupil lent a device across schools); `student` wins over `teacher`,
    /// `teacher` over `staff` and `school_admin`. `None` when no directory reports a role.
    pub role: Option<PersonRole>,
    pub category: DeviceCategory,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub asset_tag: Option<String>,
    pub accessories: Vec<String>,
    pub handed_out_at: DateTime<Utc>,
    pub handed_out_by: String,
    pub due_on: NaiveDate,
    /// Defects noted at hand-out.
    pub condition_out: Option<String>,
}

/// The row as the query returns it, before the checks.
#[derive(sqlx::FromRow)]
struct FactsRow {
    loan_id: i64,
    state: String,
    authority_name: String,
    school_name: Option<String>,
    school_number: Option<String>,
    person_id: Option<Uuid>,
    borrower_pseudonym: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    borrower_name: Option<String>,
    username: Option<String>,
    class_name: Option<String>,
    role: Option<String>,
    category: String,
    manufacturer: Option<String>,
    model: Option<String>,
    serial_number: Option<String>,
    asset_tag: Option<String>,
    accessories: Vec<String>,
    handed_out_at: DateTime<Utc>,
    handed_out_by: String,
    due_on: NaiveDate,
    condition_out: Option<String>,
}

const FACTS_SELECT: &str = "select l.loan_id, l.state, a.name as authority_name, \
    s.name as school_name, s.school_number, l.person_id, l.borrower_pseudonym, \
    p.given_name, p.family_name, \
    nullif(concat_ws(' ', p.given_name, p.family_name), '') as borrower_name, p.username, \
    (select min(m.class_name) from person_membership m where m.person_id = l.person_id \
     and m.school_id = l.school_id and m.role = 'student') as class_name, \
    (select m.role from person_membership m where m.person_id = l.person_id \
     order by m.school_id is not distinct from l.school_id desc, \
     case m.role when 'student' then 0 when 'teacher' then 1 when 'staff' then 2 else 3 end \
     limit 1) as role, \
    d.category, d.manufacturer, d.model, d.serial_number, d.asset_tag, \
    l.accessories, l.handed_out_at, l.handed_out_by, l.due_on, l.condition_out \
    from unnest($1::bigint[]) with ordinality as wanted (loan_id, position) \
    join loan l on l.loan_id = wanted.loan_id \
    join device d on d.device_id = l.device_id \
    join school_authority a on a.authority_id = l.authority_id \
    left join school s on s.school_id = l.school_id \
    left join person p on p.person_id = l.person_id \
    where ($2::uuid is null or l.authority_id = $2) \
    and ($3::uuid[] is null or l.school_id = any($3)) \
    order by wanted.position";

/// The facts of the agreements of `loan_ids`, in the order given (a loan named twice comes
/// once). Refuses the whole list, naming the loan, when one does not exist, was cancelled,
/// has no lending school, or lost its borrower to the privacy purge (pseudonymised). A loan
/// outside `scope` does not exist.
pub async fn agreement_facts(
    pool: &PgPool,
    scope: &Scope,
    loan_ids: &[i64],
) -> Result<Vec<AgreementFacts>, CoreError> {
    let mut wanted: Vec<i64> = Vec::with_capacity(loan_ids.len());
    for loan_id in loan_ids {
        if !wanted.contains(loan_id) {
            wanted.push(*loan_id);
        }
    }
    let rows: Vec<FactsRow> = sqlx::query_as(FACTS_SELECT)
        .bind(&wanted)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_all(pool)
        .await?;
    if let Some(missing) = wanted
        .iter()
        .find(|loan_id| !rows.iter().any(|row| row.loan_id == **loan_id))
    {
        return Err(CoreError::NotFound {
            what: "loan",
            key: missing.to_string(),
        });
    }
    rows.into_iter().map(checked).collect()
}

fn checked(row: FactsRow) -> Result<AgreementFacts, CoreError> {
    let loan_id = row.loan_id;
    let state: LoanState = row.state.parse().map_err(CoreError::Invalid)?;
    let Some(person_id) = row.person_id else {
        let pseudonym = row
            .borrower_pseudonym
            .map(|p| format!(" (now {p})"))
            .unwrap_or_default();
        return Err(CoreError::Invalid(format!(
            "loan {loan_id} has no borrower any more: the privacy purge pseudonymised it{pseudonym}, \
             so no agreement can be printed for it"
        )));
    };
    if state == LoanState::Cancelled {
        return Err(CoreError::Invalid(format!(
            "loan {loan_id} was cancelled (entered by mistake); no agreement is printed for it"
        )));
    }
    let (Some(school_name), Some(school_number)) = (row.school_name, row.school_number) else {
        return Err(CoreError::Invalid(format!(
            "loan {loan_id} has no lending school, which the agreement must name"
        )));
    };
    let role = row
        .role
        .as_deref()
        .map(str::parse::<PersonRole>)
        .transpose()
        .map_err(CoreError::Invalid)?;
    Ok(AgreementFacts {
        loan_id,
        state,
        authority_name: row.authority_name,
        school_name,
        school_number,
        person_id,
        given_name: row.given_name,
        family_name: row.family_name,
        borrower_name: row.borrower_name,
        username: row.username,
        class_name: row.class_name,
        role,
        category: row.category.parse().map_err(CoreError::Invalid)?,
        manufacturer: row.manufacturer,
        model: row.model,
        serial_number: row.serial_number,
        asset_tag: row.asset_tag,
        accessories: row.accessories,
        handed_out_at: row.handed_out_at,
        handed_out_by: row.handed_out_by,
        due_on: row.due_on,
        condition_out: row.condition_out,
    })
}
