//! Group commit for the common append: a message to an open ticket. Appends that arrive while a
//! transaction is being written wait, then go together in the next one, so the database
//! writes each changed page once per batch instead of once per message. Every append still
//! gets its own outcome, and none is answered before its batch is committed.
//!
//! The queue and its batching are the same for both engines; how a batch is written in one
//! transaction, and what keeps its sequence numbers from being taken in between, is each
//! engine's own ([`WriteBatch`]).

use super::NewMessage;
use crate::clock::Timestamp;
use crate::ids::{ConversationId, CustomerId, Seq, TicketId, UserId};
use crate::store::{Author, StoreError, StoreResult};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// What an append came to: `Some((conversation, seq))` once committed; `None` when the target
/// does not allow it or the client id was used before, for the caller's slower path to sort
/// out.
pub(super) type Outcome = Option<(ConversationId, Seq)>;

/// An engine's way of writing one batch of appends in one transaction, one outcome per job
/// in order; an error fails the whole batch.
pub(super) trait WriteBatch: Send + Sync + 'static {
    fn write(&self, jobs: &[Job]) -> impl Future<Output = StoreResult<Vec<Outcome>>> + Send;
}

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

impl Target {
    /// The target as the engines' batch statements take it: conversation, ticket, customer
    /// and agent, `None` where it does not apply.
    pub fn columns(&self) -> (Option<i64>, i64, Option<i64>, Option<i64>) {
        match *self {
            Target::OpenTicket {
                conversation,
                ticket,
                customer,
            } => (Some(conversation.0), ticket.0, Some(customer.0), None),
            Target::HeldTicket { ticket, agent } => (None, ticket.0, None, Some(agent.0)),
        }
    }
}

/// A message to append, owned so it can wait in the queue.
pub(super) struct Job {
    pub target: Target,
    pub author: Author,
    pub text: String,
    pub client_id: String,
    pub blocked: bool,
    pub now: Timestamp,
    /// Where the outcome goes once the batch is committed or has failed.
    reply: oneshot::Sender<StoreResult<Outcome>>,
}

#[derive(Clone)]
pub(super) struct Appender {
    tx: mpsc::Sender<Job>,
}

impl Appender {
    pub fn start(writer: impl WriteBatch) -> Appender {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, rx));
        Appender { tx }
    }

    pub async fn append(
        &self,
        target: Target,
        msg: &NewMessage<'_>,
        now: Timestamp,
    ) -> StoreResult<Outcome> {
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

async fn run(writer: impl WriteBatch, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match writer.write(&jobs).await {
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

impl Job {
    /// The message this job appends, as the engines' statements take it.
    pub fn message(&self) -> NewMessage<'_> {
        NewMessage {
            author: self.author.clone(),
            text: &self.text,
            client_id: &self.client_id,
            blocked: self.blocked,
            attachment: None,
        }
    }
}
