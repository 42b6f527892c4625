//! `calls`: N concurrent recorded calls, each a phone leg on `/media/twilio` (Twilio Media
//! Streams, μ-law) and an agent leg on `/media/pcm` (PCM16 at 8 kHz), both sending a 20 ms
//! frame every 20 ms. Every frame carries its call, its number and its send time in its audio
//! ([`crate::voice::Stamp`]), so the far leg measures relay latency both ways and counts frames
//! lost, duplicated, out of order or misrouted. Both legs live in this one process and one
//! task per call, so send and receive times come from the same clock.
//!
//! Phases: agents log in and connect to `/ws/agent` → calls ramp up: the phone leg sends
//! `connected` and `start` with a signed media token, a lead's session finds the call's ticket
//! (`GET /api/calls/{call}`), the agent it was assigned to (`--auto-assign`) joins the agent
//! leg → the measured window → the frames in flight → `stop`, the agent leg's `ended` → each
//! recording's state (`GET /api/recordings/{id}`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Ctx, Window};
use crate::api::{self, Token};
use crate::frames::{Id, In, Ticket, Welcome};
use crate::http::{HttpClient, HttpError};
use crate::report::{self, Calls, Frames, Latency, Recordings, Report};
use crate::seq::{Seen, SeqTracker};
use crate::voice::{self, Stamp, Unreadable};
use crate::ws::{self, Ws};

/// One frame every 20 ms on each leg.
const FRAME: Duration = Duration::from_millis(20);
/// After the window, how long frames still on their way may take before they count as lost:
/// the gateway holds at most 200 ms of audio per leg, so anything later is not coming.
const FRAME_DRAIN: Duration = Duration::from_secs(2);
/// Between two looks at something the generator waits for (the call registered, the ticket
/// assigned, the recording finished).
const POLL: Duration = Duration::from_millis(25);

#[derive(Args, Debug, Serialize)]
pub struct CallsArgs {
    /// Concurrent calls, each a phone leg and an agent leg.
    #[arg(long, default_value_t = 100)]
    pub calls: u64,
    /// Agent connections; they log in as <agent-prefix>1 … <agent-prefix>N.
    #[arg(long, default_value_t = 4)]
    pub agents: u32,
    /// Username prefix of the load agents.
    #[arg(long, default_value = "load-agent-")]
    pub agent_prefix: String,
    /// Password of the load agents and of the lead.
    #[arg(long, env = "DESKGATE_LOAD_AGENT_PASSWORD", hide_env_values = true)]
    #[serde(skip)]
    pub agent_password: String,
    /// A lead (who may read every ticket): finds each call's ticket and checks its recording.
    #[arg(long, default_value = "load-lead")]
    pub lead: String,
    /// The site's identity secret, which signs media tokens (for the demo site,
    /// `<data dir>/sites/demo.identity-secret`); the site is --site-key.
    #[arg(long)]
    pub media_secret_file: PathBuf,
    /// Calls started per second during the ramp.
    #[arg(long, default_value_t = 50.0)]
    pub ramp: f64,
    /// Call setups in flight at once during the ramp.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds both legs of every call send audio: the measured window.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds after `stop` for the calls to end and their recordings to be finished.
    #[arg(long, default_value_t = 30)]
    pub drain: u64,
    /// With several targets: each agent's leg goes to another node than its call's phone
    /// leg, which relays it to the node holding the call.
    #[arg(long)]
    pub agents_elsewhere: bool,
    /// Exit with status 1 if a call failed or dropped, a frame was lost, or a recording did
    /// not finish.
    #[arg(long)]
    pub strict: bool,
}

impl CallsArgs {
    /// The longest this scenario can take, every phase at its own limit.
    pub fn bound(&self, ctx: &Ctx) -> Duration {
        ctx.setup_timeout * 3 + Duration::from_secs(self.duration + 2 * self.drain + 90)
    }
}

/// When the calls stream, published once every call is set up.
#[derive(Clone, Copy, Debug)]
struct Plan {
    start: Instant,
    end: Instant,
}

