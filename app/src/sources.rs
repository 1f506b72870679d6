//! Turns a configured source into running connectors, and runs one sync of a source: the
//! directory read for school servers, the device sync for MDMs (a UCS@school source does both).

use std::sync::Arc;
use std::time::Instant;

use bestand_connectors::{
    spawn_directory_fetch, spawn_fetch_with_capacity, spawn_ticket_fetch, Connector,
    DeviceLinkText, TicketConnector, TicketWriteBack, WriteBackOutcome,
};
use bestand_core::model::SyncStatus;
use bestand_core::store::ticket_write_back::{compose_write_back, write_back_candidates};
use bestand_core::store::SourceRef;
use bestand_core::sync::{
    self, DirectorySyncOptions, SyncOptions, SyncProgress, SyncReport, TicketSyncOptions,
    WriteBackCounts,
};
use bestand_core::{Actor, Scope};
use sqlx::PgPool;

use crate::clock::SystemClock;
use crate::config::{Config, SourceConfig};
use crate::database;
use crate::error::AppError;

pub use crate::kinds::SourceConnectors;

/// Builds the connectors of `source` through the registry of source kinds (`kinds`): checks
/// settings and reads secrets, makes no request.
pub fn build_connectors(source: &SourceConfig) -> Result<SourceConnectors, AppError> {
    source
        .settings()
        .connectors(source.name())
        .map_err(|message| AppError::Source {
            source_name: source.name().to_string(),
            message,
        })
}

/// The device connector of `source`; an error for sources that deliver no devices.
pub fn build_connector(source: &SourceConfig) -> Result<Arc<dyn Connector>, AppError> {
    build_connectors(source)?
        .devices
        .ok_or_else(|| AppError::DeliversNoDevices {
            source_name: source.name().to_string(),
            kind: source.common.kind.clone(),
        })
}

/// Runs one sync of `source`: first the directory read (so that the device sync's assignments
/// see today's persons), then the devices. A failed directory read does not stop the device
/// sync; each is its own run with its own report, returned with its duration in seconds.
/// `scope` is the caller's: a scope that does not cover the source's authority finds no source.
/// A ticket source reads its tickets, incrementally or in full as its watermark says.
pub async fn sync_source(
    pool: &PgPool,
    scope: &Scope,
    config: &Config,
    source: &SourceConfig,
    source_ref: &SourceRef,
    dry_run: bool,
    progress: &dyn SyncProgress,
) -> Result<Vec<(SyncReport, f64)>, AppError> {
    let read = SourceRead {
        dry_run,
        ..SourceRead::default()
    };
    sync_source_as(pool, scope, config, source, source_ref, read, progress).await
}

/// What one sync of a source is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceRead {
    /// Compute everything, then roll back.
    pub dry_run: bool,
    /// A ticket source reads every ticket (and marks those gone as deleted), whatever its
    /// watermark says (`bestand sync --full`).
    pub full_tickets: bool,
    /// A ticket source writes no device links back into its tickets this time, even if its
    /// settings say so (`bestand sync --no-write-back`).
    pub no_write_back: bool,
}

