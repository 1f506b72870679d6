//! `bestand demo`: the first five minutes with bestand. Starts mock MDMs for the fictional
//! authority Musterstadt (Jamf Pro, Intune, Relution) and a mock UCS@school (Kelvin) with its
//! pupils and teachers, syncs them into a local database (Jamf Pro twice, the second time after a
//! day of changes: devices vanish, re-enroll, update), and shows what a new user wants to see,
//! including who has which device; then Musterstadt's purchases and funding programmes, and the
//! five-year replacement forecast they give (`procurement`).

mod procurement;
mod tickets;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bestand_core::loans::{self, IssueRequest};
use bestand_core::store::devices::{self, DeviceFilter};
use bestand_core::store::{overview, persons};
use bestand_core::sync::NoProgress;
use bestand_core::{Clock, FixedClock};
use bestand_mocks::directory::Directory;
use bestand_mocks::intune::{IntuneMock, IntuneMockConfig};
use bestand_mocks::kelvin::{KelvinMock, KelvinMockConfig};
use bestand_mocks::relution::{RelutionMock, RelutionMockConfig};
use bestand_mocks::zammad::{ZammadMock, ZammadMockConfig};
use bestand_mocks::{Fleet, JamfProMock, MockConfig};
use chrono::Months;
use clap::Args;

use crate::output;
use bestand_app::config::{Config, ConfigOrigin};
use bestand_app::database::{self as app, Database, Migrations};
use bestand_app::sources::sync_source;
use bestand_app::SystemClock;

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

/// The three MDMs of Musterstadt: Jamf Pro for iPads and Macs, Intune for Windows laptops, and
/// Relution for a part of the Jamf fleet (a pilot school moving over), so some devices are in
/// two systems at once.
struct Mocks {
    jamf: JamfProMock,
    intune: IntuneMock,
    relution: RelutionMock,
    kelvin: KelvinMock,
    zammad: ZammadMock,
}

