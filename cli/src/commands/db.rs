//! `bestand db`: migrations and the local PostgreSQL cluster.

use clap::Subcommand;

use bestand_app::config::{Config, DatabaseTarget};
use bestand_app::database::{self as app, Database, Migrations};
use bestand_pgcluster::{ClusterStatus, LocalCluster};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending schema migrations.
    Migrate,
    /// Start the local cluster and leave it running (only without a database URL).
    Start,
    /// Stop the local cluster.
    Stop,
    /// Show which database is used and whether it runs.
    Status,
}

pub async fn run(command: DbCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        DbCommand::Migrate => {
            let database = Database::open(config, Migrations::Apply).await?;
            let sources = app::apply_config_directory(&database.pool, config).await?;
            let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
                .fetch_one(&database.pool)
                .await?;
            println!(
                "Schema is current ({applied} migrations applied); {} source(s) registered.",
                sources.len()
            );
            Ok(database.close().await?)
        }
        DbCommand::Start => {
            let cluster = local_cluster(config)?;
            let started = cluster.start().await?;
            let cluster = started.keep_running();
            println!(
                "Local PostgreSQL runs on the socket in {}.",
                cluster.socket_dir().display()
            );
            Ok(())
        }
        DbCommand::Stop => {
            let cluster = local_cluster(config)?;
            if cluster.stop().await? {
                println!("Local PostgreSQL stopped.");
            } else {
                println!("Local PostgreSQL was not running.");
            }
            Ok(())
        }
        DbCommand::Status => {
            match config.database_target()? {
                DatabaseTarget::Url { url, origin } => {
                    println!("Database: {} (from {origin:?})", url.redacted())
                }
                DatabaseTarget::LocalCluster { cluster_dir, .. } => {
                    let cluster = local_cluster(config)?;
                    let state = match cluster.status().await? {
                        ClusterStatus::Running { .. } => "running",
                        ClusterStatus::Stopped => "stopped",
                        ClusterStatus::NotInitialized => "not created yet",
                    };
                    println!(
                        "Database: local cluster in {} ({state})",
                        cluster_dir.display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn local_cluster(config: &Config) -> anyhow::Result<LocalCluster> {
    match config.database_target()? {
        DatabaseTarget::LocalCluster {
            cluster_dir,
            run_as,
        } => Ok(LocalCluster::open(&cluster_dir, run_as.as_deref())?),
        DatabaseTarget::Url { url, .. } => {
            anyhow::bail!(
                "a database URL is configured ({}); bestand runs no local cluster then",
                url.redacted()
            )
        }
    }
}
