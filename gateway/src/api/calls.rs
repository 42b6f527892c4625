//! Live calls and recordings: the state of a call, the PCI pause and resume (the agent's
//! console or any system acting with a staff session), and a recording's layout and pause
//! intervals (never its audio: that is read through a grant, `grants::recording`).

use super::{ApiError, ApiResult, Body, Path, Staff};
use crate::app::App;
use crate::audit::Context;
use crate::auth::{require, Permission};
use crate::clock::Timestamp;
use crate::desk::Desk;
use crate::ids::TicketId;
use crate::store::{RecordingState, StoredRecording, User};
use crate::vault::KeyOwner;
use crate::voice::call::{open_manifest, PauseError};
use crate::voice::directory::{Home, Unavailable};
use crate::voice::relay::Hop;
use crate::voice::Call;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallView {
    /// The call's id (the media stream's).
    pub call: String,
    /// The recording's rate: 8000 with a phone leg, 16000 for a call from the browser.
    pub rate: u32,
    pub ticket: TicketId,
    pub recording: i64,
    pub paused: bool,
    pub paused_by: Option<String>,
    /// The staff user on the agent leg, if one is connected.
    pub agent: Option<i64>,
}

fn view(c: &Call) -> CallView {
    CallView {
        call: c.id.clone(),
        rate: c.rate.hz(),
        ticket: c.ticket,
        recording: c.recording,
        paused: c.is_paused(),
        paused_by: c.paused_by(),
        agent: c.agent().map(|u| u.0),
    }
}

/// A live call, wherever it is held.
enum Live {
    Here(Arc<Call>),
    Elsewhere(Home),
}

/// The node holding a call that is not here, as the API answers for it.
fn found(held: Result<Option<Home>, Unavailable>) -> ApiResult<Home> {
    match held {
        Ok(Some(home)) => Ok(home),
        Ok(None) => Err(ApiError::NotFound),
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// The live call, for someone who may read its ticket.
async fn live_call(app: &App, me: &User, hop: &Hop, id: &str) -> ApiResult<Live> {
    let live = match app.calls.get(id) {
        Some(call) => Live::Here(call),
        None => Live::Elsewhere(found(hop.elsewhere(app.calls.directory.find(id)).await)?),
    };
    let ticket = match &live {
        Live::Here(call) => call.ticket,
        Live::Elsewhere(home) => home.ticket,
    };
    app.desk.readable_ticket(me, ticket).await?;
    Ok(live)
}

/// A live call: its ticket, recording and pause state, and the agent on it.
#[utoipa::path(get, path = "/api/calls/{id}", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, body = CallView),
        (status = 403, description = "not a ticket the caller may read; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such call going on (on any node)", body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    Staff(me): Staff,
    hop: Hop,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    match live_call(&app, &me, &hop, &id).await? {
        Live::Here(call) => Ok(Json(view(&call)).into_response()),
        Live::Elsewhere(home) => Ok(hop.forward(&app, &home, None).await),
    }
}

/// The call going on in a ticket, for someone who may read it: how a console learns which
/// call to join when a ticket turns into a call.
#[utoipa::path(get, path = "/api/tickets/{id}/call", tag = "calls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = CallView),
        (status = 403, description = "not a ticket the caller may read; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such ticket, or no call going on in it (on any node)", body = super::ErrorBody)))]
pub async fn of_ticket(
    State(app): State<App>,
    Staff(me): Staff,
    hop: Hop,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let ticket = TicketId(id);
    app.desk.readable_ticket(&me, ticket).await?;
    if let Some(call) = app.calls.of_ticket(ticket) {
        return Ok(Json(view(&call)).into_response());
    }
    let home = found(hop.elsewhere(app.calls.directory.of_ticket(ticket)).await)?;
    Ok(hop.forward(&app, &home, None).await)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PauseRequest {
    /// Why (needed to pause, e.g. "card details"; optional to resume).
    pub reason: Option<String>,
}

fn pause_error(e: PauseError) -> ApiError {
    match e {
        PauseError::Reason => ApiError::Invalid(e.to_string()),
        other => ApiError::Conflict(other.to_string()),
    }
}

/// Pauses the call's recording (for card details): the ticket's agent, or a lead or above.
#[utoipa::path(post, path = "/api/calls/{id}/pause", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path, description = "call id")), request_body = PauseRequest,
    responses((status = 200, body = CallView),
        (status = 400, description = "a reason of 3 to 200 characters is needed", body = super::ErrorBody),
        (status = 403, description = "a role that does not work tickets, or not a ticket the caller may read; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such call going on (on any node)", body = super::ErrorBody),
        (status = 409, description = "already paused, or the call has ended", body = super::ErrorBody)))]
pub async fn pause(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    hop: Hop,
    Path(id): Path<String>,
    Body(req): Body<PauseRequest>,
) -> ApiResult<Response> {
    require(&me, Permission::WorkTickets).map_err(|_| ApiError::Forbidden)?;
    let call = match live_call(&app, &me, &hop, &id).await? {
        Live::Here(call) => call,
        Live::Elsewhere(home) => {
            let body = serde_json::json!({"reason": req.reason});
            return Ok(hop.forward(&app, &home, Some(body)).await);
        }
    };
    let by = format!("user:{}", me.id.0);
    call.pause(&app, &ctx.by(&me), &by, req.reason.as_deref().unwrap_or(""))
        .await
        .map_err(pause_error)?;
    Ok(Json(view(&call)).into_response())
}

