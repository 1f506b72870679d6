//! `bestand demo`: the first five minutes with bestand. Starts a mock Jamf Pro for the fictional
//! authority Musterstadt, syncs it into a local database twice (the second time after a day of
//! changes: devices vanish, re-enroll, update), and shows what a new user wants to see.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bestand_connectors::spawn_fetch;
use bestand_core::store::devices::{self, DeviceFilter};
use bestand_core::sync::{self, NoProgress, SyncOptions};
use bestand_core::Clock;
use bestand_mocks::{Fleet, JamfProMock, MockConfig};
use chrono::Months;
use clap::Args;

use crate::app::{self, Database, Migrations, SystemClock};
use crate::config::{Config, ConfigOrigin};
use crate::output;
use crate::sources::build_connector;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its configuration and database.
    #[arg(long, default_value = ".bestand-demo")]
    pub data_dir: PathBuf,
    /// Devices in the mock Jamf Pro (default: Musterstadt's fleet of about 5,000).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Seed of the generated fleet.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

const SECRET_FILE: &str = "jamf-client-secret";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let fleet = match args.devices {
        Some(count) => Fleet::new(args.seed, count),
        None => Fleet::musterstadt(args.seed),
    };
    println!(
        "Starting a mock Jamf Pro for Stadt Musterstadt ({} devices) ...",
        fleet.len()
    );
    let mock = JamfProMock::start(MockConfig::new(fleet)).await?;
    let config_path = write_demo_config(&data_dir, &mock)?;
    let config = Config::from_file(&config_path, ConfigOrigin::Flag)?;

    println!(
        "Starting bestand's own PostgreSQL in {} ...",
        data_dir.join("postgres").display()
    );
    let database = Database::open(&config, Migrations::Apply).await?;
    // Every demo starts from an empty inventory, so it always tells the same story.
    sqlx::query("drop schema public cascade")
        .execute(&database.pool)
        .await?;
    sqlx::query("create schema public")
        .execute(&database.pool)
        .await?;
    bestand_core::store::migrate(&database.pool).await?;
    let refs = app::apply_config_directory(&database.pool, &config).await?;
    let source = config
        .sources
        .first()
        .ok_or_else(|| anyhow::anyhow!("the demo config has no source"))?;
    let source_ref = refs
        .first()
        .ok_or_else(|| anyhow::anyhow!("the demo source was not registered"))?;
    let options = SyncOptions {
        dry_run: false,
        guard: app::guard_for(&config, source),
        field_priority: Default::default(),
    };

    for (step, title) in [
        (0, "First sync"),
        (1, "A day later: devices vanished, re-enrolled, updated"),
    ] {
        mock.faults().set_epoch(step);
        let started = std::time::Instant::now();
        let pages = spawn_fetch(build_connector(source)?);
        let report = sync::run_sync(
            &database.pool,
            &SystemClock,
            source_ref,
            pages,
            &options,
            &NoProgress,
        )
        .await?;
        let c = &report.counts;
        println!(
            "\n{title}: {} in {:.1} s — fetched {}, created {}, updated {}, unchanged {}, marked missing {}",
            report.status,
            started.elapsed().as_secs_f64(),
            c.fetched,
            c.created,
            c.updated,
            c.unchanged,
            c.marked_missing
        );
        if let Some(error) = report.error {
            anyhow::bail!("demo sync failed: {error}");
        }
    }

    print_overview(&database, &config_path).await?;
    mock.shutdown().await?;
    database.close().await?;
    Ok(())
}

fn write_demo_config(data_dir: &Path, mock: &JamfProMock) -> anyhow::Result<PathBuf> {
    let secret_path = data_dir.join(SECRET_FILE);
    let mut secret = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&secret_path)?;
    secret.write_all(mock.config().client_secret.as_bytes())?;
    let config = format!(
        "# Written by `bestand demo`; the mock Jamf Pro it names runs only while the demo runs.\n\n\
         [database]\ndata_dir = {data_dir:?}\n\n{authority}\n\
         [[source]]\nname = \"jamf\"\nkind = \"jamf_pro\"\nauthority = \"musterstadt\"\n\
         base_url = \"{base_url}\"\nclient_id = \"{client_id}\"\nclient_secret_file = {secret_path:?}\n",
        data_dir = data_dir.display().to_string(),
        authority = bestand_mocks::authority_toml(),
        base_url = mock.base_url(),
        client_id = mock.config().client_id,
        secret_path = secret_path.display().to_string(),
    );
    let config_path = data_dir.join("config.toml");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

