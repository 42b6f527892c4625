//! `/media/pcm`: a leg of PCM16 over WebSocket, the agent's or a browser customer's. The first
//! frame is JSON text:
//! `{"type":"start","token":"<token>","call":"<call id>","codec":"pcm16","rate":16000,"leg":"agent"}`
//! (rate 8000 or 16000; `leg` is `agent` unless it says `customer`); the gateway answers
//! `{"type":"started",...}`. Then binary frames are little-endian PCM16 mono at that rate,
//! whole 20 ms frames (up to ten per message), both ways.
//!
//! - The agent's leg carries a staff session token and joins the call it names; only the agent
//!   the call's ticket is assigned to may. Its text frames are JSON control: `pause` (with
//!   `reason`), `resume`, `clear`, `mark` (with `name`). The gateway sends `paused`, `resumed`,
//!   `dtmf` (only while recording), `mark`, `error` and `ended`.
//! - A customer's leg ([`super::browser`]) carries the widget's visitor token, names no call,
//!   and places one: the gateway answers with the new call's id.

use super::call::{AgentOut, Call, CustomerOut, PauseError};
use super::directory::Home;
use super::media::{self, Converter, Rate};
use super::relay::{self, Hop};
use super::{close, close_with, FRAME_TOO_BIG, MAX_BINARY_FRAME, MAX_TEXT_FRAME};
use crate::app::App;
use crate::audit::Context;
use crate::auth::{require, Permission};
use crate::origin::RequestOrigin;
use crate::store::{StoreError, User};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartFrame {
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
    /// The call an agent's leg joins; a customer's leg names none (it places the call).
    #[serde(default)]
    pub call: Option<String>,
    pub codec: String,
    pub rate: u64,
    #[serde(default)]
    pub leg: Leg,
}

/// Whose leg a `/media/pcm` socket is.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    #[default]
    Agent,
    Customer,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    Pause { reason: String },
    Resume { reason: Option<String> },
    Clear {},
    Mark { name: String },
}

/// Why the socket is closed: the close code and a fixed reason, which never quotes the peer.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
}

pub(super) fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

