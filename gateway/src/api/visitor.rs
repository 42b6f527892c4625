//! `POST /api/visitor`: a customer arriving through the widget gets a visitor token for
//! `/ws/customer`. With a signed identity token from the site, the customer is "verified"
//! and matched to their earlier conversations; without one, whatever they say about
//! themselves is kept but marked unverified.

use super::{ApiError, ApiResult, Body};
use crate::app::App;
use crate::auth::{identity, token};
use crate::clock::Timestamp;
use crate::ids::CustomerId;
use crate::origin::RequestOrigin;
use crate::store::NewCustomer;
use axum::extract::State;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VisitorRequest {
    /// The key of the embedding site.
    pub site_key: String,
    /// JWT (HS256) signed by the site with its identity secret: `sub`, `name`, `email`,
    /// `phone`, `locale`, `exp`.
    pub identity_token: Option<String>,
    /// The widget's language (a BCP 47 tag such as `ru` or `zh-CN`): step-up code emails are
    /// written in it when it is one with a text (en, ru, zh, fa) and the identity token names
    /// no `locale`.
    pub lang: Option<String>,
    /// Name the customer typed (unverified).
    pub name: Option<String>,
    /// Email the customer typed (unverified).
    pub email: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VisitorCustomer {
    pub id: CustomerId,
    pub name: String,
    pub verified: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VisitorCreated {
    /// Token for the `hello` of `/ws/customer`. Shown once.
    pub visitor_token: String,
    pub expires_at: Timestamp,
    pub customer: VisitorCustomer,
}

impl From<identity::FieldError> for ApiError {
    fn from(e: identity::FieldError) -> Self {
        ApiError::Invalid(e.to_string())
    }
}

/// Start a customer session.
#[utoipa::path(post, path = "/api/visitor", tag = "customers", request_body = VisitorRequest,
    responses(
        (status = 201, body = VisitorCreated),
        (status = 400, body = super::ErrorBody),
        (status = 401, description = "identity token invalid or expired", body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not embed this site", body = super::ErrorBody),
        (status = 404, description = "unknown site key", body = super::ErrorBody),
        (status = 429, description = "rate_limited: too many new visitors from this address (Retry-After)", body = super::ErrorBody),
        (status = 503, description = "unavailable: the store cannot be reached; retry later", body = super::ErrorBody),
    ))]
pub async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    ctx: crate::audit::Context,
    Body(req): Body<VisitorRequest>,
) -> ApiResult<(StatusCode, HeaderMap, Json<VisitorCreated>)> {
    super::limit(
        &app,
        crate::limits::Rule::VisitorPerIp,
        ctx.ip.as_deref().unwrap_or("-"),
    )
    .await?;
    let site = app.sites.get(&req.site_key).ok_or(ApiError::NotFound)?;
    let origin = RequestOrigin::from_headers(&headers);
    if let Err(refused) = origin.check_site(&app.config, site) {
        tracing::warn!(target: "deskgate::security", %refused, site = %site.key,
            "visitor session refused");
        return Err(ApiError::Forbidden);
    }
    let cors = cors_headers(&headers);
    let now = app.clock.now();
    let lang = identity::clean("lang", req.lang, 35)?;
    if lang
        .as_deref()
        .is_some_and(|l| !verify::template::is_language_tag(l))
    {
        return Err(ApiError::Invalid(
            "lang must be a language tag such as ru or zh-CN".into(),
        ));
    }
    let mut language = lang;
    let new = match &req.identity_token {
        Some(t) => {
            let id = identity::verify(t, site.identity_secret.as_ref(), now).map_err(|e| {
                tracing::info!(site = %site.key, error = %e, "identity token refused");
                ApiError::Unauthenticated
            })?;
            let (customer, locale) = id.customer(&site.key)?;
            // What the site signed wins over what the widget guessed, if it has a text.
            if locale.is_some() {
                language = locale;
            }
            customer
        }
        None => NewCustomer {
            site: site.key.clone(),
            external_id: None,
            name: identity::clean("name", req.name, 120)?.unwrap_or_else(|| "Visitor".into()),
            email: identity::clean("email", req.email, 254)?,
            phone: None,
            verified: false,
        },
    };
    let customer = app.store.upsert_customer(new, now).await?;
    if let Some(l) = &language {
        app.stepup.remember_language(customer.id, l).await?;
    }
    let (secret, digest) = token::issue(token::Kind::Visitor);
    let expires_at = now.plus(app.config.visitor_ttl);
    app.store
        .create_visitor(&digest, customer.id, now, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        cors,
        Json(VisitorCreated {
            visitor_token: secret.expose_secret().to_string(),
            expires_at,
            customer: VisitorCustomer {
                id: customer.id,
                name: customer.name,
                verified: customer.verified,
            },
        }),
    ))
}

/// The CORS answer for a page embedding the widget elsewhere than on the gateway: the request
/// was already checked against the site's `allowed_origins`, so its origin is echoed back (never
/// `*`), and no credentials are allowed: the visitor token travels in the body.
pub(super) fn cors_headers(request: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(origin) = request.get(ORIGIN) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(VARY, HeaderValue::from_static("origin"));
    }
    headers
}

/// `OPTIONS /api/visitor`: the browser's preflight before a cross-origin `POST` with JSON. Which
/// site the page embeds is in the body, which a preflight does not carry, so the page is let
/// through when some site lists it (or it is the gateway's own); `POST` then checks that site.
pub async fn preflight(State(app): State<App>, headers: HeaderMap) -> Response {
    let origin = RequestOrigin::from_headers(&headers);
    let allowed = app
        .sites
        .all()
        .any(|site| origin.check_site(&app.config, site).is_ok());
    if !allowed || headers.get(ORIGIN).is_none() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut answer = cors_headers(&headers);
    answer.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    answer.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    answer.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    (StatusCode::NO_CONTENT, answer).into_response()
}
