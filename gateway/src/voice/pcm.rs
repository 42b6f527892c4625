//! `/media/pcm`: the agent's leg of a call. The first frame is JSON text:
//! `{"type":"start","token":"<staff session token>","call":"<call id>","codec":"pcm16","rate":16000}`
//! (rate 8000 or 16000); the gateway answers `{"type":"started",...}`. Then binary frames are
//! little-endian PCM16 mono at that rate, whole 20 ms frames (up to ten per message), both
//! ways; text frames are JSON control: `pause` (with `reason`), `resume`, `clear`, `mark`
//! (with `name`). The gateway sends `paused`, `resumed`, `dtmf` (only while recording),
//! `mark`, `error` and `ended`.
//!
//! Only the agent the call's ticket is assigned to may join.

use super::call::{AgentOut, Call, CustomerOut, PauseError};
use super::media::{self, Converter, Rate};
use super::{close, close_with, MAX_BINARY_FRAME, MAX_TEXT_FRAME};
use crate::app::App;
use crate::audit::Context;
use crate::auth::{require, Permission};
use crate::store::{StoreError, User};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartFrame {
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
    pub call: String,
    pub codec: String,
    pub rate: u64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    Pause { reason: String },
    Resume { reason: Option<String> },
    Clear {},
    Mark { name: String },
}

pub struct Refusal {
    pub code: u16,
    pub reason: String,
}

fn refuse(code: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// Parses the start frame; the rate and codec are checked here.
pub fn parse_start(text: &str) -> Result<(StartFrame, Rate), Refusal> {
    let f: StartFrame = serde_json::from_str(text).map_err(|e| {
        refuse(
            close::MALFORMED,
            format!(
                "the first frame must be the start frame: {}",
                e.to_string().split(" at line").next().unwrap_or("")
            ),
        )
    })?;
    if f.kind != "start" {
        return Err(refuse(
            close::MALFORMED,
            "the first frame must be the start frame",
        ));
    }
    if f.codec != "pcm16" {
        return Err(refuse(close::MALFORMED, "codec must be \"pcm16\""));
    }
    let rate = Rate::parse(f.rate)
        .ok_or_else(|| refuse(close::MALFORMED, "rate must be 8000 or 16000"))?;
    Ok((f, rate))
}

pub async fn handler(
    ws: WebSocketUpgrade,
    headers: axum::http::HeaderMap,
    ctx: Context,
    State(app): State<App>,
) -> Response {
    // The agent's leg is a staff socket: opened from the consoles only, as `/ws/agent`.
    let origin = crate::origin::RequestOrigin::from_headers(&headers);
    if let Err(refused) = origin.check_staff(&app.config) {
        tracing::warn!(target: "deskgate::security", %refused, "media socket refused");
        return (
            axum::http::StatusCode::FORBIDDEN,
            "this page may not open a staff session",
        )
            .into_response();
    }
    let tracker = app.tracker.clone();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(4 * MAX_TEXT_FRAME)
        .max_frame_size(4 * MAX_TEXT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(run(socket, app, ctx)))
}

async fn admit(socket: &mut WebSocket, app: &App) -> Result<(User, Arc<Call>, Rate), Refusal> {
    let m = tokio::time::timeout(app.config.voice.start_timeout, socket.recv())
        .await
        .map_err(|_| refuse(close::POLICY, "no start frame in time"))?;
    let text = match m {
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Binary(_))) => {
            return Err(refuse(
                close::MALFORMED,
                "the first frame must be the JSON start frame",
            ))
        }
        _ => return Err(refuse(close::POLICY, "closed before start")),
    };
    if text.len() > MAX_TEXT_FRAME {
        return Err(refuse(
            close::TOO_BIG,
            format!("frame over {MAX_TEXT_FRAME} bytes"),
        ));
    }
    let (start, rate) = parse_start(text.as_str())?;
    let digest = crate::auth::token::digest(&start.token);
    let idle = app.config.session_idle_timeout;
    let user = match app.store.session_user(&digest, app.clock.now(), idle).await {
        Ok(u) => u,
        Err(StoreError::Unavailable(_)) => {
            return Err(refuse(close::INTERNAL, "store unavailable"))
        }
        Err(_) => return Err(refuse(close::POLICY, "the session token is not valid")),
    };
    if require(&user, Permission::WorkTickets).is_err() {
        return Err(refuse(close::FORBIDDEN, "this role does not take calls"));
    }
    let call = app
        .calls
        .get(&start.call)
        .ok_or_else(|| refuse(close::NOT_FOUND, "no such live call"))?;
    let ticket = app
        .store
        .ticket(call.ticket)
        .await
        .map_err(|_| refuse(close::INTERNAL, "cannot read the call's ticket"))?;
    if ticket.agent.as_ref().map(|a| a.id) != Some(user.id) {
        return Err(refuse(close::FORBIDDEN, "claim the call's ticket first"));
    }
    Ok((user, call, rate))
}

