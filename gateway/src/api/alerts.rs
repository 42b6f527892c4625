//! `GET /api/alerts`: the security alerts of the last days, for supervisors and admins who
//! were not connected when the `security_alert` frame went out. Read back from the audit log,
//! so nothing is kept twice and nothing is lost to a restart.

use super::{ApiError, ApiResult, Query, Staff};
use crate::app::App;
use crate::stepup::security::Alert;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use std::time::Duration;

/// How far back alerts are listed unless `since` says otherwise.
const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AlertQuery {
    /// Alerts raised at or after this time (RFC 3339); default: the last 7 days.
    pub since: Option<String>,
    /// At most 1000; default 100.
    pub limit: Option<i64>,
}

/// Recent security alerts, newest first (supervisors and admins): the same fields as the
/// `security_alert` frame.
#[utoipa::path(get, path = "/api/alerts", tag = "verification", security(("bearer" = [])),
    params(AlertQuery),
    responses((status = 200, body = Vec<Alert>), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Staff(me): Staff,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Json<Vec<Alert>>> {
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => return Err(ApiError::Invalid("limit must be 1-1000".into())),
    };
    let since = match super::audit::time("since", q.since)? {
        Some(t) => t,
        None => app.clock.now().minus(DEFAULT_WINDOW),
    };
    Ok(Json(app.stepup.recent_alerts(&me, since, limit).await?))
}
