//! How the PostgreSQL store writes a batch of appends ([`crate::store::appender`]).
//!
//! The batch holds its tickets' keys, so no node can take a sequence number of theirs in
//! between, and plaintext never reaches PostgreSQL. It is four statements whatever its size:
//! the locks; every append's target (its conversation, last sequence number and data key,
//! where the ticket still allows the append); which client ids were used before; and one
//! `INSERT` of every sealed message, each conversation's numbered on from its last. A round
//! trip per message is what bounds one node's appends otherwise.
//!
//! Should that `INSERT` skip a row after all (a client id taken since the check), the
//! transaction is rolled back and the batch written again one append at a time, each
//! statement checking its own.

use super::{begin_keyed, insert_sealed, seal_message, Key};
use crate::store::appender::{Appender, Job, Outcome, Target, WriteBatch};
use crate::store::rules::{seal_batch, Found, SealedMessage};
use crate::store::StoreResult;
use crate::vault::Vault;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};
use std::collections::HashSet;
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
        match write(&self.pool, &self.vault, jobs).await? {
            Some(out) => Ok(out),
            None => write_each(&self.pool, &self.vault, jobs).await,
        }
    }
}

fn keys(jobs: &[Job]) -> Vec<Key> {
    jobs.iter()
        .map(|job| match job.target {
            Target::OpenTicket { ticket, .. } | Target::HeldTicket { ticket, .. } => {
                Key::Ticket(ticket)
            }
        })
        .collect()
}

/// Every job's target, where its ticket still allows it: the customer's conversation while
/// the ticket is queued or assigned, or the conversation of a ticket assigned to the agent.
/// `n` is the job's place in the batch, from 1.
const TARGETS: &str = "SELECT j.n, c.id, c.last_seq, dk.key_version AS conv_key_version, \
     dk.wrapped AS conv_key \
     FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) \
       WITH ORDINALITY AS j(conversation, ticket, customer, agent, n) \
     JOIN tickets t ON t.id = j.ticket \
     JOIN conversations c ON c.ticket_id = t.id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id \
     WHERE CASE WHEN j.agent IS NULL \
       THEN c.id = j.conversation AND t.customer_id = j.customer \
            AND t.status IN ('queued', 'assigned') \
       ELSE t.agent_id = j.agent AND t.status = 'assigned' END";

/// The jobs whose author used their client id before.
const USED: &str = "SELECT j.n FROM unnest($1::text[], $2::int8[], $3::text[]) \
       WITH ORDINALITY AS j(kind, author, client_id, n) \
     WHERE EXISTS (SELECT 1 FROM messages m WHERE m.author_kind = j.kind \
       AND m.author_id = j.author AND m.client_id = j.client_id)";

/// Every sealed message of the batch; the trigger of migration 0003 runs for each row.
const INSERT_ALL: &str = "INSERT INTO messages \
     (conversation_id, seq, at, author_kind, author_id, author_name, body, client_id, blocked) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[], \
       $6::bytea[], $7::bytea[], $8::text[], $9::bool[]) \
     ON CONFLICT DO NOTHING";

/// The columns of [`INSERT_ALL`], a vector each.
#[derive(Default)]
struct Rows {
    conversation: Vec<i64>,
    seq: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    author: Vec<Option<i64>>,
    name: Vec<Vec<u8>>,
    body: Vec<Vec<u8>>,
    client_id: Vec<String>,
    blocked: Vec<bool>,
}

impl Rows {
    fn push(&mut self, sealed: SealedMessage, job: &Job) {
        self.conversation.push(sealed.conversation.0);
        self.seq.push(sealed.seq.0);
        self.at.push(job.now.0);
        self.kind.push(job.author.kind.as_str());
        self.author.push(job.author.id);
        self.name.push(sealed.author);
        self.body.push(sealed.body);
        self.client_id.push(job.client_id.clone());
        self.blocked.push(job.blocked);
    }
}

async fn targets(conn: &mut PgConnection, jobs: &[Job]) -> StoreResult<Vec<Option<Found<PgRow>>>> {
    let (mut conversations, mut tickets, mut customers, mut agents) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for job in jobs {
        let (conversation, ticket, customer, agent) = job.target.columns();
        conversations.push(conversation);
        tickets.push(ticket);
        customers.push(customer);
        agents.push(agent);
    }
    let rows = sqlx::query(TARGETS)
        .bind(conversations)
        .bind(tickets)
        .bind(customers)
        .bind(agents)
        .fetch_all(&mut *conn)
        .await?;
    let mut found: Vec<Option<Found<PgRow>>> = jobs.iter().map(|_| None).collect();
    for row in rows {
        let n: i64 = row.try_get("n")?;
        let slot = usize::try_from(n - 1).ok().and_then(|i| found.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(Found::of(row)?);
        }
    }
    Ok(found)
}

async fn used_client_ids(conn: &mut PgConnection, jobs: &[Job]) -> StoreResult<HashSet<usize>> {
    let kinds: Vec<&str> = jobs.iter().map(|j| j.author.kind.as_str()).collect();
    let authors: Vec<Option<i64>> = jobs.iter().map(|j| j.author.id).collect();
    let ids: Vec<&str> = jobs.iter().map(|j| j.client_id.as_str()).collect();
    let used: Vec<i64> = sqlx::query_scalar(USED)
        .bind(kinds)
        .bind(authors)
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(used
        .into_iter()
        .filter_map(|n| usize::try_from(n - 1).ok())
        .collect())
}

/// Writes the batch in one transaction of four statements; `None` when the `INSERT` skipped
/// a row, and nothing was written.
async fn write(pool: &PgPool, vault: &Vault, jobs: &[Job]) -> StoreResult<Option<Vec<Outcome>>> {
    let mut tx = begin_keyed(pool, &keys(jobs)).await?;
    let found = targets(&mut tx, jobs).await?;
    let used = used_client_ids(&mut tx, jobs).await?;
    let (out, sealed) = seal_batch(vault, jobs, &found, |i| used.contains(&i));
    let mut rows = Rows::default();
    for (message, job) in sealed {
        rows.push(message, job);
    }
    if !rows.seq.is_empty() {
        let expected = rows.seq.len() as u64;
        let done = sqlx::query(INSERT_ALL)
            .bind(rows.conversation)
            .bind(rows.seq)
            .bind(rows.at)
            .bind(rows.kind)
            .bind(rows.author)
            .bind(rows.name)
            .bind(rows.body)
            .bind(rows.client_id)
            .bind(rows.blocked)
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

/// Writes one batch in one transaction, a statement pair per append. A message whose client
/// id was used before is skipped by `ON CONFLICT DO NOTHING` (a failed statement would abort
/// the whole transaction in PostgreSQL); any other failure fails the whole batch.
async fn write_each(pool: &PgPool, vault: &Vault, jobs: &[Job]) -> StoreResult<Vec<Outcome>> {
    let mut tx = begin_keyed(pool, &keys(jobs)).await?;
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
