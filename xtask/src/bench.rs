//! `cargo xtask bench`: the sync benchmark. It builds release binaries, starts bestand's own
//! PostgreSQL with production settings and the mock Jamf Pro as a separate process, then times
//! three `bestand` processes: fetch only, a full sync into an empty inventory, and an unchanged
//! re-sync. Each process's wall time and peak memory (its own, not the mock's or the server's)
//! are measured from outside, so the figures are what an operator would see.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bestand_pgcluster::{LocalCluster, StartedCluster};

use crate::storage_floor;

/// What one measured `bestand` process did.
pub(crate) struct Measured {
    pub seconds: f64,
    pub peak_rss_mb: f64,
    pub output: String,
}

/// One mock source of the benchmark.
pub(crate) struct MockSource {
    pub name: &'static str,
    pub kind: &'static str,
    pub devices: u64,
    /// `bestand-mock` arguments before `--port`.
    pub mock_args: Vec<String>,
    pub port: u16,
}

impl MockSource {
    fn new(
        name: &'static str,
        kind: &'static str,
        subcommand: &str,
        devices: u64,
        seed: u64,
    ) -> anyhow::Result<MockSource> {
        let mock_args = vec![
            subcommand.to_string(),
            "--devices".into(),
            devices.to_string(),
            "--seed".into(),
            seed.to_string(),
        ];
        Ok(MockSource {
            name,
            kind,
            devices,
            mock_args,
            port: free_port()?,
        })
    }

    /// The kind-specific keys of its `[[source]]` table (the mocks' default credentials).
    fn config(&self, bench_dir: &Path) -> anyhow::Result<String> {
        let base = format!("http://127.0.0.1:{}", self.port);
        let secret = |file: &str, value: &str| -> anyhow::Result<String> {
            let path = bench_dir.join(file);
            std::fs::write(&path, value)?;
            Ok(format!("{:?}", path.display().to_string()))
        };
        Ok(match self.kind {
            "jamf_pro" => format!(
                "base_url = \"{base}\"\nclient_id = \"bestand-mock-client\"\nclient_secret_file = {}\npage_size = 2000\n",
                secret("jamf-secret", "bestand-mock-secret")?
            ),
            "intune" => format!(
                "tenant_id = \"musterstadt.example.de\"\nclient_id = \"bestand-intune-mock-client\"\n\
                 client_secret_file = {}\ntoken_url = \"{base}/musterstadt.example.de/oauth2/v2.0/token\"\ngraph_url = \"{base}\"\n",
                secret("intune-secret", "bestand-intune-mock-secret")?
            ),
            "relution" => format!(
                "base_url = \"{base}\"\naccess_token_file = {}\norganization = \"C7A1F3E2-0B4D-4E6F-8A9B-1C2D3E4F5A6B\"\npage_size = 2000\n",
                secret("relution-token", "bestand-relution-mock-token")?
            ),
            "jamf_school" => format!(
                "base_url = \"{base}\"\nnetwork_id = \"bestand-mock-network\"\napi_key_file = {}\n",
                secret("jamf-school-key", "bestand-mock-api-key")?
            ),
            "kelvin" => format!(
                "base_url = \"{base}\"\nusername = \"{KELVIN_USER}\"\npassword_file = {}\n",
                secret("kelvin-password", KELVIN_PASSWORD)?
            ),
            "zammad" => format!(
                "url = \"{base}\"\ntoken_file = {}\n{}",
                secret("zammad-token", crate::bench_tickets::ZAMMAD_TOKEN)?,
                crate::bench_tickets::ZAMMAD_MAPPING
            ),
            other => bail!("the benchmark has no configuration for kind {other}"),
        })
    }
}

/// The credentials `bestand-mock kelvin` is started with.
const KELVIN_USER: &str = "bench-reader";
const KELVIN_PASSWORD: &str = "bench-reader-password";

