//! The whole path from a (mock) Jamf Pro server through the real connector and the engine into
//! PostgreSQL, including the faults a real server shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_connectors::spawn_fetch;
use bestand_core::access::Scope;
use bestand_core::model::SyncStatus;
use bestand_core::store::{devices, SourceRef};
use bestand_core::sync::{self, SyncReport};
use bestand_mocks::jamf_pro::{PageFault, ShortPage};
use bestand_mocks::{EpochChanges, Fleet, JamfProMock, MockConfig};
use sqlx::PgPool;

use crate::support::*;

fn connector(mock: &JamfProMock) -> Arc<JamfPro> {
    let config: JamfProConfig = serde_json::from_value(serde_json::json!({
        "base_url": mock.base_url(),
        "client_id": mock.config().client_id,
        "client_secret_file": secret_file(&mock.config().client_secret),
        "page_size": 200,
        "retry_base_ms": 10,
        "retry_cap_ms": 100,
    }))
    .unwrap();
    Arc::new(JamfPro::new(config, "jamf").unwrap())
}

async fn sync_from(pool: &PgPool, mock: &JamfProMock, source: &SourceRef) -> SyncReport {
    let clock = clock();
    sync::run_sync(
        pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        spawn_fetch(connector(mock)),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap()
}

async fn device_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from device")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_jamf_fleet_arrives_whole_and_a_second_sync_changes_nothing() {
    let db = test_db().await;
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mock = JamfProMock::start(MockConfig::new(Fleet::new(7, 700)))
        .await
        .unwrap();

    let first = sync_from(&db.pool, &mock, source).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{:?}", first.error);
    assert_eq!((first.counts.fetched, first.counts.created), (700, 700));
    assert_eq!(device_count(&db.pool).await, 700);
    // Every device of the generated fleet is there under its serial, with purchase data mapped.
    let snapshot = mock.snapshot();
    let device = snapshot.device(3).unwrap();
    let detail = devices::show_device(&db.pool, &Scope::All, &device.serial_number)
        .await
        .unwrap();
    assert_eq!(detail.device.model.as_deref(), Some(device.model.name));
    assert!(detail.device.warranty_end.is_some());

    let second = sync_from(&db.pool, &mock, source).await;
    assert_eq!(
        (
            second.counts.created,
            second.counts.updated,
            second.counts.unchanged
        ),
        (0, 0, 700)
    );
}

#[tokio::test]
async fn vanished_devices_are_marked_missing_and_re_enrolled_ones_keep_their_identity() {
    let db = test_db().await;
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let changes = EpochChanges {
        vanish: 6,
        reenroll: 4,
        os_updates: 10,
    };
    let mock = JamfProMock::start(MockConfig::new(Fleet::with_changes(11, 400, changes)))
        .await
        .unwrap();
    sync_from(&db.pool, &mock, source).await;

    mock.faults().set_epoch(1);
    let report = sync_from(&db.pool, &mock, source).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.marked_missing, 6);
    assert_eq!(
        report.counts.created, 0,
        "re-enrolled devices are not new devices"
    );
    assert_eq!(device_count(&db.pool).await, 400, "nothing is deleted");
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from source_link where ended_reason like 're-enrolled%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ended, 4);
}

#[tokio::test]
async fn token_expiry_and_throttling_mid_run_do_not_break_the_sync() {
    let db = test_db().await;
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mock = JamfProMock::start(MockConfig::new(Fleet::new(3, 900)))
        .await
        .unwrap();
    // Tokens die after a few requests (a 401 mid-run) and after two seconds (renewal by time).
    mock.faults().set_token_max_requests(Some(8));
    mock.faults().set_token_ttl(Some(Duration::from_secs(2)));
    mock.faults().rate_limit_next(2, 1);
    mock.faults().server_errors_next(2, Some(503));

    let started = Instant::now();
    let report = sync_from(&db.pool, &mock, source).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.created, 900);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert!(
        mock.request_counts().total() > 12,
        "tokens were renewed and requests retried"
    );
}

#[tokio::test]
async fn a_malformed_or_short_page_fails_the_run_and_changes_nothing() {
    let db = test_db().await;
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let changes = EpochChanges {
        vanish: 5,
        reenroll: 0,
        os_updates: 50,
    };
    let mock = JamfProMock::start(MockConfig::new(Fleet::with_changes(5, 1000, changes)))
        .await
        .unwrap();
    sync_from(&db.pool, &mock, source).await;
    let before = inventory_fingerprint(&db.pool).await;
    mock.faults().set_epoch(1);

    mock.faults().set_malformed_page(Some(PageFault::mobile(2)));
    let report = sync_from(&db.pool, &mock, source).await;
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("source 'jamf'") && error.contains("page 2"),
        "{error}"
    );
    assert_eq!(inventory_fingerprint(&db.pool).await, before);

    mock.faults().set_malformed_page(None);
    mock.faults().set_short_page(Some(ShortPage {
        at: PageFault::mobile(1),
        missing: 3,
    }));
    let report = sync_from(&db.pool, &mock, source).await;
    assert_eq!(
        report.status,
        SyncStatus::Failed,
        "a short page must not pass as complete"
    );
    assert_eq!(inventory_fingerprint(&db.pool).await, before);

    mock.faults().set_short_page(None);
    let report = sync_from(&db.pool, &mock, source).await;
    assert_eq!(
        (report.status, report.counts.marked_missing),
        (SyncStatus::Succeeded, 5)
    );
}

#[tokio::test]
async fn the_same_serials_in_jamf_pro_and_intune_become_one_device_each() {
    use bestand_connectors::intune::{Intune, IntuneConfig};
    use bestand_mocks::intune::{IntuneMock, IntuneMockConfig, Rendering};

    let db = test_db().await;
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let fleet = Fleet::new(21, 250);
    let jamf = JamfProMock::start(MockConfig::new(fleet.clone()))
        .await
        .unwrap();
    let intune = IntuneMock::start(IntuneMockConfig {
        rendering: Rendering::SameSerials,
        ..IntuneMockConfig::new(fleet)
    })
    .await
    .unwrap();
    let intune_config: IntuneConfig = serde_json::from_value(serde_json::json!({
        "tenant_id": intune.config().tenant_id,
        "client_id": intune.config().client_id,
        "client_secret_file": secret_file(&intune.config().client_secret),
        "token_url": intune.token_url(),
        "graph_url": intune.base_url(),
        "retry_base_ms": 10,
        "retry_cap_ms": 100,
    }))
    .unwrap();
    let intune_connector = Arc::new(Intune::new(intune_config, "intune").unwrap());

    let from_jamf = sync_from(&db.pool, &jamf, &sources[0]).await;
    assert_eq!(from_jamf.counts.created, 250);
    let clock = clock();
    let from_intune = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &sources[1],
        spawn_fetch(intune_connector),
        &options(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        from_intune.status,
        SyncStatus::Succeeded,
        "{:?}",
        from_intune.error
    );
    assert_eq!(
        (from_intune.counts.created, from_intune.counts.updated),
        (0, 250),
        "every Intune device matched by serial"
    );
    assert_eq!(device_count(&db.pool).await, 250);
    let both: i64 = sqlx::query_scalar(
        "select count(*) from (select device_id from source_link where ended_at is null \
         group by device_id having count(distinct source_id) = 2) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(both, 250);
}
