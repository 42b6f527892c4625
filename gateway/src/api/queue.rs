//! `GET /api/queue`: the live queue as it stands, with its figures.

use super::{ApiError, ApiResult, Staff};
use crate::app::App;
use crate::audit::{Action, Context, Event};
use crate::auth::{require, Permission};
use crate::store::{QueueStats, Ticket};
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub stats: QueueStats,
    /// Agents with an open console: on any node with Redis, on this one without.
    pub agents_online: usize,
    /// Who they are, with how many consoles they have open and on how many nodes.
    pub agents: Vec<crate::presence::OnlineAgent>,
    /// Queued tickets, most urgent and longest waiting first (at most 200).
    pub tickets: Vec<Ticket>,
}

/// The queue and its figures (roles that see the live queue).
#[utoipa::path(get, path = "/api/queue", tag = "tickets", security(("bearer" = [])),
    responses((status = 200, body = QueueView), (status = 401, body = super::ErrorBody),
        (status = 403, description = "the role does not see the queue", body = super::ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    Staff(me): Staff,
    ctx: Context,
) -> ApiResult<Json<QueueView>> {
    let ctx = ctx.by(&me);
    if require(&me, Permission::ViewQueue).is_err() {
        let ev = Event::denied(Action::TicketRead).detail("queue");
        let _ = app.audit(&ctx, ev).await;
        return Err(ApiError::Forbidden);
    }
    let stats = app.store.queue_stats(app.clock.now()).await?;
    let tickets = app.store.queue(200).await?;
    let _ = app
        .audit(&ctx, super::tickets::listed("queue", &tickets))
        .await;
    let agents = app.desk.hub.online_agents().await;
    Ok(Json(QueueView {
        stats,
        agents_online: agents.len(),
        agents,
        tickets,
    }))
}
