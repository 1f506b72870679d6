//! The scope on every public function of `core::loans`, as a table: a scope of school A
//! (authority X) cannot read or change a loan, device or person of school B (also X) or of
//! school C (authority Y): it gets `NotFound`, as for an unknown key, or a list without them,
//! and the database stays as it was. The same call with a scope that reaches the row works,
//! so no case passes by refusing everything.

use std::sync::Arc;

use bestand_core::loans::{
    self, BulkOptions, BulkRow, ClassSetRequest, DevicePool, IssueRequest, LoanFilter, LoanPolicy,
    Loss, ReturnRequest,
};
use bestand_core::model::{LifecycleState, SchoolType};
use bestand_core::store::{self, AuthoritySpec, SchoolSpec, SourceSpec};
use bestand_core::{Actor, CoreError, FixedClock, Scope};
use chrono::NaiveDate;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{clock, t0, test_db, TestDb};

/// One school of the fixture. Its devices are `<L>-1` (free), `<L>-2` (lent) and `<L>-3`
/// (waiting to be checked), all in room R1; its people `<l>.kind` (pupil of 5a, borrower of
/// the overdue loan of `<L>-2`, has left), `<l>.zwei` (pupil of 5a) and `<l>.lehrer`.
struct School {
    letter: char,
    authority_id: Uuid,
    number: &'static str,
    loan_id: i64,
    lent_device: Uuid,
    borrower: Uuid,
}

impl School {
    fn tag(&self, n: u8) -> String {
        format!("{}-{n}", self.letter.to_ascii_uppercase())
    }

    fn user(&self, who: &str) -> String {
        format!("{}.{who}", self.letter)
    }
}

/// Authority X with schools A and B, authority Y with school C.
struct Fixture {
    db: TestDb,
    clock: Arc<FixedClock>,
    policy: LoanPolicy,
    a: School,
    b: School,
    c: School,
}

impl Fixture {
    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    fn today(&self) -> NaiveDate {
        bestand_core::clock::school_date(t0())
    }

    /// Only school A of authority X.
    fn scope_a(&self) -> Scope {
        Scope::schools(self.a.authority_id, [self.school_id(&self.a)])
    }

    fn school_id(&self, school: &School) -> Uuid {
        school_ids()[school_index(school.letter)]
    }
}

/// School ids are fixed, so scopes can be written before the rows exist.
fn school_ids() -> [Uuid; 3] {
    [
        Uuid::from_u128(0xa),
        Uuid::from_u128(0xb),
        Uuid::from_u128(0xc),
    ]
}

fn school_index(letter: char) -> usize {
    (letter as u8 - b'a') as usize
}

fn school_spec(number: &str, name: &str) -> SchoolSpec {
    SchoolSpec {
        number: number.into(),
        name: name.into(),
        school_type: SchoolType::Grundschule,
        aliases: vec![],
    }
}

fn desk() -> Actor {
    Actor::CliUser("desk".into())
}

