//! The ticket engine's benchmark (`cargo xtask bench --tickets-generated N`,
//! docs/performance.md): N tickets from an in-process generator, a full read into an empty
//! inventory, then an incremental read of 1,000 changed tickets, then the quarterly report over
//! all of them, each timed by the server's clock; the database is `DATABASE_URL`. No connector
//! and no HTTP: `cargo xtask bench --tickets N` measures the same through the mock Zammad, and
//! the difference is the connector's and the mock's share.
//!
//! A third of the tickets name one of 20,000 devices in their title, so the title patterns and
//! the device lookups are part of what is measured.

use bestand_core::access::{Actor, Scope};
use bestand_core::model::SchoolType;
use bestand_core::service_level::{Land, ServiceCalendar, ServiceTargets};
use bestand_core::store::ticket_report::{ticket_report, TicketReportRequest};
use bestand_core::store::{self, AuthoritySpec, SchoolSpec, SourceSpec};
use bestand_core::sync::{self, TicketMapping, TicketSyncOptions};
use bestand_core::ticket::{TicketItem, TicketPage, TicketRecord, TicketState};
use bestand_core::FixedClock;
use chrono::{DateTime, Duration};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::mpsc;

const DEVICES: i64 = 20_000;
const PAGE: usize = 500;

/// Ticket `i` as of `version`: created one minute after the one before, a third naming a device.
fn ticket(i: u64, version: i64) -> TicketRecord {
    // 2025-01-01 07:00 UTC.
    let start = DateTime::from_timestamp(1_735_714_800, 0).unwrap_or_default();
    let created = start + Duration::minutes(i as i64);
    let title = if i.is_multiple_of(3) {
        format!("iPad INV-{:05} lädt nicht", i % DEVICES as u64)
    } else {
        format!("Störung {i}")
    };
    TicketRecord {
        external_id: i.to_string(),
        number: (100_000 + i).to_string(),
        title,
        state: if i.is_multiple_of(4) {
            TicketState::Closed
        } else {
            TicketState::Open
        },
        source_state: "open".into(),
        priority: Some("2 normal".into()),
        group: Some(
            if i.is_multiple_of(5) {
                "Dienstleister Nord"
            } else {
                "Schul-IT"
            }
            .into(),
        ),
        organization: Some(format!("{}", 100_001 + i % 20)),
        tags: vec!["wlan".into()],
        customer_role: Some("teacher".into()),
        created_at: created,
        updated_at: created + Duration::hours(1) + Duration::seconds(version),
        first_response_at: Some(created + Duration::minutes(30)),
        ..TicketRecord::default()
    }
}

/// Sends `ids` (as of `version`) in pages of `PAGE`, as a connector would.
fn generate(ids: Vec<u64>, version: i64) -> mpsc::Receiver<TicketItem> {
    let (sender, receiver) = mpsc::channel(sync::PAGE_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let total = ids.len() as u64;
        for (n, chunk) in ids.chunks(PAGE).enumerate() {
            let records = chunk.iter().map(|i| ticket(*i, version)).collect();
            let page = TicketPage {
                label: format!("page {n}"),
                records,
                announced_total: Some(total),
            };
            if sender.send(TicketItem::Page(page)).await.is_err() {
                return;
            }
        }
        let _ = sender
            .send(TicketItem::Complete {
                reported_total: total,
            })
            .await;
    });
    receiver
}

/// The server's wall clock in seconds.
async fn server_seconds(pool: &sqlx::PgPool) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar("select extract(epoch from clock_timestamp())::float8")
        .fetch_one(pool)
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tickets: u64 = std::env::args().nth(1).map_or(Ok(500_000), |n| n.parse())?;
    let url = std::env::var("DATABASE_URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    store::migrate(&pool).await?;
    let schools = (1..=20)
        .map(|n| SchoolSpec {
            number: format!("{}", 100_000 + n),
            name: format!("Schule {n}"),
            school_type: SchoolType::Grundschule,
            aliases: vec![],
        })
        .collect();
    let authority = AuthoritySpec {
        slug: "musterstadt".into(),
        name: "Stadt Musterstadt".into(),
        shared_macs: vec![],
        schools,
    };
    let source = SourceSpec {
        name: "zammad".into(),
        kind: "zammad".into(),
        authority_slug: "musterstadt".into(),
    };
    let scope = Scope::All;
    let actor = Actor::System("bench");
    let source = store::apply_configuration(&pool, &scope, &actor, &[authority], &[source])
        .await?
        .remove(0);
    sqlx::query(
        "insert into device (device_id, authority_id, asset_tag, serial_number, first_seen_at, \
         updated_at) select gen_random_uuid(), $1, 'INV-' || lpad(n::text, 5, '0'), 'SER' || n, \
         now(), now() from generate_series(0, $2 - 1) n",
    )
    .bind(source.authority_id)
    .bind(DEVICES)
    .execute(&pool)
    .await?;
    // 2026-12-01 06:00 UTC.
    let clock = FixedClock::new(DateTime::from_timestamp(1_796_104_800, 0).unwrap_or_default());
    let options = TicketSyncOptions {
        mapping: TicketMapping {
            topics: [("wlan".to_string(), "network".to_string())].into(),
            providers: [("dienstleister nord".to_string(), "Nord IT".to_string())].into(),
            title_patterns: vec![TicketMapping::title_pattern(
                r"(?i)\b(?P<tag>INV-\d{4,})\b",
            )?],
            ..TicketMapping::default()
        },
        ..TicketSyncOptions::default()
    };
    let run = |ids: Vec<u64>, version: i64| {
        let (pool, clock, scope, actor, source, options) =
            (&pool, &clock, &scope, &actor, &source, &options);
        async move {
            let mut ids = Some(ids);
            // Core reads no clock, not even here: the server's clock times the run.
            let started = server_seconds(pool).await?;
            let report = sync::run_ticket_sync(
                pool,
                clock,
                scope,
                actor,
                source,
                |_| generate(ids.take().unwrap_or_default(), version),
                options,
                &sync::NoProgress,
            )
            .await?;
            let seconds = server_seconds(pool).await? - started;
            Ok::<_, Box<dyn std::error::Error>>((report, seconds))
        }
    };
    let (full, seconds) = run((0..tickets).collect(), 0).await?;
    println!(
        "full read: {} tickets ({} created) in {seconds:.2} s, {:.0} tickets/s, status {}",
        full.counts.fetched,
        full.counts.created,
        f64::from(full.counts.fetched) / seconds,
        full.status
    );
    clock.advance(Duration::hours(1));
    let changed: Vec<u64> = (0..1_000).map(|n| n * (tickets / 1_000).max(1)).collect();
    let (incremental, seconds) = run(changed, 7).await?;
    println!(
        "incremental read: {} changed tickets ({} updated) in {seconds:.2} s, status {}",
        incremental.counts.fetched, incremental.counts.updated, incremental.status
    );
    // The quarterly report over everything stored: the last quarter with tickets and the seven
    // before it, in the service sheet's hours.
    let started = server_seconds(&pool).await?;
    let request = TicketReportRequest {
        authority: None,
        period: "2025-Q4".parse()?,
        quarters: 8,
    };
    let calendar = ServiceCalendar::service_sheet(Land::NordrheinWestfalen);
    let report = ticket_report(
        &pool,
        &scope,
        &calendar,
        &ServiceTargets::default(),
        &request,
    )
    .await?;
    let seconds = server_seconds(&pool).await? - started;
    println!(
        "quarterly report: {} over {} quarters, {} tickets read, in {seconds:.2} s",
        report.period,
        report.quarters.len(),
        report.tickets_read
    );
    Ok(())
}