/// One direction of the relay, over all calls.
struct Flow {
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    misrouted: AtomicU64,
    unreadable: AtomicU64,
    /// One histogram for every call: one per call would cost the generator 250 KiB each.
    latency: Mutex<Histogram<u64>>,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            latency: Mutex::new(report::micros_histogram()),
        }
    }
}

impl Flow {
    fn frames(&self) -> Frames {
        Frames {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            out_of_order: self.out_of_order.load(Ordering::Relaxed),
            misrouted: self.misrouted.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
            latency_ms: Latency::from_micros(&lock(&self.latency)),
        }
    }
}

/// One direction of one call, as its receiving leg sees it.
#[derive(Default)]
struct Direction {
    /// Frames sent so far: the number of the last one.
    sent: u32,
    seen: SeqTracker,
}

impl Direction {
    fn complete(&self) -> bool {
        self.seen.received >= u64::from(self.sent)
    }
}

struct Shared {
    ctx: Arc<Ctx>,
    /// Makes call ids unique across runs against the same gateway, which refuses a call id
    /// it has recorded before.
    run_id: String,
    secret: String,
    lead: Token,
    /// The agents' session tokens, by agent index: each opens the agent legs of its calls.
    agent_tokens: Vec<Token>,
    /// Tickets an agent holds (from its `/ws/agent` frames) → the agent's index.
    assigned: Mutex<HashMap<Id, u32>>,
    /// Unix seconds the media tokens are good until.
    token_expires: u64,
    /// Agents' legs go to another node than the phone's (`--agents-elsewhere`).
    agents_elsewhere: bool,
    ready: AtomicU64,
    setup_failed: AtomicU64,
    dropped: AtomicU64,
    to_agent: Flow,
    to_phone: Flow,
    /// How late each tick left against its schedule: shows whether the generator kept up.
    lag: Mutex<Histogram<u64>>,
    setup: Mutex<Histogram<u64>>,
    last_ready: Mutex<Option<Instant>>,
    recordings: RecordingTally,
}

