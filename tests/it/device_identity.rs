//! Two devices must never become one: a serial number outranks every other hardware id, MAC
//! addresses that identify no one never match, a linked device's serial never changes silently,
//! and devices an earlier version merged can be found and split again.

use std::sync::Arc;

use bestand_connectors::file::{FileConfig, FileSource};
use bestand_connectors::spawn_fetch;
use bestand_core::access::{Actor, Scope};
use bestand_core::identity::IDENTIFIER_SHARED;
use bestand_core::model::SyncStatus;
use bestand_core::record::DeviceRecord;
use bestand_core::store::{devices, review};
use bestand_core::sync;
use bestand_core::FixedClock;
use chrono::Duration;
use uuid::Uuid;

use crate::support::*;

/// A MacBook as Jamf Pro reports it.
fn macbook(external_id: &str, serial: &str, mac: &str) -> DeviceRecord {
    let mut record = ipad(external_id, serial);
    record.category = bestand_core::model::DeviceCategory::Laptop;
    record.model = Some("MacBook Air (M2)".into());
    record.udid = None;
    record.wifi_mac = Some(mac.into());
    record
}

/// An iPad as Jamf School reports it.
fn school_ipad(external_id: &str, serial: &str, mac: &str) -> DeviceRecord {
    let mut record = ipad(external_id, serial);
    record.udid = None;
    record.wifi_mac = Some(mac.into());
    record
}

async fn open_items(pool: &sqlx::PgPool, kind: &str) -> Vec<review::ReviewView> {
    review::list_review(pool, &Scope::All, Some("open"))
        .await
        .unwrap()
        .into_iter()
        .filter(|item| item.kind == kind)
        .collect()
}

async fn device_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from device")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn devices_of_two_sources_sharing_macs_with_different_serials_never_merge() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "jamf_school"]).await;
    let macs: Vec<String> = (0..3).map(|i| format!("a4:83:e7:00:10:0{i}")).collect();
    let macbooks: Vec<DeviceRecord> = (0..3)
        .map(|i| macbook(&format!("computer:{i}"), &format!("CMP{i:04}"), &macs[i]))
        .collect();
    let ipads: Vec<DeviceRecord> = (0..3)
        .map(|i| school_ipad(&format!("js:{i}"), &format!("JS{i:04}"), &macs[i]))
        .collect();
    sync_records(&db.pool, &clock, &sources[0], macbooks.clone()).await;

    let report = sync_records(&db.pool, &clock, &sources[1], ipads.clone()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.review_items
        ),
        (3, 0, 3),
        "every iPad is a device of its own, one item per shared MAC"
    );
    assert_eq!(device_count(&db.pool).await, 6);
    for i in 0..3 {
        let mac = devices::show_device(&db.pool, &Scope::All, &format!("CMP{i:04}"))
            .await
            .unwrap();
        assert_eq!(mac.device.serial_number, Some(format!("CMP{i:04}")));
        assert_eq!(mac.device.model.as_deref(), Some("MacBook Air (M2)"));
        assert_eq!(mac.links.len(), 1, "the MacBook keeps only its own record");
    }
    let mut shared: Vec<(Option<String>, Vec<String>)> = open_items(&db.pool, IDENTIFIER_SHARED)
        .await
        .into_iter()
        .map(|item| {
            let mut labels = item.candidate_labels;
            labels.sort();
            (item.external_id, labels)
        })
        .collect();
    shared.sort();
    assert_eq!(
        shared,
        (0..3)
            .map(|i| (
                Some(format!("mac:{}", macs[i])),
                vec![format!("CMP{i:04}"), format!("JS{i:04}")]
            ))
            .collect::<Vec<_>>(),
        "each item names the shared MAC and every device carrying it"
    );
    let no_other_items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(no_other_items.len(), 3, "{no_other_items:?}");

    // Both sources again: nothing merges, no item is added or duplicated.
    clock.advance(Duration::hours(1));
    for (source, records) in [(&sources[0], macbooks), (&sources[1], ipads)] {
        let again = sync_records(&db.pool, &clock, source, records).await;
        assert_eq!((again.counts.unchanged, again.counts.created), (3, 0));
    }
    assert_eq!(open_items(&db.pool, IDENTIFIER_SHARED).await.len(), 3);
    assert_eq!(device_count(&db.pool).await, 6);
}

