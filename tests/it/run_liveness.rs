//! Runs of several `serve` instances on one database: a run skipped because another process
//! syncs the source never asks the source for anything, a running run says it is alive, and a
//! run whose process died is shown as stale and recorded as ended when it was last alive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use bestand_core::access::Scope;
use bestand_core::store::runs;
use bestand_core::sync::{self, NoProgress};
use bestand_core::CoreError;
use chrono::Duration;
use sqlx::Connection;

use crate::support::*;

#[tokio::test]
async fn a_run_skipped_for_a_busy_source_never_asks_the_source_for_pages() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    // Another instance holds the source's lock.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(source.lock_key())
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(locked);

    let fetched = AtomicUsize::new(0);
    let outcome = sync::run_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        || {
            fetched.fetch_add(1, Ordering::SeqCst);
            scripted(fleet(3), 10, End::Complete)
        },
        &options(),
        &NoProgress,
    )
    .await;
    assert!(
        matches!(outcome, Err(CoreError::SourceBusy { .. })),
        "{outcome:?}"
    );
    assert_eq!(fetched.load(Ordering::SeqCst), 0, "no token, no page");

    // Once the other instance is done, the next run asks once and applies.
    // Unlocked first: closing alone returns before the server has ended the session, and a
    // loaded server may still hold the lock when the next run asks (seen in a full suite run).
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(source.lock_key())
        .execute(&mut other)
        .await
        .unwrap();
    other.close().await.unwrap();
    let report = sync::run_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        || {
            fetched.fetch_add(1, Ordering::SeqCst);
            scripted(fleet(3), 10, End::Complete)
        },
        &options(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.counts.created, fetched.load(Ordering::SeqCst)),
        (3, 1)
    );
}

#[tokio::test]
async fn a_running_run_writes_its_heartbeat_while_it_works() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let run_id: i64 = sqlx::query_scalar(
        "insert into sync_run (authority_id, source_id, started_at, heartbeat_at, status, kind) \
         values ($1, $2, $3, $3, 'running', 'devices') returning sync_run_id",
    )
    .bind(source.authority_id)
    .bind(source.source_id)
    .bind(t0())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    clock.advance(Duration::minutes(5));
    let worked = sync::with_heartbeat(
        &db.pool,
        clock.as_ref(),
        run_id,
        StdDuration::from_millis(20),
        async {
            tokio::time::sleep(StdDuration::from_millis(300)).await;
            "done"
        },
    )
    .await;
    assert_eq!(worked, "done");
    let alive: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select heartbeat_at from sync_run where sync_run_id = $1")
            .bind(run_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(alive, t0() + Duration::minutes(5));
}

#[tokio::test]
async fn a_run_whose_process_died_shows_as_stale_and_ends_when_it_was_last_alive() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let last_alive = t0() - Duration::minutes(10);
    let dead: i64 = sqlx::query_scalar(
        "insert into sync_run (authority_id, source_id, started_at, heartbeat_at, status, kind) \
         values ($1, $2, $3, $4, 'running', 'devices') returning sync_run_id",
    )
    .bind(source.authority_id)
    .bind(source.source_id)
    .bind(t0() - Duration::minutes(30))
    .bind(last_alive)
    .fetch_one(&db.pool)
    .await
    .unwrap();

    let status = runs::source_status(&db.pool, &Scope::All, t0())
        .await
        .unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].running_run_id, status[0].running_stale),
        (Some(dead), true)
    );
    assert_eq!(status[0].running_last_alive_at, Some(last_alive));
    let running = runs::running_runs(&db.pool, &Scope::All, t0())
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert!(running[0].stale);
    // Alive a moment ago: not stale.
    let fresh = runs::running_runs(&db.pool, &Scope::All, last_alive + Duration::seconds(30))
        .await
        .unwrap();
    assert!(!fresh[0].stale);
    let page = bestand_app::schedule::render_running(&running);
    assert!(
        page.contains(&format!(
            "bestand_sync_stale{{source=\"jamf\",kind=\"devices\",run=\"{dead}\"}} 1"
        )),
        "{page}"
    );

    let report = sync_records(&db.pool, &clock, source, fleet(2)).await;
    assert_eq!(report.counts.created, 2);
    let (status, finished_at, error): (String, chrono::DateTime<chrono::Utc>, String) =
        sqlx::query_as("select status, finished_at, error from sync_run where sync_run_id = $1")
            .bind(dead)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "aborted");
    assert_eq!(finished_at, last_alive, "ended when it was last alive");
    assert!(error.contains("last alive"), "{error}");
    let status = runs::source_status(&db.pool, &Scope::All, t0())
        .await
        .unwrap();
    assert_eq!(status[0].running_run_id, None);
}
