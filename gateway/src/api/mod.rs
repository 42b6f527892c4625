//! The REST API (`/api/...`): everything that is not live. One file per resource; the
//! OpenAPI document at `/api/openapi.json` is generated from the handlers' annotations.

pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod bootstrap;
pub mod calls;
pub mod customers;
pub mod exports;
pub mod grants;
pub mod health;
pub mod mfa;
pub mod openapi;
pub mod presence;
pub mod queue;
pub mod session;
pub mod sites;
pub mod tickets;
pub mod users;
pub mod verification;
pub mod visitor;

use crate::app::App;
use crate::desk::DeskError;
use crate::store::{StoreError, User};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Errors as clients see them: a fixed set of codes; details go to the log only.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict(String),
    Capacity,
    Invalid(String),
    Unavailable,
    /// Step-up and second-factor refusals with their own public code (docs/verification.md).
    Refused(StatusCode, &'static str, String),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// One of: unauthenticated, forbidden, not_found, conflict, capacity, invalid, unavailable;
    /// for step-up and second factors also: verification_required, cannot_verify, mail_failed,
    /// locked, retry_later, mfa_required (login: the password was right, the code is missing).
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing, unknown or expired credentials".to_string(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role may not do this".to_string(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".to_string()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::Capacity => (
                StatusCode::CONFLICT,
                "capacity",
                "at the limit of concurrent chats".to_string(),
            ),
            ApiError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid", m),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unavailable; retry later".to_string(),
            ),
            ApiError::Refused(status, code, message) => (status, code, message),
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: ErrorDetail { code, message },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound | StoreError::Forbidden => ApiError::NotFound,
            StoreError::Conflict(m) => ApiError::Conflict(m.to_string()),
            StoreError::Capacity => ApiError::Capacity,
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                ApiError::Unavailable
            }
        }
    }
}

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> Self {
        match e {
            DeskError::Store(s) => s.into(),
            DeskError::Role => ApiError::Forbidden,
            DeskError::Blocked(_) => {
                ApiError::Invalid("withheld: the text contains a payment card number".into())
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejection is an [`ApiError`] like every other error.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::Invalid(
                "expected Content-Type: application/json".into(),
            )),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::Invalid("body is not valid JSON".into()))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                let detail = e.body_text();
                // Name the field, never quote the value.
                let message = if detail.contains("missing field") {
                    detail
                } else {
                    "a field has the wrong type or value".into()
                };
                Err(ApiError::Invalid(message))
            }
            Err(_) => Err(ApiError::Invalid("unreadable body".into())),
        }
    }
}

/// A logged-in staff user, from `Authorization: Bearer <session token>`.
pub struct Staff(pub User);

impl FromRequestParts<App> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let digest = crate::auth::token::digest(token);
        match app.store.session_user(&digest, app.clock.now()).await {
            Ok(u) => Ok(Staff(u)),
            Err(StoreError::NotFound) => Err(ApiError::Unauthenticated),
            Err(e) => Err(e.into()),
        }
    }
}

pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}