async fn print_overview(database: &Database, config_path: &Path) -> anyhow::Result<()> {
    let counts = devices::count_by_school_and_category(&database.pool, Some("musterstadt")).await?;
    let mut categories: Vec<String> = counts.iter().map(|c| c.category.clone()).collect();
    categories.sort();
    categories.dedup();
    let mut per_school: BTreeMap<String, (String, BTreeMap<String, i64>)> = BTreeMap::new();
    for count in &counts {
        let number = count.school_number.clone().unwrap_or_else(|| "-".into());
        let name = count
            .school_name
            .clone()
            .unwrap_or_else(|| "(no school)".into());
        per_school
            .entry(number)
            .or_insert_with(|| (name, BTreeMap::new()))
            .1
            .insert(count.category.clone(), count.devices);
    }
    println!("\nDevices by school and category");
    let mut headers = vec!["school no.", "school"];
    headers.extend(categories.iter().map(String::as_str));
    headers.push("total");
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (number, (name, by_category)) in &per_school {
        let mut row = vec![number.clone(), name.clone()];
        for category in &categories {
            let n = by_category.get(category).copied().unwrap_or(0);
            *totals.entry(category.clone()).or_default() += n;
            row.push(n.to_string());
        }
        row.push(by_category.values().sum::<i64>().to_string());
        rows.push(row);
    }
    let mut total_row = vec![String::new(), "all schools".to_string()];
    total_row.extend(
        categories
            .iter()
            .map(|c| totals.get(c).copied().unwrap_or(0).to_string()),
    );
    total_row.push(totals.values().sum::<i64>().to_string());
    rows.push(total_row);
    println!("{}", output::table(headers, rows));

    let today = SystemClock.now().date_naive();
    let in_a_year = today.checked_add_months(Months::new(12)).unwrap_or(today);
    let ending = devices::list_devices(
        &database.pool,
        &DeviceFilter {
            warranty_from: Some(today),
            warranty_before: Some(in_a_year),
            ..Default::default()
        },
    )
    .await?;
    println!(
        "\nWarranties ending in the next 12 months: {} device(s); the first ten:",
        ending.len()
    );
    let mut soonest = ending.clone();
    soonest.sort_by_key(|d| d.warranty_end);
    println!(
        "{}",
        output::table(
            vec!["warranty end", "asset tag", "serial", "model", "school"],
            soonest.iter().take(10).map(|d| vec![
                output::opt(&d.warranty_end),
                output::opt(&d.asset_tag),
                output::opt(&d.serial_number),
                output::opt(&d.model),
                output::opt(&d.school_name)
            ])
        )
    );

    let missing = devices::list_devices(
        &database.pool,
        &DeviceFilter {
            missing: true,
            ..Default::default()
        },
    )
    .await?;
    println!(
        "\nDevices missing from a source (kept, never deleted): {}",
        missing.len()
    );
    println!(
        "{}",
        output::table(
            vec![
                "asset tag",
                "serial",
                "model",
                "school",
                "missing from",
                "last seen"
            ],
            missing.iter().take(10).map(|d| vec![
                output::opt(&d.asset_tag),
                output::opt(&d.serial_number),
                output::opt(&d.model),
                output::opt(&d.school_name),
                output::opt(&d.missing_from),
                output::time(&d.last_seen_at)
            ])
        )
    );

    let example = soonest
        .first()
        .and_then(|d| d.asset_tag.clone())
        .unwrap_or_else(|| "INV-2023-00001".into());
    let config = config_path.display();
    println!("\nExplore further (the database stays in the demo folder):");
    for command in [
        format!("bestand --config {config} devices list --school 100001"),
        format!("bestand --config {config} devices list --category laptop --warranty-before {in_a_year}"),
        format!("bestand --config {config} devices list --missing --format csv"),
        format!("bestand --config {config} devices list --search 'iPad Air' --format json"),
        format!("bestand --config {config} devices show {example}"),
        format!("bestand --config {config} sync runs"),
        format!("bestand --config {config} sync status"),
        format!("bestand --config {config} review list"),
    ] {
        println!("  {command}");
    }
    println!("(`cargo run --release --bin bestand -- ...` runs bestand from this checkout; `bestand demo` again starts over.)");
    Ok(())
}
