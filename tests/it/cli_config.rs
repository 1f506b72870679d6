//! The configuration file and bestand's own PostgreSQL cluster, tested as the CLI uses them:
//! parsing and checking real TOML text, and making, starting and stopping a real cluster.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bestand_app::config::{
    locate_with, redact_url_passwords, Config, ConfigError, ConfigOrigin, DatabaseTarget,
    DatabaseUrl, SourceSettings, UrlOrigin, EXAMPLE_CONFIG,
};
use bestand_core::model::SchoolType;
use bestand_pgcluster::{
    machine_memory, ClusterOptions, ClusterStatus, LocalCluster, ServerMemory,
};
use sqlx::{ConnectOptions, Connection};

const MINIMAL: &str = r#"
[[authority]]
slug = "musterstadt"
name = "Stadt Musterstadt"

[[authority.school]]
number = "100001"
name = "Grundschule Lindenweg"
type = "grundschule"

[[source]]
name = "jamf"
kind = "jamf_pro"
authority = "musterstadt"
base_url = "https://musterstadt.jamfcloud.com"
client_id = "bestand"
client_secret_env = "JAMF_SECRET"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/bestand/config.toml"))
}

/// The full error text, which must name the problem well enough to fix it.
fn parse_error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn example_config_parses() {
    let config = parse(EXAMPLE_CONFIG).unwrap();
    assert_eq!(config.authorities.len(), 2);
    assert_eq!(config.authorities[0].schools.len(), 2);
    assert_eq!(
        config.authorities[0].schools[0].school_type,
        SchoolType::Grundschule
    );
    assert_eq!(config.sources.len(), 5);
    let glpi = config.source("glpi").unwrap();
    assert!(matches!(glpi.settings(), SourceSettings::Glpi(_)));
    assert!(!glpi.common.enabled);
    let servicedesk = config.source("servicedesk").unwrap();
    assert!(matches!(servicedesk.settings(), SourceSettings::Zammad(_)));
    let ucs = config.source("ucs").unwrap();
    assert!(matches!(ucs.settings(), SourceSettings::UcsLdap(_)));
    assert_eq!(
        ucs.common.school_map.get("GSL").map(String::as_str),
        Some("100001")
    );
    assert_eq!(config.authorities[0].retention_months, Some(12));
    let jamf = config.source("jamf").unwrap();
    assert!(jamf.common.enabled);
    assert!(matches!(jamf.settings(), SourceSettings::JamfPro(_)));
    assert_eq!(jamf.settings().kind(), "jamf_pro");
    assert!(jamf.kind_table().contains_key("base_url"));
    assert!(!jamf.kind_table().contains_key("authority"));
    assert!(!config.source("jamf-nachbarhausen").unwrap().common.enabled);
    let guard = config.deletion_guard(jamf);
    assert_eq!((guard.max_share, guard.min_count), (0.2, 100));
    assert_eq!(config.database.max_connections, Some(8));
    assert_eq!(config.sync.page_channel_capacity, Some(4));
}

#[test]
fn a_school_map_must_name_schools_of_the_authority() {
    let text = EXAMPLE_CONFIG.replace("GOE = \"100002\"", "GOE = \"999999\"");
    let error = parse_error(&text);
    assert!(
        error.contains("school_map") && error.contains("999999") && error.contains("musterstadt"),
        "{error}"
    );
}

#[test]
fn configuration_docs_show_the_example_unchanged() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let docs = std::fs::read_to_string(&docs).unwrap();
    assert!(
        docs.contains(&format!("```toml\n{EXAMPLE_CONFIG}```")),
        "docs/configuration.md must show app/src/config.example.toml unchanged"
    );
}

#[test]
fn guard_defaults_apply_without_sync_table_or_overrides() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.sync.missing_guard_share, 0.10);
    assert_eq!(config.sync.missing_guard_min, 50);
    assert_eq!(config.sync.page_channel_capacity, None);
    let guard = config.deletion_guard(config.source("jamf").unwrap());
    assert_eq!((guard.max_share, guard.min_count), (0.10, 50));
    // The larger of share and count wins: 10 % of 100 is below the minimum of 50 ...
    let engine_guard = config.deletion_guard(config.source("jamf").unwrap());
    assert_eq!(engine_guard.limit(100), 50);
    // ... while 10 % of 5000 is above it.
    assert_eq!(engine_guard.limit(5000), 500);
    assert!(config.source("jamf").unwrap().common.enabled);
}

