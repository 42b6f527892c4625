//! A customer's call from the browser: the widget's call button opens `/media/pcm` with
//! `"leg":"customer"` and its visitor token, and places a call on the customer's conversation
//! (the open one, or a new one). The call is a ticket like a chat, marked `call`; the agent who
//! holds the ticket joins with the agent's leg of [`super::pcm`].
//!
//! With no phone leg the call (and its recording) runs at 16 kHz; a leg at 8 kHz is resampled.
//! The gateway answers the start frame with `{"type":"started","call":…,"ticket":…,"rate":…}`.
//! Binary frames both ways are PCM16 as on the agent's leg. Text frames from the widget:
//! `{"type":"hangup"}`, and `{"type":"mark","name":…}`, the echo of a mark the gateway sent
//! once the audio before it has played. From the gateway: `mark`, `clear` (drop what is
//! buffered for playback), `error` and `ended`.

use super::call::{Call, CustomerOut};
use super::media::{self, Converter, Rate};
use super::pcm::{check_binary, refuse, Refusal, StartFrame};
use super::{close, close_with, FRAME_TOO_BIG, MAX_TEXT_FRAME};
use crate::app::App;
use crate::audit::Context;
use crate::origin::RequestOrigin;
use crate::protocol::{ClientId, MessageText};
use crate::store::{Customer, StoreError};
use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A browser call is recorded at 16 kHz (there is no phone leg to bring it down to 8).
const CALL_RATE: Rate = Rate::Hz16000;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    Hangup {},
    Mark { name: String },
}

/// Parses a control frame of the customer's leg; the error is the `error` frame's message.
pub fn parse_control(text: &str) -> Result<Control, &'static str> {
    let control = serde_json::from_str::<Control>(text)
        .map_err(|_| "unknown control frame; expected hangup or mark")?;
    if let Control::Mark { name } = &control {
        if name.is_empty() || name.len() > 64 {
            return Err("mark name must be 1-64 characters");
        }
    }
    Ok(control)
}

/// A new call's id: `web-` and 96 random bits, so it cannot be guessed or collide with a
/// provider's.
fn new_call_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("web-{}", hex::encode(b))
}

/// Checks the visitor token and the page's origin, and places the call.
async fn admit(
    app: &App,
    ctx: &Context,
    start: &StartFrame,
    origin: &RequestOrigin,
) -> Result<(Customer, Arc<Call>, mpsc::Receiver<CustomerOut>), Refusal> {
    let digest = crate::auth::token::digest(&start.token);
    let customer = match app.store.visitor_customer(&digest, app.clock.now()).await {
        Ok(c) => c,
        Err(StoreError::Unavailable(_)) => {
            return Err(refuse(close::INTERNAL, "store unavailable"))
        }
        Err(_) => return Err(refuse(close::POLICY, "the visitor token is not valid")),
    };
    let allowed = match app.sites.get(&customer.site) {
        Some(site) => origin.check_site(&app.config, site),
        None => Ok(()),
    };
    if let Err(refused) = allowed {
        tracing::warn!(target: "deskgate::security", %refused, site = %customer.site,
            "customer media socket refused");
        return Err(refuse(close::POLICY, "origin not allowed"));
    }
    // A call of theirs on another node counts too; if the directory cannot say, the call is
    // placed (it is the customer's own second line, not a breach).
    let elsewhere = matches!(
        app.calls.directory.of_customer(customer.id).await,
        Ok(Some(_))
    );
    if app.calls.of_customer(customer.id).is_some() || elsewhere {
        return Err(refuse(close::POLICY, "a call of yours is live already"));
    }
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "cannot start the call");
        refuse(close::INTERNAL, "cannot start the call")
    };
    let id = new_call_id();
    let client_id = ClientId::parse(format!("call:{id}")).map_err(|e| internal(&e))?;
    let text = MessageText::parse("Voice call".into()).map_err(|e| internal(&e))?;
    let ctx = Context {
        role: Some("customer".into()),
        ..ctx.clone()
    };
    // The customer's open conversation, or a new one: the call joins the chat's ticket.
    let sent = app
        .desk
        .customer_send(&ctx, &customer, None, &client_id, &text)
        .await
        .map_err(|e| internal(&e))?;
    let ticket = sent.appended.ticket;
    let (call, out) = Call::start(app, id, ticket, customer.id, CALL_RATE)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(call = %call.id, ticket = ticket.0, recording = call.recording, "browser call started");
    Ok((customer, call, out))
}

