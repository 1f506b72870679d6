//! The directory sync engine against PostgreSQL: persons, memberships, matching, leaving,
//! the guard, and device assignments from MDM user hints.

use std::collections::HashMap;

use bestand_core::access::{Actor, Scope};
use bestand_core::model::{PersonRole, SyncStatus};
use bestand_core::person::{DirectorySchool, Membership, PersonIds, PersonRecord};
use bestand_core::store::{self, SourceRef};
use bestand_core::sync::{
    self, DeletionGuard, DirectoryItem, DirectorySyncOptions, FetchFailure, PersonPage, SyncReport,
};
use bestand_core::FixedClock;
use chrono::Duration;
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::support::{self, clock, ipad, musterstadt, test_db, ClockValue};

fn pupil(external_id: &str, username: &str, school: &str, class: &str) -> PersonRecord {
    PersonRecord {
        external_id: external_id.into(),
        username: Some(username.into()),
        email: Some(format!("{username}@schule.example")),
        given_name: Some("Lea".into()),
        family_name: Some("Schulz".into()),
        ids: PersonIds {
            directory_uuid: Some(format!("uuid-{external_id}")),
            ..PersonIds::default()
        },
        memberships: vec![Membership {
            school: school.into(),
            role: PersonRole::Student,
            class: Some(class.into()),
        }],
        problems: Vec::new(),
        left: false,
    }
}

fn teacher(external_id: &str, username: &str, schools: &[&str]) -> PersonRecord {
    PersonRecord {
        external_id: external_id.into(),
        username: Some(username.into()),
        email: Some(format!("{username}@schule.example")),
        given_name: Some("Jonas".into()),
        family_name: Some("Becker".into()),
        ids: PersonIds {
            record_uid: Some(format!("rec-{external_id}")),
            source_uid: Some("schulverwaltung".into()),
            ..PersonIds::default()
        },
        memberships: schools
            .iter()
            .map(|school| Membership {
                school: (*school).into(),
                role: PersonRole::Teacher,
                class: None,
            })
            .collect(),
        problems: Vec::new(),
        left: false,
    }
}

/// The two Musterstadt schools as a UCS directory names them (OU keys).
fn ucs_schools() -> Vec<DirectorySchool> {
    vec![
        DirectorySchool {
            key: "GSL".into(),
            display_name: Some("Grundschule Lindenweg".into()),
            school_number: None,
        },
        DirectorySchool {
            key: "GYS".into(),
            display_name: None,
            school_number: Some("100002".into()),
        },
    ]
}

enum End {
    Complete,
    Fail,
}

fn directory(
    schools: Vec<DirectorySchool>,
    persons: Vec<PersonRecord>,
    end: End,
) -> mpsc::Receiver<DirectoryItem> {
    let (sender, receiver) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let total = persons.len() as u64;
        let _ = sender.send(DirectoryItem::Schools(schools)).await;
        for (number, chunk) in persons.chunks(7).enumerate() {
            let page = PersonPage {
                label: format!("users page {number}"),
                records: chunk.to_vec(),
            };
            if sender.send(DirectoryItem::Persons(page)).await.is_err() {
                return;
            }
        }
        let end = match end {
            End::Complete => DirectoryItem::Complete {
                reported_total: total,
            },
            End::Fail => DirectoryItem::Failed(FetchFailure {
                page: Some("ou=GYS users page 3".into()),
                cause: "LDAP server went away".into(),
            }),
        };
        let _ = sender.send(end).await;
    });
    receiver
}

async fn directory_source(pool: &PgPool, name: &str) -> SourceRef {
    musterstadt(pool, &["jamf"]).await;
    support::directory_source(pool, name).await
}

async fn read(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    persons: Vec<PersonRecord>,
    options: &DirectorySyncOptions,
) -> SyncReport {
    sync::run_directory_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        directory(ucs_schools(), persons, End::Complete),
        options,
        &sync::NoProgress,
    )
    .await
    .unwrap()
}

async fn memberships(pool: &PgPool, username: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "select s.school_number, m.role, m.class_name from person_membership m \
         join person p using (person_id) join school s using (school_id) \
         where p.username = $1 order by 1, 2, 3",
    )
    .bind(username)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn class_of(n: usize) -> String {
    format!("{}{}", 1 + n % 4, ["a", "b"][n % 2])
}

