//! Loans against PostgreSQL: one active loan per device (also under a hundred concurrent
//! hand-outs, and by the index itself), the lendable-state and school rules, return, extension,
//! loss, theft, cancellation and their events, bulk hand-out from CSV, the scan loops, class
//! sets, borrowers who left with a device, overdue grouping and the default due date.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use bestand_app::config::Config;
use bestand_cli::commands::loans::{
    print_import, read_loan_csv, read_loan_csv_in, scan_issue, scan_return,
};
use bestand_core::access::Scope;
use bestand_core::loans::{
    self, BulkOptions, ClassSetRequest, DevicePool, IssueRequest, LoanFilter, LoanPolicy, Loss,
    ReturnRequest,
};
use bestand_core::model::{LifecycleState, PersonRole};
use bestand_core::person::{DirectorySchool, Membership, PersonIds, PersonRecord};
use bestand_core::record::DeviceRecord;
use bestand_core::store::{self, SourceRef};
use bestand_core::sync::{self, DirectoryItem, DirectorySyncOptions, PersonPage};
use bestand_core::tabular::Encoding;
use bestand_core::{Actor, CoreError, FixedClock};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::support::{clock, ipad, musterstadt, sync_records, test_db};

fn day(text: &str) -> NaiveDate {
    loans::parse_date(text).unwrap()
}

/// An iPad with an asset tag, at `school` in `room`.
fn tagged_ipad(n: usize, school: &str, room: &str) -> DeviceRecord {
    let mut record = ipad(&format!("mobile:{n}"), &format!("SER{n:05}"));
    record.asset_tag = Some(format!("INV-{n:04}"));
    record.location.school = Some(school.into());
    record.location.room = Some(room.into());
    record
}

const GSL: &str = "Grundschule Lindenweg";
const GYS: &str = "Gymnasium am Stadtpark";

fn person(
    external_id: &str,
    username: &str,
    given: &str,
    family: &str,
    memberships: Vec<Membership>,
) -> PersonRecord {
    PersonRecord {
        external_id: external_id.into(),
        username: Some(username.into()),
        email: Some(format!("{username}@schule.example")),
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        ids: PersonIds {
            directory_uuid: Some(format!("uuid-{external_id}")),
            ..PersonIds::default()
        },
        memberships,
        problems: Vec::new(),
        left: false,
    }
}

fn pupil_of(school: &str, class: &str) -> Vec<Membership> {
    vec![Membership {
        school: school.into(),
        role: PersonRole::Student,
        class: Some(class.into()),
    }]
}

fn teacher_of(school: &str) -> Vec<Membership> {
    vec![Membership {
        school: school.into(),
        role: PersonRole::Teacher,
        class: None,
    }]
}

/// The directory as the tests know it: Lea and Ben in 4a, Mia in 4b at the Grundschule,
/// Tom a pupil of the Gymnasium, Frau Becker a teacher at the Grundschule, and `extra` pupils
/// `pupil.N` in class 3c.
fn people(extra: usize) -> Vec<PersonRecord> {
    let mut persons = vec![
        person("p1", "lea.schulz", "Lea", "Schulz", pupil_of("GSL", "4a")),
        person("p2", "ben.wolf", "Ben", "Wolf", pupil_of("GSL", "4a")),
        person("p3", "mia.kern", "Mia", "Kern", pupil_of("GSL", "4b")),
        person("p4", "tom.yilmaz", "Tom", "Yilmaz", pupil_of("GYS", "7b")),
        person("t1", "j.becker", "Jana", "Becker", teacher_of("GSL")),
    ];
    for n in 0..extra {
        persons.push(person(
            &format!("x{n}"),
            &format!("pupil.{n:02}"),
            "Kind",
            &format!("Nummer{n:02}"),
            pupil_of("GSL", "3c"),
        ));
    }
    persons
}

fn directory(persons: Vec<PersonRecord>) -> mpsc::Receiver<DirectoryItem> {
    let (sender, receiver) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let schools = vec![
            DirectorySchool {
                key: "GSL".into(),
                display_name: Some(GSL.into()),
                school_number: None,
            },
            DirectorySchool {
                key: "GYS".into(),
                display_name: None,
                school_number: Some("100002".into()),
            },
        ];
        let total = persons.len() as u64;
        let _ = sender.send(DirectoryItem::Schools(schools)).await;
        let page = PersonPage {
            label: "users".into(),
            records: persons,
        };
        let _ = sender.send(DirectoryItem::Persons(page)).await;
        let _ = sender
            .send(DirectoryItem::Complete {
                reported_total: total,
            })
            .await;
    });
    receiver
}

async fn read_directory(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    persons: Vec<PersonRecord>,
) {
    let report = sync::run_directory_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        directory(persons),
        &DirectorySyncOptions::default(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert!(report.error.is_none(), "{report:?}");
}

/// A school authority with devices (INV-0001..) and people, and what the tests need.
pub(crate) struct World {
    pub(crate) db: crate::support::TestDb,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) policy: LoanPolicy,
    jamf: SourceRef,
    ucs: SourceRef,
    devices: Vec<DeviceRecord>,
}

/// `devices` iPads at the Grundschule in room "R 104" (INV-0001..), plus INV-0900 at the
/// Gymnasium, and the people of `people(extra)`.
pub(crate) async fn world(devices: usize, extra: usize) -> World {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf"]).await;
    let ucs = crate::support::directory_source(&db.pool, "ucs").await;
    let mut records: Vec<DeviceRecord> = (1..=devices)
        .map(|n| tagged_ipad(n, GSL, "R 104"))
        .collect();
    records.push(tagged_ipad(900, GYS, "B 12"));
    let jamf = sources.into_iter().next().unwrap();
    sync_records(&db.pool, &clock, &jamf, records.clone()).await;
    read_directory(&db.pool, &clock, &ucs, people(extra)).await;
    World {
        db,
        clock,
        policy: LoanPolicy::default(),
        jamf,
        ucs,
        devices: records,
    }
}

