//! `cargo xtask test`: the one command that checks and tests the workspace, the same way for a
//! developer and for CI (`.ci/run` calls nothing else). It needs no database server of its own:
//! it makes a throwaway PostgreSQL cluster from the installed server programs, points the tests
//! at it and stops it again, also when the tests fail or are interrupted.
//! `cargo xtask bench` runs the sync benchmark (see `bench.rs` and docs/performance.md).

mod bench;
mod bench_figures;
mod bench_forecast;
mod bench_purchases;
mod bench_tickets;
mod storage_floor;
#[cfg(test)]
mod tidy;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Instant;

use anyhow::{bail, Context};
use bestand_pgcluster::{ClusterOptions, LocalCluster};

const USAGE: &str = "\
usage: cargo xtask test [--no-lint] [-- <arguments for cargo test>]
       cargo xtask bench [--all-sources] [--devices N]
       cargo xtask bench --persons N
       cargo xtask bench --forecast [--devices N]
       cargo xtask bench --purchases [N]
       cargo xtask bench --ticket-figures [N]
       cargo xtask bench --tickets [N]
       cargo xtask bench --tickets-generated [N]

  test        cargo fmt --check, cargo clippy -D warnings (also bestand-cli without the demo),
              then cargo test --workspace
              against a throwaway PostgreSQL cluster in target/xtask-postgres
  --no-lint   skip fmt and clippy (quicker while iterating)
  bench       time fetch-only, full and unchanged syncs of N mock Jamf Pro devices
              (default 50000) with release binaries; see docs/performance.md
  --all-sources  spread N (default 200000) over Jamf Pro, Intune and Relution
  --persons   time fetch-only, full and unchanged directory syncs of N persons from the
              mock UCS@school (Kelvin) instead
  --forecast  time the replacement forecast over N generated devices (default 1000000)
  --purchases time the import of a purchase file of N rows (default 50000), half of them
              about existing devices, in a release build
  --ticket-figures  time the service-level figures over N (default 500000) generated
              tickets, eight quarters, in a release build (no database)
  --tickets   time a full read of N (default 500000) tickets from the mock Zammad, an
              incremental read of 1,000 changed ones and the quarterly report over them,
              each a `bestand` process, with release binaries
  --tickets-generated  the ticket engine alone: N (default 500000) tickets from an
              in-process generator, no connector and no HTTP

examples:
  cargo xtask test
  cargo xtask test --no-lint -- -p bestand-tests --test it cli_config";

