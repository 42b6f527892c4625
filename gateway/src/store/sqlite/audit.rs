//! The audit log and access grants in SQLite (migration 0006).
//!
//! An audit append is one `BEGIN IMMEDIATE` transaction on the single writer: it takes the
//! write lock before reading the chain's head, so neither another task of this gateway nor
//! another process (`deskgate audit export` appends its own entry) can slip in between the
//! read and the insert.

use super::*;
use recorder::audit::GENESIS;
use recorder::grant::Status;
use sqlx::{Sqlite, SqliteConnection};

async fn checkpoints_in(pool: &sqlx::SqlitePool) -> StoreResult<Vec<AuditCheckpoint>> {
    let rows = sqlx::query(
        "SELECT seq, hash, at, key_id, signature, prev FROM audit_checkpoints ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(checkpoint_from_row).collect()
}

/// The audit log of a data dir opened for reading only, for `deskgate audit verify`: no
/// migration runs, no keyring is needed, and nothing is created, not even the database file.
pub struct AuditReader {
    pool: sqlx::SqlitePool,
}

impl AuditReader {
    pub async fn open(dir: &std::path::Path) -> StoreResult<AuditReader> {
        let path = dir.join("deskgate.db");
        if !path.is_file() {
            return Err(StoreError::Unavailable(format!(
                "no database at {}",
                path.display()
            )));
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .create_if_missing(false);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(AuditReader { pool })
    }

    /// Records in log order with `seq > after`, at most `limit`.
    pub async fn records_after(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        records_after_in(&self.pool, after, limit).await
    }

    /// Every checkpoint in the database, by ascending `seq`. A database from before
    /// checkpoints were chained has no `prev` column; its checkpoints are all of format v1.
    pub async fn checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        let chained: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('audit_checkpoints') WHERE name = 'prev'",
        )
        .fetch_one(&self.pool)
        .await?;
        if chained > 0 {
            return checkpoints_in(&self.pool).await;
        }
        let rows = sqlx::query(
            "SELECT seq, hash, at, key_id, signature, NULL AS prev FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }
}

async fn records_after_in(
    pool: &sqlx::SqlitePool,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<AuditRecord>> {
    let rows = sqlx::query(&format!(
        "{AUDIT_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(record_from_row).collect()
}

async fn append_in(conn: &mut SqliteConnection, e: &AuditEntry) -> StoreResult<AuditRecord> {
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (last, prev) = match head {
        Some(r) => {
            let h: Vec<u8> = r.try_get("hash")?;
            (r.try_get::<i64, _>("seq")?, h.try_into().unwrap_or(GENESIS))
        }
        None => (0, GENESIS),
    };
    let seq = last + 1;
    let hash = e.chain_hash(seq, &prev);
    let customers = (!e.customers.is_empty()).then(|| {
        e.customers
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor_id, actor_role, action, outcome, customer_id, \
         object_kind, object_id, detail, ip, user_agent, request_id, customers, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(e.at)
    .bind(e.actor_id)
    .bind(&e.actor_role)
    .bind(&e.action)
    .bind(&e.outcome)
    .bind(e.customer_id)
    .bind(e.object.as_ref().map(|o| o.kind.as_str()))
    .bind(e.object.as_ref().map(|o| o.id))
    .bind(&e.detail)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(customers)
    .bind(&hash[..])
    .execute(&mut *conn)
    .await?;
    for c in &e.customers {
        sqlx::query(
            "INSERT OR IGNORE INTO audit_customers (customer_id, at, seq) VALUES (?, ?, ?)",
        )
        .bind(c)
        .bind(e.at)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    }
    Ok(AuditRecord {
        seq,
        entry: e.clone(),
        hash,
    })
}

impl SqliteStore {
    pub(super) async fn sqlite_append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut conn = self.writer.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        match append_in(&mut conn, e).await {
            Ok(record) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(record)
            }
            Err(err) => {
                // The connection goes back to the pool; it must not stay inside a transaction.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(err)
            }
        }
    }

    pub(super) async fn sqlite_audit_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        records_after_in(&self.reader, after, limit).await
    }

    pub(super) async fn sqlite_audit_search(
        &self,
        f: &AuditFilter,
    ) -> StoreResult<Vec<AuditRecord>> {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(AUDIT_SELECT);
        q.push(" WHERE 1 = 1");
        if let Some(a) = f.actor {
            q.push(" AND actor_id = ").push_bind(a.0);
        }
        if let Some(c) = f.customer {
            // Entries about the customer, and list reads that showed them: both one range
            // scan of an index on (customer_id, at).
            q.push(" AND (customer_id = ").push_bind(c.0);
            q.push(" OR seq IN (SELECT seq FROM audit_customers WHERE customer_id = ")
                .push_bind(c.0);
            if let Some(t) = f.from {
                q.push(" AND at >= ").push_bind(t.0);
            }
            if let Some(t) = f.to {
                q.push(" AND at < ").push_bind(t.0);
            }
            q.push("))");
        }
        if let Some(k) = &f.object_kind {
            q.push(" AND object_kind = ").push_bind(k.clone());
        }
        if let Some(id) = f.object_id {
            q.push(" AND object_id = ").push_bind(id);
        }
        if let Some(a) = &f.action {
            q.push(" AND action = ").push_bind(a.clone());
        }
        if !f.actions.is_empty() {
            q.push(" AND action IN (");
            let mut list = q.separated(", ");
            for a in &f.actions {
                list.push_bind(a.clone());
            }
            list.push_unseparated(")");
        }
        if let Some(o) = &f.outcome {
            q.push(" AND outcome = ").push_bind(o.clone());
        }
        if let Some(t) = f.from {
            q.push(" AND at >= ").push_bind(t.0);
        }
        if let Some(t) = f.to {
            q.push(" AND at < ").push_bind(t.0);
        }
        if let Some(b) = f.before {
            q.push(" AND seq < ").push_bind(b);
        }
        q.push(" ORDER BY seq DESC LIMIT ").push_bind(f.limit);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(record_from_row).collect()
    }

    pub(super) async fn sqlite_audit_head(&self) -> StoreResult<Option<(i64, ChainHash)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.reader)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let h: Vec<u8> = r.try_get("hash")?;
                Ok(Some((r.try_get("seq")?, h.try_into().unwrap_or(GENESIS))))
            }
        }
    }

    pub(super) async fn sqlite_add_audit_checkpoint(
        &self,
        c: &AuditCheckpoint,
        after: Option<i64>,
    ) -> StoreResult<bool> {
        // One statement: the check of the last checkpoint and the insert cannot be split by
        // another process signing too.
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature, prev) \
             SELECT ?, ?, ?, ?, ?, ? \
             WHERE (SELECT MAX(seq) FROM audit_checkpoints) IS ? AND ? > COALESCE(?, 0) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.hash[..])
        .bind(c.at)
        .bind(&c.key_id)
        .bind(&c.signature[..])
        .bind(c.prev.as_ref().map(|p| &p[..]))
        .bind(after)
        .bind(c.seq)
        .bind(after)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn sqlite_audit_checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        checkpoints_in(&self.reader).await
    }

    pub(super) async fn sqlite_create_grant(&self, g: NewGrant) -> StoreResult<StoredGrant> {
        let row = sqlx::query(&format!(
            "INSERT INTO access_grants (object_kind, object_id, requester_id, reason, duration_ms, \
             status, requested_at, review_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {}",
            GRANT_SELECT
                .trim_start_matches("SELECT ")
                .trim_end_matches(" FROM access_grants")
        ))
        .bind(g.grant.kind.as_str())
        .bind(g.grant.object_id)
        .bind(g.grant.requester)
        .bind(&g.reason)
        .bind(g.grant.duration_ms)
        .bind(g.grant.status.as_str())
        .bind(g.grant.requested_at)
        .bind(g.grant.review_by)
        .fetch_one(&self.writer)
        .await?;
        grant_from_row(&row)
    }

    pub(super) async fn sqlite_grant(&self, id: GrantId) -> StoreResult<StoredGrant> {
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        grant_from_row(&row)
    }

    pub(super) async fn sqlite_grants(&self, f: GrantFilter) -> StoreResult<Vec<StoredGrant>> {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(GRANT_SELECT);
        q.push(" WHERE 1 = 1");
        if let Some(r) = f.requester {
            q.push(" AND requester_id = ").push_bind(r.0);
        }
        if let Some(k) = f.kind {
            q.push(" AND object_kind = ").push_bind(k.as_str());
        }
        if let Some(id) = f.object_id {
            q.push(" AND object_id = ").push_bind(id);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(grant_from_row).collect()
    }

    pub(super) async fn sqlite_change_grant(
        &self,
        id: GrantId,
        c: GrantChange,
    ) -> StoreResult<StoredGrant> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let reviewing = matches!(c.to, Status::Approved | Status::Denied);
        let ending = matches!(c.to, Status::Revoked | Status::Expired);
        let done = sqlx::query(
            "UPDATE access_grants SET status = ?, \
             reviewer_id = CASE WHEN ? THEN ? ELSE reviewer_id END, \
             reviewed_at = CASE WHEN ? THEN ? ELSE reviewed_at END, \
             review_note = CASE WHEN ? THEN ? ELSE review_note END, \
             expires_at = COALESCE(?, expires_at), \
             ended_by = CASE WHEN ? THEN ? ELSE ended_by END, \
             ended_at = CASE WHEN ? THEN ? ELSE ended_at END \
             WHERE id = ? AND status = ?",
        )
        .bind(c.to.as_str())
        .bind(reviewing)
        .bind(c.by.map(|u| u.0))
        .bind(reviewing)
        .bind(c.at.0)
        .bind(reviewing)
        .bind(&c.note)
        .bind(c.expires_at.map(|t| t.0))
        .bind(ending)
        .bind(c.by.map(|u| u.0))
        .bind(ending)
        .bind(c.at.0)
        .bind(id.0)
        .bind(c.from.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM access_grants WHERE id = ?")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("the grant changed meanwhile"),
                None => StoreError::NotFound,
            });
        }
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE id = ?"))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        grant_from_row(&row)
    }

    pub(super) async fn sqlite_due_grants(&self, now: Timestamp) -> StoreResult<Vec<StoredGrant>> {
        let rows = sqlx::query(&format!(
            "{GRANT_SELECT} WHERE (status = 'pending' AND review_by <= ?) \
             OR (status = 'approved' AND expires_at <= ?) ORDER BY id"
        ))
        .bind(now.0)
        .bind(now.0)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }
}