#[derive(Default)]
struct RecordingTally {
    finished: AtomicU64,
    failed: AtomicU64,
    unfinished: AtomicU64,
    unchecked: AtomicU64,
    recorded_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub async fn run(ctx: Arc<Ctx>, args: &CallsArgs) -> anyhow::Result<Report> {
    let calls = validate(args)?;
    let mut report = ctx.new_report("calls", args);
    ctx.check_open_files(
        2 * args.calls + u64::from(args.agents) + 64,
        &mut report.notes,
    );
    let mut http = HttpClient::new(ctx.targets.next(), ctx.sources.next());
    let lead = api::agent_session(&mut http, &args.lead, &args.agent_password)
        .await
        .with_context(|| format!("log in the lead {} (POST /api/session)", args.lead))?;
    drop(http);
    // Read once the gateway answers: it writes the demo site's secret as it starts, and its
    // port accepts connections a little before that.
    let secret = std::fs::read_to_string(&args.media_secret_file)
        .with_context(|| format!("read {}", args.media_secret_file.display()))?
        .trim()
        .to_owned();

    let (stop_agents, agents_stop) = watch::channel(false);
    let (agents, agent_tokens) = connect_agents(&ctx, args).await?;
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        run_id: format!("{now_unix:x}"),
        secret,
        lead,
        agent_tokens,
        assigned: Mutex::new(HashMap::new()),
        token_expires: now_unix + args.bound(&ctx).as_secs() + 3600,
        agents_elsewhere: args.agents_elsewhere,
        ready: AtomicU64::new(0),
        setup_failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        to_agent: Flow::default(),
        to_phone: Flow::default(),
        lag: Mutex::new(report::micros_histogram()),
        setup: Mutex::new(report::micros_histogram()),
        last_ready: Mutex::new(None),
        recordings: RecordingTally::default(),
    });
    let mut agent_tasks = JoinSet::new();
    for (index, (socket, me, welcome)) in agents.into_iter().enumerate() {
        let agent = Agent {
            shared: shared.clone(),
            me,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        agent_tasks.spawn(agent.run(socket, welcome, agents_stop.clone()));
    }
    eprintln!("agents: {} connected", args.agents);

    let before = ctx.gateway_sample()?;
    let (plan_tx, plan_rx) = watch::channel(None::<Plan>);
    let ramp_start = Instant::now();
    let (mut tasks, attempted) = start_calls(&shared, args, calls, plan_rx, &mut report).await;
    let established = shared.ready.load(Ordering::Relaxed);
    if established == 0 {
        let _ = stop_agents.send(true);
        report.errors = ctx.errors.snapshot();
        eprint!("{}", report.render());
        anyhow::bail!(
            "no call was established: start the gateway with --auto-assign, and create the \
             lead (`deskgate user add --role lead`)"
        );
    }
    let start = Instant::now() + Duration::from_secs(1);
    let plan = Plan {
        start,
        end: start + Duration::from_secs(args.duration),
    };
    let _ = plan_tx.send(Some(plan));
    eprintln!(
        "calls: {established} established, each leg a 20 ms frame every 20 ms, for {} s",
        args.duration
    );
    tokio::time::sleep_until(plan.start).await;
    let progress = super::progress_every(Duration::from_secs(5), {
        let shared = shared.clone();
        move || {
            format!(
                "calls: phone → agent {} sent {} received; agent → phone {} sent {} received",
                shared.to_agent.sent.load(Ordering::Relaxed),
                shared.to_agent.received.load(Ordering::Relaxed),
                shared.to_phone.sent.load(Ordering::Relaxed),
                shared.to_phone.received.load(Ordering::Relaxed),
            )
        }
    });
    let window = Window::measure(&ctx, Duration::from_secs(args.duration)).await?;
    progress.abort();
    let ending = async { while tasks.join_next().await.is_some() {} };
    let limit = FRAME_DRAIN + Duration::from_secs(2 * args.drain + 10);
    if tokio::time::timeout(limit, ending).await.is_err() {
        report.notes.push(format!(
            "some calls had not ended {} s after the window; their frames and recordings count \
             as they stood",
            limit.as_secs()
        ));
    }
    let _ = stop_agents.send(true);
    while agent_tasks.join_next().await.is_some() {}

    let calls_report = tally(&shared, args, attempted, ramp_start, &mut report);
    let mut both = report::micros_histogram();
    let _ = both.add(&*lock(&shared.to_agent.latency));
    let _ = both.add(&*lock(&shared.to_phone.latency));
    report.latency_ms = Latency::from_micros(&both);
    report.gateway = window.gateway_usage(&ctx, before, 2 * established);
    report.calls = Some(Calls {
        bytes_per_call: report
            .gateway
            .as_ref()
            .map(|g| (g.rss_loaded_bytes as f64 - g.rss_before_bytes as f64) / established as f64),
        ..calls_report
    });
    report.generator = window.generator_usage(ctx.worker_threads);
    report.errors = ctx.errors.snapshot();
    Ok(report)
}

/// Checks the flags; the number of calls as an index type.
fn validate(args: &CallsArgs) -> anyhow::Result<u32> {
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(args.agents > 0, "--agents must be at least 1");
    ensure!(args.duration > 0, "--duration must be at least 1 s");
    u32::try_from(args.calls).context("--calls too large")
}

type AgentSession = (Ws, Id, Welcome);

/// Logs the agents in and opens their `/ws/agent` sessions.
async fn connect_agents(
    ctx: &Ctx,
    args: &CallsArgs,
) -> anyhow::Result<(Vec<AgentSession>, Vec<Token>)> {
    let mut sessions = Vec::new();
    let mut tokens = Vec::new();
    for index in 0..args.agents {
        let username = format!("{}{}", args.agent_prefix, index + 1);
        let (socket, me, welcome, token) =
            super::connect_agent(ctx, &username, &args.agent_password)
                .await
                .with_context(|| format!("agent {username}"))?;
        sessions.push((socket, me, welcome));
        tokens.push(token);
    }
    Ok((sessions, tokens))
}