/// Tickets the demo's service desk holds: about twelve a school day over the sixteen months
/// before today, a third of them naming a device of the Jamf Pro fleet.
const DEMO_TICKETS: u32 = 6_000;
const DEMO_TICKET_DAYS: i64 = 480;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let fleet = match args.devices {
        Some(count) => Fleet::new(args.seed, count),
        None => Fleet::musterstadt(args.seed),
    };
    let laptops = (fleet.len() / 5).max(10);
    let shared = (fleet.len() / 12).max(5);
    println!(
        "Starting mock MDMs for Stadt Musterstadt: Jamf Pro ({} devices), Intune ({laptops} Windows laptops), \
         Relution ({shared} devices also in Jamf Pro) ...",
        fleet.len()
    );
    let directory = match args.devices {
        Some(_) => Directory::with_fleet(&fleet, None),
        None => Directory::musterstadt(args.seed),
    };
    println!(
        "Starting a mock UCS@school (Kelvin API) with {} pupils and {} teachers ...",
        directory.count(bestand_mocks::directory::Role::Student),
        directory.count(bestand_mocks::directory::Role::Teacher)
    );
    let kelvin = KelvinMock::start(KelvinMockConfig::new(directory)).await?;
    println!(
        "Starting a mock Zammad (the service desk) with {DEMO_TICKETS} tickets of the last \
         {DEMO_TICKET_DAYS} days ..."
    );
    let zammad = ZammadMock::start(demo_zammad(&fleet, args.seed)).await?;
    let mocks = Mocks {
        kelvin,
        zammad,
        jamf: JamfProMock::start(MockConfig::new(fleet)).await?,
        intune: IntuneMock::start(IntuneMockConfig::new(Fleet::new(args.seed + 1, laptops)))
            .await?,
        // Device i depends only on the seed and i: the first devices of the Jamf fleet.
        relution: RelutionMock::start(RelutionMockConfig::new(Fleet::new(args.seed, shared)))
            .await?,
    };
    let config_path = write_demo_config(&data_dir, &mocks)?;
    let config = Config::from_file(&config_path, ConfigOrigin::Flag)?;

    println!(
        "Starting bestand's own PostgreSQL in {} ...",
        data_dir.join("postgres").display()
    );
    let database = Database::open(&config, Migrations::Apply).await?;
    // Every demo starts from an empty inventory, so it always tells the same story.
    bestand_core::store::recreate_schema(&database.pool, &crate::commands::scope()).await?;
    let refs = app::apply_config_directory(&database.pool, &config).await?;

    let steps = [
        (
            0,
            "ucs",
            "First read of UCS@school (pupils, teachers, classes)",
        ),
        (0, "jamf", "First sync of Jamf Pro"),
        (0, "intune", "First sync of Intune"),
        (
            0,
            "relution",
            "First sync of Relution (its devices are already known from Jamf Pro)",
        ),
        (
            1,
            "jamf",
            "Jamf Pro a day later: devices vanished, re-enrolled, updated",
        ),
        (
            1,
            "zammad",
            "First read of Zammad (tickets linked to their devices)",
        ),
    ];
    for (epoch, name, title) in steps {
        mocks.jamf.faults().set_epoch(epoch);
        let source = config
            .source(name)
            .ok_or_else(|| anyhow::anyhow!("the demo config has no source {name}"))?;
        let source_ref = refs
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow::anyhow!("the demo source {name} was not registered"))?;
        let reports = sync_source(
            &database.pool,
            &crate::commands::scope(),
            &config,
            source,
            source_ref,
            false,
            &NoProgress,
        )
        .await?;
        for (report, seconds) in reports {
            let c = &report.counts;
            if report.kind == "tickets" {
                println!(
                    "\n{title}: {} in {seconds:.1} s — tickets fetched {}, created {}",
                    report.status, c.fetched, c.created
                );
            } else if report.kind == "directory" {
                println!(
                    "\n{title}: {} in {seconds:.1} s — persons fetched {}, created {}, updated {}, \
                     unchanged {}, left {}",
                    report.status, c.fetched, c.created, c.updated, c.unchanged, c.marked_missing
                );
            } else {
                println!(
                    "\n{title}: {} in {seconds:.1} s — fetched {}, created {}, updated {}, unchanged {}, \
                     marked missing {}, moved to another MDM {}",
                    report.status,
                    c.fetched,
                    c.created,
                    c.updated,
                    c.unchanged,
                    c.marked_missing,
                    c.moved
                );
            }
            if let Some(error) = report.error {
                anyhow::bail!("demo sync failed: {error}");
            }
        }
    }

    lend_some_devices(&database, &config, &mocks).await?;
    let mut explore = print_overview(&database, &config_path).await?;
    let shown = procurement::run(&database, &data_dir).await?;
    let period = tickets::run(&database, &config, &data_dir).await?;
    let config = config_path.display();
    explore.extend([
        format!(
            "bestand --config {config} reports replacement --years {} --increase {} --xlsx forecast.xlsx --chart forecast.svg",
            shown.years,
            procurement::INCREASE_PERCENT
        ),
        format!("bestand --config {config} reports funding --programme DP-2019"),
        format!("bestand --config {config} funding list"),
        format!(
            "bestand --config {config} reports tickets --period {period} --xlsx tickets.xlsx --charts charts"
        ),
        format!("bestand --config {config} tickets list --school 100001 --state open"),
        format!(
            "bestand --config {config} reports replacement --years {} --early-by-tickets 0,5",
            shown.years
        ),
    ]);
    println!("\nExplore further (the database stays in the demo folder):");
    for command in explore {
        println!("  {command}");
    }
    println!("(`cargo run --release --bin bestand -- ...` runs bestand from this checkout; `bestand demo` again starts over.)");
    mocks.jamf.shutdown().await?;
    database.close().await?;
    Ok(())
}

