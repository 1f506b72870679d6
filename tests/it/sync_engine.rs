//! The sync engine against real PostgreSQL: matching, idempotency, missing-marking, the
//! deletion guard, failed runs that change nothing, and the advisory lock.

use bestand_core::access::Scope;
use bestand_core::identity::IDENTIFIER_SHARED;
use bestand_core::model::SyncStatus;
use bestand_core::store::{devices, review, runs};
use bestand_core::sync::{self, DeletionGuard, SyncOptions};
use bestand_core::CoreError;
use chrono::Duration;
use sqlx::Connection;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn first_sync_creates_devices_and_a_second_identical_sync_changes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];

    let first = sync_records(&db.pool, &clock, source, fleet(250)).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{:?}", first.error);
    assert_eq!(
        (
            first.counts.fetched,
            first.counts.created,
            first.counts.updated
        ),
        (250, 250, 0)
    );
    let events_after_first = table_counts(&db.pool).await;

    clock.advance(Duration::hours(1));
    let second = sync_records(&db.pool, &clock, source, fleet(250)).await;
    assert_eq!(second.status, SyncStatus::Succeeded);
    assert_eq!(
        (
            second.counts.created,
            second.counts.updated,
            second.counts.unchanged
        ),
        (0, 0, 250)
    );
    assert_eq!(
        table_counts(&db.pool).await,
        events_after_first,
        "an unchanged run must write nothing"
    );

    let school_devices = devices_at_school(&db.pool, "100001").await;
    assert_eq!(
        school_devices.len(),
        250,
        "the school hint resolves to the school by name"
    );
    // Last seen advances with the source's complete runs without writing each link.
    assert_eq!(school_devices[0].last_seen_at, Some(clock.now_value()));
}

#[tokio::test]
async fn a_changed_field_updates_the_device_and_records_old_and_new() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(3)).await;

    let mut changed = fleet(3);
    changed[1].os_version = Some("18.1".into());
    let report = sync_records(&db.pool, &clock, source, changed).await;
    assert_eq!((report.counts.updated, report.counts.unchanged), (1, 2));

    let detail = devices::show_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();
    assert_eq!(detail.device.os_version.as_deref(), Some("18.1"));
    let update = detail
        .history
        .iter()
        .find(|e| e.kind == "updated")
        .expect("an update event");
    assert_eq!(update.changes["os_version"]["old"], "17.6.1");
    assert_eq!(update.changes["os_version"]["new"], "18.1");
    assert_eq!(update.sync_run_id, Some(report.run_id));
}

#[tokio::test]
async fn a_re_enrolled_device_keeps_its_id_and_history() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(5)).await;
    let before = devices::show_device(&db.pool, &Scope::All, "ser00002")
        .await
        .unwrap();

    let mut records = fleet(5);
    records[2].external_id = "mobile:9002".into();
    let report = sync_records(&db.pool, &clock, source, records).await;
    assert_eq!(
        (report.counts.created, report.counts.marked_missing),
        (0, 0),
        "{report:?}"
    );

    let after = devices::show_device(&db.pool, &Scope::All, "SER00002")
        .await
        .unwrap();
    assert_eq!(after.device.device_id, before.device.device_id);
    assert_eq!(after.history[0].kind, "created", "history kept");
    assert!(after.history.iter().any(|e| e.kind == "re_enrolled"));
    let old = after
        .links
        .iter()
        .find(|l| l.external_id == "mobile:2")
        .unwrap();
    assert!(old.ended_at.is_some() && old.missing_since.is_none());
    let new = after
        .links
        .iter()
        .find(|l| l.external_id == "mobile:9002")
        .unwrap();
    assert!(new.ended_at.is_none());
}

#[tokio::test]
async fn a_link_revived_under_its_old_id_carries_the_users_hint_of_now() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(5)).await;
    let mut records = fleet(5);
    records[2].external_id = "mobile:9002".into();
    sync_records(&db.pool, &clock, source, records).await;

    // Re-enrolled once more, under its first id, now handed to a pupil.
    let mut records = fleet(5);
    records[2].user.username = Some("m.muster".into());
    records[2].user.email = Some("m.muster@schule.example".into());
    let report = sync_records(&db.pool, &clock, source, records).await;
    assert_eq!(report.counts.created, 0, "{report:?}");
    let hints: (Option<String>, Option<String>, bool) = sqlx::query_as(
        "select hint_username, hint_email, ended_at is null from source_link \
         where external_id = 'mobile:2'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        hints,
        (
            Some("m.muster".to_string()),
            Some("m.muster@schule.example".to_string()),
            true
        )
    );
}

#[tokio::test]
async fn devices_match_by_udid_or_mac_when_the_serial_is_a_placeholder() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "other"]).await;
    let mut first = ipad("a", "0");
    first.udid = Some("udid-1".into());
    let mut second = ipad("b", "0");
    second.udid = Some("udid-2".into());
    let report = sync_records(&db.pool, &clock, &sources[0], vec![first, second]).await;
    assert_eq!(
        report.counts.created, 2,
        "placeholder serial '0' must not merge two devices"
    );

    let mut same = ipad("x-17", "");
    same.udid = Some(" UDID-1 ".into());
    let report = sync_records(&db.pool, &clock, &sources[1], vec![same]).await;
    assert_eq!(
        (report.counts.created, report.counts.updated),
        (0, 1),
        "matched by normalized UDID"
    );
    let all = devices::list_devices(&db.pool, &Scope::All, &Default::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .any(|d| d.sources.as_deref() == Some("jamf, other")));
}

#[tokio::test]
async fn two_candidate_devices_become_a_review_item_never_a_guess() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let intune_record = || {
        let mut record = ipad("i:1", "dup1");
        record.user.username = Some("m.muster".into());
        record.user.email = Some("m.muster@schule.example".into());
        record
    };
    // Two devices that share a serial already exist (say, one entered twice by hand).
    sync_records(&db.pool, &clock, &sources[0], vec![ipad("m:1", "DUP1")]).await;
    sqlx::query(
        "insert into device (device_id, authority_id, serial_number, first_seen_at, updated_at) \
         select gen_random_uuid(), authority_id, 'DUP1', now(), now() from school_authority",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let report = sync_records(&db.pool, &clock, &sources[1], vec![intune_record()]).await;
    assert_eq!(
        (
            report.counts.review_items,
            report.counts.created,
            report.counts.updated
        ),
        (1, 0, 0)
    );
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].candidates.len(), 2);
    assert!(
        items[0].summary.contains("matches 2 devices"),
        "{}",
        items[0].summary
    );

    // The same run again does not pile up items.
    sync_records(&db.pool, &clock, &sources[1], vec![intune_record()]).await;
    assert_eq!(
        review::list_review(&db.pool, &Scope::All, Some("open"))
            .await
            .unwrap()
            .len(),
        1
    );

    let chosen = items[0].candidates[0];
    resolve_as_anna(
        &db.pool,
        items[0].review_item_id,
        review::Resolution::LinkTo(chosen),
        &Default::default(),
    )
    .await
    .unwrap();
    let detail = devices::show_device(&db.pool, &Scope::All, &chosen.to_string())
        .await
        .unwrap();
    assert!(detail
        .links
        .iter()
        .any(|l| l.source_name == "intune" && l.external_id == "i:1"));
    let hints: (Option<String>, Option<String>) = sqlx::query_as(
        "select hint_username, hint_email from source_link where external_id = 'i:1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        hints,
        (
            Some("m.muster".to_string()),
            Some("m.muster@schule.example".to_string())
        ),
        "the link a person created carries the record's user hint"
    );
    let report = sync_records(&db.pool, &clock, &sources[1], vec![intune_record()]).await;
    assert_eq!(
        (report.counts.review_items, report.counts.unchanged),
        (0, 1),
        "resolved link is used"
    );
}

