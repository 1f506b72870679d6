//! The UCS@school LDAP connector against a real slapd (tests/it/slapd.rs) loaded with
//! tests/fixtures/ldap/ucs.ldif and edge.ldif: schools, every role, a teacher at two schools,
//! classes, exam users, paging, escaping, referrals, size limits, TLS, bad passwords, and
//! computers as devices (docs/vendors/ucs-kelvin-ldap.md).

use std::sync::Arc;

use crate::slapd::{
    read_directory, slapd, DirectoryRead, EDGE_BASE, EDGE_BIND_DN, EDGE_LIMITED_BIND_DN,
    EDGE_PAGED_BIND_DN, EDGE_PASSWORD, UCS_BASE, UCS_BIND_DN, UCS_PASSWORD,
};
use crate::support::{collect, complete, failed, records};
use bestand_connectors::ucs_ldap::{UcsLdap, UcsLdapConfig};
use bestand_core::model::{DeviceCategory, PersonRole};
use bestand_core::person::{DirectorySchool, Membership};
use serde_json::{json, Value};

/// A config for the UCS tree over plain LDAP; `extra` overrides keys.
fn config(test: &str, extra: Value) -> UcsLdapConfig {
    let server = slapd();
    let mut value = json!({
        "url": server.ldap_url,
        "bind_dn": UCS_BIND_DN,
        "bind_password_file": server.secret_file(&format!("ucs-{test}"), UCS_PASSWORD),
        "base_dn": UCS_BASE,
        "school_number_attribute": "univentionFreeAttribute1",
        "timeout_secs": 20,
    });
    let object = value.as_object_mut().expect("config is an object");
    for (key, entry) in extra.as_object().expect("extra is an object") {
        object.insert(key.clone(), entry.clone());
    }
    serde_json::from_value(value).expect("valid test config")
}

fn connector(test: &str, extra: Value) -> UcsLdap {
    UcsLdap::new(config(test, extra), "ucs-test").expect("connector")
}

async fn read(test: &str, extra: Value) -> DirectoryRead {
    read_directory(Arc::new(connector(test, extra))).await
}

fn membership(school: &str, role: PersonRole, class: Option<&str>) -> Membership {
    Membership {
        school: school.to_string(),
        role,
        class: class.map(str::to_string),
    }
}

/// Every school user of ucs.ldif; not the exam account, the bind account or the domain admin.
const SCHOOL_USERS: &[&str] = &[
    "anna.schmidt",
    "ben.mueller",
    "clara.wagner",
    "emil.becker",
    "felix.weber",
    "greta.fischer",
    "hanna.schulz",
    "ida.wolf",
    "lukas.meyer",
    "maria.hoffmann",
    "peter.lang",
    "sabine.koch",
    "thomas.klein",
];

