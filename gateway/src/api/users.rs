//! Staff accounts: `GET/POST /api/users`, `PATCH /api/users/{id}`. Creating and changing
//! accounts is for admins; a change of role or a deactivation ends the user's sessions and
//! closes their open sockets at once (close code 4003): they must log in again.

use super::{ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::auth::{password, require, Permission};
use crate::ids::UserId;
use crate::store::{NewUser, Role, User, UserPatch};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateUser {
    pub username: String,
    pub name: Option<String>,
    pub role: Role,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// Concurrent chats; the server default when absent.
    pub capacity: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateUser {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub active: Option<bool>,
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

/// Usernames: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_username(s: &str) -> ApiResult<String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(ApiError::Invalid(
            "username must be 1-64 letters, digits, '.', '_', '-' or '@'".into(),
        ))
    }
}

fn valid_capacity(c: Option<u32>) -> ApiResult<Option<u32>> {
    match c {
        Some(0) | Some(1001..) => Err(ApiError::Invalid("capacity must be 1-1000".into())),
        other => Ok(other),
    }
}

fn require_admin(user: &User) -> ApiResult<()> {
    require(user, Permission::ManageUsers).map_err(|_| ApiError::Forbidden)
}

/// All staff accounts (every staff member may list colleagues, e.g. to transfer a chat).
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<User>), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn list(State(app): State<App>, Staff(_me): Staff) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(app.store.users().await?))
}

/// Create a staff account (admins only).
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, body = User),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody),
        (status = 409, description = "username taken", body = super::ErrorBody),
    ))]
pub async fn create(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    require_admin(&me)?;
    let username = valid_username(&req.username)?;
    let capacity = valid_capacity(req.capacity)?.unwrap_or(app.config.desk.default_capacity);
    let hash = hash_off_thread(req.password).await?;
    let user = app
        .store
        .create_user(
            NewUser {
                name: req.name.unwrap_or_else(|| username.clone()),
                username,
                role: req.role,
                password_hash: hash,
                capacity,
            },
            app.clock.now(),
        )
        .await?;
    tracing::info!(by = me.id.0, user = user.id.0, role = %user.role, "user created");
    let ev = Event::allowed(Action::UserCreated)
        .object("user", user.id.0)
        .detail(format!("role={}", user.role));
    let _ = app.audit(&ctx.by(&me), ev).await;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Change a staff account (admins only). Role changes and deactivation take effect at once.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body = UpdateUser,
    responses(
        (status = 200, body = User),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "admins cannot demote or deactivate themselves", body = super::ErrorBody),
    ))]
pub async fn update(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<UpdateUser>,
) -> ApiResult<Json<User>> {
    require_admin(&me)?;
    let id = UserId(id);
    if id == me.id && (req.active == Some(false) || req.role.is_some_and(|r| r != me.role)) {
        return Err(ApiError::Conflict(
            "admins cannot demote or deactivate themselves".into(),
        ));
    }
    let before = app.store.user(id).await?;
    let password_hash = match req.password {
        Some(p) => Some(hash_off_thread(p).await?),
        None => None,
    };
    let patch = UserPatch {
        name: req.name,
        role: req.role,
        capacity: valid_capacity(req.capacity)?,
        active: req.active,
        password_hash,
    };
    let after = app.store.update_user(id, patch).await?;
    let deactivated = before.active && !after.active;
    if deactivated || before.role != after.role {
        app.store.delete_user_sessions(id).await?;
        app.desk.revoke(id).await;
        tracing::info!(by = me.id.0, user = id.0, role = %after.role, active = after.active, "access changed");
    }
    let ctx = ctx.by(&me);
    if before.role != after.role {
        let ev = Event::allowed(Action::RoleChanged)
            .object("user", id.0)
            .detail(format!("{} -> {}", before.role, after.role));
        let _ = app.audit(&ctx, ev).await;
    }
    if deactivated || before.role != after.role {
        let why = if deactivated {
            "requester deactivated".to_string()
        } else {
            format!(
                "requester's role changed ({} -> {})",
                before.role, after.role
            )
        };
        super::grants::revoke_all_of(&app, &ctx, id, &why).await?;
    }
    if before.active != after.active {
        let action = if after.active {
            Action::UserReactivated
        } else {
            Action::UserDeactivated
        };
        let _ = app
            .audit(&ctx, Event::allowed(action).object("user", id.0))
            .await;
    }
    Ok(Json(after))
}

async fn hash_off_thread(p: SecretString) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|e| ApiError::Invalid(e.to_string()))
}
