//! Each loan rule (due date, lendable device, one active loan) refuses with the same words in
//! the single, bulk and class-set hand-out, also when the one-active-loan index is what refuses
//! a loan that another writer slipped in between the check and the write.

use bestand_core::loans::{self, BulkOptions, BulkRow, ClassSetRequest, DevicePool, IssueRequest};
use bestand_core::{Actor, CoreError, Scope};
use chrono::NaiveDate;

use crate::loans::{world, World};

/// The school day of the test clock is 2026-11-23.
const YESTERDAY: &str = "2026-11-22";

fn desk() -> Actor {
    Actor::CliUser("desk".into())
}

/// A single hand-out's refusal.
async fn single(world: &World, device: &str, borrower: &str, due: Option<&str>) -> String {
    let request = IssueRequest {
        device: device.into(),
        borrower: borrower.into(),
        due_on: due.map(|due| due.parse().unwrap()),
        ..IssueRequest::default()
    };
    match loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &desk(),
    )
    .await
    {
        Ok(loan) => panic!("expected a refusal, got loan {}", loan.loan_id),
        Err(error) => error.to_string(),
    }
}

/// A one-row hand-out file (line 2); the row's refusal.
async fn bulk(world: &World, device: &str, borrower: &str, due: Option<&str>) -> String {
    let row = BulkRow {
        line: 2,
        borrower: borrower.into(),
        device: device.into(),
        due: due.map(str::to_string),
        accessories: Vec::new(),
    };
    let report = world.import(&[row], BulkOptions::default(), "desk").await;
    assert!(!report.applied, "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    report.errors[0].reason.clone()
}

/// A class set of class 3c from room "R 104".
async fn class_set(world: &World, due: Option<&str>) -> Result<loans::ClassSetReport, CoreError> {
    let request = ClassSetRequest {
        authority: None,
        school: "GS Lindenweg".into(),
        class: "3c".into(),
        pool: DevicePool::Room("R 104".into()),
        due_on: due.map(|due| due.parse().unwrap()),
        accessories: Vec::new(),
        partial: false,
        dry_run: false,
    };
    loans::issue_class_set(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &desk(),
    )
    .await
}

async fn loan_count(world: &World) -> i64 {
    sqlx::query_scalar("select count(*) from loan")
        .fetch_one(world.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_due_date_in_the_past_is_refused_alike_by_every_hand_out_and_the_extension() {
    let world = world(2, 1).await;
    let rule = format!("due date {YESTERDAY} is in the past");
    let cases = [
        (
            "single",
            single(&world, "INV-0001", "lea.schulz", Some(YESTERDAY)).await,
            format!("cannot lend INV-0001: {rule}"),
        ),
        (
            "bulk",
            bulk(&world, "INV-0001", "lea.schulz", Some(YESTERDAY)).await,
            rule.clone(),
        ),
        (
            "class set",
            class_set(&world, Some(YESTERDAY))
                .await
                .unwrap_err()
                .to_string(),
            rule.clone(),
        ),
    ];
    for (path, refusal, expected) in cases {
        assert_eq!(refusal, expected, "{path}");
    }
    assert_eq!(loan_count(&world).await, 0);

    let loan = world.issue("INV-0002", "lea.schulz").await.unwrap();
    let yesterday: NaiveDate = YESTERDAY.parse().unwrap();
    let refusal = loans::extend_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        loan.loan_id,
        yesterday,
        &desk(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        refusal,
        format!("cannot extend loan {} of INV-0002: {rule}", loan.loan_id)
    );
}

#[tokio::test]
async fn a_device_that_is_not_lendable_is_refused_alike_by_every_hand_out() {
    let world = world(1, 1).await;
    sqlx::query("update device set lifecycle_state = 'retired' where asset_tag = 'INV-0001'")
        .execute(world.pool())
        .await
        .unwrap();
    let rule = "cannot lend INV-0001: it is retired (lifecycle state retired)";
    assert_eq!(single(&world, "INV-0001", "lea.schulz", None).await, rule);
    assert_eq!(bulk(&world, "INV-0001", "lea.schulz", None).await, rule);
    // A class set takes only lendable devices from its pool, so the room is empty.
    let refusal = class_set(&world, None).await.unwrap_err().to_string();
    assert!(
        refusal.contains("has 0 lendable device(s) for 1 pupil(s)"),
        "{refusal}"
    );
    assert_eq!(loan_count(&world).await, 0);
}

#[tokio::test]
async fn a_device_on_loan_is_refused_alike_by_every_hand_out() {
    let world = world(2, 1).await;
    let first = world.issue("INV-0001", "j.becker").await.unwrap();
    let rule = format!(
        "cannot lend INV-0001: it is already on loan (loan {}, due 2027-07-31)",
        first.loan_id
    );
    assert_eq!(single(&world, "INV-0001", "lea.schulz", None).await, rule);
    assert_eq!(bulk(&world, "INV-0001", "lea.schulz", None).await, rule);
    // The class set passes the lent device over and hands out the other one.
    let report = class_set(&world, None).await.unwrap();
    assert_eq!(report.pool_size, 1);
    assert_eq!(report.lines[0].device.as_deref(), Some("INV-0002"));
    assert_eq!(loan_count(&world).await, 2);
}

/// Makes every hand-out of INV-0001 meet a second active loan that a writer which skipped the
/// device lock inserts just before it: only the index `loan_one_active_per_device` stops it.
async fn sneak_in_a_second_loan_of_inv_0001(world: &World) {
    sqlx::query(
        "create function sneak_in_second_loan() returns trigger language plpgsql as $$ \
         begin \
           if new.handed_out_by <> 'sneak' and new.device_id = \
              (select device_id from device where asset_tag = 'INV-0001') then \
             insert into loan (authority_id, device_id, person_id, school_id, state, \
                               handed_out_at, handed_out_by, due_on, updated_at) \
             values (new.authority_id, new.device_id, new.person_id, new.school_id, 'active', \
                     new.handed_out_at, 'sneak', new.due_on, new.updated_at); \
           end if; \
           return new; \
         end $$",
    )
    .execute(world.pool())
    .await
    .unwrap();
    sqlx::query(
        "create trigger sneak_in_second_loan before insert on loan \
         for each row execute function sneak_in_second_loan()",
    )
    .execute(world.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_second_active_loan_the_index_refuses_is_the_plain_refusal_in_every_hand_out() {
    let world = world(2, 1).await;
    sneak_in_a_second_loan_of_inv_0001(&world).await;
    let rule = "cannot lend INV-0001: it is already on loan";

    assert_eq!(single(&world, "INV-0001", "lea.schulz", None).await, rule);
    assert_eq!(loan_count(&world).await, 0);

    // All or nothing: the refused row stops the file.
    let rows = [
        BulkRow {
            line: 2,
            borrower: "lea.schulz".into(),
            device: "INV-0001".into(),
            ..BulkRow::default()
        },
        BulkRow {
            line: 3,
            borrower: "ben.wolf".into(),
            device: "INV-0002".into(),
            ..BulkRow::default()
        },
    ];
    let report = world.import(&rows, BulkOptions::default(), "desk").await;
    assert!(!report.applied);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(report.errors[0].to_string(), format!("line 2: {rule}"));
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(report.accepted[0].loan_id, None);
    assert_eq!(loan_count(&world).await, 0);

    // The class set pairs the pupil with INV-0001 first and refuses as a whole.
    let refusal = class_set(&world, None).await.unwrap_err().to_string();
    assert_eq!(refusal, rule);
    assert_eq!(loan_count(&world).await, 0);

    // Partial: the good row is written, the refused one reported.
    let partial = BulkOptions {
        partial: true,
        ..BulkOptions::default()
    };
    let report = world.import(&rows, partial, "desk").await;
    assert!(report.applied);
    assert_eq!(report.errors[0].to_string(), format!("line 2: {rule}"));
    assert_eq!(report.accepted.len(), 1);
    assert!(report.accepted[0].loan_id.is_some());
    let written: Vec<String> = sqlx::query_scalar(
        "select d.asset_tag from loan l join device d using (device_id) where l.state = 'active'",
    )
    .fetch_all(world.pool())
    .await
    .unwrap();
    assert_eq!(written, vec!["INV-0002".to_string()]);
}