async fn fixture() -> Fixture {
    let db = test_db().await;
    let pool = &db.pool;
    let clock = clock();
    let policy = LoanPolicy::default();
    let authorities = [
        AuthoritySpec {
            slug: "x-stadt".into(),
            name: "Stadt X".into(),
            shared_macs: vec![],
            schools: vec![
                school_spec("200001", "Schule A"),
                school_spec("200002", "Schule B"),
            ],
        },
        AuthoritySpec {
            slug: "y-kreis".into(),
            name: "Kreis Y".into(),
            shared_macs: vec![],
            schools: vec![school_spec("300001", "Schule C")],
        },
    ];
    let sources = [("x-ucs", "x-stadt"), ("y-ucs", "y-kreis")].map(|(name, slug)| SourceSpec {
        name: name.into(),
        kind: "ucs_ldap".into(),
        authority_slug: slug.into(),
    });
    let sources = store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &authorities,
        &sources,
    )
    .await
    .unwrap();
    let mut schools = Vec::new();
    for (letter, number) in [('a', "200001"), ('b', "200002"), ('c', "300001")] {
        let school_id = school_ids()[school_index(letter)];
        let authority_id: Uuid = sqlx::query_scalar(
            "update school set school_id = $2 where school_number = $1 returning authority_id",
        )
        .bind(number)
        .bind(school_id)
        .fetch_one(pool)
        .await
        .unwrap();
        let source_id = sources
            .iter()
            .find(|source| source.authority_id == authority_id)
            .unwrap()
            .source_id;
        let upper = letter.to_ascii_uppercase();
        for (n, state) in [(1, "in_stock"), (2, "in_stock"), (3, "to_check")] {
            sqlx::query(
                "insert into device (device_id, authority_id, asset_tag, serial_number, category, \
                 lifecycle_state, school_id, room, first_seen_at, updated_at) \
                 values (gen_random_uuid(), $1, $2, $3, 'tablet', $4, $5, 'R1', $6, $6)",
            )
            .bind(authority_id)
            .bind(format!("{upper}-{n}"))
            .bind(format!("SER{upper}{n}"))
            .bind(state)
            .bind(school_id)
            .bind(t0())
            .execute(pool)
            .await
            .unwrap();
        }
        for (who, role, class) in [
            ("kind", "student", Some("5a")),
            ("zwei", "student", Some("5a")),
            ("lehrer", "teacher", None),
        ] {
            let person_id: Uuid = sqlx::query_scalar(
                "insert into person (authority_id, username, email, given_name, family_name, \
                 first_seen_at, updated_at) values ($1, $2, $2 || '@schule.example', $3, $3, $4, $4) \
                 returning person_id",
            )
            .bind(authority_id)
            .bind(format!("{letter}.{who}"))
            .bind(who)
            .bind(t0())
            .fetch_one(pool)
            .await
            .unwrap();
            sqlx::query(
                "insert into person_membership (authority_id, person_id, source_id, school_id, \
                 role, class_name) values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(authority_id)
            .bind(person_id)
            .bind(source_id)
            .bind(school_id)
            .bind(role)
            .bind(class)
            .execute(pool)
            .await
            .unwrap();
        }
        let request = IssueRequest {
            device: format!("{upper}-2"),
            borrower: format!("{letter}.kind"),
            ..IssueRequest::default()
        };
        let loan = loans::issue_loan(pool, &Scope::All, &*clock, &policy, &request, &desk())
            .await
            .unwrap();
        schools.push(School {
            letter,
            authority_id,
            number,
            loan_id: loan.loan_id,
            lent_device: loan.device_id,
            borrower: loan.person_id.unwrap(),
        });
    }
    // Overdue, and the borrower gone: what `overdue_by_class` and `left_with_device` list.
    sqlx::query("update loan set due_on = '2026-11-01'")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("update person set left_at = $1 where username like '%.kind'")
        .bind(t0())
        .execute(pool)
        .await
        .unwrap();
    let c = schools.pop().unwrap();
    let b = schools.pop().unwrap();
    let a = schools.pop().unwrap();
    Fixture {
        db,
        clock,
        policy,
        a,
        b,
        c,
    }
}

/// Every loan, device and device event, as plain SQL sees them.
async fn fingerprint(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "select md5(coalesce((select string_agg(t::text, '|' order by t::text) from loan t), '') \
         || coalesce((select string_agg(t::text, '|' order by t::text) from device t), '') \
         || coalesce((select string_agg(t::text, '|' order by t::text) from device_event t), ''))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Every public function of `core::loans` that reads or changes the inventory.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    GetLoan,
    LoansOfDevice,
    LoansOfPerson,
    ListLoans,
    ListLoansOfBorrower,
    OverdueByClass,
    LeftWithDevice,
    ResolveLoanById,
    ResolveLoanByDevice,
    ActiveLoanOfDevice,
    AgreementFacts,
    IssueLoanOfDevice,
    IssueLoanToBorrower,
    ImportLoans,
    IssueClassSet,
    ReturnLoan,
    ExtendLoan,
    MarkLost,
    CancelLoan,
    RecordAgreement,
    FinishCheck,
    TagDevices,
}

