//! How the PostgreSQL store writes a batch of appends ([`crate::store::appender`]).
//!
//! Each append reads its conversation's last sequence number and data key, seals the message
//! as the next record, and inserts the ciphertext: the batch holds its tickets' keys, so no node
//! can take that sequence number in between, and plaintext never reaches PostgreSQL.

use super::{begin_keyed, insert_sealed, seal_message, Key};
use crate::store::appender::{Appender, Job, Outcome, Target, WriteBatch};
use crate::store::StoreResult;
use crate::vault::Vault;
use sqlx::postgres::PgPool;
use std::sync::Arc;

struct Batches {
    pool: PgPool,
    vault: Arc<Vault>,
}

/// Starts the appender on the node's pool.
pub(super) fn start(pool: PgPool, vault: Arc<Vault>) -> Appender {
    Appender::start(Batches { pool, vault })
}

impl WriteBatch for Batches {
    async fn write(&self, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
        write(&self.pool, &self.vault, jobs).await
    }
}

/// Writes one batch in one transaction. A message whose client id was used before is skipped
/// by `ON CONFLICT DO NOTHING` (a failed statement would abort the whole transaction in
/// PostgreSQL); any other failure fails the whole batch.
async fn write(pool: &PgPool, vault: &Vault, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
    let keys: Vec<Key> = jobs
        .iter()
        .map(|job| match job.target {
            Target::OpenTicket { ticket, .. } | Target::HeldTicket { ticket, .. } => {
                Key::Ticket(ticket)
            }
        })
        .collect();
    let mut tx = begin_keyed(pool, &keys).await?;
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
        let done = insert_sealed(&sealed, &msg, Some(&job.client_id), job.now)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            out.push(Some((sealed.conversation, sealed.seq)));
        } else {
            out.push(None);
        }
    }
    tx.commit().await?;
    Ok(out)
}
