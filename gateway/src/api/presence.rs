//! `GET /api/sites/{key}/presence`: whether anyone who works tickets has a console open, so
//! the widget can say "no agent online, we will reply by email" before the customer waits.
//! Public, like the widget itself; it says yes or no, never who or how many.

use super::{ApiError, ApiResult};
use crate::app::App;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Presence {
    /// At least one agent has an open console on this node.
    pub agents_online: bool,
}

/// Whether an agent is online for a site's customers.
#[utoipa::path(get, path = "/api/sites/{key}/presence", tag = "customers",
    params(("key" = String, Path, description = "the site key of the widget")),
    responses((status = 200, body = Presence), (status = 404, description = "unknown site key", body = super::ErrorBody)))]
pub async fn show(State(app): State<App>, Path(key): Path<String>) -> ApiResult<Json<Presence>> {
    app.sites.get(&key).ok_or(ApiError::NotFound)?;
    Ok(Json(Presence {
        agents_online: !app.desk.hub.online_agents().is_empty(),
    }))
}
