//! `chat`: C conversations, each one customer connection whose ticket an agent holds.
//! Customers send timed messages at a total rate; agents check every message's sequence number
//! and record customer → agent latency. Customer and agent live in this one process, so the
//! send time in the text and the receive time come from the same clock.
//!
//! Phases: agents log in and connect → customers connect and each opens a conversation with an
//! untimed first message → every ticket reaches an agent (the gateway's `--auto-assign`, or
//! agents `claim` from the queue) → the measured window → a drain for messages in flight.
//!
//! With `--reconnect` a client that loses its connection opens it again as a real one would:
//! with backoff, resuming from the last `seq` it holds, and sending again, under the same
//! `client_id`, what was never acknowledged. `--kill-after` kills the gateway in the window to
//! show that a crash loses and doubles nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};

use super::reconnect::{Recovery, Side};
use super::{stalled, ConnectStats, Ctx, Window};
use crate::api::Token;
use crate::frames::{Ack, Id, In, MessageFrame, Out, ResumeAt, Ticket, Welcome};
use crate::payload::{self, Stamp};
use crate::report::{self, Latency, Messages, Report};
use crate::seq::{Seen, SeqTracker};
use crate::ws::{self, Role, Ws};

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
    /// A client that loses its connection reconnects (with backoff), resumes from the last
    /// `seq` it holds, and sends again what was not acknowledged; every message must still
    /// arrive exactly once.
    #[arg(long)]
    pub reconnect: bool,
    /// Kill the gateway (SIGKILL to --gateway-pid) this many seconds into the window; implies
    /// --reconnect. Something else must start it again: systemd's `Restart=`, or the `restart`
    /// scenario of tests/load/run.sh.
    #[arg(long)]
    pub kill_after: Option<u64>,
    /// Seconds a client keeps trying to reconnect before it gives up.
    #[arg(long, default_value_t = 60)]
    pub reconnect_within: u64,
}

impl ChatArgs {
    /// The longest this scenario can take, every phase at its own limit.
    pub fn bound(&self, ctx: &Ctx) -> Duration {
        let reconnecting = if self.reconnects() {
            self.reconnect_within
        } else {
            0
        };
        ctx.setup_timeout * 3
            + Duration::from_secs(self.duration + 2 * self.drain + reconnecting + 90)
    }