/// A directory of `persons` served by the Kelvin mock: fetch only, a full directory sync into an
/// empty inventory, and an unchanged re-read.
pub fn bench_persons(workspace: &Path, persons: u64) -> anyhow::Result<()> {
    let source = MockSource {
        name: "ucs",
        kind: "kelvin",
        devices: persons,
        mock_args: [
            "kelvin",
            "--persons",
            &persons.to_string(),
            "--seed",
            "42",
            "--username",
            KELVIN_USER,
            "--password",
            KELVIN_PASSWORD,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect(),
        port: free_port()?,
    };
    run_bench(workspace, vec![source], Targets::None)
}

/// The ticket engine alone (docs/performance.md): `tickets` tickets from an in-process generator
/// (the example `ticket_bench` of bestand-core, no connector, no HTTP) into an empty inventory,
/// then 1,000 changed tickets read incrementally and the quarterly report, against bestand's own
/// cluster with production settings. `bench_tickets` measures the same through the mock Zammad;
/// the difference between the two is the connector's and the mock's share.
pub fn bench_tickets_generated(workspace: &Path, tickets: u64) -> anyhow::Result<()> {
    crate::step("building the ticket benchmark (release)");
    crate::check(crate::cargo(workspace).args([
        "build",
        "--release",
        "-p",
        "bestand-core",
        "--example",
        "ticket_bench",
    ]))?;
    let release = crate::target_dir(workspace).join("release");
    let cluster_dir = crate::target_dir(workspace).join("bench").join("postgres");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::wipe_cluster(&runtime, &cluster_dir)?;
    crate::step("starting PostgreSQL (production settings)");
    let cluster = LocalCluster::open(&cluster_dir, None)?;
    let started = runtime.block_on(cluster.start())?;
    crate::step(&format!("measuring {tickets} tickets"));
    let mut command = Command::new(release.join("examples").join("ticket_bench"));
    command
        .arg(tickets.to_string())
        .env("DATABASE_URL", started.connection_url());
    let outcome = measure(command, None);
    runtime.block_on(started.stop())?;
    let measured = outcome?;
    print!("{}", measured.output);
    println!(
        "whole process: {:.2} s, at most {:.0} MB",
        measured.seconds, measured.peak_rss_mb
    );
    Ok(())
}

/// Which targets a benchmark's figures are checked against.
#[derive(PartialEq)]
enum Targets {
    /// The device sync targets of docs/performance.md.
    DeviceSync,
    /// Figures only (the directory sync has no stated targets).
    None,
}

/// `devices` mock Jamf Pro devices; with `all_sources`, the records are spread over Jamf Pro
/// (50 %), Intune (25 %, Windows laptops), Relution (15 %, the first devices of the Jamf Pro
/// fleet again, so they match devices already there) and Jamf School (10 %, the iPads of a
/// fleet of its own; the mock serves only the iPads of that many devices).
pub fn bench(workspace: &Path, devices: u64, all_sources: bool) -> anyhow::Result<()> {
    let sources = if all_sources {
        vec![
            MockSource::new("jamf", "jamf_pro", "jamf-pro", devices * 50 / 100, 42)?,
            MockSource::new("intune", "intune", "intune", devices * 25 / 100, 43)?,
            MockSource::new("relution", "relution", "relution", devices * 15 / 100, 42)?,
            MockSource::new(
                "jamf-school",
                "jamf_school",
                "jamf-school",
                devices * 10 / 100,
                44,
            )?,
        ]
    } else {
        vec![MockSource::new(
            "jamf", "jamf_pro", "jamf-pro", devices, 42,
        )?]
    };
    run_bench(workspace, sources, Targets::DeviceSync)
}

fn run_bench(workspace: &Path, sources: Vec<MockSource>, targets: Targets) -> anyhow::Result<()> {
    let new_devices: u64 = sources
        .iter()
        .filter(|s| s.name != "relution")
        .map(|s| s.devices)
        .sum();
    let fetched: u64 = sources.iter().map(|s| s.devices).sum();
    staged(workspace, &sources, |stage| {
        // One unmeasured pass lets the mocks render and cache their pages, as a real server has
        // its data at hand; it also warms the file cache.
        stage.bestand(&["sync", "--fetch-only"])?;

        let names: Vec<String> = sources
            .iter()
            .map(|s| format!("{} {}", s.name, s.devices))
            .collect();
        crate::step(&format!(
            "measuring with {} ({fetched} records, {new_devices} distinct)",
            names.join(", ")
        ));
        let fetch = stage.bestand(&["sync", "--fetch-only"])?;
        // Some mocks serve part of their fleet (Jamf School only its iPads): count what came.
        let fetched = counted(&fetch.output, "fetched");
        print_measured("fetch only", &fetch, fetched);
        let full = stage.bestand(&["sync"])?;
        print_measured("full sync", &full, fetched);
        expect(&full.output, &format!("created {}", sources[0].devices))?;
        print_source_lines(&full.output);
        let unchanged = stage.bestand(&["sync"])?;
        print_measured("unchanged re-sync", &unchanged, fetched);
        print_source_lines(&unchanged.output);
        let succeeded = unchanged.output.matches(": succeeded in").count();
        if succeeded != sources.len()
            || counted(&unchanged.output, "unchanged") != counted(&unchanged.output, "fetched")
        {
            bail!(
                "the unchanged re-sync did not find every record unchanged:\n{}",
                unchanged.output
            );
        }

        if targets == Targets::None {
            return Ok(());
        }
        let floor = stage.runtime.block_on(storage_floor::measure(
            &stage.cluster.connect_options(),
            stage.cluster.cluster().data_dir(),
        ))?;
        println!(
            "{:<18} {:>7.2} s  PostgreSQL alone loading the {} rows the full sync wrote, on two connections",
            "storage floor", floor.wall_seconds, floor.rows
        );
        let statements: Vec<String> = floor
            .statements
            .iter()
            .map(|(table, seconds)| format!("{table} {seconds:.2} s"))
            .collect();
        println!(
            "    COPY statements {:.2} s: {}",
            floor.statement_seconds(),
            statements.join(", ")
        );
        let rate = |m: &Measured| fetched as f64 / m.seconds;
        let peak = [&fetch, &full, &unchanged]
            .iter()
            .map(|m| m.peak_rss_mb)
            .fold(0.0, f64::max);
        crate::step("against the targets");
        println!("| figure | measured | target | met |\n|---|---|---|---|");
        row(
            "full sync",
            format!("{:.0} records/s", rate(&full)),
            ">= 10,000 devices/s",
            rate(&full) >= 10_000.0,
        );
        row(
            "unchanged re-sync",
            format!("{:.0} records/s", rate(&unchanged)),
            ">= 30,000 devices/s",
            rate(&unchanged) >= 30_000.0,
        );
        let ratio = full.seconds / fetch.seconds;
        row(
            "full sync / fetch only",
            format!(
                "{ratio:.2}x ({:.2} s / {:.2} s)",
                full.seconds, fetch.seconds
            ),
            "<= 2x",
            ratio <= 2.0,
        );
        let floor_ratio = floor.wall_seconds / fetch.seconds;
        row(
            "storage floor / fetch only",
            format!(
                "{floor_ratio:.2}x ({:.2} s / {:.2} s)",
                floor.wall_seconds, fetch.seconds
            ),
            "(bounds the line above)",
            floor_ratio <= 2.0,
        );
        row(
            "peak memory of bestand",
            format!("{peak:.0} MB"),
            "< 300 MB",
            peak < 300.0,
        );
        Ok(())
    })
}

/// What a process benchmark stands on: release binaries, bestand's own cluster with production
/// settings, the mock sources as processes of their own, and a migrated database configured
/// with Musterstadt's schools and those sources.
pub(crate) struct Stage<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub cluster: &'a StartedCluster,
    release: PathBuf,
    pub bench_dir: PathBuf,
    config_path: PathBuf,
}