#[tokio::test]
async fn devices_a_source_stops_reporting_are_marked_missing_never_deleted() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(100)).await;
    let first_run_time = clock.now_value();

    clock.advance(Duration::days(1));
    let report = sync_records(
        &db.pool,
        &clock,
        source,
        fleet(100).into_iter().skip(3).collect(),
    )
    .await;
    assert_eq!(
        (report.status, report.counts.marked_missing),
        (SyncStatus::Succeeded, 3)
    );

    let missing = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(missing.len(), 3);
    assert_eq!(
        missing[0].missing_from.as_deref(),
        Some("jamf since 2026-11-24")
    );
    assert_eq!(
        missing[0].last_seen_at,
        Some(first_run_time),
        "last seen is the last run that saw it"
    );
    assert_eq!(
        devices::list_devices(&db.pool, &Scope::All, &Default::default())
            .await
            .unwrap()
            .len(),
        100,
        "nothing deleted"
    );

    clock.advance(Duration::days(1));
    let report = sync_records(&db.pool, &clock, source, fleet(100)).await;
    assert_eq!(
        (report.counts.reappeared, report.counts.marked_missing),
        (3, 0)
    );
    let missing = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(missing.is_empty());
}

#[tokio::test]
async fn the_deletion_guard_blocks_a_run_until_it_is_approved() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(600)).await;

    // 61 of 600 missing is above max(10 %, 50) = 60.
    clock.advance(Duration::hours(1));
    let blocked = sync_records(
        &db.pool,
        &clock,
        source,
        fleet(600).into_iter().skip(61).collect(),
    )
    .await;
    assert_eq!(blocked.status, SyncStatus::Blocked);
    assert_eq!(
        (blocked.counts.marked_missing, blocked.would_mark_missing),
        (0, 61)
    );
    let reason = blocked.blocked_reason.clone().unwrap();
    assert!(
        reason.contains("61 of 600") && reason.contains("bestand sync approve"),
        "{reason}"
    );
    let missing = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(missing.is_empty(), "a blocked run marks nothing");

    let approval = sync::approve_run(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::CliUser("it-admin".into()),
        blocked.run_id,
    )
    .await
    .unwrap();
    assert_eq!(approval.marked_missing, 61);
    let run = runs::get_run(&db.pool, &Scope::All, blocked.run_id)
        .await
        .unwrap();
    assert_eq!(
        (
            run.status.as_str(),
            run.approved_by.as_deref(),
            run.marked_missing
        ),
        ("succeeded", Some("it-admin"), 61)
    );
    let missing = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(missing.len(), 61);
    let again = sync::approve_run(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::CliUser("it-admin".into()),
        blocked.run_id,
    )
    .await;
    assert!(matches!(again, Err(CoreError::Conflict(_))), "{again:?}");

    // Exactly at the limit passes: 60 of 539 live devices is above 10 % (53) but not above 50? No:
    // the limit is max(53, 50) = 53, so 53 pass and 54 would block.
    let guard = DeletionGuard::default();
    assert_eq!(guard.limit(539), 53);
}

#[tokio::test]
async fn a_failed_fetch_leaves_the_inventory_exactly_as_it_was() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(120)).await;
    let before = inventory_fingerprint(&db.pool).await;

    let mut changed = fleet(150);
    changed[0].os_version = Some("99".into());
    let cases = [
        (
            End::Fail("HTTP 503 after 6 attempts"),
            "mobile-devices page 2: HTTP 503 after 6 attempts",
        ),
        (End::Vanish, "the connector stopped without finishing"),
        (
            End::CompleteClaiming(400),
            "received 150 distinct records but the source reported 400",
        ),
    ];
    for (end, expected) in cases {
        clock.advance(Duration::hours(1));
        let receiver = scripted(changed.iter().take(150).cloned().collect(), 100, end);
        let report = sync::run_sync(
            &db.pool,
            clock.as_ref(),
            &bestand_core::Scope::All,
            &bestand_core::Actor::System("test"),
            source,
            receiver,
            &options(),
            &sync::NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(report.status, SyncStatus::Failed);
        let error = report.error.unwrap();
        assert!(
            error.contains("source 'jamf'") && error.contains(expected),
            "{error}"
        );
        assert_eq!(
            inventory_fingerprint(&db.pool).await,
            before,
            "failed run changed the inventory"
        );
        let run = runs::get_run(&db.pool, &Scope::All, report.run_id)
            .await
            .unwrap();
        assert_eq!(run.status, "failed");
        assert_eq!(run.error.as_deref(), Some(error.as_str()));
    }
}

#[tokio::test]
async fn a_dry_run_reports_but_writes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let before = inventory_fingerprint(&db.pool).await;
    let dry = SyncOptions {
        dry_run: true,
        ..SyncOptions::default()
    };
    let report = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        scripted(fleet(40), 10, End::Complete),
        &dry,
        &sync::NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.status, report.counts.created, report.dry_run),
        (SyncStatus::Succeeded, 40, true)
    );
    assert_eq!(inventory_fingerprint(&db.pool).await, before);
}

#[tokio::test]
async fn purchase_data_a_person_entered_survives_a_source_that_disagrees() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(1)).await;
    sqlx::query(
        "update device set warranty_end = '2029-12-31', \
         field_origin = (field_origin::jsonb || '{\"warranty_end\": \"user:anna\"}')::json",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let mut records = fleet(1);
    records[0].purchase.warranty_end = chrono::NaiveDate::from_ymd_opt(2027, 1, 1);
    records[0].os_version = Some("18.0".into());
    sync_records(&db.pool, &clock, source, records).await;
    let detail = devices::show_device(&db.pool, &Scope::All, "SER00000")
        .await
        .unwrap();
    assert_eq!(
        detail.device.warranty_end,
        chrono::NaiveDate::from_ymd_opt(2029, 12, 31)
    );
    assert_eq!(detail.device.os_version.as_deref(), Some("18.0"));
    assert_eq!(
        detail.links[0].reported["purchase"]["warranty_end"], "2027-01-01",
        "the source's value stays visible"
    );
}

