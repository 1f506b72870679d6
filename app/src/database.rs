//! What every command needs: the loaded configuration and an open, migrated database.

use std::path::Path;

use bestand_core::access::{Actor, Scope};
use bestand_core::store::{self, AuthoritySpec, SchoolSpec, SourceRef, SourceSpec};
use bestand_core::sync::DeletionGuard;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use bestand_pgcluster::{LocalCluster, StartedCluster};

use crate::config::{Config, DatabaseTarget, SourceConfig};
use crate::error::AppError;

/// An open database: a pool, plus the local cluster if this process started it.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<StartedCluster>,
}

/// Whether opening the database may apply migrations by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply pending migrations (the local cluster, and `db migrate`).
    Apply,
    /// Refuse to work on a schema that is behind (a shared server is migrated on purpose).
    RequireCurrent,
}

impl Database {
    /// Opens the configured database. A local cluster is started on demand and migrated.
    pub async fn open(config: &Config, migrations: Migrations) -> Result<Database, AppError> {
        let max_connections = config.database.max_connections.unwrap_or(8);
        let (options, cluster, local) = match config.database_target()? {
            DatabaseTarget::Url { url, .. } => {
                let options: PgConnectOptions =
                    url.expose()
                        .parse()
                        .map_err(|error: sqlx::Error| AppError::DatabaseUrl {
                            url: url.redacted(),
                            message: error.to_string(),
                        })?;
                (options, None, false)
            }
            DatabaseTarget::LocalCluster {
                cluster_dir,
                run_as,
            } => {
                let cluster = LocalCluster::open(&cluster_dir, run_as.as_deref())?;
                let started = cluster.start().await?;
                (started.connect_options(), Some(started), true)
            }
        };
        // The server probes each connection's client: when a host running a sync dies without
        // closing its connections, the server ends its session after about two minutes
        // (60 s idle, then 6 probes 10 s apart), which frees the source's advisory lock for
        // another instance instead of holding it for the kernel's default of about two hours
        // (docs/operations.md). Unix-socket connections ignore these settings.
        let options = options.options([
            ("tcp_keepalives_idle", "60"),
            ("tcp_keepalives_interval", "10"),
            ("tcp_keepalives_count", "6"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .map_err(AppError::Connect)?;
        let database = Database { pool, cluster };
        if local || migrations == Migrations::Apply {
            store::migrate(&database.pool).await?;
        } else {
            database.require_current_schema().await?;
        }
        Ok(database)
    }

    async fn require_current_schema(&self) -> Result<(), AppError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("select version from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        let pending = bestand_core::MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count();
        if pending > 0 {
            return Err(AppError::SchemaBehind { pending });
        }
        Ok(())
    }

    /// Closes the pool and stops the local server if this process started it.
    pub async fn close(self) -> Result<(), AppError> {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await?;
        }
        Ok(())
    }
}

/// Writes the configured authorities, schools and sources into the database.
pub async fn apply_config_directory(
    pool: &PgPool,
    config: &Config,
) -> Result<Vec<SourceRef>, AppError> {
    let authorities: Vec<AuthoritySpec> = config
        .authorities
        .iter()
        .map(|authority| AuthoritySpec {
            slug: authority.slug.clone(),
            name: authority.name.clone(),
            shared_macs: authority
                .shared_macs
                .iter()
                .filter_map(|mac| bestand_core::normalize::mac_address(Some(mac)))
                .collect(),
            schools: authority
                .schools
                .iter()
                .map(|school| SchoolSpec {
                    number: school.number.clone(),
                    name: school.name.clone(),
                    school_type: school.school_type,
                    aliases: school.aliases.clone(),
                })
                .collect(),
        })
        .collect();
    let sources: Vec<SourceSpec> = config
        .sources
        .iter()
        .map(|source| SourceSpec {
            name: source.common.name.clone(),
            kind: source.common.kind.clone(),
            authority_slug: source.common.authority.clone(),
        })
        .collect();
    // The configuration file's holder administers every authority in it (docs/ARCHITECTURE.md).
    Ok(store::apply_configuration(
        pool,
        &Scope::All,
        &Actor::System("configuration"),
        &authorities,
        &sources,
    )
    .await?)
}

/// The deletion guard that applies to `source`.
pub fn guard_for(config: &Config, source: &SourceConfig) -> DeletionGuard {
    config.deletion_guard(source)
}

/// Loads the configuration named by `--config`, `BESTAND_CONFIG` or the default location.
pub fn load_config(flag: Option<&Path>) -> Result<Config, AppError> {
    Ok(Config::load(flag)?)
}
