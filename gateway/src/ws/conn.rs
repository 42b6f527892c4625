//! One WebSocket connection: the `hello` handshake, the frame loop, limits, and delivery of
//! hub events in sequence order.

use crate::app::App;
use crate::audit::Context;
use crate::bus::{Effect, Event, Side, Topic};
use crate::desk::{DeskError, Sent};
use crate::hub::{ConnCtl, Subscriber};
use crate::ids::{ConnId, ConversationId, Seq, TicketId};
use crate::metrics::inc;
use crate::origin::RequestOrigin;
use crate::protocol::{
    blocked_message, close, parse_frame, BlockedFinding, ClientFrame, ErrorCode, ResumePoint,
    ServerFrame,
};
use crate::store::{Customer, StoreError, User};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Messages fetched from the store per query when replaying.
const REPLAY_PAGE: i64 = 500;
/// Interval of WebSocket pings that keep proxies from closing an idle connection.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a closing connection waits for the client's close reply.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// How many times `outbound_queue` a staff connection may have waiting.
const STAFF_QUEUE_FACTOR: usize = 8;
/// Slow operations (code emails) one connection may have running off its task at once.
const BACKGROUND_SLOTS: usize = 4;

/// Who is on the other end, as established by `hello`.
pub(super) enum Who {
    Customer(Customer),
    Staff(User),
}

/// A conversation this connection follows, and the last sequence number it has sent of it.
pub(super) struct Follow {
    pub ticket: TicketId,
    pub delivered: Seq,
}

/// Why the frame loop ends.
pub(super) struct Closing {
    pub code: u16,
    pub reason: &'static str,
}

pub(super) type Flow = Result<(), Closing>;

pub(super) fn closing(code: u16, reason: &'static str) -> Closing {
    Closing { code, reason }
}

/// The peer closed or vanished: there is no one to send a close frame to.
fn gone(reason: &'static str) -> Closing {
    Closing { code: 0, reason }
}

pub(super) struct Conn {
    pub id: ConnId,
    pub app: App,
    pub who: Who,
    socket: WebSocket,
    rx: mpsc::Receiver<Arc<Event>>,
    sub: Subscriber,
    pub follows: HashMap<ConversationId, Follow>,
    /// Topics other than conversations that this connection follows.
    fixed_topics: Vec<Topic>,
    bucket: TokenBucket,
    /// What `hello` asked to resume, handled once `welcome` is out.
    pending_resume: Vec<ResumePoint>,
    /// The customer's open conversation (customers only).
    pub current: Option<(TicketId, ConversationId)>,
    /// Where the connection comes from (address, user agent, the upgrade's request id), for
    /// the audit entries of what it does.
    ctx: Context,
    /// Bounds the slow operations this connection runs off its task ([`Conn::later`]).
    pub background: Arc<tokio::sync::Semaphore>,
    /// Events still waiting that were queued before the last queue snapshot was read: the
    /// `queue` events among them are older than the snapshot and are skipped.
    pub stale_queue_events: usize,
}

/// Answers a frame from a task of its own, for an operation too slow to run on the connection
/// task (a code email waits on an SMTP server): the answer joins the connection's event queue,
/// and the connection goes on reading and writing other frames meanwhile.
pub(super) struct Later {
    tx: mpsc::Sender<Arc<Event>>,
    topic: Topic,
}

impl Later {
    /// Queues the frame for the connection; dropped if the connection has ended.
    pub async fn send(&self, frame: Arc<str>) {
        let ev = Event::new(self.topic, crate::bus::Audience::Everyone, frame);
        let _ = self.tx.send(Arc::new(ev)).await;
    }
}

