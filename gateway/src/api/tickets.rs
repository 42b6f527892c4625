//! Tickets over REST: lists, one ticket with its messages and notes, a customer's history,
//! priority changes. Agents see queued tickets and their own; leads, supervisors and admins
//! see all. Reading someone else's ticket is refused (403) and audited, like every read. A
//! closed ticket's messages open only through an access grant ([`super::grants`]).

use super::customers::CustomerView;
use super::{ApiError, ApiResult, Body, Path, Query, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event, Outcome};
use crate::auth::{require, Permission};
use crate::desk::{Desk, DeskError};
use crate::ids::{CustomerId, Seq, TicketId, UserId};
use crate::store::{Message, Note, Priority, Ticket, TicketFilter, TicketStatus, User};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub status: Option<TicketStatus>,
    pub agent: Option<i64>,
    pub customer: Option<i64>,
    /// At most 500; default 100.
    pub limit: Option<i64>,
}

fn limit(l: Option<i64>) -> ApiResult<i64> {
    match l {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::Invalid("limit must be 1-500".into())),
    }
}

/// List tickets, newest first.
#[utoipa::path(get, path = "/api/tickets", tag = "tickets", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<Ticket>), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Ticket>>> {
    let filter = TicketFilter {
        status: q.status,
        agent: q.agent.map(UserId),
        customer: q.customer.map(CustomerId),
        limit: limit(q.limit)?,
    };
    let tickets: Vec<Ticket> = app
        .store
        .tickets(filter)
        .await?
        .into_iter()
        .filter(|t| Desk::may_read(&me, t))
        .map(Ticket::outside_grant)
        .collect();
    let ev = listed("tickets", &tickets);
    let _ = app.audit(&ctx.by(&me), ev).await;
    Ok(Json(tickets))
}

/// The audit entry of a list read: one entry for the request, naming every customer shown,
/// so that "who looked at customer X" finds it like a read of one of X's tickets.
pub(crate) fn listed(what: &str, tickets: &[Ticket]) -> Event {
    Event::allowed(Action::TicketRead)
        .detail(format!("{what}: {} listed", tickets.len()))
        .customers(tickets.iter().map(|t| t.customer.id))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketDetail {
    pub ticket: Ticket,
    pub notes: Vec<Note>,
    /// The customer, contact details masked.
    pub customer: CustomerView,
}

/// Which part of a ticket is read, for the audit entry.
#[derive(Clone, Copy)]
enum Part {
    Ticket,
    Messages,
    Notes,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Ticket => "ticket",
            Part::Messages => "messages",
            Part::Notes => "notes",
        }
    }
}

