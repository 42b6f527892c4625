//! What a run found, in one shape for every scenario: a human table, JSON (`--json`), and the
//! median and spread of several JSON reports (`deskgate-load summarize`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// The scenario's flags, so a JSON file says how it was made.
    pub params: Value,
    pub connections: Connections,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Messages>,
    /// Relay latency: customer → agent of the timed messages (`chat`); every audio frame,
    /// both ways (`calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    /// How the clients came back after losing their connections (`chat --reconnect`, and
    /// `--kill-after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Calls held and the audio relayed between their legs (`calls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<Calls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayUsage>,
    pub generator: GeneratorUsage,
    /// Failures by kind ("customer connect: hello: closed 4001", "send: error rate_limited").
    pub errors: BTreeMap<String, u64>,
    /// Things the reader must know to read the figures right (limits that capped the run, …).
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Connections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    /// Established, then closed or broken before the scenario ended them.
    pub dropped: u64,
    /// Established connections per second over the ramp (TCP + upgrade + hello → welcome).
    pub connects_per_sec: f64,
    /// Time from TCP connect to `welcome`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<Latency>,
    /// Visitor tokens issued per second, fetched before the ramp.
    pub tokens_per_sec: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Messages {
    pub sent: u64,
    pub acked: u64,
    /// Distinct timed messages that reached an agent.
    pub delivered: u64,
    /// Acknowledged to the customer, never delivered to the agent.
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Sent, with neither `ack` nor `error` by the end of the drain.
    pub unacked: u64,
    /// `error` frames answering a send.
    pub send_errors: u64,
    pub window_secs: f64,
    pub sent_per_sec: f64,
    /// Acks received inside the window, per second: what the gateway committed.
    pub acked_per_sec: f64,
    /// Deliveries to agents inside the window, per second.
    pub delivered_per_sec: f64,
    /// How late sends left against their schedule: if this grows, the generator did not keep
    /// up and the rate was lower than asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Latency>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recovery {
    /// Seconds into the window at which the generator killed the gateway (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_at_secs: Option<f64>,
    /// Connections lost during the window, customers' and agents'.
    pub connections_lost: u64,
    pub customers_back: u64,
    pub agents_back: u64,
    /// From the first connection lost to the first client back in session (hello → welcome):
    /// how long the gateway was away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_back_ms: Option<f64>,
    /// From the first connection lost to the last client back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_back_ms: Option<f64>,
    /// Reconnection attempts that failed (refused, reset, no welcome) while it was away.
    pub failed_attempts: u64,
    /// Clients that did not get back within --reconnect-within; their unacknowledged
    /// messages count as unacked.
    pub gave_up: u64,
    /// Messages sent again, under their client_id, after a reconnect: unacknowledged when the
    /// connection was lost.
    pub resent: u64,
    /// Of those, answered `duplicate: true`: stored before the connection was lost, with the
    /// ack lost on the way.
    pub already_stored: u64,
    /// `resumed` frames: replays finished after reconnecting.
    pub resumed: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Calls {
    pub attempted: u64,
    /// Both legs up: the phone leg started, the agent leg answered `started`.
    pub established: u64,
    /// Never established; the reasons are under `errors`.
    pub failed: u64,
    /// Established, then a leg closed or broke before the call was ended.
    pub dropped: u64,
    /// Established calls per second over the ramp.
    pub established_per_sec: f64,
    /// From the phone leg's TCP connect to the agent leg's `started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<Latency>,
    pub window_secs: f64,
    /// The caller's audio: phone leg → gateway → agent leg.
    pub to_agent: Frames,
    /// The agent's audio: agent leg → gateway → phone leg.
    pub to_phone: Frames,
    /// How late frames left against their 20 ms schedule: if this grows, the generator did
    /// not keep up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Latency>,
    pub recordings: Recordings,
    /// (gateway RSS loaded − before) / established calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_call: Option<f64>,
}

/// One direction of the relay over every call.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Frames {
    pub sent: u64,
    /// Distinct frames that reached the far leg.
    pub received: u64,
    /// Sent and never received (the gateway drops what does not fit a leg's 200 ms queue).
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Frames stamped with another call's index.
    pub misrouted: u64,
    /// Frames whose stamp did not read back: the audio was changed on the way.
    pub unreadable: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
}

