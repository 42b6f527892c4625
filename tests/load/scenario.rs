//! What every scenario shares: the run context, error counting, visitor tokens, agent logins,
//! the paced ramp of customer connections, and sampling of the gateway while load is held. Each
//! scenario is one file that owns its flags and returns a [`Report`].

pub mod calls;
pub mod chat;
pub mod churn;
pub mod idle;
pub mod reconnect;
pub mod stalled;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{self, Token};
use crate::frames::{Id, Welcome};
use crate::http::HttpClient;
use crate::procfs::{self, Proc, Sample};
use crate::report::{self, GatewayUsage, GeneratorUsage, Latency, Report};
use crate::sys::NoFile;
use crate::target::{Sources, Targets};
use crate::ws::{self, Role, Ws};

/// Everything a scenario needs to know about this run.
pub struct Ctx {
    pub targets: Targets,
    pub sources: Sources,
    pub site_key: String,
    pub gateway: Option<Proc>,
    pub nofile: NoFile,
    pub errors: Errors,
    pub clock: Clock,
    /// Bound on each setup phase (tokens, ramp, assignment).
    pub setup_timeout: Duration,
    pub hello_timeout: Duration,
    pub worker_threads: usize,
}

impl Ctx {
    pub fn new_report(&self, scenario: &str, params: &impl Serialize) -> Report {
        Report {
            scenario: scenario.to_owned(),
            target: self.targets.to_string(),
            params: serde_json::to_value(params).unwrap_or_default(),
            ..Report::default()
        }
    }

    /// Warns (and notes in the report) when either side cannot hold `needed` sockets.
    pub fn check_open_files(&self, needed: u64, notes: &mut Vec<String>) {
        if self.nofile.now < needed {
            let note = format!(
                "the generator may open {} files (hard limit {}) but the run needs about {needed}; \
                 raise the hard limit (limits.conf `nofile`, `LimitNOFILE=` of the unit, or \
                 `prlimit --pid $$ --nofile={needed}:{needed}` on your shell, as root) and rerun",
                self.nofile.now, self.nofile.hard
            );
            eprintln!("warning: {note}");
            notes.push(note);
        }
        let Some(gateway) = &self.gateway else {
            return;
        };
        match gateway.open_files_limit() {
            Ok(Some(limit)) if limit < needed => {
                let n = needed + 1024;
                let note = format!(
                    "the gateway may open {limit} files but the run needs about {needed}; start it \
                     after `ulimit -n {n}`, or set `LimitNOFILE={n}` in its systemd unit, or raise it \
                     in place with `prlimit --pid {} --nofile={n}:{n}`",
                    gateway.pid.unwrap_or_default()
                );
                eprintln!("warning: {note}");
                notes.push(note);
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: cannot read the gateway's limits: {e}"),
        }
    }

    pub fn gateway_sample(&self) -> anyhow::Result<Option<Sample>> {
        match &self.gateway {
            Some(p) => Ok(Some(p.sample().map_err(|e| {
                anyhow::anyhow!("cannot sample the gateway (is pid {:?} alive?): {e}", p.pid)
            })?)),
            None => Ok(None),
        }
    }
}

/// Failures counted by kind; rare, so one lock is enough.
#[derive(Default)]
pub struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    pub fn add(&self, kind: impl Into<String>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(kind.into()).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Microseconds since the generator started: the one clock both ends of a conversation read,
/// since customer and agent live in the same process.
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Fetches up to `n` visitor tokens with `clients` keep-alive HTTP clients in parallel, within
/// the setup timeout. Returns the tokens and the rate they were issued at.
pub async fn visitor_tokens(ctx: &Arc<Ctx>, n: u64, clients: usize) -> (Vec<Token>, f64) {
    let next = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(Mutex::new(Vec::with_capacity(
        usize::try_from(n).unwrap_or(0),
    )));
    let started = Instant::now();
    let deadline = started + ctx.setup_timeout;
    let mut workers = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (ctx, next, tokens) = (ctx.clone(), next.clone(), tokens.clone());
        workers.spawn(async move {
            let mut http = HttpClient::new(ctx.targets.next(), ctx.sources.next());
            let mut failures_in_a_row = 0;
            while next.fetch_add(1, Ordering::Relaxed) < n && Instant::now() < deadline {
                match api::visitor_token(&mut http, &ctx.site_key).await {
                    Ok(token) => {
                        failures_in_a_row = 0;
                        tokens
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(token);
                    }
                    Err(e) => {
                        ctx.errors.add(format!("visitor token: {}", e.label()));
                        failures_in_a_row += 1;
                        // A gateway that refuses every request is not made to refuse 100k.
                        if failures_in_a_row >= 20 {
                            eprintln!("visitor tokens: giving up on a client after: {e}");
                            return;
                        }
                    }
                }
            }
        });
    }
    let progress = progress_every(Duration::from_secs(2), {
        let tokens = tokens.clone();
        move || {
            let got = tokens.lock().unwrap_or_else(PoisonError::into_inner).len();
            format!("visitor tokens: {got}/{n}")
        }
    });
    while workers.join_next().await.is_some() {}
    progress.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let tokens = std::mem::take(&mut *tokens.lock().unwrap_or_else(PoisonError::into_inner));
    let rate = if elapsed > 0.0 {
        tokens.len() as f64 / elapsed
    } else {
        0.0
    };
    eprintln!(
        "visitor tokens: {} of {n} in {elapsed:.1} s ({rate:.0}/s)",
        tokens.len()
    );
    (tokens, rate)
}

/// Resolves once the run is told to stop (or the sender is gone). The watch guard is dropped
/// here, so callers may await freely afterwards.
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Prints `line()` to stderr every `every` until aborted.
pub fn progress_every(
    every: Duration,
    line: impl Fn() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!("{}", line());
        }
    })
}

