//! Staff login sessions: `POST /api/session` (log in), `DELETE /api/session` (log out),
//! `GET /api/me`.

use super::{bearer, ApiError, ApiResult, Body, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event, Outcome};
use crate::auth::{password, token};
use crate::clock::Timestamp;
use crate::limits::Rule;
use crate::store::{StoreError, User};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Login {
    pub username: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// The current code of the user's authenticator (or a recovery code), for users with a
    /// second factor.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub otp: Option<SecretString>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    /// Bearer token for the API and the `hello` of `/ws/agent`. Shown once.
    pub token: String,
    pub expires_at: Timestamp,
    pub user: User,
    /// The role requires a second factor and none is enrolled: this session opens only the
    /// enrolment endpoints (`/api/me/mfa…`); log in again after confirming.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mfa_enrolment_required: bool,
}

/// Log in with username and password.
#[utoipa::path(post, path = "/api/session", tag = "session", request_body = Login,
    responses(
        (status = 201, body = SessionCreated),
        (status = 400, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 401, description = "unauthenticated: wrong username, password or second-factor code (indistinguishable); mfa_required: the password was right and the user's second-factor code is missing", body = super::ErrorBody),
        (status = 429, description = "retry_later: too many wrong second-factor codes; rate_limited: too many logins from this address or for this username (Retry-After)", body = super::ErrorBody),
        (status = 503, description = "unavailable: the store cannot be reached; retry later", body = super::ErrorBody),
    ))]
pub async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    ctx: Context,
    Body(login): Body<Login>,
) -> ApiResult<(StatusCode, Json<SessionCreated>)> {
    super::staff_origin(&app, &headers)?;
    super::limit(&app, Rule::LoginPerIp, ctx.ip.as_deref().unwrap_or("-")).await?;
    super::limit(&app, Rule::LoginPerUser, &login.username.to_lowercase()).await?;
    let found = match app.store.user_credentials(&login.username).await {
        Ok(found) => Some(found),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // Argon2 is slow on purpose; keep it off the async workers.
    let pw = login.password.clone();
    let stored = found.as_ref().map(|(_, h)| h.clone());
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, stored.as_deref()))
        .await
        .unwrap_or(false);
    let user = match found {
        Some((user, _)) if ok && user.active => user,
        other => {
            tracing::info!(username_len = login.username.len(), "login failed");
            // The account, when there is one, is named; the typed name never is.
            let ctx = match &other {
                Some((u, _)) => ctx.by(u),
                None => ctx,
            };
            let ev = Event::new(Action::LoginFailed, Outcome::Failed);
            let _ = app.audit(&ctx, ev).await;
            return Err(ApiError::Unauthenticated);
        }
    };
    // The second factor, for users who have one or whose role requires one.
    let factor = app
        .stepup
        .login_factor(&ctx, &user, login.otp.as_ref())
        .await
        .map_err(|e| {
            tracing::info!(user = user.id.0, "login failed: second factor");
            ApiError::from(e)
        })?;
    let enrolment_only = factor == crate::stepup::mfa::LoginFactor::EnrolmentRequired;
    let (secret, digest) = token::issue(token::Kind::Session);
    let now = app.clock.now();
    let expires_at = now.plus(app.config.session_ttl);
    if enrolment_only {
        app.store
            .create_enrolment_session(&digest, user.id, now, expires_at)
            .await?;
    } else {
        app.store
            .create_session(&digest, user.id, now, expires_at)
            .await?;
    }
    tracing::info!(user = user.id.0, "login");
    let _ = app
        .audit(&ctx.by(&user), Event::allowed(Action::Login))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            token: secret.expose_secret().to_string(),
            expires_at,
            user,
            mfa_enrolment_required: enrolment_only,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct LogoutQuery {
    /// `true`: end every session of this user, on every device, and close their open sockets
    /// (4003).
    #[serde(default)]
    pub everywhere: bool,
}

/// Log out: the session token stops working at once; with `everywhere=true` every session of
/// the user does, and their open sockets are closed.
#[utoipa::path(delete, path = "/api/session", tag = "session", security(("bearer" = [])),
    params(LogoutQuery),
    responses((status = 204), (status = 401, body = super::ErrorBody)))]
pub async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    super::Query(q): super::Query<LogoutQuery>,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers).ok_or(ApiError::Unauthenticated)?;
    let digest = token::digest(token);
    if q.everywhere {
        let user = match app.store.session_user(&digest, app.clock.now(), None).await {
            Ok(u) => u,
            Err(StoreError::NotFound) => return Err(ApiError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        app.store.delete_user_sessions(user.id).await?;
        app.desk.revoke(user.id).await;
        tracing::info!(user = user.id.0, "logged out everywhere");
        return Ok(StatusCode::NO_CONTENT);
    }
    app.store.delete_session(&digest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/me", tag = "session", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn me(Staff(user): Staff) -> Json<User> {
    Json(user)
}