/// A ticket the user may read, with the read (or the refusal) audited. A closed ticket's
/// messages are refused here: they open only through a grant.
async fn read_ticket(
    app: &App,
    me: &User,
    ctx: Context,
    id: TicketId,
    part: Part,
) -> ApiResult<Ticket> {
    let ctx = ctx.by(me);
    let ticket = match app.desk.readable_ticket(me, id).await {
        Ok(t) => t,
        Err(DeskError::Role) => {
            let mut ev = Event::denied(Action::TicketRead)
                .object("ticket", id.0)
                .detail(part.as_str());
            if let Ok(t) = app.store.ticket(id).await {
                ev = ev.customer(t.customer.id);
            }
            let _ = app.audit(&ctx, ev).await;
            return Err(ApiError::Forbidden);
        }
        Err(e) => return Err(e.into()),
    };
    // A closed ticket's messages and notes are its transcript.
    if matches!(part, Part::Messages | Part::Notes) && ticket.status == TicketStatus::Closed {
        let ev = Event::denied(Action::TranscriptRead)
            .customer(ticket.customer.id)
            .object("transcript", id.0)
            .detail("closed: needs an access grant");
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let ev = Event::allowed(Action::TicketRead)
        .customer(ticket.customer.id)
        .object("ticket", id.0)
        .detail(part.as_str());
    let _ = app.audit(&ctx, ev).await;
    Ok(ticket)
}

/// One ticket with its internal notes; a closed ticket's subject and notes are left empty
/// (they are part of its transcript, read through an access grant).
#[utoipa::path(get, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketDetail), (status = 401, body = super::ErrorBody), (status = 403, description = "someone else's ticket, or a closed ticket's messages (use a grant)", body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<Json<TicketDetail>> {
    let ticket = read_ticket(&app, &me, ctx, TicketId(id), Part::Ticket).await?;
    // A closed ticket's notes and subject open only through an access grant.
    let notes = if ticket.status == TicketStatus::Closed {
        Vec::new()
    } else {
        app.store.notes(ticket.id).await?
    };
    let customer = CustomerView::from(&app.store.customer(ticket.customer.id).await?);
    Ok(Json(TicketDetail {
        ticket: ticket.outside_grant(),
        notes,
        customer,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct MessagesQuery {
    /// Return messages after this sequence number; default 0.
    pub after: Option<i64>,
    /// At most 500; default 100.
    pub limit: Option<i64>,
}

/// A ticket's messages in sequence order.
#[utoipa::path(get, path = "/api/tickets/{id}/messages", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id"), MessagesQuery),
    responses((status = 200, body = Vec<Message>), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 403, description = "someone else's ticket, or a closed ticket's messages (use a grant)", body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn messages(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Query(q): Query<MessagesQuery>,
) -> ApiResult<Json<Vec<Message>>> {
    let ticket = read_ticket(&app, &me, ctx, TicketId(id), Part::Messages).await?;
    let after = Seq(q.after.unwrap_or(0).max(0));
    Ok(Json(
        app.store
            .messages_after(ticket.conversation, after, limit(q.limit)?)
            .await?,
    ))
}

/// Internal notes of a ticket; refused for a closed ticket (read them through a grant).
#[utoipa::path(get, path = "/api/tickets/{id}/notes", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = Vec<Note>), (status = 401, body = super::ErrorBody), (status = 403, description = "someone else's ticket, or a closed ticket's messages (use a grant)", body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn notes(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Note>>> {
    let ticket = read_ticket(&app, &me, ctx, TicketId(id), Part::Notes).await?;
    Ok(Json(app.store.notes(ticket.id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateTicket {
    pub priority: Option<Priority>,
}

/// Change a ticket's priority (its agent, or a lead, supervisor or admin).
#[utoipa::path(patch, path = "/api/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    request_body = UpdateTicket,
    responses((status = 200, body = Ticket), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 403, description = "neither the ticket's agent nor a lead, supervisor or admin; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)))]
pub async fn update(
    State(app): State<App>,
    Staff(me): Staff,
    Path(id): Path<i64>,
    Body(req): Body<UpdateTicket>,
) -> ApiResult<Json<Ticket>> {
    let ticket = app.desk.readable_ticket(&me, TicketId(id)).await?;
    let own = ticket.agent.as_ref().map(|a| a.id) == Some(me.id);
    if !(own || me.role.sees_all_tickets()) {
        return Err(ApiError::Forbidden);
    }
    let Some(priority) = req.priority else {
        return Ok(Json(ticket.outside_grant()));
    };
    let t = app.store.set_priority(ticket.id, priority).await?;
    app.desk.publish_ticket(&t).await;
    Ok(Json(t.outside_grant()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LegalHold {
    /// `true` keeps the transcript past its retention period; `false` releases it.
    pub hold: bool,
    /// Why (a case or matter number): 10–500 characters, kept in the audit log.
    pub reason: String,
}

/// Put a ticket's transcript on legal hold, or release it (admins). A held transcript is
/// never crypto-shredded; once released, the next retention sweep may shred it.
#[utoipa::path(put, path = "/api/tickets/{id}/legal-hold", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    request_body = LegalHold,
    responses((status = 204), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn legal_hold(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<LegalHold>,
) -> ApiResult<axum::http::StatusCode> {
    let ctx = ctx.by(&me);
    let action = if req.hold {
        Action::LegalHoldSet
    } else {
        Action::LegalHoldReleased
    };
    if require(&me, Permission::SetLegalHold).is_err() {
        let _ = app
            .audit(&ctx, Event::denied(action).object("ticket", id))
            .await;
        return Err(ApiError::Forbidden);
    }
    let reason = req.reason.trim();
    let length = reason.chars().count();
    if !(10..=500).contains(&length) || reason.chars().any(char::is_control) {
        return Err(ApiError::Invalid(
            "reason must be 10 to 500 characters, without control characters".into(),
        ));
    }
    let ticket = app.store.ticket(TicketId(id)).await?;
    // The entry is written first: a hold nobody can account for is not set.
    let ev = Event::new(action, Outcome::Allowed)
        .object("ticket", ticket.id.0)
        .detail(reason.to_string());
    app.audit(&ctx, ev)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    app.store.set_legal_hold(ticket.id, req.hold).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A customer's tickets, newest first: the history an agent sees beside the chat. Agents see
/// it only for customers whose ticket they hold.
#[utoipa::path(get, path = "/api/customers/{id}/tickets", tag = "customers", security(("bearer" = [])),
    params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = Vec<Ticket>), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such customer, or none whose ticket the caller holds", body = super::ErrorBody)))]
pub async fn customer_history(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Ticket>>> {
    let ctx = ctx.by(&me);
    let tickets = app
        .store
        .tickets(TicketFilter {
            customer: Some(CustomerId(id)),
            limit: 200,
            ..Default::default()
        })
        .await?;
    let holds_one = tickets
        .iter()
        .any(|t| t.is_open() && t.agent.as_ref().map(|a| a.id) == Some(me.id));
    if !(me.role.sees_all_tickets() || holds_one) {
        let ev = Event::denied(Action::TicketRead)
            .customer(CustomerId(id))
            .detail("history");
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::NotFound);
    }
    let ev = Event::allowed(Action::TicketRead)
        .customer(CustomerId(id))
        .detail(format!("history: {} listed", tickets.len()));
    let _ = app.audit(&ctx, ev).await;
    Ok(Json(
        tickets.into_iter().map(Ticket::outside_grant).collect(),
    ))
}