#[tokio::test]
async fn two_runs_of_one_source_never_overlap() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];

    // Another process (here: another connection) holds the source's lock.
    let mut other = db.pool.acquire().await.unwrap().detach();
    let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
        .bind(source.lock_key())
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert!(locked);
    let busy = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        scripted(fleet(5), 5, End::Complete),
        &options(),
        &sync::NoProgress,
    )
    .await;
    assert!(
        matches!(busy, Err(CoreError::SourceBusy { .. })),
        "{busy:?}"
    );
    other.close().await.unwrap();

    // Two concurrent runs: exactly one proceeds while the other is refused.
    let options = options();
    let (a, b) = tokio::join!(
        sync::run_sync(
            &db.pool,
            clock.as_ref(),
            &bestand_core::Scope::All,
            &bestand_core::Actor::System("test"),
            source,
            scripted(fleet(500), 50, End::Complete),
            &options,
            &sync::NoProgress
        ),
        sync::run_sync(
            &db.pool,
            clock.as_ref(),
            &bestand_core::Scope::All,
            &bestand_core::Actor::System("test"),
            source,
            scripted(fleet(500), 50, End::Complete),
            &options,
            &sync::NoProgress
        ),
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert!(outcomes.contains(&true), "{a:?} {b:?}");
    let created: i32 = [a, b]
        .into_iter()
        .filter_map(Result::ok)
        .map(|r| r.counts.created)
        .sum();
    assert!(created == 500, "the devices were created exactly once");
}

#[tokio::test]
async fn a_run_left_running_by_a_dead_process_is_marked_aborted() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sqlx::query("insert into sync_run (authority_id, source_id, started_at, status) values ($1, $2, $3, 'running')")
        .bind(source.authority_id)
        .bind(source.source_id)
        .bind(t0())
        .execute(&db.pool)
        .await
        .unwrap();
    sync_records(&db.pool, &clock, source, fleet(1)).await;
    let runs = runs::list_runs(&db.pool, &Scope::All, Some("jamf"), 10)
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        vec!["succeeded", "aborted"]
    );
}

#[tokio::test]
async fn schema_keeps_history_append_only_and_every_table_tenant_scoped() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(1)).await;

    let update = sqlx::query("update device_event set kind = 'forged'")
        .execute(&db.pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("delete from device_event")
        .execute(&db.pool)
        .await;
    assert!(delete.is_err());

    let bad_category = sqlx::query("update device set category = 'toaster'")
        .execute(&db.pool)
        .await;
    assert!(bad_category.is_err(), "category is a closed vocabulary");

    // Every table but the authority itself, pure join tables and the vocabulary every
    // authority shares (the allowed lifecycle transitions) carries authority_id.
    let unscoped: Vec<String> = sqlx::query_scalar(
        "select t.table_name::text from information_schema.tables t where t.table_schema = 'public' \
         and t.table_type = 'BASE TABLE' and t.table_name not in ('school_authority', '_sqlx_migrations', \
         'sync_run_pending_missing', 'sync_run_pending_left', 'lifecycle_transition') and not exists (select 1 from information_schema.columns c \
         where c.table_schema = 'public' and c.table_name = t.table_name and c.column_name = 'authority_id')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        unscoped.is_empty(),
        "tables without authority_id: {unscoped:?}"
    );
}

#[tokio::test]
async fn an_asset_tag_another_device_holds_is_left_unchanged_and_raised_for_review() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mut records = fleet(2);
    records[0].asset_tag = Some("INV-1".into());
    records[1].asset_tag = Some("INV-2".into());
    sync_records(&db.pool, &clock, source, records.clone()).await;

    // The source now reports INV-1 on the second device too, and a new device with INV-2.
    records[1].asset_tag = Some("INV-1".into());
    records[1].os_version = Some("18.2".into());
    let mut newcomer = ipad("mobile:77", "SER77777");
    newcomer.asset_tag = Some("INV-2".into());
    records.push(newcomer);
    let report = sync_records(&db.pool, &clock, source, records).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.created, report.counts.review_items), (1, 2));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("asset tag 'INV-1' is already held")),
        "{:?}",
        report.warnings
    );

    let second = devices::show_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();
    assert_eq!(
        second.device.asset_tag.as_deref(),
        Some("INV-2"),
        "the clashing tag was not applied"
    );
    assert_eq!(
        second.device.os_version.as_deref(),
        Some("18.2"),
        "the rest of the update was"
    );
    let update = second
        .history
        .iter()
        .rev()
        .find(|e| e.kind == "updated")
        .unwrap();
    assert!(
        update.changes.get("asset_tag").is_none(),
        "history shows no change that did not happen"
    );
    let newcomer = devices::show_device(&db.pool, &Scope::All, "SER77777")
        .await
        .unwrap();
    assert_eq!(newcomer.device.asset_tag, None);

    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(
        items
            .iter()
            .filter(|i| i.kind == "asset_tag_conflict")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_held_asset_tag_keeps_the_origin_of_the_tag_the_device_carries() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let (jamf, intune) = (&sources[0], &sources[1]);
    // Jamf's asset tags win over Intune's, where both set one.
    let options = SyncOptions {
        field_priority: bestand_core::sync::merge::FieldPriority(
            [(
                "asset_tag".to_string(),
                vec!["jamf".to_string(), "intune".to_string()],
            )]
            .into(),
        ),
        ..options()
    };
    let (pool, clock, options) = (&db.pool, &*clock, &options);
    let run = move |source, records| async move {
        let report = sync_records_with(pool, clock, source, records, options).await;
        assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
        report
    };
    let tagged = |external_id: &str, serial: &str, tag: &str| {
        let mut record = ipad(external_id, serial);
        record.asset_tag = Some(tag.into());
        record
    };
    run(intune, vec![tagged("intune-a", "SERA", "INV-5")]).await;
    run(jamf, vec![tagged("mobile:b", "SERB", "INV-1")]).await;

    // Jamf now also manages device A, and reports the tag device B carries for it.
    let both = vec![
        tagged("mobile:b", "SERB", "INV-1"),
        tagged("mobile:a", "SERA", "INV-1"),
    ];
    let report = run(jamf, both).await;
    assert_eq!(report.counts.review_items, 1);
    let device_a = devices::show_device(&db.pool, &Scope::All, "SERA")
        .await
        .unwrap();
    assert_eq!(device_a.device.asset_tag.as_deref(), Some("INV-5"));

    // Intune relabels device A. Jamf never set A's tag, so its priority does not hold it.
    run(intune, vec![tagged("intune-a", "SERA", "INV-6")]).await;
    let device_a = devices::show_device(&db.pool, &Scope::All, "SERA")
        .await
        .unwrap();
    assert_eq!(
        device_a.device.asset_tag.as_deref(),
        Some("INV-6"),
        "the held tag's origin stayed Intune's"
    );
}