/// The school year so far at Musterstadt: pupils got the iPads their MDM already names them
/// for, a few of them long overdue, and two pupils who are leaving got a spare device. Then
/// the directory is read again after those two left, so `loans left-with-device` has a story.
async fn lend_some_devices(
    database: &Database,
    config: &Config,
    mocks: &Mocks,
) -> anyhow::Result<()> {
    let policy = config.loan_policy();
    let now = SystemClock.now();
    let handed_out = FixedClock::new(now - chrono::Duration::days(90));
    let overdue_on = bestand_core::clock::school_date(now - chrono::Duration::days(14));
    let accessories: Vec<String> = policy.accessories.iter().take(2).cloned().collect();
    // One pupil per school and class whose device the MDM already assigns to them.
    let mut classes = std::collections::BTreeSet::new();
    let pairs: Vec<(String, String)> =
        loans::assigned_without_loan(&database.pool, &crate::commands::scope())
            .await?
            .into_iter()
            .filter(|found| classes.insert((found.school_number.clone(), found.class_name.clone())))
            .take(12)
            .map(|found| (found.asset_tag, found.username))
            .collect();
    let leaving: Vec<String> = {
        let now_directory = mocks.kelvin.directory();
        let next_year = now_directory.at_epoch(1);
        now_directory
            .persons()
            .iter()
            .filter(|person| next_year.person(&person.username).is_none())
            .map(|person| person.username.clone())
            .collect()
    };
    // Spare devices at the leavers' schools: lendable, assigned to nobody.
    let mut spares: Vec<(String, String)> = Vec::new();
    for username in &leaving {
        if spares.len() == 2 {
            break;
        }
        let spare =
            loans::spare_device_for(&database.pool, &crate::commands::scope(), username).await?;
        if let Some(device) = spare {
            spares.push((device, username.clone()));
        }
    }
    let mut issued = 0;
    for (index, (device, username)) in pairs.iter().chain(spares.iter()).enumerate() {
        let request = IssueRequest {
            device: device.clone(),
            borrower: username.clone(),
            due_on: (index % 4 == 1).then_some(overdue_on),
            accessories: accessories.clone(),
            condition: Some("neuwertig".into()),
            agreement_signed_on: Some(bestand_core::clock::school_date(handed_out.now())),
            school_override_reason: None,
        };
        loans::issue_loan(
            &database.pool,
            &crate::commands::scope(),
            &handed_out,
            &policy,
            &request,
            &bestand_core::Actor::CliUser("Sekretariat".into()),
        )
        .await
        .map_err(|error| anyhow::anyhow!("demo loan of {device} to {username}: {error}"))?;
        issued += 1;
    }
    mocks.kelvin.faults().set_epoch(1);
    let ucs = config
        .source("ucs")
        .ok_or_else(|| anyhow::anyhow!("the demo config has no source ucs"))?;
    let refs = app::apply_config_directory(&database.pool, config).await?;
    let ucs_ref = refs
        .iter()
        .find(|r| r.name == "ucs")
        .ok_or_else(|| anyhow::anyhow!("the demo source ucs was not registered"))?;
    let reports = sync_source(
        &database.pool,
        &crate::commands::scope(),
        config,
        ucs,
        ucs_ref,
        false,
        &NoProgress,
    )
    .await?;
    let left: i32 = reports
        .iter()
        .map(|(report, _)| report.counts.marked_missing)
        .sum();
    let today = bestand_core::clock::school_date(now);
    let open = loans::list_loans(
        &database.pool,
        &crate::commands::scope(),
        &loans::LoanFilter {
            state: Some(bestand_core::model::LoanState::Active),
            ..Default::default()
        },
        today,
    )
    .await?;
    let overdue = open.iter().filter(|loan| loan.due_on < today).count();
    let gone =
        loans::left_with_device(&database.pool, &crate::commands::scope(), None, today).await?;
    println!(
        "\nLoans (Leihgeräte): {issued} handed out three months ago, {} open, {overdue} overdue; \
         UCS@school a school term later: {left} pupils left, {} of them still with a loan device",
        open.len(),
        gone.len()
    );
    Ok(())
}

/// Writes a secret file only its owner can read, and returns its path.
fn secret_file(data_dir: &Path, name: &str, secret: &str) -> anyhow::Result<String> {
    let path = data_dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(secret.as_bytes())?;
    Ok(path.display().to_string())
}

