//! Tickets in the inventory (issue 18): the ticket run against PostgreSQL (incremental and full
//! reads, the watermark, a failed read, deletions and their guard, merges), linking tickets to
//! devices (structured field, system link, title pattern, by hand) and the ticket queries.
//! The ticket system is a small in-test `TicketConnector` sending pages built here.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bestand_connectors::{spawn_ticket_fetch, TicketConnector, TicketSink};
use bestand_core::access::{Actor, Scope};
use bestand_core::model::{SchoolType, SyncStatus};
use bestand_core::store::tickets::{self, TicketFilter};
use bestand_core::store::{self, devices, AuthoritySpec, SchoolSpec, SourceRef, SourceSpec};
use bestand_core::sync::FetchFailure;
use bestand_core::sync::{self, DeletionGuard, TicketMapping, TicketSyncOptions};
use bestand_core::ticket::{
    AssetField, LinkedItem, TicketPage, TicketRead, TicketRecord, TicketState,
};
use bestand_core::{CoreError, FixedClock};
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{clock, ipad, musterstadt, sync_records, t0, test_db};

/// What the in-test ticket system does when asked.
#[derive(Clone)]
enum Ends {
    Complete,
    /// Sends the pages, then fails.
    Fail,
}

/// A ticket system that sends `tickets` in pages of two, and remembers what each read asked.
struct Scripted {
    tickets: Vec<TicketRecord>,
    end: Ends,
    asked: Mutex<Vec<TicketRead>>,
}

#[async_trait]
impl TicketConnector for Scripted {
    async fn fetch_tickets(
        &self,
        read: TicketRead,
        sink: &TicketSink,
    ) -> Result<u64, FetchFailure> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(read);
        }
        for (n, chunk) in self.tickets.chunks(2).enumerate() {
            sink.send(TicketPage {
                label: format!("tickets page {n}"),
                records: chunk.to_vec(),
                announced_total: Some(self.tickets.len() as u64),
            })
            .await?;
        }
        match self.end {
            Ends::Complete => Ok(self.tickets.len() as u64),
            Ends::Fail => Err(FetchFailure {
                page: Some("tickets page 9".into()),
                cause: "HTTP 502".into(),
            }),
        }
    }
}

fn scripted(tickets: Vec<TicketRecord>, end: Ends) -> Arc<Scripted> {
    Arc::new(Scripted {
        tickets,
        end,
        asked: Mutex::new(Vec::new()),
    })
}

/// A ticket of Grundschule Lindenweg, created `days` before `t0()` and updated an hour later.
fn ticket(id: u32, title: &str, days: i64) -> TicketRecord {
    let created = t0() - Duration::days(days);
    TicketRecord {
        external_id: id.to_string(),
        number: format!("31{id:03}"),
        title: title.into(),
        state: TicketState::Open,
        source_state: "open".into(),
        priority: Some("2 normal".into()),
        group: Some("Schul-IT".into()),
        organization: Some("GS Lindenweg".into()),
        customer_role: Some("teacher".into()),
        created_at: created,
        updated_at: created + Duration::hours(1),
        ..TicketRecord::default()
    }
}

fn mapping() -> TicketMapping {
    TicketMapping {
        topics: [("wlan".to_string(), "network".to_string())].into(),
        providers: [("dienstleister nord".to_string(), "Nord IT".to_string())].into(),
        title_patterns: vec![
            TicketMapping::title_pattern(r"(?i)\b(?P<tag>INV-\d{4,})\b").unwrap(),
            TicketMapping::title_pattern(r"(?i)\bSN:?\s*(?P<serial>[A-Z0-9]{6,})\b").unwrap(),
        ],
        ..TicketMapping::default()
    }
}

fn options() -> TicketSyncOptions {
    TicketSyncOptions {
        mapping: mapping(),
        ..TicketSyncOptions::default()
    }
}

/// One ticket run of `source` from `system` at the clock's time.
async fn read(
    pool: &PgPool,
    clock: &FixedClock,
    source: &SourceRef,
    system: &Arc<Scripted>,
    options: &TicketSyncOptions,
) -> sync::SyncReport {
    let connector: Arc<dyn TicketConnector> = system.clone();
    sync::run_ticket_sync(
        pool,
        clock,
        &Scope::All,
        &Actor::Sync {
            source: source.name.clone(),
        },
        source,
        |read| spawn_ticket_fetch(connector.clone(), read),
        options,
        &sync::NoProgress,
    )
    .await
    .expect("run is recorded")
}