#[tokio::test]
async fn a_record_reporting_a_udid_or_mac_another_device_carries_is_held_for_review() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mut records = fleet(3);
    // A device without a serial: nothing tells whether a MAC it shares is another device's.
    records[2].serial_number = Some("0".into());
    records[2].wifi_mac = Some("a4:83:e7:00:00:02".into());
    records[2].asset_tag = Some("INV-2".into());
    sync_records(&db.pool, &clock, source, records.clone()).await;

    // Device 0 reports the UDID of device 1, whose serial differs: that UDID identifies neither
    // (a clone), so it is written and reported once as shared. Device 1 reports the MAC of the
    // device without a serial: one record claiming two devices, held.
    records[0].udid = Some("UDID-SER00001".into());
    records[0].os_version = Some("18.2".into());
    records[1].wifi_mac = Some("A4-83-E7-00-00-02".into());
    records[1].os_version = Some("18.2".into());
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, source, records).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.updated, report.counts.review_items), (2, 2));
    assert!(
        report.warnings.iter().any(|w| w.contains(
            "Wi-Fi MAC 'a4:83:e7:00:00:02' is already carried by device INV-2; device SER00001 \
             keeps Wi-Fi MAC 'none'"
        )),
        "{:?}",
        report.warnings
    );
    let carriers: i64 =
        sqlx::query_scalar("select count(*) from device where wifi_mac = 'a4:83:e7:00:00:02'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(carriers, 1, "the held MAC stays on one device");
    let second = devices::show_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();
    assert_eq!(second.device.wifi_mac, None);
    assert_eq!(
        second.device.os_version.as_deref(),
        Some("18.2"),
        "the rest applies"
    );
    let first = devices::show_device(&db.pool, &Scope::All, "SER00000")
        .await
        .unwrap();
    assert_eq!(
        first.device.udid.as_deref(),
        Some("UDID-SER00001"),
        "a shared UDID is written"
    );

    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    let mut raised: Vec<(String, Vec<String>)> = items
        .iter()
        .map(|item| {
            let mut labels = item.candidate_labels.clone();
            if item.kind == IDENTIFIER_SHARED {
                labels.sort();
            }
            (item.kind.clone(), labels)
        })
        .collect();
    raised.sort();
    assert_eq!(
        raised,
        vec![
            (
                review::IDENTIFIER_CONFLICT.to_string(),
                vec!["INV-2".to_string(), "SER00001".to_string()]
            ),
            (
                IDENTIFIER_SHARED.to_string(),
                vec!["SER00000".to_string(), "SER00001".to_string()]
            ),
        ]
    );
    // The record is the serial-less device's MAC but device 1's serial: as that device, it
    // leaves the serial where it is.
    let item = review_item_for(&items, "mobile:1");
    let no_priority = Default::default();
    let refused =
        resolve_as_anna(&db.pool, item, review::Resolution::CreateNew, &no_priority).await;
    assert!(
        matches!(&refused, Err(CoreError::Invalid(message))
            if message.contains("cannot become a new device")),
        "{refused:?}"
    );
    let third = devices::resolve_device(&db.pool, &Scope::All, "INV-2")
        .await
        .unwrap();
    let outcome = resolve_as_anna(
        &db.pool,
        item,
        review::Resolution::LinkTo(third),
        &no_priority,
    )
    .await
    .unwrap();
    assert!(
        outcome.contains("serial number 'SER00001' stays with device SER00001"),
        "{outcome}"
    );
    let third = devices::show_device(&db.pool, &Scope::All, "INV-2")
        .await
        .unwrap();
    assert!(third.links.iter().any(|l| l.external_id == "mobile:1"));
}

#[tokio::test]
async fn a_serial_claimed_earlier_in_the_same_page_is_held_for_review_too() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let mut initial = fleet(3);
    // Devices 1 and 2 have no serial yet (a placeholder), so taking one is no change of serial.
    for (index, tag) in [(1, "INV-1"), (2, "INV-2")] {
        initial[index].serial_number = Some("0".into());
        initial[index].udid = Some(format!("UDID-{index}"));
        initial[index].asset_tag = Some(tag.into());
    }
    sync_records(&db.pool, &clock, source, initial.clone()).await;

    // In one page: device 0's record reports the serial a new record brings, and devices 1
    // and 2 both report one serial that no device carried before.
    let mut records = initial;
    records[0].serial_number = Some("SERNEW".into());
    records[1].serial_number = Some("SERTWICE".into());
    records[2].serial_number = Some("SERTWICE".into());
    records.push(ipad("mobile:new", "SERNEW"));
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, source, records).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.created, report.counts.review_items), (1, 2));

    let carriers: Vec<(String, i64)> = sqlx::query_as(
        "select serial_number, count(*) from device where serial_number is not null \
         group by serial_number order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        carriers,
        [("SER00000", 1), ("SERNEW", 1), ("SERTWICE", 1)]
            .map(|(serial, count)| (serial.to_string(), count)),
        "every serial on one device only"
    );
    let created = devices::resolve_device(&db.pool, &Scope::All, "SERNEW")
        .await
        .unwrap();
    let took = devices::resolve_device(&db.pool, &Scope::All, "SERTWICE")
        .await
        .unwrap();
    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    let mut conflicts: Vec<(Option<String>, Uuid)> = items
        .iter()
        .filter(|item| item.kind == review::SERIAL_CONFLICT)
        .map(|item| (item.external_id.clone(), item.candidates[0]))
        .collect();
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec![
            (Some("mobile:0".to_string()), created),
            (Some("mobile:2".to_string()), took)
        ],
        "each names the device that carries the serial first"
    );

    // Resolving keeps serials unique too: no new device with a carried serial, and a record
    // linked to a third device leaves that device its serial.
    let no_priority = Default::default();
    let resolve = |item, resolution| resolve_as_anna(&db.pool, item, resolution, &no_priority);
    let refused = resolve(
        review_item_for(&items, "mobile:0"),
        review::Resolution::CreateNew,
    )
    .await;
    assert!(
        matches!(&refused, Err(CoreError::Invalid(message))
            if message.contains("serial number 'SERNEW' is carried by device SERNEW")),
        "{refused:?}"
    );
    let outcome = resolve(
        review_item_for(&items, "mobile:2"),
        review::Resolution::LinkTo(created),
    )
    .await
    .unwrap();
    assert!(
        outcome.contains("serial number 'SERTWICE' stays with device INV-1"),
        "{outcome}"
    );
    let linked = devices::show_device(&db.pool, &Scope::All, &created.to_string())
        .await
        .unwrap();
    assert_eq!(linked.device.serial_number.as_deref(), Some("SERNEW"));
    assert!(linked.links.iter().any(|l| l.external_id == "mobile:2"));
}

