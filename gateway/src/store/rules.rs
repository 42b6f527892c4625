//! What both engines decide the same way around a write: a new ticket's subject, who may
//! write to an assigned ticket, a message sealed as its conversation's next record, and a
//! batch of appends numbered and sealed at once.

use super::appender::{Job, Outcome};
use super::rows::{row_key, vault_err, Cols};
use super::*;
use crate::vault::{self as sealing, KeyOwner, Vault};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The subject of a new ticket: the first line of its first message, shortened.
pub(super) fn subject_of(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut s: String = line.chars().take(120).collect();
    if line.chars().count() > 120 {
        s.push('…');
    }
    s
}

/// A message sealed as record `seq` of its conversation, ready to insert.
pub(super) struct SealedMessage {
    pub(super) conversation: ConversationId,
    pub(super) seq: Seq,
    pub(super) author: Vec<u8>,
    pub(super) body: Vec<u8>,
}

/// Seals the message's body and author name under the conversation's data key, as the
/// record after the conversation's last one. `target` is a row of one of the `TARGET_*`
/// statements.
pub(super) fn seal_message(
    vault: &Vault,
    target: &impl Cols,
    msg: &NewMessage<'_>,
) -> StoreResult<SealedMessage> {
    let conversation = ConversationId(target.col("id")?);
    let seq = Seq(target.col::<i64>("last_seq")? + 1);
    let key = conversation_key(vault, target, conversation)?;
    seal_message_as(vault, &key, conversation, seq, msg)
}

/// The data key of `conversation`, from a row holding its wrapped key as `conv_key…`.
pub(super) fn conversation_key(
    vault: &Vault,
    target: &impl Cols,
    conversation: ConversationId,
) -> StoreResult<Arc<recorder::DataKey>> {
    let owner = KeyOwner::conversation(conversation.0);
    row_key(vault, target, &owner, "conv")?.ok_or(StoreError::Conflict(
        "the conversation's transcript was deleted",
    ))
}

/// Seals the message's body and author name under `key` as record `seq` of `conversation`.
pub(super) fn seal_message_as(
    vault: &Vault,
    key: &recorder::DataKey,
    conversation: ConversationId,
    seq: Seq,
    msg: &NewMessage<'_>,
) -> StoreResult<SealedMessage> {
    let owner = KeyOwner::conversation(conversation.0);
    let seal = |kind, text: &str| {
        vault
            .seal(key, &owner, seq.0, kind, text)
            .map_err(vault_err)
    };
    Ok(SealedMessage {
        conversation,
        seq,
        author: seal(sealing::MESSAGE_AUTHOR, &msg.author.name)?,
        body: seal(sealing::MESSAGE_BODY, msg.text)?,
    })
}

/// A job's target, as an engine's batch statement found it: the conversation, its last
/// sequence number, and the row that holds its wrapped key (`conv_key…`).
pub(super) struct Found<R> {
    pub(super) conversation: ConversationId,
    pub(super) last_seq: i64,
    pub(super) row: R,
}

impl<R: Cols> Found<R> {
    /// The target a row of an engine's batch statement names (`id`, `last_seq`, `conv_key…`).
    pub(super) fn of(row: R) -> StoreResult<Found<R>> {
        Ok(Found {
            conversation: ConversationId(row.col("id")?),
            last_seq: row.col("last_seq")?,
            row,
        })
    }
}

/// A batch of appends decided at once: one outcome per job, and every message to write,
/// sealed as the record after its conversation's last (and after the batch's earlier ones).
/// A job gets `None`, for the caller's slower path to say why, when it has no target, its
/// client id was `used` before or comes twice in the batch, or its key cannot be had.
pub(super) fn seal_batch<'j, R: Cols>(
    vault: &Vault,
    jobs: &'j [Job],
    found: &[Option<Found<R>>],
    used: impl Fn(usize) -> bool,
) -> (Vec<Outcome>, Vec<(SealedMessage, &'j Job)>) {
    let mut next: HashMap<ConversationId, i64> = HashMap::new();
    let mut taken = HashSet::new();
    let mut sealed = Vec::with_capacity(jobs.len());
    let mut out = Vec::with_capacity(jobs.len());
    for (i, (job, found)) in jobs.iter().zip(found).enumerate() {
        let fresh = taken.insert((job.author.kind.as_str(), job.author.id, &job.client_id));
        let Some(found) = found.as_ref().filter(|_| fresh && !used(i)) else {
            out.push(None);
            continue;
        };
        // (The vault keeps unwrapped keys: the conversation's next message finds it there.)
        let Ok(key) = conversation_key(vault, &found.row, found.conversation) else {
            out.push(None);
            continue;
        };
        let seq = next.entry(found.conversation).or_insert(found.last_seq);
        let msg = job.message();
        let Ok(message) = seal_message_as(vault, &key, found.conversation, Seq(*seq + 1), &msg)
        else {
            out.push(None);
            continue;
        };
        *seq += 1;
        out.push(Some((message.conversation, message.seq)));
        sealed.push((message, job));
    }
    (out, sealed)
}

pub(super) fn stored(
    conversation: ConversationId,
    seq: Seq,
    msg: &NewMessage<'_>,
    client_id: Option<&str>,
    now: Timestamp,
) -> Message {
    Message {
        conversation,
        seq,
        at: now,
        from: msg.author.clone(),
        text: msg.text.to_string(),
        client_id: client_id.map(str::to_string),
        blocked: msg.blocked,
        attachment: None,
    }
}

pub(super) fn system_author() -> Author {
    Author {
        kind: AuthorKind::System,
        id: None,
        name: "deskgate".into(),
    }
}

/// Checks that the ticket is assigned, and to this agent.
pub(super) fn held_by(ticket: &Ticket, agent: UserId) -> StoreResult<()> {
    if ticket.agent.as_ref().map(|a| a.id) != Some(agent) {
        return Err(StoreError::Forbidden);
    }
    if ticket.status != TicketStatus::Assigned {
        return Err(StoreError::Conflict("ticket is not assigned"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_first_non_empty_line_shortened() {
        assert_eq!(subject_of("\n  Hello there \nsecond"), "Hello there");
        let long = "x".repeat(200);
        assert_eq!(subject_of(&long).chars().count(), 121);
    }
}