/// Per-connection flood limit: `rate` frames a second on average, `burst` at once.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub async fn run(socket: WebSocket, app: App, side: Side, origin: RequestOrigin, ctx: Context) {
    inc(&app.metrics.connections_total);
    let Some(mut conn) = hello(socket, app, side, origin, ctx).await else {
        return;
    };
    let metrics = conn.app.metrics.clone();
    let gauge = match side {
        Side::Customer => &metrics.customer_connections,
        Side::Staff => &metrics.agent_connections,
    };
    gauge.fetch_add(1, Ordering::Relaxed);
    let end = match conn.start().await {
        Ok(()) => conn.frame_loop().await,
        Err(c) => c,
    };
    conn.finish(end).await;
    gauge.fetch_sub(1, Ordering::Relaxed);
}

/// Waits for `hello`, authenticates it, and builds the connection; closes with 4001 otherwise.
async fn hello(
    mut socket: WebSocket,
    app: App,
    side: Side,
    origin: RequestOrigin,
    ctx: Context,
) -> Option<Conn> {
    let timeout = app.config.ws.hello_timeout;
    let first = tokio::time::timeout(timeout, socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) | Err(_) => {
            reject(socket, &app, "expected a hello frame").await;
            return None;
        }
        Ok(Some(Err(e))) if too_large(&e) => {
            inc(&app.metrics.closed_too_large);
            let _ = close_socket(&mut socket, close::TOO_LARGE, "frame too large").await;
            return None;
        }
        Ok(None) | Ok(Some(Err(_))) => return None,
    };
    let Ok(inbound) = parse_frame(text.as_str()) else {
        reject(socket, &app, "expected a hello frame").await;
        return None;
    };
    let ClientFrame::Hello { token, resume } = inbound.frame else {
        reject(socket, &app, "expected a hello frame").await;
        return None;
    };
    let digest = crate::auth::token::digest(&token);
    let now = app.clock.now();
    let who = match side {
        Side::Customer => app
            .store
            .visitor_customer(&digest, now)
            .await
            .map(Who::Customer),
        Side::Staff => app
            .store
            .session_user(&digest, now, app.config.session_idle_timeout)
            .await
            .map(Who::Staff),
    };
    let who = match who {
        Ok(w) => w,
        Err(StoreError::Unavailable(e)) => {
            tracing::warn!(error = %e, "store unavailable at hello");
            let _ = close_socket(&mut socket, close::INTERNAL, "store unavailable").await;
            return None;
        }
        Err(_) => {
            reject(socket, &app, "unknown or expired token").await;
            return None;
        }
    };
    if let Who::Customer(customer) = &who {
        let allowed = match app.sites.get(&customer.site) {
            Some(site) => origin.check_site(&app.config, site),
            None => Ok(()),
        };
        if let Err(refused) = allowed {
            tracing::warn!(target: "deskgate::security", %refused, site = %customer.site,
                "customer socket refused");
            let _ = close_socket(&mut socket, close::ORIGIN_REFUSED, "origin not allowed").await;
            return None;
        }
    }
    // A staff console follows the queue and every conversation it holds, so a burst of new or
    // assigned tickets reaches it many times over; it gets a longer queue. Room is taken only
    // as events wait, so an idle console costs no more.
    let queue = match side {
        Side::Staff => app.config.ws.outbound_queue * STAFF_QUEUE_FACTOR,
        Side::Customer => app.config.ws.outbound_queue,
    };
    let (tx, rx) = mpsc::channel(queue);
    let id = app.desk.hub.conn_id();
    let sub = Subscriber {
        conn: id,
        side,
        tx,
        ctl: Arc::new(ConnCtl::default()),
    };
    let bucket = TokenBucket::new(app.config.ws.rate_per_sec, app.config.ws.rate_burst);
    let conn = Conn {
        id,
        app,
        who,
        socket,
        rx,
        sub,
        follows: HashMap::new(),
        fixed_topics: Vec::new(),
        bucket,
        pending_resume: resume,
        current: None,
        ctx,
        background: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_SLOTS)),
        stale_queue_events: 0,
    };
    Some(conn)
}

async fn reject(mut socket: WebSocket, app: &App, reason: &'static str) {
    inc(&app.metrics.closed_unauthenticated);
    let _ = close_socket(&mut socket, close::UNAUTHENTICATED, reason).await;
}