impl World {
    pub(crate) fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    pub(crate) async fn issue(
        &self,
        device: &str,
        borrower: &str,
    ) -> Result<loans::LoanView, CoreError> {
        let request = IssueRequest {
            device: device.into(),
            borrower: borrower.into(),
            ..IssueRequest::default()
        };
        loans::issue_loan(
            self.pool(),
            &Scope::All,
            &*self.clock,
            &self.policy,
            &request,
            &Actor::CliUser("counter".into()),
        )
        .await
    }

    /// `loans::import_loans` of `rows`, by `by`.
    pub(crate) async fn import(
        &self,
        rows: &[loans::BulkRow],
        options: BulkOptions,
        by: &str,
    ) -> loans::BulkReport {
        loans::import_loans(
            self.pool(),
            &Scope::All,
            &*self.clock,
            &self.policy,
            rows,
            options,
            &Actor::CliUser(by.into()),
        )
        .await
        .unwrap()
    }

    pub(crate) async fn lifecycle(&self, asset_tag: &str) -> String {
        sqlx::query_scalar("select lifecycle_state from device where asset_tag = $1")
            .bind(asset_tag)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    async fn events(&self, asset_tag: &str) -> Vec<(String, serde_json::Value)> {
        sqlx::query_as(
            "select e.kind, e.changes from device_event e join device d using (device_id) \
             where d.asset_tag = $1 and (e.kind like 'loan_%' or e.kind = 'tags_changed') \
             order by e.device_event_id",
        )
        .bind(asset_tag)
        .fetch_all(self.pool())
        .await
        .unwrap()
    }

    async fn loan_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from loan")
            .fetch_one(self.pool())
            .await
            .unwrap()
    }
}

fn refusal(result: Result<loans::LoanView, CoreError>) -> String {
    match result {
        Ok(loan) => panic!("expected a refusal, got loan {}", loan.loan_id),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_hundred_concurrent_hand_outs_of_one_device_make_one_loan() {
    let world = world(2, 0).await;
    // Enough connections that many hand-outs really wait on the device row at once.
    let pool = PgPoolOptions::new()
        .max_connections(25)
        .acquire_timeout(std::time::Duration::from_secs(120))
        .connect(&world.db.url)
        .await
        .unwrap();
    let policy = Arc::new(world.policy.clone());
    let borrowers = ["lea.schulz", "ben.wolf", "mia.kern", "j.becker"];
    let mut tasks = Vec::new();
    for n in 0..100 {
        let pool = pool.clone();
        let clock = world.clock.clone();
        let policy = policy.clone();
        let borrower = borrowers[n % borrowers.len()];
        tasks.push(tokio::spawn(async move {
            let request = IssueRequest {
                device: "INV-0001".into(),
                borrower: borrower.into(),
                ..IssueRequest::default()
            };
            loans::issue_loan(
                &pool,
                &Scope::All,
                &*clock,
                &policy,
                &request,
                &Actor::CliUser("counter".into()),
            )
            .await
        }));
    }
    let mut loans_made = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(loan) => loans_made.push(loan),
            Err(error) => refusals.push(error.to_string()),
        }
    }
    assert_eq!(loans_made.len(), 1);
    assert_eq!(refusals.len(), 99);
    let winner = &loans_made[0];
    let expected = format!(
        "cannot lend INV-0001: it is already on loan (loan {}, due 2027-07-31)",
        winner.loan_id
    );
    for message in &refusals {
        assert_eq!(message, &expected);
    }
    assert_eq!(world.loan_count().await, 1);

    // The index itself refuses a second active loan, whatever code writes it.
    let raw = sqlx::query(
        "insert into loan (authority_id, device_id, person_id, school_id, state, handed_out_at, \
         handed_out_by, due_on, updated_at) \
         select authority_id, device_id, person_id, school_id, 'active', handed_out_at, 'raw', \
         due_on, updated_at from loan where loan_id = $1",
    )
    .bind(winner.loan_id)
    .execute(world.pool())
    .await
    .unwrap_err();
    let db_error = raw.as_database_error().unwrap();
    assert_eq!(db_error.code().as_deref(), Some("23505"));
    assert_eq!(db_error.constraint(), Some("loan_one_active_per_device"));
    // A closed loan next to the active one is fine: the guarantee is about active loans only.
    sqlx::query(
        "insert into loan (authority_id, device_id, person_id, school_id, state, handed_out_at, \
         handed_out_by, due_on, closed_at, updated_at) \
         select authority_id, device_id, person_id, school_id, 'cancelled', handed_out_at, \
         'raw', due_on, handed_out_at, updated_at from loan where loan_id = $1",
    )
    .bind(winner.loan_id)
    .execute(world.pool())
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn only_lendable_devices_are_handed_out_and_the_refusal_says_why() {
    let world = world(5, 0).await;
    // Moves the lifecycle rules allow (in_use to retired and to in_repair).
    for (tag, state) in [("INV-0001", "retired"), ("INV-0002", "in_repair")] {
        sqlx::query("update device set lifecycle_state = $2 where asset_tag = $1")
            .bind(tag)
            .bind(state)
            .execute(world.pool())
            .await
            .unwrap();
    }
    // No move leads back to ordered: the synced INV-0003 gives up its tag to a device that
    // is recorded as ordered, as a purchase not yet delivered is.
    sqlx::query("update device set asset_tag = 'INV-0003-OLD' where asset_tag = 'INV-0003'")
        .execute(world.pool())
        .await
        .unwrap();
    sqlx::query(
        "insert into device (device_id, authority_id, school_id, asset_tag, category, \
         lifecycle_state, first_seen_at, updated_at) \
         select gen_random_uuid(), authority_id, school_id, 'INV-0003', category, 'ordered', \
         first_seen_at, updated_at from device where asset_tag = 'INV-0003-OLD'",
    )
    .execute(world.pool())
    .await
    .unwrap();
    assert_eq!(
        refusal(world.issue("INV-0001", "lea.schulz").await),
        "cannot lend INV-0001: it is retired (lifecycle state retired)"
    );
    assert_eq!(
        refusal(world.issue("INV-0002", "lea.schulz").await),
        "cannot lend INV-0002: it is in repair (lifecycle state in_repair)"
    );
    assert!(refusal(world.issue("INV-0003", "lea.schulz").await).contains("not delivered"));

    // INV-0004 disappears from Jamf: missing.
    world.clock.advance(Duration::hours(1));
    let remaining: Vec<DeviceRecord> = world
        .devices
        .iter()
        .filter(|d| d.asset_tag.as_deref() != Some("INV-0004"))
        .cloned()
        .collect();
    sync_records(world.pool(), &world.clock, &world.jamf, remaining).await;
    let message = refusal(world.issue("INV-0004", "lea.schulz").await);
    assert!(
        message.starts_with("cannot lend INV-0004: it is missing: no source reports it any more (jamf since 2026-11-23)"),
        "{message}"
    );

    let first = world.issue("INV-0005", "lea.schulz").await.unwrap();
    assert_eq!(
        refusal(world.issue("SER00005", "ben.wolf").await),
        format!(
            "cannot lend INV-0005: it is already on loan (loan {}, due 2027-07-31)",
            first.loan_id
        )
    );
    assert!(refusal(world.issue("INV-0404", "lea.schulz").await).contains("INV-0404"));
}

#[tokio::test]
async fn a_step_on_a_device_a_running_sync_holds_says_so_instead_of_hanging() {
    let world = world(2, 0).await;
    world.clock.advance(Duration::hours(1));
    let mut records = world.devices.clone();
    records[0].os_version = Some("18.1".into());
    let total = records.len() as u64;
    let (sender, pages) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    let signal = crate::support::PageSignal(tokio::sync::Notify::new());
    let options = crate::support::options();
    let run = sync::run_sync(
        world.pool(),
        &*world.clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &world.jamf,
        pages,
        &options,
        &signal,
    );
    let counter = async {
        sender
            .send(sync::SourceItem::Page(sync::SourcePage {
                label: "mobile-devices page 0".into(),
                records,
                announced_total: Some(total),
            }))
            .await
            .unwrap();
        signal.0.notified().await;
        // The run has changed INV-0001 and holds it until it commits; INV-0002 it left alone.
        let held = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            world.issue("INV-0001", "lea.schulz"),
        )
        .await
        .expect("the step waited for the run instead of saying it holds the device");
        let free = world.issue("INV-0002", "ben.wolf").await;
        sender
            .send(sync::SourceItem::Complete {
                reported_total: total,
            })
            .await
            .unwrap();
        (held, free)
    };
    let (report, (held, free)) = tokio::join!(run, counter);
    assert_eq!(report.unwrap().counts.updated, 1);
    assert_eq!(
        refusal(held),
        "INV-0001 is being changed right now, by a running sync (see `bestand sync status`) or \
         another step at another counter; nothing was done, try again when it has finished"
    );
    assert!(free.is_ok(), "{free:?}");
    let after = world.issue("INV-0001", "lea.schulz").await;
    assert!(after.is_ok(), "once the run has committed: {after:?}");
}