#[tokio::test]
async fn reads_schools_persons_roles_and_classes() {
    let read = read("full", json!({})).await;
    assert_eq!(read.end, Ok(13), "{:?}", read.end);
    assert_eq!(
        read.schools,
        vec![
            DirectorySchool {
                key: "GSL".into(),
                display_name: Some("Grundschule Lindenweg".into()),
                school_number: Some("123456".into()),
            },
            DirectorySchool {
                key: "GYM".into(),
                display_name: Some("Gymnasium am Park".into()),
                school_number: Some("654321".into()),
            },
            DirectorySchool {
                key: "RS".into(),
                display_name: Some("Realschule Nord".into()),
                school_number: None,
            },
        ]
    );
    assert_eq!(read.usernames(), SCHOOL_USERS);
    let labels: Vec<&str> = read.pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "ou=GSL users page 1",
            "ou=GYM users page 1",
            "ou=RS users page 1"
        ]
    );

    let anna = read.person("anna.schmidt");
    assert_eq!(
        anna.external_id.len(),
        36,
        "entryUUID: {}",
        anna.external_id
    );
    assert_eq!(anna.ids.directory_uuid.as_ref(), Some(&anna.external_id));
    assert_eq!(anna.ids.record_uid.as_deref(), Some("SVW-1001"));
    assert_eq!(anna.ids.source_uid.as_deref(), Some("Musterstadt-SVW"));
    assert_eq!(anna.given_name.as_deref(), Some("Anna"));
    assert_eq!(anna.family_name.as_deref(), Some("Schmidt"));
    assert_eq!(
        anna.email.as_deref(),
        Some("anna.schmidt@gsl.musterstadt.example")
    );
    assert_eq!(
        anna.memberships,
        [membership("GSL", PersonRole::Student, Some("1a"))]
    );
    assert!(anna.problems.is_empty(), "{:?}", anna.problems);

    // Class by memberUid only; a UTF-8 family name from a base64 LDIF value.
    let ben = read.person("ben.mueller");
    assert_eq!(ben.family_name.as_deref(), Some("Müller"));
    assert_eq!(ben.email, None);
    assert_eq!(
        ben.memberships,
        [membership("GSL", PersonRole::Student, Some("1a"))]
    );
    assert_eq!(
        read.person("clara.wagner").memberships,
        [membership("GSL", PersonRole::Student, Some("2b"))]
    );
    // No class group, no role strings: the role comes from the object class.
    assert_eq!(
        read.person("emil.becker").memberships,
        [membership("GSL", PersonRole::Student, None)]
    );
    assert_eq!(
        read.person("hanna.schulz").memberships,
        [membership("GYM", PersonRole::Student, Some("6b"))]
    );
    assert_eq!(
        read.person("ida.wolf").memberships,
        [membership("RS", PersonRole::Student, Some("7c"))]
    );

    // A teacher at two schools appears once, with both memberships, and no class although
    // the class groups list them.
    let thomas: Vec<_> = read
        .persons()
        .into_iter()
        .filter(|person| person.username.as_deref() == Some("thomas.klein"))
        .collect();
    assert_eq!(thomas.len(), 1);
    assert_eq!(
        thomas[0].memberships,
        [
            membership("GSL", PersonRole::Teacher, None),
            membership("GYM", PersonRole::Teacher, None),
        ]
    );
    assert_eq!(
        read.person("maria.hoffmann").memberships,
        [
            membership("GSL", PersonRole::Teacher, None),
            membership("GSL", PersonRole::Staff, None),
        ]
    );
    assert_eq!(
        read.person("sabine.koch").memberships,
        [membership("GSL", PersonRole::Staff, None)]
    );
    assert_eq!(
        read.person("peter.lang").memberships,
        [membership("GSL", PersonRole::SchoolAdmin, None)]
    );
    assert_eq!(
        read.person("lukas.meyer").memberships,
        [membership("GYM", PersonRole::Teacher, None)]
    );
    for person in read.persons() {
        assert!(person.problems.is_empty(), "{person:?}");
    }
}

#[tokio::test]
async fn never_reads_birthdays_or_other_personal_attributes() {
    let read = read("privacy", json!({})).await;
    assert_eq!(read.end, Ok(13));
    let json = serde_json::to_string(&read.persons()).unwrap();
    for absent in [
        "2015-03-14",
        "1980-01-31",
        "Birthday",
        "birthday",
        "+49 30",
        "telephone",
        "exam-anna",
        "domain.admin",
    ] {
        assert!(!json.contains(absent), "`{absent}` leaked into {json}");
    }
}

#[tokio::test]
async fn pages_smaller_than_the_result_still_return_everyone() {
    let read = read("paging", json!({ "page_size": 2 })).await;
    assert_eq!(read.end, Ok(13), "{:?}", read.end);
    assert_eq!(read.usernames(), SCHOOL_USERS);
    assert!(read.pages.iter().all(|page| page.records.len() <= 2));
    let labels: Vec<&str> = read.pages.iter().map(|page| page.label.as_str()).collect();
    // GSL has 8 users, GYM 4 new ones (its teacher from GSL is not sent twice), RS 1.
    assert_eq!(
        labels,
        [
            "ou=GSL users page 1",
            "ou=GSL users page 2",
            "ou=GSL users page 3",
            "ou=GSL users page 4",
            "ou=GYM users page 1",
            "ou=GYM users page 2",
            "ou=RS users page 1",
        ]
    );
}

/// An edge-tree config: `ou=GS*` and `ou=GS1` (four pupils), a referral for `ou=GS2`.
fn edge(test: &str, bind_dn: &str, extra: Value) -> Value {
    let server = slapd();
    let mut value = json!({
        "url": server.ldap_url,
        "bind_dn": bind_dn,
        "bind_password_file": server.secret_file(&format!("edge-{test}"), EDGE_PASSWORD),
        "base_dn": EDGE_BASE,
    });
    let object = value.as_object_mut().expect("object");
    for (key, entry) in extra.as_object().expect("object") {
        object.insert(key.clone(), entry.clone());
    }
    value
}

