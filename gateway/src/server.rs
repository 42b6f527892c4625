//! The HTTP server: routes, and `run`, which serves a listener until shutdown and then waits
//! for every WebSocket connection to close.

use crate::api;
use crate::app::App;
use crate::store::Retained;
use crate::ws;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::response::Html;
use axum::routing::{get, patch, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

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
        .route(
            "/api/tickets/{id}/attachments",
            post(api::attachments::staff_upload),
        )
        .route(
            "/api/visitor/attachments",
            post(api::attachments::customer_upload).options(api::attachments::preflight),
        )
        .route(
            "/api/attachments/{id}",
            get(api::attachments::download).options(api::attachments::preflight),
        )
        .route(
            "/api/grants/{grant}/attachments/{id}",
            get(api::attachments::download_granted),
        )
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
        .route("/media/twilio", get(crate::voice::twilio::handler))
        .route("/media/pcm", get(crate::voice::pcm::handler))
        .route("/api/calls/{id}", get(api::calls::show))
        .route("/api/tickets/{id}/call", get(api::calls::of_ticket))
        .route(
            "/api/tickets/{id}/recordings",
            get(api::calls::of_ticket_recordings),
        )
        .route("/api/calls/{id}/pause", post(api::calls::pause))
        .route("/api/calls/{id}/resume", post(api::calls::resume))
        .route(
            "/internal/calls/{id}/verification-pause",
            post(crate::voice::relay::verification_pause),
        )
        .route("/api/recordings/{id}", get(api::calls::recording))
        .route("/api/grants/{id}/recording", get(api::grants::recording))
        .merge(crate::web::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(app.config.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::headers::security_headers,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// An unknown path gets the API's JSON error body, like every other refusal.
async fn no_route() -> api::ApiError {
    api::ApiError::Refused(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint".into(),
    )
}

/// A known path called with a method it does not take (the `Allow` header lists those it does).
async fn no_method() -> api::ApiError {
    api::ApiError::Refused(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method".into(),
    )
}

const INDEX: &str = include_str!("index.html");

/// The start page: no script at all, and only its one inline style (by hash).
async fn index() -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    use sha2::{Digest, Sha256};
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let csp = CSP.get_or_init(|| {
        let style = INDEX
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(css, _)| css)
            .unwrap_or("");
        use base64::Engine;
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; \
             form-action 'none'; frame-ancestors 'none'"
        )
    });
    let mut resp = Html(INDEX).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    crate::web::page_policies(h);
    resp
}

/// Serves until `app.shutdown` is cancelled (SIGTERM), then drains: stops accepting, closes
/// every socket with 1012 (service restart: reconnect to any node and resume) once the frame it
/// is handling is stored and acknowledged, and waits for them at most `drain_deadline`.
/// With `tls` configured every connection is TLS (there is no plain-HTTP listener beside it).
pub async fn run(listener: TcpListener, app: App) -> std::io::Result<()> {
    let tls = match &app.config.tls {
        Some(c) => {
            let resolver = crate::tls::Reloading::new(c.clone())
                .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
            resolver.spawn_watcher(app.shutdown.clone());
            Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
                resolver.server_config(),
            )))
        }
        None => None,
    };
    crate::desk::spawn_assigner(app.desk.clone(), app.shutdown.clone());
    if let Some(url) = listener
        .local_addr()
        .ok()
        .and_then(|bound| app.config.node_base(bound))
    {
        app.calls.directory.set_node(url);
    }
    crate::voice::directory::Directory::spawn_refresh(app.calls.clone(), app.shutdown.clone());
    spawn_sweeper(app.clone());
    let shutdown = app.shutdown.clone();
    let tracker = app.tracker.clone();
    let auditor = app.auditor.clone();
    let deadline = app.config.drain_deadline;
    let limits = app.config.limits.clone();
    let proxies = std::sync::Arc::new(app.config.trusted_proxies.clone());
    let vault = app.vault.clone();
    let service = router(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slowloris: a connection that has not sent its request headers in time is closed.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = service.clone();
        let proxies = proxies.clone();
        let vault = vault.clone();
        // The client's address is kept in audit entries and counted by per-IP limits. A
        // request another node relayed (a call held here) names its client under a MAC.
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let relayed =
                crate::voice::relay::check(&vault, req.headers(), req.method().as_str(), path);
            let client = match relayed {
                Some(r) => r.client,
                None => crate::proxy::client_ip(peer.ip(), req.headers(), &proxies),
            };
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(crate::proxy::ClientIp(client));
            if let Some(r) = relayed {
                req.extensions_mut().insert(r);
            }
            router.clone().oneshot(req)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake = limits.header_read_timeout;
        tokio::spawn(async move {
            let served = match tls {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn).await
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Plain HTTP connections finish their request; upgraded sockets are the tracker's.
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
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
            Retained::Recording => (Action::RecordingShredded, "recording"),
        };
        if s.kind == Retained::Recording {
            // Without its key the file is noise; it goes too, so the disk is given back.
            let file = crate::voice::recordings_dir(&app.config).join(format!("{}.dgs", s.id));
            if let Err(e) = std::fs::remove_file(&file) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(recording = s.id, error = %e, "cannot delete a shredded recording's file");
                }
            }
        }
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

/// Closes resolved tickets once the reopen window has passed, crypto-shreds transcripts,
/// customer records and call recordings past their retention (unless on legal hold), and picks up a keyring
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
    for kind in [
        Retained::Transcript,
        Retained::Customer,
        Retained::Recording,
    ] {
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