/// Musterstadt with an MDM (`jamf`, three iPads tagged INV-0001..3) and a ticket source.
async fn setup(pool: &PgPool, clock: &FixedClock) -> SourceRef {
    let sources = musterstadt(pool, &["jamf", "zammad"]).await;
    let mut fleet: Vec<_> = (1..=3)
        .map(|i| {
            let mut device = ipad(&format!("mobile:{i}"), &format!("SERIAL0{i}"));
            device.asset_tag = Some(format!("INV-000{i}"));
            device
        })
        .collect();
    fleet[2].model = Some("iPad Air (5th generation)".into());
    let report = sync_records(pool, clock, &sources[0], fleet).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    sources[1].clone()
}

async fn device_id(pool: &PgPool, tag: &str) -> Uuid {
    devices::resolve_device(pool, &Scope::All, tag)
        .await
        .unwrap()
}

/// `(number, state, changed_in_run, deleted)` of every ticket, by number.
async fn rows(pool: &PgPool) -> Vec<(String, String, i64, bool)> {
    sqlx::query_as(
        "select number, state, changed_in_run, deleted_at is not null from ticket order by number",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `(ticket number, device asset tag, found_by)` of every link.
async fn links(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "select t.number, d.asset_tag, td.found_by from ticket_device td join ticket t \
         using (ticket_id) join device d using (device_id) order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn watermark(pool: &PgPool) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as("select updated_through, last_full_read_at from ticket_watermark")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_first_full_read_then_an_incremental_read_from_the_watermark_rewrites_only_changes() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let first = vec![
        ticket(1, "WLAN im Raum 104 fällt aus", 10),
        ticket(2, "Beamer defekt", 9),
        ticket(3, "Drucker druckt nicht", 8),
    ];
    let system = scripted(first.clone(), Ends::Complete);
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.kind, "tickets");
    assert_eq!((report.counts.fetched, report.counts.created), (3, 3));
    // The first read has no watermark: it reads everything.
    assert_eq!(system.asked.lock().unwrap()[0].updated_since, None);
    let newest = first[2].updated_at; // t0 - 8 days + 1 hour, the latest updated_at
    assert_eq!(watermark(&db.pool).await, (Some(newest), Some(t0())));
    let run1 = report.run_id;

    // A day later only ticket 3 changed; the system lists it again with ticket 2, whose
    // updated_at equals the watermark (Zammad's search is "at or after").
    clock.advance(Duration::days(1));
    let mut changed = first[2].clone();
    changed.state = TicketState::Closed;
    changed.closed_at = Some(t0() - Duration::days(1));
    changed.updated_at = t0() - Duration::days(1);
    let mut same = first[1].clone();
    same.updated_at = newest;
    let system = scripted(vec![same, changed.clone()], Ends::Complete);
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        system.asked.lock().unwrap()[0].updated_since,
        Some(newest),
        "an incremental read asks from the watermark"
    );
    // Ticket 2's record differs only in updated_at, so it is rewritten; ticket 1 was not read.
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.unchanged,
            report.counts.marked_missing
        ),
        (0, 2, 0, 0)
    );
    let stored = rows(&db.pool).await;
    assert_eq!(stored[0], ("31001".into(), "open".into(), run1, false));
    assert_eq!(stored[2].1, "closed");
    assert_eq!(stored[2].2, report.run_id);
    assert_eq!(
        watermark(&db.pool).await,
        (Some(changed.updated_at), Some(t0())),
        "the watermark advances to the newest updated_at; the last full read stays"
    );

    // The same incremental read again changes nothing.
    let run2 = report.run_id;
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!((report.counts.updated, report.counts.unchanged), (0, 2));
    assert!(rows(&db.pool).await.iter().all(|r| r.2 != report.run_id));
    assert_eq!(rows(&db.pool).await[2].2, run2);

    // The run is listed with the others.
    let runs = store::runs::list_runs(&db.pool, &Scope::All, Some("zammad"), 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.run_kind == "tickets"));

    // After `full_read_every` the next read is full again.
    clock.advance(Duration::days(7));
    let system = scripted(first, Ends::Complete);
    read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(system.asked.lock().unwrap()[0].updated_since, None);
}

