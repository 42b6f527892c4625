//! `GET /api/audit`: the audit log for approvers and admins, newest first, filtered by actor,
//! customer, object, action, outcome and time range. "Who looked at customer X last month" is
//! `?customer=X&from=…&to=…`, one range scan of an index. Each query is itself audited.

use super::{ApiError, ApiResult, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::auth::{require, Permission};
use crate::clock::Timestamp;
use crate::ids::{CustomerId, UserId};
use crate::store::{AuditFilter, AuditRecord};
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Staff user who acted.
    pub actor: Option<i64>,
    /// Customer the entry concerns.
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
