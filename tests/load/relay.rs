//! `relay`: a bare in-memory server that speaks the part of `deskgate.v1` the generator uses:
//! visitor tokens, agent sessions, hello → welcome (with `resume`), `send` → `ack` (once per
//! `client_id`) and a `message` to the agent holding the ticket and back to the sender,
//! round-robin assignment or `claim` from the queue, `ping`.
//! No store, no screen, no encryption, no authentication worth the name: the generator run
//! against it shows what transport and JSON alone cost, the baseline for the gateway's figures.
//! It also lets the generator's own tests run end to end.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::target::Target;
use crate::ws::SUBPROTOCOL;

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Where to listen; loopback only.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Assign each new conversation to the next online agent, like `deskgate serve --auto-assign`.
    #[arg(long)]
    pub auto_assign: bool,
    /// Frames queued per connection before a slow reader is closed with 4009.
    #[arg(long, default_value_t = 256)]
    pub outbound_queue: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub async fn main(args: RelayArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.listen)?;
    let listener = TcpListener::bind(target.addr()).await?;
    eprintln!(
        "relay: listening on {} (pid {}), auto-assign {}",
        listener.local_addr()?,
        std::process::id(),
        args.auto_assign
    );
    serve(listener, args.auto_assign, args.outbound_queue).await;
    Ok(())
}

pub async fn serve(listener: TcpListener, auto_assign: bool, outbound_queue: usize) {
    serve_state(listener, new_state(auto_assign, outbound_queue)).await;
}

fn new_state(auto_assign: bool, outbound_queue: usize) -> Arc<State> {
    Arc::new(State {
        auto_assign,
        outbound_queue: outbound_queue.max(1),
        next_id: AtomicU64::new(1),
        inner: Mutex::new(Inner::default()),
        crashes: watch::channel(0).0,
        down_until: Mutex::new(None),
        muted: std::sync::atomic::AtomicBool::new(false),
    })
}

async fn serve_state(listener: TcpListener, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let down = state
                    .down_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some_and(|until| Instant::now() < until);
                if down {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(state.clone(), stream));
            }
            // Out of file descriptors, most likely: wait for some to close.
            Err(e) => {
                eprintln!("relay: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct State {
    auto_assign: bool,
    outbound_queue: usize,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
    /// Bumped by [`Crash::now`]: every connection drops at once.
    crashes: watch::Sender<u64>,
    /// Until then, new connections are dropped as they come.
    down_until: Mutex<Option<Instant>>,
    /// Messages are stored but neither acknowledged nor delivered: a process about to die.
    muted: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Inner {
    /// Online agents: user id → outbound queue.
    agents: HashMap<u64, mpsc::Sender<Message>>,
    agent_order: Vec<u64>,
    round_robin: usize,
    usernames: HashMap<String, u64>,
    /// One conversation per customer; its id is the customer's id, and so is the ticket's.
    convs: HashMap<u64, Conv>,
}

struct Conv {
    seq: u64,
    agent: Option<u64>,
    /// Every `message` frame, for resume.
    log: Vec<Message>,
    /// `client_id` → the `seq` it was stored under.
    client_ids: HashMap<String, u64>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

fn ticket(id: u64, status: &str, agent: Option<u64>) -> Value {
    json!({
        "id": id,
        "conversation": id,
        "status": status,
        "priority": "normal",
        "subject": "load",
        "customer": {"id": id, "name": format!("Visitor {id}"), "verified": false},
        "agent": agent.map(|a| json!({"id": a, "name": format!("Agent {a}")})),
        "last_seq": 0,
    })
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

/// Queues a frame for a connection; a full queue closes that connection (4009), as the
/// gateway does, so one slow reader never holds the others up.
fn push(tx: &mpsc::Sender<Message>, frame: Message) {
    if tx.try_send(frame).is_err() {
        let _ = tx.try_send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4009),
            reason: "too slow".into(),
        })));
    }
}

async fn connection(state: Arc<State>, stream: TcpStream) {
    let Some(head) = peek_head(&stream).await else {
        return;
    };
    if head.upgrade {
        websocket(state, stream, head.path).await;
    } else {
        let _ = http(state, stream).await;
    }
}

