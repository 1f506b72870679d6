//! The IServ LDAP connector against a real slapd (tests/it/slapd.rs) loaded with
//! tests/fixtures/ldap/iserv.ldif and iserv-gym.ldif: roles and classes from `memberOf` and
//! `memberUid`, groups that only look like classes, accounts that are no persons, a leaver in a
//! former pupils' group, paging, escaped group names, bad passwords and TLS
//! (docs/vendors/iserv.md#ldap); and two IServs of one authority through the directory engine:
//! namesakes kept apart, a teacher at both linked once.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::slapd::{
    read_directory, slapd, DirectoryRead, ISERV_BASE, ISERV_BIND_DN, ISERV_GYM_BASE,
    ISERV_GYM_BIND_DN, ISERV_PASSWORD,
};
use crate::support::{self, clock, musterstadt, test_db, ClockValue};
use bestand_connectors::iserv_ldap::{IservLdap, IservLdapConfig};
use bestand_connectors::spawn_directory_fetch;
use bestand_core::access::{Actor, Scope};
use bestand_core::model::{PersonRole, SyncStatus};
use bestand_core::person::{AccountKind, DirectorySchool, Membership};
use bestand_core::store::{self, SourceRef};
use bestand_core::sync::{self, DirectorySyncOptions, SyncReport};
use bestand_core::FixedClock;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// One of the two test IServs.
#[derive(Clone, Copy)]
enum School {
    /// Grundschule Lindenweg, iserv.ldif.
    Gsl,
    /// Gymnasium am Stadtpark, iserv-gym.ldif.
    Gym,
}

