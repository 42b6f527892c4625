//! The store's side of the vault: the `data_keys` table (one wrapped data key per
//! conversation and customer), key rotation bookkeeping, and crypto-shredding.

use super::{vault_err, SqliteStore};
use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::ids::{ConversationId, CustomerId, TicketId};
use crate::store::{Retained, RetentionCandidate, Shredded, StoreError, StoreResult};
use crate::vault::{wrapped, KeyOwner, Vault};
use recorder::{DataKey, KeyVersion};
use sqlx::{Row, SqliteConnection};
use std::sync::Arc;

/// Creates and stores the data key of a new owner, in the caller's transaction.
pub(super) async fn create_key(
    vault: &Vault,
    conn: &mut SqliteConnection,
    owner: &KeyOwner,
    now: Timestamp,
) -> StoreResult<Arc<DataKey>> {
    let (key, wrapped) = vault.new_key(owner).map_err(vault_err)?;
    sqlx::query(
        "INSERT INTO data_keys (owner, key_version, wrapped, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(owner.as_str())
    .bind(i64::from(wrapped.version.0))
    .bind(&wrapped.bytes)
    .bind(now.0)
    .execute(&mut *conn)
    .await?;
    Ok(key)
}

/// The data key of an owner that has one.
pub(super) async fn existing_key(
    vault: &Vault,
    conn: &mut SqliteConnection,
    owner: &KeyOwner,
) -> StoreResult<Arc<DataKey>> {
    let row = sqlx::query("SELECT key_version, wrapped FROM data_keys WHERE owner = ?")
        .bind(owner.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let w = match row {
        Some(r) => wrapped(r.try_get("key_version")?, r.try_get("wrapped")?),
        None => None,
    };
    vault.data_key(owner, w).map_err(vault_err)
}

/// Closed tickets whose transcript still has its key, closed before `?1`.
const TRANSCRIPT_CANDIDATES: &str = "SELECT t.id, t.closed_at AS ended_at, c.legal_hold AS held \
     FROM tickets t JOIN conversations c ON c.ticket_id = t.id \
     WHERE t.status = 'closed' AND t.closed_at < ?1 AND c.shredded_at IS NULL \
     ORDER BY c.legal_hold, t.closed_at LIMIT ?2";

/// Finished (or failed) recordings that still have their key, ended before `?1`; held while
/// their ticket's conversation is.
const RECORDING_CANDIDATES: &str = "SELECT r.id, r.ended_at AS ended_at, c.legal_hold AS held \
     FROM recordings r JOIN conversations c ON c.ticket_id = r.ticket_id \
     WHERE r.ended_at IS NOT NULL AND r.ended_at < ?1 \
     AND EXISTS (SELECT 1 FROM data_keys dk WHERE dk.owner = 'recording:' || r.id) \
     ORDER BY c.legal_hold, r.ended_at LIMIT ?2";

/// A step-up flag with what opens it: the conversation's data key.
const FLAG_SELECT: &str = "SELECT f.ticket_id, f.phrase, c.id AS conversation, \
     dk.key_version AS conv_key_version, dk.wrapped AS conv_key FROM verification_flags f \
     JOIN conversations c ON c.ticket_id = f.ticket_id \
     LEFT JOIN data_keys dk ON dk.owner = 'conversation:' || c.id";

/// When a customer was last active: created, a ticket of theirs opened or closed, a widget
/// session (visitor token) of theirs started. A customer with a ticket not yet closed is
/// active whatever the dates.
const CUSTOMER_LAST_ACTIVE: &str = "MAX(cu.created_at, \
     COALESCE((SELECT MAX(MAX(t.created_at, COALESCE(t.closed_at, 0))) FROM tickets t WHERE t.customer_id = cu.id), 0), \
     COALESCE((SELECT MAX(v.created_at) FROM visitors v WHERE v.customer_id = cu.id), 0))";

const CUSTOMER_HELD: &str =
    "EXISTS (SELECT 1 FROM tickets t JOIN conversations c ON c.ticket_id = t.id \
     WHERE t.customer_id = cu.id AND c.legal_hold = 1)";

const CUSTOMER_IDLE: &str =
    "NOT EXISTS (SELECT 1 FROM tickets t WHERE t.customer_id = cu.id AND t.status != 'closed')";

/// Customers with their data key, idle since before `?1`.
static CUSTOMER_CANDIDATES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT cu.id, {CUSTOMER_LAST_ACTIVE} AS ended_at, {CUSTOMER_HELD} AS held FROM customers cu \
         WHERE cu.created_at < ?1 AND {CUSTOMER_IDLE} \
         AND EXISTS (SELECT 1 FROM data_keys dk WHERE dk.owner = 'customer:' || cu.id) \
         AND {CUSTOMER_LAST_ACTIVE} < ?1 ORDER BY held, cu.id LIMIT ?2"
    )
});