#[tokio::test]
async fn a_pupil_of_another_school_needs_an_override_reason() {
    let world = world(2, 0).await;
    let message = refusal(world.issue("INV-0001", "tom.yilmaz").await);
    assert_eq!(
        message,
        "cannot lend INV-0001: borrower tom.yilmaz is a pupil of school 100002, but INV-0001 \
         belongs to school 100001; give an override reason to lend it anyway"
    );
    // Teachers are not bound to one school's devices.
    world.issue("INV-0900", "j.becker").await.unwrap();

    let request = IssueRequest {
        device: "INV-0001".into(),
        borrower: "tom.yilmaz".into(),
        school_override_reason: Some("Geschwisterkind, Gerät der Grundschule".into()),
        ..IssueRequest::default()
    };
    let loan = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("counter".into()),
    )
    .await
    .unwrap();
    assert_eq!(loan.school_number.as_deref(), Some("100001"));
    assert!(loan.school_override_reason.is_some());
    // Lending across schools is not "leaving": Tom never belonged to the Grundschule.
    assert!(!loan.borrower_left);
    let issued = &world.events("INV-0001").await[0];
    assert_eq!(issued.1["school_override"]["new"], true);
    assert!(!issued.1.to_string().contains("Geschwisterkind"));
}

#[tokio::test]
async fn a_damaged_or_incomplete_return_leaves_the_device_to_check() {
    let world = world(3, 0).await;
    let request = IssueRequest {
        device: "INV-0001".into(),
        borrower: "lea.schulz".into(),
        accessories: vec!["ladegerät".into(), "Schutzhülle".into()],
        condition: Some("neu".into()),
        ..IssueRequest::default()
    };
    let loan = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("counter".into()),
    )
    .await
    .unwrap();
    assert_eq!(loan.accessories, vec!["Ladegerät", "Schutzhülle"]);
    let unknown = IssueRequest {
        device: "INV-0002".into(),
        borrower: "ben.wolf".into(),
        accessories: vec!["Maus".into()],
        ..IssueRequest::default()
    };
    let message = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &unknown,
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("unknown accessory \"Maus\"")
            && message.contains("Schutzhülle, Ladegerät, Eingabestift, Tastatur"),
        "{message}"
    );

    let not_lent = ReturnRequest {
        missing: vec!["Tastatur".into()],
        ..ReturnRequest::default()
    };
    let message = loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        loan.loan_id,
        &not_lent,
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("\"Tastatur\" was not handed out"),
        "{message}"
    );

    world.clock.advance(Duration::days(30));
    let damaged = ReturnRequest {
        condition: Some("Display gesprungen".into()),
        missing: vec!["ladegerät".into()],
        damage: Some("Riss im Display".into()),
    };
    let outcome = loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        loan.loan_id,
        &damaged,
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert!(outcome.to_check);
    assert_eq!(outcome.loan.state, "returned");
    assert_eq!(
        outcome.loan.accessories_missing,
        Some(vec!["Ladegerät".to_string()])
    );
    assert_eq!(
        outcome.loan.accessories_returned,
        Some(vec!["Schutzhülle".to_string()])
    );
    assert_eq!(outcome.loan.returned_by.as_deref(), Some("desk"));
    assert_eq!(world.lifecycle("INV-0001").await, "to_check");
    let message = refusal(world.issue("INV-0001", "ben.wolf").await);
    assert!(
        message.starts_with("cannot lend INV-0001: it came back damaged or incomplete")
            && message.contains("to_check"),
        "{message}"
    );
    // Someone looks at it and puts it back on the shelf.
    let state = loans::finish_check(
        world.pool(),
        &Scope::All,
        &*world.clock,
        "INV-0001",
        LifecycleState::InStock,
        &Actor::CliUser("werkstatt".into()),
    )
    .await
    .unwrap();
    assert_eq!(state, LifecycleState::InStock);
    assert_eq!(
        world.events("INV-0001").await.last().unwrap().0,
        "loan_returned",
        "the check is its own event, not a loan event"
    );
    world.issue("INV-0001", "mia.kern").await.unwrap();
    let message = loans::finish_check(
        world.pool(),
        &Scope::All,
        &*world.clock,
        "INV-0001",
        LifecycleState::InStock,
        &Actor::CliUser("werkstatt".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "INV-0001 is not waiting to be checked (lifecycle state on_loan)"
    );

    // A clean return puts the device back in use, and lendable at once.
    let clean = world.issue("INV-0002", "ben.wolf").await.unwrap();
    let outcome = loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        clean.loan_id,
        &ReturnRequest::default(),
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert!(!outcome.to_check);
    assert_eq!(world.lifecycle("INV-0002").await, "in_use");
    world.issue("INV-0002", "mia.kern").await.unwrap();
    let message = loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        clean.loan_id,
        &ReturnRequest::default(),
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        format!(
            "cannot return loan {} of INV-0002: it is returned",
            clean.loan_id
        )
    );
}

