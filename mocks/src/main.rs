//! `bestand-mock`: runs the fake vendor servers for the demo and for manual testing, and prints
//! the Musterstadt master data the demo configuration needs.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use bestand_mocks::generator::{DeviceKind, EpochChanges, MUSTERSTADT_DEVICES};
use bestand_mocks::jamf_pro::wire::Sections;
use bestand_mocks::jamf_pro::{DEFAULT_PAGE_CACHE_BYTES, MAX_PAGE_SIZE};
use bestand_mocks::{authority_toml, Fault, FaultPlan, Fleet, JamfProMock, MockConfig};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bestand-mock", about = "Fake vendor servers for bestand")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a generated fleet as a Jamf Pro server until Ctrl-C.
    JamfPro(Box<JamfProArgs>),
    /// Serve a generated fleet as Microsoft Intune (Graph) until Ctrl-C: Windows laptops.
    Intune(SimpleArgs),
    /// Serve a generated fleet as Relution until Ctrl-C (same serials as Jamf Pro for a seed).
    Relution(SimpleArgs),
    /// Serve a generated fleet's iPads as Jamf School until Ctrl-C.
    JamfSchool(SimpleArgs),
    /// Serve the Musterstadt school directory (persons consistent with the fleet of the same
    /// seed) as a UCS@school Kelvin REST API until Ctrl-C.
    Kelvin(KelvinArgs),
    /// Serve generated tickets as Zammad (the service desk) until Ctrl-C; tickets name the
    /// devices of the fleet of the same seed.
    Zammad(ZammadArgs),
    /// Print the Musterstadt schools as the `[[authority]]` block of the configuration.
    SchoolsToml,
}

/// The options of the mocks that have no faults switchable from the command line.
#[derive(Args)]
struct SimpleArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of devices.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
struct KelvinArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the generator; the same seed as a fleet mock gives the persons its devices name.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of persons [default: the Musterstadt schools at natural size, about 17,000].
    #[arg(long)]
    persons: Option<usize>,
    /// Epoch to serve: each step lets some pupils leave and others arrive.
    #[arg(long, default_value_t = 0)]
    epoch: u32,
    /// Lifetime of the issued tokens in seconds.
    #[arg(long, default_value_t = bestand_mocks::kelvin::DEFAULT_TOKEN_TTL_SECS)]
    token_ttl: u64,
    #[arg(long, default_value = bestand_mocks::kelvin::DEFAULT_USERNAME)]
    username: String,
    #[arg(long, default_value = bestand_mocks::kelvin::DEFAULT_PASSWORD)]
    password: String,
}

#[derive(Args)]
struct ZammadArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of tickets (generated on request, so 500,000 cost no memory).
    #[arg(long, default_value_t = 10_000)]
    tickets: usize,
    /// Number of devices of the fleet the tickets refer to.
    #[arg(long, default_value_t = MUSTERSTADT_DEVICES)]
    devices: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// A fault, repeatable: 429=N[:SECS], 5xx=N, 500=N, 502=N, 503=N, slow=MS,
    /// token-requests=N (401 after N requests), malformed-page=K (listing page K+1),
    /// malformed-page=computers:K (search page K+1), short-page=[computers:]K[:MISSING].
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    #[arg(long, default_value = bestand_mocks::zammad::DEFAULT_TOKEN)]
    token: String,
}

#[derive(Args)]
struct JamfProArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Number of devices (mobile devices and computers together).
    #[arg(long, default_value_t = MUSTERSTADT_DEVICES)]
    devices: usize,
    /// Seed of the generator; the same seed serves the same fleet.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Epoch to serve: each step makes devices vanish, re-enroll and update their OS.
    #[arg(long, default_value_t = 0)]
    epoch: u32,
    /// Devices that vanish per epoch step [default: 0.5 % of the fleet].
    #[arg(long)]
    vanish: Option<usize>,
    /// Devices that re-enroll (new Jamf id) per epoch step [default: 0.4 %].
    #[arg(long)]
    reenroll: Option<usize>,
    /// Devices that get a newer OS per epoch step [default: 5 %].
    #[arg(long)]
    os_updates: Option<usize>,
    /// A fault, repeatable: 429=N[:SECS], 5xx=N, 500=N, 502=N, 503=N, slow=MS, token-ttl=SECS,
    /// token-requests=N, malformed-page=[computers:]K, short-page=[computers:]K[:MISSING],
    /// computers-api=V, no-v4.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    #[arg(long, default_value = bestand_mocks::jamf_pro::DEFAULT_CLIENT_ID)]
    client_id: String,
    #[arg(long, default_value = bestand_mocks::jamf_pro::DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    #[arg(long, default_value = bestand_mocks::jamf_pro::DEFAULT_USERNAME)]
    username: String,
    #[arg(long, default_value = bestand_mocks::jamf_pro::DEFAULT_PASSWORD)]
    password: String,
    /// Render every inventory page at start as bestand asks for them (page size 2000, its
    /// sections), so that the first sync is served from the cache; prints when done.
    #[arg(long)]
    warm_cache: bool,
    /// Bound of the rendered-page cache in MiB; 0 renders every request anew.
    #[arg(long, default_value_t = DEFAULT_PAGE_CACHE_BYTES >> 20)]
    page_cache_mb: usize,
}

