//! Scope on the sync entry points: runs and approvals are authority-wide, so only a scope that
//! covers the source's whole authority reaches them; any other answers as if the source (or
//! run) did not exist, before anything is read, locked or written.

use std::sync::atomic::{AtomicUsize, Ordering};

use bestand_core::model::{SchoolType, SyncStatus};
use bestand_core::store::{self, runs, AuthoritySpec, SchoolSpec, SourceRef};
use bestand_core::sync::{self, DirectoryItem, DirectorySyncOptions, NoProgress, SyncReport};
use bestand_core::{Actor, CoreError, FixedClock, Scope};
use chrono::Duration;
use sqlx::{Connection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::support::*;

/// Nachbarstadt, an authority of its own beside Musterstadt; returns its id.
async fn neighbour_authority(pool: &PgPool) -> Uuid {
    let authority = AuthoritySpec {
        slug: "nachbarstadt".into(),
        name: "Stadt Nachbarstadt".into(),
        shared_macs: vec![],
        schools: vec![SchoolSpec {
            number: "200001".into(),
            name: "Grundschule Am Bach".into(),
            school_type: SchoolType::Grundschule,
            aliases: vec![],
        }],
    };
    store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &[authority],
        &[],
    )
    .await
    .expect("directory applies");
    sqlx::query_scalar("select authority_id from school_authority where slug = 'nachbarstadt'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The scopes that must not reach a source of `authority`: some of its own schools, and
/// another authority.
async fn foreign_scopes(pool: &PgPool, authority: Uuid, other: Uuid) -> Vec<(&'static str, Scope)> {
    let schools: Vec<Uuid> =
        sqlx::query_scalar("select school_id from school where authority_id = $1")
            .bind(authority)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(schools.len(), 2, "Musterstadt has two schools");
    vec![
        (
            "all schools of the authority",
            Scope::schools(authority, schools),
        ),
        ("another authority", Scope::Authority(other)),
    ]
}

fn is_not_found(result: &Result<impl std::fmt::Debug, CoreError>, what_expected: &str) -> bool {
    matches!(result, Err(CoreError::NotFound { what, .. }) if *what == what_expected)
}

/// Everything a refused call could have touched.
async fn state(pool: &PgPool) -> (String, Vec<(String, i64)>, i64, i64) {
    let runs: i64 = sqlx::query_scalar("select count(*) from sync_run")
        .fetch_one(pool)
        .await
        .unwrap();
    let persons: i64 = sqlx::query_scalar("select count(*) from person")
        .fetch_one(pool)
        .await
        .unwrap();
    (
        inventory_fingerprint(pool).await,
        table_counts(pool).await,
        runs,
        persons,
    )
}

/// A directory that lists nobody, complete.
fn empty_directory() -> mpsc::Receiver<DirectoryItem> {
    let (sender, receiver) = mpsc::channel(1);
    sender
        .try_send(DirectoryItem::Complete { reported_total: 0 })
        .unwrap();
    receiver
}

/// One device run of `source` within `scope`, over seven iPads.
async fn run_devices(
    pool: &PgPool,
    clock: &FixedClock,
    scope: &Scope,
    source: &SourceRef,
) -> Result<SyncReport, CoreError> {
    let actor = Actor::CliUser("anna".into());
    let pages = scripted(fleet(7), 100, End::Complete);
    sync::run_sync(
        pool,
        clock,
        scope,
        &actor,
        source,
        pages,
        &options(),
        &NoProgress,
    )
    .await
}

/// One directory run of `source` within `scope`, over an empty directory.
async fn run_directory(
    pool: &PgPool,
    clock: &FixedClock,
    scope: &Scope,
    source: &SourceRef,
) -> Result<SyncReport, CoreError> {
    let actor = Actor::CliUser("anna".into());
    let options = DirectorySyncOptions::default();
    let items = empty_directory();
    sync::run_directory_sync(
        pool,
        clock,
        scope,
        &actor,
        source,
        items,
        &options,
        &NoProgress,
    )
    .await
}

#[tokio::test]
async fn a_scope_short_of_the_sources_authority_cannot_run_it_and_the_authoritys_scope_can() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let ucs: SourceRef = directory_source(&db.pool, "ucs").await;
    let other = neighbour_authority(&db.pool).await;
    let actor = Actor::CliUser("anna".into());
    sync_records(&db.pool, &clock, &jamf, fleet(5)).await;
    let before = state(&db.pool).await;

    // Another process holds the device source's lock: a refused scope must not even try it
    // (that would answer "busy", telling the caller the source exists).
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(jamf.lock_key())
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert!(locked);

    for (name, scope) in foreign_scopes(&db.pool, jamf.authority_id, other).await {
        let run = run_devices(&db.pool, &clock, &scope, &jamf).await;
        assert!(is_not_found(&run, "source"), "{name}: {run:?}");

        let fetched = AtomicUsize::new(0);
        let retrying = sync::run_sync_retrying(
            &db.pool,
            clock.as_ref(),
            &scope,
            &actor,
            &jamf,
            || {
                fetched.fetch_add(1, Ordering::SeqCst);
                scripted(fleet(7), 100, End::Complete)
            },
            &options(),
            &NoProgress,
        )
        .await;
        assert!(is_not_found(&retrying, "source"), "{name}: {retrying:?}");
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            0,
            "{name}: the source was asked"
        );

        let directory = run_directory(&db.pool, &clock, &scope, &ucs).await;
        assert!(is_not_found(&directory, "source"), "{name}: {directory:?}");

        let directory_retrying = sync::run_directory_sync_retrying(
            &db.pool,
            clock.as_ref(),
            &scope,
            &actor,
            &ucs,
            || {
                fetched.fetch_add(1, Ordering::SeqCst);
                empty_directory()
            },
            &DirectorySyncOptions::default(),
            &NoProgress,
        )
        .await;
        assert!(
            is_not_found(&directory_retrying, "source"),
            "{name}: {directory_retrying:?}"
        );
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            0,
            "{name}: the directory was read"
        );
        assert_eq!(state(&db.pool).await, before, "{name} changed something");
    }
    // Unlocked before closing, so the server has let go when the next run asks.
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(jamf.lock_key())
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.unwrap();

    // The authority's own scope runs both.
    let scope = Scope::Authority(jamf.authority_id);
    let report = run_devices(&db.pool, &clock, &scope, &jamf).await.unwrap();
    assert_eq!(
        (report.status, report.counts.created),
        (SyncStatus::Succeeded, 2)
    );
    let directory = run_directory(&db.pool, &clock, &scope, &ucs).await.unwrap();
    assert_eq!(directory.status, SyncStatus::Succeeded, "{directory:?}");
}