fn pupils(count: usize) -> Vec<PersonRecord> {
    (0..count)
        .map(|n| pupil(&format!("p{n}"), &format!("pupil.{n}"), "GSL", &class_of(n)))
        .collect()
}

#[tokio::test]
async fn persons_arrive_with_schools_roles_and_classes_and_an_identical_read_changes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let mut persons = pupils(20);
    persons.push(teacher("t1", "j.becker", &["GSL", "GYS"]));
    let options = DirectorySyncOptions::default();

    let first = read(&db.pool, &clock, &source, persons.clone(), &options).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{first:?}");
    assert_eq!(first.counts.created, 21);
    assert_eq!(
        memberships(&db.pool, "j.becker").await,
        vec![
            ("100001".into(), "teacher".into(), None),
            ("100002".into(), "teacher".into(), None)
        ]
    );
    assert_eq!(
        memberships(&db.pool, "pupil.3").await,
        vec![("100001".into(), "student".into(), Some("4b".into()))]
    );

    clock.advance(Duration::hours(1));
    let second = read(&db.pool, &clock, &source, persons, &options).await;
    assert_eq!(second.counts.created, 0);
    assert_eq!(second.counts.updated, 0);
    assert_eq!(second.counts.unchanged, 21);
    let persons: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(persons, 21);
}

#[tokio::test]
async fn a_moved_pupil_changes_class_and_school_in_place() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let options = DirectorySyncOptions::default();
    read(&db.pool, &clock, &source, pupils(3), &options).await;
    let id_before: uuid::Uuid =
        sqlx::query_scalar("select person_id from person where username = 'pupil.1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();

    let mut moved = pupils(3);
    moved[1].memberships[0] = Membership {
        school: "GYS".into(),
        role: PersonRole::Student,
        class: Some("5c".into()),
    };
    moved[1].username = Some("pupil.one".into());
    clock.advance(Duration::days(1));
    let report = read(&db.pool, &clock, &source, moved, &options).await;
    assert_eq!(report.counts.updated, 1);
    assert_eq!(
        memberships(&db.pool, "pupil.one").await,
        vec![("100002".into(), "student".into(), Some("5c".into()))]
    );
    let id_after: uuid::Uuid =
        sqlx::query_scalar("select person_id from person where username = 'pupil.one'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(id_before, id_after, "a renamed login is the same person");
}

#[tokio::test]
async fn a_second_directory_matches_by_id_or_email_never_by_name_and_a_login_alone_is_reviewed() {
    let db = test_db().await;
    let clock = clock();
    let ucs = directory_source(&db.pool, "ucs").await;
    let iserv = directory_source(&db.pool, "iserv").await;
    let options = DirectorySyncOptions::default();
    let mut persons = pupils(2);
    persons.push(teacher("t1", "j.becker", &["GYS"]));
    read(&db.pool, &clock, &ucs, persons, &options).await;

    // IServ knows pupil.0 by email, the teacher by the record id, and someone with the same
    // name as pupil.0 but another login and email: a new person. pupil.1 shares only the login
    // with UCS's pupil.1, which two servers' different pupils may do: a new person and a
    // review item naming UCS's.
    let mut by_email = pupil("i0", "lea.s", "GSL", "1a");
    by_email.email = Some("pupil.0@schule.example".into());
    let mut by_username = pupil("i1", "pupil.1", "GSL", "2b");
    by_username.email = None;
    let mut by_record = teacher("i2", "becker", &["GYS"]);
    by_record.email = None;
    by_record.ids.record_uid = Some("rec-t1".into());
    let namesake = pupil("i3", "lea.schulz2", "GSL", "1a");
    let report = read(
        &db.pool,
        &clock,
        &iserv,
        vec![by_email, by_username, by_record, namesake],
        &options,
    )
    .await;
    assert_eq!(report.counts.created, 2, "{report:?}");
    assert_eq!(report.counts.updated, 2);
    assert_eq!(report.counts.review_items, 1);
    let persons: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(persons, 5);
    let (kind, external_id, candidates): (String, String, Vec<uuid::Uuid>) = sqlx::query_as(
        "select kind, external_id, candidates from review_item where status = 'open'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let ucs_pupil1: uuid::Uuid = sqlx::query_scalar(
        "select person_id from person_link where source_id = $1 and external_id = 'p1'",
    )
    .bind(ucs.source_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), external_id.as_str(), candidates),
        ("person_ambiguous", "i1", vec![ucs_pupil1])
    );
    let links_of_pupil0: i64 = sqlx::query_scalar(
        "select count(*) from person_link l join person p using (person_id) \
         where p.email = 'pupil.0@schule.example'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(links_of_pupil0, 2);
}

