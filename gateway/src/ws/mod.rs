//! WebSocket sessions: `/ws/customer` for the widget, `/ws/agent` for staff consoles.
//!
//! Each connection is one task ([`conn`]) that owns its socket, a bounded queue of events from
//! the hub, and the set of conversations it follows. What a frame may do depends on the side:
//! [`customer`] and [`agent`] hold those handlers.

mod agent;
mod conn;
mod customer;

use crate::app::App;
use crate::bus::Side;
use crate::protocol::SUBPROTOCOL;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// tungstenite reads in chunks of this size; its default of 128 KiB per connection would cost
/// more than everything else a connection holds.
const READ_BUFFER: usize = 4 * 1024;

pub async fn customer(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    upgrade(ws, app, Side::Customer)
}

pub async fn agent(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    upgrade(ws, app, Side::Staff)
}

fn upgrade(ws: WebSocketUpgrade, app: App, side: Side) -> Response {
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
    ws.on_upgrade(move |socket| tracker.track_future(conn::run(socket, app, side)))
}