#[tokio::test]
async fn a_record_reporting_a_serial_another_device_carries_is_held_for_review() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let (jamf, intune) = (&sources[0], &sources[1]);
    let mut initial = fleet(2);
    initial[0].asset_tag = Some("INV-7".into());
    sync_records(&db.pool, &clock, jamf, initial.clone()).await;
    sync_records(&db.pool, &clock, intune, vec![ipad("i:9", "SERX")]).await;
    let first = devices::resolve_device(&db.pool, &Scope::All, "SER00000")
        .await
        .unwrap();
    let other = devices::resolve_device(&db.pool, &Scope::All, "SERX")
        .await
        .unwrap();

    // Jamf's first record now reports the serial of the Intune device. (A serial nobody
    // carries is held too, as `serial_changed`: see device_identity.)
    let mut records = initial;
    records[0].serial_number = Some("serx".into());
    records[0].os_version = Some("18.2".into());
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, jamf, records.clone()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!((report.counts.updated, report.counts.review_items), (1, 1));
    assert!(
        report.warnings.iter().any(|w| w.contains(
            "serial number 'SERX' is already carried by device SERX; device INV-7 keeps \
                 serial number 'SER00000'"
        )),
        "{:?}",
        report.warnings
    );
    let carriers: i64 =
        sqlx::query_scalar("select count(*) from device where serial_number = 'SERX'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(carriers, 1, "no second device with that serial");
    let held = devices::show_device(&db.pool, &Scope::All, &first.to_string())
        .await
        .unwrap();
    assert_eq!(held.device.serial_number.as_deref(), Some("SER00000"));
    assert_eq!(
        held.device.os_version.as_deref(),
        Some("18.2"),
        "the rest applies"
    );
    let update = held
        .history
        .iter()
        .rev()
        .find(|e| e.kind == "updated")
        .unwrap();
    assert!(update.changes.get("serial_number").is_none());

    let items = review::list_review(&db.pool, &Scope::All, Some("open"))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, review::SERIAL_CONFLICT);
    assert_eq!(items[0].candidates, vec![other, first]);
    assert_eq!(
        items[0].candidate_labels,
        ["SERX", "INV-7"],
        "named as people name them"
    );
    assert_eq!(items[0].external_id.as_deref(), Some("mobile:0"));
    let again = sync_records(&db.pool, &clock, jamf, records.clone()).await;
    assert_eq!((again.counts.unchanged, again.counts.review_items), (2, 0));
    assert_eq!(
        review::list_review(&db.pool, &Scope::All, Some("open"))
            .await
            .unwrap()
            .len(),
        1
    );

    let item = items[0].review_item_id;
    // Resolving merges as a run does: Intune wins the OS version it reports.
    let priority = sync::merge::FieldPriority(
        [(
            "os_version".to_string(),
            vec!["intune".to_string(), "jamf".to_string()],
        )]
        .into(),
    );
    let refused = resolve_as_anna(&db.pool, item, review::Resolution::CreateNew, &priority).await;
    assert!(
        matches!(&refused, Err(CoreError::Invalid(message)) if message.contains("--link")),
        "{refused:?}"
    );
    let outcome = resolve_as_anna(&db.pool, item, review::Resolution::LinkTo(other), &priority)
        .await
        .unwrap();
    // The record's asset tag is still on the device it left: it stays there, not a failure.
    assert!(
        outcome.contains("asset tag 'INV-7' stays with device SER00000"),
        "{outcome}"
    );
    let linked = devices::show_device(&db.pool, &Scope::All, "SERX")
        .await
        .unwrap();
    assert_eq!(linked.device.asset_tag, None);
    assert_eq!(
        linked.device.os_version.as_deref(),
        Some("17.6.1"),
        "Intune's, by priority"
    );
    let mut sources_of_other: Vec<(String, String)> = linked
        .links
        .iter()
        .map(|l| (l.source_name.clone(), l.external_id.clone()))
        .collect();
    sources_of_other.sort();
    assert_eq!(
        sources_of_other,
        vec![
            ("intune".to_string(), "i:9".to_string()),
            ("jamf".to_string(), "mobile:0".to_string())
        ]
    );
    let left = devices::show_device(&db.pool, &Scope::All, &first.to_string())
        .await
        .unwrap();
    assert!(left.links.is_empty(), "{:?}", left.links);
    assert_eq!(left.device.asset_tag.as_deref(), Some("INV-7"));
    let unlinked = left.history.iter().find(|e| e.kind == "unlinked").unwrap();
    assert_eq!(unlinked.changes["source_link"]["old"], "jamf:mobile:0");
    assert_eq!(unlinked.changes["moved_to"]["new"], other.to_string());

    let after = sync_records(&db.pool, &clock, jamf, records).await;
    assert_eq!((after.counts.unchanged, after.counts.review_items), (2, 0));
}

#[tokio::test]
async fn a_device_moving_to_another_mdm_stays_one_device_and_its_old_link_is_ended() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "relution"]).await;
    let (jamf, relution) = (&sources[0], &sources[1]);
    sync_records(&db.pool, &clock, jamf, fleet(100)).await;
    let before = devices::show_device(&db.pool, &Scope::All, "SER00050")
        .await
        .unwrap();

    // 80 iPads are enrolled in Relution (new ids there, same serials) ...
    let moved: Vec<_> = fleet(100)
        .into_iter()
        .skip(20)
        .map(|mut record| {
            record.external_id = record.external_id.replace("mobile:", "relution-");
            record
        })
        .collect();
    let report = sync_records(&db.pool, &clock, relution, moved).await;
    assert_eq!((report.counts.created, report.counts.updated), (0, 80));

    // ... and removed from Jamf Pro: far above the deletion guard's limit, but nothing is lost.
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, jamf, fleet(20)).await;
    assert_eq!(
        report.status,
        SyncStatus::Succeeded,
        "{:?}",
        report.blocked_reason
    );
    assert_eq!((report.counts.moved, report.counts.marked_missing), (80, 0));

    let after = devices::show_device(&db.pool, &Scope::All, "SER00050")
        .await
        .unwrap();
    assert_eq!(after.device.device_id, before.device.device_id);
    assert_eq!(after.history[0].kind, "created", "history kept");
    assert!(after
        .history
        .iter()
        .any(|e| e.kind == "moved" && e.changes["moved_to"]["new"] == "relution"));
    let old = after
        .links
        .iter()
        .find(|l| l.source_name == "jamf")
        .unwrap();
    assert_eq!(old.ended_reason.as_deref(), Some("moved to relution"));
    assert!(old.missing_since.is_none());
    let missing = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(missing.is_empty());
    let runs = runs::list_runs(&db.pool, &Scope::All, Some("jamf"), 1)
        .await
        .unwrap();
    assert_eq!(runs[0].moved, 80);
}