/// Closes a socket that is refused before `hello` (too many connections from its address).
pub(super) async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = close_socket(&mut socket, code, reason).await;
}

async fn close_socket(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), ()> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(CLOSE_LINGER, socket.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return Err(());
    }
    // Wait for the client's close reply, so it has read our frames before the TCP close.
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
                // Reading already failed (an oversized frame is left unread). Closing now would
                // reset the connection, which can destroy our frames before the client reads
                // them, so linger instead.
                Some(Err(_)) | None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    Ok(())
}

fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Conn {
    /// The audit context of what this connection does: staff act as themselves with their
    /// role, customers as `customer`.
    pub(super) fn audit_ctx(&self) -> Context {
        match &self.who {
            Who::Staff(u) => self.ctx.clone().by(u),
            Who::Customer(_) => Context {
                role: Some("customer".into()),
                ..self.ctx.clone()
            },
        }
    }

    /// Follows the fixed topics of this side, sends `welcome`, and replays what `hello` asked.
    async fn start(&mut self) -> Flow {
        let resume = std::mem::take(&mut self.pending_resume);
        match &self.who {
            Who::Customer(c) => {
                let topic = Topic::Customer(c.id);
                self.follow_topic(topic).await?;
                super::customer::welcome(self, &resume).await
            }
            Who::Staff(u) => {
                let (uid, works) = (u.id, u.role.works_tickets());
                if u.role.can(crate::auth::Permission::ViewQueue) {
                    self.follow_topic(Topic::Queue).await?;
                }
                self.follow_topic(Topic::User(uid)).await?;
                if works {
                    self.app.desk.hub.agent_online(uid);
                    self.app.desk.kick_assigner();
                }
                super::agent::welcome(self, &resume).await
            }
        }
    }

    async fn follow_topic(&mut self, topic: Topic) -> Flow {
        self.app
            .desk
            .hub
            .follow(topic, self.sub.clone())
            .await
            .map_err(|_| closing(close::INTERNAL, "bus unavailable"))?;
        self.fixed_topics.push(topic);
        Ok(())
    }

    /// Starts following a conversation: subscribes first, then sends from the store what came
    /// after `after`, so nothing falls between the two.
    pub(super) async fn follow(
        &mut self,
        conversation: ConversationId,
        ticket: TicketId,
        after: Seq,
        announce_resumed: bool,
    ) -> Flow {
        if !self.follows.contains_key(&conversation) {
            self.app
                .desk
                .hub
                .follow(Topic::Conversation(conversation), self.sub.clone())
                .await
                .map_err(|_| closing(close::INTERNAL, "bus unavailable"))?;
            self.follows.insert(
                conversation,
                Follow {
                    ticket,
                    delivered: after,
                },
            );
        }
        self.catch_up(conversation, None).await?;
        if announce_resumed {
            let last_seq = self
                .follows
                .get(&conversation)
                .map(|f| f.delivered)
                .unwrap_or(after);
            let frame = ServerFrame::Resumed {
                conversation,
                last_seq,
            }
            .encode();
            self.send(frame).await?;
        }
        Ok(())
    }

    /// Events waiting in this connection's queue.
    pub(super) fn events_waiting(&self) -> usize {
        self.rx.len()
    }

    /// A handle for answering later on this connection; `topic` is one the connection follows
    /// (events are told apart by it in logs only).
    pub(super) fn later(&self, topic: Topic) -> Later {
        Later {
            tx: self.sub.tx.clone(),
            topic,
        }
    }

    pub(super) async fn unfollow(&mut self, conversation: ConversationId) {
        if self.follows.remove(&conversation).is_some() {
            self.app
                .desk
                .hub
                .unfollow(Topic::Conversation(conversation), self.id)
                .await;
        }
    }

    /// Sends the followed conversation's messages after what was delivered, up to `until`
    /// (or to the end), from the store.
    async fn catch_up(&mut self, conversation: ConversationId, until: Option<Seq>) -> Flow {
        loop {
            let Some(f) = self.follows.get(&conversation) else {
                return Ok(());
            };
            let (ticket, after) = (f.ticket, f.delivered);
            let limit = match until {
                Some(u) if u.0 - after.0 <= 0 => return Ok(()),
                Some(u) => (u.0 - after.0).min(REPLAY_PAGE),
                None => REPLAY_PAGE,
            };
            let page = self
                .app
                .store
                .messages_after(conversation, after, limit)
                .await
                .map_err(|_| closing(close::INTERNAL, "store unavailable"))?;
            let n = page.len() as i64;
            for m in &page {
                self.send(ServerFrame::Message { ticket, message: m }.encode())
                    .await?;
                if let Some(f) = self.follows.get_mut(&conversation) {
                    f.delivered = m.seq;
                }
            }
            if n < limit
                || until.is_some_and(|u| {
                    self.follows
                        .get(&conversation)
                        .is_some_and(|f| f.delivered >= u)
                })
            {
                return Ok(());
            }
        }
    }

    /// Sends the messages of a conversation after `after`, without following it (`sync`, and
    /// resume of a conversation that is no longer open), then `resumed`.
    pub(super) async fn replay(
        &mut self,
        ticket: TicketId,
        conversation: ConversationId,
        mut after: Seq,
    ) -> Flow {
        loop {
            let page = self
                .app
                .store
                .messages_after(conversation, after, REPLAY_PAGE)
                .await
                .map_err(|_| closing(close::INTERNAL, "store unavailable"))?;
            for m in &page {
                self.send(ServerFrame::Message { ticket, message: m }.encode())
                    .await?;
                after = m.seq;
            }
            if (page.len() as i64) < REPLAY_PAGE {
                break;
            }
        }
        let frame = ServerFrame::Resumed {
            conversation,
            last_seq: after,
        }
        .encode();
        self.send(frame).await
    }

    /// Writes one frame, giving up if the connection is told to close meanwhile (a client that
    /// stopped reading must not hold its task forever).
    pub(super) async fn send(&mut self, frame: Arc<str>) -> Flow {
        let ctl = self.sub.ctl.clone();
        tokio::select! {
            r = self.socket.send(Message::Text(frame.as_ref().into())) => {
                r.map_err(|_| gone("write failed"))
            }
            code = ctl.closed() => Err(closing(code, "closed")),
        }
    }

    /// Takes a token of each rule for its key; when one refuses, answers `error`
    /// `rate_limited` (with the frame's `ref`, the connection stays open) and returns `true`:
    /// the frame was not acted on, and a `send` was not stored, so the client sends it again.
    pub(super) async fn limited(
        &mut self,
        reference: Option<&str>,
        rules: &[(crate::limits::Rule, String)],
    ) -> Result<bool, Closing> {
        let now = self.app.clock.now();
        for (rule, key) in rules {
            if let Err(l) = self.app.limiter.check(*rule, key, now).await {
                tracing::info!(target: "deskgate::security", conn = self.id.0, rule = rule.as_str(), "rate limited");
                let message = format!(
                    "too many requests ({}); not done, retry in {} s",
                    rule.as_str(),
                    l.retry_after_secs()
                );
                self.reply_error(reference, ErrorCode::RateLimited, &message)
                    .await?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) async fn reply_error(
        &mut self,
        reference: Option<&str>,
        code: ErrorCode,
        message: &str,
    ) -> Flow {
        inc(&self.app.metrics.frame_errors);
        let frame = ServerFrame::Error {
            reference,
            code,
            message,
        }
        .encode();
        self.send(frame).await
    }

    /// Answers a `send`: `ack` once stored, or `blocked` when the screen withheld it.
    pub(super) async fn reply_sent(
        &mut self,
        reference: Option<&str>,
        client_id: &str,
        sent: &Sent,
    ) -> Flow {
        let m = &sent.appended.message;
        let frame = if sent.blocked() {
            ServerFrame::Blocked {
                reference,
                client_id,
                ticket: sent.appended.ticket,
                conversation: Some(m.conversation),
                seq: Some(m.seq),
                reason: "card_number",
                findings: BlockedFinding::all(&sent.findings),
                message: blocked_message(&sent.findings),
            }
            .encode()
        } else {
            ServerFrame::Ack {
                reference,
                client_id,
                ticket: sent.appended.ticket,
                conversation: m.conversation,
                seq: m.seq,
                at: m.at,
                duplicate: sent.appended.duplicate,
            }
            .encode()
        };
        self.send(frame).await
    }

    /// Maps a failed operation to its public error code; details stay in the log.
    pub(super) async fn reply_desk_error(&mut self, reference: Option<&str>, e: DeskError) -> Flow {
        let (code, message) = match &e {
            DeskError::Role => (ErrorCode::Forbidden, "your role may not do this"),
            DeskError::Blocked(_) => (
                ErrorCode::InvalidText,
                "withheld: the text contains a payment card number",
            ),
            DeskError::Store(StoreError::NotFound | StoreError::Forbidden) => {
                (ErrorCode::NotFound, "no such ticket")
            }
            DeskError::Store(StoreError::Conflict(why)) => (ErrorCode::Conflict, *why),
            DeskError::Store(StoreError::Capacity) => {
                (ErrorCode::Capacity, "at the limit of concurrent chats")
            }
            DeskError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(conn = self.id.0, error = %detail, "store unavailable");
                (
                    ErrorCode::Unavailable,
                    "could not be stored; retry with the same client_id",
                )
            }
        };
        self.reply_error(reference, code, message).await
    }

    async fn frame_loop(&mut self) -> Closing {
        let shutdown = self.app.shutdown.clone();
        let ctl = self.sub.ctl.clone();
        let mut next_ping = Instant::now() + KEEPALIVE;
        let idle = self.app.config.limits.idle_timeout;
        let mut last_heard = Instant::now();
        loop {
            if ctl.take_queue_lag() {
                if let Err(c) = super::agent::resend_queue(self).await {
                    return c;
                }
            }
            let step: Flow = tokio::select! {
                biased;
                code = ctl.closed() => Err(closing(code, "closed by the gateway")),
                // Drain: a frame being handled was finished before this branch could be picked
                // (its message stored and acknowledged); the client reconnects elsewhere.
                _ = shutdown.cancelled() => Err(closing(close::SERVICE_RESTART, "node restarting; reconnect")),
                ev = self.rx.recv() => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => Err(closing(close::INTERNAL, "event queue closed")),
                },
                msg = self.socket.recv() => {
                    last_heard = Instant::now();
                    self.on_socket(msg).await
                }
                _ = sleep_until(last_heard + idle) => Err(closing(close::IDLE, "idle")),
                _ = sleep_until(next_ping) => {
                    next_ping = Instant::now() + KEEPALIVE;
                    self.socket
                        .send(Message::Ping(Default::default()))
                        .await
                        .map_err(|_| gone("write failed"))
                }
            };
            if let Err(c) = step {
                return c;
            }
        }
    }

    async fn on_socket(&mut self, msg: Option<Result<Message, axum::Error>>) -> Flow {
        let msg = match msg {
            None => return Err(gone("peer went away")),
            Some(Err(e)) if too_large(&e) => {
                inc(&self.app.metrics.closed_too_large);
                let limit = self.app.config.ws.max_frame_bytes;
                let text = format!("frame larger than {limit} bytes");
                self.reply_error(None, ErrorCode::TooLarge, &text).await?;
                return Err(closing(close::TOO_LARGE, "frame too large"));
            }
            Some(Err(_)) => return Err(gone("read failed")),
            Some(Ok(m)) => m,
        };
        let text = match msg {
            Message::Text(t) => Some(t),
            Message::Binary(_) => None,
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(gone("peer closed")),
        };
        inc(&self.app.metrics.frames_received);
        if !self.bucket.take() {
            inc(&self.app.metrics.closed_rate_limited);
            self.reply_error(None, ErrorCode::RateLimited, "too many frames")
                .await?;
            return Err(closing(close::RATE_LIMITED, "rate limit exceeded"));
        }
        let Some(text) = text else {
            return self
                .reply_error(
                    None,
                    ErrorCode::InvalidFrame,
                    "binary frames are not accepted",
                )
                .await;
        };
        let inbound = match parse_frame(text.as_str()) {
            Ok(i) => i,
            Err(e) => {
                return self
                    .reply_error(e.reference.as_deref(), e.code, &e.message)
                    .await
            }
        };
        let reference = inbound.reference.as_deref();
        if let ClientFrame::Ping = inbound.frame {
            return self.send(ServerFrame::Pong { reference }.encode()).await;
        }
        if let ClientFrame::Hello { .. } = inbound.frame {
            return self
                .reply_error(reference, ErrorCode::InvalidFrame, "already authenticated")
                .await;
        }
        match &self.who {
            Who::Customer(_) => super::customer::on_frame(self, inbound).await,
            Who::Staff(_) => super::agent::on_frame(self, inbound).await,
        }
    }

    /// Applies an event's effect, then writes its frame: conversation messages strictly in
    /// sequence order, each once, with gaps filled from the store.
    async fn on_event(&mut self, ev: Arc<Event>) -> Flow {
        if self.stale_queue_events > 0 {
            self.stale_queue_events -= 1;
            if ev.topic == Topic::Queue {
                return Ok(());
            }
        }
        match &ev.effect {
            Some(Effect::Follow {
                conversation,
                ticket,
                after,
            }) => match self.who {
                Who::Customer(_) => {
                    super::customer::make_current(self, *ticket, *conversation).await?
                }
                Who::Staff(_) => {
                    let fresh = !self.follows.contains_key(conversation);
                    self.follow(*conversation, *ticket, *after, false).await?;
                    if fresh {
                        super::agent::audit_read(self, *ticket, "follow").await;
                    }
                }
            },
            Some(Effect::Unfollow(conversation)) => self.unfollow(*conversation).await,
            Some(Effect::Close(code)) => return Err(closing(*code, "access changed")),
            None => {}
        }
        let Some(frame) = &ev.frame else {
            return Ok(());
        };
        if let Some((conversation, seq)) = ev.seq {
            let Some(f) = self.follows.get(&conversation) else {
                return Ok(());
            };
            if seq <= f.delivered {
                return Ok(());
            }
            if seq > f.delivered.next() {
                self.catch_up(conversation, Some(Seq(seq.0 - 1))).await?;
            }
            self.send(frame.clone()).await?;
            if let Some(f) = self.follows.get_mut(&conversation) {
                f.delivered = seq;
            }
            inc(&self.app.metrics.messages_delivered);
            self.app.metrics.relay_latency.observe(ev.born.elapsed());
            return Ok(());
        }
        self.send(frame.clone()).await
    }

    async fn finish(mut self, end: Closing) {
        let hub = self.app.desk.hub.clone();
        for topic in std::mem::take(&mut self.fixed_topics) {
            hub.unfollow(topic, self.id).await;
        }
        let conversations: Vec<_> = self.follows.keys().copied().collect();
        for c in conversations {
            hub.unfollow(Topic::Conversation(c), self.id).await;
        }
        if let Who::Staff(u) = &self.who {
            if u.role.works_tickets() {
                hub.agent_offline(u.id);
            }
        }
        if end.code != 0 {
            let _ = close_socket(&mut self.socket, end.code, end.reason).await;
        }
        tracing::debug!(
            conn = self.id.0,
            code = end.code,
            reason = end.reason,
            "connection closed"
        );
    }
}
