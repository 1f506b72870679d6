//! Shared test support: a fresh, migrated database per test, and scripted sources.
//!
//! The database server is the throwaway cluster `cargo xtask test` starts; its URL arrives in
//! `BESTAND_TEST_DATABASE_URL`. Each test gets a database of its own inside it.

use std::sync::Arc;

use bestand_connectors::{spawn_fetch, Connector};
use bestand_core::access::{Actor, Scope};
use bestand_core::model::{DeviceCategory, SchoolType};
use bestand_core::record::DeviceRecord;
use bestand_core::store::{self, AuthoritySpec, SchoolSpec, SourceRef, SourceSpec};
use bestand_core::sync::merge::FieldPriority;
use bestand_core::sync::{self, FetchFailure, SourceItem, SourcePage, SyncOptions, SyncReport};
use bestand_core::FixedClock;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::mpsc;

pub const DATABASE_URL_VAR: &str = "BESTAND_TEST_DATABASE_URL";

/// A migrated database of its own for one test.
pub struct TestDb {
    pub pool: PgPool,
    /// A URL of this database, for code that connects by itself.
    pub url: String,
}

pub async fn test_db() -> TestDb {
    let db = empty_test_db().await;
    store::migrate(&db.pool).await.expect("migrations apply");
    db
}

/// A database of its own for one test, without the schema (for tests of migrations).
pub async fn empty_test_db() -> TestDb {
    let url = std::env::var(DATABASE_URL_VAR).unwrap_or_else(|_| {
        panic!("{DATABASE_URL_VAR} is not set: run the suite with `cargo xtask test`, which starts PostgreSQL")
    });
    let admin_options: PgConnectOptions = url
        .parse()
        .expect("BESTAND_TEST_DATABASE_URL is not a PostgreSQL URL");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = admin_options
        .connect()
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(admin_options.database(&name))
        .await
        .expect("connect to the test database");
    let url = database_url(&url, &name);
    TestDb { pool, url }
}

/// `url` (the cluster's) with its database replaced by `name`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let after_scheme = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |at| after_scheme + at);
    let authority = &base[..authority_end];
    match query {
        Some(query) => format!("{authority}/{name}?{query}"),
        None => format!("{authority}/{name}"),
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap()
}

/// Musterstadt with two schools and one Jamf source.
pub async fn musterstadt(pool: &PgPool, source_names: &[&str]) -> Vec<SourceRef> {
    let authority = AuthoritySpec {
        slug: "musterstadt".into(),
        name: "Stadt Musterstadt".into(),
        shared_macs: vec![],
        schools: vec![
            SchoolSpec {
                number: "100001".into(),
                name: "Grundschule Lindenweg".into(),
                school_type: SchoolType::Grundschule,
                aliases: vec!["GS Lindenweg".into()],
            },
            SchoolSpec {
                number: "100002".into(),
                name: "Gymnasium am Stadtpark".into(),
                school_type: SchoolType::Gymnasium,
                aliases: vec![],
            },
        ],
    };
    let sources: Vec<SourceSpec> = source_names
        .iter()
        .map(|name| SourceSpec {
            name: name.to_string(),
            kind: "jamf_pro".into(),
            authority_slug: "musterstadt".into(),
        })
        .collect();
    store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &[authority],
        &sources,
    )
    .await
    .expect("directory applies")
}

/// Registers a directory source `name` (kind `ucs_ldap`) of Musterstadt; call after
/// `musterstadt`.
pub async fn directory_source(pool: &PgPool, name: &str) -> SourceRef {
    store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &[],
        &[SourceSpec {
            name: name.into(),
            kind: "ucs_ldap".into(),
            authority_slug: "musterstadt".into(),
        }],
    )
    .await
    .expect("directory source registers")
    .remove(0)
}

/// An iPad record with the given source id and serial.
pub fn ipad(external_id: &str, serial: &str) -> DeviceRecord {
    let mut record = DeviceRecord {
        external_id: external_id.into(),
        category: DeviceCategory::Tablet,
        name: Some(format!("iPad {external_id}")),
        serial_number: Some(serial.into()),
        udid: Some(format!("UDID-{serial}")),
        manufacturer: Some("Apple".into()),
        model: Some("iPad (9th generation)".into()),
        model_identifier: Some("iPad12,1".into()),
        os_name: Some("iPadOS".into()),
        os_version: Some("17.6.1".into()),
        payload: serde_json::json!({ "id": external_id }).to_string(),
        ..DeviceRecord::default()
    };
    record.location.school = Some("Grundschule Lindenweg".into());
    record.location.room = Some("R 104".into());
    record.purchase.warranty_end = chrono::NaiveDate::from_ymd_opt(2027, 8, 14);
    record
}

/// `count` iPads with ids `mobile:0..count` and serials `SER00000..`.
pub fn fleet(count: usize) -> Vec<DeviceRecord> {
    (0..count)
        .map(|i| ipad(&format!("mobile:{i}"), &format!("SER{i:05}")))
        .collect()
}

