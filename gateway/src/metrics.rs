//! Prometheus metrics, kept as plain atomics: counters and gauges the hot path bumps without
//! locks, rendered in the text exposition format on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the relay-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let v = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {v}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// How customers' step-up verifications ended, counted where step-up decides them
/// (`crate::stepup`) and rendered as `deskgate_verifications_total{outcome=…}`.
#[derive(Default)]
pub struct VerificationOutcomes {
    /// The right code, in time: the ticket is verified.
    pub approved: AtomicU64,
    /// A wrong code with attempts left.
    pub failed_code: AtomicU64,
    /// A code that arrived after its challenge expired.
    pub expired: AtomicU64,
    /// The wrong code that used up the challenge's last attempt.
    pub max_attempts: AtomicU64,
    /// The code email could not be sent (nothing was started).
    pub mail_failed: AtomicU64,
    /// A customer reached the daily cap of wrong codes and step-up locked for the day.
    pub locked: AtomicU64,
}

impl VerificationOutcomes {
    fn render(&self, out: &mut String) {
        let name = "deskgate_verifications_total";
        let _ = writeln!(
            out,
            "# HELP {name} Step-up verifications by outcome: approved, failed_code (wrong code, attempts left), expired (code after expiry), max_attempts (last attempt used), mail_failed (code email not sent), locked (daily cap reached).\n# TYPE {name} counter"
        );
        for (outcome, c) in [
            ("approved", &self.approved),
            ("failed_code", &self.failed_code),
            ("expired", &self.expired),
            ("max_attempts", &self.max_attempts),
            ("mail_failed", &self.mail_failed),
            ("locked", &self.locked),
        ] {
            let v = c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {v}");
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    pub customer_connections: AtomicI64,
    pub agent_connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub frames_received: AtomicU64,
    pub messages_stored: AtomicU64,
    pub messages_delivered: AtomicU64,
    pub messages_blocked: AtomicU64,
    pub frame_errors: AtomicU64,
    pub closed_rate_limited: AtomicU64,
    pub closed_too_many_connections: AtomicU64,
    pub closed_too_large: AtomicU64,
    pub closed_unauthenticated: AtomicU64,
    pub store_errors: AtomicU64,
    /// From a message's commit to its frame being written to a follower's socket.
    pub relay_latency: Histogram,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Renders all metrics; queue figures are read from the store by the caller, and
    /// verification outcomes kept by step-up.
    pub fn render(
        &self,
        queue: &crate::store::QueueStats,
        fanout: &crate::hub::Registry,
        verifications: &VerificationOutcomes,
    ) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "deskgate_customer_connections",
            "Open customer WebSocket connections.",
            self.customer_connections.load(Ordering::Relaxed),
        );
        gauge(
            "deskgate_agent_connections",
            "Open staff WebSocket connections.",
            self.agent_connections.load(Ordering::Relaxed),
        );
        gauge(
            "deskgate_queue_depth",
            "Tickets waiting in the queue.",
            queue.queued,
        );
        gauge(
            "deskgate_tickets_assigned",
            "Tickets assigned to an agent.",
            queue.assigned,
        );
        gauge(
            "deskgate_queue_longest_wait_seconds",
            "Wait of the longest-waiting queued ticket.",
            queue.longest_wait_ms / 1000,
        );
        let counters: [(&str, &str, u64); 13] = [
            (
                "deskgate_connections_total",
                "WebSocket connections accepted.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "deskgate_frames_received_total",
                "Client frames received.",
                self.frames_received.load(Ordering::Relaxed),
            ),
            (
                "deskgate_messages_stored_total",
                "Chat messages committed to the store.",
                self.messages_stored.load(Ordering::Relaxed),
            ),
            (
                "deskgate_messages_delivered_total",
                "Message frames written to followers.",
                self.messages_delivered.load(Ordering::Relaxed),
            ),
            (
                "deskgate_messages_blocked_total",
                "Messages and notes withheld for carrying a payment card number.",
                self.messages_blocked.load(Ordering::Relaxed),
            ),
            (
                "deskgate_frame_errors_total",
                "Error frames sent to clients.",
                self.frame_errors.load(Ordering::Relaxed),
            ),
            (
                "deskgate_closed_rate_limited_total",
                "Connections closed for flooding (4008).",
                self.closed_rate_limited.load(Ordering::Relaxed),
            ),
            (
                "deskgate_closed_too_many_connections_total",
                "Sockets refused for exceeding the per-address cap (4013).",
                self.closed_too_many_connections.load(Ordering::Relaxed),
            ),
            (
                "deskgate_closed_too_large_total",
                "Connections closed for an oversized frame (1009).",
                self.closed_too_large.load(Ordering::Relaxed),
            ),
            (
                "deskgate_closed_unauthenticated_total",
                "Connections closed unauthenticated (4001).",
                self.closed_unauthenticated.load(Ordering::Relaxed),
            ),
            (
                "deskgate_closed_too_slow_total",
                "Connections closed for not reading (4009).",
                fanout.slow_closed.load(Ordering::Relaxed),
            ),
            (
                "deskgate_queue_resyncs_total",
                "Queue views resent whole after a burst of queue events did not fit a connection's queue.",
                fanout.queue_lags.load(Ordering::Relaxed),
            ),
            (
                "deskgate_store_errors_total",
                "Store operations that failed.",
                self.store_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        verifications.render(&mut out);
        self.relay_latency.render(
            &mut out,
            "deskgate_relay_latency_seconds",
            "From a message's commit to its delivery to a follower's socket.",
        );
        out
    }
}
