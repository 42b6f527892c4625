//! Customers as staff see them: `GET /api/customers/{id}` with email and phone masked, and
//! `POST /api/customers/{id}/reveal`, which returns one clear value to a role holding
//! [`Permission::RevealPii`], for a stated reason, after writing the audit entry.
//!
//! Staff may look at a customer they may read a ticket of: one queued or their own for those
//! who work tickets, any for leads, supervisors and admins. Reads and refusals are audited.

use super::{ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::auth::{mask, require, Permission};
use crate::clock::Timestamp;
use crate::desk::Desk;
use crate::ids::CustomerId;
use crate::store::{Customer, TicketFilter, User};
use axum::extract::State;
use axum::Json;
use recorder::grant::Reason;
use serde::{Deserialize, Serialize};

/// A customer with contact details masked (`j***@example.com`, `+1 ***-***-0132`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: CustomerId,
    pub site: String,
    pub name: String,
    pub verified: bool,
    /// Masked; reveal it through `POST /api/customers/{id}/reveal`.
    pub email: Option<String>,
    /// Masked; reveal it through `POST /api/customers/{id}/reveal`.
    pub phone: Option<String>,
    pub created_at: Timestamp,
}

impl From<&Customer> for CustomerView {
    fn from(c: &Customer) -> Self {
        CustomerView {
            id: c.id,
            site: c.site.clone(),
            name: c.name.clone(),
            verified: c.verified,
            email: c.email.as_deref().map(mask::email),
            phone: c.phone.as_deref().map(mask::phone),
            created_at: c.created_at,
        }
    }
}

/// Which contact detail to reveal.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Email,
    Phone,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::Phone => "phone",
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RevealRequest {
    pub field: Field,
    /// Why the clear value is needed: 10-500 characters; kept in the audit log.
    pub reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revealed {
    pub field: Field,
    /// The clear value; null when the customer has none.
    pub value: Option<String>,
}

/// The customer, if the user may read one of their tickets; refusals are audited.
pub(super) async fn readable_customer(
    app: &App,
    me: &User,
    ctx: &Context,
    id: CustomerId,
) -> ApiResult<Customer> {
    let customer = app.store.customer(id).await?;
    let tickets = app
        .store
        .tickets(TicketFilter {
            customer: Some(id),
            limit: 200,
            ..Default::default()
        })
        .await?;
    let may = me.role.can(Permission::ReadAllTickets)
        || tickets.iter().any(|t| t.is_open() && Desk::may_read(me, t));
    if !may {
        let ev = Event::denied(Action::CustomerRead).customer(id);
        let _ = app.audit(ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    Ok(customer)
}

/// A customer, contact details masked.
#[utoipa::path(get, path = "/api/customers/{id}", tag = "customers", security(("bearer" = [])),
    params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = CustomerView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<Json<CustomerView>> {
    let ctx = ctx.by(&me);
    let customer = readable_customer(&app, &me, &ctx, CustomerId(id)).await?;
    let _ = app
        .audit(
            &ctx,
            Event::allowed(Action::CustomerRead).customer(customer.id),
        )
        .await;
    Ok(Json(CustomerView::from(&customer)))
}

/// Reveal one clear contact detail, with a reason. Needs the reveal permission (leads,
/// supervisors, admins); every reveal and every refusal is audited, and the value is returned
/// only once its audit entry is written.
#[utoipa::path(post, path = "/api/customers/{id}/reveal", tag = "customers", security(("bearer" = [])),
    params(("id" = i64, Path, description = "customer id")),
    request_body = RevealRequest,
    responses((status = 200, body = Revealed), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn reveal(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<RevealRequest>,
) -> ApiResult<Json<Revealed>> {
    let ctx = ctx.by(&me);
    let id = CustomerId(id);
    let field = req.field.as_str();
    if require(&me, Permission::RevealPii).is_err() {
        let ev = Event::denied(Action::PiiRevealed)
            .customer(id)
            .detail(format!("field={field}; role may not reveal"));
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let reason = Reason::parse(&req.reason).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let customer = readable_customer(&app, &me, &ctx, id).await?;
    let value = match req.field {
        Field::Email => customer.email.clone(),
        Field::Phone => customer.phone.clone(),
    };
    let ev = Event::allowed(Action::PiiRevealed)
        .customer(id)
        .detail(format!("field={field}; reason={}", reason.as_str()));
    // No entry, no value.
    app.audit(&ctx, ev)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(Revealed {
        field: req.field,
        value,
    }))
}
