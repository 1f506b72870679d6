//! The IServ LDAP connector against a real slapd (tests/it/slapd.rs) loaded with
//! tests/fixtures/ldap/iserv.ldif: roles and classes from `memberOf` and `memberUid`, a user in
//! no role group, paging, escaped group names, bad passwords and TLS (vendor-apis.md §6.3).

use std::sync::Arc;

use crate::slapd::{
    read_directory, slapd, DirectoryRead, ISERV_BASE, ISERV_BIND_DN, ISERV_PASSWORD,
};
use bestand_connectors::iserv_ldap::{IservLdap, IservLdapConfig};
use bestand_core::model::PersonRole;
use bestand_core::person::{DirectorySchool, Membership};
use serde_json::{json, Value};

fn config(test: &str, extra: Value) -> IservLdapConfig {
    let server = slapd();
    let mut value = json!({
        "url": server.ldap_url,
        "bind_dn": ISERV_BIND_DN,
        "bind_password_file": server.secret_file(&format!("iserv-{test}"), ISERV_PASSWORD),
        "base_dn": ISERV_BASE,
        "school": "GSL",
        "school_name": "Grundschule Lindenweg",
        "timeout_secs": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

async fn read(test: &str, extra: Value) -> DirectoryRead {
    let connector = IservLdap::new(config(test, extra), "iserv-test").expect("connector");
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
    assert_eq!(read.end, Ok(6), "{:?}", read.end);
    assert_eq!(
        read.schools,
        [DirectorySchool {
            key: "GSL".into(),
            display_name: Some("Grundschule Lindenweg".into()),
            school_number: None,
        }]
    );
    // iserv-system is no memberOfGroup entry, so the default users filter leaves it out.
    assert_eq!(
        read.usernames(),
        [
            "anna.schmidt",
            "ben.mueller",
            "carla.neumann",
            "dieter.vogel",
            "emma.krause",
            "otto.brandt"
        ]
    );
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
async fn a_user_in_no_role_group_is_kept_with_a_problem() {
    let read = read("no-role", json!({})).await;
    let otto = read.person("otto.brandt");
    assert!(otto.memberships.is_empty());
    assert_eq!(otto.problems.len(), 1, "{:?}", otto.problems);
    assert_eq!(
        otto.problems[0],
        "in no role group (admins, lehrer, schueler, verwaltung); no membership"
    );
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
        }),
    )
    .await;
    assert_eq!(read.end, Ok(6), "{:?}", read.end);
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
    // lehrer is no role group in this config.
    assert!(read.person("carla.neumann").memberships.is_empty());
}

#[tokio::test]
async fn small_pages_return_everyone() {
    let read = read("paging", json!({ "page_size": 2 })).await;
    assert_eq!(read.end, Ok(6), "{:?}", read.end);
    let labels: Vec<&str> = read.pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        ["GSL users page 1", "GSL users page 2", "GSL users page 3"]
    );
    assert_eq!(read.usernames().len(), 6);
}

#[tokio::test]
async fn a_custom_users_filter_is_used_as_given() {
    let dotted = read(
        "filter",
        json!({ "users_filter": "(&(objectClass=uuidObject)(uid=*.*))" }),
    )
    .await;
    assert_eq!(dotted.end, Ok(6), "{:?}", dotted.end);
    let all = read(
        "filter-all",
        json!({ "users_filter": "(objectClass=uuidObject)" }),
    )
    .await;
    assert_eq!(all.end, Ok(7), "{:?}", all.end);
    let system = all.person("iserv-system");
    assert!(system.memberships.is_empty());
    assert_eq!(system.problems.len(), 1, "{:?}", system.problems);
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
    assert_eq!(read.end, Ok(6), "{:?}", read.end);
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
