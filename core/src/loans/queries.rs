//! Reading loans back: one loan, a device's or a person's loans, the filtered list, overdue
//! loans grouped the way a school chases them (per school and class), and borrowers who left
//! with a device.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::loans::scoped::{push_scope, resolve_person};
use crate::model::LoanState;
use crate::store::device_row::device_label;
use crate::store::persons::push_school_filter;

/// One loan with what people need to recognise it: the device, the borrower, the school and
/// the borrower's class there.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LoanView {
    pub loan_id: i64,
    pub state: String,
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    /// The device's lifecycle state now (not at hand-out).
    pub lifecycle_state: String,
    /// Null once the privacy purge removed the borrower; `borrower_pseudonym` then stands in.
    pub person_id: Option<Uuid>,
    pub username: Option<String>,
    pub borrower_name: Option<String>,
    pub borrower_pseudonym: Option<String>,
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    /// The borrower's class at the lending school, as the directory reports it now.
    pub class_name: Option<String>,
    pub handed_out_at: DateTime<Utc>,
    pub handed_out_by: String,
    pub due_on: NaiveDate,
    pub accessories: Vec<String>,
    pub condition_out: Option<String>,
    pub agreement_signed_on: Option<NaiveDate>,
    pub school_override_reason: Option<String>,
    pub returned_at: Option<DateTime<Utc>>,
    pub returned_by: Option<String>,
    pub condition_in: Option<String>,
    pub accessories_returned: Option<Vec<String>>,
    pub accessories_missing: Option<Vec<String>>,
    pub damage_notes: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub lost_on: Option<NaiveDate>,
    pub close_note: Option<String>,
    /// An active loan whose borrower has left the school: no directory reports them any more,
    /// or they no longer belong to the lending school they belonged to at hand-out.
    pub borrower_left: bool,
    pub borrower_left_at: Option<DateTime<Utc>>,
}

impl LoanView {
    /// How people name the device: asset tag, else serial, else id.
    pub fn device_label(&self) -> String {
        device_label(
            self.asset_tag.as_deref(),
            self.serial_number.as_deref(),
            self.device_id,
        )
    }

    /// How people name the borrower: full name, else username, else the pseudonym.
    pub fn borrower_label(&self) -> String {
        self.borrower_name
            .clone()
            .or_else(|| self.username.clone())
            .or_else(|| self.borrower_pseudonym.clone())
            .or_else(|| self.person_id.map(|id| id.to_string()))
            .unwrap_or_else(|| "(removed)".to_string())
    }

    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.state == LoanState::Active.as_str() && self.due_on < today
    }
}

/// The select list and joins behind every `LoanView`; conditions follow `where true`.
const LOAN_SELECT: &str = "select l.loan_id, l.state, l.device_id, d.asset_tag, \
    d.serial_number, d.model, d.lifecycle_state, l.person_id, p.username, \
    nullif(concat_ws(' ', p.given_name, p.family_name), '') as borrower_name, \
    l.borrower_pseudonym, s.school_number, s.name as school_name, \
    (select min(m.class_name) from person_membership m where m.person_id = l.person_id \
     and m.school_id = l.school_id and m.role = 'student') as class_name, \
    l.handed_out_at, l.handed_out_by, l.due_on, l.accessories, l.condition_out, \
    l.agreement_signed_on, l.school_override_reason, l.returned_at, l.returned_by, \
    l.condition_in, l.accessories_returned, l.accessories_missing, l.damage_notes, l.closed_at, \
    l.closed_by, l.lost_on, l.close_note, \
    (l.state = 'active' and l.person_id is not null and (p.left_at is not null \
     or (l.member_at_hand_out and not exists (select 1 from person_membership m \
         where m.person_id = l.person_id and m.school_id = l.school_id)))) as borrower_left, \
    p.left_at as borrower_left_at \
    from loan l join device d on d.device_id = l.device_id \
    left join person p on p.person_id = l.person_id \
    left join school s on s.school_id = l.school_id \
    join school_authority a on a.authority_id = l.authority_id where true";

/// `LOAN_SELECT` limited to loans inside `scope` (by lending school and authority).
fn scoped_select(scope: &Scope) -> QueryBuilder<'static, sqlx::Postgres> {
    let mut query = QueryBuilder::new(LOAN_SELECT);
    push_scope(&mut query, scope, "l");
    query
}

/// One loan by id; a loan outside `scope` is not found.
pub async fn get_loan(pool: &PgPool, scope: &Scope, loan_id: i64) -> Result<LoanView, CoreError> {
    let mut query = scoped_select(scope);
    query.push(" and l.loan_id = ").push_bind(loan_id);
    query
        .build_query_as::<LoanView>()
        .fetch_optional(pool)
        .await?
        .ok_or(CoreError::NotFound {
            what: "loan",
            key: loan_id.to_string(),
        })
}

/// A device's loans inside `scope`, the open one first, then the newest.
pub async fn loans_of_device(
    pool: &PgPool,
    scope: &Scope,
    device_id: Uuid,
) -> Result<Vec<LoanView>, CoreError> {
    let mut query = scoped_select(scope);
    query.push(" and l.device_id = ").push_bind(device_id);
    newest_first(query, pool).await
}

/// A person's loans inside `scope`, open ones first, then the newest.
pub async fn loans_of_person(
    pool: &PgPool,
    scope: &Scope,
    person_id: Uuid,
) -> Result<Vec<LoanView>, CoreError> {
    let mut query = scoped_select(scope);
    query.push(" and l.person_id = ").push_bind(person_id);
    newest_first(query, pool).await
}

