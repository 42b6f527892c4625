//! How the SQLite store writes a batch of appends ([`crate::store::appender`]).
//!
//! The writer connection is the only one, so nothing can take a sequence number between the
//! batch's read and its write, and plaintext never reaches SQLite. A batch is four statements
//! whatever its size: `BEGIN IMMEDIATE`; every append's target (its conversation, last
//! sequence number and data key, where the ticket still allows the append, and whether its
//! client id was used before); one `INSERT` of every sealed message, each conversation's
//! numbered on from its last; `COMMIT`. The batch goes to SQLite as one JSON parameter,
//! SQLite's nearest to an array, since every statement is a round trip to the connection's
//! own thread.
//!
//! Should that `INSERT` skip a row after all, the transaction is rolled back and the batch
//! written again one append at a time, each statement checking its own.

use super::{insert_sealed, is_unique_violation, seal_message};
use crate::store::appender::{Appender, Job, Outcome, Target, WriteBatch};
use crate::store::rules::{seal_batch, Found};
use crate::store::{StoreError, StoreResult};
use crate::vault::Vault;
use serde::Serialize;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection};
use std::collections::HashSet;
use std::sync::Arc;

struct Batches {
    writer: SqlitePool,
    vault: Arc<Vault>,
}

/// Starts the appender on the writer connection.
pub(super) fn start(writer: SqlitePool, vault: Arc<Vault>) -> Appender {
    Appender::start(Batches { writer, vault })
}

impl WriteBatch for Batches {
    async fn write(&self, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
        match write(&self.writer, &self.vault, jobs).await? {
            Some(out) => Ok(out),
            None => write_each(&self.writer, &self.vault, jobs).await,
        }
    }
}

/// Every job's target, where its ticket still allows it: the customer's conversation while
/// the ticket is queued or assigned, or the conversation of a ticket assigned to the agent;
/// `used` when the job's author used its client id before. `n` is the job's place in the
/// batch, from 0. `CROSS JOIN` keeps the batch the outer loop, each job a lookup by key.
const TARGETS: &str = "SELECT j.key AS n, c.id, c.last_seq, dk.key_version AS conv_key_version, \
     dk.wrapped AS conv_key, EXISTS (SELECT 1 FROM messages m \
       WHERE m.author_kind = j.value ->> 'kind' AND m.author_id = j.value ->> 'author' \
       AND m.client_id = j.value ->> 'client_id') AS used \
     FROM json_each(?1) j CROSS JOIN tickets t ON t.id = j.value ->> 'ticket' \
     JOIN conversations c ON c.ticket_id = t.id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id \
     WHERE CASE WHEN j.value ->> 'agent' IS NULL \
       THEN c.id = j.value ->> 'conversation' AND t.customer_id = j.value ->> 'customer' \
            AND t.status IN ('queued', 'assigned') \
       ELSE t.agent_id = j.value ->> 'agent' AND t.status = 'assigned' END";

/// Every sealed message of the batch, in the batch's order (the trigger of migration 0003
/// sets each conversation's `last_seq` to the row it inserts); the sealed columns in hex.
/// (`WHERE true` tells SQLite's parser that `ON CONFLICT` is not a join's.)
const INSERT_ALL: &str = "INSERT INTO messages \
     (conversation_id, seq, at, author_kind, author_id, author_name, body, client_id, blocked) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
       unhex(value ->> 5), unhex(value ->> 6), value ->> 7, value ->> 8 \
     FROM json_each(?1) WHERE true ORDER BY key \
     ON CONFLICT DO NOTHING";

/// A job as [`TARGETS`] reads it, one object of the batch's array; a field that does not
/// apply is `null`.
#[derive(Serialize)]
struct Wanted<'j> {
    conversation: Option<i64>,
    ticket: i64,
    customer: Option<i64>,
    agent: Option<i64>,
    kind: &'static str,
    author: Option<i64>,
    client_id: &'j str,
}

