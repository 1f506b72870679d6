//! The storage floor of a first sync: how long PostgreSQL alone takes to load the rows a full
//! sync wrote, by server-side binary COPY, with no client, no matching and no per-row checks.
//! No client stores those rows faster on the same machine, so the floor bounds what any sync
//! could reach there (docs/performance.md, "Why the full sync is not within 2x").

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The tables a first sync fills, split over two connections as the sync splits them: the raw
/// payloads go on a second connection beside the run's transaction.
const RUN_TABLES: [&str; 3] = ["device", "source_link", "device_event"];
const PAYLOAD_TABLES: [&str; 1] = ["source_payload"];

/// A copy of the inventory's database, emptied of those tables, to load them into.
const SCRATCH_DATABASE: &str = "bench_storage_floor";

pub struct StorageFloor {
    /// Loading all tables on two connections at once.
    pub wall_seconds: f64,
    /// Each table's COPY statement and its seconds, the server's own work.
    pub statements: Vec<(&'static str, f64)>,
    pub rows: u64,
}

impl StorageFloor {
    pub fn statement_seconds(&self) -> f64 {
        self.statements.iter().map(|(_, seconds)| seconds).sum()
    }
}

/// Measures the floor for the rows in `inventory`'s database. The server writes its dump files
/// into `data_dir`, the cluster's data folder (it may write there whichever user it runs as);
/// they are removed again afterwards.
pub async fn measure(
    inventory: &PgConnectOptions,
    data_dir: &Path,
) -> anyhow::Result<StorageFloor> {
    let dumps = Dumps {
        dir: std::path::absolute(data_dir)?,
    };
    let tables = || RUN_TABLES.iter().chain(PAYLOAD_TABLES.iter());
    let outcome = async {
        let mut conn = PgConnection::connect_with(inventory).await?;
        for table in tables() {
            let statement = format!(
                "COPY {table} TO {} WITH (FORMAT binary)",
                dumps.literal(table)?
            );
            conn.execute(statement.as_str())
                .await
                .with_context(|| format!("cannot dump {table}"))?;
        }
        conn.close().await?;

        let template = inventory
            .get_database()
            .context("the inventory's connection names no database")?;
        let mut admin = PgConnection::connect_with(&inventory.clone().database("postgres")).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {SCRATCH_DATABASE}").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE {SCRATCH_DATABASE} TEMPLATE \"{template}\"").as_str())
            .await?;
        let scratch = inventory.clone().database(SCRATCH_DATABASE);
        let mut conn = PgConnection::connect_with(&scratch).await?;
        let all: Vec<&str> = tables().copied().collect();
        conn.execute(format!("TRUNCATE {} CASCADE", all.join(", ")).as_str())
            .await?;
        // Start from clean buffers, as the sync did: nothing of the truncated rows to write out.
        conn.execute("CHECKPOINT").await?;
        conn.close().await?;

        let started = Instant::now();
        let (run, payloads) = tokio::try_join!(
            load(&scratch, &RUN_TABLES, &dumps),
            load(&scratch, &PAYLOAD_TABLES, &dumps)
        )?;
        let wall_seconds = started.elapsed().as_secs_f64();

        admin
            .execute(format!("DROP DATABASE {SCRATCH_DATABASE}").as_str())
            .await?;
        admin.close().await?;
        Ok(StorageFloor {
            wall_seconds,
            statements: run.0.into_iter().chain(payloads.0).collect(),
            rows: run.1 + payloads.1,
        })
    }
    .await;
    for table in tables() {
        // The server wrote them; a missing one means the dump failed, which `outcome` says.
        let _ = std::fs::remove_file(dumps.path(table));
    }
    outcome
}

/// Where the server dumps each table.
struct Dumps {
    dir: PathBuf,
}

impl Dumps {
    fn path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("bench-storage-floor-{table}.bin"))
    }

    /// The dump's path as an SQL string literal.
    fn literal(&self, table: &str) -> anyhow::Result<String> {
        let path = self.path(table);
        let path = path
            .to_str()
            .context("the data folder's path is not UTF-8")?;
        anyhow::ensure!(
            !path.contains('\''),
            "the data folder's path contains a quote"
        );
        Ok(format!("'{path}'"))
    }
}

/// Loads `tables` in one transaction, per-row triggers (the foreign-key checks) off as the
/// sync has them for created rows; the seconds each table's statement took, and the rows.
async fn load(
    database: &PgConnectOptions,
    tables: &[&'static str],
    dumps: &Dumps,
) -> anyhow::Result<(Vec<(&'static str, f64)>, u64)> {
    let mut conn = PgConnection::connect_with(database).await?;
    let mut transaction = conn.begin().await?;
    transaction
        .execute("SET LOCAL session_replication_role = replica")
        .await?;
    let mut seconds = Vec::new();
    let mut rows = 0;
    for table in tables {
        let statement = format!(
            "COPY {table} FROM {} WITH (FORMAT binary)",
            dumps.literal(table)?
        );
        let started = Instant::now();
        let done = transaction
            .execute(statement.as_str())
            .await
            .with_context(|| format!("cannot load {table}"))?;
        seconds.push((*table, started.elapsed().as_secs_f64()));
        rows += done.rows_affected();
    }
    transaction.commit().await?;
    Ok((seconds, rows))
}