struct PeekedHead {
    path: String,
    upgrade: bool,
}

/// Looks at the first request without consuming it, so an upgrade can be handed untouched to
/// the WebSocket handshake.
async fn peek_head(stream: &TcpStream) -> Option<PeekedHead> {
    let mut buf = vec![0u8; 8192];
    for _ in 0..1000 {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..n]) {
            Ok(httparse::Status::Complete(_)) => {
                let upgrade = request.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("upgrade")
                        && h.value.eq_ignore_ascii_case(b"websocket")
                });
                return Some(PeekedHead {
                    path: request.path.unwrap_or("/").to_owned(),
                    upgrade,
                });
            }
            Ok(httparse::Status::Partial) if n < buf.len() => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            _ => return None,
        }
    }
    None
}

/// Keep-alive HTTP for the two REST calls.
async fn http(state: Arc<State>, mut stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let (head_len, path, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = request.parse(&buf) {
                let body_len = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                break (len, request.path.unwrap_or("/").to_owned(), body_len);
            }
            if buf.len() > 64 * 1024 || read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head_len + body_len {
            if read_more(&mut stream, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_len..head_len + body_len]).unwrap_or(Value::Null);
        buf.drain(..head_len + body_len);
        let (status, reply) = match path.as_str() {
            "/api/visitor" => {
                let id = state.id();
                let customer =
                    json!({"id": id, "name": format!("Visitor {id}"), "verified": false});
                (
                    "200 OK",
                    json!({"visitor_token": format!("v{id}"), "customer": customer}),
                )
            }
            "/api/session" => match body["username"].as_str() {
                Some(username) => {
                    let id = *state
                        .lock()
                        .usernames
                        .entry(username.to_owned())
                        .or_insert_with(|| state.id());
                    let user = json!({"id": id, "username": username, "name": username, "role": "agent", "capacity": 5000});
                    ("200 OK", json!({"token": format!("a{id}"), "user": user}))
                }
                None => ("400 Bad Request", json!({"error": "invalid_request"})),
            },
            _ => ("404 Not Found", json!({"error": "not_found"})),
        };
        let reply = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    text: Option<String>,
    ticket: Option<u64>,
    #[serde(default)]
    resume: Vec<ResumeFrom>,
}

#[derive(Deserialize)]
struct ResumeFrom {
    conversation: u64,
    after: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Customer,
    Agent,
}

async fn websocket(state: Arc<State>, stream: TcpStream, path: String) {
    let side = match path.as_str() {
        "/ws/customer" => Side::Customer,
        "/ws/agent" => Side::Agent,
        _ => return,
    };
    // The shape of the callback, and so the size of its error, is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        if !offered {
            let mut refusal = ErrorResponse::new(Some("subprotocol deskgate.v1 required".into()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let Ok(socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut frames) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(state.outbound_queue);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let closing = matches!(frame, Message::Close(_));
            if sink.send(frame).await.is_err() || closing {
                break;
            }
        }
    });

    let mut me: Option<u64> = None;
    let mut crashes = state.crashes.subscribe();
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            _ = crashes.changed() => {
                // Gone without a word, as a killed process is: what was queued is lost.
                writer.abort();
                break;
            }
        };
        let Some(Ok(frame)) = frame else {
            break;
        };
        let frame = match frame {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(frame) = serde_json::from_str::<Incoming>(&frame) else {
            push(
                &tx,
                text(json!({"type": "error", "code": "invalid_frame", "message": "not a frame"})),
            );
            continue;
        };
        let Some(id) = me else {
            let Some(id) = hello(&state, side, &frame, &tx) else {
                push(
                    &tx,
                    Message::Close(Some(CloseFrame {
                        code: CloseCode::from(4001),
                        reason: "not authenticated".into(),
                    })),
                );
                break;
            };
            me = Some(id);
            continue;
        };
        match (side, frame.kind.as_str()) {
            (_, "ping") => push(&tx, text(json!({"type": "pong", "ref": frame.reference}))),
            (Side::Customer, "send") => customer_send(&state, id, &frame, &tx),
            (Side::Agent, "claim") => claim(&state, id, &frame, &tx),
            _ => push(
                &tx,
                text(
                    json!({"type": "error", "ref": frame.reference, "code": "unknown_type", "message": "not served by the relay"}),
                ),
            ),
        }
    }
    if let (Side::Agent, Some(id)) = (side, me) {
        let mut inner = state.lock();
        inner.agents.remove(&id);
        inner.agent_order.retain(|&a| a != id);
    }
    drop(tx);
    let _ = writer.await;
}