#[tokio::test]
async fn a_failed_read_changes_nothing() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let first = vec![ticket(1, "WLAN weg", 10), ticket(2, "Beamer INV-0001", 9)];
    read(
        &db.pool,
        &clock,
        &source,
        &scripted(first.clone(), Ends::Complete),
        &options(),
    )
    .await;
    let before = (
        rows(&db.pool).await,
        links(&db.pool).await,
        watermark(&db.pool).await,
    );

    clock.advance(Duration::hours(2));
    let mut changed = first[1].clone();
    changed.title = "Beamer INV-0002".into();
    changed.updated_at = t0();
    let new = ticket(3, "Neu", 1);
    let system = scripted(vec![changed, new], Ends::Fail);
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("ticket read failed") && error.contains("HTTP 502"),
        "{error}"
    );
    let after = (
        rows(&db.pool).await,
        links(&db.pool).await,
        watermark(&db.pool).await,
    );
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_full_read_marks_a_vanished_ticket_deleted_within_the_guard() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let all: Vec<_> = (1..=4).map(|i| ticket(i, "Störung", 10)).collect();
    read(
        &db.pool,
        &clock,
        &source,
        &scripted(all.clone(), Ends::Complete),
        &options(),
    )
    .await;

    // A guard of 25 % or 1 ticket: of 4 live tickets one may go (max(floor(0.25*4), 1) = 1).
    let guarded = TicketSyncOptions {
        guard: DeletionGuard {
            max_share: 0.25,
            min_count: 1,
        },
        force_full: true,
        ..options()
    };
    // Two vanish: 2 > 1, the run fails and nothing is marked.
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(all[..2].to_vec(), Ends::Complete),
        &guarded,
    )
    .await;
    assert_eq!(report.status, SyncStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("run would mark 2 of 4 tickets as deleted"),
        "{error}"
    );
    assert!(rows(&db.pool).await.iter().all(|r| !r.3));

    // One vanishes: it is marked deleted, never removed, and left out of the list.
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(all[..3].to_vec(), Ends::Complete),
        &guarded,
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.marked_missing, 1);
    let stored = rows(&db.pool).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(
        stored
            .iter()
            .filter(|r| r.3)
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        ["31004"]
    );
    let list = tickets::list_tickets(&db.pool, &Scope::All, &TicketFilter::default())
        .await
        .unwrap();
    assert_eq!(list.len(), 3);
    let shown = tickets::show_ticket(&db.pool, &Scope::All, "31004")
        .await
        .unwrap();
    assert_eq!(shown.deleted_at, Some(t0()));

    // An incremental read never marks anything deleted.
    let incremental = TicketSyncOptions {
        force_full: false,
        ..guarded
    };
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![], Ends::Complete),
        &incremental,
    )
    .await;
    assert_eq!(
        (report.status, report.counts.marked_missing),
        (SyncStatus::Succeeded, 0)
    );
    // The ticket listed again returns.
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(all[3..].to_vec(), Ends::Complete),
        &incremental,
    )
    .await;
    assert_eq!(report.counts.reappeared, 1);
    assert!(rows(&db.pool).await.iter().all(|r| !r.3));
}

