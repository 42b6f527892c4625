//! Probes and metrics: `/healthz` (the process answers), `/readyz` (it can serve: store and
//! bus reachable, rate limits shared when Redis is configured, not shutting down), `/metrics` (Prometheus text format).

use crate::app::App;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn live() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready, with the reason")))]
pub async fn ready(State(app): State<App>) -> (StatusCode, String) {
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "readiness: store");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable\n".into(),
        );
    }
    let mut not = String::new();
    if !app.desk.hub.bus_ready() {
        not.push_str("bus unavailable\n");
    }
    if !app.limiter.ready().await {
        // Limits still hold, per node; over the cluster they are looser until Redis is back.
        not.push_str("rate limits node-local: Redis unavailable\n");
    }
    if !not.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, not);
    }
    (StatusCode::OK, "ready\n".into())
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let queue = app
        .store
        .queue_stats(app.clock.now())
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics
            .render(&queue, &app.desk.hub.registry, &app.stepup.outcomes),
    )
}
