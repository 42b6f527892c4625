//! `GET /api/sites/{key}/presence`: whether anyone who works tickets has a console open, so
//! the widget can say "no agent online" before the customer waits. Public, like the widget
//! itself; it says yes or no, never who or how many. Pages on the site's `allowed_origins` get
//! a CORS answer (their origin echoed), so the widget on the site's own domain can read it;
//! other pages are refused, as for visitor sessions.

use super::{ApiError, ApiResult, Path};
use crate::app::App;
use crate::origin::RequestOrigin;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Presence {
    /// At least one agent has an open console (on any node, with Redis).
    pub agents_online: bool,
}

/// Whether an agent is online for a site's customers.
#[utoipa::path(get, path = "/api/sites/{key}/presence", tag = "customers",
    params(("key" = String, Path, description = "the site key of the widget")),
    responses((status = 200, body = Presence),
        (status = 403, description = "the calling page's origin may not embed this site", body = super::ErrorBody),
        (status = 404, description = "unknown site key", body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<(HeaderMap, Json<Presence>)> {
    let site = app.sites.get(&key).ok_or(ApiError::NotFound)?;
    if let Err(refused) = RequestOrigin::from_headers(&headers).check_site(&app.config, site) {
        tracing::info!(%refused, site = %site.key, "presence refused");
        return Err(ApiError::Forbidden);
    }
    Ok((
        super::visitor::cors_headers(&headers),
        Json(Presence {
            agents_online: !app.desk.hub.online_agents().await.is_empty(),
        }),
    ))
}