#[test]
fn unknown_keys_fail_everywhere_naming_key_and_table() {
    let cases = [
        ("colour = \"blue\"\n", "colour", "the top level"),
        ("[database]\nuser = \"x\"\n", "user", "[database]"),
        ("[sync]\nmissing_guard = 1\n", "missing_guard", "[sync]"),
        (
            "[[authority]]\nslug = \"a\"\nname = \"A\"\ncity = \"x\"\n",
            "city",
            "[[authority]]",
        ),
        (
            "[[authority]]\nslug = \"a\"\nname = \"A\"\n[[authority.school]]\nnumber = \"1\"\n\
             name = \"S\"\ntype = \"other\"\nstreet = \"x\"\n",
            "street",
            "[[authority.school]]",
        ),
    ];
    for (text, key, table) in cases {
        let message = parse_error(text);
        assert!(message.contains(&format!("`{key}`")), "{message}");
        assert!(message.contains(table), "{message}");
        assert!(message.contains("line "), "{message}");
        assert!(message.contains("/etc/bestand/config.toml"), "{message}");
    }
    let in_source = parse_error(&MINIMAL.replace("client_id", "client_ids"));
    assert!(in_source.contains("`client_ids`"), "{in_source}");
    assert!(in_source.contains("[[source]] #1 \"jamf\""), "{in_source}");
}

#[test]
fn database_settings_debug_redacts_the_password() {
    let text = "[database]\nurl = \"postgres://bestand:geheim@db.example.org:5432/bestand\"\n";
    let config = parse(text).unwrap();
    let debug = format!("{:?}", config.database);
    assert!(!debug.contains("geheim"), "{debug}");
    assert!(
        debug.contains("postgres://bestand:****@db.example.org:5432/bestand"),
        "{debug}"
    );
    assert!(!format!("{config:?}").contains("geheim"));
    let url = config.database.url.as_ref().unwrap();
    assert_eq!(
        url.expose(),
        "postgres://bestand:geheim@db.example.org:5432/bestand"
    );
    assert!(!url.to_string().contains("geheim"));
    assert_eq!(
        redact_url_passwords("a postgres://u@h/x and postgresql://u:p@h/y"),
        "a postgres://u@h/x and postgresql://u:****@h/y"
    );
}

#[test]
fn syntax_errors_keep_line_and_column_but_not_secrets() {
    let message = parse_error("[database]\nurl = \"postgres://bestand:geheim@db/bestand\nx = 1\n");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("column"), "{message}");
    assert!(!message.contains("geheim"), "{message}");

    let inline_secret = parse_error(&format!("{MINIMAL}client_secret = \"geheim\"\n"));
    assert!(inline_secret.contains("`client_secret`"), "{inline_secret}");
    assert!(!inline_secret.contains("geheim"), "{inline_secret}");
    let broken_secret = parse_error("[[source]]\nclient_secret = \"geheim\n");
    assert!(
        broken_secret.contains("client_secret = ****"),
        "{broken_secret}"
    );
    assert!(!broken_secret.contains("geheim"), "{broken_secret}");
}

#[test]
fn unknown_authority_is_named_with_the_known_ones() {
    let message =
        parse_error(&MINIMAL.replace("authority = \"musterstadt\"", "authority = \"musterstat\""));
    assert!(message.contains("[[source]] \"jamf\""), "{message}");
    assert!(message.contains("`authority`"), "{message}");
    assert!(message.contains("\"musterstat\""), "{message}");
    assert!(
        message.contains("known authorities: musterstadt"),
        "{message}"
    );
}

#[test]
fn duplicate_source_names_are_rejected() {
    let second = MINIMAL
        .split("[[source]]")
        .nth(1)
        .map(|rest| format!("[[source]]{rest}"))
        .unwrap();
    let message = parse_error(&format!("{MINIMAL}\n{second}"));
    assert!(
        message.contains("duplicate source name \"jamf\""),
        "{message}"
    );
    assert!(message.contains("`name`"), "{message}");
}