#[tokio::test]
async fn the_paged_results_control_is_what_lets_a_limited_account_read_everything() {
    // The account may see two entries per unpaged search; GS1 has four pupils.
    let read = read_directory(Arc::new(
        UcsLdap::new(
            serde_json::from_value(edge("paged", EDGE_PAGED_BIND_DN, json!({ "page_size": 2 })))
                .unwrap(),
            "edge",
        )
        .unwrap(),
    ))
    .await;
    assert_eq!(read.end, Ok(5), "{:?}", read.end);
    assert_eq!(
        read.usernames(),
        [
            "eins.drei",
            "eins.kind",
            "eins.vier",
            "eins.zwei",
            "stern.kind"
        ]
    );
}

#[tokio::test]
async fn configured_school_names_are_escaped_in_filters() {
    // Unescaped, `(ou=GS*)` and `(ucsschoolSchool=GS*)` would match GS1 and its pupils too.
    let config = edge("escape", EDGE_BIND_DN, json!({ "schools": ["GS*"] }));
    let read = read_directory(Arc::new(
        UcsLdap::new(serde_json::from_value(config).unwrap(), "edge").unwrap(),
    ))
    .await;
    assert_eq!(read.end, Ok(1), "{:?}", read.end);
    let keys: Vec<&str> = read.schools.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["GS*"]);
    assert_eq!(read.usernames(), ["stern.kind"]);
    assert_eq!(
        read.person("stern.kind").memberships,
        [membership("GS*", PersonRole::Student, None)]
    );
    assert_eq!(read.pages[0].label, "ou=GS* users page 1");

    // A listed school that does not exist fails the read instead of reading nothing.
    let config = edge(
        "missing",
        EDGE_BIND_DN,
        json!({ "schools": ["GS*", "GS9)(ou=*"] }),
    );
    let read = read_directory(Arc::new(
        UcsLdap::new(serde_json::from_value(config).unwrap(), "edge").unwrap(),
    ))
    .await;
    let failure = read.failure();
    assert_eq!(failure.page.as_deref(), Some("schools"));
    assert!(failure.cause.contains("`GS9)(ou=*`"), "{failure}");
}

#[tokio::test]
async fn referrals_are_skipped_not_followed() {
    // ou=GS2 is a referral to ldap://replica.invalid; the read completes without it.
    let config = edge("referral", EDGE_BIND_DN, json!({}));
    let read = read_directory(Arc::new(
        UcsLdap::new(serde_json::from_value(config).unwrap(), "edge").unwrap(),
    ))
    .await;
    assert_eq!(read.end, Ok(5), "{:?}", read.end);
    let keys: Vec<&str> = read.schools.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["GS*", "GS1"]);
}