fn config_of(school: School, test: &str, extra: Value) -> IservLdapConfig {
    let server = slapd();
    let (base, bind_dn, key, name) = match school {
        School::Gsl => (ISERV_BASE, ISERV_BIND_DN, "GSL", "Grundschule Lindenweg"),
        School::Gym => (
            ISERV_GYM_BASE,
            ISERV_GYM_BIND_DN,
            "GYS",
            "Gymnasium am Stadtpark",
        ),
    };
    let mut value = json!({
        "url": server.ldap_url,
        "bind_dn": bind_dn,
        "bind_password_file": server.secret_file(&format!("iserv-{test}"), ISERV_PASSWORD),
        "base_dn": base,
        "school": key,
        "school_name": name,
        "timeout_secs": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn config(test: &str, extra: Value) -> IservLdapConfig {
    config_of(School::Gsl, test, extra)
}

async fn read(test: &str, extra: Value) -> DirectoryRead {
    let connector = IservLdap::new(config(test, extra), "iserv-test").expect("connector");
    read_directory(Arc::new(connector)).await
}

async fn read_gym(test: &str, extra: Value) -> DirectoryRead {
    let config = config_of(School::Gym, &format!("gym-{test}"), extra);
    let connector = IservLdap::new(config, "iserv-gym-test").expect("connector");
    read_directory(Arc::new(connector)).await
}

fn memberships(read: &DirectoryRead, username: &str) -> Vec<(PersonRole, Option<String>)> {
    read.person(username)
        .memberships
        .iter()
        .map(|membership: &Membership| {
            assert_eq!(membership.school, "GSL");
            (membership.role, membership.class.clone())
        })
        .collect()
}

fn class(name: &str) -> Option<String> {
    Some(name.to_string())
}

#[tokio::test]
async fn roles_and_classes_come_from_groups() {
    let read = read("full", json!({})).await;
    assert_eq!(read.end, Ok(5), "{:?}", read.end);
    assert_eq!(
        read.schools,
        [DirectorySchool {
            key: "GSL".into(),
            display_name: Some("Grundschule Lindenweg".into()),
            school_number: None,
        }]
    );
    // iserv-system is no memberOfGroup entry, so the default users filter leaves it out;
    // otto.brandt is in no role group, so he is no person.
    assert_eq!(
        read.usernames(),
        [
            "anna.schmidt",
            "ben.mueller",
            "carla.neumann",
            "dieter.vogel",
            "emma.krause",
        ]
    );
    assert_eq!(read.not_persons, BTreeMap::from([(AccountKind::Other, 1)]));
    assert_eq!(read.pages.len(), 1);
    assert_eq!(read.pages[0].label, "GSL users page 1");

    let anna = read.person("anna.schmidt");
    assert_eq!(anna.external_id, "6f1c7a52-1d9e-4a7e-9a35-0a1b2c3d4e01");
    assert_eq!(
        anna.ids.directory_uuid.as_deref(),
        Some(anna.external_id.as_str())
    );
    assert_eq!(anna.ids.record_uid, None);
    assert_eq!(
        anna.email.as_deref(),
        Some("anna.schmidt@gsl-iserv.example")
    );
    assert_eq!(anna.given_name.as_deref(), Some("Anna"));
    assert_eq!(anna.family_name.as_deref(), Some("Schmidt"));
    // memberOf: schueler and klasse-5a; the workgroup ag-robotik is no class.
    assert_eq!(
        memberships(&read, "anna.schmidt"),
        [(PersonRole::Student, class("5a"))]
    );
    // Only the groups' memberUid lists name ben.
    assert_eq!(
        memberships(&read, "ben.mueller"),
        [(PersonRole::Student, class("6b"))]
    );
    // A teacher in a class group gets no class.
    assert_eq!(
        memberships(&read, "carla.neumann"),
        [(PersonRole::Teacher, None)]
    );
    assert_eq!(
        memberships(&read, "dieter.vogel"),
        [(PersonRole::Staff, None), (PersonRole::SchoolAdmin, None)]
    );
    // `cn=Schueler` and `cn=Klasse 7c`: names compare without regard to case.
    assert_eq!(
        memberships(&read, "emma.krause"),
        [(PersonRole::Student, class("7c"))]
    );
    for username in [
        "anna.schmidt",
        "ben.mueller",
        "carla.neumann",
        "dieter.vogel",
        "emma.krause",
    ] {
        assert!(read.person(username).problems.is_empty(), "{username}");
    }
}

#[tokio::test]
async fn accounts_in_no_role_group_are_no_persons_and_counted_by_kind() {
    let read = read_gym("no-role", json!({})).await;
    assert_eq!(read.end, Ok(4), "{:?}", read.end);
    assert_eq!(
        read.usernames(),
        ["anna.schmidt", "carla.neumann", "frieda.alt", "jonas.weber"]
    );
    assert_eq!(
        read.not_persons,
        BTreeMap::from([
            (AccountKind::Parent, 1),
            (AccountKind::Guest, 1),
            (AccountKind::Exam, 1),
            (AccountKind::Projector, 1),
            (AccountKind::Mailbox, 1),
        ])
    );
}

#[tokio::test]
async fn groups_that_merely_start_with_klasse_are_no_classes() {
    let read = read_gym("near-miss", json!({})).await;
    let gym = |username: &str| -> Vec<(PersonRole, Option<String>)> {
        read.person(username)
            .memberships
            .iter()
            .map(|membership| (membership.role, membership.class.clone()))
            .collect()
    };
    // klassensprecher and klassenrat once read as classes `nsprecher` and `nrat`.
    assert_eq!(gym("anna.schmidt"), [(PersonRole::Student, class("7a"))]);
    // klassenfahrt-2024 is no class either; `Klasse 10b` is.
    assert_eq!(gym("jonas.weber"), [(PersonRole::Student, class("10b"))]);
    // klassenlehrer gives a teacher no class.
    assert_eq!(gym("carla.neumann"), [(PersonRole::Teacher, None)]);
}

#[tokio::test]
async fn a_user_in_a_former_pupils_group_is_sent_as_having_left() {
    let read = read_gym("former", json!({})).await;
    let frieda = read.person("frieda.alt");
    assert!(frieda.left);
    assert!(frieda.memberships.is_empty());
    assert!(frieda.problems.is_empty(), "{:?}", frieda.problems);
    assert!(!read.person("jonas.weber").left);
    // Turned off, the group is nothing special: frieda is in no role group, so no person.
    let off = read_gym("former-off", json!({ "former_group_pattern": "" })).await;
    assert_eq!(off.end, Ok(3), "{:?}", off.end);
    assert_eq!(off.not_persons.values().sum::<u64>(), 6);
}

#[tokio::test]
async fn a_shared_id_attribute_becomes_the_record_id() {
    let read = read_gym(
        "shared-id",
        json!({ "shared_id_attribute": "employeeNumber" }),
    )
    .await;
    let carla = read.person("carla.neumann");
    assert_eq!(carla.ids.record_uid.as_deref(), Some("L-4711"));
    assert_eq!(carla.ids.source_uid.as_deref(), Some("employeenumber"));
    assert_eq!(read.person("anna.schmidt").ids.record_uid, None);
}

#[tokio::test]
async fn group_names_from_config_are_escaped_in_the_group_filter() {
    // Without a class pattern only the named groups are searched; `(cn=verwaltung (alt*))`
    // unescaped is no valid filter. otto is in that group only through its memberUid.
    let read = read(
        "escape",
        json!({
            "role_groups": { "verwaltung (alt*)": "staff", "schueler": "student" },
            "class_group_pattern": "",
            "class_groups": ["klasse-5a"],
            "former_group_pattern": "",
        }),
    )
    .await;
    // carla (lehrer) and dieter (verwaltung, admins) are in no role group of this config.
    assert_eq!(read.end, Ok(4), "{:?}", read.end);
    assert_eq!(
        memberships(&read, "otto.brandt"),
        [(PersonRole::Staff, None)]
    );
    assert!(read.person("otto.brandt").problems.is_empty());
    // A listed class group keeps its whole name when no pattern takes it apart.
    assert_eq!(
        memberships(&read, "anna.schmidt"),
        [(PersonRole::Student, class("klasse-5a"))]
    );
    // klasse_6b is neither pattern-matched nor listed now.
    assert_eq!(
        memberships(&read, "ben.mueller"),
        [(PersonRole::Student, None)]
    );
    assert!(!read.usernames().contains(&"carla.neumann".to_string()));
}

#[tokio::test]
async fn small_pages_return_everyone() {
    let read = read("paging", json!({ "page_size": 2 })).await;
    assert_eq!(read.end, Ok(5), "{:?}", read.end);
    let labels: Vec<&str> = read.pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        ["GSL users page 1", "GSL users page 2", "GSL users page 3"]
    );
    assert_eq!(read.usernames().len(), 5);
}

#[tokio::test]
async fn a_custom_users_filter_is_used_as_given() {
    let dotted = read(
        "filter",
        json!({ "users_filter": "(&(objectClass=uuidObject)(uid=*.*))" }),
    )
    .await;
    assert_eq!(dotted.end, Ok(5), "{:?}", dotted.end);
    assert_eq!(dotted.not_persons[&AccountKind::Other], 1);
    let all = read(
        "filter-all",
        json!({ "users_filter": "(objectClass=uuidObject)" }),
    )
    .await;
    // iserv-system is read now, and is no person either.
    assert_eq!(all.end, Ok(5), "{:?}", all.end);
    assert_eq!(all.not_persons[&AccountKind::Other], 2);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = slapd();
    let wrong = "Iserv-Falsch-0815";
    let read = read(
        "wrong-password",
        json!({ "bind_password_file": server.secret_file("iserv-wrong", wrong) }),
    )
    .await;
    let failure = read.failure();
    assert!(failure.cause.contains(&server.ldap_url), "{failure}");
    assert!(failure.cause.contains(ISERV_BIND_DN), "{failure}");
    assert!(failure.cause.contains("invalid credentials"), "{failure}");
    assert!(!failure.cause.contains(wrong), "{failure}");
}

#[tokio::test]
async fn ldaps_with_the_servers_ca() {
    let server = slapd();
    let read = read(
        "ldaps",
        json!({ "url": server.ldaps_url, "ca_file": server.ca_file }),
    )
    .await;
    assert_eq!(read.end, Ok(5), "{:?}", read.end);
}

#[tokio::test]
async fn a_missing_users_base_is_an_error_naming_it() {
    let read = read(
        "missing-base",
        json!({ "users_base": "ou=nutzer,dc=gsl-iserv,dc=test" }),
    )
    .await;
    let failure = read.failure();
    assert_eq!(failure.page.as_deref(), Some("GSL users page 1"));
    assert!(
        failure.cause.contains("ou=nutzer,dc=gsl-iserv,dc=test"),
        "{failure}"
    );
    assert!(failure.cause.contains("noSuchObject"), "{failure}");
}

/// Syncs `school`'s IServ as `source` into the database, through the directory engine.
async fn sync_iserv(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    school: School,
    extra: Value,
) -> SyncReport {
    let config = config_of(school, &format!("sync-{}", source.name), extra);
    let connector = IservLdap::new(config, source.name.clone()).expect("connector");
    let report = sync::run_directory_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        spawn_directory_fetch(Arc::new(connector)),
        &DirectorySyncOptions::default(),
        &sync::NoProgress,
    )
    .await
    .expect("the run is recorded");
    assert_eq!(report.status, SyncStatus::Succeeded, "{report:?}");
    report
}

/// Musterstadt with one directory source per IServ.
async fn two_iservs(pool: &PgPool) -> (SourceRef, SourceRef) {
    musterstadt(pool, &[]).await;
    (
        support::directory_source(pool, "iserv-gsl").await,
        support::directory_source(pool, "iserv-gys").await,
    )
}

/// Persons with `username`: their ids, and per person its (school number, role, class)
/// memberships and how many directory links it has.
async fn persons_named(pool: &PgPool, username: &str) -> Vec<(Uuid, Vec<String>, i64)> {
    let rows: Vec<(Uuid, Vec<String>, i64)> = sqlx::query_as(
        "select p.person_id, \
         array(select s.school_number || ' ' || m.role || ' ' || coalesce(m.class_name, '-') \
               from person_membership m join school s using (school_id) \
               where m.person_id = p.person_id order by 1), \
         (select count(*) from person_link l where l.person_id = p.person_id) \
         from person p where p.username = $1 order by p.first_seen_at, p.person_id",
    )
    .bind(username)
    .fetch_all(pool)
    .await
    .unwrap();
    rows
}

async fn open_items(pool: &PgPool) -> Vec<(i64, String, String, Vec<Uuid>)> {
    sqlx::query_as(
        "select review_item_id, kind, external_id, candidates from review_item \
         where status = 'open' order by review_item_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn resolve(
    pool: &PgPool,
    clock: &FixedClock,
    item: i64,
    resolution: store::review::Resolution,
) -> String {
    store::review::resolve_review(
        pool,
        &Scope::All,
        &Actor::CliUser("medienbeauftragte".into()),
        item,
        resolution,
        &Default::default(),
        clock.now_value(),
    )
    .await
    .expect("the item resolves")
}

#[tokio::test]
async fn two_iservs_keep_namesakes_apart_and_link_a_teacher_by_a_shared_id() {
    let db = test_db().await;
    let clock = clock();
    let (gsl, gys) = two_iservs(&db.pool).await;
    let shared = json!({ "shared_id_attribute": "employeeNumber" });
    sync_iserv(&db.pool, &clock, &gsl, School::Gsl, shared.clone()).await;
    clock.advance(chrono::Duration::minutes(5));
    let report = sync_iserv(&db.pool, &clock, &gys, School::Gym, shared.clone()).await;
    // anna.schmidt and jonas.weber are new, carla.neumann is linked by her employeeNumber.
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.review_items
        ),
        (2, 1, 1),
        "{report:?}"
    );

    // Two different pupils who share a login stay two persons, each at her own school.
    let annas = persons_named(&db.pool, "anna.schmidt").await;
    assert_eq!(annas.len(), 2, "{annas:?}");
    assert_eq!(annas[0].1, ["100001 student 5a"]);
    assert_eq!(annas[1].1, ["100002 student 7a"]);
    let items = open_items(&db.pool).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].1, "person_ambiguous");
    assert_eq!(items[0].2, "9b2d8e61-0000-4000-8000-00000000a001");
    assert_eq!(items[0].3, [annas[0].0], "the item names the GSL pupil");

    // The teacher at both schools is one person with two links.
    let carla = persons_named(&db.pool, "carla.neumann").await;
    assert_eq!(carla.len(), 1, "{carla:?}");
    assert_eq!(carla[0].1, ["100001 teacher -", "100002 teacher -"]);
    assert_eq!(carla[0].2, 2);

    // Read again, nothing changes and no item is raised again.
    clock.advance(chrono::Duration::hours(1));
    let again = sync_iserv(&db.pool, &clock, &gys, School::Gym, shared).await;
    assert_eq!(
        (again.counts.created, again.counts.review_items),
        (0, 0),
        "{again:?}"
    );
    assert_eq!(again.counts.unchanged, 3);
}

