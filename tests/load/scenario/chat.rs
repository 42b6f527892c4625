//! `chat`: C conversations, each one customer connection whose ticket an agent holds.
//! Customers send timed messages at a total rate; agents check every message's sequence number
//! and record customer → agent latency. Customer and agent live in this one process, so the
//! send time in the text and the receive time come from the same clock.
//!
//! Phases: agents log in and connect → customers connect and each opens a conversation with an
//! untimed first message → every ticket reaches an agent (the gateway's `--auto-assign`, or
//! agents `claim` from the queue) → the measured window → a drain for messages in flight.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{stalled, ConnectStats, Ctx, Window};
use crate::api::Token;
use crate::frames::{Ack, Id, In, MessageFrame, Out, Ticket, Welcome};
use crate::payload::{self, Stamp};
use crate::report::{self, Latency, Messages, Report};
use crate::seq::{Seen, SeqTracker};
use crate::ws::{self, Ws};

/// The `ref` of each customer's first message.
const OPEN_REF: &str = "open";

#[derive(Clone, Copy, Debug, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Assign {
    /// The gateway assigns new tickets (`deskgate serve --auto-assign`).
    Auto,
    /// Agents claim queued tickets, spread over agents by ticket id.
    Claim,
}

#[derive(Args, Debug, Serialize)]
pub struct ChatArgs {
    /// Conversations, one customer connection each.
    #[arg(long, default_value_t = 1000)]
    pub conversations: u64,
    /// Agent connections; they log in as <agent-prefix>1 … <agent-prefix>N.
    #[arg(long, default_value_t = 4)]
    pub agents: u32,
    /// Username prefix of the load agents.
    #[arg(long, default_value = "load-agent-")]
    pub agent_prefix: String,
    /// Password of the load agents.
    #[arg(long, env = "DESKGATE_LOAD_AGENT_PASSWORD", hide_env_values = true)]
    #[serde(skip)]
    pub agent_password: String,
    /// Customer messages per second over all conversations.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Bytes of each message text (at most 8,000).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Seconds of sending: the measured window.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds after the window for unanswered sends, and then as long again (customers
    /// gone) for acknowledged messages still on their way to agents, before any is counted
    /// as lost.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// New customer connections started per second during the ramp.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp: f64,
    /// Customer setups (connect, first message) in flight at once during the ramp.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Keep-alive HTTP clients fetching visitor tokens in parallel.
    #[arg(long, default_value_t = 8)]
    pub token_clients: usize,
    /// How tickets reach agents.
    #[arg(long, value_enum, default_value_t = Assign::Auto)]
    pub assign: Assign,
    /// Exit with status 1 if any message was lost, duplicated or out of order.
    #[arg(long)]
    pub strict: bool,
    /// Percent of conversations that get a second customer tab which never reads: slow
    /// consumers. Every message of its conversation is synced to it, so the gateway must shed
    /// it (close 4009) without slowing anyone else or growing its memory.
    #[arg(long, default_value_t = 0.0)]
    pub stalled_tabs: f64,
}

impl ChatArgs {
    /// The longest this scenario can take, every phase at its own limit.
    pub fn bound(&self, ctx: &Ctx) -> Duration {
        ctx.setup_timeout * 3 + Duration::from_secs(self.duration + 2 * self.drain + 90)
    }
}

/// When and how fast the customers send, published once every conversation has an agent.
#[derive(Clone, Copy, Debug)]
struct Plan {
    start: Instant,
    end: Instant,
    /// Between two messages of one conversation.
    period: Duration,
    /// Customers that became ready later than this many do not send, so the rate holds.
    participants: u64,
}

impl Plan {
    /// Starts a second from now, so every customer has the plan before the first send.
    fn new(participants: u64, args: &ChatArgs) -> Self {
        let start = Instant::now() + Duration::from_secs(1);
        Self {
            start,
            end: start + Duration::from_secs(args.duration),
            period: Duration::from_secs_f64(participants as f64 / args.rate),
            participants,
        }
    }
}

/// One conversation as both of its ends see it.
#[derive(Default)]
struct Conv {
    conversation: Option<Id>,
    /// Sequence numbers the gateway acknowledged to the customer (timed messages only).
    acked: Vec<u64>,
    /// The gateway's sequence numbers as the agent received them.
    by_seq: SeqTracker,
    /// The generator's own message numbers as the agent received them: a message stored
    /// twice under two sequence numbers shows up here.
    by_n: SeqTracker,
    misrouted: u64,
}

