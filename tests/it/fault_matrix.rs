//! The fault matrix (docs/reliability.md): every way a source or the database fails mid-run,
//! against the mock Jamf Pro (the real connector over HTTP), a real slapd and real PostgreSQL.
//! Each failure either leaves the inventory exactly as it was, with the run recorded as failed
//! and its message naming the source and the cause, or ends in exactly what a complete run gives.

use std::sync::Arc;
use std::time::Duration;

use bestand_connectors::jamf_pro::{JamfPro, JamfProConfig};
use bestand_connectors::spawn_fetch;
use bestand_core::model::SyncStatus;
use bestand_core::store::SourceRef;
use bestand_core::sync::{self, SyncReport};
use bestand_mocks::jamf_pro::{Fault, PageFault, ShortPage};
use bestand_mocks::{EpochChanges, Fleet, JamfProMock, MockConfig};
use sqlx::PgPool;

use crate::support::*;

/// What a failure must end in.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The retries absorb it: the inventory is what a run without the fault gives.
    Applies,
    /// The run fails, changes nothing, and its error names the source and contains each word.
    ChangesNothing(&'static [&'static str]),
}

struct Case {
    failure: &'static str,
    stage: fn(&JamfProMock),
    outcome: Outcome,
}

const CASES: &[Case] = &[
    Case {
        failure: "HTTP 429 with Retry-After",
        stage: |mock| mock.faults().rate_limit_next(3, 1),
        outcome: Outcome::Applies,
    },
    Case {
        failure: "HTTP 500, 502 and 503 in turn",
        stage: |mock| mock.faults().server_errors_next(3, None),
        outcome: Outcome::Applies,
    },
    Case {
        failure: "HTTP 502",
        stage: |mock| mock.faults().server_errors_next(2, Some(502)),
        outcome: Outcome::Applies,
    },
    Case {
        failure: "HTTP 503 that outlasts every retry",
        stage: |mock| mock.faults().server_errors_next(1000, Some(503)),
        outcome: Outcome::ChangesNothing(&["503"]),
    },
    Case {
        failure: "an answer slower than the timeout, every time",
        stage: |mock| {
            mock.faults()
                .apply(Fault::Delay(Duration::from_millis(1500)))
        },
        outcome: Outcome::ChangesNothing(&["timed out"]),
    },
    Case {
        failure: "a token that expires mid-run (401, renewed once)",
        stage: |mock| mock.faults().set_token_max_requests(Some(3)),
        outcome: Outcome::Applies,
    },
    Case {
        failure: "a page of malformed JSON",
        stage: |mock| mock.faults().set_malformed_page(Some(PageFault::mobile(1))),
        outcome: Outcome::ChangesNothing(&["page 1"]),
    },
    Case {
        failure: "a page shorter than announced",
        stage: |mock| {
            mock.faults().set_short_page(Some(ShortPage {
                at: PageFault::mobile(1),
                missing: 3,
            }))
        },
        outcome: Outcome::ChangesNothing(&["nothing was changed"]),
    },
];

fn connector(mock: &JamfProMock) -> Arc<JamfPro> {
    let config: JamfProConfig = serde_json::from_value(serde_json::json!({
        "base_url": mock.base_url(),
        "client_id": mock.config().client_id,
        "client_secret_file": secret_file(&mock.config().client_secret),
        "page_size": 100,
        "timeout_secs": 1,
        "retry_max_attempts": 4,
        "retry_base_ms": 10,
        "retry_cap_ms": 50,
    }))
    .unwrap();
    Arc::new(JamfPro::new(config, "jamf").unwrap())
}