/// What a scripted source sends after its pages.
pub enum End {
    Complete,
    CompleteClaiming(u64),
    Fail(&'static str),
    Vanish,
}

/// A source that sends `records` in pages of `page_size`, then `end`.
pub fn scripted(
    records: Vec<DeviceRecord>,
    page_size: usize,
    end: End,
) -> mpsc::Receiver<SourceItem> {
    let (sender, receiver) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    let total = records.len() as u64;
    tokio::spawn(async move {
        let mut records = records.into_iter().peekable();
        let mut page_number = 0;
        while records.peek().is_some() {
            let page: Vec<DeviceRecord> = records.by_ref().take(page_size).collect();
            let item = SourcePage {
                label: format!("mobile-devices page {page_number}"),
                records: page,
                announced_total: Some(total),
            };
            if sender.send(SourceItem::Page(item)).await.is_err() {
                return;
            }
            page_number += 1;
        }
        let end = match end {
            End::Complete => SourceItem::Complete {
                reported_total: total,
            },
            End::CompleteClaiming(claimed) => SourceItem::Complete {
                reported_total: claimed,
            },
            End::Fail(cause) => SourceItem::Failed(FetchFailure {
                page: Some(format!("mobile-devices page {page_number}")),
                cause: cause.into(),
            }),
            End::Vanish => return,
        };
        let _ = sender.send(end).await;
    });
    receiver
}

pub fn options() -> SyncOptions {
    SyncOptions::default()
}

/// Runs one sync of `source` over `records` with default options.
pub async fn sync_records(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    records: Vec<DeviceRecord>,
) -> SyncReport {
    sync_records_with(pool, clock, source, records, &options()).await
}

/// Runs one sync of `source` over `records` with `options`.
pub async fn sync_records_with(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    records: Vec<DeviceRecord>,
    options: &SyncOptions,
) -> SyncReport {
    sync::run_sync(
        pool,
        clock,
        &bestand_core::Scope::All,
        &bestand_core::Actor::System("test"),
        source,
        scripted(records, 100, End::Complete),
        options,
        &sync::NoProgress,
    )
    .await
    .expect("run is recorded")
}

pub fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(t0()))
}

/// Reads a clock's current value (a shorthand for assertions).
pub trait ClockValue {
    fn now_value(&self) -> DateTime<Utc>;
}

impl ClockValue for FixedClock {
    fn now_value(&self) -> DateTime<Utc> {
        bestand_core::Clock::now(self)
    }
}

/// Row counts of the inventory tables, to prove that a run changed nothing.
pub async fn table_counts(pool: &PgPool) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "device",
        "source_link",
        "source_payload",
        "device_event",
        "review_item",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push((table.to_string(), n));
    }
    counts
}

/// A fingerprint of the whole inventory state (rows and their contents).
pub async fn inventory_fingerprint(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "select md5(coalesce((select string_agg(t::text, '|' order by t::text) from device t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from source_link t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from source_payload t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from device_event t), '') || \
         coalesce((select string_agg(t::text, '|' order by t::text) from source t), ''))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Runs `connector` through `spawn_fetch`; returns the pages and the end marker.
pub async fn collect(connector: impl Connector + 'static) -> (Vec<SourcePage>, SourceItem) {
    collect_shared(Arc::new(connector)).await
}

/// `collect` for a connector already behind an `Arc`.
pub async fn collect_shared(connector: Arc<dyn Connector>) -> (Vec<SourcePage>, SourceItem) {
    let mut receiver = spawn_fetch(connector);
    let mut pages = Vec::new();
    let run = async {
        loop {
            match receiver
                .recv()
                .await
                .expect("channel closed without end marker")
            {
                SourceItem::Page(page) => pages.push(page),
                SourceItem::Schools(_) => {}
                end => return end,
            }
        }
    };
    let end = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("fetch finished in time");
    (pages, end)
}

/// The reported total of a fetch that must have completed.
pub fn complete(end: SourceItem) -> u64 {
    match end {
        SourceItem::Complete { reported_total } => reported_total,
        other => panic!("expected Complete, got {other:?}"),
    }
}

/// The failure of a fetch that must have failed.
pub fn failed(end: SourceItem) -> FetchFailure {
    match end {
        SourceItem::Failed(failure) => failure,
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// The cause of a failed fetch, after checking that the failure names `page`.
pub fn failure_at(end: SourceItem, page: &str) -> String {
    let failure = failed(end);
    assert_eq!(failure.page.as_deref(), Some(page), "{failure}");
    failure.cause
}

/// Every record of `pages`, in order.
pub fn records(pages: &[SourcePage]) -> Vec<&DeviceRecord> {
    pages.iter().flat_map(|page| &page.records).collect()
}

/// Settles review item `item` as Anna would at `t0()`, merging with `priority`.
pub async fn resolve_as_anna(
    pool: &PgPool,
    item: i64,
    resolution: store::review::Resolution,
    priority: &FieldPriority,
) -> Result<String, bestand_core::CoreError> {
    store::review::resolve_review(
        pool,
        &Scope::All,
        &Actor::CliUser("anna".into()),
        item,
        resolution,
        priority,
        t0(),
    )
    .await
}

/// The id of the review item raised about `external_id`.
pub fn review_item_for(items: &[store::review::ReviewView], external_id: &str) -> i64 {
    items
        .iter()
        .find(|item| item.external_id.as_deref() == Some(external_id))
        .unwrap_or_else(|| panic!("no review item about {external_id}"))
        .review_item_id
}

/// Tells a test when the engine has applied a page.
pub struct PageSignal(pub tokio::sync::Notify);

impl sync::SyncProgress for PageSignal {
    fn page_applied(&self, _: &str, _: usize, _: u64, _: Option<u64>) {
        self.0.notify_one();
    }
}

/// A file holding `secret`, as a `*_file` setting names it.
pub fn secret_file(secret: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "bestand-test-secret-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}
