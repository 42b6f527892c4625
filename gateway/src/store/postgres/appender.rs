//! Group commit for the common append: a message to an open ticket. Appends that arrive while a
//! transaction is being written wait, then go together in the next one, so the database
//! writes each changed page once per batch instead of once per message. Every append still
//! gets its own outcome, and none is answered before its batch is committed.
//!
//! Each append reads its conversation's last sequence number and data key, seals the message
//! as the next record, and inserts the ciphertext: the batch holds the write lock, so no node
//! can take that sequence number in between, and plaintext never reaches PostgreSQL.

use super::{begin_write, seal_message, NewMessage};
use crate::clock::Timestamp;
use crate::ids::{ConversationId, CustomerId, Seq, TicketId, UserId};
use crate::store::{Author, StoreError, StoreResult};
use crate::vault::Vault;
use sqlx::postgres::PgPool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Appends written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Appends waiting for the writer at most; beyond that senders wait for room.
const QUEUE: usize = 4096;

/// Where a fast append may go; the statement checks it is still allowed.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    /// The customer's conversation, while its ticket is queued or assigned.
    OpenTicket {
        conversation: ConversationId,
        ticket: TicketId,
        customer: CustomerId,
    },
    /// A ticket, while it is assigned to this agent.
    HeldTicket { ticket: TicketId, agent: UserId },
}

/// A message to append, owned so it can wait in the queue.
pub(super) struct Job {
    pub target: Target,
    pub author: Author,
    pub text: String,
    pub client_id: String,
    pub blocked: bool,
    pub now: Timestamp,
    /// `Some((conversation, seq))` once committed; `None` when the target does not allow it or
    /// the client id was used before, for the caller's slower path to sort out.
    reply: oneshot::Sender<StoreResult<Option<(ConversationId, Seq)>>>,
}

#[derive(Clone)]
pub(super) struct Appender {
    tx: mpsc::Sender<Job>,
}

impl Appender {
    pub fn start(pool: PgPool, vault: Arc<Vault>) -> Appender {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, vault, rx));
        Appender { tx }
    }

    pub async fn append(
        &self,
        target: Target,
        msg: &NewMessage<'_>,
        now: Timestamp,
    ) -> StoreResult<Option<(ConversationId, Seq)>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            target,
            author: msg.author.clone(),
            text: msg.text.to_string(),
            client_id: msg.client_id.to_string(),
            blocked: msg.blocked,
            now,
            reply,
        };
        let gone = || StoreError::Unavailable("the store's writer has stopped".into());
        self.tx.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(pool: PgPool, vault: Arc<Vault>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match write(&pool, &vault, &jobs).await {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                let message = match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                };
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Writes one batch in one transaction. A message whose client id was used before is skipped
/// by `ON CONFLICT DO NOTHING` (a failed statement would abort the whole transaction in
/// PostgreSQL); any other failure fails the whole batch.
async fn write(
    pool: &PgPool,
    vault: &Vault,
    jobs: &[Job],
) -> StoreResult<Vec<Option<(ConversationId, Seq)>>> {
    let mut tx = begin_write(pool).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let msg = NewMessage {
            author: job.author.clone(),
            text: &job.text,
            client_id: &job.client_id,
            blocked: job.blocked,
            attachment: None,
        };
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
        let done = sealed
            .insert(&msg, Some(&job.client_id), job.now)
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