const READS: [Call; 11] = [
    Call::GetLoan,
    Call::LoansOfDevice,
    Call::LoansOfPerson,
    Call::ListLoans,
    Call::ListLoansOfBorrower,
    Call::OverdueByClass,
    Call::LeftWithDevice,
    Call::ResolveLoanById,
    Call::ResolveLoanByDevice,
    Call::ActiveLoanOfDevice,
    Call::AgreementFacts,
];

const WRITES: [Call; 11] = [
    Call::IssueLoanOfDevice,
    Call::IssueLoanToBorrower,
    Call::ImportLoans,
    Call::IssueClassSet,
    Call::ReturnLoan,
    Call::ExtendLoan,
    Call::MarkLost,
    Call::CancelLoan,
    Call::RecordAgreement,
    Call::FinishCheck,
    Call::TagDevices,
];

/// What a call did with the target school's row.
#[derive(Debug, PartialEq)]
enum Seen {
    Reached,
    Hidden,
}

/// A scope that reaches `target`'s rows (and, for a hand-out to `target`'s teacher, school
/// A's device), in each of the three kinds of scope.
fn reaching(fx: &Fixture, call: Call, target: &School) -> Scope {
    let across = call == Call::IssueLoanToBorrower;
    match (target.letter, across) {
        ('b', false) => Scope::schools(target.authority_id, [fx.school_id(target)]),
        ('b', true) => Scope::schools(
            target.authority_id,
            [fx.school_id(&fx.a), fx.school_id(target)],
        ),
        (_, false) => Scope::Authority(target.authority_id),
        (_, true) => Scope::All,
    }
}

