//! Group commit for the common append: a message to an open ticket. Appends that arrive while a
//! transaction is being written wait, then go together in the next one, so the database
//! writes each changed page once per batch instead of once per message. Every append still
//! gets its own outcome, and none is answered before its batch is committed.

use super::{bind_message, is_unique_violation, NewMessage};
use crate::clock::Timestamp;
use crate::ids::{ConversationId, CustomerId, Seq, TicketId, UserId};
use crate::store::{Author, StoreError, StoreResult};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;
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
    pub fn start(pool: SqlitePool) -> Appender {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
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

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match write(&pool, &jobs).await {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Writes one batch in one transaction. A statement refused by a constraint (a reused client
/// id) is undone alone, as SQLite does by default; any other failure fails the whole batch.
async fn write(
    pool: &SqlitePool,
    jobs: &[Job],
) -> Result<Vec<Option<(ConversationId, Seq)>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let msg = NewMessage {
            author: job.author.clone(),
            text: &job.text,
            client_id: &job.client_id,
            blocked: job.blocked,
        };
        let query = match job.target {
            Target::OpenTicket {
                conversation,
                ticket,
                customer,
            } => bind_message(
                super::APPEND_CUSTOMER_OPEN,
                &msg,
                Some(&job.client_id),
                job.now,
            )
            .bind(conversation.0)
            .bind(ticket.0)
            .bind(customer.0),
            Target::HeldTicket { ticket, agent } => bind_message(
                super::APPEND_AGENT_HELD,
                &msg,
                Some(&job.client_id),
                job.now,
            )
            .bind(ticket.0)
            .bind(agent.0),
        };
        match query.fetch_optional(&mut *tx).await {
            Ok(Some(row)) => out.push(Some((
                ConversationId(row.try_get("conversation_id")?),
                Seq(row.try_get("seq")?),
            ))),
            Ok(None) => out.push(None),
            Err(e) if is_unique_violation(&e) => out.push(None),
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    Ok(out)
}