async fn shred_transcript(
    conn: &mut SqliteConnection,
    ticket: i64,
    closed_before: Timestamp,
    now: Timestamp,
) -> StoreResult<Option<Shredded>> {
    let row = sqlx::query(
        "UPDATE conversations SET shredded_at = ?1 WHERE ticket_id = ?2 AND shredded_at IS NULL \
         AND legal_hold = 0 AND ticket_id IN \
         (SELECT id FROM tickets WHERE status = 'closed' AND closed_at < ?3) \
         RETURNING id, (SELECT customer_id FROM tickets WHERE id = ?2) AS customer",
    )
    .bind(now.0)
    .bind(ticket)
    .bind(closed_before.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let conversation = ConversationId(r.try_get("id")?);
    sqlx::query("DELETE FROM data_keys WHERE owner = ?")
        .bind(KeyOwner::conversation(conversation.0).as_str())
        .execute(&mut *conn)
        .await?;
    Ok(Some(Shredded {
        kind: Retained::Transcript,
        id: ticket,
        conversation: Some(conversation),
        customer: CustomerId(r.try_get("customer")?),
    }))
}

/// Destroys a customer's data key, and with it their name, email, phone and external id;
/// their blind indexes go too (a returning customer is a new one), and so do their visitor
/// tokens (a widget still open cannot write as them).
async fn shred_customer(
    conn: &mut SqliteConnection,
    customer: i64,
    idle_before: Timestamp,
) -> StoreResult<Option<Shredded>> {
    let due: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT cu.id FROM customers cu WHERE cu.id = ?1 AND {CUSTOMER_IDLE} \
         AND NOT {CUSTOMER_HELD} AND {CUSTOMER_LAST_ACTIVE} < ?2"
    ))
    .bind(customer)
    .bind(idle_before.0)
    .fetch_optional(&mut *conn)
    .await?;
    if due.is_none() {
        return Ok(None);
    }
    let done = sqlx::query("DELETE FROM data_keys WHERE owner = ?")
        .bind(KeyOwner::customer(customer).as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    sqlx::query("UPDATE customers SET external_id_index = NULL, email_index = NULL WHERE id = ?")
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM visitors WHERE customer_id = ?")
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    Ok(Some(Shredded {
        kind: Retained::Customer,
        id: customer,
        conversation: None,
        customer: CustomerId(customer),
    }))
}

