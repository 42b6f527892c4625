//! `GET /api/queue`: the live queue as it stands, with its figures.

use super::{ApiResult, Staff};
use crate::app::App;
use crate::store::{QueueStats, Ticket};
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub stats: QueueStats,
    /// Agents with an open console on this node.
    pub agents_online: usize,
    /// Queued tickets, most urgent and longest waiting first (at most 200).
    pub tickets: Vec<Ticket>,
}

/// The queue and its figures.
#[utoipa::path(get, path = "/api/queue", tag = "tickets", security(("bearer" = [])),
    responses((status = 200, body = QueueView), (status = 401, body = super::ErrorBody)))]
pub async fn show(State(app): State<App>, Staff(_me): Staff) -> ApiResult<Json<QueueView>> {
    let stats = app.store.queue_stats(app.clock.now()).await?;
    let tickets = app.store.queue(200).await?;
    Ok(Json(QueueView {
        stats,
        agents_online: app.desk.hub.online_agents().len(),
        tickets,
    }))
}