/// Exit code of a run interrupted with Ctrl-C, as shells report it.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let (own, passed) = match args.iter().position(|arg| arg == "--") {
        Some(at) => (&args[..at], args[at + 1..].to_vec()),
        None => (&args[..], Vec::new()),
    };
    let own: Vec<&str> = own
        .iter()
        .map(|arg| arg.to_str().context("arguments before `--` must be UTF-8"))
        .collect::<anyhow::Result<_>>()?;
    match own.as_slice() {
        ["test", flags @ ..] => {
            let mut lint = true;
            for flag in flags {
                match *flag {
                    "--no-lint" => lint = false,
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            test(lint, passed)
        }
        ["bench", flags @ ..] => {
            let mut devices = None;
            let mut persons = None;
            let mut ticket_figures = None;
            let mut tickets = None;
            let mut tickets_generated = None;
            let mut purchases = None;
            let mut all_sources = false;
            let mut forecast = false;
            let mut rest = flags.iter();
            while let Some(flag) = rest.next() {
                match *flag {
                    "--all-sources" => all_sources = true,
                    "--forecast" => forecast = true,
                    "--devices" => {
                        let count = rest.next().context("--devices takes a number")?;
                        devices = Some(count.parse().context("--devices takes a number")?);
                    }
                    "--tickets" => tickets = Some(optional_count(&mut rest, 500_000)),
                    "--tickets-generated" => {
                        tickets_generated = Some(optional_count(&mut rest, 500_000));
                    }
                    "--persons" => {
                        let count = rest.next().context("--persons takes a number")?;
                        persons = Some(count.parse().context("--persons takes a number")?);
                    }
                    "--purchases" => purchases = Some(optional_count(&mut rest, 50_000)),
                    "--ticket-figures" => {
                        ticket_figures = Some(optional_count(&mut rest, 500_000));
                    }
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            if forecast {
                let devices = devices.unwrap_or(1_000_000);
                return bench_forecast::bench_forecast(&workspace_root()?, devices)
                    .map(|()| ExitCode::SUCCESS);
            }
            if let Some(rows) = purchases {
                return bench_purchases::bench_purchases(&workspace_root()?, rows)
                    .map(|()| ExitCode::SUCCESS);
            }
            if let Some(tickets) = ticket_figures {
                return bench_figures::bench_ticket_figures(&workspace_root()?, tickets)
                    .map(|()| ExitCode::SUCCESS);
            }
            if let Some(tickets) = tickets {
                return bench_tickets::bench_tickets(&workspace_root()?, tickets)
                    .map(|()| ExitCode::SUCCESS);
            }
            if let Some(tickets) = tickets_generated {
                return bench::bench_tickets_generated(&workspace_root()?, tickets)
                    .map(|()| ExitCode::SUCCESS);
            }
            if let Some(persons) = persons {
                return bench::bench_persons(&workspace_root()?, persons)
                    .map(|()| ExitCode::SUCCESS);
            }
            let devices = devices.unwrap_or(if all_sources { 200_000 } else { 50_000 });
            bench::bench(&workspace_root()?, devices, all_sources).map(|()| ExitCode::SUCCESS)
        }
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        [other, ..] => bail!("unknown task {other}\n{USAGE}"),
    }
}

/// The number after a flag that takes an optional count, or `default` when the next argument is
/// none (another flag or the end).
fn optional_count(rest: &mut std::slice::Iter<'_, &str>, default: u64) -> u64 {
    let count = rest.as_slice().first().and_then(|n| n.parse().ok());
    if count.is_some() {
        rest.next();
    }
    count.unwrap_or(default)
}

fn test(lint: bool, cargo_test_args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let workspace = workspace_root()?;
    let total = Instant::now();
    if lint {
        step("cargo fmt --all -- --check");
        check(cargo(&workspace).args(["fmt", "--all", "--", "--check"]))?;
        step("cargo clippy --workspace --all-targets -- -D warnings");
        check(cargo(&workspace).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The shipped build without the demo must keep compiling without the mocks.
        step("cargo clippy -p bestand-cli --no-default-features -- -D warnings");
        check(cargo(&workspace).args([
            "clippy",
            "-p",
            "bestand-cli",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ]))?;
    }

    let cluster_dir = target_dir(&workspace).join("xtask-postgres");
    step(&format!(
        "throwaway PostgreSQL cluster in {}",
        cluster_dir.display()
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started_at = Instant::now();
    wipe_cluster(&runtime, &cluster_dir)?;
    let cluster = LocalCluster::open_with(&cluster_dir, None, ClusterOptions::throwaway())?;
    let started = runtime.block_on(cluster.start())?;
    let url = started.connection_url();
    println!(
        "PostgreSQL {} up in {:.1} s{}",
        cluster.programs().major_version,
        started_at.elapsed().as_secs_f64(),
        cluster
            .server_user()
            .map(|user| format!(", running as {user}"))
            .unwrap_or_default()
    );
    println!("DATABASE_URL={url}");

    // Tests that run bestand as separate processes (several commands on one embedded cluster)
    // need the binary itself, which `cargo test` builds for no package's tests.
    step("cargo build --package bestand-cli --bin bestand");
    check(cargo(&workspace).args(["build", "--package", "bestand-cli", "--bin", "bestand"]))?;
    let bestand_bin = target_dir(&workspace).join("debug").join("bestand");

    let mut command = cargo(&workspace);
    command.arg("test");
    // `--workspace` and a chosen package contradict each other.
    let picks_packages = cargo_test_args.iter().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == "-p" || arg.starts_with("--package") || arg.starts_with("--manifest-path")
    });
    if !picks_packages {
        command.arg("--workspace");
    }
    command
        .args(&cargo_test_args)
        .env("DATABASE_URL", &url)
        .env("BESTAND_TEST_DATABASE_URL", &url)
        .env("BESTAND_BIN", &bestand_bin);
    step(&format!("cargo {}", render_args(&command)));
    let outcome = runtime.block_on(run_until_interrupted(command));

    step("stopping the throwaway cluster");
    let stopped = runtime.block_on(started.stop());
    let (status, tally) = outcome?;
    stopped.context("cannot stop the throwaway cluster")?;

    let seconds = total.elapsed().as_secs_f64();
    let code = match status {
        TestOutcome::Finished(status) if status.success() => {
            println!("xtask: all checks passed in {seconds:.0} s");
            Ok(ExitCode::SUCCESS)
        }
        TestOutcome::Finished(status) => {
            eprintln!("xtask: cargo test failed ({status}) after {seconds:.0} s");
            Ok(ExitCode::from(
                status
                    .code()
                    .and_then(|code| u8::try_from(code).ok())
                    .filter(|code| *code != 0)
                    .unwrap_or(1),
            ))
        }
        TestOutcome::Interrupted => {
            eprintln!("xtask: interrupted");
            Ok(ExitCode::from(INTERRUPTED))
        }
    };
    // The closing line CI reads: every test binary's results added up.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    code
}

enum TestOutcome {
    Finished(ExitStatus),
    Interrupted,
}

/// Runs the tests, but lets Ctrl-C through to them only: xtask itself stays alive to stop the
/// cluster once they have exited. Their output is passed through line by line and the
/// `test result:` lines are added up, because cargo's own last line belongs to whichever test
/// binary ran last, often an empty one.
async fn run_until_interrupted(command: Command) -> anyhow::Result<(TestOutcome, TestTally)> {
    use tokio::io::AsyncBufReadExt;

    let mut child = tokio::process::Command::from(command)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    let reader = tokio::spawn(async move {
        let mut tally = TestTally::default();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
            tally.add(&line);
        }
        tally
    });
    let outcome = tokio::select! {
        status = child.wait() => TestOutcome::Finished(status.context("cannot wait for cargo test")?),
        _ = tokio::signal::ctrl_c() => {
            // The terminal sent the signal to cargo as well; wait for it to wind down.
            let _ = child.wait().await;
            TestOutcome::Interrupted
        }
    };
    let tally = reader.await.unwrap_or_default();
    Ok((outcome, tally))
}

/// The sum of every test binary's `test result:` line.
#[derive(Debug, Default, Clone, Copy)]
struct TestTally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTally {
    fn add(&mut self, line: &str) {
        let Some(result) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in result.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Stops a server left running by an earlier, killed run, then removes its folder.
fn wipe_cluster(runtime: &tokio::runtime::Runtime, cluster_dir: &Path) -> anyhow::Result<()> {
    if !cluster_dir.exists() {
        return Ok(());
    }
    if let Ok(old) = LocalCluster::open(cluster_dir, None) {
        if runtime.block_on(old.stop()).unwrap_or(false) {
            println!("stopped a server left over from an earlier run");
        }
    }
    std::fs::remove_dir_all(cluster_dir)
        .with_context(|| format!("cannot remove {}", cluster_dir.display()))
}

fn step(title: &str) {
    println!("\n==> {title}");
}

fn cargo(workspace: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace);
    command
}

fn check(command: &mut Command) -> anyhow::Result<()> {
    let began = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run cargo {}", render_args(command)))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", render_args(command));
    }
    println!("ok in {:.0} s", began.elapsed().as_secs_f64());
    Ok(())
}

fn render_args(command: &Command) -> String {
    command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask must live one folder below the workspace root")
}

fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}