    fn reconnects(&self) -> bool {
        self.reconnect || self.kill_after.is_some()
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
    /// The gateway's sequence numbers as the customer received them: every message of the
    /// conversation comes back to it, its own too.
    by_seq_customer: SeqTracker,
    /// With reconnection: timed messages sent and not acknowledged yet, by the generator's
    /// number, to send again after a reconnect.
    pending: BTreeMap<u64, Pending>,
    misrouted: u64,
}

struct Pending {
    text: String,
    resent: bool,
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
    /// Set when clients reconnect after losing their connection.
    recovery: Option<Recovery>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(ctx: Arc<Ctx>, conversations: u32, size: usize, recovery: Option<Recovery>) -> Self {
        Self {
            recovery,
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

    /// A connection lost: an error, unless clients reconnect, when it is part of the recovery.
    fn lost_connection(&self, side: &str, why: String) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        match &self.recovery {
            Some(recovery) => recovery.lost(),
            None => self.ctx.errors.add(format!("{side}: {why}")),
        }
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
            Ok(In::Message(m)) => {
                let mut conv = self.conv(idx);
                if conv.conversation.as_ref() == Some(&m.conversation) {
                    conv.by_seq_customer.observe(m.seq);
                }
            }
            Ok(In::Resumed {}) => self.resumed(),
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

    fn resumed(&self) {
        if let Some(recovery) = &self.recovery {
            recovery.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_ack(&self, idx: u32, ack: Ack) {
        let mut conv = self.conv(idx);
        let n = ack
            .client_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok());
        let resent = n
            .and_then(|n| conv.pending.remove(&n))
            .is_some_and(|p| p.resent);
        match (ack.duplicate, resent, &self.recovery) {
            (true, true, Some(recovery)) => {
                recovery.already_stored.fetch_add(1, Ordering::Relaxed);
            }
            (true, _, _) => self
                .ctx
                .errors
                .add("customer: ack with duplicate=true for a new client_id"),
            (false, _, _) => {}
        }
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

/// What `--kill-after` does to the gateway; a description of what was killed.
type Kill = Box<dyn FnOnce() -> std::io::Result<String> + Send>;

pub async fn run(ctx: Arc<Ctx>, args: &ChatArgs) -> anyhow::Result<Report> {
    let pid = ctx.gateway.as_ref().and_then(|g| g.pid);
    let kill: Kill = match (args.kill_after, pid) {
        (Some(_), None) => {
            anyhow::bail!("--kill-after needs --gateway-pid: the generator kills that process")
        }
        (_, pid) => Box::new(move || {
            let pid = pid.unwrap_or_default();
            crate::sys::kill(pid).map(|()| format!("the gateway (pid {pid})"))
        }),
    };
    run_killing(ctx, args, kill).await
}

/// [`run`], with `kill` for `--kill-after`.
async fn run_killing(ctx: Arc<Ctx>, args: &ChatArgs, kill: Kill) -> anyhow::Result<Report> {
    let conversations = validate(args)?;
    let mut report = ctx.new_report("chat", args);
    ctx.check_open_files(
        args.conversations + u64::from(args.agents) + 64,
        &mut report.notes,
    );
    let recovery = args.reconnects().then(|| {
        let attempt = ctx.hello_timeout + Duration::from_secs(5);
        Recovery::new(Duration::from_secs(args.reconnect_within), attempt)
    });
    let shared = Arc::new(Shared::new(ctx.clone(), conversations, args.size, recovery));
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
    let killer = args
        .kill_after
        .map(|after| kill_at(&shared, plan.start, after, kill));
    let window = if killer.is_some() {
        // The gateway's pid dies with it: only the generator is sampled.
        Window::measure_generator(Duration::from_secs(args.duration)).await
    } else {
        Window::measure(&ctx, Duration::from_secs(args.duration)).await?
    };
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
    report.recovery = shared.recovery.as_ref().map(|r| r.figures(plan.start));
    if killer.is_some() {
        report.notes.push(
            "the gateway was killed in the window: the latency figures include the messages held \
             up by the outage, and the gateway's CPU and memory were not sampled"
                .into(),
        );
    }
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
    if let Some(after) = args.kill_after {
        ensure!(
            after < args.duration,
            "--kill-after must fall inside the window (--duration {} s)",
            args.duration
        );
    }
    u32::try_from(args.conversations).context("--conversations too large")
}

/// Kills the gateway `after` seconds past `start`.
fn kill_at(
    shared: &Arc<Shared>,
    start: Instant,
    after: u64,
    kill: Kill,
) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(start + Duration::from_secs(after)).await;
        match kill() {
            Ok(what) => {
                if let Some(recovery) = &shared.recovery {
                    recovery.killed();
                }
                eprintln!("chat: killed {what} {after} s into the window");
            }
            Err(e) => shared.ctx.errors.add(format!("kill: {e}")),
        }
    })
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
        let (socket, me, welcome, token) =
            super::connect_agent(&shared.ctx, &username, &args.agent_password)
                .await
                .with_context(|| format!("agent {username}"))?;
        let agent = Agent {
            shared: shared.clone(),
            me,
            token,
            held: HashSet::new(),
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
        m.duplicates +=
            conv.by_seq.duplicates + conv.by_n.duplicates + conv.by_seq_customer.duplicates;
        m.out_of_order += conv.by_seq.out_of_order + conv.by_seq_customer.out_of_order;
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
        stop: watch::Receiver<bool>,
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
        let plan = plan.filter(|p| order < p.participants);
        self.serve(socket, &token, plan, stop).await;
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
        let client_id = self.client_id(0);
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
                    conv.by_seq_customer = SeqTracker::after(ack.seq);
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

    fn client_id(&self, n: u64) -> String {
        format!("{}-{}-{n}", self.shared.run_id, self.idx)
    }

    /// Sends on this conversation's schedule (if it is one of the plan's) and reads acks until
    /// the run stops. A lost connection ends it, or, with reconnection, is opened again.
    async fn serve(
        &self,
        mut socket: Ws,
        token: &Token,
        plan: Option<Plan>,
        mut stop: watch::Receiver<bool>,
    ) {
        let shared = &self.shared;
        let mut ticker = plan.map(|plan| {
            let first = plan.start + plan.period.mul_f64(phase(self.idx));
            let mut ticker = tokio::time::interval_at(first, plan.period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            (ticker, plan.end)
        });
        let mut text = String::with_capacity(shared.size);
        let mut n = 0;
        loop {
            let alive = tokio::select! {
                (scheduled, end) = next_tick(&mut ticker) => {
                    if scheduled >= end {
                        ticker = None;
                        continue;
                    }
                    n += 1;
                    let late = Instant::now().saturating_duration_since(scheduled);
                    lock(&shared.lag)
                        .saturating_record(u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
                    let stamp = Stamp { sent_us: shared.ctx.clock.now_us(), conv: self.idx, n };
                    payload::encode(stamp, shared.size, &mut text);
                    if shared.recovery.is_some() {
                        let pending = Pending { text: text.clone(), resent: false };
                        shared.conv(self.idx).pending.insert(n, pending);
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    self.send(&mut socket, n, &text).await
                }
                frame = socket.next() => shared.customer_frame(self.idx, frame),
                _ = super::stopped(&mut stop) => break,
            };
            if alive {
                continue;
            }
            match self.come_back(token).await {
                Some(fresh) => socket = fresh,
                None => return,
            }
        }
        self.close(socket).await;
    }

    /// Sends timed message `n`; false if the socket is gone.
    async fn send(&self, socket: &mut Ws, n: u64, text: &str) -> bool {
        let client_id = self.client_id(n);
        let frame = Out::Send {
            reference: None,
            ticket: None,
            client_id: &client_id,
            text,
        };
        if let Err(e) = socket.send(Message::text(frame.to_json())).await {
            self.shared.lost_connection("customer send", e.to_string());
            return false;
        }
        true
    }

    /// Opens the session again (with reconnection on), resuming after the last `seq` this
    /// customer holds, and sends again every message not acknowledged yet, under its own
    /// `client_id`. `None` if reconnection is off or the gateway did not come back in time.
    async fn come_back(&self, token: &Token) -> Option<Ws> {
        let shared = &self.shared;
        let recovery = shared.recovery.as_ref()?;
        let ctx = &*shared.ctx;
        'again: loop {
            let resume: Vec<ResumeAt> = {
                let conv = shared.conv(self.idx);
                let after = conv.by_seq_customer.highest();
                conv.conversation
                    .iter()
                    .map(|c| ResumeAt {
                        conversation: c.clone(),
                        after,
                    })
                    .collect()
            };
            let resume = &resume;
            let mut socket = recovery
                .reconnect(Side::Customer, self.idx, || async move {
                    let mut socket =
                        ws::open(ctx.targets.next(), &ctx.sources, Role::Customer).await?;
                    ws::hello_resuming(&mut socket, token.expose(), resume, ctx.hello_timeout)
                        .await?;
                    Ok(socket)
                })
                .await?;
            let unacked: Vec<(u64, String)> = shared
                .conv(self.idx)
                .pending
                .iter_mut()
                .map(|(&n, p)| {
                    p.resent = true;
                    (n, p.text.clone())
                })
                .collect();
            for (n, text) in unacked {
                recovery.resent.fetch_add(1, Ordering::Relaxed);
                if !self.send(&mut socket, n, &text).await {
                    continue 'again;
                }
            }
            return Some(socket);
        }
    }
}

/// The next tick of a customer's schedule and the schedule's end; never, once it is over.
async fn next_tick(ticker: &mut Option<(Interval, Instant)>) -> (Instant, Instant) {
    match ticker {
        Some((ticker, end)) => (ticker.tick().await, *end),
        None => std::future::pending().await,
    }
}

struct Agent {
    shared: Arc<Shared>,
    me: Id,
    /// The agent's session token, to reconnect with.
    token: Token,
    index: u32,
    agents: u32,
    assign: Assign,
    /// Claims sent and not answered yet: `ref` → conversation.
    pending_claims: HashMap<String, Id>,
    /// Conversations whose ticket this agent holds: resumed after a reconnect.
    held: HashSet<Id>,
    latency: Histogram<u64>,
}

impl Agent {
    /// Serves the agent socket until the run stops (reconnecting if it is lost and clients
    /// reconnect); returns the latencies it recorded.
    async fn run(
        mut self,
        mut socket: Ws,
        welcome: Welcome,
        mut stop: watch::Receiver<bool>,
    ) -> Histogram<u64> {
        let mut welcome = Some(welcome);
        loop {
            if let Some(welcome) = welcome.take() {
                if self.serve(&mut socket, &welcome, &mut stop).await {
                    ws::close(socket).await;
                    return self.latency;
                }
            }
            match self.come_back().await {
                Some((fresh, again)) => (socket, welcome) = (fresh, Some(again)),
                None => return self.latency,
            }
        }
    }

    /// Takes in the welcome's tickets and serves the socket; true once the run stops, false if
    /// the connection was lost first.
    async fn serve(
        &mut self,
        socket: &mut Ws,
        welcome: &Welcome,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        for ticket in welcome.assigned.iter().chain(&welcome.queue) {
            if !self.on_ticket(socket, ticket).await {
                return false;
            }
        }
        loop {
            tokio::select! {
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            self.shared.lost_connection("agent", ws::close_label(frame.as_ref()));
                            return false;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            self.shared.lost_connection("agent", e.to_string());
                            return false;
                        }
                        None => {
                            self.shared.lost_connection("agent", "connection ended".into());
                            return false;
                        }
                    };
                    if !self.on_text(socket, &text).await {
                        return false;
                    }
                }
                _ = super::stopped(stop) => return true,
            }
        }
    }

    /// Opens the session again (with reconnection on) with the same token, resuming every
    /// conversation it holds after the last `seq` it received. `None` if reconnection is off
    /// or the gateway did not come back in time.
    async fn come_back(&self) -> Option<(Ws, Welcome)> {
        let shared = &self.shared;
        let recovery = shared.recovery.as_ref()?;
        let ctx = &*shared.ctx;
        let held: Vec<(Id, u32)> = {
            let by_conversation = lock(&shared.by_conversation);
            self.held
                .iter()
                .filter_map(|c| Some((c.clone(), *by_conversation.get(c)?)))
                .collect()
        };
        let resume: Vec<ResumeAt> = held
            .into_iter()
            .map(|(conversation, idx)| ResumeAt {
                conversation,
                after: shared.conv(idx).by_seq.highest(),
            })
            .collect();
        let (resume, token) = (&resume, &self.token);
        // Agents' keys sit apart from the customers' (their indexes), so their waits differ.
        let key = self.index.wrapping_add(0x8000_0000);
        recovery
            .reconnect(Side::Agent, key, || async move {
                let mut socket = ws::open(ctx.targets.next(), &ctx.sources, Role::Agent).await?;
                let welcome =
                    ws::hello_resuming(&mut socket, token.expose(), resume, ctx.hello_timeout)
                        .await?;
                Ok((socket, welcome))
            })
            .await
    }

    async fn on_text(&mut self, socket: &mut Ws, text: &str) -> bool {
        let shared = &self.shared;
        match In::parse(text) {
            Ok(In::Message(m)) => shared.on_message(m, &mut self.latency),
            Ok(In::Ticket { ticket }) => return self.on_ticket(socket, &ticket).await,
            Ok(In::Resumed {}) => shared.resumed(),
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
            self.held.insert(ticket.conversation.clone());
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
            reconnect: false,
            kill_after: None,
            reconnect_within: 20,
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

    /// A second into the window the relay goes silent, then drops every connection and
    /// refuses new ones for a while: customers and agents come back, resume, and resend what
    /// was not acknowledged, and still every message arrives once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_in_the_window_loses_and_doubles_nothing() {
        let (addr, crash) = crate::relay::spawn_crashable(true).await;
        let args = ChatArgs {
            duration: 3,
            kill_after: Some(1),
            ..args(Assign::Auto)
        };
        let kill: Kill = Box::new(move || {
            tokio::spawn(async move {
                crash
                    .after(Duration::from_millis(300), Duration::from_millis(700))
                    .await
            });
            Ok("the relay".into())
        });
        let report = run_killing(super::super::test_ctx(addr), &args, kill)
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let m = report.messages.unwrap();
        assert!(m.sent >= 600, "{m:?}");
        assert_eq!((m.acked, m.delivered), (m.sent, m.sent), "{m:?}");
        assert_eq!(
            (m.lost, m.duplicates, m.out_of_order, m.unacked),
            (0, 0, 0, 0)
        );
        let r = report.recovery.unwrap();
        assert!(r.killed_at_secs.unwrap() >= 1.0, "{r:?}");
        assert_eq!((r.customers_back, r.agents_back, r.gave_up), (24, 3, 0));
        assert_eq!(r.connections_lost, 27, "{r:?}");
        // Each customer resumes its conversation, each agent the conversations it holds.
        assert_eq!(r.resumed, 48, "{r:?}");
        assert!(
            r.failed_attempts > 0,
            "the relay refused connections for 700 ms: {r:?}"
        );
        // What the relay stored in its last 300 ms and never acknowledged was sent again, and
        // recognised as stored; what it never delivered came with the agents' resume.
        assert!(
            r.already_stored > 0 && r.already_stored <= r.resent,
            "{r:?}"
        );
        assert!(r.first_back_ms.unwrap() >= 600.0, "{r:?}");
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
        let shared = Shared::new(ctx, 1, 40, None);
        *shared.conv(0) = Conv {
            conversation: Some(Id::Num(5)),
            acked: vec![2, 3, 4, 5],
            by_seq: SeqTracker::after(1),
            by_n: SeqTracker::after(0),
            by_seq_customer: SeqTracker::after(1),
            pending: BTreeMap::new(),
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