impl Wanted<'_> {
    fn of(job: &Job) -> Wanted<'_> {
        let (conversation, ticket, customer, agent) = job.target.columns();
        Wanted {
            conversation,
            ticket,
            customer,
            agent,
            kind: job.author.kind.as_str(),
            author: job.author.id,
            client_id: &job.client_id,
        }
    }
}

/// A row of [`INSERT_ALL`], one array of the batch's array, in its columns' order.
type Sealed<'j> = (
    i64,
    i64,
    i64,
    &'static str,
    Option<i64>,
    String,
    String,
    &'j str,
    i64,
);

fn json(batch: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(batch).map_err(|e| StoreError::Unavailable(format!("batch: {e}")))
}

/// Every job's target, and the places of the jobs whose client id was used before.
async fn targets(
    conn: &mut SqliteConnection,
    jobs: &[Job],
) -> StoreResult<(Vec<Option<Found<SqliteRow>>>, HashSet<usize>)> {
    let batch: Vec<Wanted<'_>> = jobs.iter().map(Wanted::of).collect();
    let rows = sqlx::query(TARGETS)
        .bind(json(&batch)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut found: Vec<Option<Found<SqliteRow>>> = jobs.iter().map(|_| None).collect();
    let mut used = HashSet::new();
    for row in rows {
        let Some(i) = usize::try_from(row.try_get::<i64, _>("n")?).ok() else {
            continue;
        };
        if row.try_get("used")? {
            used.insert(i);
        }
        if let Some(slot) = found.get_mut(i) {
            *slot = Some(Found::of(row)?);
        }
    }
    Ok((found, used))
}

/// Writes the batch in one transaction of four statements; `None` when the `INSERT` skipped
/// a row, and nothing was written.
async fn write(
    pool: &SqlitePool,
    vault: &Vault,
    jobs: &[Job],
) -> StoreResult<Option<Vec<Outcome>>> {
    // IMMEDIATE: the batch reads (last seq, data key) before it writes, and a read transaction
    // that must then become a write one fails at once with SQLITE_BUSY if a checkpoint holds
    // the lock; taking the write lock first lets the busy timeout wait instead.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (found, used) = targets(&mut tx, jobs).await?;
    let (out, sealed) = seal_batch(vault, jobs, &found, |i| used.contains(&i));
    let rows: Vec<Sealed<'_>> = sealed
        .iter()
        .map(|(message, job)| {
            (
                message.conversation.0,
                message.seq.0,
                job.now.0,
                job.author.kind.as_str(),
                job.author.id,
                hex::encode(&message.author),
                hex::encode(&message.body),
                job.client_id.as_str(),
                i64::from(job.blocked),
            )
        })
        .collect();
    if !rows.is_empty() {
        let expected = rows.len() as u64;
        let done = sqlx::query(INSERT_ALL)
            .bind(json(&rows)?)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != expected {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    tx.commit().await?;
    Ok(Some(out))
}

/// Writes one batch in one transaction, a statement pair per append. A statement refused by a
/// constraint (a reused client id) is undone alone, as SQLite does by default; any other
/// failure fails the whole batch.
async fn write_each(pool: &SqlitePool, vault: &Vault, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let msg = job.message();
        let target = match job.target {
            Target::OpenTicket {
                conversation,
                ticket,
                customer,
            } => sqlx::query(super::TARGET_CUSTOMER_OPEN)
                .bind(conversation.0)
                .bind(ticket.0)
                .bind(customer.0),
            Target::HeldTicket { ticket, agent } => sqlx::query(super::TARGET_AGENT_HELD)
                .bind(ticket.0)
                .bind(agent.0),
        };
        let Some(row) = target.fetch_optional(&mut *tx).await? else {
            out.push(None);
            continue;
        };
        let Ok(sealed) = seal_message(vault, &row, &msg) else {
            out.push(None);
            continue;
        };
        match insert_sealed(&sealed, &msg, Some(&job.client_id), job.now)
            .execute(&mut *tx)
            .await
        {
            Ok(_) => out.push(Some((sealed.conversation, sealed.seq))),
            Err(e) if is_unique_violation(&e) => out.push(None),
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(out)
}