#[tokio::test]
async fn within_one_directory_a_recreated_account_is_found_by_its_login() {
    let db = test_db().await;
    let clock = clock();
    let iserv = directory_source(&db.pool, "iserv").await;
    let options = DirectorySyncOptions::default();
    let mut first = pupil("x1", "lea.schulz", "GSL", "1a");
    first.email = None;
    read(&db.pool, &clock, &iserv, vec![first], &options).await;
    clock.advance(Duration::days(1));
    let gone = read(&db.pool, &clock, &iserv, Vec::new(), &options).await;
    assert_eq!(gone.counts.marked_missing, 1, "{gone:?}");

    // The admin deleted and re-created the account: new uuid, same login, same server.
    clock.advance(Duration::days(1));
    let mut again = pupil("x2", "lea.schulz", "GSL", "2a");
    again.email = None;
    let report = read(&db.pool, &clock, &iserv, vec![again], &options).await;
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.review_items
        ),
        (0, 1, 0),
        "{report:?}"
    );
    let persons: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(persons, 1);
}

#[tokio::test]
async fn a_person_matching_several_becomes_a_review_item_not_a_guess() {
    let db = test_db().await;
    let clock = clock();
    let ucs = directory_source(&db.pool, "ucs").await;
    let iserv = directory_source(&db.pool, "iserv").await;
    let options = DirectorySyncOptions::default();
    // Siblings sharing their parent's address: UCS keeps them apart by their ids.
    let mut first = pupil("s1", "mia.kaya", "GSL", "1a");
    first.email = Some("familie.kaya@example.org".into());
    let mut second = pupil("s2", "emir.kaya", "GSL", "3b");
    second.email = Some("familie.kaya@example.org".into());
    let report = read(&db.pool, &clock, &ucs, vec![first, second], &options).await;
    assert_eq!(report.counts.created, 2, "siblings are two persons");

    let mut unclear = pupil("x1", "kaya", "GSL", "1a");
    unclear.email = Some("familie.kaya@example.org".into());
    let report = read(&db.pool, &clock, &iserv, vec![unclear], &options).await;
    assert_eq!(report.counts.review_items, 1);
    assert_eq!(report.counts.created, 0);
    let (kind, candidates): (String, Vec<uuid::Uuid>) = sqlx::query_as(
        "select kind, candidates from review_item where source_id = $1 and status = 'open'",
    )
    .bind(iserv.source_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kind, "person_ambiguous");
    assert_eq!(candidates.len(), 2);
    let listed = store::review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    let mut labels = listed[0].candidate_labels.clone();
    labels.sort();
    assert_eq!(labels, ["emir.kaya", "mia.kaya"], "listed by username");

    // A person settles it; the next read applies the record to the chosen person.
    let item: i64 = sqlx::query_scalar("select review_item_id from review_item")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let mia: uuid::Uuid =
        sqlx::query_scalar("select person_id from person where username = 'mia.kaya'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let outcome = store::review::resolve_review(
        &db.pool,
        &Scope::All,
        &Actor::CliUser("anna".into()),
        item,
        store::review::Resolution::LinkTo(mia),
        &Default::default(),
        clock.now_value(),
    )
    .await
    .unwrap();
    assert!(outcome.contains("linked person"), "{outcome}");
    let mut unclear = pupil("x1", "kaya", "GSL", "1a");
    unclear.email = Some("familie.kaya@example.org".into());
    let report = read(&db.pool, &clock, &iserv, vec![unclear], &options).await;
    assert_eq!((report.counts.updated, report.counts.review_items), (1, 0));
    let sources_of_mia: i64 =
        sqlx::query_scalar("select count(*) from person_link where person_id = $1")
            .bind(mia)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(sources_of_mia, 2);
}