#[tokio::test]
async fn a_field_priority_decides_between_sources_and_disagreements_are_listed() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let (jamf, intune) = (&sources[0], &sources[1]);
    let priority = bestand_core::sync::merge::FieldPriority(
        [("os_version".to_string(), vec!["intune".to_string()])].into(),
    );
    let with_priority = SyncOptions {
        dry_run: false,
        guard: DeletionGuard::default(),
        field_priority: priority,
        ..SyncOptions::default()
    };
    let run =
        |source, records| sync_records_with(&db.pool, &clock, source, records, &with_priority);

    let mut from_intune = fleet(3);
    for record in &mut from_intune {
        record.external_id = record.external_id.replace("mobile:", "intune-");
        record.os_version = Some("17.7".into());
    }
    run(intune, from_intune).await;
    // Jamf reports an older OS for device 1 only; the other two agree.
    let mut from_jamf = fleet(3);
    for record in &mut from_jamf {
        record.os_version = Some("17.7".into());
    }
    from_jamf[1].os_version = Some("16.2".into());
    run(jamf, from_jamf).await;

    let device = devices::show_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();
    assert_eq!(
        device.device.os_version.as_deref(),
        Some("17.7"),
        "intune wins the OS version"
    );
    let reported: Vec<_> = device
        .links
        .iter()
        .map(|l| l.reported["os_version"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reported.contains(&"16.2".to_string()),
        "the losing value stays visible: {reported:?}"
    );

    let conflicts = devices::list_devices(
        &db.pool,
        &Scope::All,
        &devices::DeviceFilter {
            conflicts: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        conflicts
            .iter()
            .map(|d| d.serial_number.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["SER00001"]
    );
}

/// The payload each live link reaches, by external id, and how many payload rows exist.
async fn reachable_payloads(pool: &sqlx::PgPool) -> (Vec<(String, String)>, i64) {
    let reachable = sqlx::query_as(
        "select l.external_id, p.payload->>'v' from source_link l \
         join source_payload p using (source_id, external_id, content_hash) \
         order by l.external_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let rows = sqlx::query_scalar("select count(*) from source_payload")
        .fetch_one(pool)
        .await
        .unwrap();
    (reachable, rows)
}

fn with_payload(
    mut records: Vec<bestand_core::record::DeviceRecord>,
    version: &str,
) -> Vec<bestand_core::record::DeviceRecord> {
    for record in &mut records {
        record.payload = serde_json::json!({ "id": record.external_id, "v": version }).to_string();
    }
    records
}

#[tokio::test]
async fn raw_payloads_follow_the_link_version_and_replaced_ones_are_swept() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, with_payload(fleet(3), "1")).await;
    let (reachable, rows) = reachable_payloads(&db.pool).await;
    assert_eq!(
        reachable,
        vec![
            ("mobile:0".to_string(), "1".to_string()),
            ("mobile:1".to_string(), "1".to_string()),
            ("mobile:2".to_string(), "1".to_string()),
        ]
    );
    assert_eq!(rows, 3);

    // A changed record stores its new payload; the replaced one is unreachable at once.
    let mut changed = with_payload(fleet(3), "2");
    changed[1].os_version = Some("18.1".into());
    clock.advance(Duration::hours(1));
    sync_records(&db.pool, &clock, source, changed.clone()).await;
    let (reachable, _) = reachable_payloads(&db.pool).await;
    let versions: Vec<&str> = reachable.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        versions,
        ["1", "2", "1"],
        "only the changed record's payload is replaced (unchanged records write nothing)"
    );

    // The next run sweeps the replaced version before writing its own.
    clock.advance(Duration::hours(1));
    sync_records(&db.pool, &clock, source, changed).await;
    assert_eq!(reachable_payloads(&db.pool).await.1, 3);
}

#[tokio::test]
async fn payload_rows_of_a_run_that_failed_after_its_writer_committed_are_swept() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, with_payload(fleet(2), "1")).await;
    // What such a run leaves: a row for a version no link carries (its link update rolled back).
    sqlx::query(
        "insert into source_payload (source_id, external_id, content_hash, authority_id, payload) \
         select source_id, external_id, '\\x00'::bytea, authority_id, '{\"v\": \"lost\"}' \
         from source_link where external_id = 'mobile:0'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(reachable_payloads(&db.pool).await.1, 3);

    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, source, with_payload(fleet(2), "1")).await;
    assert_eq!(report.counts.unchanged, 2);
    let (reachable, rows) = reachable_payloads(&db.pool).await;
    assert_eq!(
        (reachable.len(), rows),
        (2, 2),
        "the unreachable row is gone"
    );
}

#[tokio::test]
async fn a_payload_the_database_rejects_fails_the_run_and_changes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(150)).await;
    let before = inventory_fingerprint(&db.pool).await;

    let mut changed = fleet(250);
    changed[0].os_version = Some("99".into());
    changed[180].payload = "{\"truncated\": ".into();
    clock.advance(Duration::hours(1));
    let report = sync_records(&db.pool, &clock, source, changed).await;
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("source 'jamf'")
            && error.contains("storing the raw payloads failed, nothing was changed")
            && error.contains("json"),
        "{error}"
    );
    assert_eq!(inventory_fingerprint(&db.pool).await, before);
}

#[tokio::test]
async fn a_running_sync_keeps_its_authority_and_schools_from_being_deleted() {
    // The devices a run creates skip PostgreSQL's per-row reference checks (the test cluster's
    // role is a superuser); the run's own locks must then protect what they reference.
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let (sender, pages) = tokio::sync::mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    let signal = PageSignal(tokio::sync::Notify::new());
    let options = options();
    let run = sync::run_sync(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        pages,
        &options,
        &signal,
    );

    let meddle = async {
        sender
            .send(sync::SourceItem::Page(sync::SourcePage {
                label: "mobile-devices page 0".into(),
                records: fleet(20),
                announced_total: Some(20),
            }))
            .await
            .unwrap();
        signal.0.notified().await;
        let mut other = db.pool.acquire().await.unwrap();
        let mut refused = Vec::new();
        for delete in [
            "delete from school where school_number = '100001'",
            "delete from school_authority",
            "delete from source",
        ] {
            let mut tx = other.begin().await.unwrap();
            sqlx::query("set local lock_timeout = '300ms'")
                .execute(&mut *tx)
                .await
                .unwrap();
            let error = sqlx::query(delete).execute(&mut *tx).await.err();
            refused.push(
                error
                    .as_ref()
                    .and_then(|e| e.as_database_error())
                    .and_then(|e| e.code())
                    .map(|code| code.to_string()),
            );
            tx.rollback().await.unwrap();
        }
        sender
            .send(sync::SourceItem::Complete { reported_total: 20 })
            .await
            .unwrap();
        refused
    };
    let (report, refused) = tokio::join!(run, meddle);
    let report = report.unwrap();
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.created, 20);
    let lock_not_available = Some("55P03".to_string());
    assert_eq!(
        refused,
        vec![lock_not_available; 3],
        "each delete waits for the run"
    );

    let at_school = devices_at_school(&db.pool, "100001").await;
    assert_eq!(at_school.len(), 20);
}

#[tokio::test]
async fn a_persons_change_made_while_a_run_merges_the_device_is_kept() {
    // A run writes back whole device rows merged from what it read. A loan step that sets the
    // lifecycle state and commits after the run's read but before its write must survive.
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    sync_records(&db.pool, &clock, source, fleet(3)).await;
    clock.advance(Duration::hours(1));

    // The loan step (what `loans return --damaged` does) holds the row while the run starts.
    let mut person = db.pool.acquire().await.unwrap();
    let mut step = person.begin().await.unwrap();
    sqlx::query(
        "update device set lifecycle_state = 'to_check', \
         field_origin = (field_origin::jsonb || '{\"lifecycle_state\": \"user:anna\"}')::json \
         where serial_number = 'SER00001'",
    )
    .execute(&mut *step)
    .await
    .unwrap();

    let mut changed = fleet(3);
    changed[1].os_version = Some("18.1".into());
    let run = sync_records(&db.pool, &clock, source, changed);
    let commit_once_the_run_waits = async {
        let mut waited = 0;
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity \
                 where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            waited += 1;
            assert!(waited < 500, "the run never reached the locked device");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        step.commit().await.unwrap();
    };
    let (report, ()) = tokio::join!(run, commit_once_the_run_waits);
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.updated, 1);

    let detail = devices::show_device(&db.pool, &Scope::All, "SER00001")
        .await
        .unwrap();
    assert_eq!(detail.device.os_version.as_deref(), Some("18.1"));
    assert_eq!(
        detail.device.lifecycle_state, "to_check",
        "the run must not write back the state it read before the loan step"
    );
    assert_eq!(detail.device.field_origin["lifecycle_state"], "user:anna");
    let update = detail.history.iter().find(|e| e.kind == "updated").unwrap();
    assert!(update.changes.get("lifecycle_state").is_none());
}