/// The sections bestand's Jamf connector requests, per inventory.
const BESTAND_SECTIONS: [(DeviceKind, &str); 2] = [
    (
        DeviceKind::Mobile,
        "GENERAL,HARDWARE,USER_AND_LOCATION,PURCHASING",
    ),
    (
        DeviceKind::Computer,
        "GENERAL,HARDWARE,USER_AND_LOCATION,PURCHASING,OPERATING_SYSTEM",
    ),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::JamfPro(args) => jamf_pro(*args).await,
        Command::Intune(args) => {
            let mock =
                bestand_mocks::intune::IntuneMock::start(bestand_mocks::intune::IntuneMockConfig {
                    bind: SocketAddr::new(args.bind, args.port),
                    ..bestand_mocks::intune::IntuneMockConfig::new(Fleet::new(
                        args.seed,
                        args.devices,
                    ))
                })
                .await?;
            let config = mock.config();
            println!("Intune mock: {}", mock.base_url());
            println!("  graph_url:     {}", mock.base_url());
            println!("  token_url:     {}", mock.token_url());
            println!("  tenant_id:     {}", config.tenant_id);
            println!("  client_id:     {}", config.client_id);
            println!("  client_secret: {}", config.client_secret);
            wait_for_ctrl_c().await
        }
        Command::JamfSchool(args) => {
            let mock = bestand_mocks::jamf_school::JamfSchoolMock::start(
                bestand_mocks::jamf_school::MockConfig {
                    bind: SocketAddr::new(args.bind, args.port),
                    ..bestand_mocks::jamf_school::MockConfig::new(Fleet::new(
                        args.seed,
                        args.devices,
                    ))
                },
            )
            .await?;
            let config = mock.config();
            println!("Jamf School mock: {}", mock.base_url());
            println!("  network_id:    {}", config.network_id);
            println!("  api key:       {}", config.api_key);
            println!("  devices:       {}", mock.device_count());
            wait_for_ctrl_c().await
        }
        Command::Relution(args) => {
            let mock = bestand_mocks::relution::RelutionMock::start(
                bestand_mocks::relution::RelutionMockConfig {
                    bind: SocketAddr::new(args.bind, args.port),
                    ..bestand_mocks::relution::RelutionMockConfig::new(Fleet::new(
                        args.seed,
                        args.devices,
                    ))
                },
            )
            .await?;
            let config = mock.config();
            println!("Relution mock: {}", mock.base_url());
            println!("  access token:  {}", config.token);
            println!(
                "  organization:  {}",
                config.organization.as_deref().unwrap_or("")
            );
            wait_for_ctrl_c().await
        }
        Command::Kelvin(args) => kelvin(args).await,
        Command::Zammad(args) => zammad(args).await,
        Command::SchoolsToml => {
            print!("{}", authority_toml());
            Ok(())
        }
    }
}

