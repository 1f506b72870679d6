//! The person and school queries behind `bestand schools`, `bestand persons` and the device
//! list's assignment filters, against PostgreSQL.

use bestand_core::access::Scope;
use bestand_core::model::{PersonRole, SyncStatus};
use bestand_core::person::{Membership, PersonIds, PersonRecord};
use bestand_core::store::devices::{self, DeviceFilter};
use bestand_core::store::persons::{self, PersonFilter};
use bestand_core::store::SourceRef;
use bestand_core::sync::{self, DirectoryItem, DirectorySyncOptions, PersonPage};
use bestand_core::{CoreError, FixedClock};
use chrono::Duration;
use sqlx::PgPool;

use crate::support::{clock, directory_source, ipad, musterstadt, sync_records, test_db};

fn person(
    id: &str,
    username: &str,
    memberships: &[(&str, PersonRole, Option<&str>)],
) -> PersonRecord {
    PersonRecord {
        external_id: id.into(),
        username: Some(username.into()),
        email: Some(format!("{username}@schule.example")),
        given_name: Some(username.split('.').next().unwrap_or("x").into()),
        family_name: Some("Muster".into()),
        ids: PersonIds {
            directory_uuid: Some(format!("uuid-{id}")),
            ..PersonIds::default()
        },
        memberships: memberships
            .iter()
            .map(|(school, role, class)| Membership {
                school: (*school).into(),
                role: *role,
                class: class.map(str::to_string),
            })
            .collect(),
        problems: Vec::new(),
        left: false,
    }
}

fn people() -> Vec<PersonRecord> {
    use PersonRole::*;
    vec![
        person("1", "lea.schulz", &[("100001", Student, Some("3a"))]),
        person("2", "tom.berg", &[("100001", Student, Some("3a"))]),
        person("3", "ida.wolf", &[("100001", Student, Some("4b"))]),
        person("4", "emma.klein", &[("100002", Student, Some("7c"))]),
        person(
            "5",
            "j.becker",
            &[("100001", Teacher, None), ("100002", Teacher, None)],
        ),
        person("6", "old.login", &[("100002", Student, Some("9a"))]),
    ]
}

async fn read(pool: &PgPool, clock: &FixedClock, source: &SourceRef, records: Vec<PersonRecord>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let total = records.len() as u64;
    sender
        .send(DirectoryItem::Persons(PersonPage {
            label: "users".into(),
            records,
        }))
        .await
        .unwrap();
    sender
        .send(DirectoryItem::Complete {
            reported_total: total,
        })
        .await
        .unwrap();
    let report = sync::run_directory_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        receiver,
        &DirectorySyncOptions::default(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Succeeded, "{report:?}");
}

