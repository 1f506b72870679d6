//! A UCS@school source end to end against the real slapd: the directory read and the school
//! computers through both engines, computers matched to MDM devices by MAC or inventory number,
//! and an MDM user hint resolved to a UCS@school pupil.

use std::sync::Arc;

use bestand_connectors::ucs_ldap::{UcsLdap, UcsLdapConfig};
use bestand_connectors::{spawn_directory_fetch, spawn_fetch, Connector, DirectoryConnector};
use bestand_core::model::SyncStatus;
use bestand_core::sync::{self, DirectorySyncOptions};
use serde_json::json;

use crate::slapd::{slapd, UCS_BASE, UCS_BIND_DN, UCS_PASSWORD};
use crate::support::{clock, ipad, musterstadt, options, sync_records, test_db};

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
