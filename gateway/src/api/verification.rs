//! Step-up verification over REST: an agent asks for a customer's verification, resends a
//! code, reads a ticket's verification state, and performs a sensitive action, which the
//! server allows only with a live verification for that ticket and action.

use super::{ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::Context;
use crate::ids::TicketId;
use crate::stepup::{ActionAuthorised, StepUpError, TicketVerification, VerificationView};
use crate::voice::call::PauseFirst;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

impl From<StepUpError> for ApiError {
    fn from(e: StepUpError) -> Self {
        use crate::protocol::ErrorCode as C;
        let (code, message) = e.public();
        match code {
            C::NotFound => ApiError::NotFound,
            C::Forbidden => ApiError::Forbidden,
            C::Unavailable => {
                ApiError::Refused(StatusCode::SERVICE_UNAVAILABLE, code.as_str(), message)
            }
            C::InvalidFrame => ApiError::Invalid(message),
            C::Conflict => ApiError::Conflict(message),
            C::Unauthenticated => ApiError::Unauthenticated,
            C::MfaRequired => ApiError::Refused(StatusCode::UNAUTHORIZED, code.as_str(), message),
            C::VerificationRequired => {
                ApiError::Refused(StatusCode::FORBIDDEN, code.as_str(), message)
            }
            C::CannotVerify => {
                ApiError::Refused(StatusCode::UNPROCESSABLE_ENTITY, code.as_str(), message)
            }
            C::MailFailed => ApiError::Refused(StatusCode::BAD_GATEWAY, code.as_str(), message),
            C::Locked | C::RetryLater => {
                ApiError::Refused(StatusCode::TOO_MANY_REQUESTS, code.as_str(), message)
            }
            _ => ApiError::Invalid(message),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ActionRequest {
    /// One of the configured sensitive actions, e.g. `change_address`.
    pub action: String,
}

/// Ask the ticket's customer to verify for an action: a 6-digit code goes to their registered
/// (signed-identity) email and the widget asks for it.
#[utoipa::path(post, path = "/api/tickets/{id}/verifications", tag = "verification", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")), request_body = ActionRequest,
    responses(
        (status = 201, body = VerificationView),
        (status = 400, description = "unknown action", body = super::ErrorBody),
        (status = 403, description = "the ticket is not assigned to you", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 422, description = "cannot_verify: the customer has no verified email", body = super::ErrorBody),
        (status = 429, description = "locked: too many wrong codes today", body = super::ErrorBody),
        (status = 502, description = "mail_failed: the email could not be sent; nothing was created", body = super::ErrorBody),
        (status = 503, description = "unavailable: the action takes card details and the ticket's call could not be paused (or the store is unavailable); no code was sent", body = super::ErrorBody),
    ))]
pub async fn request(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<ActionRequest>,
) -> ApiResult<(StatusCode, Json<VerificationView>)> {
    let ctx = ctx.by(&me);
    let first = PauseFirst {
        app: &app,
        ctx: &ctx,
    };
    let v = app
        .stepup
        .request(&ctx, &me, TicketId(id), &req.action, first)
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// The ticket's verification state: the latest challenge of each action, and whether its first
/// message flagged it for step-up.
#[utoipa::path(get, path = "/api/tickets/{id}/verifications", tag = "verification", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketVerification), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
pub async fn status(
    State(app): State<App>,
    Staff(me): Staff,
    Path(id): Path<i64>,
) -> ApiResult<Json<TicketVerification>> {
    Ok(Json(app.stepup.status(&me, TicketId(id)).await?))
}

/// Send a pending challenge's code again: a new code, at most 3 times, 30 seconds apart.
#[utoipa::path(post, path = "/api/verifications/{id}/resend", tag = "verification", security(("bearer" = [])),
    params(("id" = i64, Path, description = "challenge id")),
    responses(
        (status = 200, body = VerificationView),
        (status = 403, description = "the ticket is not assigned to you; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such challenge, or not one the caller may see", body = super::ErrorBody),
        (status = 409, description = "resend limit reached or challenge not pending", body = super::ErrorBody),
        (status = 429, description = "retry_later: within the cooldown", body = super::ErrorBody),
        (status = 502, description = "mail_failed", body = super::ErrorBody),
        (status = 503, description = "unavailable: the action takes card details and the ticket's call could not be paused (or the store is unavailable); no code was sent", body = super::ErrorBody),
    ))]
pub async fn resend(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<Json<VerificationView>> {
    let first = PauseFirst {
        app: &app,
        ctx: &ctx,
    };
    Ok(Json(app.stepup.resend(&ctx, &me, id, first).await?))
}

/// Perform a sensitive action on a ticket. Refused with `verification_required` unless the
/// ticket's customer was verified for exactly this action and the verification is still live;
/// what was allowed is recorded.
#[utoipa::path(post, path = "/api/tickets/{id}/actions", tag = "verification", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")), request_body = ActionRequest,
    responses(
        (status = 201, body = ActionAuthorised),
        (status = 403, description = "verification_required, or the ticket is not yours", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
    ))]
pub async fn perform(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<ActionRequest>,
) -> ApiResult<(StatusCode, Json<ActionAuthorised>)> {
    let done = app
        .stepup
        .perform(&ctx, &me, TicketId(id), &req.action)
        .await?;
    Ok((StatusCode::CREATED, Json(done)))
}