/// Destroys a recording's data key, if it is still due (ended before `ended_before`, its
/// conversation not held). The sealed file is deleted by the caller once this commits.
async fn shred_recording(
    conn: &mut SqliteConnection,
    recording: i64,
    ended_before: Timestamp,
) -> StoreResult<Option<Shredded>> {
    let customer: Option<i64> = sqlx::query_scalar(
        "SELECT t.customer_id FROM recordings r JOIN tickets t ON t.id = r.ticket_id \
         JOIN conversations c ON c.ticket_id = t.id \
         WHERE r.id = ?1 AND r.ended_at IS NOT NULL AND r.ended_at < ?2 AND c.legal_hold = 0",
    )
    .bind(recording)
    .bind(ended_before.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(customer) = customer else {
        return Ok(None);
    };
    let done = sqlx::query("DELETE FROM data_keys WHERE owner = ?")
        .bind(KeyOwner::recording(recording).as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some(Shredded {
        kind: Retained::Recording,
        id: recording,
        conversation: None,
        customer: CustomerId(customer),
    }))
}

/// Data keys re-wrapped in one transaction at most.
const REWRAP_BATCH: i64 = 500;

impl SqliteStore {
    /// How many data keys each keyring version wraps.
    pub async fn data_keys_by_version(&self) -> StoreResult<Vec<(KeyVersion, i64)>> {
        let rows = sqlx::query(
            "SELECT key_version, COUNT(*) AS n FROM data_keys GROUP BY key_version ORDER BY key_version",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let v: i64 = r.try_get("key_version")?;
                Ok((KeyVersion(u32::try_from(v).unwrap_or(0)), r.try_get("n")?))
            })
            .collect()
    }

    /// Owners whose data key is still wrapped by `version` (at most `limit` of them).
    pub async fn data_key_owners(
        &self,
        version: KeyVersion,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT owner FROM data_keys WHERE key_version = ? ORDER BY owner LIMIT ?",
        )
        .bind(i64::from(version.0))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Re-wraps every data key not wrapped by the keyring's current version; the sealed data
    /// is not touched. Runs in batches, so it can run beside a serving gateway. Returns how
    /// many keys moved.
    pub async fn rewrap_data_keys(&self) -> StoreResult<u64> {
        let ring = self.vault.keyring();
        let current = i64::from(ring.current().0);
        let mut moved = 0u64;
        loop {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let rows = sqlx::query(
                "SELECT owner, key_version, wrapped FROM data_keys WHERE key_version != ? LIMIT ?",
            )
            .bind(current)
            .bind(REWRAP_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(moved);
            }
            for r in &rows {
                let owner_text: String = r.try_get("owner")?;
                let Some((kind, id)) = owner_text.split_once(':') else {
                    return Err(StoreError::Unavailable(format!(
                        "data key owner {owner_text:?} is malformed"
                    )));
                };
                let owner = KeyOwner::new(kind, id);
                let version: i64 = r.try_get("key_version")?;
                let old = wrapped(Some(version), r.try_get("wrapped")?)
                    .ok_or(StoreError::Unavailable("data key row is malformed".into()))?;
                let Some(new) = ring
                    .rewrap(&owner, &old)
                    .map_err(|e| StoreError::Unavailable(format!("{owner}: {e}")))?
                else {
                    continue;
                };
                sqlx::query(
                    "UPDATE data_keys SET key_version = ?, wrapped = ? WHERE owner = ? AND key_version = ?",
                )
                .bind(i64::from(new.version.0))
                .bind(&new.bytes)
                .bind(owner.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?;
                moved += 1;
            }
            tx.commit().await?;
        }
    }

    pub(super) async fn sqlite_retention_candidates(
        &self,
        kind: Retained,
        ended_before: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<RetentionCandidate>> {
        let sql = match kind {
            Retained::Transcript => TRANSCRIPT_CANDIDATES,
            Retained::Customer => CUSTOMER_CANDIDATES.as_str(),
            Retained::Recording => RECORDING_CANDIDATES,
        };
        let rows = sqlx::query(sql)
            .bind(ended_before.0)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RetentionCandidate {
                    id: r.try_get("id")?,
                    ended_at: Timestamp(r.try_get("ended_at")?),
                    legal_hold: r.try_get("held")?,
                })
            })
            .collect()
    }

    /// Destroys the data keys of these objects in one transaction of the writer, checking
    /// again that each is still due: not held, and (customers) not active since. The sealed
    /// rows stay; without the key they are noise.
    pub(super) async fn sqlite_shred(
        &self,
        kind: Retained,
        ids: &[i64],
        ended_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Shredded>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let shredded = match kind {
                Retained::Transcript => shred_transcript(&mut tx, *id, ended_before, now).await?,
                Retained::Customer => shred_customer(&mut tx, *id, ended_before).await?,
                Retained::Recording => shred_recording(&mut tx, *id, ended_before).await?,
            };
            out.extend(shredded);
        }
        tx.commit().await?;
        for s in &out {
            match s.kind {
                Retained::Transcript => {
                    if let Some(c) = s.conversation {
                        self.vault.forget(&KeyOwner::conversation(c.0));
                    }
                }
                Retained::Customer => self.vault.forget(&KeyOwner::customer(s.customer.0)),
                Retained::Recording => self.vault.forget(&KeyOwner::recording(s.id)),
            }
        }
        Ok(out)
    }

    pub(super) async fn sqlite_data_key(
        &self,
        owner: &KeyOwner,
        create: bool,
        now: Timestamp,
    ) -> StoreResult<Option<Arc<DataKey>>> {
        if !create {
            let row = sqlx::query("SELECT key_version, wrapped FROM data_keys WHERE owner = ?")
                .bind(owner.as_str())
                .fetch_optional(&self.reader)
                .await?;
            let Some(r) = row else { return Ok(None) };
            let w = wrapped(r.try_get("key_version")?, r.try_get("wrapped")?);
            return self.vault.data_key(owner, w).map(Some).map_err(vault_err);
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let key = key_or_new(&self.vault, &mut tx, owner, now).await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    pub(super) async fn sqlite_reseal_totp_seed(
        &self,
        user: UserId,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE staff_totp SET sealed_seed = ? WHERE user_id = ? AND sealed_seed = ?",
        )
        .bind(new)
        .bind(user.0)
        .bind(old)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Flags a ticket for step-up with the risk phrase its first message matched, sealed
    /// under the conversation's key (the phrase tells what the customer wrote).
    pub(super) async fn seal_step_up_flag(
        &self,
        ticket: TicketId,
        phrase: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let conversation: i64 =
            sqlx::query_scalar("SELECT id FROM conversations WHERE ticket_id = ?")
                .bind(ticket.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let owner = KeyOwner::conversation(conversation);
        let key = existing_key(&self.vault, &mut tx, &owner).await?;
        let sealed = self
            .vault
            .seal(&key, &owner, 0, crate::vault::STEP_UP_FLAG, phrase)
            .map_err(vault_err)?;
        sqlx::query(
            "INSERT INTO verification_flags (ticket_id, phrase, at) VALUES (?, ?, ?) \
             ON CONFLICT (ticket_id) DO NOTHING",
        )
        .bind(ticket.0)
        .bind(sealed)
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The risk phrase a ticket was flagged for; the placeholder once its transcript was
    /// shredded.
    pub(super) async fn open_step_up_flag(&self, ticket: TicketId) -> StoreResult<Option<String>> {
        let row = sqlx::query(&format!("{FLAG_SELECT} WHERE f.ticket_id = ?"))
            .bind(ticket.0)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| self.open_flag_row(&r)).transpose()
    }

    /// [`Self::open_step_up_flag`] of many tickets in one query: the flagged ones, with their
    /// phrase.
    pub(super) async fn open_step_up_flags(
        &self,
        tickets: &[TicketId],
    ) -> StoreResult<Vec<(TicketId, String)>> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; tickets.len()].join(",");
        let sql = format!("{FLAG_SELECT} WHERE f.ticket_id IN ({marks})");
        let mut q = sqlx::query(&sql);
        for t in tickets {
            q = q.bind(t.0);
        }
        let rows = q.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok((TicketId(r.try_get("ticket_id")?), self.open_flag_row(r)?)))
            .collect()
    }

    fn open_flag_row(&self, r: &sqlx::sqlite::SqliteRow) -> StoreResult<String> {
        let owner = KeyOwner::conversation(r.try_get::<i64, _>("conversation")?);
        let key = super::row_key(&self.vault, r, &owner, "conv")?;
        let sealed: Vec<u8> = r.try_get("phrase")?;
        super::open_col(
            &self.vault,
            key.as_deref(),
            &owner,
            0,
            crate::vault::STEP_UP_FLAG,
            &sealed,
        )
    }

    /// Puts a ticket's transcript on legal hold (kept past its retention) or releases it.
    pub(super) async fn put_legal_hold(&self, ticket: TicketId, hold: bool) -> StoreResult<()> {
        let done = sqlx::query("UPDATE conversations SET legal_hold = ? WHERE ticket_id = ?")
            .bind(hold)
            .bind(ticket.0)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// Seals values a database from before migration 0005 holds in clear, then rewrites the file
/// (`VACUUM`) so the old pages are gone too. Runs at start-up, before anything else writes;
/// a database with nothing in clear is left alone.
pub(super) async fn seal_legacy_rows(
    vault: &Vault,
    pool: &sqlx::SqlitePool,
    now: Timestamp,
) -> StoreResult<u64> {
    let mut conn = pool.acquire().await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM customers WHERE typeof(name) = 'text') \
         + (SELECT COUNT(*) FROM messages WHERE typeof(body) = 'text') \
         + (SELECT COUNT(*) FROM notes WHERE typeof(body) = 'text') \
         + (SELECT COUNT(*) FROM tickets WHERE typeof(subject) = 'text') \
         + (SELECT COUNT(*) FROM verification_flags WHERE typeof(phrase) = 'text')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if pending == 0 {
        return Ok(0);
    }
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let mut sealed = 0u64;

    let customers = sqlx::query(
        "SELECT id, external_id, name, email, phone, verified FROM customers WHERE typeof(name) = 'text'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &customers {
        let id: i64 = r.try_get("id")?;
        let owner = KeyOwner::customer(id);
        let key = key_or_new(vault, &mut tx, &owner, now).await?;
        let seal = |kind, text: &str| vault.seal(&key, &owner, 0, kind, text).map_err(vault_err);
        let name: String = r.try_get("name")?;
        let email: Option<String> = r.try_get("email")?;
        let phone: Option<String> = r.try_get("phone")?;
        let external: Option<String> = r.try_get("external_id")?;
        let verified: bool = r.try_get("verified")?;
        sqlx::query(
            "UPDATE customers SET name = ?, email = ?, phone = ?, external_id = ?, \
             external_id_index = ?, email_index = ? WHERE id = ?",
        )
        .bind(seal(crate::vault::CUSTOMER_NAME, &name)?)
        .bind(
            email
                .as_deref()
                .map(|e| seal(crate::vault::CUSTOMER_EMAIL, e))
                .transpose()?,
        )
        .bind(
            phone
                .as_deref()
                .map(|p| seal(crate::vault::CUSTOMER_PHONE, p))
                .transpose()?,
        )
        .bind(
            external
                .as_deref()
                .map(|e| seal(crate::vault::CUSTOMER_EXTERNAL_ID, e))
                .transpose()?,
        )
        .bind(
            external
                .as_deref()
                .filter(|_| verified)
                .map(|e| vault.blind_index("customer.external_id", e)),
        )
        .bind(
            email
                .as_deref()
                .map(|e| vault.blind_index("customer.email", &crate::vault::normal_email(e))),
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sealed += 1;
    }

    let messages = sqlx::query(
        "SELECT conversation_id, seq, author_name, body FROM messages WHERE typeof(body) = 'text'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &messages {
        let conversation: i64 = r.try_get("conversation_id")?;
        let seq: i64 = r.try_get("seq")?;
        let owner = KeyOwner::conversation(conversation);
        let key = key_or_new(vault, &mut tx, &owner, now).await?;
        let author: String = r.try_get("author_name")?;
        let body: String = r.try_get("body")?;
        sqlx::query(
            "UPDATE messages SET author_name = ?, body = ? WHERE conversation_id = ? AND seq = ?",
        )
        .bind(
            vault
                .seal(&key, &owner, seq, crate::vault::MESSAGE_AUTHOR, &author)
                .map_err(vault_err)?,
        )
        .bind(
            vault
                .seal(&key, &owner, seq, crate::vault::MESSAGE_BODY, &body)
                .map_err(vault_err)?,
        )
        .bind(conversation)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        sealed += 1;
    }

    let notes = sqlx::query(
        "SELECT n.id, n.body, c.id AS conversation FROM notes n \
         JOIN conversations c ON c.ticket_id = n.ticket_id WHERE typeof(n.body) = 'text'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &notes {
        let id: i64 = r.try_get("id")?;
        let owner = KeyOwner::conversation(r.try_get::<i64, _>("conversation")?);
        let key = key_or_new(vault, &mut tx, &owner, now).await?;
        let body: String = r.try_get("body")?;
        sqlx::query("UPDATE notes SET body = ? WHERE id = ?")
            .bind(
                vault
                    .seal(&key, &owner, id, crate::vault::NOTE_BODY, &body)
                    .map_err(vault_err)?,
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sealed += 1;
    }

    let tickets = sqlx::query(
        "SELECT t.id, t.subject, c.id AS conversation FROM tickets t \
         JOIN conversations c ON c.ticket_id = t.id WHERE typeof(t.subject) = 'text'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &tickets {
        let owner = KeyOwner::conversation(r.try_get::<i64, _>("conversation")?);
        let key = key_or_new(vault, &mut tx, &owner, now).await?;
        let subject: String = r.try_get("subject")?;
        sqlx::query("UPDATE tickets SET subject = ? WHERE id = ?")
            .bind(
                vault
                    .seal(&key, &owner, 0, crate::vault::TICKET_SUBJECT, &subject)
                    .map_err(vault_err)?,
            )
            .bind(r.try_get::<i64, _>("id")?)
            .execute(&mut *tx)
            .await?;
        sealed += 1;
    }
    let flags = sqlx::query(
        "SELECT f.ticket_id, f.phrase, c.id AS conversation FROM verification_flags f \
         JOIN conversations c ON c.ticket_id = f.ticket_id WHERE typeof(f.phrase) = 'text'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in &flags {
        let owner = KeyOwner::conversation(r.try_get::<i64, _>("conversation")?);
        let key = key_or_new(vault, &mut tx, &owner, now).await?;
        let phrase: String = r.try_get("phrase")?;
        sqlx::query("UPDATE verification_flags SET phrase = ? WHERE ticket_id = ?")
            .bind(
                vault
                    .seal(&key, &owner, 0, crate::vault::STEP_UP_FLAG, &phrase)
                    .map_err(vault_err)?,
            )
            .bind(r.try_get::<i64, _>("ticket_id")?)
            .execute(&mut *tx)
            .await?;
        sealed += 1;
    }
    tx.commit().await?;
    // The clear values are still in free pages and in the log: rewrite the file without them.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    sqlx::query("VACUUM").execute(&mut *conn).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut *conn)
        .await?;
    tracing::warn!(
        target: "deskgate::security",
        sealed,
        "sealed values stored in clear before the vault; the database file was rewritten"
    );
    Ok(sealed)
}

async fn key_or_new(
    vault: &Vault,
    conn: &mut SqliteConnection,
    owner: &KeyOwner,
    now: Timestamp,
) -> StoreResult<Arc<DataKey>> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM data_keys WHERE owner = ?")
        .bind(owner.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match exists {
        Some(_) => existing_key(vault, conn, owner).await,
        None => create_key(vault, conn, owner, now).await,
    }
}
