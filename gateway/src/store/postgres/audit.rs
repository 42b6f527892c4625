//! The audit log and access grants in PostgreSQL (migration 0006).
//!
//! An audit append is one transaction holding the chain head's key ([`Key::Audit`]) before it
//! reads the head, so neither another node nor another process (`deskgate audit export`
//! appends its own entry) can slip in between the read and the insert.

use super::*;
use recorder::audit::GENESIS;
use recorder::grant::Status;
use sqlx::{PgConnection, Postgres};

async fn checkpoints_in(pool: &sqlx::PgPool) -> StoreResult<Vec<AuditCheckpoint>> {
    let rows = sqlx::query(
        "SELECT seq, hash, at, key_id, signature, prev FROM audit_checkpoints ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(checkpoint_from_row).collect()
}

async fn records_after_in(
    pool: &sqlx::PgPool,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<AuditRecord>> {
    let rows = sqlx::query(&format!(
        "{AUDIT_SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(record_from_row).collect()
}

async fn append_in(conn: &mut PgConnection, e: &AuditEntry) -> StoreResult<AuditRecord> {
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
            "INSERT INTO audit_customers (customer_id, at, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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

impl PgStore {
    pub(super) async fn pg_append_audit(&self, e: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut tx = begin_keyed(&self.pool, &[Key::Audit]).await?;
        let record = append_in(&mut tx, e).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub(super) async fn pg_audit_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        records_after_in(&self.pool, after, limit).await
    }

    pub(super) async fn pg_audit_search(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let mut q = sqlx::QueryBuilder::<Postgres>::new(AUDIT_SELECT);
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
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(record_from_row).collect()
    }

    pub(super) async fn pg_audit_head(&self) -> StoreResult<Option<(i64, ChainHash)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let h: Vec<u8> = r.try_get("hash")?;
                Ok(Some((r.try_get("seq")?, h.try_into().unwrap_or(GENESIS))))
            }
        }
    }

    pub(super) async fn pg_add_audit_checkpoint(
        &self,
        c: &AuditCheckpoint,
        after: Option<i64>,
    ) -> StoreResult<bool> {
        // Under its key: two nodes signing at once would both see the same last checkpoint
        // (a statement's subquery reads its snapshot) and fork the chain.
        let mut tx = begin_keyed(&self.pool, &[Key::Checkpoints]).await?;
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature, prev) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT MAX(seq) FROM audit_checkpoints) IS NOT DISTINCT FROM $7 AND $8 > COALESCE($9, 0) \
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn pg_audit_checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        checkpoints_in(&self.pool).await
    }

    pub(super) async fn pg_create_grant(&self, g: NewGrant) -> StoreResult<StoredGrant> {
        let row = sqlx::query(&format!(
            "INSERT INTO access_grants (object_kind, object_id, requester_id, reason, duration_ms, \
             status, requested_at, review_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {}",
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
        .fetch_one(&self.pool)
        .await?;
        grant_from_row(&row)
    }

    pub(super) async fn pg_grant(&self, id: GrantId) -> StoreResult<StoredGrant> {
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        grant_from_row(&row)
    }

    pub(super) async fn pg_grants(&self, f: GrantFilter) -> StoreResult<Vec<StoredGrant>> {
        let mut q = sqlx::QueryBuilder::<Postgres>::new(GRANT_SELECT);
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
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(grant_from_row).collect()
    }

    pub(super) async fn pg_change_grant(
        &self,
        id: GrantId,
        c: GrantChange,
    ) -> StoreResult<StoredGrant> {
        let mut tx = begin_write(&self.pool).await?;
        let reviewing = matches!(c.to, Status::Approved | Status::Denied);
        let ending = matches!(c.to, Status::Revoked | Status::Expired);
        let done = sqlx::query(
            "UPDATE access_grants SET status = $1, \
             reviewer_id = CASE WHEN $2 THEN $3 ELSE reviewer_id END, \
             reviewed_at = CASE WHEN $4 THEN $5 ELSE reviewed_at END, \
             review_note = CASE WHEN $6 THEN $7 ELSE review_note END, \
             expires_at = COALESCE($8, expires_at), \
             ended_by = CASE WHEN $9 THEN $10 ELSE ended_by END, \
             ended_at = CASE WHEN $11 THEN $12 ELSE ended_at END \
             WHERE id = $13 AND status = $14",
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
                sqlx::query_scalar("SELECT id FROM access_grants WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("the grant changed meanwhile"),
                None => StoreError::NotFound,
            });
        }
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        grant_from_row(&row)
    }

    pub(super) async fn pg_due_grants(&self, now: Timestamp) -> StoreResult<Vec<StoredGrant>> {
        let rows = sqlx::query(&format!(
            "{GRANT_SELECT} WHERE (status = 'pending' AND review_by <= $1) \
             OR (status = 'approved' AND expires_at <= $2) ORDER BY id"
        ))
        .bind(now.0)
        .bind(now.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }
}

/// The audit log of a PostgreSQL database opened for reading only, for `deskgate audit
/// verify`: no migration runs and no keyring is needed.
pub struct PgAuditReader {
    pool: sqlx::PgPool,
}

impl PgAuditReader {
    pub async fn connect(url: &str) -> StoreResult<PgAuditReader> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid database URL: {e}")))?
            .options([("default_transaction_read_only", "on")]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(PgAuditReader { pool })
    }
}

#[async_trait]
impl crate::audit::AuditSource for PgAuditReader {
    async fn records_after(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        records_after_in(&self.pool, after, limit).await
    }
    async fn checkpoints(&self) -> StoreResult<Vec<AuditCheckpoint>> {
        checkpoints_in(&self.pool).await
    }
}