#[tokio::test]
async fn schools_persons_and_assignments_can_be_listed_filtered_and_shown() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let ucs = directory_source(&db.pool, "ucs").await;
    read(&db.pool, &clock, &ucs, people()).await;
    // old.login leaves; a new pupil takes the same login at another school later.
    clock.advance(Duration::days(1));
    let mut later = people();
    later.pop();
    later.push(person(
        "7",
        "old.login",
        &[("100001", PersonRole::Student, Some("1a"))],
    ));
    read(&db.pool, &clock, &ucs, later).await;

    let mut lea = ipad("mobile:1", "SER1");
    lea.user.username = Some("lea.schulz".into());
    let mut teacher = ipad("mobile:2", "SER2");
    teacher.user.email = Some("j.becker@schule.example".into());
    let mut stranger = ipad("mobile:3", "SER3");
    stranger.user.username = Some("nobody.here".into());
    let nobody = ipad("mobile:4", "SER4");
    sync_records(
        &db.pool,
        &clock,
        &jamf,
        vec![lea, teacher, stranger, nobody],
    )
    .await;

    let schools = persons::list_schools(&db.pool, &Scope::All, Some("musterstadt"))
        .await
        .unwrap();
    let counts: Vec<(&str, i64, i64, i64, i64)> = schools
        .iter()
        .map(|s| {
            (
                s.school_number.as_str(),
                s.devices,
                s.pupils,
                s.teachers,
                s.classes,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("100001", 4, 4, 1, 3), ("100002", 0, 1, 1, 1)],
        "the pupil who left is not counted"
    );

    let usernames = |list: Vec<persons::PersonSummary>| -> Vec<String> {
        list.into_iter().filter_map(|p| p.username).collect()
    };
    let class_3a = persons::list_persons(
        &db.pool,
        &Scope::All,
        &PersonFilter {
            school: Some("GS Lindenweg".into()),
            class: Some("3A".into()),
            ..PersonFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(usernames(class_3a), vec!["lea.schulz", "tom.berg"]);
    let teachers = persons::list_persons(
        &db.pool,
        &Scope::All,
        &PersonFilter {
            role: Some(PersonRole::Teacher),
            school: Some("100002".into()),
            ..PersonFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(usernames(teachers.clone()), vec!["j.becker"]);
    assert_eq!(teachers[0].devices, 1);
    let roles = teachers[0].roles.clone().unwrap();
    assert!(
        roles.contains("teacher@100001") && roles.contains("teacher@100002"),
        "{roles}"
    );
    let left = persons::list_persons(
        &db.pool,
        &Scope::All,
        &PersonFilter {
            left: true,
            ..PersonFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].left_at.is_some());
    let found = persons::list_persons(
        &db.pool,
        &Scope::All,
        &PersonFilter {
            search: Some("WOLF".into()),
            ..PersonFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(usernames(found), vec!["ida.wolf"]);

    // By username, email or id; a current person wins over one who left with the same login.
    let shown = persons::show_person(&db.pool, &Scope::All, "lea.schulz@schule.example")
        .await
        .unwrap();
    assert_eq!(shown.person.username.as_deref(), Some("lea.schulz"));
    assert_eq!(shown.memberships[0].class_name.as_deref(), Some("3a"));
    assert_eq!(
        shown
            .devices
            .iter()
            .map(|d| d.serial_number.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["SER1"]
    );
    let by_id = persons::show_person(&db.pool, &Scope::All, &shown.person.person_id.to_string())
        .await
        .unwrap();
    assert_eq!(by_id.person.person_id, shown.person.person_id);
    let reused = persons::show_person(&db.pool, &Scope::All, "old.login")
        .await
        .unwrap();
    assert!(reused.person.left_at.is_none());
    assert_eq!(reused.memberships[0].class_name.as_deref(), Some("1a"));
    let missing = persons::show_person(&db.pool, &Scope::All, "no.such")
        .await
        .unwrap_err();
    assert!(matches!(missing, CoreError::NotFound { .. }), "{missing}");

    let serials = |list: Vec<devices::DeviceSummary>| -> Vec<String> {
        list.into_iter().filter_map(|d| d.serial_number).collect()
    };
    let assigned = devices::list_devices(
        &db.pool,
        &Scope::All,
        &DeviceFilter {
            assigned_to: Some("j.becker".into()),
            ..DeviceFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(serials(assigned.clone()), vec!["SER2"]);
    assert_eq!(assigned[0].assigned_to.as_deref(), Some("j.becker"));
    let unassigned = devices::list_devices(
        &db.pool,
        &Scope::All,
        &DeviceFilter {
            unassigned: true,
            ..DeviceFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(serials(unassigned), vec!["SER3", "SER4"]);

    let detail = devices::show_device(&db.pool, &Scope::All, "SER1")
        .await
        .unwrap();
    assert_eq!(detail.assignments.len(), 1);
    assert_eq!(
        detail.assignments[0].username.as_deref(),
        Some("lea.schulz")
    );
    assert_eq!(detail.assignments[0].source_name, "jamf");

    let hints = persons::unresolved_hints(&db.pool, &Scope::All, None)
        .await
        .unwrap();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].hint_username.as_deref(), Some("nobody.here"));
    assert_eq!(hints[0].status, "no_match");
}
