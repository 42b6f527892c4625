//! How the SQLite store writes a batch of appends ([`crate::store::appender`]).
//!
//! Each append reads its conversation's last sequence number and data key, seals the message
//! as the next record, and inserts the ciphertext: the writer connection is the only one, so
//! nothing can take that sequence number in between, and plaintext never reaches SQLite.

use super::{insert_sealed, is_unique_violation, restart_log, seal_message, RestartDue};
use crate::store::appender::{Appender, Job, Outcome, Target, WriteBatch};
use crate::store::StoreResult;
use crate::vault::Vault;
use sqlx::sqlite::SqlitePool;
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct Batches {
    writer: SqlitePool,
    vault: Arc<Vault>,
    /// The checkpointer's request that the log start over, run before the next batch.
    restart: RestartDue,
}

/// Starts the appender on the writer connection.
pub(super) fn start(writer: SqlitePool, vault: Arc<Vault>, restart: RestartDue) -> Appender {
    Appender::start(Batches {
        writer,
        vault,
        restart,
    })
}

impl WriteBatch for Batches {
    async fn write(&self, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
        if self.restart.swap(false, Ordering::AcqRel) {
            restart_log(&self.writer).await;
        }
        write(&self.writer, &self.vault, jobs).await
    }
}

/// Writes one batch in one transaction. A statement refused by a constraint (a reused client
/// id) is undone alone, as SQLite does by default; any other failure fails the whole batch.
async fn write(pool: &SqlitePool, vault: &Vault, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
    // IMMEDIATE: the batch reads (last seq, data key) before it writes, and a read transaction
    // that must then become a write one fails at once with SQLITE_BUSY if a checkpoint holds
    // the lock; taking the write lock first lets the busy timeout wait instead.
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
        // A key that cannot be had fails this append alone; the caller's slower path
        // reports why.
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