/// Keeps a mock serving until Ctrl-C (or SIGTERM, through the runtime's default handling).
async fn wait_for_ctrl_c() -> anyhow::Result<()> {
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

async fn zammad(args: ZammadArgs) -> anyhow::Result<()> {
    use bestand_mocks::zammad::{ZammadMock, ZammadMockConfig, TOUCH_PATH};

    let mut faults = FaultPlan::default();
    for fault in &args.faults {
        faults.apply(*fault);
    }
    let mock = ZammadMock::start(ZammadMockConfig {
        bind: SocketAddr::new(args.bind, args.port),
        fleet: Fleet::new(args.seed, args.devices),
        faults,
        token: args.token,
        ..ZammadMockConfig::new(args.seed, args.tickets)
    })
    .await?;
    println!("Zammad mock: {}", mock.base_url());
    println!("  token:         {}", mock.config().token);
    println!(
        "  tickets:       {} (seed {}, about {} devices)",
        args.tickets, args.seed, args.devices
    );
    println!(
        "  update some:   curl -X POST '{}{TOUCH_PATH}?count=1000'",
        mock.base_url()
    );
    if !args.faults.is_empty() {
        println!("  faults:        {:?}", args.faults);
    }
    wait_for_ctrl_c().await?;
    Ok(mock.shutdown().await?)
}

async fn kelvin(args: KelvinArgs) -> anyhow::Result<()> {
    use bestand_mocks::directory::Role;
    use bestand_mocks::kelvin::{FaultPlan, KelvinMock, KelvinMockConfig};
    use bestand_mocks::Directory;

    let started = Instant::now();
    let directory = match args.persons {
        Some(persons) => Directory::new(args.seed, persons),
        None => Directory::musterstadt(args.seed),
    };
    let mock = KelvinMock::start(KelvinMockConfig {
        bind: SocketAddr::new(args.bind, args.port),
        faults: FaultPlan {
            epoch: args.epoch,
            token_ttl_secs: args.token_ttl,
            ..FaultPlan::default()
        },
        username: args.username,
        password: args.password,
        ..KelvinMockConfig::new(directory)
    })
    .await?;
    let served = mock.directory();
    let config = mock.config();
    println!("Kelvin mock: {}", mock.base_url());
    println!("  username:      {}", config.username);
    println!("  password:      {}", config.password);
    println!(
        "  directory:     seed {}, epoch {}, {} persons ({} pupils, {} teachers) in {:.2} s",
        args.seed,
        served.epoch(),
        served.len(),
        served.count(Role::Student),
        served.count(Role::Teacher),
        started.elapsed().as_secs_f64()
    );
    wait_for_ctrl_c().await?;
    Ok(mock.shutdown().await?)
}

async fn jamf_pro(args: JamfProArgs) -> anyhow::Result<()> {
    let defaults = EpochChanges::proportional(args.devices);
    let changes = EpochChanges {
        vanish: args.vanish.unwrap_or(defaults.vanish),
        reenroll: args.reenroll.unwrap_or(defaults.reenroll),
        os_updates: args.os_updates.unwrap_or(defaults.os_updates),
    };
    let fleet = Fleet::with_changes(args.seed, args.devices, changes);
    let mut faults = FaultPlan {
        epoch: args.epoch,
        ..FaultPlan::default()
    };
    for fault in &args.faults {
        faults.apply(*fault);
    }
    let config = MockConfig {
        faults,
        bind: SocketAddr::new(args.bind, args.port),
        client_id: args.client_id,
        client_secret: args.client_secret,
        username: args.username,
        password: args.password,
        page_cache_bytes: args.page_cache_mb.saturating_mul(1 << 20),
        ..MockConfig::new(fleet)
    };
    let mock = JamfProMock::start(config).await?;
    let snapshot = mock.snapshot();
    let config = mock.config();
    println!("Jamf Pro mock: {}", mock.base_url());
    println!(
        "  fleet:        seed {}, epoch {}, {} mobile devices, {} computers",
        args.seed,
        snapshot.epoch(),
        snapshot.count(DeviceKind::Mobile),
        snapshot.count(DeviceKind::Computer)
    );
    println!(
        "  OAuth client: client_id={} client_secret={}",
        config.client_id, config.client_secret
    );
    println!(
        "  user token:   username={} password={}",
        config.username, config.password
    );
    if !args.faults.is_empty() {
        println!("  faults:       {:?}", args.faults);
    }
    if args.warm_cache {
        warm_cache(&mock).await?;
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    Ok(mock.shutdown().await?)
}

/// Fills the page cache for bestand's requests and says so, for scripts to wait on.
async fn warm_cache(mock: &JamfProMock) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pages = 0;
    for (kind, sections) in BESTAND_SECTIONS {
        let sections = Sections::parse(kind, sections.split(','))
            .map_err(|name| anyhow::anyhow!("bestand's section {name:?} is not valid"))?;
        pages += mock.warm_page_cache(kind, MAX_PAGE_SIZE, sections).await?;
    }
    let stats = mock.page_cache_stats();
    println!(
        "  page cache:   warm, {} pages of {MAX_PAGE_SIZE} ({:.1} MB) in {:.2} s",
        stats.pages,
        stats.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if stats.pages < pages {
        // Still correct, but those pages cost a render per request.
        println!(
            "  page cache:   {} of {pages} pages did not fit, raise --page-cache-mb",
            pages - stats.pages
        );
    }
    Ok(())
}