/// The state of each established call's recording once the call has ended.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recordings {
    pub finished: u64,
    pub failed: u64,
    /// Still `recording` when the generator stopped asking.
    pub unfinished: u64,
    /// Not asked: the API did not answer, or the call never got its recording id.
    pub unchecked: u64,
    /// Audio recorded over the finished recordings, in seconds.
    pub recorded_secs: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// From a histogram of microseconds; `None` when nothing was recorded.
    pub fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes at 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure here is a programming error.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GatewayUsage {
    pub pid: u32,
    /// Before the scenario made any request.
    pub rss_before_bytes: u64,
    /// Median of the samples taken while the load was held.
    pub rss_loaded_bytes: u64,
    /// Highest sample while the load was held.
    pub rss_max_bytes: u64,
    /// A few seconds after every connection was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_close_bytes: Option<u64>,
    /// (loaded − before) / established connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection: Option<f64>,
    /// Over the measured window, in % of one core.
    pub cpu_percent: f64,
    pub threads: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files_limit: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GeneratorUsage {
    /// Over the measured window, in % of one core: the generator shares the machine.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub worker_threads: usize,
}

pub fn bytes(n: f64) -> String {
    const KIB: f64 = 1024.0;
    if n.abs() >= KIB * KIB * KIB {
        format!("{:.2} GiB", n / (KIB * KIB * KIB))
    } else if n.abs() >= KIB * KIB {
        format!("{:.1} MiB", n / (KIB * KIB))
    } else if n.abs() >= KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{n:.0} B")
    }
}

fn latency_line(l: &Latency) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n={})",
        l.p50, l.p90, l.p99, l.p999, l.max, l.count
    )
}

impl Report {
    /// The human table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.connections;
        let _ = writeln!(
            out,
            "deskgate-load {} against {}",
            self.scenario, self.target
        );
        let _ = writeln!(
            out,
            "  connections   attempted {}  established {}  failed {}  dropped {}",
            c.attempted, c.established, c.failed, c.dropped
        );
        let _ = writeln!(
            out,
            "                {:.0} connects/s  ({:.0} visitor tokens/s before the ramp)",
            c.connects_per_sec, c.tokens_per_sec
        );
        if let Some(l) = &c.connect_ms {
            let _ = writeln!(out, "  connect (ms)  {}", latency_line(l));
        }
        if let Some(m) = &self.messages {
            let _ = writeln!(
                out,
                "  messages      sent {} ({:.0}/s)  acked {}  delivered {}",
                m.sent, m.sent_per_sec, m.acked, m.delivered
            );
            let _ = writeln!(
                out,
                "                in the {:.0} s window: {:.0} acks/s, {:.0} deliveries/s",
                m.window_secs, m.acked_per_sec, m.delivered_per_sec
            );
            let _ = writeln!(
                out,
                "                lost {}  duplicates {}  out of order {}  unacked {}  send errors {}",
                m.lost, m.duplicates, m.out_of_order, m.unacked, m.send_errors
            );
        }
        if let Some(l) = &self.latency_ms {
            let _ = writeln!(out, "  latency (ms)  {}", latency_line(l));
        }
        if let Some(l) = self.messages.as_ref().and_then(|m| m.send_lag_ms.as_ref()) {
            let _ = writeln!(out, "  send lag (ms) {}", latency_line(l));
        }
        if let Some(r) = &self.recovery {
            render_recovery(r, &mut out);
        }
        if let Some(c) = &self.calls {
            render_calls(c, &mut out);
        }
        if let Some(g) = &self.gateway {
            let _ = writeln!(
                out,
                "  gateway       pid {}  RSS before {}  loaded {}  max {}{}",
                g.pid,
                bytes(g.rss_before_bytes as f64),
                bytes(g.rss_loaded_bytes as f64),
                bytes(g.rss_max_bytes as f64),
                g.rss_after_close_bytes
                    .map(|b| format!("  after close {}", bytes(b as f64)))
                    .unwrap_or_default()
            );
            let per_conn = g
                .bytes_per_connection
                .map(|b| format!("{} per connection  ", bytes(b)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "                {per_conn}CPU {:.1}% of a core  threads {}",
                g.cpu_percent, g.threads
            );
        }
        let _ = writeln!(
            out,
            "  generator     CPU {:.1}% of a core  RSS {}  worker threads {}",
            self.generator.cpu_percent,
            bytes(self.generator.rss_bytes as f64),
            self.generator.worker_threads
        );
        if self.errors.is_empty() {
            let _ = writeln!(out, "  errors        none");
        } else {
            let _ = writeln!(out, "  errors");
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "    {n:>8}  {kind}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }
}

fn render_recovery(r: &Recovery, out: &mut String) {
    let killed = r
        .killed_at_secs
        .map(|s| format!("gateway killed {s:.1} s into the window; "))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  recovery      {killed}{} connections lost, {} customers and {} agents back",
        r.connections_lost, r.customers_back, r.agents_back
    );
    let ms = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0} ms"));
    let _ = writeln!(
        out,
        "                first back after {}, all back after {}  failed attempts {}  gave up {}",
        ms(r.first_back_ms),
        ms(r.all_back_ms),
        r.failed_attempts,
        r.gave_up
    );
    let _ = writeln!(
        out,
        "                resent {} (already stored {})  resumed {}",
        r.resent, r.already_stored, r.resumed
    );
}

