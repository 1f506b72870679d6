//! Raw payloads are written on a second connection, beside the run's own transaction.
//!
//! Converting every payload to jsonb was the largest single cost of a first sync, and one
//! PostgreSQL backend can only do one thing at a time. So a run hands the payloads of the links
//! it writes to a [`PayloadWriter`], which stores them in `source_payload` in a transaction of
//! its own, and commits just before the run commits.
//!
//! What keeps "a failed run changes nothing" true: a payload row is keyed by the link's source,
//! external id and content hash, and only ever read through a link that carries that hash. Rows
//! of a run that failed after the writer committed (or rows of a version a later run replaced)
//! are unreachable, and the next run of the source sweeps them before writing its own. Runs of
//! one source never overlap (the advisory lock), so the sweep never races the rows of a run in
//! flight.

use sqlx::pool::PoolConnection;
use sqlx::{Acquire, PgPool, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::store::SourceRef;
use crate::sync::references::RowChecks;

/// One link version's raw payload.
pub(crate) struct PayloadRow {
    pub external_id: String,
    pub content_hash: Vec<u8>,
    /// The vendor's JSON text; empty means the source sent none (stored as `{}`).
    pub payload: String,
}

enum Message {
    Rows(Vec<PayloadRow>),
    Commit,
}

/// Batches in flight between the run and the writer; each is one page.
const CHANNEL_CAPACITY: usize = 2;

/// The second connection of a run. Dropping it without [`PayloadWriter::commit`] rolls its
/// rows back.
pub(crate) struct PayloadWriter {
    sender: mpsc::Sender<Message>,
    task: JoinHandle<Result<(), sqlx::Error>>,
}

impl PayloadWriter {
    /// Takes a connection from `pool`, opens the writer's transaction and sweeps the rows of
    /// `source` that no link reaches.
    /// `row_checks` is what the run found its role may do (`sync::references`).
    pub async fn start(
        pool: &PgPool,
        source: &SourceRef,
        row_checks: RowChecks,
    ) -> Result<PayloadWriter, sqlx::Error> {
        let conn = pool.acquire().await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(write_payloads(
            conn,
            source.source_id,
            source.authority_id,
            row_checks,
            receiver,
        ));
        Ok(PayloadWriter { sender, task })
    }

    /// Queues one page of payloads; waits while the writer is two pages behind.
    pub async fn write(&mut self, rows: Vec<PayloadRow>) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.sender.send(Message::Rows(rows)).await.is_err() {
            return Err(self.stopped().await);
        }
        Ok(())
    }

    /// Writes what is queued and commits; the run commits only after this succeeded.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.sender.send(Message::Commit).await.is_err() {
            return Err(self.stopped().await);
        }
        match self.task.await {
            Ok(outcome) => outcome,
            Err(join_error) => Err(stopped_by(join_error)),
        }
    }

    /// Why the writer's task ended before it was told to commit. Consumes the task's outcome,
    /// so the writer is only good for dropping afterwards.
    async fn stopped(&mut self) -> sqlx::Error {
        match (&mut self.task).await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => sqlx::Error::Protocol("the payload writer ended early".into()),
            Err(join_error) => stopped_by(join_error),
        }
    }
}

fn stopped_by(join_error: tokio::task::JoinError) -> sqlx::Error {
    sqlx::Error::Protocol(format!("the payload writer stopped: {join_error}"))
}

async fn write_payloads(
    mut conn: PoolConnection<Postgres>,
    source_id: Uuid,
    authority_id: Uuid,
    row_checks: RowChecks,
    mut receiver: mpsc::Receiver<Message>,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sweep_unreachable(&mut tx, source_id).await?;
    // Payload rows reference only the run's source, which the run's transaction holds locked
    // from before the first page until after this transaction commits (`sync::references`).
    row_checks.switch(&mut tx, true).await?;
    while let Some(message) = receiver.recv().await {
        match message {
            Message::Rows(rows) => insert_rows(&mut tx, source_id, authority_id, rows).await?,
            Message::Commit => return tx.commit().await,
        }
    }
    // The run ended without committing: its payloads go with it.
    tx.rollback().await
}

/// Deletes the payload rows of `source_id` that no link carries: those of replaced versions
/// and those of runs that failed after their writer committed.
pub(crate) async fn sweep_unreachable(
    conn: &mut sqlx::PgConnection,
    source_id: Uuid,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "delete from source_payload p where p.source_id = $1 and not exists \
         (select 1 from source_link l where l.source_id = p.source_id \
          and l.external_id = p.external_id and l.content_hash = p.content_hash)",
    )
    .bind(source_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

async fn insert_rows(
    conn: &mut sqlx::PgConnection,
    source_id: Uuid,
    authority_id: Uuid,
    rows: Vec<PayloadRow>,
) -> Result<(), sqlx::Error> {
    let mut external_ids = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for row in rows {
        external_ids.push(row.external_id);
        hashes.push(row.content_hash);
        payloads.push(if row.payload.trim().is_empty() {
            "{}".to_string()
        } else {
            row.payload
        });
    }
    // A link revived with the hash it had when it ended finds its old row still there.
    sqlx::query(
        "insert into source_payload (source_id, external_id, content_hash, authority_id, payload) \
         select $1, u.external_id, u.content_hash, $2, u.payload::jsonb \
         from unnest($3::text[], $4::bytea[], $5::text[]) as u(external_id, content_hash, payload) \
         on conflict (source_id, external_id, content_hash) do update set payload = excluded.payload",
    )
    .bind(source_id)
    .bind(authority_id)
    .bind(external_ids)
    .bind(hashes)
    .bind(payloads)
    .execute(conn)
    .await?;
    Ok(())
}