/// Outcome of the connection ramp, shared by the connecting tasks.
pub struct ConnectStats {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    last_ok: Mutex<Option<Instant>>,
}

impl Default for ConnectStats {
    fn default() -> Self {
        Self {
            established: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hist: Mutex::new(report::micros_histogram()),
            last_ok: Mutex::new(None),
        }
    }
}

impl ConnectStats {
    fn ok(&self, took: Duration) {
        self.established.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.hist
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(us);
        *self.last_ok.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Fills the connection part of the report; the rate runs from `ramp_start` to the last
    /// successful connect.
    pub fn fill(&self, attempted: u64, ramp_start: Instant, report: &mut Report) {
        let c = &mut report.connections;
        c.attempted = attempted;
        c.established = self.established.load(Ordering::Relaxed);
        c.failed = self.failed.load(Ordering::Relaxed);
        let last = *self.last_ok.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = last {
            let secs = last.duration_since(ramp_start).as_secs_f64();
            if secs > 0.0 {
                c.connects_per_sec = c.established as f64 / secs;
            }
        }
        c.connect_ms =
            Latency::from_micros(&self.hist.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Opens a customer session (TCP, upgrade, hello → welcome), counting the outcome.
pub async fn connect_customer(ctx: &Ctx, token: &Token, stats: &ConnectStats) -> Option<Ws> {
    let started = Instant::now();
    let attempt = async {
        let mut socket = ws::open(ctx.targets.next(), &ctx.sources, Role::Customer).await?;
        let welcome = ws::hello(&mut socket, token.expose(), ctx.hello_timeout).await?;
        if welcome.customer.is_none() {
            ctx.errors
                .add("customer connect: welcome without `customer`");
        }
        Ok::<_, ws::ConnectError>(socket)
    };
    // Covers a SYN that is never answered, which the kernel would retry for minutes.
    let limit = ctx.hello_timeout + Duration::from_secs(20);
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(socket)) => {
            stats.ok(started.elapsed());
            Some(socket)
        }
        Ok(Err(e)) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            ctx.errors.add(format!("customer connect: {}", e.label()));
            None
        }
        Err(_) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            ctx.errors.add("customer connect: timeout");
            None
        }
    }
}

/// Logs a staff member in and opens their `/ws/agent` session: the socket, their user id, the
/// `welcome`, and the session token (which also opens a call's agent leg).
pub async fn connect_agent(
    ctx: &Ctx,
    username: &str,
    password: &str,
) -> anyhow::Result<(Ws, Id, Welcome, Token)> {
    let mut http = HttpClient::new(ctx.targets.next(), ctx.sources.next());
    let token = api::agent_session(&mut http, username, password)
        .await
        .context("log in (POST /api/session)")?;
    let mut socket = ws::open(ctx.targets.next(), &ctx.sources, Role::Agent).await?;
    let welcome = ws::hello(&mut socket, token.expose(), ctx.hello_timeout).await?;
    let me = welcome
        .user
        .as_ref()
        .and_then(|u| u.id.clone())
        .context("the agent's welcome has no user.id")?;
    Ok((socket, me, welcome, token))
}

