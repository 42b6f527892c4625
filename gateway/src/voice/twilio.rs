//! `/media/twilio`: the customer's phone leg, in the Twilio Media Streams protocol.
//!
//! In: `connected`, `start` (stream and call ids, `customParameters`, `mediaFormat`),
//! `media` (base64 μ-law, 8 kHz), `dtmf`, `mark`, `stop`; sequence numbers are strings.
//! Out: `media` (the agent's voice as μ-law), `mark`, `clear`. Telnyx's variant is the same
//! events with snake_case names (`sequence_number`, `stream_id`, `call_control_id`,
//! `custom_parameters`, `media_format`, `PCMU`); the reply uses the peer's spelling.
//!
//! The stream is admitted by a media token ([`super::token`]) in the `start` event's custom
//! parameters (`token`) or the upgrade URL (`?token=`), bound to the call id the `start` names;
//! or, for a site that knows its Twilio auth token, by Twilio's `X-Twilio-Signature` on the
//! upgrade to `?site=<key>` ([`super::signature`]). Anything else before a valid `start`
//! closes the socket (1008).
//!
//! A refusal's reason is one of a fixed set of short strings: it goes into the close frame
//! (at most 123 bytes) and the log, and never quotes what the peer sent.

use super::call::{Call, CustomerOut};
use super::media::{self, Rate};
use super::{close, close_with, FRAME_TOO_BIG, MAX_TEXT_FRAME};
use crate::api::Query;
use crate::app::App;
use crate::audit::Context;
use crate::protocol::{ClientId, MessageText};
use crate::store::NewCustomer;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest `media` payload, decoded: 200 ms of μ-law.
const MAX_PAYLOAD: usize = 1600;

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    Connected {},
    Start {
        #[serde(alias = "sequence_number", rename = "sequenceNumber")]
        sequence_number: Option<SeqNo>,
        #[serde(alias = "stream_id", rename = "streamSid")]
        stream: Option<String>,
        start: Start,
    },
    Media {
        #[serde(alias = "sequence_number", rename = "sequenceNumber")]
        sequence_number: Option<SeqNo>,
        media: Media,
    },
    Dtmf {
        dtmf: Dtmf,
    },
    Mark {
        mark: Mark,
    },
    Stop {},
}

/// A sequence number: a string of digits in both dialects.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct SeqNo(String);