#[test]
fn schools_slugs_kinds_and_shares_are_checked() {
    let duplicate_school = parse_error(&MINIMAL.replace(
        "[[source]]",
        "[[authority.school]]\nnumber = \"100001\"\nname = \"Zweite\"\ntype = \"realschule\"\n\n\
         [[source]]",
    ));
    assert!(
        duplicate_school.contains("school number \"100001\" appears more than once"),
        "{duplicate_school}"
    );
    assert!(
        duplicate_school.contains("musterstadt"),
        "{duplicate_school}"
    );

    let bad_type = parse_error(&MINIMAL.replace("\"grundschule\"", "\"waldorfschule\""));
    assert!(bad_type.contains("waldorfschule"), "{bad_type}");
    assert!(bad_type.contains("gymnasium"), "{bad_type}");
    assert!(bad_type.contains("[[authority.school]]"), "{bad_type}");

    let bad_slug = parse_error(&MINIMAL.replace("\"musterstadt\"", "\"Muster Stadt\""));
    assert!(bad_slug.contains("`slug`"), "{bad_slug}");
    assert!(bad_slug.contains("\"Muster Stadt\""), "{bad_slug}");

    let bad_kind = parse_error(&MINIMAL.replace("\"jamf_pro\"", "\"snipe_it\""));
    assert!(bad_kind.contains("unknown kind \"snipe_it\""), "{bad_kind}");
    assert!(bad_kind.contains("known kinds: jamf_pro"), "{bad_kind}");

    let bad_share = parse_error(&format!("[sync]\nmissing_guard_share = 1.5\n{MINIMAL}"));
    assert!(bad_share.contains("[sync]"), "{bad_share}");
    assert!(bad_share.contains("`missing_guard_share`"), "{bad_share}");
    let bad_source_share = parse_error(&format!("{MINIMAL}missing_guard_share = -0.1\n"));
    assert!(
        bad_source_share.contains("[[source]] \"jamf\""),
        "{bad_source_share}"
    );

    // Several problems are reported together, one per line.
    let both = parse_error(&format!(
        "[sync]\nmissing_guard_share = 2.0\n{}",
        MINIMAL.replace("authority = \"musterstadt\"", "authority = \"x\"")
    ));
    assert!(both.contains("\n  - [sync]"), "{both}");
    assert!(both.contains("\n  - [[source]]"), "{both}");
}

#[test]
fn missing_file_names_the_path_and_how_to_make_one() {
    let path = PathBuf::from("/nonexistent/bestand/config.toml");
    let message = Config::from_file(&path, ConfigOrigin::DefaultLocation)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/nonexistent/bestand/config.toml"),
        "{message}"
    );
    assert!(message.contains("bestand demo"), "{message}");
    assert!(message.contains("docs/configuration.md"), "{message}");
}

#[test]
fn config_path_comes_from_flag_then_environment_then_default() {
    let flag = Path::new("/flag.toml");
    let home = Some(PathBuf::from("/home/u/.config"));
    let env = Some("/env.toml".into());
    assert_eq!(
        locate_with(Some(flag), env.clone(), home.clone()).unwrap(),
        (flag.to_path_buf(), ConfigOrigin::Flag)
    );
    assert_eq!(
        locate_with(None, env, home.clone()).unwrap(),
        (PathBuf::from("/env.toml"), ConfigOrigin::Environment)
    );
    assert_eq!(
        locate_with(None, None, home).unwrap(),
        (
            PathBuf::from("/home/u/.config/bestand/config.toml"),
            ConfigOrigin::DefaultLocation
        )
    );
    assert!(matches!(
        locate_with(None, None, None),
        Err(ConfigError::NoConfigFolder)
    ));
}

#[test]
fn database_url_comes_from_file_then_environment_then_local_cluster() {
    let target = |text: &str, env_url: Option<&str>| {
        parse(text)
            .unwrap()
            .database_target_with(
                env_url.map(str::to_string),
                Some(PathBuf::from("/home/u/.local/share/bestand")),
            )
            .unwrap()
    };
    let env_url = Some("postgres://u:p@env/db");
    let url = |url: &str, origin| DatabaseTarget::Url {
        url: DatabaseUrl::new(url),
        origin,
    };

    assert_eq!(
        target("[database]\nurl = \"postgres://file/db\"\n", env_url),
        url("postgres://file/db", UrlOrigin::ConfigFile)
    );
    assert_eq!(
        target("", env_url),
        url("postgres://u:p@env/db", UrlOrigin::Environment)
    );
    assert_eq!(
        target("", None),
        DatabaseTarget::LocalCluster {
            cluster_dir: PathBuf::from("/home/u/.local/share/bestand/postgres"),
            run_as: None
        }
    );
    // A relative data_dir is relative to the config file's folder.
    assert_eq!(
        target("[database]\ndata_dir = \"data\"\nrun_as = \"pg\"\n", None),
        DatabaseTarget::LocalCluster {
            cluster_dir: PathBuf::from("/etc/bestand/data/postgres"),
            run_as: Some("pg".to_string())
        }
    );
}