#[tokio::test]
async fn one_item_per_docking_station_mac_however_many_laptops_carry_it() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["inventar"]).await[0];
    let dock = "00:e0:4c:68:00:01";
    let laptops: Vec<DeviceRecord> = (0..5)
        .map(|i| macbook(&format!("row:{i}"), &format!("5CG{i:05}"), dock))
        .collect();
    let report = sync_records(&db.pool, &clock, source, laptops).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.created, report.counts.review_items), (5, 1));
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].kind, IDENTIFIER_SHARED);
    assert_eq!(items[0].candidates.len(), 5);
    assert!(items[0].summary.contains(dock), "{}", items[0].summary);

    // A record with no serial and only the dock's MAC matches none of them.
    let mut unknown = macbook("row:9", "", dock);
    unknown.asset_tag = None;
    let report = sync_records(
        &db.pool,
        &clock,
        source,
        (0..5)
            .map(|i| macbook(&format!("row:{i}"), &format!("5CG{i:05}"), dock))
            .chain([unknown])
            .collect(),
    )
    .await;
    assert_eq!(
        (report.counts.created, report.counts.updated),
        (1, 0),
        "{:?}",
        report.warnings
    );
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "still one item: {items:?}");
    assert_eq!(items[0].candidates.len(), 6);
    // It can only be dismissed: there is no record to place.
    let refused = resolve_as_anna(
        &db.pool,
        items[0].review_item_id,
        review::Resolution::CreateNew,
        &Default::default(),
    )
    .await;
    assert!(
        matches!(&refused, Err(bestand_core::CoreError::Invalid(message)) if message.contains("shared_macs")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_record_without_a_serial_still_joins_its_device_by_mac() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "ucs"]).await;
    sync_records(
        &db.pool,
        &clock,
        &sources[0],
        vec![macbook("computer:1", "CMP0001", "a4:83:e7:00:20:01")],
    )
    .await;
    // A school server's computer object: a MAC, a name, no serial.
    let mut computer = macbook("cn=pc01", "", "A4-83-E7-00-20-01");
    computer.name = Some("pc01".into());
    let report = sync_records(&db.pool, &clock, &sources[1], vec![computer]).await;
    assert_eq!(
        (report.counts.created, report.counts.updated),
        (0, 1),
        "{:?}",
        report.warnings
    );
    let device = devices::show_device(&db.pool, &Scope::All, "CMP0001")
        .await
        .unwrap();
    assert_eq!(device.links.len(), 2);
}

