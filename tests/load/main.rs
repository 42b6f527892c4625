//! `deskgate-load`: drives a running deskgate gateway over real WebSockets (`deskgate.v1`) and
//! reports what load costs it: connections per second, memory per connection, CPU, and
//! customer → agent relay latency with exactly-once checks. It only ever targets loopback.
//!
//! - `target`   the loopback-only target; loopback source addresses to spread sockets over
//! - `http`     a small HTTP/1.1 client for the REST calls
//! - `api`      visitor tokens and agent sessions
//! - `ws`       WebSocket sessions: upgrade with the subprotocol, hello → welcome
//! - `frames`   the protocol frames the generator reads and writes
//! - `payload`  message text carrying its send time and its place in the conversation
//! - `seq`      gap, duplicate and order checks of sequence numbers
//! - `procfs`   RSS and CPU of a process from /proc
//! - `sys`      the open-files limit and the clock-tick rate
//! - `report`   results: the table, JSON, and the median of several runs
//! - `voice`    a call's two legs on the wire, the media token, the stamp in every audio frame
//! - `scenario` one file per scenario (`idle`, `churn`, `chat`, `calls`) and what they share,
//!   with `reconnect`: coming back after the gateway is lost
//! - `relay`    a bare in-memory relay speaking the same frames: the baseline to compare with

mod api;
mod frames;
mod http;
mod payload;
mod procfs;
mod relay;
mod report;
mod scenario;
mod seq;
mod sys;
mod target;
mod voice;
mod ws;

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::procfs::Proc;
use crate::report::Report;
use crate::scenario::calls::CallsArgs;
use crate::scenario::chat::ChatArgs;
use crate::scenario::churn::ChurnArgs;
use crate::scenario::idle::IdleArgs;
use crate::scenario::{Clock, Ctx, Errors};
use crate::sys::NoFile;
use crate::target::{Sources, Targets};