#[tokio::test]
async fn persons_who_disappear_are_marked_left_never_deleted_and_can_return() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let options = DirectorySyncOptions::default();
    read(&db.pool, &clock, &source, pupils(30), &options).await;

    clock.advance(Duration::days(1));
    let left_at = clock.now_value();
    let report = read(&db.pool, &clock, &source, pupils(27), &options).await;
    assert_eq!(report.status, SyncStatus::Succeeded);
    assert_eq!(report.counts.marked_missing, 3);
    let left: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select username, left_at from person where left_at is not null order by username",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        vec![
            ("pupil.27".to_string(), left_at),
            ("pupil.28".to_string(), left_at),
            ("pupil.29".to_string(), left_at)
        ]
    );
    // Where a departed pupil was stays known.
    assert_eq!(
        memberships(&db.pool, "pupil.28").await,
        vec![("100001".into(), "student".into(), Some("1a".into()))]
    );

    clock.advance(Duration::days(1));
    let report = read(&db.pool, &clock, &source, pupils(28), &options).await;
    assert_eq!(report.counts.reappeared, 1);
    let still_left: i64 =
        sqlx::query_scalar("select count(*) from person where left_at is not null")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(still_left, 2);
    let total: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, 30);
}

#[tokio::test]
async fn a_read_that_returns_too_few_persons_is_blocked_until_approved() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let options = DirectorySyncOptions {
        guard: DeletionGuard {
            max_share: 0.10,
            min_count: 5,
        },
        ..DirectorySyncOptions::default()
    };
    read(&db.pool, &clock, &source, pupils(100), &options).await;
    clock.advance(Duration::hours(6));
    let blocked_at = clock.now_value();
    let report = read(&db.pool, &clock, &source, pupils(40), &options).await;
    assert_eq!(report.status, SyncStatus::Blocked, "{report:?}");
    let reason = report.blocked_reason.unwrap();
    assert!(reason.contains("60 of 100 persons as left"), "{reason}");
    let left: i64 = sqlx::query_scalar("select count(*) from person where left_at is not null")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "a blocked run marks nobody");

    clock.advance(Duration::hours(1));
    let approval = sync::approve_run(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::CliUser("anna".into()),
        report.run_id,
    )
    .await
    .unwrap();
    assert_eq!(approval.marked_missing, 60);
    let left: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select distinct left_at from person where left_at is not null")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, vec![blocked_at], "left as of the blocked run");
}

#[tokio::test]
async fn a_failed_read_changes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let options = DirectorySyncOptions::default();
    read(&db.pool, &clock, &source, pupils(10), &options).await;
    let before = person_fingerprint(&db.pool).await;

    let mut changed = pupils(3);
    changed[0].family_name = Some("Neu".into());
    let report = sync::run_directory_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &source,
        directory(ucs_schools(), changed, End::Fail),
        &options,
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(error.contains("source 'ucs'"), "{error}");
    assert!(error.contains("ou=GYS users page 3"), "{error}");
    assert!(error.contains("LDAP server went away"), "{error}");
    assert_eq!(person_fingerprint(&db.pool).await, before);
}

async fn person_fingerprint(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "select md5(coalesce((select string_agg(t::text, '|' order by t::text) from person t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from person_link t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from person_membership t), ''))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_unknown_school_is_reported_and_a_mapping_resolves_it() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let persons = vec![pupil("p1", "ole.wolf", "GS-LINDEN", "2a")];
    let report = read(
        &db.pool,
        &clock,
        &source,
        persons.clone(),
        &DirectorySyncOptions::default(),
    )
    .await;
    assert_eq!(report.counts.created, 1, "the person is kept");
    assert!(
        report
            .warnings
            .iter()
            .any(|warning| warning.contains("school 'GS-LINDEN'")),
        "{:?}",
        report.warnings
    );
    assert!(memberships(&db.pool, "ole.wolf").await.is_empty());

    let mapped = DirectorySyncOptions {
        school_map: HashMap::from([("GS-LINDEN".to_string(), "100001".to_string())]),
        ..DirectorySyncOptions::default()
    };
    let mut changed = persons;
    changed[0].given_name = Some("Ole".into());
    read(&db.pool, &clock, &source, changed, &mapped).await;
    assert_eq!(
        memberships(&db.pool, "ole.wolf").await,
        vec![("100001".into(), "student".into(), Some("2a".into()))]
    );
}

