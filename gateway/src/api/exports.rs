//! `POST /api/tickets/{id}/exports`: customer data leaving the console. The agent console
//! calls it when staff copy text out of a ticket's customer panel or transcript, and before it
//! hands over an exported transcript; it shows the "this is recorded" notice only once the
//! entry is written. The gateway cannot see a browser's clipboard, so a copy entry is the
//! console's report of what happened on its page; an export is refused unless recorded first.
//!
//! Entries say who, which ticket and customer, where the copy came from and how many
//! characters it had; never the copied text.

use super::{ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::clock::Timestamp;
use crate::desk::Desk;
use crate::ids::TicketId;
use crate::store::TicketStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

/// Longest copy recorded as its length; anything longer counts as this much.
const MAX_CHARS: u32 = 1_000_000;

/// What left the console.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// Text copied to the clipboard.
    Copy,
    /// The ticket's transcript, downloaded as a file.
    Transcript,
}

/// Where in the console a copy was made.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopySource {
    /// The conversation's messages.
    Transcript,
    /// The customer panel (name, contact details, notes, history).
    Customer,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ExportRequest {
    pub kind: ExportKind,
    /// For a copy: where it was made.
    #[serde(default)]
    pub source: Option<CopySource>,
    /// For a copy: how many characters were copied (never the text itself).
    #[serde(default)]
    pub chars: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportRecorded {
    /// The audit action written: `customer_data_copied` or `transcript_exported`.
    pub action: &'static str,
    pub ticket: TicketId,
    /// The audit entry's number in the log.
    pub audit_seq: i64,
    pub at: Timestamp,
}

/// Record that customer data was copied out of a ticket or its transcript exported.
#[utoipa::path(post, path = "/api/tickets/{id}/exports", tag = "tickets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")), request_body = ExportRequest,
    responses(
        (status = 201, description = "the audit entry is written", body = ExportRecorded),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody),
        (status = 403, description = "not a ticket the caller may read, or a closed one (its transcript opens only through a grant)", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 503, description = "the entry could not be written: do not export", body = super::ErrorBody),
    ))]
pub async fn record(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    Path(id): Path<i64>,
    Body(req): Body<ExportRequest>,
) -> ApiResult<(StatusCode, Json<ExportRecorded>)> {
    let ctx = ctx.by(&me);
    let ticket = app.store.ticket(TicketId(id)).await?;
    let (action, detail) = match req.kind {
        ExportKind::Copy => {
            let source = req.source.ok_or_else(|| {
                ApiError::Invalid("a copy names its source: transcript or customer".into())
            })?;
            let source = match source {
                CopySource::Transcript => "transcript",
                CopySource::Customer => "customer",
            };
            let chars = req.chars.unwrap_or(0).min(MAX_CHARS);
            (
                Action::CustomerDataCopied,
                format!("source={source}; chars={chars}"),
            )
        }
        ExportKind::Transcript => (Action::TranscriptExported, "format=text".to_string()),
    };
    if !Desk::may_read(&me, &ticket) || ticket.status == TicketStatus::Closed {
        let ev = Event::denied(action)
            .customer(ticket.customer.id)
            .object("ticket", id)
            .detail(detail);
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let ev = Event::allowed(action)
        .customer(ticket.customer.id)
        .object("ticket", id)
        .detail(detail);
    let written = app
        .audit(&ctx, ev)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok((
        StatusCode::CREATED,
        Json(ExportRecorded {
            action: action.as_str(),
            ticket: ticket.id,
            audit_seq: written.seq,
            at: Timestamp(written.entry.at),
        }),
    ))
}