/// `sync_source` with everything the caller may ask for.
pub async fn sync_source_as(
    pool: &PgPool,
    scope: &Scope,
    config: &Config,
    source: &SourceConfig,
    source_ref: &SourceRef,
    read: SourceRead,
    progress: &dyn SyncProgress,
) -> Result<Vec<(SyncReport, f64)>, AppError> {
    let dry_run = read.dry_run;
    let connectors = build_connectors(source)?;
    let guard = database::guard_for(config, source);
    // Whoever starts it (a person, the scheduler, the demo), the runs are the source's own.
    let actor = Actor::Sync {
        source: source.name().to_string(),
    };
    let mut reports = Vec::new();
    // Both runs resolve the source's school keys through it (`school_map`, docs/sync.md).
    let school_map: std::collections::HashMap<String, String> =
        source.common.school_map.clone().into_iter().collect();
    if let Some(directory) = connectors.directory {
        let options = DirectorySyncOptions {
            dry_run,
            guard,
            school_map: school_map.clone(),
        };
        let started = Instant::now();
        let fetch = || spawn_directory_fetch(directory.clone());
        let report = sync::run_directory_sync_retrying(
            pool,
            &SystemClock,
            scope,
            &actor,
            source_ref,
            fetch,
            &options,
            progress,
        )
        .await?;
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    if let Some(devices) = connectors.devices {
        let options = SyncOptions {
            dry_run,
            guard,
            field_priority: sync::merge::FieldPriority(config.sync.field_priority.clone()),
            school_map,
        };
        let capacity = config
            .sync
            .page_channel_capacity
            .unwrap_or(sync::PAGE_CHANNEL_CAPACITY);
        let started = Instant::now();
        let fetch = || spawn_fetch_with_capacity(devices.clone(), capacity);
        let report = sync::run_sync_retrying(
            pool,
            &SystemClock,
            scope,
            &actor,
            source_ref,
            fetch,
            &options,
            progress,
        )
        .await?;
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    if let Some(tickets) = connectors.tickets {
        let options = crate::tickets::ticket_options(config, source, dry_run, read.full_tickets);
        let started = Instant::now();
        let mut report =
            run_ticket_source(pool, scope, &actor, source_ref, tickets, &options, progress).await?;
        if let Some(write_back) = connectors.ticket_write_back.filter(|_| !read.no_write_back) {
            write_back_tickets(pool, scope, source_ref, &mut report, write_back.as_ref()).await?;
        }
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    Ok(reports)
}

/// Runs one ticket read of `source_ref` from `connector` with `options` (the source's mapping,
/// `crate::tickets::ticket_options`), as `actor` within `scope`.
pub async fn run_ticket_source(
    pool: &PgPool,
    scope: &Scope,
    actor: &Actor,
    source_ref: &SourceRef,
    connector: Arc<dyn TicketConnector>,
    options: &TicketSyncOptions,
    progress: &dyn SyncProgress,
) -> Result<SyncReport, AppError> {
    let fetch = |read| spawn_ticket_fetch(connector.clone(), read);
    Ok(sync::run_ticket_sync(
        pool,
        &SystemClock,
        scope,
        actor,
        source_ref,
        fetch,
        options,
        progress,
    )
    .await?)
}

/// Writes the device links of the tickets that ticket run `report` wrote into the ticket system
/// through `write_back` (docs/tickets.md, "Write back"), after the run committed: the
/// inventory is already right, so a failed write-back is one of the report's warnings, never a
/// failed run, and the next run that writes the ticket tries again. Nothing is written after a
/// dry run or a run that did not succeed, nor when the source's settings switch write-back off
/// (`enabled`; a connector may also answer `Disabled` to the first ticket). Sets
/// `report.write_back`.
pub async fn write_back_tickets(
    pool: &PgPool,
    scope: &Scope,
    source_ref: &SourceRef,
    report: &mut SyncReport,
    write_back: &dyn TicketWriteBack,
) -> Result<(), AppError> {
    if report.dry_run || report.status != SyncStatus::Succeeded || !write_back.enabled() {
        return Ok(());
    }
    let candidates = write_back_candidates(pool, scope, source_ref, report.run_id).await?;
    let mut counts = WriteBackCounts::default();
    for ticket in &candidates {
        let note = compose_write_back(ticket);
        let link = DeviceLinkText {
            text: note.text,
            marker: note.marker,
        };
        match write_back.write_back(&ticket.external_id, &link).await {
            Ok(WriteBackOutcome::Written) => counts.written += 1,
            Ok(WriteBackOutcome::AlreadyPresent) => counts.already_present += 1,
            Ok(WriteBackOutcome::Disabled) => return Ok(()),
            Err(error) => {
                counts.failed += 1;
                tracing::warn!(source = %source_ref.name, ticket = %ticket.number, "{error}");
                // Kept like a run's own warnings: the first ones verbatim, the rest counted.
                if report.warnings.len() < sync::MAX_KEPT_WARNINGS {
                    report.warnings.push(format!(
                        "ticket {}: {error}; the inventory is unaffected, the next run that \
                         writes the ticket tries again",
                        ticket.number
                    ));
                }
                report.n_warnings += 1;
            }
        }
    }
    report.write_back = Some(counts);
    Ok(())
}