/// A fresh folder for one test's cluster, short enough for the socket path limit.
fn cluster_dir(test: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn count_rows(options: sqlx::postgres::PgConnectOptions) -> Result<i64, sqlx::Error> {
    let mut connection = options.connect().await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM kept")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(count)
}

#[tokio::test]
async fn local_cluster_starts_connects_stops_and_keeps_its_data() {
    let dir = cluster_dir("lifecycle");
    let cluster = LocalCluster::open(&dir, None).unwrap();
    assert_eq!(
        cluster.status().await.unwrap(),
        ClusterStatus::NotInitialized
    );

    let begin = Instant::now();
    assert!(cluster.ensure_initialized().await.unwrap());
    let initialized = begin.elapsed();
    assert!(!cluster.ensure_initialized().await.unwrap());

    let begin = Instant::now();
    let started = cluster.start().await.unwrap();
    let start_time = begin.elapsed();
    eprintln!("cluster: initdb {initialized:.2?}, start {start_time:.2?}");
    assert!(started.started_here());
    assert!(matches!(
        cluster.status().await.unwrap(),
        ClusterStatus::Running { pid } if pid > 0
    ));

    // The URL form is what DATABASE_URL carries; it must reach the `bestand` database.
    let url = started.connection_url();
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(database, "bestand");
    // bestand's own cluster is crash-safe; it skips zero-filling new WAL segments and sizes
    // its buffers from the machine's memory.
    let memory = ServerMemory::for_machine(machine_memory());
    let shared_buffers = format!("{}MB", memory.shared_buffers_mb);
    let wal_buffers = format!("{}MB", memory.wal_buffers_mb);
    for (setting, expected) in [
        ("fsync", "on"),
        ("full_page_writes", "on"),
        ("wal_init_zero", "off"),
        ("shared_buffers", shared_buffers.as_str()),
        ("wal_buffers", wal_buffers.as_str()),
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(value, expected, "{setting}");
    }
    sqlx::query("CREATE TABLE kept (id int)")
        .execute(&mut connection)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES (1)")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    // A second start finds the running server and must not stop it when dropped.
    let reused = cluster.start().await.unwrap();
    assert!(!reused.started_here());
    drop(reused);
    assert!(matches!(
        cluster.status().await.unwrap(),
        ClusterStatus::Running { .. }
    ));

    started.stop().await.unwrap();
    assert_eq!(cluster.status().await.unwrap(), ClusterStatus::Stopped);
    assert!(!cluster.stop().await.unwrap());

    // Reopening the folder finds the same cluster and its data.
    let reopened = LocalCluster::open(&dir, None).unwrap();
    let restarted = reopened.start().await.unwrap();
    assert!(restarted.started_here());
    assert_eq!(count_rows(restarted.connect_options()).await.unwrap(), 1);
    drop(restarted);
    assert_eq!(reopened.status().await.unwrap(), ClusterStatus::Stopped);

    // `keep_running` leaves the server up for `bestand db start`.
    let kept = reopened.start().await.unwrap().keep_running();
    assert!(matches!(
        kept.status().await.unwrap(),
        ClusterStatus::Running { .. }
    ));
    assert!(kept.stop().await.unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn throwaway_cluster_takes_many_connections_and_skips_fsync() {
    let dir = cluster_dir("throwaway");
    let cluster = LocalCluster::open_with(&dir, None, ClusterOptions::throwaway()).unwrap();
    let started = cluster.start().await.unwrap();
    let mut connection = started.connect_options().connect().await.unwrap();
    for (setting, expected) in [
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "200"),
        ("listen_addresses", ""),
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(value, expected, "{setting}");
    }
    connection.close().await.unwrap();
    started.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn failed_start_shows_the_server_log() {
    let dir = cluster_dir("broken");
    let cluster = LocalCluster::open_with(&dir, None, ClusterOptions::throwaway()).unwrap();
    cluster.ensure_initialized().await.unwrap();
    let conf = cluster.data_dir().join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("shared_buffers = 'lots'\n");
    std::fs::write(&conf, text).unwrap();

    let error = cluster.start().await.unwrap_err().to_string();
    assert!(error.contains("did not start"), "{error}");
    assert!(error.contains("server.log"), "{error}");
    assert!(error.contains("shared_buffers"), "{error}");
    assert_eq!(cluster.status().await.unwrap(), ClusterStatus::Stopped);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn field_priority_names_known_fields_and_configured_sources() {
    let good = format!("{MINIMAL}\n[sync.field_priority]\nos_version = [\"jamf\"]\n");
    let config = parse(&good).unwrap();
    assert_eq!(
        config.sync.field_priority["os_version"],
        vec!["jamf".to_string()]
    );
    let message = parse_error(&format!(
        "{MINIMAL}\n[sync.field_priority]\ncolour = [\"jamf\"]\nos_version = [\"intune\"]\n"
    ));
    assert!(message.contains("key `colour`: not a field"), "{message}");
    assert!(message.contains("no source named \"intune\""), "{message}");
}