/// When the i-th of a paced series should start.
pub fn paced(start: Instant, i: u64, per_sec: f64) -> Instant {
    if per_sec <= 0.0 || !per_sec.is_finite() {
        return start;
    }
    start + Duration::from_secs_f64(i as f64 / per_sec)
}

/// Samples the gateway and the generator once a second over a measured window.
pub struct Window {
    pub gateway: Vec<Sample>,
    pub generator: Vec<Sample>,
}

impl Window {
    pub async fn measure(ctx: &Ctx, length: Duration) -> anyhow::Result<Self> {
        Self::sample(Some(ctx), length).await
    }

    /// [`Window::measure`] of the generator alone, for a window in which the gateway dies.
    pub async fn measure_generator(length: Duration) -> Self {
        // Without the gateway, no sample can fail.
        Self::sample(None, length).await.unwrap_or(Window {
            gateway: Vec::new(),
            generator: Vec::new(),
        })
    }

    async fn sample(gateway_of: Option<&Ctx>, length: Duration) -> anyhow::Result<Self> {
        let me = Proc::current();
        let end = Instant::now() + length;
        let mut window = Window {
            gateway: Vec::new(),
            generator: Vec::new(),
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Some(s) = gateway_of.map(Ctx::gateway_sample).transpose()?.flatten() {
                window.gateway.push(s);
            }
            if let Ok(s) = me.sample() {
                window.generator.push(s);
            }
            if Instant::now() >= end {
                return Ok(window);
            }
        }
    }

    pub fn generator_usage(&self, worker_threads: usize) -> GeneratorUsage {
        let (cpu_percent, rss_bytes) = match (self.generator.first(), self.generator.last()) {
            (Some(a), Some(b)) => (procfs::cpu_percent(a, b), b.rss_bytes),
            _ => (0.0, 0),
        };
        GeneratorUsage {
            cpu_percent,
            rss_bytes,
            worker_threads,
        }
    }

    /// Gateway usage over the window against `before`, with bytes per connection for
    /// `connections` held.
    pub fn gateway_usage(
        &self,
        ctx: &Ctx,
        before: Option<Sample>,
        connections: u64,
    ) -> Option<GatewayUsage> {
        let pid = ctx.gateway.as_ref()?.pid?;
        let before = before?;
        let (first, last) = (self.gateway.first()?, self.gateway.last()?);
        let mut rss: Vec<u64> = self.gateway.iter().map(|s| s.rss_bytes).collect();
        rss.sort_unstable();
        let loaded = rss[rss.len() / 2];
        let bytes_per_connection = (connections > 0)
            .then(|| (loaded as f64 - before.rss_bytes as f64) / connections as f64);
        Some(GatewayUsage {
            pid,
            rss_before_bytes: before.rss_bytes,
            rss_loaded_bytes: loaded,
            rss_max_bytes: rss[rss.len() - 1],
            rss_after_close_bytes: None,
            bytes_per_connection,
            cpu_percent: procfs::cpu_percent(first, last),
            threads: last.threads,
            open_files_limit: ctx
                .gateway
                .as_ref()
                .and_then(|g| g.open_files_limit().ok().flatten()),
        })
    }
}

/// A context aimed at a server on `addr`, sampling this very process as "the gateway" (the
/// tests run the relay in-process).
#[cfg(test)]
pub fn test_ctx(addr: std::net::SocketAddr) -> Arc<Ctx> {
    let targets = Targets::parse(&addr.to_string()).unwrap();
    Arc::new(Ctx {
        sources: Sources::new(targets.first(), 4),
        targets,
        site_key: "demo".into(),
        gateway: Some(Proc::pid(std::process::id())),
        nofile: crate::sys::raise_nofile().unwrap(),
        errors: Errors::default(),
        clock: Clock::start(),
        setup_timeout: Duration::from_secs(20),
        hello_timeout: Duration::from_secs(5),
        worker_threads: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spreads_starts_evenly() {
        let start = Instant::now();
        assert_eq!(paced(start, 0, 100.0), start);
        assert_eq!(paced(start, 50, 100.0), start + Duration::from_millis(500));
        assert_eq!(paced(start, 7, 0.0), start);
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let errors = Errors::default();
        errors.add("a");
        errors.add("a");
        errors.add("b");
        assert_eq!(errors.snapshot().get("a"), Some(&2));
        assert_eq!(errors.snapshot().len(), 2);
    }
}