impl SeqNo {
    pub fn value(&self) -> Result<u64, Refusal> {
        self.0
            .parse()
            .map_err(|_| malformed("sequenceNumber is not a string of digits"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Start {
    #[serde(alias = "stream_id", rename = "streamSid")]
    pub stream: Option<String>,
    #[serde(alias = "call_control_id", rename = "callSid")]
    pub call: String,
    #[serde(alias = "custom_parameters", rename = "customParameters", default)]
    pub custom: HashMap<String, String>,
    #[serde(alias = "media_format", rename = "mediaFormat")]
    pub format: Option<MediaFormat>,
    /// Telnyx names the caller here; Twilio leaves it to custom parameters.
    pub from: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MediaFormat {
    pub encoding: String,
    #[serde(alias = "sample_rate", rename = "sampleRate")]
    pub rate: u32,
    #[serde(default = "one")]
    pub channels: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
pub struct Media {
    pub payload: String,
    /// `inbound` (the caller) unless the provider streams both tracks.
    pub track: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

impl Dtmf {
    /// The key pressed: one of 0-9, `*`, `#`, A-D.
    pub fn checked(&self) -> Result<&str, Refusal> {
        let d = self.digit.as_str();
        let mut chars = d.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Ok(d),
            _ => Err(malformed("dtmf digit must be one of 0-9, *, #, A-D")),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Mark {
    pub name: String,
}

/// Which spelling the peer uses; replies follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Twilio,
    Telnyx,
}

impl Dialect {
    /// Telnyx's frames carry `stream_id` or `sequence_number`; Twilio's never do.
    pub fn of(text: &str) -> Dialect {
        if text.contains("\"stream_id\"") || text.contains("\"sequence_number\"") {
            Dialect::Telnyx
        } else {
            Dialect::Twilio
        }
    }
}

/// Why a frame was refused: the close code and a fixed reason that names the problem.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
}

fn malformed(reason: &'static str) -> Refusal {
    Refusal {
        code: close::MALFORMED,
        reason,
    }
}

fn policy(reason: &'static str) -> Refusal {
    Refusal {
        code: close::POLICY,
        reason,
    }
}

fn too_big(reason: &'static str) -> Refusal {
    Refusal {
        code: close::TOO_BIG,
        reason,
    }
}

/// The reason for an event that names a known type but breaks its shape. serde's own message
/// is not used: it can quote the frame.
fn bad_event(event: &str) -> &'static str {
    match event {
        "connected" => "bad connected event",
        "start" => "bad start event",
        "media" => "bad media event",
        "dtmf" => "bad dtmf event",
        "mark" => "bad mark event",
        "stop" => "bad stop event",
        _ => "unknown event",
    }
}

/// A `media` event read straight into its type, with no JSON tree in between (an internally
/// tagged enum would build one): the event of every 20 ms.
#[derive(Deserialize)]
struct MediaEvent<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(alias = "sequence_number", rename = "sequenceNumber")]
    sequence_number: Option<SeqNo>,
    media: Media,
}

/// Parses one text frame: the size limit, then the JSON, then the event's own rules.
pub fn parse(text: &str) -> Result<Inbound, Refusal> {
    if text.len() > MAX_TEXT_FRAME {
        return Err(too_big(FRAME_TOO_BIG));
    }
    // Anything that is not a well-formed `media` event goes the long way, which names what is
    // wrong with it.
    if let Ok(m) = serde_json::from_str::<MediaEvent>(text) {
        if m.event == "media" {
            return Ok(Inbound::Media {
                sequence_number: m.sequence_number,
                media: m.media,
            });
        }
    }
    let value: Value = serde_json::from_str(text).map_err(|_| malformed("frame is not JSON"))?;
    let event = value
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("frame has no \"event\""))?;
    let reason = bad_event(event);
    serde_json::from_value(value).map_err(|_| malformed(reason))
}

/// The checks on a `start` event before its token is looked at: the sequence number, a
/// stream id, μ-law at 8 kHz mono, and a call id of 1-64 characters. Returns the stream id.
pub fn check_start(
    sequence_number: Option<&SeqNo>,
    stream: Option<String>,
    start: &Start,
) -> Result<String, Refusal> {
    if let Some(s) = sequence_number {
        s.value()?;
    }
    let stream = stream
        .or_else(|| start.stream.clone())
        .ok_or_else(|| malformed("start names no stream (streamSid)"))?;
    if let Some(f) = &start.format {
        let enc = f.encoding.to_ascii_lowercase();
        if !(enc == "audio/x-mulaw" || enc == "pcmu") || f.rate != 8000 || f.channels != 1 {
            return Err(malformed(
                "media format must be μ-law 8000 Hz mono (audio/x-mulaw or PCMU)",
            ));
        }
    }
    if start.call.is_empty() || start.call.len() > 64 || start.call.chars().any(char::is_control) {
        return Err(malformed("callSid must be 1-64 characters"));
    }
    Ok(stream)
}

/// 20 ms frames from a μ-law payload of any whole number of samples up to 200 ms; a tail
/// shorter than a frame waits in `rest` for the next payload.
pub fn decode_payload(payload: &str, rest: &mut Vec<i16>) -> Result<Vec<Vec<i16>>, Refusal> {
    if payload.len() > MAX_PAYLOAD.div_ceil(3) * 4 {
        return Err(too_big("media payload over 1600 bytes (200 ms)"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| malformed("media payload is not base64"))?;
    rest.extend(media::ulaw_to_pcm(&bytes));
    let n = Rate::Hz8000.frame_samples();
    let mut frames = Vec::new();
    while rest.len() >= n {
        frames.push(rest.drain(..n).collect());
    }
    Ok(frames)
}

/// The outgoing `media` event of a stream, written as text once up to its payload: the event
/// of every 20 ms is then one allocation, with no JSON tree.
struct MediaOut {
    head: String,
}

impl MediaOut {
    fn new(dialect: Dialect, stream: &str) -> MediaOut {
        let head = with_stream(dialect, stream, json!({"event": "media"})).to_string();
        // `{"event":"media","streamSid":"…"}` less its closing brace, then the media object.
        let head = format!("{},\"media\":{{\"payload\":\"", &head[..head.len() - 1]);
        MediaOut { head }
    }

    fn event(&self, frame: &[i16]) -> String {
        let ulaw = media::pcm_to_ulaw(frame);
        let mut text = String::with_capacity(self.head.len() + ulaw.len().div_ceil(3) * 4 + 3);
        text.push_str(&self.head);
        base64::engine::general_purpose::STANDARD.encode_string(&ulaw, &mut text);
        text.push_str("\"}}");
        text
    }
}

fn with_stream(dialect: Dialect, stream: &str, mut v: Value) -> Value {
    let key = match dialect {
        Dialect::Twilio => "streamSid",
        Dialect::Telnyx => "stream_id",
    };
    v[key] = json!(stream);
    v
}

pub async fn handler(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    ctx: Context,
    State(app): State<App>,
) -> Response {
    let tracker = app.tracker.clone();
    let url_token = q.get("token").cloned();
    // A stream Twilio signed for a site that knows the account's auth token needs no media
    // token; a signature that does not verify is refused before the upgrade.
    let signed = match headers.get(super::signature::HEADER) {
        None => None,
        Some(sig) => match signed_site(&app, &q, &headers, &uri, sig.to_str().unwrap_or("")) {
            Some(site) => Some(site),
            None => {
                tracing::warn!(target: "deskgate::security", "phone media stream refused: X-Twilio-Signature does not verify");
                return (
                    axum::http::StatusCode::FORBIDDEN,
                    "X-Twilio-Signature does not verify for this URL and site",
                )
                    .into_response();
            }
        },
    };
    let url_token = Admission { url_token, signed };
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        // Past our own limit, a frame is still read whole so the refusal can say why.
        .max_message_size(4 * MAX_TEXT_FRAME)
        .max_frame_size(4 * MAX_TEXT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(run(socket, app, url_token, ctx)))
}

/// How a stream may be admitted, from its upgrade request: a media token in the URL, and the
/// site whose Twilio auth token verified the request's signature.
struct Admission {
    url_token: Option<String>,
    signed: Option<String>,
}

/// The site of `?site=` if the request's `X-Twilio-Signature` verifies with its auth token.
fn signed_site(
    app: &App,
    q: &HashMap<String, String>,
    headers: &axum::http::HeaderMap,
    uri: &axum::http::Uri,
    signature: &str,
) -> Option<String> {
    let site = app.sites.get(q.get("site")?)?;
    let auth_token = site.twilio_auth_token.as_ref()?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = super::signature::requested_url(&app.config, host, path)?;
    super::signature::verify(auth_token.expose_secret().as_bytes(), &url, signature)
        .then(|| site.key.clone())
}

async fn run(mut socket: WebSocket, app: App, url_token: Admission, ctx: Context) {
    // What the caller does (a code keyed in) is the customer's, from the provider's address.
    let ctx = Context {
        role: Some("customer".into()),
        ..ctx
    };
    let (call, mut out, dialect, stream) = match admit(&mut socket, &app, url_token).await {
        Ok(v) => v,
        Err(r) => {
            tracing::info!(
                code = r.code,
                reason = r.reason,
                "phone media stream refused"
            );
            close_with(&mut socket, r.code, r.reason).await;
            return;
        }
    };
    let mut rest = Vec::new();
    let mut last_seq: Option<u64> = None;
    let mut keypad = super::keypad::Keypad::default();
    let media_out = MediaOut::new(dialect, &stream);
    let refusal = loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break None,
            o = out.recv() => match o {
                Some(CustomerOut::Media(f)) => {
                    if socket.send(Message::Text(media_out.event(&f).into())).await.is_err() { break None; }
                }
                Some(CustomerOut::Clear) => {
                    let v = with_stream(dialect, &stream, json!({"event": "clear"}));
                    if socket.send(Message::Text(v.to_string().into())).await.is_err() { break None; }
                }
                Some(CustomerOut::Mark(name)) => {
                    let v = with_stream(dialect, &stream, json!({"event": "mark", "mark": {"name": name}}));
                    if socket.send(Message::Text(v.to_string().into())).await.is_err() { break None; }
                }
                Some(CustomerOut::Hangup) | None => break None,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => match parse(t.as_str()) {
                    Err(r) => break Some(r),
                    Ok(Inbound::Media { sequence_number, media }) => {
                        if let Some(s) = sequence_number {
                            match s.value() {
                                Err(r) => break Some(r),
                                Ok(n) => {
                                    if last_seq.is_some_and(|l| n <= l) {
                                        break Some(malformed("sequenceNumber does not follow the one before"));
                                    }
                                    last_seq = Some(n);
                                }
                            }
                        }
                        if media.track.as_deref().is_some_and(|t| t != "inbound" && t != "inbound_track") {
                            continue;
                        }
                        match decode_payload(&media.payload, &mut rest) {
                            Err(r) => break Some(r),
                            Ok(frames) => for f in frames { call.from_customer(keypad.screen(f)); },
                        }
                    }
                    Ok(Inbound::Dtmf { dtmf }) => match dtmf.checked() {
                        Ok(d) => keypad.press(&app, &call, &ctx, d).await,
                        Err(r) => break Some(r),
                    },
                    Ok(Inbound::Mark { mark }) => call.mark_played(&mark.name),
                    Ok(Inbound::Stop {}) => break None,
                    Ok(Inbound::Connected {}) => {}
                    Ok(Inbound::Start { .. }) => break Some(malformed("the stream has started already")),
                },
                Some(Ok(Message::Binary(_))) => break Some(malformed("binary frames are not part of this protocol; media is base64 in JSON")),
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(_)) => break Some(too_big(FRAME_TOO_BIG)),
            },
        }
    };
    call.end().await;
    if let Some(r) = refusal {
        tracing::info!(call = %call.id, code = r.code, reason = r.reason, "phone media stream closed");
        close_with(&mut socket, r.code, r.reason).await;
    } else {
        close_with(&mut socket, 1000, "call ended").await;
    }
}

/// Who is calling: the customer the site's signed identity in the custom parameters
/// (`identity`, the same token the widget takes) names, verified as in the widget; else an
/// unverified caller known by the number they call from. An identity that does not verify
/// refuses the stream: the site meant to say who it is.
fn caller(app: &App, site: &str, start: &Start) -> Result<(NewCustomer, Option<String>), Refusal> {
    if let Some(token) = start.custom.get("identity") {
        let secret = app.sites.get(site).and_then(|s| s.identity_secret.as_ref());
        let id = crate::auth::identity::verify(token, secret, app.clock.now()).map_err(|e| {
            tracing::warn!(target: "deskgate::security", site, error = %e, "phone caller's identity refused");
            policy("identity token refused")
        })?;
        return id
            .customer(site)
            .map_err(|_| malformed("identity has a field too long or with control characters"));
    }
    let from = start
        .custom
        .get("from")
        .cloned()
        .or(start.from.clone())
        .filter(|f| f.len() <= 32);
    let new = NewCustomer {
        site: site.to_string(),
        external_id: None,
        name: "Phone caller".into(),
        email: None,
        phone: from,
        verified: false,
    };
    Ok((new, None))
}

type Admitted = (
    Arc<Call>,
    tokio::sync::mpsc::Receiver<CustomerOut>,
    Dialect,
    String,
);

/// Waits for `connected` and `start`, checks the token, opens the call's ticket and recording.
async fn admit(
    socket: &mut WebSocket,
    app: &App,
    admission: Admission,
) -> Result<Admitted, Refusal> {
    let url_token = admission.url_token;
    let deadline = tokio::time::Instant::now() + app.config.voice.start_timeout;
    let (stream, start, dialect) = loop {
        let m = tokio::time::timeout_at(deadline, socket.recv())
            .await
            .map_err(|_| policy("no start event in time"))?;
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                return Err(policy("closed before start"));
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(malformed("binary frames are not part of this protocol"))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) => return Err(too_big(FRAME_TOO_BIG)),
        };
        let dialect = Dialect::of(text.as_str());
        match parse(text.as_str())? {
            Inbound::Connected {} => continue,
            Inbound::Start {
                stream,
                start,
                sequence_number,
            } => {
                let stream = check_start(sequence_number.as_ref(), stream, &start)?;
                break (stream, start, dialect);
            }
            _ => return Err(policy("media before start")),
        }
    };
    let token = start.custom.get("token").cloned().or(url_token);
    let site = match (token, admission.signed) {
        (Some(token), _) => {
            super::token::verify(&app.sites, &token, &start.call, app.clock.now())
                .map_err(|e| {
                    tracing::warn!(target: "deskgate::security", error = %e, "phone media stream refused");
                    policy("media token refused")
                })?
                .site
        }
        // Twilio signed the upgrade for this site: the stream is Twilio's, for any call.
        (None, Some(site)) => site,
        (None, None) => {
            return Err(policy(
                "no media token (customParameters.token or ?token=) and no X-Twilio-Signature",
            ))
        }
    };
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "cannot start the call");
        Refusal {
            code: close::INTERNAL,
            reason: "cannot start the call",
        }
    };
    // A replayed stream (the token is good until it expires) opens nothing.
    let recorded = app
        .store
        .call_recorded(&start.call)
        .await
        .map_err(|e| internal(&e))?;
    if recorded || app.calls.get(&start.call).is_some() {
        return Err(policy("this call is live or recorded already"));
    }
    let (new, locale) = caller(app, &site, &start)?;
    let customer = app
        .store
        .upsert_customer(new, app.clock.now())
        .await
        .map_err(|e| internal(&e))?;
    if let Some(l) = &locale {
        app.stepup
            .remember_language(customer.id, l)
            .await
            .map_err(|e| internal(&e))?;
    }
    let client_id = ClientId::parse(format!("call:{}", start.call))
        .map_err(|_| malformed("callSid must be 1-64 characters"))?;
    let text = MessageText::parse("Phone call".into()).map_err(|e| internal(&e))?;
    let sent = app
        .desk
        .customer_send(&Context::customer(), &customer, None, &client_id, &text)
        .await
        .map_err(|e| internal(&e))?;
    let ticket = sent.appended.ticket;
    let (call, out) = Call::start(app, start.call.clone(), ticket, customer.id, Rate::Hz8000)
        .await
        .map_err(|e| {
            if e.to_string().contains("already") {
                policy("this call is live or recorded already")
            } else {
                internal(&e)
            }
        })?;
    tracing::info!(call = %call.id, ticket = ticket.0, recording = call.recording, "call started");
    Ok((call, out, dialect, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_parse() {
        let twilio = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1","callSid":"CA1","accountSid":"AC1","tracks":["inbound"],"customParameters":{"token":"t"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        let Inbound::Start { start, stream, .. } = parse(twilio).unwrap() else {
            panic!("start")
        };
        assert_eq!(
            (start.call.as_str(), stream.as_deref()),
            ("CA1", Some("MZ1"))
        );
        assert_eq!(start.custom["token"], "t");
        let telnyx = r#"{"event":"start","sequence_number":"1","stream_id":"s1","start":{"call_control_id":"v3:abc","custom_parameters":{"token":"t"},"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}"#;
        let Inbound::Start { start, stream, .. } = parse(telnyx).unwrap() else {
            panic!("start")
        };
        assert_eq!(
            (start.call.as_str(), stream.as_deref()),
            ("v3:abc", Some("s1"))
        );
        let media = r#"{"event":"media","sequence_number":"4","stream_id":"s1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"/w=="}}"#;
        assert!(matches!(parse(media).unwrap(), Inbound::Media { .. }));
    }

    #[test]
    fn bad_frames_are_named() {
        assert_eq!(parse("{").unwrap_err().reason, "frame is not JSON");
        assert_eq!(parse("{}").unwrap_err().reason, "frame has no \"event\"");
        assert_eq!(
            parse(r#"{"event":"dance"}"#).unwrap_err().reason,
            "unknown event"
        );
        let e = parse(r#"{"event":"media","media":{}}"#).unwrap_err();
        assert_eq!(e.reason, "bad media event");
        let big = format!(
            r#"{{"event":"media","media":{{"payload":"{}"}}}}"#,
            "A".repeat(MAX_TEXT_FRAME)
        );
        assert_eq!(parse(&big).unwrap_err().code, close::TOO_BIG);
        let mut rest = Vec::new();
        assert_eq!(
            decode_payload("@@@@", &mut rest).unwrap_err().reason,
            "media payload is not base64"
        );
        let long = base64::engine::general_purpose::STANDARD.encode(vec![0xFFu8; 2000]);
        assert_eq!(
            decode_payload(&long, &mut rest).unwrap_err().code,
            close::TOO_BIG
        );
        let n: Result<u64, _> = SeqNo("12a".into()).value();
        assert!(n.is_err());
    }

    /// What the peer sent never reaches the close reason (and so the log line): serde's
    /// messages quote unknown variants, wrong values and strings, and a close reason has
    /// room for 123 bytes only.
    #[test]
    fn refusals_never_quote_the_frame_and_fit_a_close_frame() {
        let canary = "4111111111111111".repeat(12);
        let frames = [
            format!(r#"{{"event":"{canary}"}}"#),
            format!(r#"{{"event":"media","media":{{"payload":{{"{canary}":1}}}}}}"#),
            format!(r#"{{"event":"media","sequenceNumber":"{canary}","media":{{"payload":""}}}}"#),
            format!(r#"{{"event":"dtmf","dtmf":{{"digit":["{canary}"]}}}}"#),
            format!(r#"{{"event":"start","start":"{canary}"}}"#),
            format!(r#"{{"event":"mark","mark":{{"name":{canary}}}}}"#),
        ];
        for f in &frames {
            let reason = match parse(f) {
                Err(r) => r.reason,
                Ok(Inbound::Media {
                    sequence_number: Some(s),
                    ..
                }) => s.value().unwrap_err().reason,
                Ok(other) => panic!("{other:?}"),
            };
            assert!(!reason.contains("4111"), "{reason}");
            assert!(reason.len() <= super::super::MAX_CLOSE_REASON, "{reason}");
        }
        let start = format!(
            r#"{{"event":"start","streamSid":"MZ1","start":{{"callSid":"CA1",
            "mediaFormat":{{"encoding":"{canary}","sampleRate":8000,"channels":1}}}}}}"#
        );
        let Ok(Inbound::Start {
            sequence_number,
            stream,
            start,
        }) = parse(&start)
        else {
            panic!("start")
        };
        let r = check_start(sequence_number.as_ref(), stream, &start).unwrap_err();
        assert!(!r.reason.contains("4111"), "{}", r.reason);
        assert!(r.reason.len() <= super::super::MAX_CLOSE_REASON);
        let d = Dtmf {
            digit: canary.clone(),
        };
        assert!(!d.checked().unwrap_err().reason.contains("4111"));
        for e in [
            "connected",
            "start",
            "media",
            "dtmf",
            "mark",
            "stop",
            "other",
        ] {
            assert!(bad_event(e).len() <= super::super::MAX_CLOSE_REASON);
        }
    }

    #[test]
    fn a_start_event_is_checked_before_its_token() {
        let start = |format: &str, call: &str| {
            let text = format!(
                r#"{{"event":"start","sequenceNumber":"1","start":{{"streamSid":"MZ1","callSid":"{call}","mediaFormat":{format}}}}}"#
            );
            let Ok(Inbound::Start {
                sequence_number,
                stream,
                start,
            }) = parse(&text)
            else {
                panic!("{text}")
            };
            check_start(sequence_number.as_ref(), stream, &start).map_err(|r| r.reason)
        };
        let mulaw = r#"{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}"#;
        assert_eq!(start(mulaw, "CA1"), Ok("MZ1".to_string()));
        assert_eq!(
            start(r#"{"encoding":"PCMU","sample_rate":8000}"#, "CA1"),
            Ok("MZ1".to_string())
        );
        assert_eq!(
            start(r#"{"encoding":"audio/x-mulaw","sampleRate":16000}"#, "CA1"),
            Err("media format must be μ-law 8000 Hz mono (audio/x-mulaw or PCMU)")
        );
        assert_eq!(
            start(mulaw, &"C".repeat(65)),
            Err("callSid must be 1-64 characters")
        );
        assert_eq!(Dialect::of(r#"{"stream_id":"s"}"#), Dialect::Telnyx);
        assert_eq!(Dialect::of(r#"{"streamSid":"s"}"#), Dialect::Twilio);
    }

    #[test]
    fn an_outgoing_media_event_is_the_json_of_its_fields() {
        let frame: Vec<i16> = (0..160).map(|i| (i * 100) as i16).collect();
        let payload = base64::engine::general_purpose::STANDARD.encode(media::pcm_to_ulaw(&frame));
        for (dialect, key) in [
            (Dialect::Twilio, "streamSid"),
            (Dialect::Telnyx, "stream_id"),
        ] {
            let stream = "MZ\"1\\";
            let v: Value = serde_json::from_str(&MediaOut::new(dialect, stream).event(&frame))
                .expect("valid JSON");
            assert_eq!(
                v,
                json!({"event": "media", key: stream, "media": {"payload": payload}})
            );
        }
    }

    #[test]
    fn a_media_event_reads_the_same_both_ways() {
        let fast = r#"{"event":"media","sequenceNumber":"7","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"/w=="}}"#;
        let Inbound::Media {
            sequence_number,
            media,
        } = parse(fast).unwrap()
        else {
            panic!("media")
        };
        assert_eq!(sequence_number.unwrap().value(), Ok(7));
        assert_eq!(
            (media.payload.as_str(), media.track.as_deref()),
            ("/w==", Some("inbound"))
        );
        // Not a media event, or a broken one: the long way, with its own reason.
        assert!(matches!(
            parse(r#"{"event":"stop","media":{"payload":""}}"#),
            Ok(Inbound::Stop {})
        ));
        assert_eq!(
            parse(r#"{"event":"media","media":{"payload":1}}"#)
                .unwrap_err()
                .reason,
            "bad media event"
        );
    }

    #[test]
    fn payloads_are_cut_into_20_ms_frames() {
        let mut rest = Vec::new();
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![0xFFu8; n]);
        assert_eq!(decode_payload(&b64(100), &mut rest).unwrap().len(), 0);
        let frames = decode_payload(&b64(380), &mut rest).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.len() == 160));
        assert_eq!(rest.len(), 0);
    }
}