#[tokio::test]
async fn a_merged_ticket_points_at_its_target_and_keeps_its_device_links() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    // The merged ticket comes on the first page, its target on the second.
    let mut merged = ticket(1, "iPad INV-0001 lädt nicht", 10);
    merged.state = TicketState::Merged;
    merged.source_state = "merged".into();
    merged.merged_into = Some("7".into());
    let other = ticket(2, "Anderes", 9);
    let target = ticket(7, "iPads laden nicht", 9);
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![merged, other, target], Ends::Complete),
        &options(),
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    let shown = tickets::show_ticket(&db.pool, &Scope::All, "31001")
        .await
        .unwrap();
    assert_eq!(shown.state, "merged");
    assert_eq!(shown.merged_into.as_deref(), Some("31007"));
    assert_eq!(shown.devices.len(), 1, "the merged ticket keeps its link");
    let target_id: Uuid = sqlx::query_scalar("select ticket_id from ticket where number = '31007'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let points_at: Option<Uuid> =
        sqlx::query_scalar("select merged_into_ticket_id from ticket where number = '31001'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(points_at, Some(target_id));

    // A merge into a ticket the source never listed is reported, not guessed.
    let mut dangling = ticket(3, "X", 1);
    dangling.state = TicketState::Merged;
    dangling.merged_into = Some("999".into());
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![dangling], Ends::Complete),
        &options(),
    )
    .await;
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("ticket 31003 was merged into ticket id 999")),
        "{:?}",
        report.warnings
    );

    // A later read resolves what was left open (the target is listed now, the merged ticket
    // itself is not read again), and a ticket merged elsewhere since points at its new target.
    let late_target = ticket(999, "Spät gelistet", 1);
    let mut moved = ticket(1, "iPad INV-0001 lädt nicht", 10);
    moved.state = TicketState::Merged;
    moved.source_state = "merged".into();
    moved.merged_into = Some("2".into());
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![late_target, moved], Ends::Complete),
        &options(),
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    let target_of = |number: &'static str| {
        sqlx::query_scalar::<_, Option<String>>(
            "select m.number from ticket t left join ticket m \
             on m.ticket_id = t.merged_into_ticket_id where t.number = $1",
        )
        .bind(number)
        .fetch_one(&db.pool)
    };
    assert_eq!(target_of("31003").await.unwrap().as_deref(), Some("31999"));
    assert_eq!(target_of("31001").await.unwrap().as_deref(), Some("31002"));
}

#[tokio::test]
async fn tickets_link_devices_by_structured_field_system_link_and_title_pattern() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let mut by_field = ticket(1, "Display gesprungen", 10);
    by_field.asset_fields = vec![AssetField {
        field: "inventarnummer".into(),
        value: "INV-0001".into(),
    }];
    let mut by_serial_field = ticket(2, "Akku", 10);
    // A serial as people type it: lower case, blanks around; matched normalized.
    by_serial_field.asset_fields = vec![AssetField {
        field: "serial".into(),
        value: " serial02 ".into(),
    }];
    let mut by_system = ticket(3, "GLPI", 10);
    by_system.linked_items = vec![LinkedItem {
        kind: "Computer".into(),
        item_id: "42".into(),
        serial_number: Some("SERIAL03".into()),
        asset_tag: Some("UNKNOWN-TAG".into()),
        name: None,
    }];
    let by_title = ticket(4, "iPad INV-0002 und SN: serial03 starten nicht", 10);
    let nothing = ticket(5, "Passwort vergessen INV-9999", 10);
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(
            vec![by_field, by_serial_field, by_system, by_title, nothing],
            Ends::Complete,
        ),
        &options(),
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        links(&db.pool).await,
        vec![
            ("31001".into(), "INV-0001".into(), "field".into()),
            ("31002".into(), "INV-0002".into(), "field".into()),
            ("31003".into(), "INV-0003".into(), "system".into()),
            ("31004".into(), "INV-0002".into(), "title".into()),
            ("31004".into(), "INV-0003".into(), "title".into()),
        ]
    );
    let shown = tickets::show_ticket(&db.pool, &Scope::All, "zammad:1")
        .await
        .unwrap();
    assert_eq!(shown.devices[0].detail, "inventarnummer = INV-0001");
    assert_eq!(shown.devices[0].linked_by, "source:zammad");

    // A ticket naming no known device is stored and listed as such.
    let no_device = TicketFilter {
        no_device: true,
        ..TicketFilter::default()
    };
    let list = tickets::list_tickets(&db.pool, &Scope::All, &no_device)
        .await
        .unwrap();
    assert_eq!(
        list.iter().map(|t| t.number.as_str()).collect::<Vec<_>>(),
        ["31005"]
    );
    assert_eq!(list[0].devices, None);

    // `devices show` lists the device's tickets.
    let detail = devices::show_device(&db.pool, &Scope::All, "INV-0002")
        .await
        .unwrap();
    let numbers: Vec<_> = detail
        .tickets
        .iter()
        .map(|t| (t.number.as_str(), t.found_by.as_str()))
        .collect();
    assert_eq!(numbers, [("31002", "field"), ("31004", "title")]);
}