/// The customer's leg, from the start frame to the hang-up.
pub async fn run(
    mut socket: WebSocket,
    app: App,
    ctx: Context,
    origin: RequestOrigin,
    start: StartFrame,
    rate: Rate,
) {
    let (_customer, call, mut out) = match admit(&app, &ctx, &start, &origin).await {
        Ok(v) => v,
        Err(r) => {
            tracing::info!(code = r.code, reason = r.reason, "browser call refused");
            close_with(&mut socket, r.code, r.reason).await;
            return;
        }
    };
    let started = json!({
        "type": "started", "call": call.id, "ticket": call.ticket.0, "rate": rate.hz(),
    });
    if socket
        .send(Message::Text(started.to_string().into()))
        .await
        .is_err()
    {
        call.end().await;
        return;
    }
    let mut to_call = Converter::new(rate, call.rate);
    let mut from_call = Converter::new(call.rate, rate);
    let samples = rate.frame_samples();
    let refusal: Option<Refusal> = loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break None,
            o = out.recv() => {
                let sent = match o {
                    Some(CustomerOut::Media(f)) => {
                        let pcm = media::pcm_to_le_bytes(&from_call.convert(&f));
                        socket.send(Message::Binary(pcm.into())).await
                    }
                    Some(CustomerOut::Clear) => {
                        socket.send(Message::Text(json!({"type": "clear"}).to_string().into())).await
                    }
                    Some(CustomerOut::Mark(name)) => {
                        let v = json!({"type": "mark", "name": name});
                        socket.send(Message::Text(v.to_string().into())).await
                    }
                    Some(CustomerOut::Hangup) | None => break None,
                };
                if sent.is_err() {
                    break None;
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Binary(b))) => match check_binary(&b, rate) {
                    Err(r) => break Some(r),
                    Ok(pcm) => for f in pcm.chunks(samples) {
                        call.from_customer(to_call.convert(f));
                    },
                },
                Some(Ok(Message::Text(t))) => {
                    if t.len() > MAX_TEXT_FRAME {
                        break Some(refuse(close::TOO_BIG, FRAME_TOO_BIG));
                    }
                    match parse_control(t.as_str()) {
                        Ok(Control::Hangup {}) => break None,
                        Ok(Control::Mark { name }) => call.mark_played(&name),
                        Err(message) => {
                            let v = json!({"type": "error", "message": message});
                            if socket.send(Message::Text(v.to_string().into())).await.is_err() {
                                break None;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(_)) => break Some(refuse(close::TOO_BIG, FRAME_TOO_BIG)),
            },
        }
    };
    call.end().await;
    let _ = socket
        .send(Message::Text(json!({"type": "ended"}).to_string().into()))
        .await;
    match refusal {
        Some(r) => {
            tracing::info!(call = %call.id, code = r.code, reason = r.reason, "browser call closed");
            close_with(&mut socket, r.code, r.reason).await
        }
        None => close_with(&mut socket, 1000, "call ended").await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_control_frames_are_checked() {
        assert!(matches!(
            parse_control(r#"{"type":"hangup"}"#),
            Ok(Control::Hangup {})
        ));
        assert!(matches!(
            parse_control(r#"{"type":"mark","name":"m1"}"#),
            Ok(Control::Mark { .. })
        ));
        // The agent's controls are not the customer's: a caller cannot pause the recording.
        assert!(parse_control(r#"{"type":"pause","reason":"card"}"#).is_err());
        assert!(parse_control(r#"{"type":"resume"}"#).is_err());
        assert_eq!(
            parse_control(r#"{"type":"mark","name":""}"#).err(),
            Some("mark name must be 1-64 characters")
        );
    }

    #[test]
    fn call_ids_are_unguessable_and_distinct() {
        let a = new_call_id();
        let b = new_call_id();
        assert_ne!(a, b);
        assert!(a.starts_with("web-") && a.len() == 28, "{a}");
    }
}
