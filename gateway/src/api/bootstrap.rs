//! `POST /api/bootstrap`: create the first admin with the one-time secret printed at start-up.

use super::{ApiError, ApiResult, Body};
use crate::app::App;
use crate::auth::password;
use crate::store::{NewUser, Role, User};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Bootstrap {
    /// The one-time secret printed by `deskgate serve` on first run.
    #[schema(value_type = String, format = Password)]
    pub secret: SecretString,
    pub username: String,
    pub name: Option<String>,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Create the first admin account; works once, and only while no account exists.
#[utoipa::path(post, path = "/api/bootstrap", tag = "users", request_body = Bootstrap,
    responses(
        (status = 201, body = User),
        (status = 400, body = super::ErrorBody),
        (status = 401, description = "wrong or used secret", body = super::ErrorBody),
        (status = 503, description = "unavailable: the store cannot be reached; retry later", body = super::ErrorBody),
    ))]
pub async fn create(
    State(app): State<App>,
    Body(b): Body<Bootstrap>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let username = super::users::valid_username(&b.username)?;
    let hash = password::hash(&b.password).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if app.store.count_users().await? > 0
        || !crate::bootstrap::redeem(app.store.as_ref(), b.secret.expose_secret()).await?
    {
        return Err(ApiError::Unauthenticated);
    }
    let user = app
        .store
        .create_user(
            NewUser {
                name: b.name.unwrap_or_else(|| username.clone()),
                username,
                role: Role::Admin,
                password_hash: hash,
                capacity: app.config.desk.default_capacity,
            },
            app.clock.now(),
        )
        .await?;
    tracing::info!(user = user.id.0, "first admin created");
    Ok((StatusCode::CREATED, Json(user)))
}
