//! `cargo xtask bench --tickets N`: the ticket benchmark of issue 18 through the Zammad
//! connector and the mock Zammad, as an operator would run it: release binaries, bestand's own
//! PostgreSQL with production settings, the mock Jamf Pro and the mock Zammad as processes of
//! their own, and each measured step a `bestand` process timed from outside (wall time and peak
//! memory): a full read of N tickets into an empty ticket store, an incremental read of 1,000
//! tickets the mock changed, and the quarterly report over all of them (docs/performance.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use anyhow::{bail, Context};

use crate::bench::{counted, free_port, measure, print_source_lines, row, MockSource, Stage};

/// The fleet the tickets refer to: the mocks' default Musterstadt fleet (`MUSTERSTADT_DEVICES`
/// in mocks/src/generator.rs). The mock Zammad picks each ticket's device from the fleet of the
/// same seed and size, so with the same numbers for both mocks every device a ticket names
/// exists in the inventory; 500,000 tickets over 5,000 devices is 100 a device, and about 65 %
/// of the tickets name one, so the links are measured too.
const FLEET_DEVICES: u64 = 5_000;
const SEED: &str = "42";
/// The token `bestand-mock zammad` is started with and bestand reads from a file.
pub const ZAMMAD_TOKEN: &str = "bench-zammad-token";
/// `TOUCH_PATH` of mocks/src/zammad.rs: closes N tickets now, past every other update.
const TOUCH_PATH: &str = "/_mock/touch";
/// The incremental read of the issue: 1,000 changed tickets.
const CHANGED: u64 = 1_000;

/// The keys of the bench's Zammad source besides its URL and token: the mock's asset attribute,
/// title patterns for its two title forms (`... (SN <serial>)`, `... – Inventar-Nr. <tag>`),
/// and topics and providers for its groups (mocks/src/zammad.rs, `GROUPS`), as an authority
/// would map them (docs/tickets.md, "Configuration").
pub const ZAMMAD_MAPPING: &str = r#"asset_fields = ["inventarnummer"]
title_patterns = ['\bSN (?P<serial>[A-Z0-9]{8,})\b', '\bInventar-Nr\. (?P<tag>INV-\d{4}-\d{5})\b']
topics = { "Service Desk::Netzwerk" = "network", "Schulserver" = "school_server", "Endgeräte" = "end_devices" }
providers = { "Dienstleister::Muster IT GmbH" = "Muster IT GmbH", "Dienstleister::Schul-IT Nord" = "Schul-IT Nord" }
"#;

pub fn bench_tickets(workspace: &Path, tickets: u64) -> anyhow::Result<()> {
    let mock = |subcommand: &str, extra: &[String]| -> Vec<String> {
        let mut args = vec![
            subcommand.to_string(),
            "--devices".into(),
            FLEET_DEVICES.to_string(),
            "--seed".into(),
            SEED.into(),
        ];
        args.extend_from_slice(extra);
        args
    };
    let jamf = MockSource {
        name: "jamf",
        kind: "jamf_pro",
        devices: FLEET_DEVICES,
        mock_args: mock("jamf-pro", &[]),
        port: free_port()?,
    };
    let zammad = MockSource {
        name: "zammad",
        kind: "zammad",
        devices: FLEET_DEVICES,
        mock_args: mock(
            "zammad",
            &[
                "--tickets".into(),
                tickets.to_string(),
                "--token".into(),
                ZAMMAD_TOKEN.into(),
            ],
        ),
        port: free_port()?,
    };
    let zammad_port = zammad.port;
    crate::bench::staged(workspace, &[jamf, zammad], |stage| {
        // Unmeasured: the devices the tickets name must exist for the links.
        let devices = stage.bestand(&["sync", "--source", "jamf"])?;
        if counted(&devices.output, "created") != FLEET_DEVICES {
            bail!(
                "the device sync did not create {FLEET_DEVICES} devices:\n{}",
                devices.output
            );
        }
        measure_tickets(stage, tickets, zammad_port)
    })
}