async fn sync_from(pool: &PgPool, mock: &JamfProMock, source: &SourceRef) -> SyncReport {
    sync::run_sync(
        pool,
        clock().as_ref(),
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

/// What the inventory says, without ids and times, so that two databases compare.
async fn content(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "select md5(coalesce((select string_agg(concat_ws(',', d.serial_number, d.name, d.model, \
         d.os_version, d.asset_tag, d.lifecycle_state, l.external_id, l.missing_since is not null, \
         l.ended_reason), '|' order by d.serial_number, l.external_id) \
         from device d left join source_link l using (device_id)), ''))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

const CHANGES: EpochChanges = EpochChanges {
    vanish: 4,
    reenroll: 2,
    os_updates: 30,
};

/// A database synced from epoch 0 of the fleet, and the mock now serving epoch 1.
async fn synced_once() -> (TestDb, SourceRef, JamfProMock) {
    let db = test_db().await;
    let source = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let mock = JamfProMock::start(MockConfig::new(Fleet::with_changes(17, 300, CHANGES)))
        .await
        .unwrap();
    let first = sync_from(&db.pool, &mock, &source).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{:?}", first.error);
    mock.faults().set_epoch(1);
    (db, source, mock)
}

#[tokio::test]
async fn every_http_failure_changes_nothing_or_gives_what_a_complete_run_gives() {
    let complete = {
        let (db, source, mock) = synced_once().await;
        let clean = sync_from(&db.pool, &mock, &source).await;
        assert_eq!(clean.status, SyncStatus::Succeeded, "{:?}", clean.error);
        assert_eq!(clean.counts.marked_missing, 4);
        content(&db.pool).await
    };
    for case in CASES {
        let (db, source, mock) = synced_once().await;
        let before = inventory_fingerprint(&db.pool).await;
        (case.stage)(&mock);
        let report = sync_from(&db.pool, &mock, &source).await;
        let recorded: (String, Option<String>) =
            sqlx::query_as("select status, error from sync_run where sync_run_id = $1")
                .bind(report.run_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        match case.outcome {
            Outcome::Applies => {
                assert_eq!(
                    report.status,
                    SyncStatus::Succeeded,
                    "{}: {:?}",
                    case.failure,
                    report.error
                );
                assert_eq!(content(&db.pool).await, complete, "{}", case.failure);
                assert_eq!(recorded.0, "succeeded", "{}", case.failure);
            }
            Outcome::ChangesNothing(words) => {
                assert_eq!(report.status, SyncStatus::Failed, "{}", case.failure);
                assert_eq!(
                    inventory_fingerprint(&db.pool).await,
                    before,
                    "{}: the inventory changed",
                    case.failure
                );
                let error = recorded.1.unwrap_or_default();
                assert_eq!(recorded.0, "failed", "{}", case.failure);
                assert!(
                    error.contains("source 'jamf'")
                        && words.iter().all(|word| error.contains(word)),
                    "{}: {error}",
                    case.failure
                );
            }
        }
    }
}

#[tokio::test]
async fn an_empty_answer_from_a_source_that_had_devices_is_held_by_the_guard() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(120)).await;
    let before = inventory_fingerprint(&db.pool).await;
    let report = sync_records(&db.pool, &clock, source, Vec::new()).await;
    assert_eq!(report.status, SyncStatus::Blocked);
    assert!(
        report
            .blocked_reason
            .as_deref()
            .is_some_and(|reason| reason.contains("120")),
        "{:?}",
        report.blocked_reason
    );
    let missing: i64 =
        sqlx::query_scalar("select count(*) from source_link where missing_since is not null")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(missing, 0, "nothing marked missing until a person approves");
    // The guard's run writes no device, link, payload or event.
    let after = inventory_fingerprint(&db.pool).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_database_connection_dropped_mid_run_changes_nothing_and_the_next_run_applies() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(50)).await;
    let before = inventory_fingerprint(&db.pool).await;

    // A source that sends one page, then waits: the run holds its transaction open.
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut changed = fleet(100);
    changed[0].os_version = Some("18.3".into());
    let first_page: Vec<_> = changed[..50].to_vec();
    sender
        .send(bestand_core::sync::SourceItem::Page(
            bestand_core::sync::SourcePage {
                label: "page 0".into(),
                records: first_page,
                announced_total: Some(100),
            },
        ))
        .await
        .unwrap();
    let run = tokio::spawn({
        let pool = db.pool.clone();
        let clock = clock.clone();
        let source = source.clone();
        async move {
            sync::run_sync(
                &pool,
                clock.as_ref(),
                &bestand_core::Scope::All,
                &bestand_core::Actor::System("test"),
                &source,
                receiver,
                &options(),
                &sync::NoProgress,
            )
            .await
        }
    });
    // Wait until the run has applied the page inside its transaction, then cut every
    // connection of the run (its transaction's and the payload writer's) from the server side.
    let mut waited = 0;
    loop {
        let in_transaction: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and state = 'idle in transaction'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if in_transaction >= 1 || waited > 200 {
            break;
        }
        waited += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let terminated: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and state = 'idle in transaction') cut",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(terminated >= 1, "the run's transaction was cut");
    drop(sender);
    let outcome = run.await.unwrap();
    // The run's own connection may be gone too, so it may not even record its end (`Err`):
    // the next run records it as aborted.
    if let Ok(report) = &outcome {
        assert_eq!(report.status, SyncStatus::Failed, "{report:?}");
    }
    assert_eq!(inventory_fingerprint(&db.pool).await, before);

    let report = sync_records(&db.pool, &clock, source, changed).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.created, report.counts.updated), (50, 1));
    let unfinished: i64 =
        sqlx::query_scalar("select count(*) from sync_run where status = 'running'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(unfinished, 0, "the cut run is recorded as ended");
}

#[tokio::test]
async fn a_school_directory_that_is_down_fails_the_run_and_changes_no_person() {
    use bestand_connectors::spawn_directory_fetch;
    use bestand_connectors::ucs_ldap::{UcsLdap, UcsLdapConfig};

    let db = test_db().await;
    let clock = clock();
    musterstadt(&db.pool, &["jamf"]).await;
    let source = directory_source(&db.pool, "ucs").await;
    // A port nothing listens on: taken, then freed again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = secret_file("not-used");
    let config: UcsLdapConfig = serde_json::from_value(serde_json::json!({
        "url": format!("ldap://127.0.0.1:{port}"),
        "bind_dn": "cn=admin,dc=ucs,dc=test",
        "bind_password_file": secret,
        "base_dn": "dc=ucs,dc=test",
        "timeout_secs": 2,
    }))
    .unwrap();
    let connector = Arc::new(UcsLdap::new(config, "ucs").unwrap());
    let persons_before: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let report = sync::run_directory_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        &source,
        spawn_directory_fetch(connector),
        &Default::default(),
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("source 'ucs'") && error.contains("nothing was changed"),
        "{error}"
    );
    let persons_after: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(persons_after, persons_before);
}