#[tokio::test]
async fn every_step_is_a_device_event_without_names() {
    let world = world(4, 0).await;
    let pool = world.pool();
    let clock = &*world.clock;
    let a = world.issue("INV-0001", "lea.schulz").await.unwrap();
    let extended = loans::extend_loan(
        pool,
        &Scope::All,
        clock,
        a.loan_id,
        day("15.09.2027"),
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert_eq!(extended.due_on, day("2027-09-15"));
    let signed = loans::record_agreement(
        pool,
        &Scope::All,
        clock,
        a.loan_id,
        day("2026-11-20"),
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert_eq!(signed.agreement_signed_on, Some(day("2026-11-20")));
    let lost = loans::mark_lost(
        pool,
        &Scope::All,
        clock,
        a.loan_id,
        Loss::Lost,
        day("2026-11-22"),
        "Lea Schulz hat es im Bus liegen lassen",
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert_eq!(lost.state, "lost");
    assert_eq!(lost.lost_on, Some(day("2026-11-22")));
    assert_eq!(world.lifecycle("INV-0001").await, "lost");
    assert!(refusal(world.issue("INV-0001", "ben.wolf").await).contains("it is lost"));

    let b = world.issue("INV-0002", "ben.wolf").await.unwrap();
    let stolen = loans::mark_lost(
        pool,
        &Scope::All,
        clock,
        b.loan_id,
        Loss::Stolen,
        day("2026-11-23"),
        "Anzeige 4711",
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert_eq!(stolen.state, "stolen");
    assert_eq!(world.lifecycle("INV-0002").await, "stolen");

    let c = world.issue("INV-0003", "mia.kern").await.unwrap();
    let key = loans::resolve_loan(pool, &Scope::All, "INV-0003")
        .await
        .unwrap();
    assert_eq!(key, c.loan_id);
    let cancelled = loans::cancel_loan(
        pool,
        &Scope::All,
        clock,
        key,
        "falsches Gerät gescannt",
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(
        cancelled.close_note.as_deref(),
        Some("falsches Gerät gescannt")
    );
    // Kept, and the device is free again.
    world.issue("INV-0003", "mia.kern").await.unwrap();
    assert_eq!(
        loans::loans_of_device(pool, &Scope::All, c.device_id)
            .await
            .unwrap()
            .iter()
            .map(|l| l.state.as_str())
            .collect::<Vec<_>>(),
        vec!["active", "cancelled"]
    );
    assert!(loans::cancel_loan(
        pool,
        &Scope::All,
        clock,
        c.loan_id,
        "nochmal",
        &Actor::CliUser("desk".into())
    )
    .await
    .is_err());

    let kinds = |events: Vec<(String, serde_json::Value)>| {
        events.into_iter().map(|(kind, _)| kind).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(world.events("INV-0001").await),
        vec![
            "loan_issued",
            "loan_extended",
            "loan_agreement_signed",
            "loan_lost"
        ]
    );
    assert_eq!(
        kinds(world.events("INV-0002").await),
        vec!["loan_issued", "loan_stolen"]
    );
    assert_eq!(
        kinds(world.events("INV-0003").await),
        vec!["loan_issued", "loan_cancelled", "loan_issued"]
    );
    let history = world.events("INV-0001").await;
    assert_eq!(history[0].1["loan_id"]["new"], a.loan_id);
    assert_eq!(
        history[0].1["person_id"]["new"],
        a.person_id.unwrap().to_string()
    );
    assert_eq!(history[1].1["due_on"]["old"], "2027-07-31");
    assert_eq!(history[1].1["due_on"]["new"], "2027-09-15");
    assert_eq!(history[3].1["lifecycle_state"]["new"], "lost");

    let all: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "select kind, actor, changes::text from device_event where kind like 'loan_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(all.len(), 9);
    for (kind, actor, changes) in all {
        assert_eq!(
            actor.as_deref(),
            Some(if kind == "loan_issued" {
                "counter"
            } else {
                "desk"
            })
        );
        for personal in [
            "Lea",
            "Schulz",
            "lea.schulz",
            "ben.wolf",
            "Wolf",
            "Mia",
            "Bus",
            "Anzeige",
            "falsches",
        ] {
            assert!(
                !changes.contains(personal),
                "{kind} event holds {personal}: {changes}"
            );
        }
    }
    let causes: Vec<String> =
        sqlx::query_scalar("select distinct cause from device_event where kind like 'loan_%'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(causes, vec!["user"]);

    // `devices show` and `persons show` carry the loans.
    let device = store::devices::show_device(pool, &Scope::All, "INV-0003")
        .await
        .unwrap();
    assert_eq!(device.loans.len(), 2);
    let person = store::persons::show_person(pool, &Scope::All, "mia.kern")
        .await
        .unwrap();
    assert_eq!(person.loans.len(), 2);
    assert_eq!(person.loans[0].state, "active");
}

#[tokio::test]
async fn the_default_due_date_is_the_end_of_the_school_year() {
    let world = world(5, 0).await;
    // 2026-11-23: the school year ends 2027-07-31.
    assert_eq!(
        world.issue("INV-0001", "lea.schulz").await.unwrap().due_on,
        day("2027-07-31")
    );

    let config = Config::parse(
        "[loans]\naccessories = [\"Ladegerät\"]\n\n[[authority]]\nslug = \"musterstadt\"\n\
         name = \"Stadt Musterstadt\"\nschool_year_end = \"07-20\"\n\n[[authority.school]]\n\
         number = \"100001\"\nname = \"Grundschule Lindenweg\"\ntype = \"grundschule\"\n\
         school_year_end = \"06-30\"\n\n[[authority.school]]\nnumber = \"100002\"\n\
         name = \"Gymnasium am Stadtpark\"\ntype = \"gymnasium\"\n",
        Path::new("config.toml"),
    )
    .unwrap();
    let policy = config.loan_policy();
    assert_eq!(policy.accessories, vec!["Ladegerät"]);
    let issue = |device: &str, borrower: &str| IssueRequest {
        device: device.into(),
        borrower: borrower.into(),
        ..IssueRequest::default()
    };
    let school = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &policy,
        &issue("INV-0002", "ben.wolf"),
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap();
    assert_eq!(school.due_on, day("2027-06-30"));
    let authority = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &policy,
        &issue("INV-0900", "tom.yilmaz"),
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap();
    assert_eq!(authority.due_on, day("2027-07-20"));

    // After the year's end the next one counts; on the day itself, that day.
    world
        .clock
        .set(Utc.with_ymd_and_hms(2027, 7, 1, 8, 0, 0).unwrap());
    let after = loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &policy,
        &issue("INV-0003", "mia.kern"),
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap();
    assert_eq!(after.due_on, day("2028-06-30"));
    world
        .clock
        .set(Utc.with_ymd_and_hms(2027, 7, 31, 8, 0, 0).unwrap());
    let on_the_day = world.issue("INV-0004", "j.becker").await.unwrap();
    assert_eq!(on_the_day.due_on, day("2027-07-31"));
    let past = IssueRequest {
        due_on: Some(day("2027-07-30")),
        ..issue("INV-0005", "ben.wolf")
    };
    assert!(loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &policy,
        &past,
        &Actor::CliUser("c".into())
    )
    .await
    .unwrap_err()
    .to_string()
    .contains("due date 2027-07-30 is in the past"));

    let bad = Config::parse(
        "[loans]\naccessories = [\"Tastatur\", \"tastatur\"]\nsurprise = 1\n",
        Path::new("config.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("surprise"), "{bad}");
    let bad = Config::parse(
        "[[authority]]\nslug = \"m\"\nname = \"M\"\nschool_year_end = \"31.07\"\n",
        Path::new("config.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("key `school_year_end`: \"31.07\" is not a day of the year"),
        "{bad}"
    );
}

const GOOD_CSV: &str = "borrower,device,due,accessories\n\
    lea.schulz,INV-0001,,Ladegerät;Schutzhülle\n\
    ben.wolf,SER00002,31.07.2027,\n\
    mia.kern,INV-0003,2027-06-30,Eingabestift\n";

#[tokio::test]
async fn a_hand_out_file_is_checked_completely_and_applied_all_or_nothing() {
    let world = world(8, 0).await;
    world.issue("INV-0005", "j.becker").await.unwrap();
    let before = world.loan_count().await;
    let csv = "Borrower;Device;Due;Accessories\n\
        lea.schulz;INV-0001;;\"Ladegerät;Schutzhülle\"\n\
        niemand;INV-0002;;\n\
        ben.wolf;INV-9999;;\n\
        mia.kern;INV-0001;;\n\
        \n\
        lea.schulz;INV-0003;;\n\
        ben.wolf;INV-0004;32.01.2027;\n\
        mia.kern;INV-0006;2026-01-01;\n\
        tom.yilmaz;INV-0007;;\n\
        j.becker;INV-0005;;\n\
        j.becker;INV-0008;;Maus\n";
    let rows = read_loan_csv(Cursor::new(csv)).unwrap();
    assert_eq!(rows.len(), 10, "the blank line is skipped");
    assert_eq!(rows[0].accessories, vec!["Ladegerät", "Schutzhülle"]);
    let report = world
        .import(&rows, BulkOptions::default(), "sekretariat")
        .await;
    assert!(!report.applied);
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "line 3: person (by id, username or email) not found: niemand",
            "line 4: device (by id, asset tag or serial number) not found: INV-9999",
            "line 5: device INV-0001 is already on line 2",
            "line 7: borrower lea.schulz is already on line 2",
            "line 8: \"32.01.2027\" is not a date (write YYYY-MM-DD or DD.MM.YYYY); \
             borrower ben.wolf is already on line 4",
            "line 9: due date 2026-01-01 is in the past; borrower mia.kern is already on line 5",
            "line 10: cannot lend INV-0007: borrower tom.yilmaz is a pupil of school 100002, but \
             INV-0007 belongs to school 100001; give an override reason to lend it anyway",
            "line 11: cannot lend INV-0005: it is already on loan (loan 1, due 2027-07-31)",
            "line 12: unknown accessory \"Maus\"; configured accessories: Schutzhülle, \
             Ladegerät, Eingabestift, Tastatur; borrower j.becker is already on line 11",
        ]
    );
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(world.loan_count().await, before, "nothing was written");
    let mut printed = Vec::new();
    print_import(&report, &mut printed).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains("✗ line 3: person"), "{printed}");
    assert!(
        printed.contains("9 row(s) bad: nothing was written"),
        "{printed}"
    );

    // A dry run of a good file writes nothing either.
    let good = read_loan_csv(Cursor::new(GOOD_CSV)).unwrap();
    let dry = BulkOptions {
        dry_run: true,
        ..BulkOptions::default()
    };
    let report = world.import(&good, dry, "s").await;
    assert!(report.errors.is_empty() && !report.applied);
    assert_eq!(report.accepted.len(), 3);
    assert!(report.accepted.iter().all(|row| row.loan_id.is_none()));
    assert_eq!(world.loan_count().await, before);

    // Partial: the good rows of the bad file are written, the rest reported.
    let partial = BulkOptions {
        partial: true,
        ..BulkOptions::default()
    };
    let report = world.import(&rows, partial, "s").await;
    assert!(report.applied);
    assert_eq!(report.errors.len(), 9);
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(report.accepted[0].line, 2);
    assert_eq!(world.loan_count().await, before + 1);
    let written = loans::get_loan(
        world.pool(),
        &Scope::All,
        report.accepted[0].loan_id.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(written.accessories, vec!["Ladegerät", "Schutzhülle"]);
    assert_eq!(written.handed_out_by, "s");

    // And a file that is all good is written whole, in one go.
    let good = "borrower,device,due\nben.wolf,SER00002,31.07.2027\nmia.kern,INV-0003,2027-06-30\n";
    let rows = read_loan_csv(Cursor::new(good)).unwrap();
    let report = world.import(&rows, BulkOptions::default(), "s").await;
    assert!(report.applied && report.errors.is_empty());
    assert_eq!(world.loan_count().await, before + 3);

    assert!(read_loan_csv(Cursor::new("person,device\nx,y\n"))
        .unwrap_err()
        .to_string()
        .contains("unknown column \"person\""));
}

#[tokio::test]
async fn a_hand_out_file_german_excel_saved_in_windows_1252_is_imported() {
    let world = world(8, 0).await;
    let before = world.loan_count().await;
    // "CSV (Trennzeichen-getrennt)": Windows-1252 (`ä` is 0xE4, `ü` 0xFC), `;`, CRLF.
    let excel: &[u8] = b"Borrower;Device;Due;Accessories\r\n\
        lea.schulz;INV-0001;31.07.2027;\"Ladeger\xE4t;Schutzh\xFClle\"\r\n";
    let rows = read_loan_csv(Cursor::new(excel)).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].accessories, vec!["Ladegerät", "Schutzhülle"]);
    let report = world
        .import(&rows, BulkOptions::default(), "sekretariat")
        .await;
    assert!(
        report.applied && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
    assert_eq!(world.loan_count().await, before + 1);
    let written = loans::get_loan(
        world.pool(),
        &Scope::All,
        report.accepted[0].loan_id.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(written.accessories, vec!["Ladegerät", "Schutzhülle"]);

    // The same bytes with --encoding utf-8: refused, naming line and column.
    let error = read_loan_csv_in(Cursor::new(excel), Some(Encoding::Utf8))
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "line 2, column 40: byte 0xE4 is not UTF-8 (set the encoding to windows-1252 if the \
         file was saved by Excel as \"CSV (Trennzeichen-getrennt)\")"
    );
    // Said to be Windows-1252, a UTF-8 file with a byte order mark is refused too.
    let utf8 = "\u{feff}borrower;device\nben.wolf;SER00002\n";
    assert!(read_loan_csv_in(Cursor::new(utf8), Some(Encoding::Windows1252)).is_err());
    // Detected, it is read as UTF-8 with the mark dropped.
    let rows = read_loan_csv(Cursor::new(utf8)).unwrap();
    assert_eq!(
        (rows[0].borrower.as_str(), rows[0].device.as_str()),
        ("ben.wolf", "SER00002")
    );
}

#[tokio::test]
async fn scanning_confirms_each_device_and_sums_up() {
    let world = world(4, 0).await;
    let template = IssueRequest {
        borrower: "lea.schulz".into(),
        accessories: vec!["Ladegerät".into()],
        ..IssueRequest::default()
    };
    let input = Cursor::new("INV-0001\n  ser00002 \nINV-0001\nINV-0900\n\nINV-0003\n");
    let mut out = Vec::new();
    let summary = scan_issue(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &template,
        input,
        &mut out,
        &Actor::CliUser("counter".into()),
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(summary.done.len(), 2, "{text}");
    assert_eq!(summary.refused.len(), 2, "{text}");
    assert!(
        text.contains("✓ INV-0001 issued (loan 1, Lea Schulz, 4a, due 2027-07-31)"),
        "{text}"
    );
    assert!(
        text.contains("✓ INV-0002 issued (loan 2, Lea Schulz, 4a, due 2027-07-31)"),
        "{text}"
    );
    assert!(
        text.contains("✗ INV-0001: cannot lend INV-0001: it is already on loan (loan 1"),
        "{text}"
    );
    assert!(
        text.contains("✗ INV-0900: cannot lend INV-0900: borrower lea.schulz is a pupil"),
        "{text}"
    );
    assert!(
        !text.contains("INV-0003"),
        "the empty line ends the session: {text}"
    );
    assert!(text.contains("2 issued, 2 refused"), "{text}");

    world.issue("INV-0003", "ben.wolf").await.unwrap();
    let input = Cursor::new("INV-0001\nINV-0003\nNOPE\nINV-0001\nINV-0004\n");
    let mut out = Vec::new();
    let summary = scan_return(
        world.pool(),
        &Scope::All,
        &*world.clock,
        input,
        &mut out,
        &Actor::CliUser("desk".into()),
    )
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("✓ INV-0001 returned (loan 1, Lea Schulz, 4a)"),
        "{text}"
    );
    assert!(
        text.contains("✓ INV-0003 returned (loan 3, Ben Wolf, 4a)"),
        "{text}"
    );
    assert!(
        text.contains("✗ NOPE: device (by id, asset tag or serial number) not found: NOPE"),
        "{text}"
    );
    assert!(
        text.contains("✗ INV-0001: INV-0001 is not on loan"),
        "{text}"
    );
    assert!(
        text.contains("✗ INV-0004: INV-0004 is not on loan"),
        "{text}"
    );
    assert!(text.ends_with("2 returned, 3 refused\n  ✗ NOPE: device (by id, asset tag or serial number) not found: NOPE\n  ✗ INV-0001: INV-0001 is not on loan\n  ✗ INV-0004: INV-0004 is not on loan\n"), "{text}");
    assert_eq!(summary.done.len(), 2);
    // Confirmation order is scan order.
    let first = text.find("✓ INV-0001").unwrap();
    let second = text.find("✓ INV-0003").unwrap();
    assert!(first < second);
}

#[tokio::test]
async fn a_class_set_pairs_pupils_and_pool_devices_in_a_stable_order() {
    // Seven pupils in 3c; devices 1..=8 in room R 104, of which 7 and 8 go to another room.
    let world = world(8, 7).await;
    sqlx::query(
        "update device set room = 'Lehrerzimmer' where asset_tag in ('INV-0007', 'INV-0008')",
    )
    .execute(world.pool())
    .await
    .unwrap();
    sqlx::query("update device set lifecycle_state = 'in_repair' where asset_tag = 'INV-0002'")
        .execute(world.pool())
        .await
        .unwrap();
    // pupil.00 already has a device; INV-0006 is on loan to someone else.
    world.issue("INV-0007", "pupil.00").await.unwrap();
    world.issue("INV-0006", "j.becker").await.unwrap();
    let before = world.loan_count().await;
    // Lendable in R 104: 1, 3, 4, 5 = four devices for six pupils without a loan.
    let mut request = ClassSetRequest {
        authority: None,
        school: "GS Lindenweg".into(),
        class: "3C".into(),
        pool: DevicePool::Room("r 104".into()),
        due_on: None,
        accessories: vec!["Ladegerät".into()],
        partial: false,
        dry_run: false,
    };
    let message = loans::issue_class_set(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("mb".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "room \"r 104\" at school 100001 has 4 lendable device(s) for 6 pupil(s) of class 3C \
         without a loan; nothing was handed out (use partial to hand out 4)"
    );
    assert_eq!(world.loan_count().await, before);

    request.partial = true;
    request.dry_run = true;
    let dry = loans::issue_class_set(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("mb".into()),
    )
    .await
    .unwrap();
    assert!(!dry.applied);
    assert_eq!(world.loan_count().await, before);

    request.dry_run = false;
    let report = loans::issue_class_set(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("mb".into()),
    )
    .await
    .unwrap();
    let pairs: Vec<(String, Option<String>, Option<String>)> = report
        .lines
        .iter()
        .map(|line| {
            (
                line.username.clone().unwrap(),
                line.device.clone(),
                line.skipped.clone(),
            )
        })
        .collect();
    let pairs_dry: Vec<(String, Option<String>)> = dry
        .lines
        .iter()
        .map(|line| (line.username.clone().unwrap(), line.device.clone()))
        .collect();
    assert_eq!(
        pairs
            .iter()
            .map(|(u, d, _)| (u.clone(), d.clone()))
            .collect::<Vec<_>>(),
        pairs_dry,
        "a dry run shows exactly what the real run does"
    );
    assert_eq!(
        pairs,
        vec![
            (
                "pupil.00".into(),
                None,
                Some("already has an active loan (loan 1)".into())
            ),
            ("pupil.01".into(), Some("INV-0001".into()), None),
            ("pupil.02".into(), Some("INV-0003".into()), None),
            ("pupil.03".into(), Some("INV-0004".into()), None),
            ("pupil.04".into(), Some("INV-0005".into()), None),
            (
                "pupil.05".into(),
                None,
                Some("no device left in room \"r 104\"".into())
            ),
            (
                "pupil.06".into(),
                None,
                Some("no device left in room \"r 104\"".into())
            ),
        ]
    );
    assert_eq!((report.issued, report.skipped, report.pool_size), (4, 3, 4));
    assert_eq!(report.due_on, day("2027-07-31"));
    assert_eq!(world.loan_count().await, before + 4);
    let list = loans::list_loans(
        world.pool(),
        &Scope::All,
        &LoanFilter {
            class: Some("3c".into()),
            state: Some(bestand_core::model::LoanState::Active),
            ..LoanFilter::default()
        },
        world.clock.now_date(),
    )
    .await
    .unwrap();
    assert_eq!(list.len(), 5);
    assert!(list
        .iter()
        .filter(|l| l.handed_out_by == "mb")
        .all(|l| l.accessories == vec!["Ladegerät"]));

    // A tagged pool: tag two devices, hand them to the remaining pupils.
    let tagged = loans::tag_devices(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &["INV-0008".into(), "INV-0900".into()],
        &["Koffer-3".into()],
        &[],
        &Actor::CliUser("mb".into()),
    )
    .await
    .unwrap();
    assert!(tagged.iter().all(|t| t.tags == vec!["Koffer-3"]));
    request.pool = DevicePool::Tag("koffer-3".into());
    request.partial = false;
    let message = loans::issue_class_set(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("mb".into()),
    )
    .await
    .unwrap_err()
    .to_string();
    // INV-0900 belongs to the Gymnasium: not in the Grundschule's pool.
    assert!(
        message.contains("has 1 lendable device(s) for 2 pupil(s)"),
        "{message}"
    );
    let kinds: Vec<String> = world
        .events("INV-0008")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, vec!["tags_changed"]);
}

trait Today {
    fn now_date(&self) -> NaiveDate;
}

impl Today for FixedClock {
    fn now_date(&self) -> NaiveDate {
        bestand_core::Clock::now(self).date_naive()
    }
}

#[tokio::test]
async fn borrowers_who_left_are_flagged_and_listed() {
    let world = world(4, 0).await;
    world.issue("INV-0001", "lea.schulz").await.unwrap();
    world.issue("INV-0002", "ben.wolf").await.unwrap();
    world.issue("INV-0003", "j.becker").await.unwrap();
    let override_request = IssueRequest {
        device: "INV-0004".into(),
        borrower: "tom.yilmaz".into(),
        school_override_reason: Some("Kooperation".into()),
        ..IssueRequest::default()
    };
    loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &override_request,
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap();
    let today = world.clock.now_date();
    assert!(
        loans::left_with_device(world.pool(), &Scope::All, None, today)
            .await
            .unwrap()
            .is_empty()
    );

    // Lea is gone from the directory; Ben moved to the Gymnasium.
    world.clock.advance(Duration::days(1));
    let mut persons: Vec<PersonRecord> = people(0)
        .into_iter()
        .filter(|p| p.username.as_deref() != Some("lea.schulz"))
        .collect();
    for p in &mut persons {
        if p.username.as_deref() == Some("ben.wolf") {
            p.memberships = pupil_of("GYS", "5a");
        }
    }
    read_directory(world.pool(), &world.clock, &world.ucs, persons).await;

    let left = loans::left_with_device(world.pool(), &Scope::All, None, today)
        .await
        .unwrap();
    let flagged: Vec<(String, bool)> = left
        .iter()
        .map(|l| (l.username.clone().unwrap(), l.borrower_left_at.is_some()))
        .collect();
    // Lea's class at the school is still known (kept when she left); Ben has none there now.
    assert_eq!(
        flagged,
        vec![("lea.schulz".into(), true), ("ben.wolf".into(), false)]
    );
    assert!(left
        .iter()
        .all(|l| l.borrower_left && l.device_label() != "INV-0004"));
    // The flag shows in the ordinary list too; the class is where Lea was.
    let all = loans::list_loans(world.pool(), &Scope::All, &LoanFilter::default(), today)
        .await
        .unwrap();
    let lea = all
        .iter()
        .find(|l| l.username.as_deref() == Some("lea.schulz"))
        .unwrap();
    assert!(lea.borrower_left);
    assert_eq!(lea.class_name.as_deref(), Some("4a"));
    // A borrower who left cannot borrow again.
    let message = refusal(world.issue("INV-0900", "lea.schulz").await);
    assert!(
        message
            .contains("borrower lea.schulz has left (no directory reports them since 2026-11-24)"),
        "{message}"
    );
}

#[tokio::test]
async fn overdue_loans_are_grouped_per_school_and_class() {
    let world = world(5, 1).await;
    let issue_due = |device: &'static str, borrower: &'static str, due: &'static str| {
        let world = &world;
        async move {
            let request = IssueRequest {
                device: device.into(),
                borrower: borrower.into(),
                due_on: Some(day(due)),
                ..IssueRequest::default()
            };
            loans::issue_loan(
                world.pool(),
                &Scope::All,
                &*world.clock,
                &world.policy,
                &request,
                &Actor::CliUser("c".into()),
            )
            .await
            .unwrap()
        }
    };
    issue_due("INV-0001", "lea.schulz", "2026-12-01").await;
    issue_due("INV-0002", "ben.wolf", "2026-12-10").await;
    issue_due("INV-0003", "mia.kern", "2026-12-01").await;
    issue_due("INV-0004", "j.becker", "2026-12-01").await;
    issue_due("INV-0005", "pupil.00", "2027-07-31").await;
    let override_request = IssueRequest {
        device: "INV-0900".into(),
        borrower: "tom.yilmaz".into(),
        due_on: Some(day("2026-11-30")),
        ..IssueRequest::default()
    };
    loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &override_request,
        &Actor::CliUser("c".into()),
    )
    .await
    .unwrap();

    world
        .clock
        .set(Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap());
    let today = world.clock.now_date();
    let groups = loans::overdue_by_class(world.pool(), &Scope::All, &LoanFilter::default(), today)
        .await
        .unwrap();
    let shape: Vec<(Option<String>, Option<String>, Vec<String>)> = groups
        .iter()
        .map(|g| {
            (
                g.school_number.clone(),
                g.class_name.clone(),
                g.loans.iter().map(|l| l.device_label()).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                Some("100001".into()),
                Some("4a".into()),
                vec!["INV-0001".into()]
            ),
            (
                Some("100001".into()),
                Some("4b".into()),
                vec!["INV-0003".into()]
            ),
            (Some("100001".into()), None, vec!["INV-0004".into()]),
            (
                Some("100002".into()),
                Some("7b".into()),
                vec!["INV-0900".into()]
            ),
        ]
    );
    let school_only = LoanFilter {
        school: Some("100001".into()),
        class: Some("4A".into()),
        ..LoanFilter::default()
    };
    let groups = loans::overdue_by_class(world.pool(), &Scope::All, &school_only, today)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].loans[0].borrower_label(), "Lea Schulz");
    let due_before = LoanFilter {
        due_before: Some(day("2026-12-31")),
        state: Some(bestand_core::model::LoanState::Active),
        ..LoanFilter::default()
    };
    assert_eq!(
        loans::list_loans(world.pool(), &Scope::All, &due_before, today)
            .await
            .unwrap()
            .len(),
        5
    );
    let by_borrower = LoanFilter {
        borrower: Some("ben.wolf@schule.example".into()),
        ..LoanFilter::default()
    };
    let bens = loans::list_loans(world.pool(), &Scope::All, &by_borrower, today)
        .await
        .unwrap();
    assert_eq!(bens.len(), 1);
    assert!(!bens[0].is_overdue(today));
    assert!(bens[0].is_overdue(day("2026-12-11")));
}
