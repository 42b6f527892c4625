//! WebSocket sessions: `/ws/customer` for the widget, `/ws/agent` for staff consoles.
//!
//! Each connection is one task ([`conn`]) that owns its socket, a bounded queue of events from
//! the hub, and the set of conversations it follows. What a frame may do depends on the side:
//! [`customer`] and [`agent`] hold those handlers.

mod agent;
mod conn;
mod customer;

use crate::app::App;
use crate::audit::Context;
use crate::bus::Side;
use crate::metrics::inc;
use crate::origin::RequestOrigin;
use crate::protocol::{close, SUBPROTOCOL};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// tungstenite reads in chunks of this size; its default of 128 KiB per connection would cost
/// more than everything else a connection holds.
const READ_BUFFER: usize = 4 * 1024;

/// The customer's origin is checked at `hello`, once its token says which site it belongs to.
/// The upgrade request's address, user agent and request id stay with the connection for the
/// audit entries it causes.
pub async fn customer(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    ctx: Context,
    State(app): State<App>,
) -> Response {
    let origin = RequestOrigin::from_headers(&headers);
    upgrade(ws, app, Side::Customer, origin, ctx)
}

/// Staff sockets are opened by the gateway's own consoles only; a page elsewhere is refused
/// before the upgrade.
pub async fn agent(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    ctx: Context,
    State(app): State<App>,
) -> Response {
    let origin = RequestOrigin::from_headers(&headers);
    if let Err(refused) = origin.check_staff(&app.config) {
        tracing::warn!(target: "deskgate::security", %refused, "staff socket refused");
        return (
            StatusCode::FORBIDDEN,
            "this page may not open a staff session",
        )
            .into_response();
    }
    upgrade(ws, app, Side::Staff, origin, ctx)
}

fn upgrade(
    ws: WebSocketUpgrade,
    app: App,
    side: Side,
    origin: RequestOrigin,
    ctx: Context,
) -> Response {
    let limits = &app.config.ws;
    let ws = ws
        .protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER)
        // Write each frame out at once; the bounded event queue is what buffers.
        .write_buffer_size(0)
        .max_write_buffer_size(limits.max_frame_bytes * 4 + 64 * 1024)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("offer the WebSocket subprotocol {SUBPROTOCOL}"),
        )
            .into_response();
    }
    let tracker = app.tracker.clone();
    let ip = ctx
        .ip
        .as_deref()
        .and_then(|s| s.parse::<std::net::IpAddr>().ok());
    let slot = match ip.map(|ip| app.limiter.connect(ip)) {
        Some(None) => {
            inc(&app.metrics.closed_too_many_connections);
            tracing::info!(target: "deskgate::security", ip = ?ip, "too many connections from one address");
            return ws.on_upgrade(move |socket| {
                tracker.track_future(conn::refuse(
                    socket,
                    close::TOO_MANY_CONNECTIONS,
                    "too many connections from your address",
                ))
            });
        }
        Some(Some(slot)) => Some(slot),
        None => None,
    };
    ws.on_upgrade(move |socket| {
        tracker.track_future(async move {
            conn::run(socket, app, side, origin, ctx).await;
            drop(slot);
        })
    })
}