/// Checks the token's form and answers `welcome`; the id the token names, or `None`.
fn hello(state: &State, side: Side, frame: &Incoming, tx: &mpsc::Sender<Message>) -> Option<u64> {
    if frame.kind != "hello" {
        return None;
    }
    let token = frame.token.as_deref()?;
    let prefix = if side == Side::Customer { "v" } else { "a" };
    let id: u64 = token.strip_prefix(prefix)?.parse().ok()?;
    let mut inner = state.lock();
    if side == Side::Customer {
        push(
            tx,
            text(
                json!({"type": "welcome", "customer": {"id": id, "name": format!("Visitor {id}"), "verified": false}, "conversation": null}),
            ),
        );
        replay(&inner, &frame.resume, |conversation| conversation == id, tx);
        return Some(id);
    }
    inner.agents.insert(id, tx.clone());
    inner.agent_order.push(id);
    let held = |c: &Conv| c.agent == Some(id);
    let queue: Vec<Value> = inner
        .convs
        .iter()
        .filter(|(_, c)| c.agent.is_none())
        .map(|(&cid, _)| ticket(cid, "queued", None))
        .collect();
    let assigned: Vec<Value> = inner
        .convs
        .iter()
        .filter(|(_, c)| held(c))
        .map(|(&cid, _)| ticket(cid, "assigned", Some(id)))
        .collect();
    push(
        tx,
        text(
            json!({"type": "welcome", "user": {"id": id, "username": format!("agent-{id}"), "name": format!("Agent {id}"), "role": "agent", "capacity": 5000}, "assigned": assigned, "queue": queue}),
        ),
    );
    let convs = &inner.convs;
    replay(
        &inner,
        &frame.resume,
        |conversation| convs.get(&conversation).is_some_and(held),
        tx,
    );
    Some(id)
}

/// Sends what each resume point asked for (of the conversations `may_read`), then `resumed`;
/// under the state's lock, so no live message overtakes it.
fn replay(
    inner: &Inner,
    resume: &[ResumeFrom],
    may_read: impl Fn(u64) -> bool,
    tx: &mpsc::Sender<Message>,
) {
    for r in resume {
        let Some(conv) = inner
            .convs
            .get(&r.conversation)
            .filter(|_| may_read(r.conversation))
        else {
            push(
                tx,
                text(
                    json!({"type": "error", "code": "not_found", "message": "no such conversation"}),
                ),
            );
            continue;
        };
        let after = usize::try_from(r.after).unwrap_or(usize::MAX);
        for message in conv.log.iter().skip(after) {
            push(tx, message.clone());
        }
        push(
            tx,
            text(json!({"type": "resumed", "conversation": r.conversation, "last_seq": conv.seq})),
        );
    }
}

