//! The scheduler `bestand serve` runs: every source on its own schedule, without anyone
//! watching, and the figures it keeps for /metrics.
//!
//! Each source with a `schedule` gets a task that sleeps until its next time and runs a sync.
//! Runs of one source never overlap, also across processes and hosts, because every run takes
//! the source's PostgreSQL advisory lock; a run that finds it taken is skipped. After a failure
//! the next run waits longer (exponential, capped at an hour). When `stopped` turns true the
//! scheduling stops; a run in progress finishes (its transaction commits or rolls back as a
//! whole).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bestand_core::model::SyncStatus;
use bestand_core::store::SourceRef;
use bestand_core::sync::{self, NoProgress};
use bestand_core::Scope;
use bestand_core::{Clock, CoreError};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::config::{Config, SourceConfig};
use crate::database::apply_config_directory;
use crate::error::AppError;
use crate::sources::sync_source;

/// Longest wait added after failures.
const MAX_BACKOFF_SECS: i64 = 3600;

/// Parses a schedule: the usual 5-field cron form (minute hour day month weekday), or the
/// `cron` crate's 6- and 7-field forms that start with seconds.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let expression = match fields {
        5 => format!("0 {text}"),
        6 | 7 => text.to_string(),
        _ => {
            return Err(format!(
            "schedule '{text}' has {fields} fields; use the 5-field cron form, e.g. \"0 * * * *\""
        ))
        }
    };
    cron::Schedule::from_str(&expression)
        .map_err(|error| format!("schedule '{text}' is not valid cron: {error}"))
}

/// What the scheduler knows about each source, for /metrics and logs.
#[derive(Debug, Default)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, SourceMetrics>>,
}

#[derive(Debug, Default, Clone)]
struct SourceMetrics {
    /// Runs by run kind (`directory`, `devices`, or `none` for a sync that could not start a
    /// run) and outcome.
    runs: BTreeMap<(&'static str, &'static str), u64>,
    skipped_busy: u64,
    last_duration_secs: f64,
    last_success: Option<DateTime<Utc>>,
    devices: i64,
    next_run: Option<DateTime<Utc>>,
}