#[tokio::test]
async fn a_scope_short_of_the_runs_authority_cannot_approve_it_and_the_authoritys_scope_can() {
    let db = test_db().await;
    let clock = clock();
    let jamf = musterstadt(&db.pool, &["jamf"]).await.remove(0);
    let other = neighbour_authority(&db.pool).await;
    sync_records(&db.pool, &clock, &jamf, fleet(600)).await;
    clock.advance(Duration::hours(1));
    // 61 of 600 missing is above max(10 %, 50): blocked.
    let blocked = sync_records(
        &db.pool,
        &clock,
        &jamf,
        fleet(600).into_iter().skip(61).collect(),
    )
    .await;
    assert_eq!(blocked.status, SyncStatus::Blocked);
    let before = state(&db.pool).await;

    let actor = Actor::CliUser("anna".into());
    for (name, scope) in foreign_scopes(&db.pool, jamf.authority_id, other).await {
        let approval =
            sync::approve_run(&db.pool, clock.as_ref(), &scope, &actor, blocked.run_id).await;
        assert!(is_not_found(&approval, "sync run"), "{name}: {approval:?}");
        assert_eq!(state(&db.pool).await, before, "{name} changed something");
        let run = runs::get_run(&db.pool, &Scope::All, blocked.run_id)
            .await
            .unwrap();
        assert_eq!(
            (run.status.as_str(), run.approved_by),
            ("blocked", None),
            "{name}"
        );
    }
    // A run outside the scope reads as one that does not exist.
    let missing = sync::approve_run(
        &db.pool,
        clock.as_ref(),
        &Scope::Authority(other),
        &actor,
        blocked.run_id + 1000,
    )
    .await;
    assert!(is_not_found(&missing, "sync run"), "{missing:?}");

    let approval = sync::approve_run(
        &db.pool,
        clock.as_ref(),
        &Scope::Authority(jamf.authority_id),
        &actor,
        blocked.run_id,
    )
    .await
    .unwrap();
    assert_eq!(approval.marked_missing, 61);
    let run = runs::get_run(&db.pool, &Scope::All, blocked.run_id)
        .await
        .unwrap();
    assert_eq!(
        (run.status.as_str(), run.approved_by.as_deref()),
        ("succeeded", Some("anna")),
        "the approval records the actor's name"
    );
}
