//! The store's side of the vault: the `data_keys` table (one wrapped data key per
//! conversation and customer), key rotation bookkeeping, and crypto-shredding.

use super::{vault_err, SqliteStore};
use crate::clock::Timestamp;
use crate::ids::{ConversationId, TicketId};
use crate::store::{Shredded, StoreError, StoreResult};
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
            let mut tx = self.writer.begin().await?;
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

    /// Destroys the data keys of transcripts whose ticket closed before `closed_before`,
    /// unless on legal hold. The sealed rows stay; without the key they are noise.
    pub(super) async fn destroy_transcript_keys(
        &self,
        closed_before: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<Shredded>> {
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "UPDATE conversations SET shredded_at = ? WHERE shredded_at IS NULL AND legal_hold = 0 \
             AND ticket_id IN (SELECT id FROM tickets WHERE status = 'closed' AND closed_at < ?) \
             RETURNING id, ticket_id",
        )
        .bind(now.0)
        .bind(closed_before.0)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let conversation = ConversationId(r.try_get("id")?);
            sqlx::query("DELETE FROM data_keys WHERE owner = ?")
                .bind(KeyOwner::conversation(conversation.0).as_str())
                .execute(&mut *tx)
                .await?;
            out.push(Shredded {
                ticket: TicketId(r.try_get("ticket_id")?),
                conversation,
            });
        }
        tx.commit().await?;
        for s in &out {
            self.vault.forget(&KeyOwner::conversation(s.conversation.0));
        }
        Ok(out)
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