async fn run(mut socket: WebSocket, app: App, ctx: Context) {
    let (user, call, rate) = match admit(&mut socket, &app).await {
        Ok(v) => v,
        Err(r) => {
            close_with(&mut socket, r.code, &r.reason).await;
            return;
        }
    };
    let ctx = ctx.by(&user);
    let by = format!("user:{}", user.id.0);
    let (mut rx, leg) = call.join_agent(user.id);
    let started = json!({
        "type": "started", "call": call.id, "ticket": call.ticket.0, "rate": rate.hz(),
        "recording": if call.is_paused() { "paused" } else { "on" },
    });
    if socket
        .send(Message::Text(started.to_string().into()))
        .await
        .is_err()
    {
        call.leave_agent(leg);
        return;
    }
    let mut to_call = Converter::new(rate, call.rate);
    let mut from_call = Converter::new(call.rate, rate);
    let samples = rate.frame_samples();
    let refusal: Option<Refusal> = loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break None,
            o = rx.recv() => match o {
                Some(AgentOut::Audio(f)) => {
                    let pcm = media::pcm_to_le_bytes(&from_call.convert(&f));
                    if socket.send(Message::Binary(pcm.into())).await.is_err() { break None; }
                }
                Some(AgentOut::Event(v)) => {
                    if socket.send(Message::Text(v.to_string().into())).await.is_err() { break None; }
                }
                Some(AgentOut::Ended) | None => {
                    let _ = socket.send(Message::Text(json!({"type": "ended"}).to_string().into())).await;
                    break None;
                }
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) => {
                    if b.len() > MAX_BINARY_FRAME {
                        break Some(refuse(close::TOO_BIG, format!("binary frame over {MAX_BINARY_FRAME} bytes")));
                    }
                    let Some(pcm) = media::pcm_from_le_bytes(&b) else {
                        break Some(refuse(close::MALFORMED, "PCM16 frames have an even number of bytes"));
                    };
                    if pcm.is_empty() || pcm.len() % samples != 0 {
                        break Some(refuse(close::MALFORMED, format!("binary frames are whole 20 ms frames: multiples of {} bytes at {} Hz", samples * 2, rate.hz())));
                    }
                    for f in pcm.chunks(samples) {
                        call.from_agent(to_call.convert(f));
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if t.len() > MAX_TEXT_FRAME {
                        break Some(refuse(close::TOO_BIG, format!("frame over {MAX_TEXT_FRAME} bytes")));
                    }
                    let reply = match serde_json::from_str::<Control>(t.as_str()) {
                        Err(_) => Some(json!({"type": "error", "message": "unknown control frame; expected pause, resume, clear or mark"})),
                        Ok(Control::Pause { reason }) => pause_error(call.pause(&app, &ctx, &by, &reason).await),
                        Ok(Control::Resume { reason }) => pause_error(call.resume(&app, &ctx, &by, reason.as_deref()).await),
                        Ok(Control::Clear {}) => { call.to_customer(CustomerOut::Clear); None }
                        Ok(Control::Mark { name }) => {
                            if name.is_empty() || name.len() > 64 {
                                Some(json!({"type": "error", "message": "mark name must be 1-64 characters"}))
                            } else {
                                call.to_customer(CustomerOut::Mark(name));
                                None
                            }
                        }
                    };
                    if let Some(r) = reply {
                        if socket.send(Message::Text(r.to_string().into())).await.is_err() { break None; }
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(_)) => break Some(refuse(close::TOO_BIG, format!("frame over {MAX_TEXT_FRAME} bytes"))),
            },
        }
    };
    call.leave_agent(leg);
    match refusal {
        Some(r) => close_with(&mut socket, r.code, &r.reason).await,
        None => close_with(&mut socket, 1000, "call ended").await,
    }
}

fn pause_error(r: Result<(), PauseError>) -> Option<Value> {
    r.err()
        .map(|e| json!({"type": "error", "message": e.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_frame_is_checked() {
        let ok = r#"{"type":"start","token":"t","call":"CA1","codec":"pcm16","rate":16000}"#;
        assert!(parse_start(ok).is_ok());
        for (bad, why) in [
            ("{", "the first frame must be the start frame"),
            (
                r#"{"type":"start","token":"t","call":"CA1","codec":"opus","rate":16000}"#,
                "codec must be \"pcm16\"",
            ),
            (
                r#"{"type":"start","token":"t","call":"CA1","codec":"pcm16","rate":44100}"#,
                "rate must be 8000 or 16000",
            ),
        ] {
            let r = parse_start(bad).err().map(|r| r.reason).unwrap_or_default();
            assert!(r.starts_with(why), "{bad}: {r}");
        }
    }
}
