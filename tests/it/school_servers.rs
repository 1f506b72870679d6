//! A UCS@school source end to end against the real slapd: the directory read and the school
//! computers through both engines, computers matched to MDM devices by MAC or inventory number,
//! and an MDM user hint resolved to a UCS@school pupil; the computers placed at the schools
//! their OUs resolve to, as persons are; and what `sync runs`, `sync status` and `devices list`
//! show of such a source.

use std::path::Path;
use std::sync::Arc;

use bestand_app::config::Config;
use bestand_app::database::apply_config_directory;
use bestand_app::sources::sync_source;
use bestand_cli::commands::devices::{export_rows, DeviceExport};
use bestand_cli::output::Row;
use bestand_connectors::ucs_ldap::{UcsLdap, UcsLdapConfig};
use bestand_connectors::{spawn_directory_fetch, spawn_fetch, Connector, DirectoryConnector};
use bestand_core::access::Scope;
use bestand_core::model::SyncStatus;
use bestand_core::store::devices::{self, DeviceSummary};
use bestand_core::store::runs::{self, RunView, SourceStatus};
use bestand_core::sync::{self, DirectorySyncOptions, NoProgress, SyncOptions};
use serde_json::json;

use crate::slapd::{slapd, UCS_BASE, UCS_BIND_DN, UCS_PASSWORD};
use crate::support::{clock, ipad, musterstadt, options, sync_records, sync_records_with, test_db};

fn ucs_connector() -> Arc<UcsLdap> {
    let server = slapd();
    let config: UcsLdapConfig = serde_json::from_value(json!({
        "url": server.ldap_url,
        "bind_dn": UCS_BIND_DN,
        "bind_password_file": server.secret_file("ucs-school-servers", UCS_PASSWORD),
        "base_dn": UCS_BASE,
        "timeout_secs": 20,
    }))
    .unwrap();
    Arc::new(UcsLdap::new(config, "ucs").unwrap())
}