#[derive(Parser)]
#[command(
    name = "deskgate-load",
    version,
    about = "Load generator for a running deskgate gateway (loopback only)",
    after_help = "Every phase has its own time limit (--setup-timeout, --duration, --drain), so a \
                  run always ends by itself. The gateway needs one open file per connection: \
                  start it after `ulimit -n <connections + 1024>` (or `LimitNOFILE=` in its \
                  systemd unit)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N customer connections, hold them idle, and measure the gateway's RSS per
    /// connection and idle CPU (needs --gateway-pid).
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Customers connect, authenticate and leave over and over; measure new sessions per
    /// second and whether the gateway's memory comes back.
    Churn {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ChurnArgs,
    },
    /// Customers send timed messages to agents at a total rate; measure relay latency and
    /// check every message arrives once and in order.
    Chat {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: ChatArgs,
    },
    /// Concurrent recorded calls, a phone leg (Twilio Media Streams) and an agent leg (PCM16)
    /// each, both sending 20 ms of audio every 20 ms; measure frame relay latency both ways and
    /// count lost frames and finished recordings.
    Calls {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: CallsArgs,
    },
    /// Serve a bare in-memory relay of the same frames (no store, screen or encryption), to
    /// measure the generator and the transport alone.
    Relay(relay::RelayArgs),
    /// Median, min and max of every figure over several JSON reports of one scenario.
    Summarize {
        /// JSON reports written with --json or --json-out.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// A Markdown table instead of plain text.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Args)]
struct Common {
    /// The gateway's address, or the addresses of a cluster's nodes separated by commas (each
    /// new connection goes to the next); only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:8080", env = "DESKGATE_LOAD_TARGET")]
    target: String,
    /// Loopback source addresses to spread client sockets over (127.0.0.2, 127.0.0.3, …);
    /// each gives about 28k ephemeral ports. 0 lets the kernel choose.
    #[arg(long, default_value_t = 16)]
    sources: u16,
    /// The gateway's pid, to sample its RSS and CPU from /proc/<pid>.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The site key visitor tokens are requested for.
    #[arg(long, default_value = "demo")]
    site_key: String,
    /// Worker threads of the generator; it shares the machine with the gateway.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds each setup phase may take (tokens, ramp, ticket assignment).
    #[arg(long, default_value_t = 120)]
    setup_timeout: u64,
    /// Seconds to wait for `welcome` after `hello`.
    #[arg(long, default_value_t = 10)]
    hello_timeout: u64,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deskgate-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Summarize { reports, markdown } => summarize(&reports, markdown),
        Command::Relay(args) => {
            sys::raise_nofile()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.max(1))
                .enable_all()
                .build()
                .context("start the async runtime")?;
            runtime.block_on(relay::main(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Idle { common, args } => {
            let (ctx, runtime) = setup(&common)?;
            let bound = args.bound(&ctx);
            let report = runtime.block_on(bounded(bound, scenario::idle::run(ctx, &args)))?;
            output(&common, &report)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Churn { common, args } => {
            let (ctx, runtime) = setup(&common)?;
            let bound = args.bound(&ctx);
            let report = runtime.block_on(bounded(bound, scenario::churn::run(ctx, &args)))?;
            output(&common, &report)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Chat { common, args } => {
            let (ctx, runtime) = setup(&common)?;
            let bound = args.bound(&ctx);
            let report = runtime.block_on(bounded(bound, scenario::chat::run(ctx, &args)))?;
            output(&common, &report)?;
            // Across a lost connection, a message never acknowledged is lost too: the client
            // sent it again until it was.
            let faults = report.messages.as_ref().map_or(0, |m| {
                let unacked = if report.recovery.is_some() {
                    m.unacked
                } else {
                    0
                };
                m.lost + m.duplicates + m.out_of_order + unacked
            });
            if args.strict && faults > 0 {
                eprintln!(
                    "deskgate-load: {faults} messages lost, duplicated, out of order or (after a \
                     reconnect) never acknowledged"
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Calls { common, args } => {
            let (ctx, runtime) = setup(&common)?;
            let bound = args.bound(&ctx);
            let report = runtime.block_on(bounded(bound, scenario::calls::run(ctx, &args)))?;
            output(&common, &report)?;
            let faults = report.calls.as_ref().map_or(0, |c| {
                c.failed
                    + c.dropped
                    + c.to_agent.lost
                    + c.to_phone.lost
                    + (c.established - c.recordings.finished)
            });
            if args.strict && faults > 0 {
                eprintln!(
                    "deskgate-load: {faults} calls failed or dropped, frames lost, or recordings \
                     not finished"
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Belt and braces over the per-phase limits: a run never outlives its bound.
async fn bounded(
    bound: Duration,
    scenario: impl std::future::Future<Output = anyhow::Result<Report>>,
) -> anyhow::Result<Report> {
    tokio::time::timeout(bound, scenario)
        .await
        .map_err(|_| anyhow::anyhow!("the run exceeded its bound of {} s", bound.as_secs()))?
}

fn setup(common: &Common) -> anyhow::Result<(Arc<Ctx>, tokio::runtime::Runtime)> {
    let targets = Targets::parse(&common.target)?;
    let nofile = match sys::raise_nofile() {
        Ok(n) => {
            if n.now > n.before {
                eprintln!(
                    "open files: raised this process's limit from {} to {} (the hard limit)",
                    n.before, n.now
                );
            }
            n
        }
        Err(e) => {
            eprintln!("open files: cannot raise this process's limit: {e}");
            NoFile {
                before: 0,
                now: 0,
                hard: 0,
            }
        }
    };
    let gateway = common.gateway_pid.map(Proc::pid);
    if let Some(g) = &gateway {
        g.sample()
            .with_context(|| format!("no gateway process with pid {:?}", g.pid))?;
    }
    let worker_threads = common.threads.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let ctx = Ctx {
        sources: Sources::new(targets.first(), common.sources),
        targets,
        site_key: common.site_key.clone(),
        gateway,
        nofile,
        errors: Errors::default(),
        clock: Clock::start(),
        setup_timeout: Duration::from_secs(common.setup_timeout),
        hello_timeout: Duration::from_secs(common.hello_timeout),
        worker_threads,
    };
    Ok((Arc::new(ctx), runtime))
}

fn output(common: &Common, report: &Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = &common.json_out {
        fs::write(path, format!("{json}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if common.json {
        writeln!(stdout, "{json}")?;
    } else {
        write!(stdout, "{}", report.render())?;
    }
    Ok(())
}

fn summarize(paths: &[PathBuf], markdown: bool) -> anyhow::Result<ExitCode> {
    let reports = paths
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<serde_json::Value>>>()?;
    let rows = report::summarize(&reports);
    print!("{}", report::render_spread(&rows, reports.len(), markdown));
    Ok(ExitCode::SUCCESS)
}