#[tokio::test]
async fn a_size_limit_fails_the_read_with_a_clear_error() {
    let config = edge("limit", EDGE_LIMITED_BIND_DN, json!({ "page_size": 10 }));
    let read = read_directory(Arc::new(
        UcsLdap::new(serde_json::from_value(config).unwrap(), "edge").unwrap(),
    ))
    .await;
    let failure = read.failure();
    assert_eq!(failure.page.as_deref(), Some("ou=GS1 users page 1"));
    let server = &slapd().ldap_url;
    for expected in [
        server.as_str(),
        "size limit",
        "LDAP result 4",
        "below `dc=edge,dc=test`",
        "(ucsschoolSchool=GS1)",
        "`page_size`",
    ] {
        assert!(failure.cause.contains(expected), "{expected}: {failure}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let server = slapd();
    let wrong = "Falsches-Passwort-4711";
    let read = read(
        "wrong-password",
        json!({ "bind_password_file": server.secret_file("ucs-wrong", wrong) }),
    )
    .await;
    let failure = read.failure();
    assert_eq!(failure.page, None);
    assert!(failure.cause.contains(&server.ldap_url), "{failure}");
    assert!(failure.cause.contains(UCS_BIND_DN), "{failure}");
    assert!(failure.cause.contains("invalid credentials"), "{failure}");
    assert!(!failure.cause.contains(wrong), "{failure}");
    assert!(read.schools.is_empty() && read.pages.is_empty());

    let connector = connector("debug", json!({}));
    let debug = format!("{connector:?}");
    assert!(!debug.contains(UCS_PASSWORD), "{debug}");
}

#[tokio::test]
async fn ldaps_with_the_right_ca_works_and_a_wrong_ca_is_refused() {
    let server = slapd();
    let read_over_ldaps = read(
        "ldaps",
        json!({ "url": server.ldaps_url, "ca_file": server.ca_file }),
    )
    .await;
    assert_eq!(read_over_ldaps.end, Ok(13), "{:?}", read_over_ldaps.end);

    let wrong_ca = read(
        "ldaps-wrong-ca",
        json!({ "url": server.ldaps_url, "ca_file": server.other_ca_file }),
    )
    .await;
    let failure = wrong_ca.failure();
    assert!(failure.cause.contains(&server.ldaps_url), "{failure}");
    assert!(failure.cause.contains("TLS"), "{failure}");
    assert!(
        failure.cause.contains("not signed by a trusted CA"),
        "{failure}"
    );
    assert!(failure.cause.contains("`ca_file`"), "{failure}");
    assert!(wrong_ca.pages.is_empty());
}

#[tokio::test]
async fn starttls_upgrades_a_plain_connection() {
    let server = slapd();
    let upgraded = read(
        "starttls",
        json!({ "starttls": true, "ca_file": server.ca_file }),
    )
    .await;
    assert_eq!(upgraded.end, Ok(13), "{:?}", upgraded.end);
    let wrong_ca = read(
        "starttls-wrong-ca",
        json!({ "starttls": true, "ca_file": server.other_ca_file }),
    )
    .await;
    assert!(
        wrong_ca.failure().cause.contains("TLS"),
        "{:?}",
        wrong_ca.end
    );
}

#[tokio::test]
async fn school_computers_become_devices() {
    let (pages, end) = collect(connector("devices", json!({}))).await;
    assert_eq!(complete(end), 3);
    let labels: Vec<&str> = pages.iter().map(|page| page.label.as_str()).collect();
    assert_eq!(
        labels,
        ["ou=GSL computers page 1", "ou=GYM computers page 1"]
    );
    let devices = records(&pages);
    let by_name = |name: &str| {
        devices
            .iter()
            .find(|device| device.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no device {name}"))
    };
    // The school server is no ucsschoolComputer.
    assert!(devices
        .iter()
        .all(|d| d.name.as_deref() != Some("gsl-dc01")));

    let windows = by_name("gsl-pc-r104-07");
    assert_eq!(windows.external_id.len(), 36);
    assert_eq!(windows.category, DeviceCategory::Desktop);
    assert_eq!(windows.wifi_mac.as_deref(), Some("3c:22:fb:00:11:22"));
    assert_eq!(windows.asset_tag.as_deref(), Some("INV-2021-0507"));
    assert_eq!(windows.os_name.as_deref(), Some("Windows"));
    assert_eq!(windows.location.school.as_deref(), Some("GSL"));
    assert_eq!(windows.serial_number, None);
    let payload: Value = serde_json::from_str(&windows.payload).unwrap();
    assert_eq!(payload["aRecord"], json!(["10.31.4.107"]));
    assert_eq!(
        payload["univentionInventoryNumber"],
        json!(["INV-2021-0507, INV-ALT-0099"])
    );
    assert_eq!(payload["entryUUID"], json!([windows.external_id]));

    let ubuntu = by_name("gsl-ubuntu-01");
    assert_eq!(ubuntu.wifi_mac.as_deref(), Some("52:54:00:AB:CD:01"));
    assert_eq!(ubuntu.asset_tag.as_deref(), Some("INV-2023-0001"));
    assert_eq!(ubuntu.os_name.as_deref(), Some("Ubuntu"));
    assert_eq!(ubuntu.os_version.as_deref(), Some("22.04"));

    let mac = by_name("gym-mac-01");
    assert_eq!(mac.os_name.as_deref(), Some("macOS"));
    assert_eq!(mac.asset_tag, None);
    assert_eq!(mac.location.school.as_deref(), Some("GYM"));

    // One device per page, the same three arrive.
    let (pages, end) = collect(connector("devices-paged", json!({ "page_size": 1 }))).await;
    assert_eq!(complete(end), 3);
    assert_eq!(pages.len(), 3);
}

#[tokio::test]
async fn an_unreachable_server_fails_with_its_address() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("ldap://127.0.0.1:{port}");
    let (pages, end) = collect(connector("unreachable", json!({ "url": url }))).await;
    assert!(pages.is_empty());
    let failure = failed(end);
    assert!(
        failure.cause.contains(&format!("cannot connect to {url}")),
        "{failure}"
    );
}
