//! `GET /api/sites/{key}/widget`: what the widget of a site shows before anyone chats: the
//! site's name and whether it asks for a name and email first (`prechat` in `[[sites]]`).
//! Public like the widget; pages on the site's `allowed_origins` get a CORS answer.

use super::{ApiError, ApiResult, Path};
use crate::app::App;
use crate::origin::RequestOrigin;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WidgetSettings {
    /// The site's display name.
    pub name: String,
    /// Ask for a name and an optional email before the first message.
    pub prechat: bool,
}

/// The widget's settings for a site.
#[utoipa::path(get, path = "/api/sites/{key}/widget", tag = "customers",
    params(("key" = String, Path, description = "the site key of the widget")),
    responses((status = 200, body = WidgetSettings),
        (status = 403, description = "the calling page's origin may not embed this site", body = super::ErrorBody),
        (status = 404, description = "unknown site key", body = super::ErrorBody)))]
pub async fn widget(
    State(app): State<App>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<(HeaderMap, Json<WidgetSettings>)> {
    let site = app.sites.get(&key).ok_or(ApiError::NotFound)?;
    if let Err(refused) = RequestOrigin::from_headers(&headers).check_site(&app.config, site) {
        tracing::info!(%refused, site = %site.key, "widget settings refused");
        return Err(ApiError::Forbidden);
    }
    Ok((
        super::visitor::cors_headers(&headers),
        Json(WidgetSettings {
            name: site.name.clone(),
            prechat: site.prechat,
        }),
    ))
}
