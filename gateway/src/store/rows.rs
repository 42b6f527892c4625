//! What both engines select and how a row becomes a value: the same columns, the same sealed
//! values and the same corrupt-row errors, whichever database the row came from. The queries
//! that differ (placeholders, locking, SQL dialect) stay with their engine.

use super::*;
use crate::vault::{self as sealing, KeyOwner, Vault};
use recorder::audit::ObjectRef;
use recorder::grant::Grant;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Decode, Row, Type};
use std::sync::Arc;
use verify::store::{TotpFactor, VerifyStoreError, VerifyStoreResult};
use verify::Challenge;

/// A value either engine can decode from a column.
pub(super) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either engine, read by column name.
pub(super) trait Cols {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error>;
}

impl Cols for SqliteRow {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

impl Cols for PgRow {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

/// Columns of a ticket as every ticket-returning query selects them, with the wrapped data
/// keys of its conversation (subject) and customer (name).
pub(super) const TICKET_SELECT: &str =
    "SELECT t.id, c.id AS conversation, t.kind, t.status, t.priority, t.subject, \
     t.customer_id, cu.name AS customer_name, cu.verified, t.agent_id, u.name AS agent_name, \
     t.created_at, t.queued_at, t.first_response_at, t.resolved_at, t.closed_at, \
     c.last_seq, c.customer_read_seq, c.agent_read_seq, \
     vk.key_version AS conv_key_version, vk.wrapped AS conv_key, \
     ck.key_version AS cust_key_version, ck.wrapped AS cust_key \
     FROM tickets t JOIN conversations c ON c.ticket_id = t.id \
     JOIN customers cu ON cu.id = t.customer_id LEFT JOIN users u ON u.id = t.agent_id \
     LEFT JOIN data_keys vk ON vk.owner = 'conversation:' || c.id \
     LEFT JOIN data_keys ck ON ck.owner = 'customer:' || cu.id";

pub(super) const MESSAGE_SELECT: &str =
    "SELECT conversation_id, seq, at, author_kind, author_id, author_name, body, client_id, blocked, \
     dk.key_version AS conv_key_version, dk.wrapped AS conv_key, \
     a.id AS att_id, a.content_type AS att_type, a.size AS att_size FROM messages \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || conversation_id \
     LEFT JOIN attachments a USING (conversation_id, seq)";

pub(super) const USER_SELECT: &str =
    "SELECT id, username, name, role, capacity, active, created_at FROM users";

pub(super) const CUSTOMER_SELECT: &str =
    "SELECT customers.id, site, external_id, name, email, phone, verified, customers.created_at, \
     dk.key_version AS cust_key_version, dk.wrapped AS cust_key FROM customers \
     LEFT JOIN data_keys dk ON dk.owner = 'customer:' || customers.id";

/// A note with its author's name and its conversation's wrapped data key.
pub(super) const NOTE_SELECT: &str = "SELECT n.id, n.ticket_id, n.at, n.author_id, u.name, n.body, n.client_id, \
     c.id AS conversation, dk.key_version AS conv_key_version, dk.wrapped AS conv_key \
     FROM notes n JOIN users u ON u.id = n.author_id JOIN conversations c ON c.ticket_id = n.ticket_id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id";

pub(super) fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

pub(super) fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

pub(super) fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> StoreResult<T> {
    s.parse()
        .map_err(|e: String| StoreError::Unavailable(format!("corrupt row: {e}")))
}

pub(super) fn vault_err(e: sealing::VaultError) -> StoreError {
    StoreError::Unavailable(format!("vault: {e}"))
}

/// The data key of `owner` from the row's `<prefix>_key_version` and `<prefix>_key` columns;
/// `None` once retention destroyed it.
pub(super) fn row_key(
    vault: &Vault,
    r: &impl Cols,
    owner: &KeyOwner,
    prefix: &str,
) -> StoreResult<Option<Arc<recorder::DataKey>>> {
    let version: Option<i64> = r.col(format!("{prefix}_key_version").as_str())?;
    let bytes: Option<Vec<u8>> = r.col(format!("{prefix}_key").as_str())?;
    match vault.data_key(owner, sealing::wrapped(version, bytes)) {
        Ok(k) => Ok(Some(k)),
        Err(sealing::VaultError::NoKey(_)) => Ok(None),
        Err(e) => Err(vault_err(e)),
    }
}

/// Opens a sealed column, or gives the placeholder when the key was destroyed.
pub(super) fn open_col(
    vault: &Vault,
    key: Option<&recorder::DataKey>,
    owner: &KeyOwner,
    seq: i64,
    kind: recorder::RecordKind,
    sealed: &[u8],
) -> StoreResult<String> {
    match key {
        Some(k) => vault
            .open_text(k, owner, seq, kind, sealed)
            .map_err(vault_err),
        None => Ok(sealing::SHREDDED.to_string()),
    }
}

/// Opens an optional sealed column; once the key was destroyed the value is simply absent
/// (a shredded customer has no email or phone any more).
pub(super) fn open_opt(
    vault: &Vault,
    key: Option<&recorder::DataKey>,
    owner: &KeyOwner,
    kind: recorder::RecordKind,
    sealed: Option<Vec<u8>>,
) -> StoreResult<Option<String>> {
    if key.is_none() {
        return Ok(None);
    }
    sealed
        .map(|b| open_col(vault, key, owner, 0, kind, &b))
        .transpose()
}

pub(super) fn ticket_from_row(vault: &Vault, r: &impl Cols) -> StoreResult<Ticket> {
    let agent_id: Option<i64> = r.col("agent_id")?;
    let agent_name: Option<String> = r.col("agent_name")?;
    let conversation = ConversationId(r.col("conversation")?);
    let customer = CustomerId(r.col("customer_id")?);
    let conv_owner = KeyOwner::conversation(conversation.0);
    let cust_owner = KeyOwner::customer(customer.0);
    let conv_key = row_key(vault, r, &conv_owner, "conv")?;
    let cust_key = row_key(vault, r, &cust_owner, "cust")?;
    let subject: Vec<u8> = r.col("subject")?;
    let customer_name: Vec<u8> = r.col("customer_name")?;
    Ok(Ticket {
        id: TicketId(r.col("id")?),
        conversation,
        kind: parse(&r.col::<String>("kind")?)?,
        status: parse(&r.col::<String>("status")?)?,
        priority: parse(&r.col::<String>("priority")?)?,
        subject: open_col(
            vault,
            conv_key.as_deref(),
            &conv_owner,
            0,
            sealing::TICKET_SUBJECT,
            &subject,
        )?,
        customer: CustomerRef {
            id: customer,
            name: open_col(
                vault,
                cust_key.as_deref(),
                &cust_owner,
                0,
                sealing::CUSTOMER_NAME,
                &customer_name,
            )?,
            verified: r.col("verified")?,
        },
        agent: agent_id.map(|id| AgentRef {
            id: UserId(id),
            name: agent_name.unwrap_or_default(),
        }),
        created_at: ts(r.col("created_at")?),
        queued_at: ts(r.col("queued_at")?),
        first_response_at: opt_ts(r.col("first_response_at")?),
        resolved_at: opt_ts(r.col("resolved_at")?),
        closed_at: opt_ts(r.col("closed_at")?),
        last_seq: Seq(r.col("last_seq")?),
        customer_read_seq: Seq(r.col("customer_read_seq")?),
        agent_read_seq: Seq(r.col("agent_read_seq")?),
    })
}

pub(super) fn message_from_row(vault: &Vault, r: &impl Cols) -> StoreResult<Message> {
    let conversation = ConversationId(r.col("conversation_id")?);
    let seq: i64 = r.col("seq")?;
    let owner = KeyOwner::conversation(conversation.0);
    let key = row_key(vault, r, &owner, "conv")?;
    let body: Vec<u8> = r.col("body")?;
    let author: Vec<u8> = r.col("author_name")?;
    Ok(Message {
        conversation,
        seq: Seq(seq),
        at: ts(r.col("at")?),
        from: Author {
            kind: parse(&r.col::<String>("author_kind")?)?,
            id: r.col("author_id")?,
            name: open_col(
                vault,
                key.as_deref(),
                &owner,
                seq,
                sealing::MESSAGE_AUTHOR,
                &author,
            )?,
        },
        text: open_col(
            vault,
            key.as_deref(),
            &owner,
            seq,
            sealing::MESSAGE_BODY,
            &body,
        )?,
        client_id: r.col("client_id")?,
        blocked: r.col("blocked")?,
        attachment: None,
    })
    .and_then(|mut m| {
        let id: Option<i64> = r.col("att_id")?;
        if let Some(id) = id {
            let size: i64 = r.col("att_size")?;
            m.attachment = Some(AttachmentRef {
                id: crate::ids::AttachmentId(id),
                name: m.text.clone(),
                content_type: r.col("att_type")?,
                size: u64::try_from(size).unwrap_or(0),
            });
        }
        Ok(m)
    })
}

pub(super) fn user_from_row(r: &impl Cols) -> StoreResult<User> {
    Ok(User {
        id: UserId(r.col("id")?),
        username: r.col("username")?,
        name: r.col("name")?,
        role: parse(&r.col::<String>("role")?)?,
        capacity: r.col::<i64>("capacity")?.try_into().unwrap_or(1),
        active: r.col("active")?,
        created_at: ts(r.col("created_at")?),
    })
}

pub(super) fn customer_from_row(vault: &Vault, r: &impl Cols) -> StoreResult<Customer> {
    let id = CustomerId(r.col("id")?);
    let owner = KeyOwner::customer(id.0);
    let key = row_key(vault, r, &owner, "cust")?;
    let k = key.as_deref();
    let name: Vec<u8> = r.col("name")?;
    Ok(Customer {
        id,
        site: r.col("site")?,
        external_id: open_opt(
            vault,
            k,
            &owner,
            sealing::CUSTOMER_EXTERNAL_ID,
            r.col("external_id")?,
        )?,
        name: open_col(vault, k, &owner, 0, sealing::CUSTOMER_NAME, &name)?,
        email: open_opt(vault, k, &owner, sealing::CUSTOMER_EMAIL, r.col("email")?)?,
        phone: open_opt(vault, k, &owner, sealing::CUSTOMER_PHONE, r.col("phone")?)?,
        verified: r.col("verified")?,
        created_at: ts(r.col("created_at")?),
    })
}

pub(super) fn note_from_row(vault: &Vault, r: &impl Cols) -> StoreResult<Note> {
    let id: i64 = r.col("id")?;
    let owner = KeyOwner::conversation(r.col::<i64>("conversation")?);
    let key = row_key(vault, r, &owner, "conv")?;
    let body: Vec<u8> = r.col("body")?;
    Ok(Note {
        id: crate::ids::NoteId(id),
        ticket: TicketId(r.col("ticket_id")?),
        at: ts(r.col("at")?),
        author: AgentRef {
            id: UserId(r.col("author_id")?),
            name: r.col("name")?,
        },
        text: open_col(vault, key.as_deref(), &owner, id, sealing::NOTE_BODY, &body)?,
        client_id: r.col("client_id")?,
    })
}

pub(super) const AUDIT_SELECT: &str =
    "SELECT seq, at, actor_id, actor_role, action, outcome, customer_id, \
     object_kind, object_id, detail, ip, user_agent, request_id, customers, hash FROM audit_log";

pub(super) const GRANT_SELECT: &str =
    "SELECT id, object_kind, object_id, requester_id, reason, duration_ms, \
     status, requested_at, review_by, reviewer_id, reviewed_at, review_note, expires_at, \
     ended_by, ended_at FROM access_grants";

pub(super) fn record_from_row(r: &impl Cols) -> StoreResult<AuditRecord> {
    let kind: Option<String> = r.col("object_kind")?;
    let object_id: Option<i64> = r.col("object_id")?;
    let hash: Vec<u8> = r.col("hash")?;
    Ok(AuditRecord {
        seq: r.col("seq")?,
        entry: AuditEntry {
            at: r.col("at")?,
            actor_id: r.col("actor_id")?,
            actor_role: r.col("actor_role")?,
            action: r.col("action")?,
            outcome: r.col("outcome")?,
            customer_id: r.col("customer_id")?,
            object: kind.map(|kind| ObjectRef {
                kind,
                id: object_id.unwrap_or_default(),
            }),
            detail: r.col("detail")?,
            ip: r.col("ip")?,
            user_agent: r.col("user_agent")?,
            request_id: r.col("request_id")?,
            customers: parse_customers(r.col("customers")?),
        },
        // A hash of the wrong length cannot match; the verifier names the entry.
        hash: hash.try_into().unwrap_or([0u8; 32]),
    })
}

/// The stored list of an entry's customers. An id that does not parse is kept as 0, so the
/// entry's hash fails to match and the verifier names it.
pub(super) fn parse_customers(text: Option<String>) -> Vec<i64> {
    match text {
        None => Vec::new(),
        Some(t) if t.is_empty() => Vec::new(),
        Some(t) => t.split(',').map(|c| c.parse().unwrap_or(0)).collect(),
    }
}

pub(super) fn checkpoint_from_row(r: &impl Cols) -> StoreResult<AuditCheckpoint> {
    let hash: Vec<u8> = r.col("hash")?;
    let signature: Vec<u8> = r.col("signature")?;
    let prev: Option<Vec<u8>> = r.col("prev")?;
    Ok(AuditCheckpoint {
        seq: r.col("seq")?,
        // Wrong lengths cannot verify; the verifier names the checkpoint.
        hash: hash.try_into().unwrap_or([0u8; 32]),
        at: r.col("at")?,
        key_id: r.col("key_id")?,
        prev: prev.map(|p| p.try_into().unwrap_or([0u8; 32])),
        signature: signature.try_into().unwrap_or([0u8; 64]),
    })
}

pub(super) fn grant_from_row(r: &impl Cols) -> StoreResult<StoredGrant> {
    Ok(StoredGrant {
        id: GrantId(r.col("id")?),
        grant: Grant {
            kind: parse(&r.col::<String>("object_kind")?)?,
            object_id: r.col("object_id")?,
            requester: r.col("requester_id")?,
            status: parse(&r.col::<String>("status")?)?,
            requested_at: r.col("requested_at")?,
            review_by: r.col("review_by")?,
            duration_ms: r.col("duration_ms")?,
            expires_at: r.col("expires_at")?,
        },
        reason: r.col("reason")?,
        reviewer: r.col::<Option<i64>>("reviewer_id")?.map(UserId),
        reviewed_at: opt_ts(r.col("reviewed_at")?),
        review_note: r.col("review_note")?,
        ended_by: r.col::<Option<i64>>("ended_by")?.map(UserId),
        ended_at: opt_ts(r.col("ended_at")?),
    })
}

pub(super) const RECORDING_SELECT: &str =
    "SELECT id, ticket_id, call_id, rate, state, manifest, segments, \
     frames, started_at, ended_at FROM recordings";

pub(super) fn recording_from_row(r: &impl Cols) -> StoreResult<StoredRecording> {
    let rate: i64 = r.col("rate")?;
    Ok(StoredRecording {
        id: r.col("id")?,
        ticket: TicketId(r.col("ticket_id")?),
        call_id: r.col("call_id")?,
        rate: u32::try_from(rate).unwrap_or(0),
        state: parse(&r.col::<String>("state")?)?,
        manifest: r.col("manifest")?,
        segments: r.col("segments")?,
        frames: r.col("frames")?,
        started_at: ts(r.col("started_at")?),
        ended_at: opt_ts(r.col("ended_at")?),
    })
}

pub(super) const CHALLENGE_COLUMNS: &str =
    "id, ticket_id, customer_id, agent_id, action, state, attempts, \
     resends, destination, salt, code_hash, created_at, sent_at, expires_at, verified_until";

pub(super) fn err(e: sqlx::Error) -> VerifyStoreError {
    match e {
        sqlx::Error::RowNotFound => VerifyStoreError::NotFound,
        other => VerifyStoreError::Unavailable(other.to_string()),
    }
}

pub(super) fn challenge_from_row(r: &impl Cols) -> VerifyStoreResult<Challenge> {
    let state: String = r.col("state").map_err(err)?;
    let count = |name: &str| -> VerifyStoreResult<u32> {
        let v: i64 = r.col(name).map_err(err)?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    };
    Ok(Challenge {
        id: r.col("id").map_err(err)?,
        ticket: r.col("ticket_id").map_err(err)?,
        customer: r.col("customer_id").map_err(err)?,
        agent: r.col("agent_id").map_err(err)?,
        action: r.col("action").map_err(err)?,
        state: state
            .parse()
            .map_err(|e: String| VerifyStoreError::Unavailable(format!("corrupt row: {e}")))?,
        attempts: count("attempts")?,
        resends: count("resends")?,
        destination: r.col("destination").map_err(err)?,
        salt: r.col("salt").map_err(err)?,
        code_hash: r.col("code_hash").map_err(err)?,
        created_at: r.col("created_at").map_err(err)?,
        sent_at: r.col("sent_at").map_err(err)?,
        expires_at: r.col("expires_at").map_err(err)?,
        verified_until: r.col("verified_until").map_err(err)?,
    })
}

pub(super) fn factor_from_row(r: &impl Cols) -> VerifyStoreResult<TotpFactor> {
    let failures: i64 = r.col("failures").map_err(err)?;
    Ok(TotpFactor {
        user: r.col("user_id").map_err(err)?,
        sealed_seed: r.col("sealed_seed").map_err(err)?,
        confirmed: r.col("confirmed").map_err(err)?,
        last_step: r.col("last_step").map_err(err)?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        last_failure_at: r.col("last_failure_at").map_err(err)?,
    })
}