#[tokio::test]
async fn a_login_shared_across_iservs_is_settled_by_review_merge_or_keep() {
    let db = test_db().await;
    let clock = clock();
    let (gsl, gys) = two_iservs(&db.pool).await;
    sync_iserv(&db.pool, &clock, &gsl, School::Gsl, json!({})).await;
    clock.advance(chrono::Duration::minutes(5));
    let report = sync_iserv(&db.pool, &clock, &gys, School::Gym, json!({})).await;
    // Without a shared id the teacher's login is no evidence either: everyone is new.
    assert_eq!(
        (report.counts.created, report.counts.review_items),
        (3, 2),
        "{report:?}"
    );
    let carla = persons_named(&db.pool, "carla.neumann").await;
    assert_eq!(carla.len(), 2, "{carla:?}");
    let items = open_items(&db.pool).await;
    let item_of = |external_id: &str| {
        items
            .iter()
            .find(|item| item.2 == external_id)
            .map(|item| item.0)
            .expect("an item for the record")
    };

    // The admin knows Carla: the second person is merged into the first.
    let outcome = resolve(
        &db.pool,
        &clock,
        item_of("9b2d8e61-0000-4000-8000-00000000a002"),
        store::review::Resolution::LinkTo(carla[0].0),
    )
    .await;
    assert!(outcome.contains("merged person"), "{outcome}");
    let merged = persons_named(&db.pool, "carla.neumann").await;
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(merged[0].0, carla[0].0);
    assert_eq!(merged[0].1, ["100001 teacher -", "100002 teacher -"]);
    assert_eq!(merged[0].2, 2);

    // And knows the two Annas are two girls.
    let outcome = resolve(
        &db.pool,
        &clock,
        item_of("9b2d8e61-0000-4000-8000-00000000a001"),
        store::review::Resolution::CreateNew,
    )
    .await;
    assert!(outcome.contains("kept person"), "{outcome}");
    assert_eq!(persons_named(&db.pool, "anna.schmidt").await.len(), 2);

    // Both decisions hold on the next reads of both servers.
    clock.advance(chrono::Duration::hours(1));
    let gym = sync_iserv(&db.pool, &clock, &gys, School::Gym, json!({})).await;
    let gsl_again = sync_iserv(&db.pool, &clock, &gsl, School::Gsl, json!({})).await;
    for report in [&gym, &gsl_again] {
        assert_eq!(
            (report.counts.created, report.counts.review_items),
            (0, 0),
            "{report:?}"
        );
    }
    let carla = persons_named(&db.pool, "carla.neumann").await;
    assert_eq!(carla.len(), 1, "{carla:?}");
    assert_eq!(carla[0].1, ["100001 teacher -", "100002 teacher -"]);
    assert_eq!(persons_named(&db.pool, "anna.schmidt").await.len(), 2);
    assert!(open_items(&db.pool).await.is_empty());
}