struct Shared {
    ctx: Arc<Ctx>,
    /// Makes client ids unique across runs against the same gateway.
    run_id: String,
    size: usize,
    convs: Vec<Mutex<Conv>>,
    by_conversation: Mutex<HashMap<Id, u32>>,
    /// Conversations whose ticket an agent holds.
    assigned: Mutex<HashSet<Id>>,
    sent: AtomicU64,
    acked: AtomicU64,
    send_errors: AtomicU64,
    delivered: AtomicU64,
    ready: AtomicU64,
    setup_failed: AtomicU64,
    dropped: AtomicU64,
    /// How late each send was against its schedule: shows whether the generator kept up.
    lag: Mutex<Histogram<u64>>,
    shown_unparsed: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(ctx: Arc<Ctx>, conversations: u32, size: usize) -> Self {
        Self {
            ctx,
            run_id: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| format!("{:x}", d.as_millis()))
                .unwrap_or_default(),
            size,
            convs: (0..conversations)
                .map(|_| Mutex::new(Conv::default()))
                .collect(),
            by_conversation: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashSet::new()),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            setup_failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            lag: Mutex::new(report::micros_histogram()),
            shown_unparsed: Mutex::new(HashSet::new()),
        }
    }

    fn conv(&self, idx: u32) -> std::sync::MutexGuard<'_, Conv> {
        lock(&self.convs[idx as usize])
    }

    fn mark_assigned(&self, conversation: &Id) {
        lock(&self.assigned).insert(conversation.clone());
    }

    fn is_assigned(&self, conversation: &Id) -> bool {
        lock(&self.assigned).contains(conversation)
    }

    /// Counts a frame the generator could not read and shows the first of each type, since
    /// it means the gateway and docs/protocol.md disagree.
    fn unparsed(&self, side: &str, text: &str, e: &serde_json::Error) {
        let kind = crate::frames::type_of(text);
        self.ctx
            .errors
            .add(format!("{side}: unreadable `{kind}` frame"));
        if lock(&self.shown_unparsed).insert(format!("{side}/{kind}")) {
            let sample: String = text.chars().take(400).collect();
            eprintln!("{side}: cannot read a `{kind}` frame ({e}): {sample}");
        }
    }

    fn lost_connection(&self, side: &str, why: String) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.ctx.errors.add(format!("{side}: {why}"));
    }

    /// Handles a frame on a customer socket after setup; false when the socket is gone.
    fn customer_frame(&self, idx: u32, frame: Option<Result<Message, tungstenite::Error>>) -> bool {
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.customer_text(idx, &text);
                true
            }
            Some(Ok(Message::Close(frame))) => {
                self.lost_connection("customer", ws::close_label(frame.as_ref()));
                false
            }
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                self.lost_connection("customer", e.to_string());
                false
            }
            None => {
                self.lost_connection("customer", "connection ended".into());
                false
            }
        }
    }

    fn customer_text(&self, idx: u32, text: &str) {
        match In::parse(text) {
            Ok(In::Ack(ack)) => self.on_ack(idx, ack),
            Ok(In::Error(e)) => {
                self.send_errors.fetch_add(1, Ordering::Relaxed);
                self.ctx.errors.add(format!("customer: error {}", e.code));
            }
            Ok(_) => {}
            Err(e) => self.unparsed("customer", text, &e),
        }
    }

    /// Acknowledged messages that no agent has received yet, counted message by message (a
    /// total of deliveries can hide one: messages delivered whose ack never came back).
    fn acked_undelivered(&self) -> u64 {
        self.convs
            .iter()
            .map(|conv| {
                let conv = lock(conv);
                conv.acked.iter().filter(|&&s| !conv.by_seq.has(s)).count() as u64
            })
            .sum()
    }

    fn on_ack(&self, idx: u32, ack: Ack) {
        if ack.duplicate {
            self.ctx
                .errors
                .add("customer: ack with duplicate=true for a new client_id");
        }
        let mut conv = self.conv(idx);
        if conv.conversation.as_ref() != Some(&ack.conversation) {
            self.ctx
                .errors
                .add("customer: ack names another conversation");
        }
        conv.acked.push(ack.seq);
        drop(conv);
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// A `message` on an agent socket: sequence checks, then latency of a first delivery.
    fn on_message(&self, m: MessageFrame, latency: &mut Histogram<u64>) {
        let now = self.ctx.clock.now_us();
        let stamp = payload::decode(&m.text);
        let idx = lock(&self.by_conversation).get(&m.conversation).copied();
        let Some(idx) = idx else {
            // The first message of a conversation may beat its registration; timed ones cannot.
            if stamp.is_some() {
                self.ctx
                    .errors
                    .add("agent: timed message for an unknown conversation");
            }
            return;
        };
        let mut conv = self.conv(idx);
        if !matches!(conv.by_seq.observe(m.seq), Seen::New | Seen::Late) {
            return;
        }
        let Some(stamp) = stamp else {
            return;
        };
        if m.from.kind.as_deref() != Some("customer") {
            self.ctx
                .errors
                .add("agent: a customer's timed message not marked from.kind=customer");
        }
        if stamp.conv != idx {
            conv.misrouted += 1;
        }
        if matches!(conv.by_n.observe(stamp.n), Seen::New | Seen::Late) {
            drop(conv);
            self.delivered.fetch_add(1, Ordering::Relaxed);
            latency.saturating_record(now.saturating_sub(stamp.sent_us));
        }
    }
}