/// Runs `call` on `target`'s row with `scope`; `Ok(false)` when a list leaves the row out.
async fn run(fx: &Fixture, call: Call, scope: &Scope, target: &School) -> Result<bool, CoreError> {
    let pool = fx.pool();
    let clock = &*fx.clock;
    let today = fx.today();
    let has_target = |list: &[loans::LoanView]| list.iter().any(|l| l.loan_id == target.loan_id);
    match call {
        Call::GetLoan => loans::get_loan(pool, scope, target.loan_id)
            .await
            .map(|_| true),
        Call::LoansOfDevice => loans::loans_of_device(pool, scope, target.lent_device)
            .await
            .map(|list| has_target(&list)),
        Call::LoansOfPerson => loans::loans_of_person(pool, scope, target.borrower)
            .await
            .map(|list| has_target(&list)),
        Call::ListLoans => loans::list_loans(pool, scope, &LoanFilter::default(), today)
            .await
            .map(|list| has_target(&list)),
        Call::ListLoansOfBorrower => {
            let filter = LoanFilter {
                borrower: Some(target.user("kind")),
                ..LoanFilter::default()
            };
            loans::list_loans(pool, scope, &filter, today)
                .await
                .map(|list| has_target(&list))
        }
        Call::OverdueByClass => loans::overdue_by_class(pool, scope, &LoanFilter::default(), today)
            .await
            .map(|groups| groups.iter().any(|group| has_target(&group.loans))),
        Call::LeftWithDevice => loans::left_with_device(pool, scope, None, today)
            .await
            .map(|list| has_target(&list)),
        Call::ResolveLoanById => {
            loans::resolve_loan(pool, scope, &format!("loan:{}", target.loan_id))
                .await
                .map(|loan_id| loan_id == target.loan_id)
        }
        Call::ResolveLoanByDevice => loans::resolve_loan(pool, scope, &target.tag(2))
            .await
            .map(|loan_id| loan_id == target.loan_id),
        Call::ActiveLoanOfDevice => loans::active_loan_of_device(pool, scope, &target.tag(2))
            .await
            .map(|loan_id| loan_id == target.loan_id),
        Call::AgreementFacts => loans::agreement_facts(pool, scope, &[target.loan_id])
            .await
            .map(|facts| facts[0].loan_id == target.loan_id),
        Call::IssueLoanOfDevice => {
            let request = IssueRequest {
                device: target.tag(1),
                borrower: target.user("lehrer"),
                ..IssueRequest::default()
            };
            loans::issue_loan(pool, scope, clock, &fx.policy, &request, &desk())
                .await
                .map(|loan| loan.asset_tag == Some(target.tag(1)))
        }
        Call::IssueLoanToBorrower => {
            let request = IssueRequest {
                device: fx.a.tag(1),
                borrower: target.user("lehrer"),
                ..IssueRequest::default()
            };
            match loans::issue_loan(pool, scope, clock, &fx.policy, &request, &desk()).await {
                Ok(loan) => Ok(loan.username == Some(target.user("lehrer"))),
                // The borrower was found, in another authority than the device: reached.
                Err(CoreError::Conflict(message))
                    if message.contains("another school authority") =>
                {
                    Ok(true)
                }
                Err(other) => Err(other),
            }
        }
        Call::ImportLoans => {
            let row = BulkRow {
                line: 2,
                borrower: target.user("zwei"),
                device: target.tag(1),
                ..BulkRow::default()
            };
            let report = loans::import_loans(
                pool,
                scope,
                clock,
                &fx.policy,
                &[row],
                BulkOptions::default(),
                &desk(),
            )
            .await?;
            match (report.applied, report.errors.as_slice()) {
                (true, _) => Ok(true),
                // Both the device and the borrower are unknown to the scope, as unknown keys are.
                (false, [row]) if row.reason.matches("not found").count() == 2 => Ok(false),
                _ => Err(CoreError::Conflict(format!("unexpected report {report:?}"))),
            }
        }
        Call::IssueClassSet => {
            let request = ClassSetRequest {
                authority: None,
                school: target.number.into(),
                class: "5a".into(),
                pool: DevicePool::Room("R1".into()),
                due_on: None,
                accessories: Vec::new(),
                partial: false,
                dry_run: false,
            };
            loans::issue_class_set(pool, scope, clock, &fx.policy, &request, &desk())
                .await
                .map(|report| report.issued == 1)
        }
        Call::ReturnLoan => loans::return_loan(
            pool,
            scope,
            clock,
            target.loan_id,
            &ReturnRequest::default(),
            &desk(),
        )
        .await
        .map(|outcome| outcome.loan.state == "returned"),
        Call::ExtendLoan => {
            let due = NaiveDate::from_ymd_opt(2027, 9, 15).unwrap();
            loans::extend_loan(pool, scope, clock, target.loan_id, due, &desk())
                .await
                .map(|loan| loan.due_on == due)
        }
        Call::MarkLost => loans::mark_lost(
            pool,
            scope,
            clock,
            target.loan_id,
            Loss::Lost,
            today,
            "weg",
            &desk(),
        )
        .await
        .map(|loan| loan.state == "lost"),
        Call::CancelLoan => {
            loans::cancel_loan(pool, scope, clock, target.loan_id, "Irrtum", &desk())
                .await
                .map(|loan| loan.state == "cancelled")
        }
        Call::RecordAgreement => {
            loans::record_agreement(pool, scope, clock, target.loan_id, today, &desk())
                .await
                .map(|loan| loan.agreement_signed_on == Some(today))
        }
        Call::FinishCheck => loans::finish_check(
            pool,
            scope,
            clock,
            &target.tag(3),
            LifecycleState::InStock,
            &desk(),
        )
        .await
        .map(|state| state == LifecycleState::InStock),
        Call::TagDevices => loans::tag_devices(
            pool,
            scope,
            clock,
            &[target.tag(1)],
            &["koffer".to_string()],
            &[],
            &desk(),
        )
        .await
        .map(|tagged| tagged[0].changed),
    }
}

/// `run`, with `NotFound` and a list without the row as `Hidden`; any other error fails.
async fn seen(fx: &Fixture, call: Call, scope: &Scope, target: &School) -> Result<Seen, String> {
    match run(fx, call, scope, target).await {
        Ok(true) => Ok(Seen::Reached),
        Ok(false) | Err(CoreError::NotFound { .. }) => Ok(Seen::Hidden),
        Err(other) => Err(format!("{scope:?} failed: {other}")),
    }
}