/// Ramps the calls up and waits until every one is established or has failed, within the
/// setup timeout. Returns the call tasks and how many were attempted.
async fn start_calls(
    shared: &Arc<Shared>,
    args: &CallsArgs,
    calls: u32,
    plan: watch::Receiver<Option<Plan>>,
    report: &mut Report,
) -> (JoinSet<()>, u32) {
    let ctx = &shared.ctx;
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let ramp_start = Instant::now();
    let setup_deadline = ramp_start + ctx.setup_timeout;
    let progress = super::progress_every(Duration::from_secs(2), {
        let shared = shared.clone();
        move || {
            format!(
                "setup: {} calls established, {} failed",
                shared.ready.load(Ordering::Relaxed),
                shared.setup_failed.load(Ordering::Relaxed),
            )
        }
    });
    let mut attempted: u32 = 0;
    for idx in 0..calls {
        tokio::time::sleep_until(super::paced(ramp_start, u64::from(idx), args.ramp)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() >= setup_deadline {
            report
                .notes
                .push("the ramp hit --setup-timeout before every call was tried".into());
            break;
        }
        let call = CallTask {
            shared: shared.clone(),
            idx,
            sid: format!("CA{}x{idx:06}", shared.run_id),
            stream: format!("MZ{}x{idx:06}", shared.run_id),
            drain: Duration::from_secs(args.drain),
        };
        tasks.spawn(call.run(permit, plan.clone()));
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
                "{} calls were still setting up after --setup-timeout; they did not stream",
                u64::from(attempted) - done
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress.abort();
    (tasks, attempted)
}

/// The figures of every call, after they have ended.
fn tally(
    shared: &Shared,
    args: &CallsArgs,
    attempted: u32,
    ramp_start: Instant,
    report: &mut Report,
) -> Calls {
    let established = shared.ready.load(Ordering::Relaxed);
    let failed = shared.setup_failed.load(Ordering::Relaxed);
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let c = &mut report.connections;
    c.attempted = 2 * u64::from(attempted);
    c.established = 2 * established;
    c.failed = 2 * failed;
    c.dropped = dropped;
    let established_per_sec = lock(&shared.last_ready)
        .map(|last| last.duration_since(ramp_start).as_secs_f64())
        .filter(|&secs| secs > 0.0)
        .map_or(0.0, |secs| established as f64 / secs);
    c.connects_per_sec = 2.0 * established_per_sec;
    let setup_ms = Latency::from_micros(&lock(&shared.setup));
    c.connect_ms = setup_ms.clone();
    let r = &shared.recordings;
    let to_agent = shared.to_agent.frames();
    let to_phone = shared.to_phone.frames();
    for (name, f) in [("phone → agent", &to_agent), ("agent → phone", &to_phone)] {
        if f.lost > 0 {
            report.notes.push(format!(
                "{name}: {} of {} frames lost (the gateway drops what does not fit a leg's \
                 200 ms queue, or the leg was gone)",
                f.lost, f.sent
            ));
        }
    }
    Calls {
        attempted: u64::from(attempted),
        established,
        failed,
        dropped,
        established_per_sec,
        setup_ms,
        window_secs: args.duration as f64,
        to_agent,
        to_phone,
        send_lag_ms: Latency::from_micros(&lock(&shared.lag)),
        recordings: Recordings {
            finished: r.finished.load(Ordering::Relaxed),
            failed: r.failed.load(Ordering::Relaxed),
            unfinished: r.unfinished.load(Ordering::Relaxed),
            unchecked: r.unchecked.load(Ordering::Relaxed),
            recorded_secs: r.recorded_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        },
        bytes_per_call: None,
    }
}

/// A `/ws/agent` session: notes which tickets are this agent's, so that a call's agent leg is
/// opened with the session the gateway assigned it to.
struct Agent {
    shared: Arc<Shared>,
    me: Id,
    index: u32,
}

impl Agent {
    async fn run(self, mut socket: Ws, welcome: Welcome, mut stop: watch::Receiver<bool>) {
        for ticket in welcome.assigned.iter().chain(&welcome.queue) {
            self.on_ticket(ticket);
        }
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => match In::parse(&text) {
                        Ok(In::Ticket { ticket }) => self.on_ticket(&ticket),
                        Ok(In::Queue { ticket, tickets, .. }) => {
                            for t in ticket.iter().chain(&tickets) {
                                self.on_ticket(t);
                            }
                        }
                        Ok(In::Error(e)) => self.shared.ctx.errors.add(format!("agent: error {}", e.code)),
                        Ok(_) => {}
                        Err(_) => self.shared.ctx.errors.add(format!(
                            "agent: unreadable `{}` frame",
                            crate::frames::type_of(&text)
                        )),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        self.shared.ctx.errors.add(format!("agent: {}", ws::close_label(frame.as_ref())));
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        self.shared.ctx.errors.add(format!("agent: {e}"));
                        return;
                    }
                    None => {
                        self.shared.ctx.errors.add("agent: connection ended");
                        return;
                    }
                },
                _ = super::stopped(&mut stop) => {
                    ws::close(socket).await;
                    return;
                }
            }
        }
    }

    fn on_ticket(&self, ticket: &Ticket) {
        if ticket.is_assigned_to(&self.me) {
            lock(&self.shared.assigned).insert(ticket.id.clone(), self.index);
        }
    }
}