#[tokio::test]
async fn accounts_in_no_role_group_are_not_stored_only_counted_in_the_report() {
    let db = test_db().await;
    let clock = clock();
    let (_, gys) = two_iservs(&db.pool).await;
    let report = sync_iserv(&db.pool, &clock, &gys, School::Gym, json!({})).await;
    assert_eq!(report.counts.fetched, 4, "{report:?}");
    let summary = &report.warnings[0];
    assert_eq!(
        summary,
        "5 accounts in no role group are no persons and were not stored: 1 parent, 1 guest, \
         1 exam, 1 projector, 1 mailbox"
    );
    let usernames: Vec<String> =
        sqlx::query_scalar("select username from person order by username")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(usernames, ["anna.schmidt", "carla.neumann", "jonas.weber"]);
    // The report names nobody, and the run as recorded says the same.
    for name in [
        "emine", "yilmaz", "gast.01", "beamer", "postfach", "pruefung",
    ] {
        assert!(
            report
                .warnings
                .iter()
                .all(|warning| !warning.contains(name)),
            "{name} in {:?}",
            report.warnings
        );
    }
    let recorded: serde_json::Value =
        sqlx::query_scalar("select warnings from sync_run where sync_run_id = $1")
            .bind(report.run_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(recorded[0], summary.as_str());
}

#[tokio::test]
async fn a_pupil_moved_to_the_former_pupils_group_has_left_with_school_and_class_kept() {
    let db = test_db().await;
    let clock = clock();
    let (_, gys) = two_iservs(&db.pool).await;
    // Last school year: frieda.alt in class 9b.
    let last_year = json!({
        "users_base": format!("ou=users-2023,{ISERV_GYM_BASE}"),
        "groups_base": format!("ou=groups-2023,{ISERV_GYM_BASE}"),
    });
    sync_iserv(&db.pool, &clock, &gys, School::Gym, last_year).await;
    let frieda = persons_named(&db.pool, "frieda.alt").await;
    assert_eq!(frieda[0].1, ["100002 student 9b"]);

    // This year IServ's import has moved her into `Ehemalige 2024`.
    clock.advance(chrono::Duration::days(60));
    let moved_at = clock.now_value();
    let report = sync_iserv(&db.pool, &clock, &gys, School::Gym, json!({})).await;
    assert_eq!(report.counts.marked_missing, 1, "{report:?}");
    let left_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select left_at from person where username = 'frieda.alt'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(left_at, Some(moved_at));
    let frieda_now = persons_named(&db.pool, "frieda.alt").await;
    assert_eq!(frieda_now.len(), 1);
    assert_eq!(frieda_now[0].0, frieda[0].0);
    assert_eq!(
        frieda_now[0].1,
        ["100002 student 9b"],
        "last school and class kept"
    );

    // The next read changes nothing: she stays left, with her class.
    clock.advance(chrono::Duration::days(1));
    let again = sync_iserv(&db.pool, &clock, &gys, School::Gym, json!({})).await;
    assert_eq!(
        (
            again.counts.updated,
            again.counts.marked_missing,
            again.counts.reappeared
        ),
        (0, 0, 0),
        "{again:?}"
    );
    let still: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select left_at from person where username = 'frieda.alt'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(still, Some(moved_at));
    assert_eq!(
        persons_named(&db.pool, "frieda.alt").await[0].1,
        ["100002 student 9b"]
    );
}
