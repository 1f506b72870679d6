//! `cargo xtask bench`: the sync benchmark. It builds release binaries, starts bestand's own
//! PostgreSQL with production settings and the mock Jamf Pro as a separate process, then times
//! three `bestand` processes: fetch only, a full sync into an empty inventory, and an unchanged
//! re-sync. Each process's wall time and peak memory (its own, not the mock's or the server's)
//! are measured from outside, so the figures are what an operator would see.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bestand_cli::pgcluster::LocalCluster;

/// What one measured `bestand` process did.
struct Measured {
    seconds: f64,
    peak_rss_mb: f64,
    output: String,
}

pub fn bench(workspace: &Path, devices: u64) -> anyhow::Result<()> {
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
    crate::step("starting PostgreSQL (production settings) and the mock Jamf Pro");
    let cluster = LocalCluster::open(&cluster_dir, None)?;
    let started = runtime.block_on(cluster.start())?;
    let url = started.connection_url();

    let port = free_port()?;
    let mut mock = Command::new(release.join("bestand-mock"))
        .args([
            "jamf-pro",
            "--port",
            &port.to_string(),
            "--devices",
            &devices.to_string(),
            "--seed",
            "42",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start bestand-mock")?;
    let outcome = (|| {
        wait_for_port(port)?;
        let secret_path = bench_dir.join("jamf-secret");
        std::fs::write(&secret_path, "bestand-mock-secret")?;
        let schools = Command::new(release.join("bestand-mock"))
            .arg("schools-toml")
            .output()?;
        let config_path = bench_dir.join("config.toml");
        std::fs::write(
            &config_path,
            format!(
                "[database]\nurl = {url:?}\n\n{}\n[[source]]\nname = \"jamf\"\nkind = \"jamf_pro\"\n\
                 authority = \"musterstadt\"\nbase_url = \"http://127.0.0.1:{port}\"\n\
                 client_id = \"bestand-mock-client\"\nclient_secret_file = {:?}\npage_size = 2000\n",
                String::from_utf8_lossy(&schools.stdout),
                secret_path.display().to_string()
            ),
        )?;
        let bestand = |args: &[&str]| -> anyhow::Result<Measured> {
            let mut command = Command::new(release.join("bestand"));
            command.arg("--config").arg(&config_path).args(args);
            measure(command)
        };
        bestand(&["db", "migrate"])?;
        // One unmeasured pass lets the mock render and cache its pages, as a real server has its
        // data at hand; it also warms the file cache.
        bestand(&["sync", "--fetch-only"])?;

        crate::step(&format!("measuring with {devices} devices"));
        let fetch = bestand(&["sync", "--fetch-only"])?;
        print_measured("fetch only", &fetch, devices);
        let full = bestand(&["sync"])?;
        print_measured("full sync", &full, devices);
        expect(&full.output, &format!("created {devices}"))?;
        let unchanged = bestand(&["sync"])?;
        print_measured("unchanged re-sync", &unchanged, devices);
        expect(&unchanged.output, &format!("unchanged {devices}"))?;

        let rate = |m: &Measured| devices as f64 / m.seconds;
        let peak = [&fetch, &full, &unchanged]
            .iter()
            .map(|m| m.peak_rss_mb)
            .fold(0.0, f64::max);
        crate::step("against the targets");
        println!("| figure | measured | target | met |\n|---|---|---|---|");
        row(
            "full sync",
            format!("{:.0} devices/s", rate(&full)),
            ">= 10,000 devices/s",
            rate(&full) >= 10_000.0,
        );
        row(
            "unchanged re-sync",
            format!("{:.0} devices/s", rate(&unchanged)),
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
        row(
            "peak memory of bestand",
            format!("{peak:.0} MB"),
            "< 300 MB",
            peak < 300.0,
        );
        Ok(())
    })();
    let _ = mock.kill();
    let _ = mock.wait();
    runtime.block_on(started.stop())?;
    outcome
}

fn row(figure: &str, measured: String, target: &str, met: bool) {
    println!(
        "| {figure} | {measured} | {target} | {} |",
        if met { "yes" } else { "NO" }
    );
}

fn print_measured(what: &str, measured: &Measured, devices: u64) {
    println!(
        "{what:<18} {:>7.2} s  {:>8.0} devices/s  peak {:>5.0} MB",
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

fn free_port() -> anyhow::Result<u16> {
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
    bail!("the mock Jamf Pro did not open port {port} within 60 s")
}

/// Runs `command` to its end and reports its wall time and peak resident memory.
fn measure(mut command: Command) -> anyhow::Result<Measured> {
    let began = Instant::now();
    let child = command
        .stdout(Stdio::piped())
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
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors);
        text + &errors
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