impl Stage<'_> {
    /// Runs `bestand --config CONFIG args...` as its own process and measures it.
    pub fn bestand(&self, args: &[&str]) -> anyhow::Result<Measured> {
        measure(self.command(args), None)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.release.join("bestand"));
        command.arg("--config").arg(&self.config_path).args(args);
        command
    }
}

/// Builds, starts and configures everything a [`Stage`] names, runs `body` on it, then stops
/// the mocks and the cluster again, also when `body` fails.
pub(crate) fn staged(
    workspace: &Path,
    sources: &[MockSource],
    body: impl FnOnce(&Stage) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    crate::step("building release binaries");
    crate::check(crate::cargo(workspace).args([
        "build",
        "--release",
        "-p",
        "bestand-cli",
        "-p",
        "bestand-mocks",
    ]))?;
    let release = crate::target_dir(workspace).join("release");
    let bench_dir = crate::target_dir(workspace).join("bench");
    let cluster_dir = bench_dir.join("postgres");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::wipe_cluster(&runtime, &cluster_dir)?;
    std::fs::create_dir_all(&bench_dir)?;
    crate::step("starting PostgreSQL (production settings) and the mock sources");
    let cluster = LocalCluster::open(&cluster_dir, None)?;
    let started = runtime.block_on(cluster.start())?;
    let url = started.connection_url();

    let mut mocks = Vec::new();
    for source in sources {
        let mut args = source.mock_args.clone();
        args.extend(["--port".to_string(), source.port.to_string()]);
        let mock = Command::new(release.join("bestand-mock"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start bestand-mock")?;
        mocks.push(mock);
    }
    let outcome = (|| {
        for source in sources {
            wait_for_port(source.port)?;
        }
        let schools = Command::new(release.join("bestand-mock"))
            .arg("schools-toml")
            .output()?;
        let mut config = format!(
            "[database]\nurl = {url:?}\n\n{}\n",
            String::from_utf8_lossy(&schools.stdout)
        );
        for source in sources {
            config.push_str(&format!(
                "[[source]]\nname = \"{}\"\nkind = \"{}\"\nauthority = \"musterstadt\"\n{}\n",
                source.name,
                source.kind,
                source.config(&bench_dir)?
            ));
        }
        let config_path = bench_dir.join("config.toml");
        std::fs::write(&config_path, config)?;
        let stage = Stage {
            runtime: &runtime,
            cluster: &started,
            release: release.clone(),
            bench_dir: bench_dir.clone(),
            config_path,
        };
        stage.bestand(&["db", "migrate"])?;
        body(&stage)
    })();
    for mut mock in mocks {
        let _ = mock.kill();
        let _ = mock.wait();
    }
    runtime.block_on(started.stop())?;
    outcome
}

/// The sum of the numbers after `word` in bestand's output (`fetched 120000 ...` lines).
pub(crate) fn counted(output: &str, word: &str) -> u64 {
    let marker = format!("{word} ");
    output
        .match_indices(&marker)
        .filter_map(|(at, _)| output[at + marker.len()..].split_whitespace().next())
        .filter_map(|number| number.parse::<u64>().ok())
        .sum()
}

/// bestand's own per-source summary lines, indented.
pub(crate) fn print_source_lines(output: &str) {
    for line in output.lines().filter(|line| {
        line.contains(" in ") && line.contains(", run ")
            || line.starts_with("  fetched")
            || line.starts_with("  persons fetched")
            || line.starts_with("  tickets fetched")
    }) {
        println!("    {line}");
    }
}

pub(crate) fn row(figure: &str, measured: String, target: &str, met: bool) {
    println!(
        "| {figure} | {measured} | {target} | {} |",
        if met { "yes" } else { "NO" }
    );
}

fn print_measured(what: &str, measured: &Measured, devices: u64) {
    println!(
        "{what:<18} {:>7.2} s  {:>8.0} records/s  peak {:>5.0} MB",
        measured.seconds,
        devices as f64 / measured.seconds,
        measured.peak_rss_mb
    );
}

fn expect(output: &str, needle: &str) -> anyhow::Result<()> {
    if !output.contains(needle) {
        bail!("expected '{needle}' in bestand's output:\n{output}");
    }
    Ok(())
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    bail!("the mock source did not open port {port} within 60 s")
}

/// Runs `command` to its end and reports its wall time and peak resident memory. Its standard
/// output goes to `stdout` if given (then `output` holds only its standard error).
pub(crate) fn measure(mut command: Command, stdout: Option<File>) -> anyhow::Result<Measured> {
    let began = Instant::now();
    let child = command
        .stdout(stdout.map_or_else(Stdio::piped, Stdio::from))
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start bestand")?;
    let (status, peak_kb, output) = wait_with_rusage(child)?;
    let seconds = began.elapsed().as_secs_f64();
    if !status {
        bail!("bestand failed:\n{output}");
    }
    Ok(Measured {
        seconds,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        output,
    })
}

/// Waits for `child` with `wait4`, which reports that one child's peak RSS (`ru_maxrss`, KiB).
fn wait_with_rusage(mut child: Child) -> anyhow::Result<(bool, i64, String)> {
    use std::io::Read;
    // Both pipes are read at once: a child that fills one (a ticket run writes a progress line
    // per page to stderr) while the other is being read to its end would wait forever.
    let stdout = child.stdout.take();
    let mut stderr = child.stderr.take().context("no stderr")?;
    let errors = std::thread::spawn(move || {
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors);
        errors
    });
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut text);
        }
        text + &errors.join().unwrap_or_default()
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; `pid` is our own unwaited child,
    // and `child` is never waited on through std afterwards.
    #[allow(unsafe_code)]
    let (waited, rusage) = unsafe {
        let mut rusage: libc::rusage = std::mem::zeroed();
        let waited = libc::wait4(pid, &mut status, 0, &mut rusage);
        (waited, rusage)
    };
    if waited != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    std::mem::forget(child);
    let output = reader.join().unwrap_or_default();
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((exited_ok, rusage.ru_maxrss, output))
}