/// Adds authority Y-Stadt with one device tagged `tag` and serial `serial`.
async fn other_authority_device(pool: &PgPool, clock: &FixedClock, tag: &str, serial: &str) {
    let y = AuthoritySpec {
        slug: "ystadt".into(),
        name: "Y-Stadt".into(),
        shared_macs: vec![],
        schools: vec![SchoolSpec {
            number: "200001".into(),
            name: "Schule Y".into(),
            school_type: SchoolType::Grundschule,
            aliases: vec![],
        }],
    };
    let y_mdm = SourceSpec {
        name: "y-mdm".into(),
        kind: "jamf_pro".into(),
        authority_slug: "ystadt".into(),
    };
    let sources = store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &[y],
        &[y_mdm],
    )
    .await
    .unwrap();
    let mut device = ipad("y:1", serial);
    device.asset_tag = Some(tag.into());
    device.location.school = Some("Schule Y".into());
    sync_records(pool, clock, &sources[0], vec![device]).await;
}

#[tokio::test]
async fn a_title_pattern_never_links_a_device_of_another_authority() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    other_authority_device(&db.pool, &clock, "INV-7777", "YSERIAL77").await;
    let mut field = ticket(2, "Feld", 10);
    field.asset_fields = vec![AssetField {
        field: "inventarnummer".into(),
        value: "INV-7777".into(),
    }];
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(
            vec![ticket(1, "Tablet INV-7777 SN YSERIAL77 defekt", 10), field],
            Ends::Complete,
        ),
        &options(),
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    assert_eq!(links(&db.pool).await, vec![]);
    let list = tickets::list_tickets(
        &db.pool,
        &Scope::All,
        &TicketFilter {
            no_device: true,
            ..TicketFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(list.len(), 2);

    // Nor by hand: the ticket's authority holds no such device.
    let error = tickets::link_ticket(
        &db.pool,
        &Scope::All,
        &Actor::CliUser("anna".into()),
        "31001",
        "INV-7777",
        t0(),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("different school authorities"),
        "{error}"
    );
}

#[tokio::test]
async fn a_title_match_naming_two_devices_links_neither_and_is_reported() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    // Two devices of Musterstadt that share a serial (a vendor's reused serial).
    let authority: Uuid =
        sqlx::query_scalar("select authority_id from source where source_id = $1")
            .bind(source.source_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    for tag in ["INV-0100", "INV-0101"] {
        sqlx::query("insert into device (device_id, authority_id, asset_tag, serial_number, first_seen_at, updated_at) values ($1, $2, $3, 'TWINSERIAL', $4, $4)")
            .bind(Uuid::new_v4()).bind(authority).bind(tag).bind(t0()).execute(&db.pool).await.unwrap();
    }
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(
            vec![ticket(1, "Laptop SN TWINSERIAL und INV-0001", 10)],
            Ends::Complete,
        ),
        &options(),
    )
    .await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
    // The unambiguous tag links; the serial naming two devices links neither.
    assert_eq!(
        links(&db.pool).await,
        vec![("31001".into(), "INV-0001".into(), "title".into())]
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("ticket 31001: serial 'TWINSERIAL'")
                && w.contains("names 2 devices")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn a_hand_link_survives_re_reads_while_automatic_links_follow_the_ticket() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let first = ticket(1, "iPad INV-0001 defekt", 10);
    read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![first.clone()], Ends::Complete),
        &options(),
    )
    .await;
    let anna = Actor::CliUser("anna".into());
    let link = tickets::link_ticket(&db.pool, &Scope::All, &anna, "31001", "INV-0003", t0())
        .await
        .unwrap();
    assert_eq!(link.before, None);
    let history: Vec<(String, Option<String>)> = sqlx::query_as(
        "select kind, actor from device_event where device_id = $1 and kind like 'ticket%'",
    )
    .bind(device_id(&db.pool, "INV-0003").await)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        history,
        [("ticket_linked".to_string(), Some("anna".to_string()))]
    );

    // The title now names another device: the title link follows, the hand link stays.
    clock.advance(Duration::hours(1));
    let mut changed = first;
    changed.title = "iPad INV-0002 defekt".into();
    changed.updated_at = t0();
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(vec![changed], Ends::Complete),
        &TicketSyncOptions {
            force_full: true,
            ..options()
        },
    )
    .await;
    assert_eq!(report.counts.updated, 1);
    assert_eq!(
        links(&db.pool).await,
        vec![
            ("31001".into(), "INV-0002".into(), "title".into()),
            ("31001".into(), "INV-0003".into(), "hand".into()),
        ]
    );

    // Unlinking removes it; an unknown link is not found.
    tickets::unlink_ticket(&db.pool, &Scope::All, &anna, "31001", "INV-0003", t0())
        .await
        .unwrap();
    assert_eq!(links(&db.pool).await.len(), 1);
    let error = tickets::unlink_ticket(&db.pool, &Scope::All, &anna, "31001", "INV-0003", t0())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CoreError::NotFound {
                what: "ticket link",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn the_list_filters_by_school_state_topic_provider_model_and_period() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let mut network = ticket(1, "Kein Netz", 30);
    network.tags = vec!["WLAN".into()];
    let mut forwarded = ticket(2, "iPad Air INV-0003 bootet nicht", 20);
    forwarded.group = Some("Dienstleister Nord".into());
    forwarded.group_since = Some(t0() - Duration::days(19));
    let mut closed = ticket(3, "Erledigt", 10);
    closed.state = TicketState::Closed;
    closed.organization = Some("Gymnasium am Stadtpark".into());
    let mut unknown_school = ticket(4, "Wer?", 5);
    unknown_school.organization = Some("Volkshochschule".into());
    let report = read(
        &db.pool,
        &clock,
        &source,
        &scripted(
            vec![network, forwarded, closed, unknown_school],
            Ends::Complete,
        ),
        &options(),
    )
    .await;
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("organization 'Volkshochschule' matches no configured school")),
        "{:?}",
        report.warnings
    );

    let numbers = |filter: TicketFilter| {
        let pool = db.pool.clone();
        async move {
            tickets::list_tickets(&pool, &Scope::All, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.number)
                .collect::<Vec<_>>()
        }
    };
    let all = TicketFilter::default;
    assert_eq!(
        numbers(all()).await,
        ["31004", "31003", "31002", "31001"],
        "newest first"
    );
    assert_eq!(
        numbers(TicketFilter {
            school: Some("100001".into()),
            ..all()
        })
        .await,
        ["31002", "31001"]
    );
    assert_eq!(
        numbers(TicketFilter {
            school: Some("gymnasium am stadtpark".into()),
            ..all()
        })
        .await,
        ["31003"]
    );
    assert_eq!(
        numbers(TicketFilter {
            state: Some("closed".into()),
            ..all()
        })
        .await,
        ["31003"]
    );
    assert_eq!(
        numbers(TicketFilter {
            topic: Some("network".into()),
            ..all()
        })
        .await,
        ["31001"]
    );
    assert_eq!(
        numbers(TicketFilter {
            provider: Some("nord it".into()),
            ..all()
        })
        .await,
        ["31002"]
    );
    assert_eq!(
        numbers(TicketFilter {
            model: Some("air".into()),
            ..all()
        })
        .await,
        ["31002"]
    );
    // Created t0-20d (2026-11-03 06:00 UTC) and t0-10d (2026-11-13): both in the period.
    let since = (t0() - Duration::days(20)).date_naive();
    let until = (t0() - Duration::days(10)).date_naive();
    assert_eq!(
        numbers(TicketFilter {
            since: Some(since),
            until: Some(until),
            ..all()
        })
        .await,
        ["31003", "31002"]
    );

    let shown = tickets::show_ticket(&db.pool, &Scope::All, "31002")
        .await
        .unwrap();
    assert_eq!(shown.provider.as_deref(), Some("Nord IT"));
    assert_eq!(
        shown.forwarded_at,
        Some(t0() - Duration::days(19)),
        "forwarded when it went to the provider's group"
    );
    assert_eq!(shown.topic, "other");
    assert_eq!(shown.customer_role.as_deref(), Some("teacher"));

    // A scope of the Gymnasium sees its ticket only; another school's ticket is unknown.
    let gym: Uuid =
        sqlx::query_scalar("select school_id from school where school_number = '100002'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let authority: Uuid =
        sqlx::query_scalar("select authority_id from school where school_id = $1")
            .bind(gym)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let scope = Scope::schools(authority, [gym]);
    let seen = tickets::list_tickets(&db.pool, &scope, &all())
        .await
        .unwrap();
    assert_eq!(
        seen.iter().map(|t| t.number.as_str()).collect::<Vec<_>>(),
        ["31003"]
    );
    let error = tickets::show_ticket(&db.pool, &scope, "31002")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        tickets::show_ticket(&db.pool, &scope, "99999")
            .await
            .unwrap_err()
            .to_string()
            .replace("99999", "31002")
    );
}