fn write_demo_config(data_dir: &Path, mocks: &Mocks) -> anyhow::Result<PathBuf> {
    let jamf_secret = secret_file(
        data_dir,
        "jamf-client-secret",
        &mocks.jamf.config().client_secret,
    )?;
    let intune_secret = secret_file(
        data_dir,
        "intune-client-secret",
        &mocks.intune.config().client_secret,
    )?;
    let relution_token = secret_file(data_dir, "relution-token", &mocks.relution.config().token)?;
    let kelvin_password =
        secret_file(data_dir, "kelvin-password", &mocks.kelvin.config().password)?;
    let zammad_token = secret_file(data_dir, "zammad-token", &mocks.zammad.config().token)?;
    let organization = mocks
        .relution
        .config()
        .organization
        .clone()
        .unwrap_or_default();
    let config = format!(
        "# Written by `bestand demo`; the mock MDMs it names run only while the demo runs.\n\n\
         [database]\ndata_dir = {data_dir:?}\n\n\
         # Relution reports the pilot school's devices too; Jamf Pro knows their hardware best.\n\
         [sync.field_priority]\nmodel = [\"jamf\"]\nmodel_identifier = [\"jamf\"]\n\
         manufacturer = [\"jamf\"]\nos_name = [\"jamf\"]\nos_version = [\"jamf\"]\ncategory = [\"jamf\"]\n\n\
         {authority}\n\
         [[source]]\nname = \"ucs\"\nkind = \"kelvin\"\nauthority = \"musterstadt\"\nschedule = \"10 5 * * *\"\n\
         base_url = \"{kelvin_url}\"\nusername = \"{kelvin_user}\"\npassword_file = {kelvin_password:?}\n\n\
         [[source]]\nname = \"jamf\"\nkind = \"jamf_pro\"\nauthority = \"musterstadt\"\nschedule = \"15 * * * *\"\n\
         base_url = \"{jamf_url}\"\nclient_id = \"{jamf_client}\"\nclient_secret_file = {jamf_secret:?}\n\n\
         [[source]]\nname = \"intune\"\nkind = \"intune\"\nauthority = \"musterstadt\"\nschedule = \"20 * * * *\"\n\
         tenant_id = \"{tenant}\"\nclient_id = \"{intune_client}\"\nclient_secret_file = {intune_secret:?}\n\
         token_url = \"{token_url}\"\ngraph_url = \"{graph_url}\"\n\n\
         [[source]]\nname = \"relution\"\nkind = \"relution\"\nauthority = \"musterstadt\"\nschedule = \"25 * * * *\"\n\
         base_url = \"{relution_url}\"\naccess_token_file = {relution_token:?}\norganization = \"{organization}\"\n\n\
         # The service desk: groups map to the support concept's IT services and to the providers\n\
         # tickets are forwarded to; devices are named in the attribute `inventarnummer` or the title.\n\
         [[source]]\nname = \"zammad\"\nkind = \"zammad\"\nauthority = \"musterstadt\"\nschedule = \"0 */15 6-18 * * Mon-Fri\"\n\
         url = \"{zammad_url}\"\ntoken_file = {zammad_token:?}\nasset_fields = [\"inventarnummer\"]\n\
         forwarding_groups = [\"Dienstleister::Muster IT GmbH\", \"Dienstleister::Schul-IT Nord\"]\n\
         topics = {{ \"Service Desk::Netzwerk\" = \"network\", \"Schulserver\" = \"school_server\", \"Endgeräte\" = \"end_devices\" }}\n\
         providers = {{ \"Dienstleister::Muster IT GmbH\" = \"Muster IT GmbH\", \"Dienstleister::Schul-IT Nord\" = \"Schul-IT Nord\" }}\n\
         title_patterns = ['\\(SN (?P<serial>[A-Z0-9]{{8,}})\\)', 'Inventar-Nr\\. (?P<tag>INV-\\d{{4}}-\\d{{5}})']\n",
        data_dir = data_dir.display().to_string(),
        authority = bestand_mocks::authority_toml(),
        jamf_url = mocks.jamf.base_url(),
        jamf_client = mocks.jamf.config().client_id,
        tenant = mocks.intune.config().tenant_id,
        intune_client = mocks.intune.config().client_id,
        token_url = mocks.intune.token_url(),
        graph_url = mocks.intune.base_url(),
        relution_url = mocks.relution.base_url(),
        kelvin_url = mocks.kelvin.base_url(),
        kelvin_user = mocks.kelvin.config().username,
        zammad_url = mocks.zammad.base_url(),
    );
    let config_path = data_dir.join("config.toml");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

/// Prints what the syncs and loans left in the inventory; gives the commands to explore it.
async fn print_overview(database: &Database, config_path: &Path) -> anyhow::Result<Vec<String>> {
    let counts = devices::count_by_school_and_category(
        &database.pool,
        &crate::commands::scope(),
        Some("musterstadt"),
    )
    .await?;
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

    let today = bestand_core::clock::school_date(SystemClock.now());
    let in_a_year = today.checked_add_months(Months::new(12)).unwrap_or(today);
    let ending = devices::list_devices(
        &database.pool,
        &crate::commands::scope(),
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
        &crate::commands::scope(),
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

    let figures = overview::inventory_figures(&database.pool, &crate::commands::scope()).await?;
    let in_two = figures.devices_in_several_sources;
    let conflicts = devices::list_devices(
        &database.pool,
        &crate::commands::scope(),
        &DeviceFilter {
            conflicts: true,
            ..Default::default()
        },
    )
    .await?;
    println!(
        "\nDevices reported by two MDMs: {in_two} (one device each, linked to both); \
         {} of them with disagreeing values (Jamf Pro wins the hardware fields by [sync.field_priority])",
        conflicts.len()
    );

    let schools = persons::list_schools(
        &database.pool,
        &crate::commands::scope(),
        Some("musterstadt"),
    )
    .await?;
    let classes: i64 = schools.iter().map(|school| school.classes).sum();
    // Distinct persons: a teacher at two schools counts once.
    let (pupils, teachers) = (figures.pupils, figures.teachers);
    let (matched, no_match, ambiguous) = (
        figures.assignments_matched,
        figures.assignments_no_match,
        figures.assignments_ambiguous,
    );
    println!(
        "\nPeople from UCS@school: {pupils} pupils and {teachers} teachers in {classes} classes \
         at {} schools",
        schools.len()
    );
    println!(
        "Devices with a user in an MDM: {} — assigned to a person: {matched}, user unknown to the \
         directory: {no_match}, several candidates: {ambiguous} (listed by `persons hints`, never guessed)",
        matched + no_match + ambiguous
    );
    let busiest = persons::list_persons(
        &database.pool,
        &crate::commands::scope(),
        &persons::PersonFilter {
            role: Some(bestand_core::model::PersonRole::Student),
            limit: Some(2000),
            ..Default::default()
        },
    )
    .await?
    .into_iter()
    .find(|person| person.devices > 0);
    let person_example = busiest
        .as_ref()
        .and_then(|person| person.username.clone())
        .unwrap_or_else(|| "lea.schulz".into());

    let example = soonest
        .first()
        .and_then(|d| d.asset_tag.clone())
        .unwrap_or_else(|| "INV-2023-00001".into());
    let config = config_path.display();
    Ok(vec![
        format!("bestand --config {config} devices list --school 100001"),
        format!("bestand --config {config} devices list --category laptop --warranty-before {in_a_year}"),
        format!("bestand --config {config} devices list --missing --format csv"),
        format!("bestand --config {config} devices list --search 'iPad Air' --format json"),
        format!("bestand --config {config} devices show {example}"),
        format!("bestand --config {config} schools list"),
        format!("bestand --config {config} persons list --school 100001 --class 3a"),
        format!("bestand --config {config} persons show {person_example}"),
        format!("bestand --config {config} devices list --assigned-to {person_example}"),
        format!("bestand --config {config} persons hints"),
        format!("bestand --config {config} loans list"),
        format!("bestand --config {config} loans overdue"),
        format!("bestand --config {config} loans left-with-device"),
        format!("bestand --config {config} sync runs"),
        format!("bestand --config {config} sync status"),
        format!("bestand --config {config} devices list --conflicts"),
        format!("bestand --config {config} review list"),
    ])
}

/// The mock service desk: its tickets name devices of `fleet` and end a week before today, so
/// the last complete quarter has tickets whatever day the demo runs.
fn demo_zammad(fleet: &Fleet, seed: u64) -> ZammadMockConfig {
    let now = SystemClock.now();
    let minutes = (DEMO_TICKET_DAYS - 7) * 24 * 60 / i64::from(DEMO_TICKETS);
    ZammadMockConfig {
        fleet: fleet.clone(),
        first_created: now - chrono::Duration::days(DEMO_TICKET_DAYS),
        minutes_between: u32::try_from(minutes).unwrap_or(1),
        ..ZammadMockConfig::new(seed, DEMO_TICKETS as usize)
    }
}