/// What is wrong with `call`: school A's scope reaches its row at B or at C, or changes
/// something, or the scope that reaches the row cannot.
async fn check(fx: &Fixture, call: Call) -> Vec<String> {
    let mut wrong = Vec::new();
    let scope_a = fx.scope_a();
    for target in [&fx.b, &fx.c] {
        let school = target.letter;
        let before = fingerprint(fx.pool()).await;
        match seen(fx, call, &scope_a, target).await {
            Ok(Seen::Hidden) => {}
            Ok(Seen::Reached) => wrong.push(format!("{call:?}: school A's scope reached {school}")),
            Err(error) => wrong.push(format!("{call:?} on {school}: {error}")),
        }
        if fingerprint(fx.pool()).await != before {
            wrong.push(format!("{call:?}: school A's scope changed {school}"));
        }
        let scope = reaching(fx, call, target);
        match seen(fx, call, &scope, target).await {
            Ok(Seen::Reached) => {}
            Ok(Seen::Hidden) => wrong.push(format!("{call:?}: {scope:?} did not reach {school}")),
            Err(error) => wrong.push(format!("{call:?} on {school}: {error}")),
        }
    }
    wrong
}

#[tokio::test]
async fn a_school_scope_reads_no_loan_of_another_school_or_authority() {
    let fx = fixture().await;
    let mut wrong = Vec::new();
    for call in READS {
        wrong.extend(check(&fx, call).await);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What school A's scope lists is exactly school A's loan, not an empty list.
    let listed = loans::list_loans(fx.pool(), &fx.scope_a(), &LoanFilter::default(), fx.today())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|l| l.loan_id).collect::<Vec<_>>(),
        vec![fx.a.loan_id]
    );
}

#[tokio::test]
async fn a_school_scope_changes_no_loan_device_or_person_of_another_school_or_authority() {
    let mut wrong = Vec::new();
    for call in WRITES {
        // A fixture per call: the reaching call changes the rows the next call needs.
        let fx = fixture().await;
        wrong.extend(check(&fx, call).await);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The lending candidates (`loans::assigned_without_loan`, `loans::spare_device_for`) list
/// only devices inside the scope: school A's scope never names a device of school B or C.
#[tokio::test]
async fn a_school_scope_sees_no_lending_candidate_of_another_school() {
    let fx = fixture().await;
    let pool = fx.pool();
    // An MDM gives every school's free device `<L>-1` to its pupil `<l>.zwei`.
    sqlx::query(
        "insert into device_assignment (authority_id, device_id, source_id, hint_username, \
         status, person_id, since) \
         select d.authority_id, d.device_id, m.source_id, p.username, 'matched', p.person_id, $1 \
         from device d join person_membership m on m.school_id = d.school_id \
         join person p on p.person_id = m.person_id \
         where d.asset_tag like '%-1' and p.username like '%.zwei'",
    )
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
    let assigned = |scope: Scope| async move {
        let found = loans::assigned_without_loan(pool, &scope).await.unwrap();
        found
            .into_iter()
            .map(|row| (row.asset_tag, row.username))
            .collect::<Vec<_>>()
    };
    let pair = |school: &School| (school.tag(1), school.user("zwei"));
    assert_eq!(assigned(fx.scope_a()).await, [pair(&fx.a)]);
    assert_eq!(
        assigned(Scope::Authority(fx.a.authority_id)).await,
        [pair(&fx.a), pair(&fx.b)]
    );
    assert_eq!(assigned(Scope::All).await.len(), 3);

    // Spares are devices nobody is assigned: `<L>-1` is taken now, `<L>-2` lent, `<L>-3` to
    // be checked, so free the assignment of school B's device again for a spare there.
    sqlx::query("delete from device_assignment where device_id = (select device_id from device where asset_tag = 'B-1')")
        .execute(pool)
        .await
        .unwrap();
    let spare = |scope: Scope, who: String| async move {
        loans::spare_device_for(pool, &scope, &who).await.unwrap()
    };
    assert_eq!(spare(fx.scope_a(), fx.b.user("zwei")).await, None);
    assert_eq!(
        spare(Scope::All, fx.b.user("zwei")).await,
        Some(fx.b.tag(1))
    );
    let school_b = Scope::schools(fx.b.authority_id, [fx.school_id(&fx.b)]);
    assert_eq!(spare(school_b, fx.b.user("zwei")).await, Some(fx.b.tag(1)));
}
