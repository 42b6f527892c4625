//! The staff second factor over REST: TOTP enrolment (otpauth URI and QR code), confirmation
//! with the first code (which returns recovery codes), new recovery codes, turning it off, and
//! an admin's reset of another user's factor.
//!
//! A user whose role requires a second factor and who has none gets an enrolment-only session
//! at login; it opens these endpoints and nothing else.

use super::{bearer, ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::Context;
use crate::ids::UserId;
use crate::store::{StoreError, User};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A staff user from a session of either kind, including an enrolment-only one; called from
/// the consoles' own origin or by a program, like every staff endpoint.
pub struct Enrolling(pub User);

impl FromRequestParts<App> for Enrolling {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        super::staff_origin(app, &parts.headers)?;
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let digest = crate::auth::token::digest(token);
        match app.store.enrolling_user(&digest, app.clock.now()).await {
            Ok(u) => Ok(Enrolling(u)),
            Err(StoreError::NotFound) => Err(ApiError::Unauthenticated),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// `otpauth://totp/…` for authenticator apps. Shown once; holds the seed.
    pub otpauth_uri: String,
    /// The same as a QR code, an SVG document.
    pub qr_svg: String,
    /// The seed in base32, to type in by hand.
    pub secret: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    /// A current 6-digit code from the authenticator (or, where allowed, a recovery code).
    #[schema(value_type = String, format = Password)]
    pub code: SecretString,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// One-time codes for a lost authenticator. Shown once; store them offline.
    pub recovery_codes: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    pub totp: bool,
    pub recovery_codes_left: u32,
    /// Whether this user's role must log in with a second factor.
    pub required: bool,
}

fn codes(list: Vec<SecretString>) -> RecoveryCodes {
    RecoveryCodes {
        recovery_codes: list.iter().map(|c| c.expose_secret().to_string()).collect(),
    }
}

/// The caller's second-factor status.
#[utoipa::path(get, path = "/api/me/mfa", tag = "mfa", security(("bearer" = [])),
    responses((status = 200, body = MfaStatus), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn status(
    State(app): State<App>,
    Enrolling(me): Enrolling,
) -> ApiResult<Json<MfaStatus>> {
    let (totp, left) = app.stepup.factor_status(&me).await?;
    Ok(Json(MfaStatus {
        totp,
        recovery_codes_left: left,
        required: app.stepup.config.requires_mfa(me.role),
    }))
}

/// Start a TOTP enrolment (again, if an earlier one was not confirmed).
#[utoipa::path(post, path = "/api/me/mfa/totp", tag = "mfa", security(("bearer" = [])),
    responses((status = 201, body = TotpEnrolment), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 409, description = "a confirmed factor exists", body = super::ErrorBody)))]
pub async fn begin(
    State(app): State<App>,
    Enrolling(me): Enrolling,
) -> ApiResult<(StatusCode, Json<TotpEnrolment>)> {
    let started = app.stepup.begin_enrolment(&me).await?;
    let e = started.enrolment;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            otpauth_uri: e.uri.expose_secret().to_string(),
            qr_svg: e.qr_svg.expose_secret().to_string(),
            secret: e.secret_base32.expose_secret().to_string(),
        }),
    ))
}

/// Confirm the enrolment with the first code; returns the recovery codes. Log in again with a
/// code afterwards.
#[utoipa::path(post, path = "/api/me/mfa/totp/confirm", tag = "mfa", security(("bearer" = [])),
    request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 401, description = "wrong code", body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 429, description = "retry_later: too many wrong codes; retry after a while", body = super::ErrorBody)))]
pub async fn confirm(
    State(app): State<App>,
    Enrolling(me): Enrolling,
    ctx: Context,
    Body(req): Body<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(codes(
        app.stepup.confirm_enrolment(&ctx, &me, &req.code).await?,
    )))
}

/// New recovery codes after a current code; the old ones stop working.
#[utoipa::path(post, path = "/api/me/mfa/recovery-codes", tag = "mfa", security(("bearer" = [])),
    request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 401, description = "wrong code", body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 429, description = "retry_later: too many wrong codes; retry after a while", body = super::ErrorBody)))]
pub async fn recovery_codes(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Body(req): Body<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(codes(
        app.stepup
            .renew_recovery_codes(&ctx, &me, &req.code)
            .await?,
    )))
}

/// Turn the caller's TOTP off, after a current code. Refused for roles that require it.
#[utoipa::path(delete, path = "/api/me/mfa/totp", tag = "mfa", security(("bearer" = [])),
    request_body = CodeBody,
    responses((status = 204), (status = 401, description = "wrong code", body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 429, description = "retry_later: too many wrong codes; retry after a while", body = super::ErrorBody)))]
pub async fn disable(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Body(req): Body<CodeBody>,
) -> ApiResult<StatusCode> {
    app.stepup.disable(&ctx, &me, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An admin removes a user's second factor (lost device, no recovery codes). The user's
/// sessions end; the reset is recorded as a security event.
#[utoipa::path(delete, path = "/api/users/{id}/mfa", tag = "mfa", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn reset(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if !me.role.manages_users() {
        return Err(ApiError::Forbidden);
    }
    let target = app.store.user(UserId(id)).await?;
    app.stepup.admin_reset(&ctx, &me, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}