#[tokio::test]
async fn a_scope_short_of_the_sources_authority_cannot_run_it() {
    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    let school: Uuid =
        sqlx::query_scalar("select school_id from school where school_number = '100001'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let system = scripted(vec![ticket(1, "WLAN", 1)], Ends::Complete);
    for scope in [
        Scope::schools(source.authority_id, [school]),
        Scope::Authority(Uuid::new_v4()),
    ] {
        let connector: Arc<dyn TicketConnector> = system.clone();
        let refused = sync::run_ticket_sync(
            &db.pool,
            &*clock,
            &scope,
            &Actor::System("test"),
            &source,
            |read| spawn_ticket_fetch(connector.clone(), read),
            &options(),
            &sync::NoProgress,
        )
        .await;
        assert!(
            matches!(&refused, Err(CoreError::NotFound { what: "source", key }) if key == "zammad"),
            "{refused:?}"
        );
    }
    assert!(
        system.asked.lock().unwrap().is_empty(),
        "the system was never asked"
    );
    let runs: i64 = sqlx::query_scalar("select count(*) from sync_run where kind = 'tickets'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);
}

/// A ticket of Musterstadt at Berlin wall-clock times (`2026-09-04 12:30`), summer time.
fn ticket_at(
    id: u32,
    title: &str,
    created: &str,
    response: Option<&str>,
    closed: Option<&str>,
) -> TicketRecord {
    let berlin = |text: &str| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_local_timezone(chrono_tz::Europe::Berlin)
            .unwrap()
            .with_timezone(&Utc)
    };
    let mut record = ticket(id, title, 0);
    record.created_at = berlin(created);
    record.updated_at = berlin(closed.or(response).unwrap_or(created));
    record.first_response_at = response.map(berlin);
    record.closed_at = closed.map(berlin);
    if closed.is_some() {
        record.state = TicketState::Closed;
        record.source_state = "closed".into();
    }
    record
}

#[tokio::test]
async fn the_ticket_report_counts_service_hours_per_quarter_and_model_and_writes_its_charts() {
    use bestand_core::service_level::{Dimension, Land, Quarter, ServiceCalendar, ServiceTargets};
    use bestand_core::store::ticket_report::{ticket_report, TicketReportRequest};

    let db = test_db().await;
    let clock = clock();
    let source = setup(&db.pool, &clock).await;
    // The service sheet: Mon-Thu 08:00-16:00, Fri 08:00-13:00, NRW holidays.
    // A: Fri 12:30 -> Mon 09:00 = 0.5 h + 1 h = 1.5 h reaction; solved Mon 15:00 = 0.5 h + 7 h
    //    = 7.5 h; names INV-0001, an iPad (9th generation).
    // B: Tue 08:00 -> 10:00 = 2 h reaction; solved Wed 10:00 = 8 h + 2 h = 10 h.
    // C: opened Wed 30 Sep 15:00, no answer yet: in the backlog at the end of Q3.
    // D: opened in Q2 and solved there: in no Q3 figure.
    let system = scripted(
        vec![
            ticket_at(
                1,
                "Display INV-0001 gesprungen",
                "2026-09-04 12:30",
                Some("2026-09-07 09:00"),
                Some("2026-09-07 15:00"),
            ),
            ticket_at(
                2,
                "Drucker im Lehrerzimmer",
                "2026-09-08 08:00",
                Some("2026-09-08 10:00"),
                Some("2026-09-09 10:00"),
            ),
            ticket_at(3, "WLAN Raum 104", "2026-09-30 15:00", None, None),
            ticket_at(
                4,
                "Beamer",
                "2026-05-04 08:00",
                Some("2026-05-04 09:00"),
                Some("2026-05-04 10:00"),
            ),
        ],
        Ends::Complete,
    );
    let report = read(&db.pool, &clock, &source, &system, &options()).await;
    assert_eq!(report.status, SyncStatus::Succeeded, "{:?}", report.error);

    let request = TicketReportRequest {
        authority: None,
        period: "2026-Q3".parse().unwrap(),
        quarters: 2,
    };
    let calendar = ServiceCalendar::service_sheet(Land::NordrheinWestfalen);
    let targets = ServiceTargets::default();
    let report = ticket_report(&db.pool, &Scope::All, &calendar, &targets, &request)
        .await
        .unwrap();
    assert_eq!(report.authority, "musterstadt");
    assert_eq!(
        report.quarters,
        vec![
            Quarter::new(2026, 2).unwrap(),
            Quarter::new(2026, 3).unwrap()
        ]
    );
    let q3 = &report.figures.quarters[1];
    let all = q3
        .groups
        .iter()
        .find(|g| g.dimension == Dimension::All)
        .unwrap();
    assert_eq!(
        (all.figures.opened, all.figures.solved, all.figures.backlog),
        (3, 2, 1)
    );
    // Linear interpolation over [1.5, 2]: median 1.75, 90th percentile 1.5 + 0.9 * 0.5 = 1.95;
    // over [7.5, 10]: 8.75 and 7.5 + 0.9 * 2.5 = 9.75.
    let close = |value: Option<f64>, expected: f64| {
        assert!(
            (value.unwrap() - expected).abs() < 1e-9,
            "{value:?} != {expected}"
        )
    };
    close(all.figures.reaction.median_hours, 1.75);
    close(all.figures.reaction.p90_hours, 1.95);
    close(all.figures.resolution.median_hours, 8.75);
    close(all.figures.resolution.p90_hours, 9.75);
    let q2 = report.figures.quarters[0]
        .groups
        .iter()
        .find(|g| g.dimension == Dimension::All)
        .unwrap();
    assert_eq!(
        (q2.figures.opened, q2.figures.solved, q2.figures.backlog),
        (1, 1, 0)
    );
    // One Q3 ticket names one of the two iPads (9th generation): 50 per 100 devices.
    let model = q3
        .groups
        .iter()
        .find(|g| {
            g.dimension == Dimension::Model && g.key.as_deref() == Some("iPad (9th generation)")
        })
        .unwrap();
    assert_eq!((model.figures.opened, model.devices), (1, Some(2)));
    close(model.tickets_per_100_devices, 50.0);

    // Another authority's scope reaches none of it.
    let elsewhere = Scope::Authority(Uuid::new_v4());
    let refused = ticket_report(&db.pool, &elsewhere, &calendar, &targets, &request).await;
    assert!(
        matches!(refused, Err(CoreError::NotFound { .. })),
        "{refused:?}"
    );

    // The workbook holds the figures as numbers and one chart sheet per figure.
    let bytes = bestand_documents::workbook::write_xlsx(
        &bestand_cli::commands::ticket_report::workbook(&report),
    )
    .unwrap();
    use calamine::{DataType, Reader};
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let names = book.sheet_names();
    assert_eq!(&names[..2], ["Kennzahlen", "Themen"]);
    assert!(
        names.iter().any(|name| name == "Diagramm Reaktion"),
        "{names:?}"
    );
    assert_eq!(names.len(), 2 + 7);
    let sheet = book.worksheet_range("Kennzahlen").unwrap();
    let q3_all = sheet
        .rows()
        .find(|row| row[0].get_string() == Some("2026-Q3") && row[1].get_string() == Some("gesamt"))
        .unwrap();
    assert_eq!(q3_all[3].as_f64(), Some(3.0), "opened");
    assert_eq!(q3_all[6].as_f64(), Some(1.75), "reaction median");
    let svg = bestand_documents::chart::chart_svg(
        &bestand_cli::commands::ticket_report::charts(&report)[1].1,
        900,
        500,
    )
    .unwrap();
    assert!(svg.contains("Reaktionszeit in Servicestunden"));
}