fn customer_send(state: &State, customer: u64, frame: &Incoming, tx: &mpsc::Sender<Message>) {
    let (Some(client_id), Some(body)) = (&frame.client_id, &frame.text) else {
        push(
            tx,
            text(
                json!({"type": "error", "ref": frame.reference, "code": "invalid_frame", "message": "client_id and text are required"}),
            ),
        );
        return;
    };
    let mut inner = state.lock();
    let inner = &mut *inner;
    let is_new = !inner.convs.contains_key(&customer);
    let conv = inner.convs.entry(customer).or_insert(Conv {
        seq: 0,
        agent: None,
        log: Vec::new(),
        client_ids: HashMap::new(),
    });
    if let Some(seq) = conv.client_ids.get(client_id) {
        push(
            tx,
            text(
                json!({"type": "ack", "ref": frame.reference, "client_id": client_id, "ticket": customer, "conversation": customer, "seq": seq, "duplicate": true}),
            ),
        );
        return;
    }
    conv.seq += 1;
    let seq = conv.seq;
    conv.client_ids.insert(client_id.clone(), seq);
    let muted = state.muted.load(Ordering::Relaxed);
    if !muted {
        push(
            tx,
            text(
                json!({"type": "ack", "ref": frame.reference, "client_id": client_id, "ticket": customer, "conversation": customer, "seq": seq, "duplicate": false}),
            ),
        );
    }
    if is_new {
        if state.auto_assign && !inner.agent_order.is_empty() {
            let agent = inner.agent_order[inner.round_robin % inner.agent_order.len()];
            inner.round_robin += 1;
            conv.agent = Some(agent);
            if let Some(agent_tx) = inner.agents.get(&agent) {
                push(
                    agent_tx,
                    text(
                        json!({"type": "ticket", "ticket": ticket(customer, "assigned", Some(agent))}),
                    ),
                );
            }
        } else {
            let upsert = text(
                json!({"type": "queue", "op": "upsert", "ticket": ticket(customer, "queued", None)}),
            );
            for agent_tx in inner.agents.values() {
                push(agent_tx, upsert.clone());
            }
        }
    }
    // Every follower gets the message, the sender's own connection too (docs/protocol.md).
    let from = json!({"kind": "customer", "id": customer, "name": format!("Visitor {customer}")});
    let message = text(json!({
        "type": "message",
        "ticket": customer,
        "conversation": customer,
        "seq": seq,
        "from": from,
        "text": body,
        "client_id": client_id,
    }));
    conv.log.push(message.clone());
    if muted {
        return;
    }
    if let Some(agent_tx) = conv.agent.and_then(|a| inner.agents.get(&a)) {
        push(agent_tx, message.clone());
    }
    push(tx, message);
}

fn claim(state: &State, agent: u64, frame: &Incoming, tx: &mpsc::Sender<Message>) {
    let mut inner = state.lock();
    let conv = frame
        .ticket
        .and_then(|t| inner.convs.get_mut(&t).map(|c| (t, c)));
    match conv {
        Some((id, conv)) if conv.agent.is_none() => {
            conv.agent = Some(agent);
            push(
                tx,
                text(json!({"type": "ok", "ref": frame.reference, "ticket": id})),
            );
            push(
                tx,
                text(json!({"type": "ticket", "ticket": ticket(id, "assigned", Some(agent))})),
            );
        }
        Some(_) => push(
            tx,
            text(
                json!({"type": "error", "ref": frame.reference, "code": "conflict", "message": "already claimed"}),
            ),
        ),
        None => push(
            tx,
            text(
                json!({"type": "error", "ref": frame.reference, "code": "not_found", "message": "no such ticket"}),
            ),
        ),
    }
}

/// Starts a relay on an ephemeral loopback port, for tests.
#[cfg(test)]
pub async fn spawn(auto_assign: bool) -> std::net::SocketAddr {
    spawn_crashable(auto_assign).await.0
}

/// Makes a test relay behave as a gateway killed and started again on a durable store.
#[cfg(test)]
#[derive(Clone)]
pub struct Crash(Arc<State>);

#[cfg(test)]
impl Crash {
    /// For `silence` the relay stores messages but neither acknowledges nor delivers them (a
    /// process that committed and died before writing); then every connection drops at once
    /// and none is accepted for `down_for`. What was stored stays.
    pub async fn after(&self, silence: Duration, down_for: Duration) {
        self.0.muted.store(true, Ordering::Relaxed);
        tokio::time::sleep(silence).await;
        *self
            .0
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + down_for);
        self.0.crashes.send_modify(|n| *n += 1);
        self.0.muted.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
pub async fn spawn_crashable(auto_assign: bool) -> (std::net::SocketAddr, Crash) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = new_state(auto_assign, 256);
    tokio::spawn(serve_state(listener, state.clone()));
    (addr, Crash(state))
}