fn render_calls(c: &Calls, out: &mut String) {
    let _ = writeln!(
        out,
        "  calls         attempted {}  established {} ({:.0}/s)  failed {}  dropped {}",
        c.attempted, c.established, c.established_per_sec, c.failed, c.dropped
    );
    if let Some(l) = &c.setup_ms {
        let _ = writeln!(out, "  setup (ms)    {}", latency_line(l));
    }
    for (name, f) in [
        ("phone → agent", &c.to_agent),
        ("agent → phone", &c.to_phone),
    ] {
        let _ = writeln!(
            out,
            "  {name} sent {}  received {}  lost {}  duplicates {}  out of order {}  \
             misrouted {}  unreadable {}",
            f.sent, f.received, f.lost, f.duplicates, f.out_of_order, f.misrouted, f.unreadable
        );
        if let Some(l) = &f.latency_ms {
            let _ = writeln!(out, "    relay (ms)  {}", latency_line(l));
        }
    }
    if let Some(l) = &c.send_lag_ms {
        let _ = writeln!(out, "  send lag (ms) {}", latency_line(l));
    }
    let r = &c.recordings;
    let _ = writeln!(
        out,
        "  recordings    finished {}  failed {}  unfinished {}  unchecked {}  ({:.0} s of audio)",
        r.finished, r.failed, r.unfinished, r.unchecked, r.recorded_secs
    );
    if let Some(b) = c.bytes_per_call {
        let _ = writeln!(out, "                gateway RSS per call {}", bytes(b));
    }
}

/// Every numeric leaf of a JSON value as `a.b.c` → number.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, f64>) {
    match value {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(prefix.to_owned(), x);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, PartialEq)]
pub struct Spread {
    pub metric: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Median, min and max of every number present in all reports (the flags in `params` are
/// left out: they are the same in every run).
pub fn summarize(reports: &[Value]) -> Vec<Spread> {
    let flat: Vec<BTreeMap<String, f64>> = reports
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            flatten("", r, &mut m);
            m
        })
        .collect();
    let Some(first) = flat.first() else {
        return Vec::new();
    };
    first
        .keys()
        .filter(|k| !k.starts_with("params."))
        .filter_map(|k| {
            let mut xs: Vec<f64> = flat
                .iter()
                .map(|m| m.get(k).copied())
                .collect::<Option<_>>()?;
            xs.sort_by(f64::total_cmp);
            let mid = xs.len() / 2;
            let median = if xs.len() % 2 == 1 {
                xs[mid]
            } else {
                (xs[mid - 1] + xs[mid]) / 2.0
            };
            Some(Spread {
                metric: k.clone(),
                median,
                min: xs[0],
                max: xs[xs.len() - 1],
            })
        })
        .collect()
}

pub fn render_spread(rows: &[Spread], runs: usize, markdown: bool) -> String {
    let fmt = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{x:.0}")
        } else {
            format!("{x:.3}")
        }
    };
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "| metric (median of {runs}) | median | min | max |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.metric,
                fmt(r.median),
                fmt(r.min),
                fmt(r.max)
            );
        }
    } else {
        let width = rows.iter().map(|r| r.metric.len()).max().unwrap_or(6);
        let _ = writeln!(
            out,
            "{:width$}  {:>14}  {:>14}  {:>14}   ({runs} runs)",
            "metric", "median", "min", "max"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:width$}  {:>14}  {:>14}  {:>14}",
                r.metric,
                fmt(r.median),
                fmt(r.min),
                fmt(r.max)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn latency_from_a_histogram_in_ms() {
        let mut h = micros_histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap();
        }
        let l = Latency::from_micros(&h).unwrap();
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99 - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
        assert!(Latency::from_micros(&micros_histogram()).is_none());
    }

    #[test]
    fn summary_is_median_min_max_without_params() {
        let runs = [
            json!({"params": {"rate": 5}, "latency_ms": {"p99": 3.0}, "errors": {}}),
            json!({"params": {"rate": 5}, "latency_ms": {"p99": 1.0}, "errors": {"x": 2}}),
            json!({"params": {"rate": 5}, "latency_ms": {"p99": 2.0}, "errors": {}}),
        ];
        let rows = summarize(&runs);
        assert_eq!(
            rows,
            vec![Spread {
                metric: "latency_ms.p99".into(),
                median: 2.0,
                min: 1.0,
                max: 3.0
            }]
        );
        let md = render_spread(&rows, 3, true);
        assert!(md.contains("| latency_ms.p99 | 2 | 1 | 3 |"), "{md}");
    }

    #[test]
    fn report_renders_and_round_trips() {
        let report = Report {
            scenario: "idle".into(),
            target: "127.0.0.1:8080".into(),
            gateway: Some(GatewayUsage {
                pid: 7,
                rss_before_bytes: 10 << 20,
                rss_loaded_bytes: 20 << 20,
                bytes_per_connection: Some(10_485.76),
                ..GatewayUsage::default()
            }),
            ..Report::default()
        };
        let text = report.render();
        assert!(text.contains("10.2 KiB per connection"), "{text}");
        assert!(text.contains("errors        none"), "{text}");
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.gateway.unwrap().pid, 7);
    }
}