/// A fixed fraction in [0, 1) per conversation, so sends are spread over the period the same
/// way in every run.
pub(super) fn phase(idx: u32) -> f64 {
    let mut z = u64::from(idx).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

pub async fn run(ctx: Arc<Ctx>, args: &ChatArgs) -> anyhow::Result<Report> {
    let conversations = validate(args)?;
    let mut report = ctx.new_report("chat", args);
    ctx.check_open_files(
        args.conversations + u64::from(args.agents) + 64,
        &mut report.notes,
    );
    let shared = Arc::new(Shared::new(ctx.clone(), conversations, args.size));
    // Customers stop first; agents get a last moment for messages already acknowledged.
    let (stop_customers, customers_stop) = watch::channel(false);
    let (stop_agents, agents_stop) = watch::channel(false);
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);

    let mut agents = start_agents(&shared, args, agents_stop).await?;
    let before = ctx.gateway_sample()?;
    let (tokens, tokens_per_sec) =
        super::visitor_tokens(&ctx, args.conversations, args.token_clients).await;
    report.connections.tokens_per_sec = tokens_per_sec;
    let stalled_count = (tokens.len() as f64 * args.stalled_tabs / 100.0).round() as usize;
    let stalled_tokens: Vec<Token> = tokens.iter().take(stalled_count).cloned().collect();
    let mut customers =
        start_customers(&shared, args, tokens, plan_rx, customers_stop, &mut report).await;
    let (stop_stalled, stalled_stop) = watch::channel(false);
    let stalled = stalled::open(&ctx, stalled_tokens, stalled_stop).await;

    let participants = shared.ready.load(Ordering::Relaxed);
    if participants == 0 {
        let _ = stop_customers.send(true);
        let _ = stop_agents.send(true);
        report.errors = ctx.errors.snapshot();
        eprint!("{}", report.render());
        anyhow::bail!(
            "no conversation reached an agent: start the gateway with --auto-assign, or pass \
             --assign claim"
        );
    }
    let plan = Plan::new(participants, args);
    let _ = plan_tx.send(Some(plan));
    eprintln!(
        "chat: {participants} conversations, {} msg/s in all (one every {:.0} ms each), {} B, for {} s",
        args.rate,
        plan.period.as_secs_f64() * 1000.0,
        args.size,
        args.duration
    );

    tokio::time::sleep_until(plan.start).await;
    let progress = super::progress_every(Duration::from_secs(5), {
        let shared = shared.clone();
        move || {
            format!(
                "chat: sent {} acked {} delivered {}",
                shared.sent.load(Ordering::Relaxed),
                shared.acked.load(Ordering::Relaxed),
                shared.delivered.load(Ordering::Relaxed)
            )
        }
    });
    let window = Window::measure(&ctx, Duration::from_secs(args.duration)).await?;
    // What the gateway kept up with inside the window, whatever the drain adds later.
    let in_window = (
        shared.acked.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    drain(&shared, args, plan.end, &mut report.notes).await;
    let _ = stop_stalled.send(true);
    stalled::tally(stalled, &mut report.notes).await;
    // Customers leave first, counting the acks that still arrive while they close; only then
    // is it known which messages the agents must have.
    let _ = stop_customers.send(true);
    let closing = async { while customers.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), closing)
        .await
        .is_err()
    {
        report
            .notes
            .push("some customer connections did not close within 30 s".into());
    }
    last_call(&shared, args, &mut report.notes).await;
    progress.abort();
    let _ = stop_agents.send(true);

    let mut latency = report::micros_histogram();
    let collect = async {
        while let Some(done) = agents.join_next().await {
            if let Ok(h) = done {
                let _ = latency.add(h);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .is_err()
    {
        report
            .notes
            .push("some agent connections did not close within 30 s".into());
    }

    report.messages = Some(tally(&shared, args, in_window, &mut report.notes));
    report.latency_ms = Latency::from_micros(&latency);
    report.connections.dropped = shared.dropped.load(Ordering::Relaxed);
    let held = report.connections.established + u64::from(args.agents);
    report.gateway = window.gateway_usage(&ctx, before, held);
    report.generator = window.generator_usage(ctx.worker_threads);
    report.errors = ctx.errors.snapshot();
    Ok(report)
}

/// Checks the flags; the number of conversations as an index type.
fn validate(args: &ChatArgs) -> anyhow::Result<u32> {
    ensure!(args.conversations > 0, "--conversations must be at least 1");
    ensure!(args.agents > 0, "--agents must be at least 1");
    ensure!(
        args.rate > 0.0 && args.rate.is_finite(),
        "--rate must be positive"
    );
    ensure!(
        args.size <= payload::MAX_TEXT,
        "--size is at most {} (the protocol's limit)",
        payload::MAX_TEXT
    );
    ensure!(
        (0.0..=100.0).contains(&args.stalled_tabs),
        "--stalled-tabs is a percentage (0 to 100)"
    );
    u32::try_from(args.conversations).context("--conversations too large")
}

/// Logs the agents in and connects them; each serves its socket until told to stop and
/// returns the latencies it recorded.
async fn start_agents(
    shared: &Arc<Shared>,
    args: &ChatArgs,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<Histogram<u64>>> {
    let mut agents = JoinSet::new();
    for index in 0..args.agents {
        let username = format!("{}{}", args.agent_prefix, index + 1);
        let (socket, me, welcome, _) =
            super::connect_agent(&shared.ctx, &username, &args.agent_password)
                .await
                .with_context(|| format!("agent {username}"))?;
        let agent = Agent {
            shared: shared.clone(),
            me,
            index,
            agents: args.agents,
            assign: args.assign,
            pending_claims: HashMap::new(),
            latency: report::micros_histogram(),
        };
        agents.spawn(agent.run(socket, welcome, stop.clone()));
    }
    eprintln!("agents: {} connected", args.agents);
    Ok(agents)
}

/// Ramps the customers up (each connects, opens its conversation and waits for an agent) and
/// waits until every one is ready or has failed, within the setup timeout.
async fn start_customers(
    shared: &Arc<Shared>,
    args: &ChatArgs,
    tokens: Vec<Token>,
    plan: watch::Receiver<Option<Plan>>,
    stop: watch::Receiver<bool>,
    report: &mut Report,
) -> JoinSet<()> {
    let ctx = &shared.ctx;
    let stats = Arc::new(ConnectStats::default());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut customers = JoinSet::new();
    let ramp_start = Instant::now();
    let setup_deadline = ramp_start + ctx.setup_timeout;
    let progress = super::progress_every(Duration::from_secs(2), {
        let (shared, stats) = (shared.clone(), stats.clone());
        move || {
            format!(
                "setup: {} connected, {} with an agent, {} failed",
                stats.established.load(Ordering::Relaxed),
                shared.ready.load(Ordering::Relaxed),
                shared.setup_failed.load(Ordering::Relaxed),
            )
        }
    });
    let mut attempted: u32 = 0;
    for token in tokens {
        tokio::time::sleep_until(super::paced(ramp_start, u64::from(attempted), args.ramp)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() >= setup_deadline {
            report
                .notes
                .push("the ramp hit --setup-timeout before every customer was tried".into());
            break;
        }
        let customer = Customer {
            shared: shared.clone(),
            idx: attempted,
        };
        customers.spawn(customer.run(token, stats.clone(), permit, plan.clone(), stop.clone()));
        attempted += 1;
    }
    loop {
        let done =
            shared.ready.load(Ordering::Relaxed) + shared.setup_failed.load(Ordering::Relaxed);
        if done >= u64::from(attempted) {
            break;
        }
        if Instant::now() >= setup_deadline + ctx.setup_timeout {
            report.notes.push(format!(
                "{} customers were still setting up after --setup-timeout; they did not send",
                u64::from(attempted) - done
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.abort();
    stats.fill(u64::from(attempted), ramp_start, report);
    customers
}

/// After the window: waits up to --drain for every send to be answered and delivered.
async fn drain(shared: &Shared, args: &ChatArgs, end: Instant, notes: &mut Vec<String>) {
    let unanswered = || {
        let answered =
            shared.acked.load(Ordering::Relaxed) + shared.send_errors.load(Ordering::Relaxed);
        shared.sent.load(Ordering::Relaxed).saturating_sub(answered)
    };
    let deadline = end + Duration::from_secs(args.drain);
    while (unanswered() > 0 || shared.acked_undelivered() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if unanswered() > 0 {
        notes.push(format!(
            "{} sends were still unanswered {} s after the window: the gateway fell behind the \
             offered rate, so the latency figures are mostly queueing",
            unanswered(),
            args.drain
        ));
    }
}

/// Once the customers are gone: waits up to --drain for the agents to receive every message
/// acknowledged so far (each was committed and published before its ack).
async fn last_call(shared: &Shared, args: &ChatArgs, notes: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(args.drain);
    while shared.acked_undelivered() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if shared.acked_undelivered() > 0 {
        notes.push(format!(
            "acknowledged messages were still missing at agents {} s after the customers left; \
             they count as lost below (a longer --drain tells late from lost)",
            args.drain
        ));
    }
}

/// Counts what both ends saw: lost (acknowledged, never delivered), duplicated, out of order.
fn tally(
    shared: &Shared,
    args: &ChatArgs,
    (acked_in_window, delivered_in_window): (u64, u64),
    notes: &mut Vec<String>,
) -> Messages {
    let window_secs = args.duration as f64;
    let mut m = Messages {
        sent: shared.sent.load(Ordering::Relaxed),
        acked: shared.acked.load(Ordering::Relaxed),
        delivered: shared.delivered.load(Ordering::Relaxed),
        send_errors: shared.send_errors.load(Ordering::Relaxed),
        window_secs,
        acked_per_sec: acked_in_window as f64 / window_secs,
        delivered_per_sec: delivered_in_window as f64 / window_secs,
        send_lag_ms: Latency::from_micros(&lock(&shared.lag)),
        ..Messages::default()
    };
    m.sent_per_sec = m.sent as f64 / window_secs;
    m.unacked = m.sent.saturating_sub(m.acked + m.send_errors);
    let (mut misrouted, mut jumped) = (0, 0);
    let mut lost_examples = Vec::new();
    for conv in &shared.convs {
        let conv = lock(conv);
        for &seq in conv.acked.iter().filter(|&&s| !conv.by_seq.has(s)) {
            m.lost += 1;
            if let (true, Some(c)) = (lost_examples.len() < 10, &conv.conversation) {
                let acked_up_to = conv.acked.iter().max().copied().unwrap_or_default();
                lost_examples.push(format!(
                    "{c}/{seq} (agent had up to {}, customer acked up to {acked_up_to})",
                    conv.by_seq.highest()
                ));
            }
        }
        m.duplicates += conv.by_seq.duplicates + conv.by_n.duplicates;
        m.out_of_order += conv.by_seq.out_of_order;
        misrouted += conv.misrouted;
        jumped += conv.by_seq.jumped;
    }
    if !lost_examples.is_empty() {
        let note = format!(
            "acknowledged but never delivered to the agent (conversation/seq): {}",
            lost_examples.join(", ")
        );
        eprintln!("{note}");
        notes.push(note);
    }
    let errors = &shared.ctx.errors;
    if misrouted > 0 {
        errors.add(format!(
            "agent: {misrouted} messages arrived under another conversation's id"
        ));
    }
    if jumped > 0 {
        errors.add(format!(
            "agent: sequence numbers jumped over {jumped} values"
        ));
    }
    m
}

struct Customer {
    shared: Arc<Shared>,
    idx: u32,
}

impl Customer {
    async fn run(
        self,
        token: Token,
        stats: Arc<ConnectStats>,
        permit: OwnedSemaphorePermit,
        mut plan: watch::Receiver<Option<Plan>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let shared = &self.shared;
        let ctx = &shared.ctx;
        let Some(mut socket) = super::connect_customer(ctx, &token, &stats).await else {
            shared.setup_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let opened = self.open_conversation(&mut socket).await;
        drop(permit);
        let conversation = match opened {
            Ok(conversation) => conversation,
            Err(why) => {
                ctx.errors.add(format!("customer setup: {why}"));
                shared.setup_failed.fetch_add(1, Ordering::Relaxed);
                ws::close(socket).await;
                return;
            }
        };

        let deadline = Instant::now() + ctx.setup_timeout;
        while !shared.is_assigned(&conversation) {
            if Instant::now() >= deadline {
                ctx.errors
                    .add("customer setup: no agent got the ticket within --setup-timeout");
                shared.setup_failed.fetch_add(1, Ordering::Relaxed);
                ws::close(socket).await;
                return;
            }
            tokio::select! {
                frame = socket.next() => if !shared.customer_frame(self.idx, frame) {
                    shared.setup_failed.fetch_add(1, Ordering::Relaxed);
                    return;
                },
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            }
        }
        let order = shared.ready.fetch_add(1, Ordering::Relaxed);

        let plan = loop {
            tokio::select! {
                frame = socket.next() => if !shared.customer_frame(self.idx, frame) { return },
                p = plan.wait_for(Option::is_some) => match p {
                    Ok(p) => break *p,
                    Err(_) => return,
                },
            }
        };
        if let Some(plan) = plan.filter(|p| order < p.participants) {
            if !self.send_until(&mut socket, plan).await {
                return;
            }
        }
        // Acks of the last messages, until the run is over.
        loop {
            tokio::select! {
                frame = socket.next() => if !shared.customer_frame(self.idx, frame) { return },
                _ = super::stopped(&mut stop) => break,
            }
        }
        self.close(socket).await;
    }

    /// Closes the socket, still counting the acks that arrive before the gateway's close.
    async fn close(&self, mut socket: Ws) {
        if socket.close(None).await.is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, socket.next()).await {
            if let Message::Text(text) = frame {
                self.shared.customer_text(self.idx, &text);
            }
        }
    }

    /// Sends the untimed first message and waits for its `ack`; registers the conversation.
    async fn open_conversation(&self, socket: &mut Ws) -> Result<Id, String> {
        let shared = &self.shared;
        let client_id = format!("{}-{}-0", shared.run_id, self.idx);
        let text = payload::opener(self.idx);
        let frame = Out::Send {
            reference: Some(OPEN_REF),
            ticket: None,
            client_id: &client_id,
            text: &text,
        };
        socket
            .send(Message::text(frame.to_json()))
            .await
            .map_err(|e| format!("first message: {e}"))?;
        let deadline = Instant::now() + shared.ctx.setup_timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| "no ack for the first message".to_owned())?;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => return Err(ws::close_label(frame.as_ref())),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection ended".into()),
            };
            match In::parse(&text) {
                Ok(In::Ack(ack)) if ack.client_id == client_id => {
                    let mut conv = shared.conv(self.idx);
                    conv.conversation = Some(ack.conversation.clone());
                    conv.by_seq = SeqTracker::after(ack.seq);
                    conv.by_n = SeqTracker::after(0);
                    drop(conv);
                    lock(&shared.by_conversation).insert(ack.conversation.clone(), self.idx);
                    return Ok(ack.conversation);
                }
                Ok(In::Error(e)) => return Err(format!("first message: error {}", e.code)),
                Ok(_) => {}
                Err(e) => shared.unparsed("customer", &text, &e),
            }
        }
    }

    /// Sends on this conversation's schedule until the plan ends; false if the socket is gone.
    async fn send_until(&self, socket: &mut Ws, plan: Plan) -> bool {
        let shared = &self.shared;
        let first = plan.start + plan.period.mul_f64(phase(self.idx));
        let mut ticker = tokio::time::interval_at(first, plan.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut text = String::with_capacity(shared.size);
        let mut n = 0;
        loop {
            tokio::select! {
                scheduled = ticker.tick() => {
                    if scheduled >= plan.end {
                        return true;
                    }
                    n += 1;
                    let late = Instant::now().saturating_duration_since(scheduled);
                    lock(&shared.lag)
                        .saturating_record(u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
                    let stamp = Stamp { sent_us: shared.ctx.clock.now_us(), conv: self.idx, n };
                    payload::encode(stamp, shared.size, &mut text);
                    let client_id = format!("{}-{}-{n}", shared.run_id, self.idx);
                    let frame = Out::Send { reference: None, ticket: None, client_id: &client_id, text: &text };
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = socket.send(Message::text(frame.to_json())).await {
                        shared.lost_connection("customer send", e.to_string());
                        return false;
                    }
                }
                frame = socket.next() => if !shared.customer_frame(self.idx, frame) { return false },
            }
        }
    }
}

struct Agent {
    shared: Arc<Shared>,
    me: Id,
    index: u32,
    agents: u32,
    assign: Assign,
    /// Claims sent and not answered yet: `ref` → conversation.
    pending_claims: HashMap<String, Id>,
    latency: Histogram<u64>,
}

impl Agent {
    /// Serves the agent socket until the run stops; returns the latencies it recorded.
    async fn run(
        mut self,
        mut socket: Ws,
        welcome: Welcome,
        mut stop: watch::Receiver<bool>,
    ) -> Histogram<u64> {
        for ticket in welcome.assigned.iter().chain(&welcome.queue) {
            if !self.on_ticket(&mut socket, ticket).await {
                return self.latency;
            }
        }
        loop {
            tokio::select! {
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            self.shared.lost_connection("agent", ws::close_label(frame.as_ref()));
                            return self.latency;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            self.shared.lost_connection("agent", e.to_string());
                            return self.latency;
                        }
                        None => {
                            self.shared.lost_connection("agent", "connection ended".into());
                            return self.latency;
                        }
                    };
                    if !self.on_text(&mut socket, &text).await {
                        return self.latency;
                    }
                }
                _ = super::stopped(&mut stop) => {
                    ws::close(socket).await;
                    return self.latency;
                }
            }
        }
    }

    async fn on_text(&mut self, socket: &mut Ws, text: &str) -> bool {
        let shared = &self.shared;
        match In::parse(text) {
            Ok(In::Message(m)) => shared.on_message(m, &mut self.latency),
            Ok(In::Ticket { ticket }) => return self.on_ticket(socket, &ticket).await,
            Ok(In::Queue {
                op,
                ticket,
                tickets,
            }) => {
                let upserted = ticket.filter(|_| op == "upsert");
                for t in upserted
                    .iter()
                    .chain(tickets.iter().filter(|_| op == "reset"))
                {
                    if !self.on_ticket(socket, t).await {
                        return false;
                    }
                }
            }
            Ok(In::Ok { reference }) => {
                if let Some(conversation) = reference.and_then(|r| self.pending_claims.remove(&r)) {
                    shared.mark_assigned(&conversation);
                }
            }
            Ok(In::Error(e)) => {
                let claim = e
                    .reference
                    .and_then(|r| self.pending_claims.remove(&r))
                    .is_some();
                let what = if claim { "agent claim" } else { "agent" };
                shared.ctx.errors.add(format!("{what}: error {}", e.code));
            }
            Ok(_) => {}
            Err(e) => shared.unparsed("agent", text, &e),
        }
        true
    }

    /// A ticket this agent holds marks its conversation ready; a queued one is claimed in
    /// claim mode when it falls to this agent. False if the socket is gone.
    async fn on_ticket(&mut self, socket: &mut Ws, ticket: &Ticket) -> bool {
        if ticket.is_assigned_to(&self.me) {
            self.shared.mark_assigned(&ticket.conversation);
            return true;
        }
        let mine = ticket.id.spread_key() % u64::from(self.agents) == u64::from(self.index);
        if !matches!(self.assign, Assign::Claim) || ticket.status != "queued" || !mine {
            return true;
        }
        let reference = format!("claim-{}", ticket.id);
        if self.pending_claims.contains_key(&reference) {
            return true;
        }
        self.pending_claims
            .insert(reference.clone(), ticket.conversation.clone());
        let frame = Out::Claim {
            reference: &reference,
            ticket: &ticket.id,
        };
        if let Err(e) = socket.send(Message::text(frame.to_json())).await {
            self.shared.lost_connection("agent", e.to_string());
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(assign: Assign) -> ChatArgs {
        ChatArgs {
            conversations: 24,
            agents: 3,
            agent_prefix: "load-agent-".into(),
            agent_password: "pw".into(),
            rate: 240.0,
            size: 120,
            duration: 1,
            drain: 3,
            ramp: 500.0,
            concurrency: 8,
            token_clients: 2,
            assign,
            strict: true,
            stalled_tabs: 0.0,
        }
    }

    async fn clean_run(auto_assign: bool, assign: Assign) {
        let addr = crate::relay::spawn(auto_assign).await;
        let report = run(super::super::test_ctx(addr), &args(assign))
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.connections.established, 24);
        let m = report.messages.unwrap();
        assert!(m.sent >= 200, "{m:?}");
        assert_eq!((m.acked, m.delivered), (m.sent, m.sent), "{m:?}");
        assert_eq!(
            (m.lost, m.duplicates, m.out_of_order, m.unacked),
            (0, 0, 0, 0)
        );
        assert_eq!(report.latency_ms.unwrap().count, m.delivered);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_message_arrives_once_with_auto_assignment() {
        clean_run(true, Assign::Auto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_message_arrives_once_with_claims() {
        clean_run(false, Assign::Claim).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_tabs_are_opened_and_accounted_for() {
        let addr = crate::relay::spawn(true).await;
        let args = ChatArgs {
            stalled_tabs: 25.0,
            ..args(Assign::Auto)
        };
        let report = run(super::super::test_ctx(addr), &args).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let note = report
            .notes
            .iter()
            .find(|n| n.starts_with("stalled tabs"))
            .expect("a note on the stalled tabs");
        // The relay keeps them (it has no tab sync); all six opened and were accounted for.
        assert!(note.contains("could not open: 0"), "{note}");
        assert!(note.contains("still open at the end: 6"), "{note}");
    }

    fn message(conversation: u64, seq: u64, n: u64) -> MessageFrame {
        let mut text = String::new();
        payload::encode(
            Stamp {
                sent_us: 0,
                conv: 0,
                n,
            },
            40,
            &mut text,
        );
        MessageFrame {
            ticket: Id::Num(conversation),
            conversation: Id::Num(conversation),
            seq,
            from: crate::frames::Party {
                id: None,
                kind: Some("customer".into()),
            },
            text,
        }
    }

    #[test]
    fn gaps_duplicates_and_double_stores_are_counted() {
        let ctx = super::super::test_ctx("127.0.0.1:9".parse().unwrap());
        let shared = Shared::new(ctx, 1, 40);
        *shared.conv(0) = Conv {
            conversation: Some(Id::Num(5)),
            acked: vec![2, 3, 4, 5],
            by_seq: SeqTracker::after(1),
            by_n: SeqTracker::after(0),
            misrouted: 0,
        };
        lock(&shared.by_conversation).insert(Id::Num(5), 0);
        let mut latency = report::micros_histogram();
        // seq 2 (n 1), seq 2 again, seq 4 (n 3) before seq 3 (n 2), then seq 6 storing n 3 twice.
        for (seq, n) in [(2, 1), (2, 1), (4, 3), (3, 2), (6, 3)] {
            shared.on_message(message(5, seq, n), &mut latency);
        }
        let conv = shared.conv(0);
        assert_eq!(conv.by_seq.duplicates, 1);
        assert_eq!(conv.by_seq.out_of_order, 1);
        assert_eq!(conv.by_n.duplicates, 1);
        let lost = conv.acked.iter().filter(|&&s| !conv.by_seq.has(s)).count();
        assert_eq!(lost, 1, "seq 5 never arrived");
        drop(conv);
        assert_eq!(shared.acked_undelivered(), 1);
        assert_eq!(shared.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(latency.len(), 3);
    }

    #[test]
    fn phases_are_spread_over_the_period() {
        let phases: Vec<f64> = (0..1000).map(phase).collect();
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
        let mean = phases.iter().sum::<f64>() / phases.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        assert_eq!(phase(7), phase(7));
    }
}
