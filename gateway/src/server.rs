//! The HTTP server: routes, and `run`, which serves a listener until shutdown and then waits
//! for every WebSocket connection to close.

use crate::api;
use crate::app::App;
use crate::store::Retained;
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
/// How often resolved tickets past the reopen window are closed.
pub const SWEEP: Duration = Duration::from_secs(60);

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
        .route("/api/tickets/{id}/exports", post(api::exports::record))
        .route(
            "/api/customers/{id}/tickets",
            get(api::tickets::customer_history),
        )
        .route("/api/queue", get(api::queue::show))
        .route("/api/sites/{key}/presence", get(api::presence::show))
        .route("/api/sites/{key}/widget", get(api::sites::widget))
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
        .route("/api/grants/policy", get(api::grants::policy))
        .route("/api/grants/{id}", get(api::grants::show))
        .route("/api/grants/{id}/approve", post(api::grants::approve))
        .route("/api/grants/{id}/deny", post(api::grants::deny))
        .route("/api/grants/{id}/revoke", post(api::grants::revoke))
        .route("/api/grants/{id}/transcript", get(api::grants::transcript))
        .route("/api/audit", get(api::audit::list))
        .route("/api/audit/status", get(api::audit::status))
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

/// Serves until `app.shutdown` is cancelled (SIGTERM), then drains: stops accepting, closes
/// every socket with 1012 (service restart: reconnect to any node and resume) once the frame it
/// is handling is stored and acknowledged, and waits for them at most `drain_deadline`.
pub async fn run(listener: TcpListener, app: App) -> std::io::Result<()> {
    crate::desk::spawn_assigner(app.desk.clone(), app.shutdown.clone());
    spawn_sweeper(app.clone());
    let shutdown = app.shutdown.clone();
    let tracker = app.tracker.clone();
    let auditor = app.auditor.clone();
    let deadline = app.config.drain_deadline;
    // The client's address is kept in audit entries.
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    tracker.close();
    if tokio::time::timeout(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    // The last entries are signed before the process ends.
    if let Err(e) = auditor.checkpoint().await {
        tracing::error!(error = %e, "audit checkpoint at shutdown failed");
    }
    Ok(())
}

/// Objects a retention sweep looks at, at most, per kind.
const RETENTION_BATCH: i64 = 500;

/// One kind's retention: the store lists what ended before the policy's cutoff, the policy
/// decides on each (a legal hold keeps it), the store destroys the keys of those to shred, and
/// each shredding is logged and audited with its customer.
async fn retention_sweep(
    app: &App,
    kind: Retained,
    now: crate::clock::Timestamp,
) -> Result<(), crate::store::StoreError> {
    use crate::audit::{Action, Context, Event, Outcome};
    use recorder::retention::Decision;
    let policy = &app.config.retention;
    let Some(cutoff) = policy.cutoff(kind.policy(), now.0) else {
        return Ok(());
    };
    let cutoff = crate::clock::Timestamp(cutoff);
    let candidates = app
        .store
        .retention_candidates(kind, cutoff, RETENTION_BATCH)
        .await?;
    let due: Vec<i64> = candidates
        .iter()
        .filter(|c| {
            let decision = policy.decide(kind.policy(), c.ended_at.0, c.legal_hold, now.0);
            if decision == Decision::Held {
                tracing::debug!(
                    kind = kind.policy(),
                    id = c.id,
                    "retention: past its period, kept under legal hold"
                );
            }
            decision == Decision::Shred
        })
        .map(|c| c.id)
        .collect();
    for s in app.store.shred(kind, &due, cutoff, now).await? {
        let (action, object) = match s.kind {
            Retained::Transcript => (Action::TranscriptShredded, "ticket"),
            Retained::Customer => (Action::CustomerShredded, "customer"),
        };
        tracing::info!(
            target: "deskgate::security",
            kind = kind.policy(),
            id = s.id,
            customer = %s.customer,
            "retention: crypto-shredded (data key destroyed)"
        );
        let ev = Event::new(action, Outcome::Allowed)
            .customer(s.customer)
            .object(object, s.id)
            .detail("retention");
        let _ = app.audit(&Context::system(), ev).await;
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

/// Closes resolved tickets once the reopen window has passed, crypto-shreds transcripts and
/// customer records past their retention (unless on legal hold), and picks up a keyring
/// rotated by `deskgate keys`.
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
    for kind in [Retained::Transcript, Retained::Customer] {
        if let Err(e) = retention_sweep(app, kind, now).await {
            tracing::warn!(error = %e, kind = kind.policy(), "retention sweep failed");
        }
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