fn measure_tickets(stage: &Stage, tickets: u64, zammad_port: u16) -> anyhow::Result<()> {
    crate::step(&format!(
        "measuring {tickets} tickets from the mock Zammad about {FLEET_DEVICES} devices"
    ));
    let load_before = load_average();
    println!("load average before: {load_before}");

    let full = stage.bestand(&["sync", "--source", "zammad", "--full"])?;
    // A fast run that stored less is no figure.
    if counted(&full.output, "created") != tickets {
        bail!(
            "the full read did not create {tickets} tickets:\n{}",
            full.output
        );
    }
    let full_rate = tickets as f64 / full.seconds;
    println!(
        "{:<18} {:>7.2} s  {full_rate:>8.0} tickets/s  peak {:>5.0} MB",
        "full read", full.seconds, full.peak_rss_mb
    );
    print_source_lines(&full.output);

    let touched = touch(zammad_port, CHANGED)?;
    if touched != CHANGED {
        bail!("the mock Zammad changed {touched} tickets, not {CHANGED}");
    }
    let incremental = stage.bestand(&["sync", "--source", "zammad"])?;
    if counted(&incremental.output, "updated") != CHANGED {
        bail!(
            "the incremental read did not update {CHANGED} tickets:\n{}",
            incremental.output
        );
    }
    println!(
        "{:<18} {:>7.2} s  {CHANGED} changed tickets     peak {:>5.0} MB",
        "incremental read", incremental.seconds, incremental.peak_rss_mb
    );
    print_source_lines(&incremental.output);

    let (runs, quarter) = stage.runtime.block_on(recorded(stage))?;
    let report_path = stage.bench_dir.join("ticket-report.json");
    let report_file = std::fs::File::create(&report_path)
        .with_context(|| format!("cannot create {}", report_path.display()))?;
    let report = measure(
        stage.command(&[
            "reports", "tickets", "--period", &quarter, "--format", "json",
        ]),
        Some(report_file),
    )?;
    let json = std::fs::read_to_string(&report_path)?;
    let read = json_number(&json, "tickets_read");
    if read != Some(tickets) {
        bail!("the report over {quarter} and the seven quarters before read {read:?} tickets, not {tickets}");
    }
    println!(
        "{:<18} {:>7.2} s  {quarter} and the 7 quarters before, {tickets} tickets read  peak {:>5.0} MB",
        "quarterly report", report.seconds, report.peak_rss_mb
    );
    let load_after = load_average();
    println!("load average after: {load_after}");

    println!("the ticket runs as the database recorded them (started to finished):");
    for run in &runs {
        println!("    {run}");
    }

    crate::step("against the targets");
    println!("| figure | measured | target | met |\n|---|---|---|---|");
    row(
        &format!("full read, {tickets} tickets stored"),
        format!("{full_rate:.0} tickets/s ({:.2} s)", full.seconds),
        ">= 10,000 tickets/s",
        full_rate >= 10_000.0,
    );
    row(
        &format!("incremental read of {CHANGED} changed tickets"),
        format!("{:.2} s", incremental.seconds),
        "< 1 s",
        incremental.seconds < 1.0,
    );
    row(
        &format!("quarterly report ({quarter}, 8 quarters)"),
        format!("{:.2} s", report.seconds),
        "< 2 s",
        report.seconds < 2.0,
    );
    let peak = [&full, &incremental, &report]
        .iter()
        .map(|m| m.peak_rss_mb)
        .fold(0.0, f64::max);
    println!("| peak memory of bestand | {peak:.0} MB | | |");
    Ok(())
}

/// A `sync_run` row: id, status, fetched, created, updated, unchanged, seconds.
type RunRow = (i64, String, i32, i32, i32, i32, Option<f64>);

/// The ticket runs' durations as `sync_run` recorded them (the process times above include
/// start-up and the connection), and the quarter of the newest stored ticket, which the report
/// is asked for so that its eight quarters cover the generated tickets.
async fn recorded(stage: &Stage<'_>) -> anyhow::Result<(Vec<String>, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&stage.cluster.connect_options()).await?;
    let runs: Vec<RunRow> = sqlx::query_as(
        "select r.sync_run_id, r.status, r.fetched, r.created, r.updated, r.unchanged, \
         extract(epoch from r.finished_at - r.started_at)::float8 \
         from sync_run r join source s using (source_id) \
         where s.kind = 'zammad' order by r.sync_run_id",
    )
    .fetch_all(&mut conn)
    .await?;
    let runs = runs
        .into_iter()
        .map(|(id, status, fetched, created, updated, unchanged, seconds)| {
            format!(
                "run {id}: {status} in {} s, fetched {fetched} · created {created} · updated {updated} · unchanged {unchanged}",
                seconds.map_or_else(|| "?".to_string(), |s| format!("{s:.2}"))
            )
        })
        .collect();
    let (year, quarter): (i32, i32) = sqlx::query_as(
        "select extract(year from newest)::int, extract(quarter from newest)::int \
         from (select max(created_at) at time zone 'Europe/Berlin' as newest from ticket) t",
    )
    .fetch_one(&mut conn)
    .await
    .context("no tickets stored")?;
    conn.close().await?;
    Ok((runs, format!("{year}-Q{quarter}")))
}

/// `POST TOUCH_PATH?count=N` to the mock Zammad; returns how many tickets it changed.
fn touch(port: u16, count: u64) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "POST {TOUCH_PATH}?count={count} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") {
        bail!("the mock Zammad refused {TOUCH_PATH}: {answer}");
    }
    json_number(&answer, "touched").with_context(|| format!("no count in the answer: {answer}"))
}

/// The number after `"key":` in a JSON text (compact or pretty).
fn json_number(json: &str, key: &str) -> Option<u64> {
    let quoted = format!("\"{key}\"");
    let after = &json[json.find(&quoted)? + quoted.len()..];
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..digits].parse().ok()
}

/// The machine is shared; the figures mean little without its load (`/proc/loadavg`, as
/// `uptime` prints it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn json_numbers_are_read_compact_and_pretty() {
        assert_eq!(json_number(r#"{"touched":1000}"#, "touched"), Some(1000));
        assert_eq!(
            json_number(
                "{\n  \"period\": \"2026-Q3\",\n  \"tickets_read\": 500000,\n",
                "tickets_read"
            ),
            Some(500_000)
        );
        assert_eq!(json_number(r#"{"touched":"x"}"#, "touched"), None);
        assert_eq!(json_number("{}", "touched"), None);
    }
}