async fn newest_first(
    mut query: QueryBuilder<'_, sqlx::Postgres>,
    pool: &PgPool,
) -> Result<Vec<LoanView>, CoreError> {
    query.push(" order by l.state = 'active' desc, l.handed_out_at desc, l.loan_id desc");
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Filters of `bestand loans list`; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct LoanFilter {
    /// Only this authority (slug).
    pub authority: Option<String>,
    /// The lending school: number, name or alias.
    pub school: Option<String>,
    /// The borrower's class at the lending school (case-insensitive).
    pub class: Option<String>,
    /// The borrower: username, email or person id.
    pub borrower: Option<String>,
    /// Only active loans due before today.
    pub overdue: bool,
    /// Only loans due before this date.
    pub due_before: Option<NaiveDate>,
    /// Only loans in this state; `None` means every state.
    pub state: Option<LoanState>,
    /// Only active loans whose borrower left (see `LoanView::borrower_left`).
    pub borrower_left: bool,
    pub limit: Option<i64>,
}

/// Lists loans inside `scope` matching `filter`, ordered by school, class, borrower and device;
/// `today` decides what is overdue.
pub async fn list_loans(
    pool: &PgPool,
    scope: &Scope,
    filter: &LoanFilter,
    today: NaiveDate,
) -> Result<Vec<LoanView>, CoreError> {
    let borrower = match &filter.borrower {
        Some(key) => Some(resolve_person(pool, scope, None, key).await?),
        None => None,
    };
    // The view's own select is wrapped so the computed columns can be filtered and sorted on.
    let mut query = QueryBuilder::new(format!("select * from ({LOAN_SELECT}"));
    push_scope(&mut query, scope, "l");
    if let Some(authority) = &filter.authority {
        query.push(" and a.slug = ").push_bind(authority.clone());
    }
    if let Some(school) = &filter.school {
        query.push(" and");
        push_school_filter(&mut query, school);
    }
    if let Some(class) = &filter.class {
        query
            .push(
                " and exists (select 1 from person_membership m where m.person_id = l.person_id \
                 and m.school_id = l.school_id and lower(m.class_name) = ",
            )
            .push_bind(class.trim().to_lowercase())
            .push(")");
    }
    if let Some(person_id) = borrower {
        query.push(" and l.person_id = ").push_bind(person_id);
    }
    if filter.overdue {
        query
            .push(" and l.state = 'active' and l.due_on < ")
            .push_bind(today);
    }
    if let Some(before) = filter.due_before {
        query.push(" and l.due_on < ").push_bind(before);
    }
    if let Some(state) = filter.state {
        query.push(" and l.state = ").push_bind(state.as_str());
    }
    query.push(") v where true");
    if filter.borrower_left {
        query.push(" and v.borrower_left");
    }
    query.push(
        " order by v.school_number nulls last, v.class_name nulls last, \
         v.borrower_name nulls last, v.username nulls last, v.asset_tag nulls last, \
         v.serial_number nulls last, v.loan_id",
    );
    if let Some(limit) = filter.limit {
        query.push(" limit ").push_bind(limit);
    }
    Ok(query.build_query_as::<LoanView>().fetch_all(pool).await?)
}

/// Loans of one school and class, as `overdue` groups them.
#[derive(Debug, Clone, Serialize)]
pub struct LoanGroup {
    pub school_number: Option<String>,
    pub school_name: Option<String>,
    /// `None` for teachers and staff, who have no class.
    pub class_name: Option<String>,
    pub loans: Vec<LoanView>,
}

/// Active loans inside `scope` due before `today` matching `filter`, grouped per school and
/// class.
pub async fn overdue_by_class(
    pool: &PgPool,
    scope: &Scope,
    filter: &LoanFilter,
    today: NaiveDate,
) -> Result<Vec<LoanGroup>, CoreError> {
    let filter = LoanFilter {
        overdue: true,
        state: Some(LoanState::Active),
        ..filter.clone()
    };
    Ok(group_by_class(
        list_loans(pool, scope, &filter, today).await?,
    ))
}

/// Splits a list sorted by school and class into one group per school and class.
pub fn group_by_class(loans: Vec<LoanView>) -> Vec<LoanGroup> {
    let mut groups: Vec<LoanGroup> = Vec::new();
    for loan in loans {
        match groups.last_mut() {
            Some(group)
                if group.school_number == loan.school_number
                    && group.class_name == loan.class_name =>
            {
                group.loans.push(loan)
            }
            _ => groups.push(LoanGroup {
                school_number: loan.school_number.clone(),
                school_name: loan.school_name.clone(),
                class_name: loan.class_name.clone(),
                loans: vec![loan],
            }),
        }
    }
    groups
}

/// Active loans inside `scope` whose borrower has left the school (see
/// `LoanView::borrower_left`).
pub async fn left_with_device(
    pool: &PgPool,
    scope: &Scope,
    authority: Option<&str>,
    today: NaiveDate,
) -> Result<Vec<LoanView>, CoreError> {
    let filter = LoanFilter {
        authority: authority.map(str::to_string),
        state: Some(LoanState::Active),
        borrower_left: true,
        ..LoanFilter::default()
    };
    list_loans(pool, scope, &filter, today).await
}