/// Parses the start frame; the rate and codec are checked here. serde's message is not
/// passed on: it can quote the frame (an unknown field's name, a value of the wrong type).
pub fn parse_start(text: &str) -> Result<(StartFrame, Rate), Refusal> {
    let f: StartFrame = serde_json::from_str(text).map_err(|_| {
        refuse(
            close::MALFORMED,
            "the first frame must be the start frame: type, token, call, codec, rate, leg",
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
    match (f.leg, &f.call) {
        (Leg::Agent, None) => Err(refuse(close::MALFORMED, "the agent's leg names its call")),
        (Leg::Customer, Some(_)) => Err(refuse(
            close::MALFORMED,
            "a customer's leg places a new call and names none",
        )),
        _ => Ok((f, rate)),
    }
}

/// Parses a control frame; the error is the message of the `error` frame sent back.
pub fn parse_control(text: &str) -> Result<Control, &'static str> {
    let control = serde_json::from_str::<Control>(text)
        .map_err(|_| "unknown control frame; expected pause, resume, clear or mark")?;
    if let Control::Mark { name } = &control {
        if name.is_empty() || name.len() > 64 {
            return Err("mark name must be 1-64 characters");
        }
    }
    Ok(control)
}

/// Checks a binary frame: whole 20 ms PCM16 frames at `rate`, at most ten.
pub fn check_binary(bytes: &[u8], rate: Rate) -> Result<Vec<i16>, Refusal> {
    if bytes.len() > MAX_BINARY_FRAME {
        return Err(refuse(close::TOO_BIG, "binary frame over 6400 bytes"));
    }
    let Some(pcm) = media::pcm_from_le_bytes(bytes) else {
        return Err(refuse(
            close::MALFORMED,
            "PCM16 frames have an even number of bytes",
        ));
    };
    if pcm.is_empty() || pcm.len() % rate.frame_samples() != 0 {
        return Err(refuse(
            close::MALFORMED,
            match rate {
                Rate::Hz8000 => {
                    "binary frames are whole 20 ms frames: multiples of 320 bytes at 8000 Hz"
                }
                Rate::Hz16000 => {
                    "binary frames are whole 20 ms frames: multiples of 640 bytes at 16000 Hz"
                }
            },
        ));
    }
    Ok(pcm)
}

/// What a leg's request says besides its start frame.
struct Request {
    ctx: Context,
    origin: RequestOrigin,
    /// What the leg needs to be relayed to the node holding its call.
    hop: Hop,
}

pub async fn handler(
    ws: WebSocketUpgrade,
    ctx: Context,
    hop: Hop,
    State(app): State<App>,
) -> Response {
    // Whose leg it is, and so which origins may open it, is in the start frame: an agent's
    // only from the consoles (as `/ws/agent`), a customer's from the pages of their site.
    let request = Request {
        ctx,
        origin: crate::origin::RequestOrigin::from_headers(&hop.headers),
        hop,
    };
    let tracker = app.tracker.clone();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(4 * MAX_TEXT_FRAME)
        .max_frame_size(4 * MAX_TEXT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(run(socket, app, request)))
}

/// Reads and parses the start frame.
async fn start_frame(socket: &mut WebSocket, app: &App) -> Result<(StartFrame, Rate), Refusal> {
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
        return Err(refuse(close::TOO_BIG, FRAME_TOO_BIG));
    }
    parse_start(text.as_str())
}

/// Where the agent's call is.
enum Held {
    Here(Arc<Call>),
    /// On another node, which the leg is relayed to.
    Elsewhere(Home),
}

async fn admit(app: &App, start: &StartFrame, request: &Request) -> Result<(User, Held), Refusal> {
    if let Err(refused) = request.origin.check_staff(&app.config) {
        tracing::warn!(target: "deskgate::security", %refused, "agent media socket refused");
        return Err(refuse(
            close::POLICY,
            "this page may not open a staff session",
        ));
    }
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
    let id = start.call.as_deref().unwrap_or_default();
    let no_call = || refuse(close::NOT_FOUND, "no such live call");
    let (ticket, held) = match app.calls.get(id) {
        Some(call) => (call.ticket, Held::Here(call)),
        None => match request.hop.elsewhere(app.calls.directory.find(id)).await {
            Ok(Some(home)) => (home.ticket, Held::Elsewhere(home)),
            Ok(None) => return Err(no_call()),
            Err(_) => return Err(refuse(close::INTERNAL, "the call directory is unavailable")),
        },
    };
    let ticket = app
        .store
        .ticket(ticket)
        .await
        .map_err(|_| refuse(close::INTERNAL, "cannot read the call's ticket"))?;
    if ticket.agent.as_ref().map(|a| a.id) != Some(user.id) {
        return Err(refuse(close::FORBIDDEN, "claim the call's ticket first"));
    }
    Ok((user, held))
}

/// The start frame as the agent sent it, for the node holding the call.
fn start_text(start: &StartFrame) -> String {
    json!({
        "type": "start", "token": start.token, "call": start.call, "codec": start.codec,
        "rate": start.rate, "leg": "agent",
    })
    .to_string()
}

async fn run(mut socket: WebSocket, app: App, request: Request) {
    let (start, rate) = match start_frame(&mut socket, &app).await {
        Ok(v) => v,
        Err(r) => {
            close_with(&mut socket, r.code, r.reason).await;
            return;
        }
    };
    if start.leg == Leg::Customer {
        let Request { ctx, origin, .. } = request;
        return super::browser::run(socket, app, ctx, origin, start, rate).await;
    }
    let (user, call) = match admit(&app, &start, &request).await {
        Ok((user, Held::Here(call))) => (user, call),
        Ok((_, Held::Elsewhere(home))) => {
            let start = start_text(&start);
            let hop = &request.hop;
            return relay::agent_leg(socket, &app, &home, start, &hop.headers, hop.client).await;
        }
        Err(r) => {
            close_with(&mut socket, r.code, r.reason).await;
            return;
        }
    };
    let ctx = request.ctx.by(&user);
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
                Some(Ok(Message::Binary(b))) => match check_binary(&b, rate) {
                    Err(r) => break Some(r),
                    Ok(pcm) => for f in pcm.chunks(samples) {
                        call.from_agent(to_call.convert(f));
                    },
                },
                Some(Ok(Message::Text(t))) => {
                    if t.len() > MAX_TEXT_FRAME {
                        break Some(refuse(close::TOO_BIG, FRAME_TOO_BIG));
                    }
                    let reply = match parse_control(t.as_str()) {
                        Err(message) => Some(json!({"type": "error", "message": message})),
                        Ok(Control::Pause { reason }) => pause_error(call.pause(&app, &ctx, &by, &reason).await),
                        Ok(Control::Resume { reason }) => pause_error(call.resume(&app, &ctx, &by, reason.as_deref()).await),
                        Ok(Control::Clear {}) => { call.to_customer(CustomerOut::Clear); None }
                        Ok(Control::Mark { name }) => { call.to_customer(CustomerOut::Mark(name)); None }
                    };
                    if let Some(r) = reply {
                        if socket.send(Message::Text(r.to_string().into())).await.is_err() { break None; }
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(_)) => break Some(refuse(close::TOO_BIG, FRAME_TOO_BIG)),
            },
        }
    };
    call.leave_agent(leg);
    match refusal {
        Some(r) => close_with(&mut socket, r.code, r.reason).await,
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

    /// serde's messages name unknown fields and quote wrong values; the close reason does not.
    #[test]
    fn a_refused_start_frame_is_not_quoted_back() {
        let canary = "4111111111111111".repeat(10);
        for bad in [
            format!(
                r#"{{"type":"start","token":"t","call":"CA1","codec":"pcm16","rate":8000,"{canary}":1}}"#
            ),
            format!(
                r#"{{"type":"start","token":"t","call":"CA1","codec":"pcm16","rate":"{canary}"}}"#
            ),
            format!(
                r#"{{"type":"{canary}","token":"t","call":"CA1","codec":"pcm16","rate":8000}}"#
            ),
        ] {
            let r = parse_start(&bad).unwrap_err();
            assert_eq!(r.code, close::MALFORMED);
            assert!(!r.reason.contains("4111"), "{}", r.reason);
            assert!(r.reason.len() <= super::super::MAX_CLOSE_REASON);
        }
    }

    #[test]
    fn control_and_binary_frames_are_checked() {
        assert!(matches!(
            parse_control(r#"{"type":"pause","reason":"card"}"#),
            Ok(Control::Pause { .. })
        ));
        assert_eq!(
            parse_control(r#"{"type":"mark","name":""}"#).err(),
            Some("mark name must be 1-64 characters")
        );
        assert!(parse_control(r#"{"type":"dance"}"#).is_err());
        for rate in [Rate::Hz8000, Rate::Hz16000] {
            let whole = rate.frame_samples() * 2;
            assert_eq!(
                check_binary(&vec![0; whole], rate).unwrap().len(),
                whole / 2
            );
            let r = check_binary(&vec![0; whole + 2], rate).unwrap_err();
            // The reason names this rate's frame size.
            let expect = format!("multiples of {whole} bytes at {} Hz", rate.hz());
            assert!(r.reason.ends_with(&expect), "{}", r.reason);
            assert_eq!(
                check_binary(&[0; 3], rate).unwrap_err().code,
                close::MALFORMED
            );
            let big = vec![0; MAX_BINARY_FRAME + whole];
            let r = check_binary(&big, rate).unwrap_err();
            assert_eq!(
                r.reason,
                format!("binary frame over {MAX_BINARY_FRAME} bytes")
            );
        }
    }
}