impl SourceMetrics {
    fn count(&self, status: &str) -> u64 {
        self.runs
            .iter()
            .filter(|((_, run_status), _)| *run_status == status)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Metrics {
    fn update(&self, source: &str, change: impl FnOnce(&mut SourceMetrics)) {
        if let Ok(mut sources) = self.sources.lock() {
            change(sources.entry(source.to_string()).or_default());
        }
    }

    /// Runs of `source` of any kind that ended with `status` so far.
    pub fn runs(&self, source: &str, status: &str) -> u64 {
        self.sources
            .lock()
            .ok()
            .and_then(|sources| sources.get(source).map(|m| m.count(status)))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of everything known.
    pub fn render(&self) -> String {
        let sources = self.sources.lock().map(|s| s.clone()).unwrap_or_default();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for line in lines {
                let _ = writeln!(out, "{name}{line}");
            }
        };
        family(
            "bestand_sync_runs_total",
            "counter",
            "Sync runs by source, run kind (directory, devices) and outcome.",
            sources
                .iter()
                .flat_map(|(source, m)| {
                    m.runs.iter().map(move |((kind, status), n)| {
                        format!("{{source=\"{source}\",kind=\"{kind}\",status=\"{status}\"}} {n}")
                    })
                })
                .collect(),
        );
        family(
            "bestand_sync_failures_total",
            "counter",
            "Sync runs that failed.",
            sources
                .iter()
                .map(|(s, m)| format!("{{source=\"{s}\"}} {}", m.count("failed")))
                .collect(),
        );
        family(
            "bestand_sync_skipped_total",
            "counter",
            "Scheduled runs skipped because another process was syncing the source.",
            sources
                .iter()
                .map(|(s, m)| format!("{{source=\"{s}\"}} {}", m.skipped_busy))
                .collect(),
        );
        family(
            "bestand_sync_duration_seconds",
            "gauge",
            "Duration of the last run.",
            sources
                .iter()
                .map(|(s, m)| format!("{{source=\"{s}\"}} {:.3}", m.last_duration_secs))
                .collect(),
        );
        family(
            "bestand_source_devices",
            "gauge",
            "Devices the source reports (live links).",
            sources
                .iter()
                .map(|(s, m)| format!("{{source=\"{s}\"}} {}", m.devices))
                .collect(),
        );
        family(
            "bestand_sync_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful run (0: none yet).",
            sources
                .iter()
                .map(|(s, m)| {
                    format!(
                        "{{source=\"{s}\"}} {}",
                        m.last_success.map(|t| t.timestamp()).unwrap_or(0)
                    )
                })
                .collect(),
        );
        family(
            "bestand_sync_next_run_timestamp_seconds",
            "gauge",
            "Unix time of the next scheduled run.",
            sources
                .iter()
                .map(|(s, m)| {
                    format!(
                        "{{source=\"{s}\"}} {}",
                        m.next_run.map(|t| t.timestamp()).unwrap_or(0)
                    )
                })
                .collect(),
        );
        out
    }
}

/// `bestand_sync_running` and `bestand_sync_stale` per source and run kind.
pub fn render_running(running: &[bestand_core::store::runs::RunningRun]) -> String {
    let mut out = String::new();
    for (name, help, stale) in [
        ("bestand_sync_running", "Runs marked running, alive or not.", None),
        (
            "bestand_sync_stale",
            "Runs marked running that sent no heartbeat for a minute: their process most likely died.",
            Some(true),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for run in running.iter().filter(|run| stale.is_none_or(|stale| run.stale == stale)) {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\",kind=\"{}\",run=\"{}\"}} 1",
                run.source_name, run.run_kind, run.run_id
            );
        }
    }
    out
}

/// Runs every scheduled source until `stopped` turns true; returns when all loops have ended.
pub async fn run_scheduler(
    pool: PgPool,
    config: Config,
    metrics: Arc<Metrics>,
    stopped: watch::Receiver<bool>,
) -> Result<(), AppError> {
    let refs = apply_config_directory(&pool, &config).await?;
    let mut tasks = Vec::new();
    for source in config.sources.iter().filter(|s| s.common.enabled) {
        let Some(text) = &source.common.schedule else {
            tracing::warn!(
                source = source.name(),
                "source has no schedule; bestand serve leaves it alone"
            );
            continue;
        };
        let schedule = parse_schedule(text).map_err(|message| AppError::Source {
            source_name: source.name().to_string(),
            message,
        })?;
        let source_ref = refs
            .iter()
            .find(|r| r.name == source.name())
            .cloned()
            .ok_or_else(|| AppError::Source {
                source_name: source.name().to_string(),
                message: "was not registered".to_string(),
            })?;
        tasks.push(tokio::spawn(source_loop(
            pool.clone(),
            config.clone(),
            source.clone(),
            source_ref,
            schedule,
            Arc::clone(&metrics),
            stopped.clone(),
        )));
    }
    if tasks.is_empty() {
        return Err(AppError::NothingScheduled {
            config: config.path.clone(),
        });
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn source_loop(
    pool: PgPool,
    config: Config,
    source: SourceConfig,
    source_ref: SourceRef,
    schedule: cron::Schedule,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let name = source.name().to_string();
    let mut failures: u32 = 0;
    loop {
        let now = SystemClock.now();
        let Some(mut next) = schedule.after(&now).next() else {
            tracing::warn!(source = %name, "schedule has no future time; stopping this source");
            return;
        };
        if failures > 0 {
            let backoff = (60_i64 << failures.min(6)).min(MAX_BACKOFF_SECS);
            next = next.max(now + chrono::Duration::seconds(backoff));
        }
        metrics.update(&name, |m| m.next_run = Some(next));
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        if *stopped.borrow() {
            return;
        }
        let started = Instant::now();
        let outcome = run_once(&pool, &config, &source, &source_ref).await;
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(reports) => {
                // The worst outcome of the source's runs (directory and devices) counts.
                let status = reports
                    .iter()
                    .map(|report| report.status)
                    .max_by_key(|status| match status {
                        SyncStatus::Failed => 3,
                        SyncStatus::Blocked => 2,
                        _ => 1,
                    })
                    .unwrap_or(SyncStatus::Succeeded);
                failures = if status == SyncStatus::Failed {
                    failures + 1
                } else {
                    0
                };
                let devices: i64 = sqlx::query_scalar(
                    "select count(*) from source_link where source_id = $1 and ended_at is null and missing_since is null",
                )
                .bind(source_ref.source_id)
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                metrics.update(&name, |m| {
                    for report in &reports {
                        *m.runs
                            .entry((report.kind, report.status.as_str()))
                            .or_default() += 1;
                    }
                    m.last_duration_secs = seconds;
                    m.devices = devices;
                    if status == SyncStatus::Succeeded {
                        m.last_success = Some(SystemClock.now());
                    }
                });
                for report in &reports {
                    let kind = report.kind;
                    match report.status {
                        SyncStatus::Failed => {
                            tracing::error!(source = %name, kind, error = report.error.as_deref().unwrap_or(""), failures, "Scheduled sync failed.")
                        }
                        SyncStatus::Blocked => {
                            tracing::warn!(source = %name, kind, run = report.run_id, reason = report.blocked_reason.as_deref().unwrap_or(""), "Scheduled sync blocked; it needs `bestand sync approve`.")
                        }
                        _ => {
                            tracing::info!(source = %name, kind, run = report.run_id, created = report.counts.created, updated = report.counts.updated, seconds, "Scheduled sync finished.")
                        }
                    }
                }
            }
            Err(error) => {
                if matches!(error, AppError::Core(CoreError::SourceBusy { .. })) {
                    metrics.update(&name, |m| m.skipped_busy += 1);
                    tracing::info!(source = %name, "Skipped: another process is syncing this source.");
                } else {
                    failures += 1;
                    metrics.update(&name, |m| {
                        *m.runs.entry(("none", "failed")).or_default() += 1;
                    });
                    tracing::error!(source = %name, error = %error.chain(), failures, "Scheduled sync could not run.");
                }
            }
        }
    }
}

async fn run_once(
    pool: &PgPool,
    config: &Config,
    source: &SourceConfig,
    source_ref: &SourceRef,
) -> Result<Vec<sync::SyncReport>, AppError> {
    let reports = sync_source(
        pool,
        &Scope::All,
        config,
        source,
        source_ref,
        false,
        &NoProgress,
    )
    .await?;
    Ok(reports.into_iter().map(|(report, _)| report).collect())
}