#[tokio::test]
async fn a_role_that_may_not_switch_off_row_checks_syncs_all_the_same() {
    let db = test_db().await;
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let role = format!("r_{}", uuid::Uuid::new_v4().simple());
    for statement in [
        format!("create role {role} login nosuperuser"),
        format!("grant usage on schema public to {role}"),
        format!("grant select, insert, update, delete on all tables in schema public to {role}"),
        format!("grant usage on all sequences in schema public to {role}"),
    ] {
        sqlx::query(&statement).execute(&db.pool).await.unwrap();
    }
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let limited = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect_with(options.username(&role))
        .await
        .unwrap();
    let superuser: bool = sqlx::query_scalar("select current_setting('is_superuser') = 'on'")
        .fetch_one(&limited)
        .await
        .unwrap();
    assert!(!superuser);

    let first = sync_records(&limited, &clock, source, fleet(120)).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{:?}", first.error);
    assert_eq!((first.counts.created, first.counts.updated), (120, 0));
    let mut changed = fleet(121);
    changed[3].os_version = Some("18.1".into());
    clock.advance(Duration::hours(1));
    let second = sync_records(&limited, &clock, source, changed).await;
    assert_eq!(second.status, SyncStatus::Succeeded, "{:?}", second.error);
    assert_eq!((second.counts.created, second.counts.updated), (1, 1));
    let counts = table_counts(&db.pool).await;
    limited.close().await;
    for statement in [format!("drop owned by {role}"), format!("drop role {role}")] {
        sqlx::query(&statement).execute(&db.pool).await.unwrap();
    }
    let expected: Vec<(String, i64)> = [
        ("device", 121),
        ("source_link", 121),
        ("source_payload", 122),
        ("device_event", 122),
        ("review_item", 0),
    ]
    .into_iter()
    .map(|(table, n)| (table.to_string(), n))
    .collect();
    assert_eq!(counts, expected, "every device, link, payload and event");
}

async fn devices_at_school(pool: &sqlx::PgPool, school: &str) -> Vec<devices::DeviceSummary> {
    let filter = devices::DeviceFilter {
        school: Some(school.into()),
        ..Default::default()
    };
    devices::list_devices(pool, &Scope::All, &filter)
        .await
        .unwrap()
}

