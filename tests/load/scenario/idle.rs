//! `idle`: open N customer connections at a ramp rate, hold them without traffic, and measure
//! what they cost the gateway: RSS per connection and CPU while nothing happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{ConnectStats, Ctx, Window};
use crate::report::Report;
use crate::ws::{self, Ws};

#[derive(Args, Debug, Serialize)]
pub struct IdleArgs {
    /// Customer connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub customers: u64,
    /// New connections started per second during the ramp.
    #[arg(long, default_value_t = 1000.0)]
    pub ramp: f64,
    /// Connection attempts in flight at once during the ramp.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to hold the connections while sampling the gateway (the measured window).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds between the end of the ramp and the first sample, for allocations to settle.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Keep-alive HTTP clients fetching visitor tokens in parallel.
    #[arg(long, default_value_t = 8)]
    pub token_clients: usize,
}

impl IdleArgs {
    /// The longest this scenario can take, every phase at its own limit.
    pub fn bound(&self, ctx: &Ctx) -> Duration {
        ctx.setup_timeout * 2 + Duration::from_secs(self.settle + self.duration + 60)
    }
}

pub async fn run(ctx: Arc<Ctx>, args: &IdleArgs) -> anyhow::Result<Report> {
    let mut report = ctx.new_report("idle", args);
    ctx.check_open_files(args.customers + 64, &mut report.notes);
    let before = ctx.gateway_sample()?;

    let (tokens, tokens_per_sec) =
        super::visitor_tokens(&ctx, args.customers, args.token_clients).await;
    report.connections.tokens_per_sec = tokens_per_sec;
    let after_tokens = ctx.gateway_sample()?;

    let stats = Arc::new(ConnectStats::default());
    let dropped = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut holders = JoinSet::new();
    let ramp_start = Instant::now();
    let deadline = ramp_start + ctx.setup_timeout;
    let progress = super::progress_every(Duration::from_secs(2), {
        let stats = stats.clone();
        move || {
            format!(
                "ramp: {} established, {} failed",
                stats.established.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed)
            )
        }
    });
    let mut attempted = 0;
    for token in tokens {
        tokio::time::sleep_until(super::paced(ramp_start, attempted, args.ramp)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if Instant::now() >= deadline {
            report
                .notes
                .push("the ramp hit --setup-timeout before every connection was tried".into());
            break;
        }
        attempted += 1;
        let (ctx, stats, dropped, stop) =
            (ctx.clone(), stats.clone(), dropped.clone(), stop_rx.clone());
        holders.spawn(async move {
            let socket = super::connect_customer(&ctx, &token, &stats).await;
            drop(permit);
            if let Some(socket) = socket {
                hold(socket, stop, &ctx, &dropped).await;
            }
        });
    }
    // Every attempt has finished when all permits are back.
    let all = u32::try_from(args.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout_at(
        deadline + Duration::from_secs(30),
        permits.acquire_many(all),
    )
    .await;
    progress.abort();
    stats.fill(attempted, ramp_start, &mut report);
    eprintln!(
        "ramp: {} of {attempted} established at {:.0}/s, {} failed; holding",
        report.connections.established,
        report.connections.connects_per_sec,
        report.connections.failed
    );

    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let window = Window::measure(&ctx, Duration::from_secs(args.duration)).await?;
    let held = report
        .connections
        .established
        .saturating_sub(dropped.load(Ordering::Relaxed));

    let _ = stop_tx.send(true);
    let closing = async { while holders.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), closing)
        .await
        .is_err()
    {
        report
            .notes
            .push("some connections did not close within 20 s".into());
    }
    report.connections.dropped = dropped.load(Ordering::Relaxed);
    report.generator = window.generator_usage(ctx.worker_threads);
    report.gateway = window.gateway_usage(&ctx, before, held);
    if let (Some(g), Some(t)) = (&report.gateway, after_tokens) {
        if held > 0 && t.rss_bytes != g.rss_before_bytes {
            report.notes.push(format!(
                "of that, visitor tokens alone (before any socket): {}",
                crate::report::bytes(t.rss_bytes as f64 - g.rss_before_bytes as f64)
            ));
        }
    }
    // Whether the memory comes back once the connections are gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Some(g), Ok(Some(s))) = (&mut report.gateway, ctx.gateway_sample()) {
        g.rss_after_close_bytes = Some(s.rss_bytes);
    }
    report.errors = ctx.errors.snapshot();
    Ok(report)
}

/// Keeps a connection open without traffic (pings are answered as frames are read) until told
/// to stop; then closes it properly. A close or error before that counts as a drop.
async fn hold(mut socket: Ws, mut stop: watch::Receiver<bool>, ctx: &Ctx, dropped: &AtomicU64) {
    loop {
        tokio::select! {
            frame = socket.next() => {
                let why = match frame {
                    Some(Ok(Message::Close(frame))) => ws::close_label(frame.as_ref()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => e.to_string(),
                    None => "connection ended".to_owned(),
                };
                dropped.fetch_add(1, Ordering::Relaxed);
                ctx.errors.add(format!("customer held: {why}"));
                return;
            }
            _ = super::stopped(&mut stop) => {
                ws::close(socket).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_connections_against_the_relay_and_measures_them() {
        let addr = crate::relay::spawn(false).await;
        let args = IdleArgs {
            customers: 60,
            ramp: 600.0,
            concurrency: 16,
            duration: 1,
            settle: 0,
            token_clients: 3,
        };
        let report = run(super::super::test_ctx(addr), &args).await.unwrap();
        let c = &report.connections;
        assert_eq!(
            (c.attempted, c.established, c.failed, c.dropped),
            (60, 60, 0, 0)
        );
        assert!(c.connects_per_sec > 0.0 && c.tokens_per_sec > 0.0);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let g = report.gateway.unwrap();
        assert!(g.bytes_per_connection.is_some() && g.rss_after_close_bytes.is_some());
    }
}