#[tokio::test]
async fn ucs_computers_join_mdm_devices_and_pupils_get_their_devices() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let ucs = crate::support::directory_source(&db.pool, "ucs").await;

    // The Windows PC of room 104 is known to Intune-like MDM data by its MAC; the Ubuntu box
    // only by the inventory number on its sticker.
    let mut by_mac = ipad("computer:1", "PC0001");
    by_mac.wifi_mac = Some("3C-22-FB-00-11-22".into());
    by_mac.user.username = Some("anna.schmidt".into());
    let mut by_tag = ipad("computer:2", "PC0002");
    by_tag.asset_tag = Some("INV-2023-0001".into());
    by_tag.wifi_mac = Some("00:11:22:33:44:55".into());
    let report = sync_records(&db.pool, &clock, &jamf, vec![by_mac, by_tag]).await;
    assert_eq!(report.counts.created, 2);

    let connector = ucs_connector();
    let directory: Arc<dyn DirectoryConnector> = connector.clone();
    let read = sync::run_directory_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &ucs,
        spawn_directory_fetch(directory),
        &DirectorySyncOptions {
            school_map: [("GSL", "100001"), ("GYM", "100002")]
                .into_iter()
                .map(|(key, number)| (key.to_string(), number.to_string()))
                .collect(),
            ..DirectorySyncOptions::default()
        },
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(read.status, SyncStatus::Succeeded, "{read:?}");
    assert!(read.counts.created >= 10, "{read:?}");

    let devices: Arc<dyn Connector> = connector;
    let report = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &ucs,
        spawn_fetch(devices),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Succeeded, "{report:?}");
    assert_eq!(
        (
            report.counts.fetched,
            report.counts.created,
            report.counts.updated
        ),
        (3, 1, 2),
        "two computers joined MDM devices, the Mac is new: {report:?}"
    );

    let joined: Vec<(String, String)> = sqlx::query_as(
        "select d.serial_number, string_agg(s.name, ',' order by s.name) from device d \
         join source_link l using (device_id) join source s using (source_id) \
         where d.serial_number is not null group by d.serial_number order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        joined,
        vec![
            ("PC0001".to_string(), "jamf,ucs".to_string()),
            ("PC0002".to_string(), "jamf,ucs".to_string())
        ]
    );
    let names: Vec<String> = sqlx::query_scalar(
        "select d.name from device d where d.serial_number in ('PC0001', 'PC0002') order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(names.len(), 2);

    let assigned: (String, String, Option<String>) = sqlx::query_as(
        "select d.serial_number, a.status, m.class_name from device_assignment a \
         join device d using (device_id) join person p using (person_id) \
         left join person_membership m on m.person_id = p.person_id \
         where p.username = 'anna.schmidt'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(assigned.0, "PC0001");
    assert_eq!(assigned.1, "matched");
}

/// A configuration with one UCS@school source against the test slapd. GSL's school number
/// comes from the number attribute (123456, and the configured name is not the directory's
/// display name); GYM's number in the directory (654321) is no configured school, so only
/// `school_map_line` puts GYM anywhere.
fn ucs_config(db_url: &str, school_map_line: &str) -> String {
    let server = slapd();
    let password = server.secret_file("ucs-one-resolution", UCS_PASSWORD);
    format!(
        r#"[database]
url = "{db_url}"

[[authority]]
slug = "musterstadt"
name = "Stadt Musterstadt"

[[authority.school]]
number = "123456"
name = "GS am Lindenweg"
type = "grundschule"

[[authority.school]]
number = "100002"
name = "Gymnasium am Stadtpark"
type = "gymnasium"

[[source]]
name = "ucs"
kind = "ucs_ldap"
authority = "musterstadt"
{school_map_line}
url = "{url}"
bind_dn = "{UCS_BIND_DN}"
bind_password_file = "{password}"
base_dn = "{UCS_BASE}"
school_number_attribute = "univentionFreeAttribute1"
timeout_secs = 20
"#,
        url = server.ldap_url,
        password = password.display(),
    )
}

fn parse_config(text: &str) -> Config {
    Config::parse(text, Path::new("ucs-one-resolution.toml")).unwrap()
}

#[tokio::test]
async fn computers_land_at_the_schools_their_ou_resolves_to_as_for_persons() {
    let db = test_db().await;
    let reports = sync_ucs(&db).await;
    let kinds: Vec<&str> = reports.iter().map(|report| report.kind).collect();
    assert_eq!(kinds, ["directory", "devices"]);
    for report in &reports {
        assert_eq!(report.status, SyncStatus::Succeeded, "{report:?}");
    }

    let computers = computer_schools(&db.pool).await;
    let at = |number: &str| Some(number.to_string());
    assert_eq!(
        computers,
        vec![
            ("gsl-pc-r104-07".to_string(), at("123456")),
            ("gsl-ubuntu-01".to_string(), at("123456")),
            ("gym-mac-01".to_string(), at("100002")),
        ],
        "every computer is at the school its OU stands for"
    );
    // The persons of the same OUs are at the same schools.
    let members: Vec<(String, i64)> = sqlx::query_as(
        "select s.school_number, count(distinct m.person_id) from person_membership m \
         join school s using (school_id) group by 1 order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let numbers: Vec<&str> = members.iter().map(|(number, _)| number.as_str()).collect();
    assert_eq!(numbers, ["100002", "123456"], "{members:?}");

    // RS (no number, a display name no school has) matches nothing: the warning says how to
    // map it, and its advice, followed, is a configuration that parses and maps RS.
    let directory = &reports[0];
    let warning = directory
        .warnings
        .iter()
        .find(|warning| warning.contains("'RS'"))
        .unwrap_or_else(|| panic!("no warning for RS: {:?}", directory.warnings));
    assert!(!warning.contains("`schools` table"), "{warning}");
    let advice = warning
        .split('`')
        .find(|part| part.starts_with("school_map = "))
        .unwrap_or_else(|| panic!("no school_map example in: {warning}"));
    let followed = advice.replace("<school number>", "100002");
    let fixed = parse_config(&ucs_config(&db.url, &followed));
    assert_eq!(
        fixed.source("ucs").unwrap().common.school_map.get("RS"),
        Some(&"100002".to_string()),
        "{followed}"
    );
}

#[tokio::test]
async fn a_device_school_hint_that_matches_nothing_is_reported_with_the_school_map_advice() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let at_the_lake = |id: &str, serial: &str| {
        let mut record = ipad(id, serial);
        record.location.school = Some("Schule am See".into());
        record
    };
    let report = sync_records(
        &db.pool,
        &clock,
        &jamf,
        vec![at_the_lake("mobile:1", "SER00001")],
    )
    .await;
    let warning = report
        .warnings
        .iter()
        .find(|warning| warning.contains("Schule am See"))
        .unwrap_or_else(|| panic!("no warning: {:?}", report.warnings));
    assert!(
        warning.contains(r#"`school_map = { "Schule am See" = "<school number>" }`"#)
            && warning.contains("'jamf'"),
        "{warning}"
    );

    // A device source's `school_map` places its records as it places a directory's.
    let options = SyncOptions {
        school_map: [("schule am see".to_string(), "100002".to_string())].into(),
        ..SyncOptions::default()
    };
    let records = vec![
        at_the_lake("mobile:1", "SER00001"),
        at_the_lake("mobile:2", "SER00002"),
    ];
    let mapped = sync_records_with(&db.pool, &clock, &jamf, records, &options).await;
    assert_eq!(mapped.status, SyncStatus::Succeeded, "{mapped:?}");
    let school: Option<String> = sqlx::query_scalar(
        "select s.school_number from device d left join school s using (school_id) \
         where d.serial_number = 'SER00002'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(school.as_deref(), Some("100002"));
}

/// Syncs the UCS@school source of `ucs_config` once, as `bestand sync` does.
async fn sync_ucs(db: &crate::support::TestDb) -> Vec<sync::SyncReport> {
    let config = parse_config(&ucs_config(&db.url, r#"school_map = { GYM = "100002" }"#));
    let source_ref = apply_config_directory(&db.pool, &config)
        .await
        .unwrap()
        .remove(0);
    let source = config.source("ucs").unwrap();
    let reports = sync_source(
        &db.pool,
        &Scope::All,
        &config,
        source,
        &source_ref,
        false,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(reports.len(), 2);
    reports.into_iter().map(|(report, _)| report).collect()
}

/// Each computer's name and school number.
async fn computer_schools(pool: &sqlx::PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "select d.name, s.school_number from device d left join school s using (school_id) \
         order by d.name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migration_12_has_the_next_run_place_computers_an_older_version_left_at_no_school() {
    let db = test_db().await;
    sync_ucs(&db).await;
    // What older versions left: the computers at no school, under the hashes of their records.
    sqlx::query("update device set school_id = null")
        .execute(&db.pool)
        .await
        .unwrap();
    let migration = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations/20261206000012_ucs_computer_schools.sql");
    sqlx::raw_sql(&std::fs::read_to_string(migration).unwrap())
        .execute(&db.pool)
        .await
        .unwrap();
    let joined: i64 = sqlx::query_scalar(
        "select count(*) from source_link l \
         join source_payload p using (source_id, external_id, content_hash)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(joined, 3, "every link keeps its payload");

    let reports = sync_ucs(&db).await;
    assert_eq!(reports[1].counts.updated, 3, "{:?}", reports[1]);
    let schools: Vec<Option<String>> = computer_schools(&db.pool)
        .await
        .into_iter()
        .map(|(_, school)| school)
        .collect();
    let at = |number: &str| Some(number.to_string());
    assert_eq!(schools, [at("123456"), at("123456"), at("100002")]);
    // A run after that finds nothing to do.
    let reports = sync_ucs(&db).await;
    assert_eq!(reports[1].counts.unchanged, 3, "{:?}", reports[1]);
}

#[tokio::test]
async fn runs_and_status_name_the_person_run_and_the_device_run() {
    let db = test_db().await;
    sync_ucs(&db).await;

    let list = runs::list_runs(&db.pool, &Scope::All, Some("ucs"), 10)
        .await
        .unwrap();
    let kinds: Vec<&str> = list.iter().map(|run| run.run_kind.as_str()).collect();
    assert_eq!(kinds, ["devices", "directory"], "newest first");
    // Table and CSV show the kind next to the source; JSON names it `run_kind`.
    let headers = RunView::headers();
    let column = headers.iter().position(|h| *h == "kind").unwrap();
    assert_eq!(list[0].cells()[column], "devices");
    assert_eq!(list[1].cells()[column], "directory");
    assert_eq!(
        serde_json::to_value(&list[1]).unwrap()["run_kind"],
        "directory"
    );

    let persons: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let status = runs::source_status(&db.pool, &Scope::All, crate::support::t0())
        .await
        .unwrap();
    let lines: Vec<(Option<&str>, i64, i64)> = status
        .iter()
        .map(|line| (line.run_kind.as_deref(), line.reported, line.missing))
        .collect();
    assert_eq!(
        lines,
        [(Some("directory"), persons, 0), (Some("devices"), 3, 0)],
        "one line per run kind, counting persons and devices"
    );
    assert!(status.iter().all(|line| line.last_success_at.is_some()));
    let headers = SourceStatus::headers();
    let column = headers.iter().position(|h| *h == "run kind").unwrap();
    assert_eq!(status[0].cells()[column], "directory");
    assert_eq!(
        serde_json::to_value(&status[1]).unwrap()["run_kind"],
        "devices"
    );
}

#[tokio::test]
async fn the_device_list_carries_mac_and_os_for_scripts() {
    let db = test_db().await;
    sync_ucs(&db).await;
    let filter = devices::DeviceFilter {
        school: Some("123456".into()),
        ..devices::DeviceFilter::default()
    };
    let list = devices::list_devices(&db.pool, &Scope::All, &filter)
        .await
        .unwrap();
    let ubuntu = list
        .iter()
        .find(|device| device.name.as_deref() == Some("gsl-ubuntu-01"))
        .expect("the Ubuntu computer is listed at its school");

    let json = serde_json::to_value(ubuntu).unwrap();
    assert_eq!(json["wifi_mac"], "52:54:00:ab:cd:01", "{json}");
    assert_eq!(json["os_name"], "Ubuntu", "{json}");
    assert_eq!(json["os_version"], "22.04", "{json}");
    assert_eq!(json["authority"], "musterstadt", "{json}");
    for field in [
        "udid",
        "imei",
        "building",
        "purchase_price",
        "first_seen_at",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }

    let headers = DeviceExport::headers();
    let rows = export_rows(&list);
    let row = rows
        .iter()
        .find(|row| row.0.name.as_deref() == Some("gsl-ubuntu-01"))
        .unwrap()
        .cells();
    assert_eq!(headers.len(), row.len());
    let cell = |header: &str| {
        let column = headers.iter().position(|h| *h == header).unwrap();
        row[column].clone()
    };
    assert_eq!(cell("wifi mac"), "52:54:00:ab:cd:01");
    assert_eq!(cell("os name"), "Ubuntu");
    assert_eq!(cell("os"), "22.04");
    assert_eq!(cell("school"), "123456");
    // The table's columns come first, in the table's order, so older scripts read on.
    assert_eq!(
        headers[..DeviceSummary::headers().len()],
        DeviceSummary::headers()[..]
    );
}
