//! `bestand sync`: run sources, list runs, approve blocked runs, show source status.

use std::io::IsTerminal;
use std::time::Instant;

use bestand_connectors::{spawn_directory_fetch, spawn_fetch, spawn_ticket_fetch};
use bestand_core::model::SyncStatus;
use bestand_core::store::runs::{self, RunView, SourceStatus};
use bestand_core::sync::{self, DirectoryItem, SourceItem, SyncProgress, SyncReport};
use bestand_core::ticket::{TicketItem, TicketRead};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::database::{self as app, Database, Migrations};
use bestand_app::sources::{build_connectors, sync_source_as, SourceRead};
use bestand_app::SystemClock;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sync only this source (repeatable); default: every enabled source.
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Fetch and compute all changes, then roll back; nothing is written but the run record.
    #[arg(long)]
    pub dry_run: bool,
    /// Only fetch and map the source's records; touch no database. Checks a source's setup and
    /// measures the fetch alone.
    #[arg(long, conflicts_with = "dry_run")]
    pub fetch_only: bool,
    /// Ticket sources: read every ticket, not only those changed since the last read, and
    /// mark those the system no longer lists as deleted (docs/tickets.md).
    #[arg(long)]
    pub full: bool,
    /// Ticket sources: write no device links back into the tickets this time, even if the
    /// source's `write_back` says so (docs/tickets.md, "Write back").
    #[arg(long)]
    pub no_write_back: bool,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// List recent sync runs.
    Runs {
        #[arg(long = "source", value_name = "NAME")]
        source: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Mark the devices a blocked run held back as missing.
    Approve {
        /// The run id shown by `bestand sync runs`.
        run: i64,
        /// Who approves (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Per source and run kind (directory, devices): last success, last failure, pending
    /// blocks, persons or devices reported and missing.
    Status,
}

/// Exit code when a run was blocked by the deletion guard (and none failed).
pub const EXIT_BLOCKED: i32 = 3;

pub async fn run(args: SyncArgs, config: &Config, format: Format) -> anyhow::Result<i32> {
    match args.command {
        None if args.run.fetch_only => fetch_only(&args.run, config).await,
        None => run_sources(&args.run, config, format).await,
        Some(SyncCommand::Runs { source, limit }) => {
            let database = Database::open(config, Migrations::RequireCurrent).await?;
            let list =
                runs::list_runs(&database.pool, &super::scope(), source.as_deref(), limit).await?;
            output::print_list(&list, format)?;
            database.close().await?;
            Ok(0)
        }
        Some(SyncCommand::Approve { run, by }) => {
            let database = Database::open(config, Migrations::RequireCurrent).await?;
            let actor = super::actor(by);
            let approval =
                sync::approve_run(&database.pool, &SystemClock, &super::scope(), &actor, run)
                    .await?;
            match format {
                Format::Table => println!(
                    "Run {} of source '{}' approved: {} {}.",
                    approval.run_id,
                    approval.source_name,
                    approval.marked_missing,
                    if approval.directory {
                        "person(s) marked as left"
                    } else {
                        "device(s) marked missing"
                    }
                ),
                _ => output::print_json(&approval)?,
            }
            database.close().await?;
            Ok(0)
        }
        Some(SyncCommand::Status) => {
            let database = Database::open(config, Migrations::RequireCurrent).await?;
            let now = bestand_core::Clock::now(&SystemClock);
            let status: Vec<StatusLine> = runs::source_status(&database.pool, &super::scope(), now)
                .await?
                .into_iter()
                .map(|status| {
                    let next_run = config
                        .source(&status.source_name)
                        .filter(|source| source.common.enabled)
                        .and_then(|source| source.common.schedule.as_deref())
                        .and_then(|schedule| bestand_app::schedule::parse_schedule(schedule).ok())
                        .and_then(|schedule| schedule.after(&now).next());
                    StatusLine { status, next_run }
                })
                .collect();
            output::print_list(&status, format)?;
            database.close().await?;
            Ok(0)
        }
    }
}

fn selected<'a>(
    run: &RunArgs,
    config: &'a Config,
) -> anyhow::Result<Vec<&'a bestand_app::config::SourceConfig>> {
    if run.sources.is_empty() {
        let enabled: Vec<_> = config.sources.iter().filter(|s| s.common.enabled).collect();
        if enabled.is_empty() {
            anyhow::bail!(
                "no enabled source in {}; add a [[source]] table",
                config.path.display()
            );
        }
        return Ok(enabled);
    }
    run.sources
        .iter()
        .map(|name| {
            config.source(name).ok_or_else(|| {
                let known: Vec<&str> = config.sources.iter().map(|s| s.name()).collect();
                anyhow::anyhow!(
                    "no source named '{name}' in {} (known: {})",
                    config.path.display(),
                    known.join(", ")
                )
            })
        })
        .collect()
}