/// Why a call did not get set up: the stage and what happened, to count failures by.
struct SetupError(String);

impl SetupError {
    fn new(stage: &str, detail: impl std::fmt::Display) -> Self {
        Self(format!("{stage}: {detail}"))
    }
}

/// Both legs of an established call.
struct Legs {
    phone: Ws,
    agent: Ws,
    recording: i64,
}

/// One call: its two legs in one task, so that a frame's send and receive times are read from
/// one clock and the two legs' ticks stay together.
struct CallTask {
    shared: Arc<Shared>,
    idx: u32,
    /// The provider's call id (Twilio's `CallSid`), which the media token is bound to.
    sid: String,
    stream: String,
    drain: Duration,
}

impl CallTask {
    async fn run(self, permit: OwnedSemaphorePermit, mut plan: watch::Receiver<Option<Plan>>) {
        let shared = &self.shared;
        let ctx = &shared.ctx;
        let started = Instant::now();
        let limit = ctx.setup_timeout;
        let set_up = match tokio::time::timeout(limit, self.set_up()).await {
            Ok(r) => r,
            Err(_) => Err(SetupError::new(
                "setup",
                "no agent leg within --setup-timeout",
            )),
        };
        drop(permit);
        let mut legs = match set_up {
            Ok(legs) => legs,
            Err(SetupError(why)) => {
                ctx.errors.add(format!("call setup: {why}"));
                shared.setup_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        lock(&shared.setup).saturating_record(micros(started.elapsed()));
        *lock(&shared.last_ready) = Some(Instant::now());
        shared.ready.fetch_add(1, Ordering::Relaxed);

        let mut to_agent = Direction::default();
        let mut to_phone = Direction::default();
        // Keep both sockets read (pings) while the other calls are set up.
        let plan = loop {
            tokio::select! {
                p = plan.wait_for(Option::is_some) => match p {
                    Ok(p) => break *p,
                    Err(_) => return,
                },
                f = legs.phone.next() => if !self.phone_frame(f, &mut to_phone) { return self.dropped(&to_agent, &to_phone) },
                f = legs.agent.next() => if !self.agent_frame(f, &mut to_agent) { return self.dropped(&to_agent, &to_phone) },
            }
        };
        let Some(plan) = plan else { return };
        let alive = self
            .stream(&mut legs, plan, &mut to_agent, &mut to_phone)
            .await;
        if !alive {
            self.dropped(&to_agent, &to_phone);
            return;
        }
        self.hang_up(&mut legs, &mut to_agent, &mut to_phone).await;
        self.count(&to_agent, &to_phone);
        self.check_recording(legs.recording).await;
    }

    /// The phone leg starts the call; the lead finds its ticket; the agent who holds it joins.
    async fn set_up(&self) -> Result<Legs, SetupError> {
        let shared = &self.shared;
        let ctx = &shared.ctx;
        let target = ctx.targets.next();
        let mut phone = ws::open_media(target, &ctx.sources, "/media/twilio")
            .await
            .map_err(|e| SetupError::new("phone leg", e.label()))?;
        let token = voice::media_token(
            &shared.secret,
            &ctx.site_key,
            &self.sid,
            shared.token_expires,
        );
        for text in [
            voice::connected(),
            voice::start(&self.stream, &self.sid, &token),
        ] {
            phone
                .send(Message::text(text))
                .await
                .map_err(|e| SetupError::new("phone leg", e))?;
        }

        // The `start` event gets no answer; the call is there once the API shows it.
        let mut http = HttpClient::new(target, ctx.sources.next());
        let call = loop {
            tokio::select! {
                r = api::live_call(&mut http, &shared.lead, &self.sid) => match r {
                    Ok(call) => break call,
                    Err(HttpError::Status { status: 404, .. }) => {}
                    Err(e) => return Err(SetupError::new("GET /api/calls", e.label())),
                },
                f = phone.next() => return Err(SetupError::new("phone leg", ended_label(f))),
            }
            tokio::time::sleep(POLL).await;
        };
        drop(http);
        let agent_index = loop {
            if let Some(&i) = lock(&shared.assigned).get(&call.ticket) {
                break i;
            }
            tokio::time::sleep(POLL).await;
        };
        let session = &shared.agent_tokens[agent_index as usize];

        let agent_target = if shared.agents_elsewhere {
            ctx.targets.after(target)
        } else {
            target
        };
        let mut agent = ws::open_media(agent_target, &ctx.sources, "/media/pcm")
            .await
            .map_err(|e| SetupError::new("agent leg", e.label()))?;
        agent
            .send(Message::text(voice::agent_start(
                session.expose(),
                &self.sid,
            )))
            .await
            .map_err(|e| SetupError::new("agent leg", e))?;
        let answer = tokio::time::timeout(ctx.hello_timeout, agent.next())
            .await
            .map_err(|_| SetupError::new("agent leg", "no `started` in time"))?;
        match answer {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<voice::AgentIn>(&text) {
                Ok(a) if a.kind == "started" && a.rate == Some(8000) => {}
                Ok(a) if a.kind == "started" => {
                    return Err(SetupError::new("agent leg", "started at another rate"))
                }
                _ => {
                    return Err(SetupError::new(
                        "agent leg",
                        format!("expected started, got {}", crate::frames::type_of(&text)),
                    ))
                }
            },
            other => return Err(SetupError::new("agent leg", ended_label(other))),
        }
        Ok(Legs {
            phone,
            agent,
            recording: call.recording,
        })
    }

    /// Both legs send a frame every 20 ms until the plan ends, reading what arrives meanwhile.
    /// False if a leg is gone.
    async fn stream(
        &self,
        legs: &mut Legs,
        plan: Plan,
        to_agent: &mut Direction,
        to_phone: &mut Direction,
    ) -> bool {
        let shared = &self.shared;
        let first = plan.start + FRAME.mul_f64(super::chat::phase(self.idx));
        let mut ticker = tokio::time::interval_at(first, FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut text = String::with_capacity(320);
        loop {
            tokio::select! {
                scheduled = ticker.tick() => {
                    if scheduled >= plan.end {
                        return true;
                    }
                    lock(&shared.lag).saturating_record(micros(Instant::now().saturating_duration_since(scheduled)));
                    to_agent.sent += 1;
                    let stamp = Stamp { call: self.idx, seq: to_agent.sent, sent_us: shared.ctx.clock.now_us() };
                    voice::media(&self.stream, to_agent.sent, &stamp.ulaw(), &mut text);
                    shared.to_agent.sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = legs.phone.send(Message::text(text.as_str())).await {
                        shared.ctx.errors.add(format!("phone leg send: {e}"));
                        return false;
                    }
                    to_phone.sent += 1;
                    let stamp = Stamp { call: self.idx, seq: to_phone.sent, sent_us: shared.ctx.clock.now_us() };
                    shared.to_phone.sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = legs.agent.send(Message::binary(stamp.pcm_le())).await {
                        shared.ctx.errors.add(format!("agent leg send: {e}"));
                        return false;
                    }
                }
                f = legs.phone.next() => if !self.phone_frame(f, to_phone) { return false },
                f = legs.agent.next() => if !self.agent_frame(f, to_agent) { return false },
            }
        }
    }

    /// Waits for the frames still on their way, then ends the call from the phone leg
    /// (`stop`) and waits for the agent leg's `ended` and both closes.
    async fn hang_up(&self, legs: &mut Legs, to_agent: &mut Direction, to_phone: &mut Direction) {
        let shared = &self.shared;
        let deadline = Instant::now() + FRAME_DRAIN;
        while !(to_agent.complete() && to_phone.complete()) {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                f = legs.phone.next() => if !self.phone_frame(f, to_phone) { break },
                f = legs.agent.next() => if !self.agent_frame(f, to_agent) { break },
            }
        }
        if let Err(e) = legs
            .phone
            .send(Message::text(voice::stop(&self.stream, to_agent.sent)))
            .await
        {
            shared.ctx.errors.add(format!("phone leg stop: {e}"));
        }
        let deadline = Instant::now() + self.drain;
        let (mut phone_open, mut agent_open, mut ended) = (true, true, false);
        while phone_open || agent_open {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    shared.ctx.errors.add("call end: the legs were not closed within --drain");
                    break;
                }
                f = legs.phone.next(), if phone_open => match f {
                    Some(Ok(Message::Text(t))) => self.phone_text(&t, to_phone),
                    Some(Ok(Message::Close(frame))) => {
                        phone_open = false;
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        if code != Some(1000) {
                            shared.ctx.errors.add(format!("call end: phone leg {}", ws::close_label(frame.as_ref())));
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => phone_open = false,
                },
                f = legs.agent.next(), if agent_open => match f {
                    Some(Ok(Message::Binary(b))) => self.agent_binary(&b, to_agent),
                    Some(Ok(Message::Text(t))) => {
                        ended |= serde_json::from_str::<voice::AgentIn>(&t).is_ok_and(|a| a.kind == "ended");
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => agent_open = false,
                    Some(Ok(_)) => {}
                },
            }
        }
        if !agent_open && !ended {
            shared
                .ctx
                .errors
                .add("call end: the agent leg closed without `ended`");
        }
    }

    /// Adds this call's frame counts to the totals.
    fn count(&self, to_agent: &Direction, to_phone: &Direction) {
        for (flow, d) in [
            (&self.shared.to_agent, to_agent),
            (&self.shared.to_phone, to_phone),
        ] {
            flow.lost.fetch_add(
                u64::from(d.sent).saturating_sub(d.seen.received),
                Ordering::Relaxed,
            );
            flow.duplicates
                .fetch_add(d.seen.duplicates, Ordering::Relaxed);
            flow.out_of_order
                .fetch_add(d.seen.out_of_order, Ordering::Relaxed);
        }
    }

    fn dropped(&self, to_agent: &Direction, to_phone: &Direction) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        self.count(to_agent, to_phone);
        self.shared
            .recordings
            .unchecked
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the API until the recording is no longer `recording` (the gateway finishes it
    /// before the agent leg hears `ended`, so this is normally the first answer).
    async fn check_recording(&self, id: i64) {
        let shared = &self.shared;
        let r = &shared.recordings;
        let mut http = HttpClient::new(shared.ctx.targets.next(), shared.ctx.sources.next());
        let deadline = Instant::now() + self.drain;
        loop {
            match api::recording(&mut http, &shared.lead, id).await {
                Ok(rec) if rec.state == "finished" => {
                    r.finished.fetch_add(1, Ordering::Relaxed);
                    r.recorded_ms.fetch_add(rec.duration_ms, Ordering::Relaxed);
                    return;
                }
                Ok(rec) if rec.state == "failed" => {
                    r.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) if Instant::now() < deadline => {}
                Ok(_) => {
                    r.unfinished.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    shared
                        .ctx
                        .errors
                        .add(format!("GET /api/recordings: {}", e.label()));
                    r.unchecked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            tokio::time::sleep(POLL * 4).await;
        }
    }

    /// A frame on the phone leg; false when the leg is gone.
    fn phone_frame(
        &self,
        frame: Option<Result<Message, tungstenite::Error>>,
        to_phone: &mut Direction,
    ) -> bool {
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.phone_text(&text, to_phone);
                true
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                self.shared
                    .ctx
                    .errors
                    .add(format!("phone leg: {}", ended_label(frame)));
                false
            }
            Some(Ok(_)) => true,
        }
    }

    fn phone_text(&self, text: &str, to_phone: &mut Direction) {
        let shared = &self.shared;
        let now = shared.ctx.clock.now_us();
        match serde_json::from_str::<voice::PhoneIn>(text) {
            Ok(voice::PhoneIn {
                event: "media",
                media: Some(m),
            }) => {
                let stamp = voice::payload_codes(m.payload)
                    .ok_or(Unreadable::Length)
                    .and_then(|codes| Stamp::from_ulaw(&codes));
                self.observe(stamp, now, to_phone, &shared.to_phone, "phone leg");
            }
            Ok(_) => {}
            Err(_) => shared
                .ctx
                .errors
                .add(format!("phone leg: unreadable `{}` event", event_of(text))),
        }
    }

    /// A frame on the agent leg; false when the leg is gone.
    fn agent_frame(
        &self,
        frame: Option<Result<Message, tungstenite::Error>>,
        to_agent: &mut Direction,
    ) -> bool {
        match frame {
            Some(Ok(Message::Binary(bytes))) => {
                self.agent_binary(&bytes, to_agent);
                true
            }
            Some(Ok(Message::Text(text))) => {
                if let Ok(a) = serde_json::from_str::<voice::AgentIn>(&text) {
                    if a.kind == "ended" {
                        self.shared
                            .ctx
                            .errors
                            .add("agent leg: ended before the call was");
                    }
                }
                true
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                self.shared
                    .ctx
                    .errors
                    .add(format!("agent leg: {}", ended_label(frame)));
                false
            }
            Some(Ok(_)) => true,
        }
    }

    fn agent_binary(&self, bytes: &[u8], to_agent: &mut Direction) {
        let shared = &self.shared;
        let now = shared.ctx.clock.now_us();
        let stamp = Stamp::from_pcm_le(bytes);
        self.observe(stamp, now, to_agent, &shared.to_agent, "agent leg");
    }

    /// Sequence checks, then the latency of a first arrival.
    fn observe(
        &self,
        stamp: Result<Stamp, Unreadable>,
        now_us: u64,
        direction: &mut Direction,
        flow: &Flow,
        side: &str,
    ) {
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(why) => {
                flow.unreadable.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .ctx
                    .errors
                    .add(format!("{side}: {}", why.label()));
                return;
            }
        };
        if stamp.call != self.idx {
            flow.misrouted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if matches!(
            direction.seen.observe(u64::from(stamp.seq)),
            Seen::New | Seen::Late
        ) {
            flow.received.fetch_add(1, Ordering::Relaxed);
            lock(&flow.latency).saturating_record(now_us.saturating_sub(stamp.sent_us));
        }
    }
}

/// "closed 1008", "connection ended", … for a frame that ends a leg.
fn ended_label(frame: Option<Result<Message, tungstenite::Error>>) -> String {
    match frame {
        Some(Ok(Message::Close(frame))) => match &frame {
            Some(f) => format!("closed {} ({})", u16::from(f.code), f.reason),
            None => ws::close_label(None),
        },
        Some(Ok(Message::Text(t))) => format!("unexpected `{}` frame", crate::frames::type_of(&t)),
        Some(Ok(_)) => "unexpected frame".to_owned(),
        Some(Err(e)) => e.to_string(),
        None => "connection ended".to_owned(),
    }
}

/// The `event` of a phone-leg frame that failed to parse.
fn event_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "(no event)".to_owned())
}