#[tokio::test]
async fn mdm_user_hints_resolve_to_persons_and_unclear_ones_are_kept_as_such() {
    let db = test_db().await;
    let clock = clock();
    let ucs = directory_source(&db.pool, "ucs").await;
    let jamf = store::source_by_name(&db.pool, &Scope::All, "jamf")
        .await
        .unwrap();
    let mut persons = pupils(3);
    let mut first = pupil("s1", "mia.kaya", "GSL", "1a");
    first.email = Some("familie.kaya@example.org".into());
    let mut second = pupil("s2", "emir.kaya", "GSL", "3b");
    second.email = Some("familie.kaya@example.org".into());
    persons.extend([first, second]);
    read(
        &db.pool,
        &clock,
        &ucs,
        persons,
        &DirectorySyncOptions::default(),
    )
    .await;

    let mut by_username = ipad("mobile:1", "SER1");
    by_username.user.username = Some("Pupil.0".into());
    let mut by_upn = ipad("mobile:2", "SER2");
    by_upn.user.username = Some("pupil.1@musterstadt.onmicrosoft.com".into());
    let mut by_email = ipad("mobile:3", "SER3");
    by_email.user.email = Some("pupil.2@schule.example".into());
    let mut nobody = ipad("mobile:4", "SER4");
    nobody.user.username = Some("max.unbekannt".into());
    let mut shared = ipad("mobile:5", "SER5");
    shared.user.email = Some("familie.kaya@example.org".into());
    let unassigned = ipad("mobile:6", "SER6");
    let report = support::sync_records(
        &db.pool,
        &clock,
        &jamf,
        vec![by_username, by_upn, by_email, nobody, shared, unassigned],
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded);

    let rows: Vec<(String, String, Option<String>, i32)> = sqlx::query_as(
        "select d.serial_number, a.status, p.username, cardinality(a.candidates) \
         from device_assignment a join device d using (device_id) \
         left join person p on p.person_id = a.person_id order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("SER1".into(), "matched".into(), Some("pupil.0".into()), 0),
            ("SER2".into(), "matched".into(), Some("pupil.1".into()), 0),
            ("SER3".into(), "matched".into(), Some("pupil.2".into()), 0),
            ("SER4".into(), "no_match".into(), None, 0),
            ("SER5".into(), "ambiguous".into(), None, 2),
        ]
    );

    // The unknown user arrives in the directory: the next directory read resolves the hint.
    clock.advance(Duration::hours(1));
    let mut arrivals = pupils(3);
    arrivals.push(pupil("p9", "max.unbekannt", "GSL", "2a"));
    let mut first = pupil("s1", "mia.kaya", "GSL", "1a");
    first.email = Some("familie.kaya@example.org".into());
    let mut second = pupil("s2", "emir.kaya", "GSL", "3b");
    second.email = Some("familie.kaya@example.org".into());
    arrivals.extend([first, second]);
    read(
        &db.pool,
        &clock,
        &ucs,
        arrivals,
        &DirectorySyncOptions::default(),
    )
    .await;
    let status: String = sqlx::query_scalar(
        "select a.status from device_assignment a join device d using (device_id) \
         where d.serial_number = 'SER4'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "matched");

    // A pupil who leaves keeps the device assignment: that is how devices that left with
    // their borrower are found.
    clock.advance(Duration::days(1));
    read(
        &db.pool,
        &clock,
        &ucs,
        pupils(3)[1..].to_vec(),
        &DirectorySyncOptions::default(),
    )
    .await;
    let still: Option<String> = sqlx::query_scalar(
        "select p.username from device_assignment a join person p using (person_id) \
         join device d using (device_id) where d.serial_number = 'SER1' and p.left_at is not null",
    )
    .fetch_optional(&db.pool)
    .await
    .unwrap();
    assert_eq!(still.as_deref(), Some("pupil.0"));
}

#[tokio::test]
async fn a_large_directory_read_refreshes_the_planner_statistics_of_persons() {
    let db = test_db().await;
    let clock = clock();
    let source = directory_source(&db.pool, "ucs").await;
    let options = DirectorySyncOptions::default();
    let report = read(&db.pool, &clock, &source, pupils(1_100), &options).await;
    assert_eq!(report.counts.created, 1_100);
    for table in ["person", "person_link", "person_membership"] {
        let (analyzed, estimated): (bool, f32) = sqlx::query_as(
            "select s.last_analyze is not null, c.reltuples from pg_stat_user_tables s \
             join pg_class c on c.oid = s.relid where s.relname = $1",
        )
        .bind(table)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(analyzed, "{table} analyzed");
        assert_eq!(estimated, 1_100.0, "{table}: the planner knows its size");
    }
}