async fn run_sources(run: &RunArgs, config: &Config, format: Format) -> anyhow::Result<i32> {
    let chosen = selected(run, config)?;
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let refs = app::apply_config_directory(&database.pool, config).await?;
    let mut reports = Vec::new();
    for source in chosen {
        let source_ref = refs
            .iter()
            .find(|r| r.name == source.name())
            .ok_or_else(|| anyhow::anyhow!("source '{}' was not registered", source.name()))?;
        let progress = Progress::new(source.name());
        let read = SourceRead {
            dry_run: run.dry_run,
            full_tickets: run.full,
            no_write_back: run.no_write_back,
        };
        let source_reports = sync_source_as(
            &database.pool,
            &super::scope(),
            config,
            source,
            source_ref,
            read,
            &progress,
        )
        .await?;
        progress.finish();
        for (report, seconds) in source_reports {
            if format == Format::Table {
                print_report(&report, seconds);
            }
            reports.push(report);
        }
    }
    if format != Format::Table {
        output::print_json(&reports)?;
    }
    database.close().await?;
    let code = if reports.iter().any(|r| r.status == SyncStatus::Failed) {
        1
    } else if reports.iter().any(|r| r.status == SyncStatus::Blocked) {
        EXIT_BLOCKED
    } else {
        0
    };
    Ok(code)
}

fn print_report(report: &SyncReport, seconds: f64) {
    let c = &report.counts;
    let mode = if report.dry_run {
        " (dry run, nothing written)"
    } else {
        ""
    };
    println!(
        "{} ({}): {} in {seconds:.1} s, run {}{mode}",
        report.source_name, report.kind, report.status, report.run_id
    );
    if report.kind == "tickets" {
        println!(
            "  tickets fetched {} · created {} · updated {} · unchanged {} · deleted {} · returned {}",
            c.fetched, c.created, c.updated, c.unchanged, c.marked_missing, c.reappeared
        );
    } else if report.kind == "directory" {
        println!(
            "  persons fetched {} · created {} · updated {} · unchanged {} · left {} · returned {} · review items {}",
            c.fetched, c.created, c.updated, c.unchanged, c.marked_missing, c.reappeared, c.review_items
        );
    } else {
        println!(
            "  fetched {} · created {} · updated {} · unchanged {} · marked missing {} · moved {} · reappeared {} · review items {}",
            c.fetched, c.created, c.updated, c.unchanged, c.marked_missing, c.moved, c.reappeared, c.review_items
        );
    }
    if seconds > 0.0 && c.fetched > 0 {
        println!("  {:.0} records/s", f64::from(c.fetched) / seconds);
    }
    if let Some(w) = &report.write_back {
        println!(
            "  write-back: written {} · already in the ticket {} · failed {}",
            w.written, w.already_present, w.failed
        );
    }
    if let Some(reason) = &report.blocked_reason {
        println!("  blocked: {reason}");
    }
    if let Some(error) = &report.error {
        println!("  error: {error}");
    }
    for run in &report.retried_runs {
        println!(
            "  run {run} came first; it lost a deadlock against a run of another source, \
             changed nothing, and was started again"
        );
    }
    if report.n_warnings > 0 {
        println!("  {} warning(s):", report.n_warnings);
        for warning in report.warnings.iter().take(10) {
            println!("    {warning}");
        }
        if report.n_warnings > 10 {
            println!("    ... see `bestand sync runs --format json` for more");
        }
    }
}

