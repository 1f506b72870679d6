//! The purchase-import benchmark that `cargo xtask bench --purchases` runs in release mode:
//! it reads a purchase file and imports it into the database at the given URL with the same
//! two calls `bestand purchases import` makes (`sheet::read`, then
//! `procurement::purchases::import_purchases`), timing each, and prints rows/s and its own peak
//! memory. It lives in `bestand-app` because the core may not read a clock; the xtask prepares
//! the database and the file (docs/performance.md, "Purchase import").

use std::collections::BTreeMap;
use std::time::Instant;

use bestand_core::access::{Actor, Scope};
use bestand_core::procurement::purchases::{import_purchases, PurchaseFile, PurchaseOptions};
use bestand_core::sheet;
use chrono::Utc;
use sqlx::postgres::PgPoolOptions;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, file, expect_matched, expect_created] = args.as_slice() else {
        eprintln!("usage: purchase_import DATABASE_URL FILE MATCHED CREATED");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Err(message) = runtime.block_on(run(url, file, expect_matched, expect_created)) {
        eprintln!("purchase_import: {message}");
        std::process::exit(1);
    }
}

async fn run(
    url: &str,
    file: &str,
    expect_matched: &str,
    expect_created: &str,
) -> Result<(), String> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let began = Instant::now();
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let table = sheet::read(&bytes, None, None).map_err(|e| format!("{file}: {e}"))?;
    let read = began.elapsed().as_secs_f64();
    let rows = table.rows.len();
    let mapping = BTreeMap::new();
    let imported = Instant::now();
    let report = import_purchases(
        &pool,
        &Scope::All,
        &Actor::CliUser("bench".into()),
        None,
        PurchaseFile {
            name: "bench.csv",
            sheet: &table,
            mapping: &mapping,
        },
        PurchaseOptions::default(),
        Utc::now(),
    )
    .await
    .map_err(|e| format!("import: {e}"))?;
    let import = imported.elapsed().as_secs_f64();
    let total = began.elapsed().as_secs_f64();
    pool.close().await;
    if let Some(error) = report.errors.first() {
        return Err(format!(
            "{} bad rows, the first: {error}",
            report.errors.len()
        ));
    }
    // The benchmark checks what it timed: a fast import that did the wrong thing is no figure.
    let counts = (report.matched.to_string(), report.created.to_string());
    if !report.applied || counts != (expect_matched.to_string(), expect_created.to_string()) {
        return Err(format!(
            "expected {expect_matched} matched and {expect_created} created, the import \
             reports {} matched, {} created, {} unchanged, {} ambiguous (applied: {})",
            report.matched, report.created, report.unchanged, report.ambiguous, report.applied
        ));
    }
    println!(
        "{rows} rows: read {read:.2} s, checked and written {import:.2} s, total {total:.2} s \
         ({:.0} rows/s); {} matched, {} created; peak memory {}",
        rows as f64 / total,
        report.matched,
        report.created,
        peak_memory()
    );
    Ok(())
}

/// This process's peak resident memory, as the kernel counts it (`VmHWM`).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(|| "unknown".into(), |kb| format!("{} MB", kb / 1024))
}