#[tokio::test]
async fn two_directories_deadlocking_on_the_same_persons_both_apply_one_run_started_again() {
    let db = test_db().await;
    let clock = clock();
    let ucs = directory_source(&db.pool, "ucs").await;
    let iserv = directory_source(&db.pool, "iserv").await;
    let options = DirectorySyncOptions::default();
    let from_ucs = vec![
        pupil("s1", "mia.kaya", "GSL", "1a"),
        pupil("s2", "emir.kaya", "GSL", "3b"),
    ];
    // IServ knows the same pupils under its own ids; their emails match them.
    let as_iserv = |records: &[PersonRecord]| -> Vec<PersonRecord> {
        records
            .iter()
            .map(|record| PersonRecord {
                external_id: format!("iserv-{}", record.external_id),
                ids: PersonIds::default(),
                ..record.clone()
            })
            .collect()
    };
    read(&db.pool, &clock, &ucs, from_ucs.clone(), &options).await;
    let linked = read(&db.pool, &clock, &iserv, as_iserv(&from_ucs), &options).await;
    assert_eq!(linked.counts.created, 0, "{linked:?}");
    clock.advance(Duration::hours(1));

    // Both directories report the new first names; each in the other order.
    let mut renamed = from_ucs;
    for record in &mut renamed {
        record.given_name = Some(format!("Neu {}", record.external_id));
    }
    let mut iserv_renamed = as_iserv(&renamed);
    iserv_renamed.reverse();
    let gated = |records: Vec<PersonRecord>| {
        let (sender, receiver) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
        let mut first = Some(receiver);
        let fetch = move || {
            first
                .take()
                .unwrap_or_else(|| directory(ucs_schools(), records.clone(), End::Complete))
        };
        (sender, fetch)
    };
    let (to_ucs, ucs_fetch) = gated(renamed.clone());
    let (to_iserv, iserv_fetch) = gated(iserv_renamed.clone());
    let ucs_applied = support::PageSignal(tokio::sync::Notify::new());
    let iserv_applied = support::PageSignal(tokio::sync::Notify::new());
    let ucs_run = sync::run_directory_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &ucs,
        ucs_fetch,
        &options,
        &ucs_applied,
    );
    let iserv_run = sync::run_directory_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &iserv,
        iserv_fetch,
        &options,
        &iserv_applied,
    );
    let page = |record: &PersonRecord| {
        DirectoryItem::Persons(PersonPage {
            label: format!("users {}", record.external_id),
            records: vec![record.clone()],
        })
    };
    let driver = async {
        for sender in [&to_ucs, &to_iserv] {
            sender
                .send(DirectoryItem::Schools(ucs_schools()))
                .await
                .unwrap();
        }
        // Each run holds the person of its first page until it commits, then asks for the
        // other's.
        to_ucs.send(page(&renamed[0])).await.unwrap();
        ucs_applied.0.notified().await;
        to_iserv.send(page(&iserv_renamed[0])).await.unwrap();
        iserv_applied.0.notified().await;
        for (sender, record) in [(&to_ucs, &renamed[1]), (&to_iserv, &iserv_renamed[1])] {
            sender.send(page(record)).await.unwrap();
            sender
                .send(DirectoryItem::Complete { reported_total: 2 })
                .await
                .unwrap();
        }
    };
    let (ucs_report, iserv_report, ()) = tokio::join!(ucs_run, iserv_run, driver);
    let reports = [ucs_report.unwrap(), iserv_report.unwrap()];
    for report in &reports {
        assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    }
    let retried: Vec<i64> = reports
        .iter()
        .flat_map(|report| report.retried_runs.clone())
        .collect();
    assert_eq!(retried.len(), 1, "one run lost the deadlock: {reports:?}");
    let error: Option<String> =
        sqlx::query_scalar("select error from sync_run where sync_run_id = $1")
            .bind(retried[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        error
            .as_deref()
            .is_some_and(|error| error.contains("rolled this run back to end the deadlock")),
        "{error:?}"
    );
    let names: Vec<String> = sqlx::query_scalar("select given_name from person order by username")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(names, ["Neu s2", "Neu s1"]);
}
