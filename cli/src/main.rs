//! The `bestand` command: parses arguments, runs one command, and turns errors into one clear
//! line and a nonzero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use bestand_cli::commands::{
    db, devices, inventory, loans, persons, privacy, procurement, repairs, reports, review, serve,
    sync, tickets,
};
#[cfg(feature = "demo")]
use bestand_cli::demo;
use bestand_cli::output::Format;
use clap::{Parser, Subcommand};

// A sync allocates and frees many short strings per device on several threads; mimalloc
// measurably beats glibc's allocator at that (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Device lifecycle and inventory for school authorities.
#[derive(Debug, Parser)]
#[command(name = "bestand", version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (default: $BESTAND_CONFIG, else ~/.config/bestand/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output for people (table) or scripts (json, csv).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start mock MDMs and a mock UCS@school for the fictional authority Musterstadt, sync them,
    /// and show around.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
    /// Database schema and the local PostgreSQL cluster.
    Db {
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Pull devices from the configured sources (all, or --source NAME), and manage runs.
    Sync(sync::SyncArgs),
    /// Find devices and show one in full.
    Devices {
        #[command(subcommand)]
        command: devices::DevicesCommand,
    },
    /// The schools of the configured authorities.
    Schools {
        #[command(subcommand)]
        command: persons::SchoolsCommand,
    },
    /// Pupils, teachers and staff from the school directories, and their devices.
    Persons {
        #[command(subcommand)]
        command: persons::PersonsCommand,
    },
    /// Lend devices to pupils and teachers and take them back (Leihgeräte).
    Loans {
        #[command(subcommand)]
        command: loans::LoansCommand,
    },
    /// Purchase files (delivery notes, orders) in: devices get their purchase data.
    Purchases {
        #[command(subcommand)]
        command: procurement::PurchasesCommand,
    },
    /// The model catalogue (price and life per model) and the expected life per category.
    Catalogue {
        #[command(subcommand)]
        command: procurement::CatalogueCommand,
    },
    /// Funding programmes (DigitalPakt, ...) and which devices they paid for.
    Funding {
        #[command(subcommand)]
        command: procurement::FundingCommand,
    },
    /// Repairs of devices: open, close with outcome and cost, list.
    Repairs {
        #[command(subcommand)]
        command: repairs::RepairsCommand,
    },
    /// Stocktaking (Inventur): count a school's devices by scanning their asset tags.
    Inventory {
        #[command(subcommand)]
        command: inventory::InventoryCommand,
    },
    /// Data protection: purge persons past the authority's retention period.
    Privacy {
        #[command(subcommand)]
        command: privacy::PrivacyCommand,
    },
    /// Procurement reports: warranty, depreciation, replacement forecast, funding proof of use
    /// (Verwendungsnachweis), cost split.
    Reports {
        #[command(subcommand)]
        command: reports::ReportsCommand,
    },
    /// Run every source on its schedule, with health and metrics over HTTP.
    Serve(serve::ServeArgs),
    /// Tickets of the service desk and the devices they concern.
    Tickets {
        #[command(subcommand)]
        command: tickets::TicketsCommand,
    },
    /// Cases the sync refused to guess.
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!(
                "error: {}",
                bestand_app::config::redact_url_passwords(&format!("{error:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    #[cfg(feature = "demo")]
    if let Command::Demo(args) = cli.command {
        demo::run(args).await?;
        return Ok(0);
    }
    let config = bestand_app::database::load_config(cli.config.as_deref())?;
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(_) => Ok(0),
        Command::Db { command } => db::run(command, &config).await.map(|()| 0),
        Command::Sync(args) => sync::run(args, &config, cli.format).await,
        Command::Devices { command } => {
            devices::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Schools { command } => persons::run_schools(command, &config, cli.format)
            .await
            .map(|()| 0),
        Command::Persons { command } => {
            persons::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Loans { command } => loans::run(command, &config, cli.format).await,
        Command::Purchases { command } => {
            procurement::run_purchases(command, &config, cli.format).await
        }
        Command::Catalogue { command } => {
            procurement::run_catalogue(command, &config, cli.format).await
        }
        Command::Funding { command } => {
            procurement::run_funding(command, &config, cli.format).await
        }
        Command::Repairs { command } => {
            repairs::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Inventory { command } => inventory::run(command, &config, cli.format)
            .await
            .map(|()| 0),
        Command::Privacy { command } => {
            privacy::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Reports { command } => {
            reports::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Serve(args) => serve::run(args, &config).await,
        Command::Tickets { command } => {
            tickets::run(command, &config, cli.format).await.map(|()| 0)
        }
        Command::Review { command } => review::run(command, &config, cli.format).await.map(|()| 0),
    }
}

/// Log lines go to stderr; `BESTAND_LOG` (or `RUST_LOG`) sets the filter, default `warn`.
fn init_logging() {
    let filter = std::env::var("BESTAND_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
