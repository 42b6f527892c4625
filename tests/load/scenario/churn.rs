//! `churn`: customers connect, authenticate and leave, over and over, for a fixed time. Measures
//! how many new authenticated sessions (TCP, upgrade, `hello` with a visitor token checked by
//! the gateway, `welcome`) the gateway accepts per second, and whether its memory comes back.
//!
//! Each connection is closed with a proper close handshake right after `welcome`, the way a
//! customer who opens a page and leaves it does. With `--fresh-visitors` every connection also
//! fetches a new visitor token first, so the rate includes `POST /api/visitor`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{ConnectStats, Ctx, Window};
use crate::api;
use crate::http::HttpClient;
use crate::report::Report;
use crate::ws;

#[derive(Args, Debug, Serialize)]
pub struct ChurnArgs {
    /// Seconds to keep connecting and disconnecting (the measured window).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Connections being set up at once; each worker connects, says hello, closes, repeats.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Distinct visitors whose tokens are reused round-robin (fetched before the window).
    #[arg(long, default_value_t = 2000)]
    pub visitors: u64,
    /// Fetch a new visitor token before every connection instead of reusing the pool.
    #[arg(long)]
    pub fresh_visitors: bool,
    /// Keep-alive HTTP clients fetching the visitor pool in parallel.
    #[arg(long, default_value_t = 8)]
    pub token_clients: usize,
}

impl ChurnArgs {
    /// The longest this scenario can take, every phase at its own limit.
    pub fn bound(&self, ctx: &Ctx) -> Duration {
        ctx.setup_timeout + ctx.hello_timeout + Duration::from_secs(self.duration + 60)
    }
}

pub async fn run(ctx: Arc<Ctx>, args: &ChurnArgs) -> anyhow::Result<Report> {
    let mut report = ctx.new_report("churn", args);
    ctx.check_open_files(args.concurrency as u64 * 2 + 64, &mut report.notes);

    let pool = if args.fresh_visitors {
        Vec::new()
    } else {
        let (tokens, per_sec) =
            super::visitor_tokens(&ctx, args.visitors.max(1), args.token_clients).await;
        report.connections.tokens_per_sec = per_sec;
        if tokens.is_empty() {
            anyhow::bail!("no visitor token could be fetched; is the gateway up?");
        }
        tokens
    };
    let pool = Arc::new(pool);
    let before = ctx.gateway_sample()?;

    let stats = Arc::new(ConnectStats::default());
    let attempted = Arc::new(AtomicU64::new(0));
    let tokens_fetched = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let progress = super::progress_every(Duration::from_secs(2), {
        let stats = stats.clone();
        move || {
            format!(
                "churn: {} sessions, {} failed",
                stats.established.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed)
            )
        }
    });
    let mut workers = JoinSet::new();
    for worker in 0..args.concurrency.max(1) {
        let (ctx, stats, attempted, pool, fetched) = (
            ctx.clone(),
            stats.clone(),
            attempted.clone(),
            pool.clone(),
            tokens_fetched.clone(),
        );
        let fresh = args.fresh_visitors;
        workers.spawn(async move {
            let mut http = fresh.then(|| HttpClient::new(ctx.targets.next(), ctx.sources.next()));
            let mut next = worker;
            while Instant::now() < end {
                let token = match &mut http {
                    Some(http) => match api::visitor_token(http, &ctx.site_key).await {
                        Ok(token) => {
                            fetched.fetch_add(1, Ordering::Relaxed);
                            token
                        }
                        Err(e) => {
                            ctx.errors.add(format!("visitor token: {}", e.label()));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    None => pool[next % pool.len()].clone(),
                };
                next += 1;
                attempted.fetch_add(1, Ordering::Relaxed);
                if let Some(socket) = super::connect_customer(&ctx, &token, &stats).await {
                    ws::close(socket).await;
                }
            }
        });
    }
    let window = Window::measure(&ctx, Duration::from_secs(args.duration)).await?;
    let measured = start.elapsed();
    let established_in_window = stats.established.load(Ordering::Relaxed);
    // Stragglers finish their current attempt; they are bounded by the hello timeout.
    let _ = tokio::time::timeout(ctx.hello_timeout + Duration::from_secs(30), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    progress.abort();

    stats.fill(attempted.load(Ordering::Relaxed), start, &mut report);
    // The rate over the window itself, not up to the last straggler.
    report.connections.connects_per_sec =
        established_in_window as f64 / measured.as_secs_f64().max(f64::EPSILON);
    if args.fresh_visitors {
        report.connections.tokens_per_sec =
            tokens_fetched.load(Ordering::Relaxed) as f64 / measured.as_secs_f64();
    }
    report.generator = window.generator_usage(ctx.worker_threads);
    report.gateway = window.gateway_usage(&ctx, before, 0);
    // Whether memory comes back once the churn stops (sessions are gone, tokens stay).
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Some(g), Ok(Some(s))) = (&mut report.gateway, ctx.gateway_sample()) {
        g.rss_after_close_bytes = Some(s.rss_bytes);
    }
    eprintln!(
        "churn: {} sessions in {:.1} s ({:.0}/s), {} failed",
        report.connections.established,
        measured.as_secs_f64(),
        report.connections.connects_per_sec,
        report.connections.failed
    );
    report.errors = ctx.errors.snapshot();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connects_and_leaves_against_the_relay() {
        let addr = crate::relay::spawn(false).await;
        for fresh_visitors in [false, true] {
            let args = ChurnArgs {
                duration: 1,
                concurrency: 4,
                visitors: 10,
                fresh_visitors,
                token_clients: 2,
            };
            let report = run(super::super::test_ctx(addr), &args).await.unwrap();
            let c = &report.connections;
            assert!(c.established > 0, "{c:?}");
            assert_eq!(c.failed, 0, "{:?}", report.errors);
            assert!(c.connects_per_sec > 0.0 && c.tokens_per_sec > 0.0);
            assert!(report.gateway.unwrap().rss_after_close_bytes.is_some());
        }
    }
}