/// Reports each applied page: a progress bar on a terminal, plain lines otherwise.
struct Progress {
    source: String,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(source: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} devices ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(source.to_string());
            bar
        });
        Progress {
            source: source.to_string(),
            bar,
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl SyncProgress for Progress {
    fn page_applied(
        &self,
        label: &str,
        records: usize,
        received: u64,
        announced_total: Option<u64>,
    ) {
        match &self.bar {
            Some(bar) => {
                if let Some(total) = announced_total {
                    bar.set_length(total.max(received));
                }
                bar.set_position(received);
            }
            None => {
                let total = announced_total
                    .map(|t| format!(" of {t}"))
                    .unwrap_or_default();
                eprintln!(
                    "{}: {label} applied ({records} records, {received}{total} so far)",
                    self.source
                );
            }
        }
    }
}

async fn fetch_only(run: &RunArgs, config: &Config) -> anyhow::Result<i32> {
    let mut code = 0;
    for source in selected(run, config)? {
        let connectors = build_connectors(source)?;
        if let Some(directory) = connectors.directory {
            let started = Instant::now();
            let mut items = spawn_directory_fetch(directory);
            let (mut n_schools, mut n_persons, mut n_problems) = (0usize, 0u64, 0usize);
            let outcome = loop {
                match items.recv().await {
                    Some(DirectoryItem::Schools(schools)) => n_schools += schools.len(),
                    Some(DirectoryItem::NotPersons(_)) => {}
                    Some(DirectoryItem::Persons(page)) => {
                        n_persons += page.records.len() as u64;
                        n_problems += page.records.iter().map(|r| r.problems.len()).sum::<usize>();
                    }
                    Some(DirectoryItem::Complete { reported_total }) => break Ok(reported_total),
                    Some(DirectoryItem::Failed(failure)) => break Err(failure.to_string()),
                    None => break Err("the connector stopped without finishing".to_string()),
                }
            };
            code = code.max(report_fetch(
                source.name(),
                "persons",
                &format!("{n_schools} schools"),
                n_persons,
                n_problems,
                outcome,
                started.elapsed().as_secs_f64(),
            ));
        }
        if let Some(devices) = connectors.devices {
            let started = Instant::now();
            let mut pages = spawn_fetch(devices);
            let (mut n_pages, mut n_records, mut n_problems) = (0u64, 0u64, 0usize);
            let outcome = loop {
                match pages.recv().await {
                    Some(SourceItem::Page(page)) => {
                        n_pages += 1;
                        n_records += page.records.len() as u64;
                        n_problems += page.records.iter().map(|r| r.problems.len()).sum::<usize>();
                    }
                    Some(SourceItem::Schools(_)) => {}
                    Some(SourceItem::Complete { reported_total }) => break Ok(reported_total),
                    Some(SourceItem::Failed(failure)) => break Err(failure.to_string()),
                    None => break Err("the connector stopped without finishing".to_string()),
                }
            };
            code = code.max(report_fetch(
                source.name(),
                "records",
                &format!("{n_pages} pages"),
                n_records,
                n_problems,
                outcome,
                started.elapsed().as_secs_f64(),
            ));
        }
        if let Some(tickets) = connectors.tickets {
            // A full read: what a first run or `--full` would fetch.
            let started = Instant::now();
            let mut items = spawn_ticket_fetch(tickets, TicketRead::default());
            let (mut n_pages, mut n_tickets, mut n_problems) = (0u64, 0u64, 0usize);
            let outcome = loop {
                match items.recv().await {
                    Some(TicketItem::Page(page)) => {
                        n_pages += 1;
                        n_tickets += page.records.len() as u64;
                        n_problems += page.records.iter().map(|r| r.problems.len()).sum::<usize>();
                    }
                    Some(TicketItem::Complete { reported_total }) => break Ok(reported_total),
                    Some(TicketItem::Failed(failure)) => break Err(failure.to_string()),
                    None => break Err("the connector stopped without finishing".to_string()),
                }
            };
            code = code.max(report_fetch(
                source.name(),
                "tickets",
                &format!("{n_pages} pages"),
                n_tickets,
                n_problems,
                outcome,
                started.elapsed().as_secs_f64(),
            ));
        }
    }
    Ok(code)
}

/// Prints what a fetch-only run received; returns its exit code.
fn report_fetch(
    source: &str,
    what: &str,
    containers: &str,
    received: u64,
    problems: usize,
    outcome: Result<u64, String>,
    seconds: f64,
) -> i32 {
    match outcome {
        Ok(total) => {
            println!(
                "{source}: fetched {received} {what} (source reports {total}) in {containers}, \
                 {seconds:.2} s, {:.0} {what}/s; {problems} mapping problem(s)",
                received as f64 / seconds.max(1e-9)
            );
            0
        }
        Err(error) => {
            println!("{source}: fetch failed after {received} {what}: {error}");
            1
        }
    }
}

impl Row for RunView {
    fn headers() -> Vec<&'static str> {
        vec![
            "run",
            "source",
            "kind",
            "started",
            "status",
            "fetched",
            "created",
            "updated",
            "unchanged",
            "missing",
            "review",
            "note",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let status = if self.dry_run {
            format!("{} (dry)", self.status)
        } else {
            self.status.clone()
        };
        let note = self
            .error
            .clone()
            .or_else(|| self.blocked_reason.clone())
            .or_else(|| {
                self.approved_by
                    .as_ref()
                    .map(|by| format!("approved by {by}"))
            })
            .unwrap_or_default();
        vec![
            self.sync_run_id.to_string(),
            self.source_name.clone(),
            self.run_kind.clone(),
            time(&Some(self.started_at)),
            status,
            self.fetched.to_string(),
            self.created.to_string(),
            self.updated.to_string(),
            self.unchanged.to_string(),
            self.marked_missing.to_string(),
            self.review_items.to_string(),
            note,
        ]
    }
}

/// A source's state plus its next scheduled run (from the configuration).
#[derive(Debug, serde::Serialize)]
struct StatusLine {
    #[serde(flatten)]
    status: SourceStatus,
    next_run: Option<chrono::DateTime<chrono::Utc>>,
}

impl Row for StatusLine {
    fn headers() -> Vec<&'static str> {
        let mut headers = SourceStatus::headers();
        headers.push("next run");
        headers
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = self.status.cells();
        cells.push(time(&self.next_run));
        cells
    }
}

impl Row for SourceStatus {
    fn headers() -> Vec<&'static str> {
        vec![
            "source",
            "kind",
            "run kind",
            "authority",
            "last success",
            "last failure",
            "error",
            "blocked run",
            "reported",
            "missing",
            "running",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.source_name.clone(),
            self.kind.clone(),
            opt(&self.run_kind),
            self.authority.clone(),
            time(&self.last_success_at),
            time(&self.last_failure_at),
            opt(&self.last_failure_error),
            opt(&self.blocked_run_id),
            self.reported.to_string(),
            self.missing.to_string(),
            match (self.running_run_id, self.running_stale) {
                (None, _) => String::new(),
                (Some(run), false) => {
                    format!("run {run}, alive {}", time(&self.running_last_alive_at))
                }
                (Some(run), true) => format!(
                    "run {run} STALE: no sign of life since {}",
                    time(&self.running_last_alive_at)
                ),
            },
        ]
    }
}