#[tokio::test]
async fn migration_10_copies_the_user_hints_of_existing_links_into_their_columns() {
    let db = empty_test_db().await;
    // The schema as it was before migration 10, from the same files (same checksums).
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let before = std::env::temp_dir().join(format!("bestand-m9-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&before).unwrap();
    for entry in std::fs::read_dir(workspace.join("migrations")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "20261204000010" {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap();
    migrator.run(&db.pool).await.unwrap();
    std::fs::remove_dir_all(&before).unwrap();

    sqlx::raw_sql(
        "insert into school_authority (slug, name) values ('musterstadt', 'Musterstadt'); \
         insert into source (authority_id, name, kind) \
           select authority_id, 'jamf', 'jamf_pro' from school_authority; \
         insert into device (device_id, authority_id, first_seen_at, updated_at) \
           select gen_random_uuid(), authority_id, now(), now() from school_authority; \
         insert into source_link (source_link_id, authority_id, source_id, device_id, external_id, \
           normalized, content_hash, first_seen_at, last_seen_at) \
           select gen_random_uuid(), d.authority_id, s.source_id, d.device_id, e.id, e.normalized, \
             '\\x00', now(), now() \
           from device d, source s, (values \
             ('mobile:1', '{\"user\": {\"username\": \"m.muster\", \"email\": \"m@schule.example\"}}'::json), \
             ('mobile:2', '{\"user\": {\"username\": null, \"email\": null}}'::json)) as e(id, normalized);",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    bestand_core::store::migrate(&db.pool).await.unwrap();
    let hints: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select external_id, hint_username, hint_email from source_link order by external_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        hints,
        vec![
            (
                "mobile:1".to_string(),
                Some("m.muster".to_string()),
                Some("m@schule.example".to_string())
            ),
            ("mobile:2".to_string(), None, None),
        ]
    );
}

#[tokio::test]
async fn a_large_first_import_refreshes_the_planner_statistics_a_small_run_leaves_them() {
    let last_analyze = |pool: sqlx::PgPool| async move {
        let at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "select last_analyze from pg_stat_user_tables where relname = 'device'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        at
    };
    let small = test_db().await;
    let clock = clock();
    let source = &musterstadt(&small.pool, &["jamf"]).await[0];
    sync_records(&small.pool, &clock, source, fleet(300)).await;
    assert_eq!(last_analyze(small.pool.clone()).await, None);

    let large = test_db().await;
    let source = &musterstadt(&large.pool, &["jamf"]).await[0];
    let report = sync_records(&large.pool, &clock, source, fleet(1_200)).await;
    assert_eq!(report.counts.created, 1_200);
    assert!(last_analyze(large.pool.clone()).await.is_some());
    let estimated: f32 =
        sqlx::query_scalar("select reltuples from pg_class where relname = 'device'")
            .fetch_one(&large.pool)
            .await
            .unwrap();
    assert_eq!(estimated, 1_200.0, "the planner knows the table's size");
    // Only some columns were analyzed, so autovacuum's full analyze stays due.
    let pending: i64 = sqlx::query_scalar(
        "select n_mod_since_analyze from pg_stat_user_tables where relname = 'device'",
    )
    .fetch_one(&large.pool)
    .await
    .unwrap();
    assert_eq!(pending, 1_200);
}

#[tokio::test]
async fn two_sources_deadlocking_on_the_same_devices_both_apply_one_run_started_again() {
    let db = test_db().await;
    let clock = clock();
    let sources = musterstadt(&db.pool, &["jamf", "intune"]).await;
    let (jamf, intune) = (&sources[0], &sources[1]);
    let from_jamf = fleet(2);
    let from_intune: Vec<_> = from_jamf
        .iter()
        .map(|record| {
            let serial = record.serial_number.as_deref().unwrap();
            // Names are Jamf's alone here: a name Intune reported would win whenever it ran last.
            let mut record = ipad(&format!("intune-{serial}"), serial);
            record.name = None;
            record
        })
        .collect();
    sync_records(&db.pool, &clock, jamf, from_jamf.clone()).await;
    sync_records(&db.pool, &clock, intune, from_intune.clone()).await;
    clock.advance(Duration::hours(1));

    // Jamf renames both devices, Intune gives both a room; each reports them in the other order.
    let mut renamed = from_jamf;
    for record in &mut renamed {
        record.name = Some(format!("renamed {}", record.external_id));
        // Rooms are Intune's alone from now on, as names are Jamf's.
        record.location.room = None;
    }
    let mut roomed = from_intune;
    for record in &mut roomed {
        record.location.room = Some(format!("room {}", record.external_id));
    }
    roomed.reverse();
    let page = |label: &str, record: &bestand_core::record::DeviceRecord| {
        sync::SourceItem::Page(sync::SourcePage {
            label: label.into(),
            records: vec![record.clone()],
            announced_total: Some(2),
        })
    };
    // Each source's first run gets its pages from the test, one at a time; a run started again
    // gets them all at once.
    let gated = |records: &Vec<bestand_core::record::DeviceRecord>| {
        let (sender, receiver) = tokio::sync::mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
        let mut first = Some(receiver);
        let records = records.clone();
        let fetch = move || {
            first
                .take()
                .unwrap_or_else(|| scripted(records.clone(), 1, End::Complete))
        };
        (sender, fetch)
    };
    let (to_jamf, jamf_fetch) = gated(&renamed);
    let (to_intune, intune_fetch) = gated(&roomed);
    let jamf_applied = PageSignal(tokio::sync::Notify::new());
    let intune_applied = PageSignal(tokio::sync::Notify::new());
    let options = options();
    let jamf_run = sync::run_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        jamf,
        jamf_fetch,
        &options,
        &jamf_applied,
    );
    let intune_run = sync::run_sync_retrying(
        &db.pool,
        clock.as_ref(),
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        intune,
        intune_fetch,
        &options,
        &intune_applied,
    );
    let driver = async {
        // Each run holds the device of its first page until it commits, then asks for the
        // other's.
        to_jamf.send(page("page 0", &renamed[0])).await.unwrap();
        jamf_applied.0.notified().await;
        to_intune.send(page("page 0", &roomed[0])).await.unwrap();
        intune_applied.0.notified().await;
        for (sender, record) in [(&to_jamf, &renamed[1]), (&to_intune, &roomed[1])] {
            sender.send(page("page 1", record)).await.unwrap();
            sender
                .send(sync::SourceItem::Complete { reported_total: 2 })
                .await
                .unwrap();
        }
    };
    let (jamf_report, intune_report, ()) = tokio::join!(jamf_run, intune_run, driver);
    let reports = [jamf_report.unwrap(), intune_report.unwrap()];
    for report in &reports {
        assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
        assert_eq!(report.counts.updated, 2);
    }
    let retried: Vec<i64> = reports
        .iter()
        .flat_map(|report| report.retried_runs.clone())
        .collect();
    assert_eq!(retried.len(), 1, "one run lost the deadlock: {reports:?}");
    let lost = runs::list_runs(&db.pool, &Scope::All, None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|run| run.sync_run_id == retried[0])
        .unwrap();
    assert_eq!(lost.status, "failed");
    assert!(
        lost.error
            .as_deref()
            .is_some_and(|error| error.contains("rolled this run back to end the deadlock")),
        "{:?}",
        lost.error
    );

    for serial in ["SER00000", "SER00001"] {
        let device = devices::show_device(&db.pool, &Scope::All, serial)
            .await
            .unwrap()
            .device;
        assert!(
            device
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("renamed")),
            "{device:?}"
        );
        assert_eq!(
            device.room.as_deref(),
            Some(format!("room intune-{serial}").as_str())
        );
    }
}

/// The reference columns that carry no declared foreign key, as `table.column`, computed from
/// the catalog: a column named like the one-column primary key of another table, which no
/// foreign key covers. A primary key that is itself a foreign key (`ticket_watermark.source_id`,
/// one row per source) names no entity of its own and is not such a key.
async fn undeclared_references(pool: &sqlx::PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "with pk as ( \
             select c.relname as parent, a.attname as col from pg_constraint k \
             join pg_class c on c.oid = k.conrelid \
             join pg_attribute a on a.attrelid = c.oid and a.attnum = k.conkey[1] \
             where k.contype = 'p' and cardinality(k.conkey) = 1 \
               and c.relnamespace = 'public'::regnamespace \
               and not exists (select 1 from pg_constraint f where f.contype = 'f' \
                               and f.conrelid = c.oid and k.conkey[1] = any(f.conkey))) \
         select t.relname::text, a.attname::text, pk.parent::text from pg_attribute a \
         join pg_class t on t.oid = a.attrelid \
         join pk on pk.col = a.attname and pk.parent <> t.relname \
         where t.relkind = 'r' and t.relnamespace = 'public'::regnamespace \
           and a.attnum > 0 and not a.attisdropped \
           and not exists (select 1 from pg_constraint f where f.contype = 'f' \
                           and f.conrelid = t.oid and a.attnum = any(f.conkey)) \
         order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_undeclared_foreign_keys_are_the_documented_ones_and_hold() {
    // ARCHITECTURE.md names the reference columns that skip a declared foreign key, and why;
    // this keeps that list and the schema in step, and shows that the engine keeps them true.
    let architecture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/ARCHITECTURE.md"
    ))
    .unwrap();
    let invariant = architecture
        .lines()
        .find(|line| line.contains("Architecture Invariant:") && line.contains("foreign key"))
        .expect("ARCHITECTURE.md states the foreign-key invariant");
    let documented: Vec<String> = invariant
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.split_once('.').is_some_and(|(table, column)| {
                !table.is_empty() && column.ends_with("_id") && !column.contains('.')
            })
        })
        .map(str::to_string)
        .collect();

    let db = test_db().await;
    let undeclared = undeclared_references(&db.pool).await;
    let mut found: Vec<String> = undeclared
        .iter()
        .map(|(table, column, _)| format!("{table}.{column}"))
        .collect();
    // The paragraph may name a column more than once.
    let mut documented = documented;
    documented.sort();
    documented.dedup();
    found.sort();
    assert_eq!(
        found, documented,
        "the undeclared foreign keys differ from those docs/ARCHITECTURE.md names"
    );

    // A first sync (rows created with per-row checks skipped), a changed one (events of
    // existing devices) and user hints (assignments) write every one of those columns.
    let clock = clock();
    let source = &musterstadt(&db.pool, &["jamf"]).await[0];
    let with_users = |os: &str| {
        let mut records = fleet(30);
        for (i, record) in records.iter_mut().enumerate() {
            record.user.username = Some(format!("user{i}"));
            record.os_version = Some(os.into());
        }
        records
    };
    let first = sync_records(&db.pool, &clock, source, with_users("17.6.1")).await;
    assert_eq!(first.status, SyncStatus::Succeeded, "{:?}", first.error);
    clock.advance(Duration::hours(1));
    let second = sync_records(&db.pool, &clock, source, with_users("18.1")).await;
    assert_eq!(second.counts.updated, 30, "{:?}", second.error);

    for (table, column, parent) in &undeclared {
        let (rows, dangling, other_authority): (i64, i64, i64) = sqlx::query_as(&format!(
            "select count(*), \
                 count(*) filter (where t.{column} is not null and not exists \
                     (select 1 from {parent} p where p.{column} = t.{column})), \
                 count(*) filter (where t.authority_id <> coalesce( \
                     (select d.authority_id from device d where d.device_id = \
                         (to_jsonb(t) ->> 'device_id')::uuid), \
                     (select s.authority_id from source s where s.source_id = \
                         (to_jsonb(t) ->> 'source_id')::uuid), \
                     t.authority_id)) \
             from {table} t"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(
            rows > 0,
            "{table} has no rows; the check would prove nothing"
        );
        assert_eq!(dangling, 0, "{table}.{column} points at a missing {parent}");
        assert_eq!(
            other_authority, 0,
            "{table}.authority_id differs from its owner's"
        );
    }
}