#[tokio::test]
async fn private_broadcast_and_listed_macs_never_match() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "ucs"]).await;
    let adapter = "00:e0:4c:36:00:07";
    sqlx::query("update school_authority set shared_macs = $1")
        .bind(vec![adapter.to_string()])
        .execute(&db.pool)
        .await
        .unwrap();
    let macs = ["da:a1:19:00:00:01", "ff:ff:ff:ff:ff:ff", adapter];
    let first: Vec<DeviceRecord> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| macbook(&format!("computer:{i}"), "", mac))
        .collect();
    let report = sync_records(&db.pool, &clock, &sources[0], first).await;
    assert_eq!(report.counts.created, 3);
    let second: Vec<DeviceRecord> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| macbook(&format!("cn=pc{i}"), "", mac))
        .collect();
    let report = sync_records(&db.pool, &clock, &sources[1], second).await;
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.review_items
        ),
        (3, 0, 0),
        "a MAC that identifies no one matches nothing and raises nothing: {:?}",
        report.warnings
    );
    // Stored as reported all the same.
    let stored: i64 = sqlx::query_scalar("select count(*) from device where wifi_mac = $1")
        .bind(adapter)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn a_linked_devices_serial_never_changes_silently() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mut records = fleet(2);
    sync_records(&db.pool, &clock, source, records.clone()).await;
    let device = devices::resolve_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();

    records[1].serial_number = Some("SER00099".into());
    records[1].os_version = Some("18.2".into());
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, source, records.clone()).await;
    assert_eq!((report.counts.updated, report.counts.review_items), (1, 1));
    let held = devices::show_device(&db.pool, &Scope::All, &device.to_string())
        .await
        .unwrap();
    assert_eq!(held.device.serial_number.as_deref(), Some("SER00001"));
    assert_eq!(
        held.device.os_version.as_deref(),
        Some("18.2"),
        "the rest applies"
    );
    assert!(report
        .warnings
        .iter()
        .any(|w| w.contains("reports serial number 'SER00099' for device SER00001")));
    let items = open_items(&db.pool, review::SERIAL_CHANGED).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].candidates, vec![device]);

    // The same record again raises nothing new; a person decides it is a replaced board.
    let again = sync_records(&db.pool, &clock, source, records.clone()).await;
    assert_eq!((again.counts.unchanged, again.counts.review_items), (2, 0));
    resolve_as_anna(
        &db.pool,
        items[0].review_item_id,
        review::Resolution::LinkTo(device),
        &Default::default(),
    )
    .await
    .unwrap();
    let decided = devices::show_device(&db.pool, &Scope::All, &device.to_string())
        .await
        .unwrap();
    assert_eq!(decided.device.serial_number.as_deref(), Some("SER00099"));
}

/// What an earlier version left: a Jamf School iPad merged into a Jamf Pro MacBook by MAC, the
/// device now carrying the iPad's serial and both links.
async fn merged_by_an_earlier_version(
    db: &TestDb,
    clock: &FixedClock,
    sources: &[bestand_core::store::SourceRef],
) -> Uuid {
    let mac = "a4:83:e7:00:30:01";
    sync_records(
        &db.pool,
        clock,
        &sources[0],
        vec![macbook("computer:1", "CMP0001", mac)],
    )
    .await;
    sync_records(
        &db.pool,
        clock,
        &sources[1],
        vec![school_ipad("js:1", "JS0001", mac)],
    )
    .await;
    let macbook_device = devices::resolve_device(&db.pool, &Scope::All, "CMP0001")
        .await
        .unwrap();
    let ipad_device = devices::resolve_device(&db.pool, &Scope::All, "JS0001")
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("set local bestand.allow_history_delete = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update source_link set device_id = $1 where device_id = $2")
        .bind(macbook_device)
        .bind(ipad_device)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("delete from device where device_id = $1")
        .bind(ipad_device)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "update device set serial_number = 'JS0001', model = 'iPad (9th generation)' \
         where device_id = $1",
    )
    .bind(macbook_device)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    macbook_device
}

