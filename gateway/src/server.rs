//! The HTTP server: routes, and `run`, which serves a listener until shutdown and then waits
//! for every WebSocket connection to close.

use crate::api;
use crate::app::App;
use crate::ws;
use axum::extract::DefaultBodyLimit;
use axum::response::Html;
use axum::routing::{get, patch, post};
use axum::Router;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

/// Largest REST request body.
const MAX_BODY: usize = 64 * 1024;
/// How long shutdown waits for connections to close.
const DRAIN: Duration = Duration::from_secs(10);
/// How often resolved tickets past the reopen window are closed.
const SWEEP: Duration = Duration::from_secs(60);

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/bootstrap", post(api::bootstrap::create))
        .route(
            "/api/session",
            post(api::session::login).delete(api::session::logout),
        )
        .route("/api/me", get(api::session::me))
        .route(
            "/api/visitor",
            post(api::visitor::create).options(api::visitor::preflight),
        )
        .route("/api/users", get(api::users::list).post(api::users::create))
        .route("/api/users/{id}", patch(api::users::update))
        .route("/api/tickets", get(api::tickets::list))
        .route(
            "/api/tickets/{id}",
            get(api::tickets::show).patch(api::tickets::update),
        )
        .route("/api/tickets/{id}/messages", get(api::tickets::messages))
        .route("/api/tickets/{id}/notes", get(api::tickets::notes))
        .route(
            "/api/customers/{id}/tickets",
            get(api::tickets::customer_history),
        )
        .route("/api/queue", get(api::queue::show))
        .route("/api/sites/{key}/presence", get(api::presence::show))
        .route(
            "/api/tickets/{id}/verifications",
            get(api::verification::status).post(api::verification::request),
        )
        .route(
            "/api/verifications/{id}/resend",
            post(api::verification::resend),
        )
        .route(
            "/api/tickets/{id}/actions",
            post(api::verification::perform),
        )
        .route("/api/me/mfa", get(api::mfa::status))
        .route(
            "/api/me/mfa/totp",
            post(api::mfa::begin).delete(api::mfa::disable),
        )
        .route("/api/me/mfa/totp/confirm", post(api::mfa::confirm))
        .route("/api/me/mfa/recovery-codes", post(api::mfa::recovery_codes))
        .route(
            "/api/users/{id}/mfa",
            axum::routing::delete(api::mfa::reset),
        )
        .route("/api/customers/{id}", get(api::customers::show))
        .route("/api/customers/{id}/reveal", post(api::customers::reveal))
        .route(
            "/api/grants",
            get(api::grants::list).post(api::grants::create),
        )
        .route("/api/grants/{id}", get(api::grants::show))
        .route("/api/grants/{id}/approve", post(api::grants::approve))
        .route("/api/grants/{id}/deny", post(api::grants::deny))
        .route("/api/grants/{id}/revoke", post(api::grants::revoke))
        .route("/api/grants/{id}/transcript", get(api::grants::transcript))
        .route("/api/audit", get(api::audit::list))
        .route("/api/alerts", get(api::alerts::list))
        .route(
            "/api/tickets/{id}/legal-hold",
            axum::routing::put(api::tickets::legal_hold),
        )
        .route("/api/openapi.json", get(api::openapi::serve))
        .route("/healthz", get(api::health::live))
        .route("/readyz", get(api::health::ready))
        .route("/metrics", get(api::health::metrics))
        .route("/ws/customer", get(ws::customer))
        .route("/ws/agent", get(ws::agent))
        .merge(crate::web::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// Serves until `app.shutdown` is cancelled, then closes every connection (code 1001) and
/// waits up to ten seconds for them.
pub async fn run(listener: TcpListener, app: App) -> std::io::Result<()> {
    crate::desk::spawn_assigner(app.desk.clone(), app.shutdown.clone());
    spawn_sweeper(app.clone());
    let shutdown = app.shutdown.clone();
    let tracker = app.tracker.clone();
    let auditor = app.auditor.clone();
    // The client's address is kept in audit entries.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!("some connections did not close in time");
    }
    // The last entries are signed before the process ends.
    if let Err(e) = auditor.checkpoint().await {
        tracing::error!(error = %e, "audit checkpoint at shutdown failed");
    }
    Ok(())
}

/// Every [`SWEEP`]: [`sweep`].
fn spawn_sweeper(app: App) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            sweep(&app).await;
        }
    });
}

/// Closes resolved tickets once the reopen window has passed, crypto-shreds transcripts past
/// their retention (unless on legal hold), and picks up a keyring rotated by `deskgate keys`.
pub async fn sweep(app: &App) {
    let now = app.clock.now();
    match app.store.close_resolved(app.desk.reopen_after(), now).await {
        Ok(closed) => {
            for t in &closed {
                app.desk.publish_ticket(t).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "closing resolved tickets failed"),
    }
    let closed_before = now.minus(app.config.transcript_retention);
    match app.store.shred_transcripts(closed_before, now).await {
        Ok(shredded) => {
            for s in &shredded {
                tracing::info!(
                    target: "deskgate::security",
                    ticket = %s.ticket,
                    conversation = %s.conversation,
                    "retention: transcript crypto-shredded (data key destroyed)"
                );
                let ev = crate::audit::Event::new(
                    crate::audit::Action::TranscriptShredded,
                    crate::audit::Outcome::Allowed,
                )
                .object("ticket", s.ticket.0)
                .detail("retention".to_string());
                let _ = app.audit(&crate::audit::Context::system(), ev).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
    }
    if let Err(e) = app.vault.reload() {
        tracing::warn!(target: "deskgate::security", error = %e, "cannot re-read the keyring");
    }
    if let Err(e) = api::grants::expire_due(app).await {
        tracing::warn!(error = %e, "expiring access grants failed");
    }
    if let Err(e) = app.auditor.checkpoint().await {
        tracing::warn!(error = %e, "audit checkpoint failed");
    }
}
