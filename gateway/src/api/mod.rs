//! The REST API (`/api/...`): everything that is not live. One file per resource; the
//! OpenAPI document at `/api/openapi.json` is generated from the handlers' annotations.

pub mod alerts;
pub mod attachments;
pub mod audit;
pub mod bootstrap;
pub mod calls;
pub mod customers;
pub mod exports;
mod extract;
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
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

pub use extract::{Body, Path, Query};

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
    /// A rate limit (429, with `Retry-After`).
    RateLimited(crate::limits::Limited),
}

impl From<crate::limits::Limited> for ApiError {
    fn from(l: crate::limits::Limited) -> Self {
        ApiError::RateLimited(l)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// One of: unauthenticated, forbidden, not_found, conflict, capacity, invalid, unavailable;
    /// for step-up and second factors also: verification_required, cannot_verify, mail_failed,
    /// locked, retry_later, mfa_required (login: the password was right, the code is missing);
    /// rate_limited (429, see `Retry-After`), too_large (413); method_not_allowed (405, see
    /// `Allow`).
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
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
            ApiError::RateLimited(l) => {
                let secs = l.retry_after_secs();
                retry_after = Some(secs);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests ({}); retry in {secs} s", l.rule.as_str()),
                )
            }
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                error: ErrorDetail { code, message },
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
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

/// Takes a token of `rule` for `key`; refused callers are logged and get 429.
pub async fn limit(app: &App, rule: crate::limits::Rule, key: &str) -> ApiResult<()> {
    app.limiter
        .check(rule, key, app.clock.now())
        .await
        .map_err(|l| {
            tracing::info!(target: "deskgate::security", rule = rule.as_str(), "rate limited");
            ApiError::from(l)
        })
}

/// A logged-in staff user, from `Authorization: Bearer <session token>`.
pub struct Staff(pub User);

impl FromRequestParts<App> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        staff_origin(app, &parts.headers)?;
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let digest = crate::auth::token::digest(token);
        let idle = app.config.session_idle_timeout;
        match app.store.session_user(&digest, app.clock.now(), idle).await {
            Ok(u) => Ok(Staff(u)),
            Err(StoreError::NotFound) => Err(ApiError::Unauthenticated),
            Err(e) => Err(e.into()),
        }
    }
}

/// Staff calls come from the gateway's own consoles or from programs (no `Origin`); a page
/// elsewhere is refused even when it holds a token, and browsers get no CORS grant for it.
pub fn staff_origin(app: &App, headers: &axum::http::HeaderMap) -> ApiResult<()> {
    crate::origin::RequestOrigin::from_headers(headers)
        .check_staff(&app.config)
        .map_err(|refused| {
            tracing::warn!(target: "deskgate::security", %refused, "staff API call refused");
            ApiError::Forbidden
        })
}

pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}