#[tokio::test]
async fn devices_an_earlier_version_merged_are_found_and_split_with_their_history() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "jamf_school"]).await;
    let merged = merged_by_an_earlier_version(&db, &clock, &sources).await;
    let anna = Actor::CliUser("anna".into());

    let scan = review::find_merged_devices(&db.pool, &Scope::All, &anna, clock.now_value())
        .await
        .unwrap();
    assert_eq!((scan.links, scan.contradicting, scan.opened), (2, 1, 1));
    let again = review::find_merged_devices(&db.pool, &Scope::All, &anna, clock.now_value())
        .await
        .unwrap();
    assert_eq!(again.opened, 0, "a second scan opens nothing new");
    let items = open_items(&db.pool, review::SERIAL_CHANGED).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].external_id.as_deref(), Some("computer:1"));
    assert_eq!(items[0].candidates, vec![merged]);

    let outcome = resolve_as_anna(
        &db.pool,
        items[0].review_item_id,
        review::Resolution::Split,
        &Default::default(),
    )
    .await
    .unwrap();
    assert!(
        outcome.contains("split jamf:computer:1 off device JS0001"),
        "{outcome}"
    );
    let split = devices::show_device(&db.pool, &Scope::All, "CMP0001")
        .await
        .unwrap();
    assert_ne!(split.device.device_id, merged);
    assert_eq!(split.device.model.as_deref(), Some("MacBook Air (M2)"));
    assert_eq!(split.device.wifi_mac.as_deref(), Some("a4:83:e7:00:30:01"));
    assert_eq!(
        split
            .links
            .iter()
            .map(|l| l.external_id.as_str())
            .collect::<Vec<_>>(),
        ["computer:1"]
    );
    let kinds: Vec<&str> = split.history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["created", "split"],
        "Jamf Pro's history comes along"
    );
    assert_eq!(
        split.history[1].changes["split_from"]["new"],
        merged.to_string()
    );

    let left = devices::show_device(&db.pool, &Scope::All, &merged.to_string())
        .await
        .unwrap();
    assert_eq!(left.device.serial_number.as_deref(), Some("JS0001"));
    assert_eq!(
        left.device.wifi_mac, None,
        "the MAC Jamf Pro set went with its record"
    );
    assert_eq!(left.links.len(), 1);
    assert_eq!(left.history.last().unwrap().kind, "split");

    // Jamf School's next run writes its record over what Jamf Pro had left on the device.
    let report = sync_records(
        &db.pool,
        &clock,
        &sources[1],
        vec![school_ipad("js:1", "JS0001", "a4:83:e7:00:30:01")],
    )
    .await;
    assert_eq!((report.counts.updated, report.counts.created), (1, 0));
    let left = devices::show_device(&db.pool, &Scope::All, &merged.to_string())
        .await
        .unwrap();
    assert_eq!(left.device.wifi_mac.as_deref(), Some("a4:83:e7:00:30:01"));
    let report = sync_records(
        &db.pool,
        &clock,
        &sources[0],
        vec![macbook("computer:1", "CMP0001", "a4:83:e7:00:30:01")],
    )
    .await;
    assert_eq!(
        report.counts.unchanged, 1,
        "Jamf Pro's link is where it belongs"
    );
    assert_eq!(device_count(&db.pool).await, 2);
}

#[tokio::test]
async fn a_file_sources_rows_sharing_a_dock_mac_each_become_their_device() {
    let db = test_db().await;
    let source_ref = &musterstadt(&db.pool, &["inventar"]).await[0];
    let path = std::env::temp_dir().join(format!("bestand-{}-dock.csv", Uuid::new_v4().simple()));
    std::fs::write(
        &path,
        "Inventarnummer;Seriennummer;MAC\n\
         INV-1;5CG0000001;00-E0-4C-68-00-01\n\
         INV-2;5CG0000002;00-E0-4C-68-00-01\n\
         INV-3;5CG0000003;00-E0-4C-68-00-01\n",
    )
    .unwrap();
    let config: FileConfig = serde_json::from_value(serde_json::json!({
        "path": path,
        "delimiter": ";",
        "id_column": "Inventarnummer",
        "columns": {
            "asset_tag": "Inventarnummer",
            "serial_number": "Seriennummer",
            "wifi_mac": "MAC",
        },
    }))
    .unwrap();
    let file = Arc::new(FileSource::new(config, "inventar").unwrap());
    let clock = clock();
    let report = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source_ref,
        spawn_fetch(file),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.created, report.counts.review_items), (3, 1));
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, IDENTIFIER_SHARED);
    let mut labels = items[0].candidate_labels.clone();
    labels.sort();
    assert_eq!(labels, ["INV-1", "INV-2", "INV-3"]);
}
