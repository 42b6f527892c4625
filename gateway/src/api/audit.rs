//! `GET /api/audit`: the audit log for approvers and admins, newest first, filtered by actor,
//! customer, object, action, outcome and time range. "Who looked at customer X last month" is
//! `?customer=X&from=…&to=…`, one range scan of an index. Each query is itself audited.
//!
//! `GET /api/audit/status` checks the whole hash chain and the checkpoint signatures the way
//! `deskgate audit verify` does ([`crate::audit::verify_store`]), for the console's badge.

use super::{ApiError, ApiResult, Query, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::auth::{require, Permission};
use crate::clock::Timestamp;
use crate::ids::{CustomerId, UserId};
use crate::store::{AuditFilter, AuditRecord};
use axum::extract::State;
use axum::Json;
use recorder::audit::Broken;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Staff user who acted.
    pub actor: Option<i64>,
    /// Customer the entry concerns, or one a list read showed.
    pub customer: Option<i64>,
    /// Object kind: ticket, transcript, grant, user.
    pub object_kind: Option<String>,
    /// Object id (with `object_kind`).
    pub object_id: Option<i64>,
    /// e.g. pii_revealed, ticket_read, grant_used, login_failed.
    pub action: Option<String>,
    /// allowed, denied or failed.
    pub outcome: Option<String>,
    /// From this time on (RFC 3339, inclusive).
    pub from: Option<String>,
    /// Before this time (RFC 3339, exclusive).
    pub to: Option<String>,
    /// Entries before this sequence number, to page backwards.
    pub before: Option<i64>,
    /// At most 1000; default 100.
    pub limit: Option<i64>,
}

/// One audit entry as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: Timestamp,
    pub actor: Option<i64>,
    pub role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub customer: Option<i64>,
    pub object_kind: Option<String>,
    pub object_id: Option<i64>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Every customer a list read showed (absent for other entries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<i64>,
    /// The entry's chain hash, hex.
    pub hash: String,
}

impl From<&AuditRecord> for AuditEntryView {
    fn from(r: &AuditRecord) -> Self {
        let e = &r.entry;
        AuditEntryView {
            seq: r.seq,
            at: Timestamp(e.at),
            actor: e.actor_id,
            role: e.actor_role.clone(),
            action: e.action.clone(),
            outcome: e.outcome.clone(),
            customer: e.customer_id,
            object_kind: e.object.as_ref().map(|o| o.kind.clone()),
            object_id: e.object.as_ref().map(|o| o.id),
            detail: e.detail.clone(),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            request_id: e.request_id.clone(),
            customers: e.customers.clone(),
            hash: hex::encode(r.hash),
        }
    }
}

/// An RFC 3339 query parameter as a time.
pub(super) fn time(name: &str, v: Option<String>) -> ApiResult<Option<Timestamp>> {
    let Some(v) = v else { return Ok(None) };
    let t = humantime::parse_rfc3339_weak(&v)
        .map_err(|_| ApiError::Invalid(format!("{name} must be an RFC 3339 time")))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::Invalid(format!("{name} is before 1970")))?
        .as_millis();
    Ok(Some(Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))))
}

/// Query the audit log (approvers and admins).
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntryView>), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntryView>>> {
    let ctx = ctx.by(&me);
    if require(&me, Permission::ReadAudit).is_err() {
        let _ = app.audit(&ctx, Event::denied(Action::AuditRead)).await;
        return Err(ApiError::Forbidden);
    }
    if let Some(a) = &q.action {
        if Action::parse(a).is_none() {
            return Err(ApiError::Invalid(format!("unknown action {a:?}")));
        }
    }
    if let Some(o) = &q.outcome {
        if recorder::audit::Outcome::parse(o).is_none() {
            return Err(ApiError::Invalid(
                "outcome must be allowed, denied or failed".into(),
            ));
        }
    }
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => return Err(ApiError::Invalid("limit must be 1-1000".into())),
    };
    let filter = AuditFilter {
        actor: q.actor.map(UserId),
        customer: q.customer.map(CustomerId),
        object_kind: q.object_kind,
        object_id: q.object_id,
        action: q.action,
        actions: Vec::new(),
        outcome: q.outcome,
        from: time("from", q.from)?,
        to: time("to", q.to)?,
        before: q.before,
        limit,
    };
    let records = app.store.audit_search(&filter).await?;
    let mut read = Event::allowed(Action::AuditRead);
    if let Some(c) = filter.customer {
        read = read.customer(c);
    }
    let _ = app.audit(&ctx, read).await;
    Ok(Json(records.iter().map(AuditEntryView::from).collect()))
}

/// The outcome of checking the whole log, as `deskgate audit verify` reports it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChainStatus {
    /// `ok`: every entry chains to the one before and matches every signed checkpoint;
    /// `broken`: `first_bad_entry` is the first entry that does not.
    pub status: &'static str,
    /// Entries in the log when it was checked.
    pub entries: i64,
    /// Signed checkpoints checked (when ok).
    pub checkpoints: usize,
    /// The last entry a signed checkpoint covers.
    pub last_checkpoint: Option<i64>,
    /// Entries after the last signed checkpoint: chained, not yet signed (the next checkpoint
    /// signs them).
    pub unsigned: i64,
    /// The checkpoint key the signatures were checked with.
    pub key_id: String,
    pub first_bad_entry: Option<i64>,
    /// What is wrong with the first bad entry.
    pub problem: Option<String>,
    /// The gateway's clock when the check ran.
    pub checked_at: Timestamp,
}

impl ChainStatus {
    fn new(
        result: Result<recorder::audit::Verified, Broken>,
        head: i64,
        key_id: String,
        at: Timestamp,
    ) -> ChainStatus {
        match result {
            Ok(v) => ChainStatus {
                status: "ok",
                entries: v.entries,
                checkpoints: v.checkpoints,
                last_checkpoint: v.last_checkpoint,
                unsigned: v.entries - v.last_checkpoint.unwrap_or(0).min(v.entries),
                key_id,
                first_bad_entry: None,
                problem: None,
                checked_at: at,
            },
            Err(broken) => ChainStatus {
                status: "broken",
                entries: head,
                checkpoints: 0,
                last_checkpoint: None,
                unsigned: 0,
                key_id,
                first_bad_entry: Some(broken.entry()),
                problem: Some(broken.to_string()),
                checked_at: at,
            },
        }
    }
}

/// Verify the whole audit log: the hash chain and every checkpoint's signature (approvers and
/// admins). The check is itself audited.
#[utoipa::path(get, path = "/api/audit/status", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = ChainStatus), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)))]
pub async fn status(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
) -> ApiResult<Json<ChainStatus>> {
    let ctx = ctx.by(&me);
    if require(&me, Permission::ReadAudit).is_err() {
        let ev = Event::denied(Action::AuditRead).detail("chain status");
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let Some(key) = app.auditor.verifying_key() else {
        return Err(ApiError::Unavailable);
    };
    let options = app
        .auditor
        .verify_options(app.clock.now())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "checkpoint log unreadable");
            ApiError::Unavailable
        })?;
    let result = crate::audit::verify_store(app.store.as_ref(), &key, options).await?;
    let head = app.store.audit_head().await?.map_or(0, |(seq, _)| seq);
    let status = ChainStatus::new(result, head, recorder::audit::key_id(&key), app.clock.now());
    let detail = match status.first_bad_entry {
        None => format!("chain status: ok, {} entries", status.entries),
        Some(n) => format!("chain status: broken at entry {n}"),
    };
    let _ = app
        .audit(&ctx, Event::allowed(Action::AuditRead).detail(detail))
        .await;
    Ok(Json(status))
}