/// Resumes the call's recording after a pause.
#[utoipa::path(post, path = "/api/calls/{id}/resume", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path, description = "call id")), request_body = PauseRequest,
    responses((status = 200, body = CallView),
        (status = 403, description = "a role that does not work tickets, or not a ticket the caller may read; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, description = "no such call going on (on any node)", body = super::ErrorBody),
        (status = 409, description = "not paused, or the call has ended", body = super::ErrorBody)))]
pub async fn resume(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
    hop: Hop,
    Path(id): Path<String>,
    Body(req): Body<PauseRequest>,
) -> ApiResult<Response> {
    require(&me, Permission::WorkTickets).map_err(|_| ApiError::Forbidden)?;
    let call = match live_call(&app, &me, &hop, &id).await? {
        Live::Here(call) => call,
        Live::Elsewhere(home) => {
            let body = serde_json::json!({"reason": req.reason});
            return Ok(hop.forward(&app, &home, Some(body)).await);
        }
    };
    let by = format!("user:{}", me.id.0);
    call.resume(&app, &ctx.by(&me), &by, req.reason.as_deref())
        .await
        .map_err(pause_error)?;
    Ok(Json(view(&call)).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PauseView {
    /// Offsets from the start of the recording, in milliseconds.
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub by: String,
    pub resumed_by: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordingView {
    pub id: i64,
    pub ticket: TicketId,
    pub call: String,
    pub state: RecordingState,
    pub rate: u32,
    pub channels: Vec<String>,
    pub duration_ms: u64,
    pub segments: i64,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub pauses: Vec<PauseView>,
}

/// A recording's row with its manifest opened: for the API and the grant's export.
pub async fn opened(
    app: &App,
    id: i64,
) -> ApiResult<(
    StoredRecording,
    Option<crate::voice::recording::Manifest>,
    Option<Arc<recorder::DataKey>>,
)> {
    let rec = app.store.recording(id).await?;
    let key = app
        .store
        .data_key(&KeyOwner::recording(id), false, app.clock.now())
        .await?;
    let manifest = match (&key, &rec.manifest) {
        (Some(k), Some(sealed)) => {
            Some(open_manifest(k, id, rec.segments, sealed).map_err(|e| {
                tracing::warn!(recording = id, error = %e, "recording manifest does not open");
                ApiError::Conflict("the recording's manifest does not open: altered".into())
            })?)
        }
        _ => None,
    };
    Ok((rec, manifest, key))
}

/// A recording's layout and pauses, for whoever may read its ticket while it is not closed;
/// never the audio.
#[utoipa::path(get, path = "/api/recordings/{id}", tag = "calls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "recording id")),
    responses((status = 200, body = RecordingView),
        (status = 403, description = "not a ticket the caller may read, and not a role that may ask for a grant; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "the recording's manifest does not open: altered", body = super::ErrorBody)))]
pub async fn recording(
    State(app): State<App>,
    Staff(me): Staff,
    Path(id): Path<i64>,
) -> ApiResult<Json<RecordingView>> {
    let rec = app.store.recording(id).await?;
    let ticket = app.store.ticket(rec.ticket).await?;
    if !(Desk::may_read(&me, &ticket) || me.role.can(Permission::RequestGrant)) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(view_recording(&app, id).await?))
}

/// A recording's view: its row and its manifest's pauses.
async fn view_recording(app: &App, id: i64) -> ApiResult<RecordingView> {
    let (rec, manifest, _) = opened(app, id).await?;
    let frame = u64::from(crate::voice::media::FRAME_MS);
    let pauses = manifest
        .as_ref()
        .map(|m| {
            m.pauses
                .iter()
                .map(|p| PauseView {
                    start_ms: p.start_frame * frame,
                    end_ms: p.end_frame.map(|f| f * frame),
                    by: p.by.clone(),
                    resumed_by: p.resumed_by.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(RecordingView {
        id: rec.id,
        ticket: rec.ticket,
        call: rec.call_id,
        state: rec.state,
        rate: rec.rate,
        channels: crate::voice::recording::CHANNELS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        duration_ms: u64::try_from(rec.frames).unwrap_or(0) * frame,
        segments: rec.segments,
        started_at: rec.started_at,
        ended_at: rec.ended_at,
        pauses,
    })
}

/// The recordings of a ticket's calls, oldest first, for whoever may read the ticket and for
/// the roles that may ask for a grant (how a supervisor finds the recording to ask for).
#[utoipa::path(get, path = "/api/tickets/{id}/recordings", tag = "calls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = Vec<RecordingView>),
        (status = 403, description = "not a ticket the caller may read, and not a role that may ask for a grant; or the calling page's origin may not use the staff API", body = super::ErrorBody),
        (status = 404, body = super::ErrorBody),
        (status = 409, description = "a recording's manifest does not open: altered", body = super::ErrorBody)))]
pub async fn of_ticket_recordings(
    State(app): State<App>,
    Staff(me): Staff,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<RecordingView>>> {
    let ticket = app.store.ticket(TicketId(id)).await?;
    if !(Desk::may_read(&me, &ticket) || me.role.can(Permission::RequestGrant)) {
        return Err(ApiError::Forbidden);
    }
    let mut out = Vec::new();
    for rec in app.store.ticket_recordings(ticket.id).await? {
        out.push(view_recording(&app, rec.id).await?);
    }
    Ok(Json(out))
}
