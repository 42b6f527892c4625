//! Anomaly alerts: the support desk as an early-warning system. Every audit entry passes
//! through [`Detector::observe`], which keeps short sliding windows in memory and raises an
//! [`Alert`] when a rule's threshold is crossed:
//!
//! - `pii_access_burst`: one staff member read or revealed the data of many distinct
//!   customers in the window (warning; critical at twice the threshold);
//! - `pii_access_off_hours`: customer data read or revealed outside the working hours (info);
//! - `failed_verifications`: repeated wrong codes against one customer (warning);
//! - `risky_request_burst`: the same risky request (a password reset…) flagged on many
//!   tickets in the window (warning);
//! - `card_numbers_blocked`: many card numbers blocked from one customer (warning).
//!
//! An alert is written to the audit log (`anomaly_alert`), sent live to supervisors and admins
//! (`security_alert`), and POSTed to the webhook if one is configured, signed with
//! HMAC-SHA256 over `timestamp.body`. The same rule and subject alert once per window.

use crate::clock::Timestamp;
use crate::ids::{CustomerId, TicketId};
use crate::store::AuditRecord;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Level> {
        [Level::Info, Level::Warning, Level::Critical]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// `[alerts]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
    pii_customers: Option<usize>,
    working_hours: Option<String>,
    failed_verifications: Option<usize>,
    risky_requests: Option<usize>,
    blocked_cards: Option<usize>,
    webhook_url: Option<String>,
    webhook_secret: Option<SecretString>,
    webhook_secret_file: Option<PathBuf>,
}

/// Thresholds (0 switches a rule off) and the webhook.
#[derive(Clone, Debug)]
pub struct AlertsConfig {
    /// The sliding window every count is over.
    pub window: Duration,
    /// Distinct customers one staff member reads or reveals in the window.
    pub pii_customers: usize,
    /// UTC hours `[start, end)` in which reading customer data is usual; `None`: any time.
    pub working_hours: Option<(u32, u32)>,
    /// Wrong verification codes against one customer in the window.
    pub failed_verifications: usize,
    /// Tickets flagged for the same risky request in the window.
    pub risky_requests: usize,
    /// Card numbers blocked from one customer in the window.
    pub blocked_cards: usize,
    pub webhook: Option<Webhook>,
}

#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub secret: SecretString,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            window: Duration::from_secs(600),
            pii_customers: 20,
            working_hours: None,
            failed_verifications: 5,
            risky_requests: 5,
            blocked_cards: 3,
            webhook: None,
        }
    }
}

impl AlertsFile {
    pub fn into_config(self) -> Result<AlertsConfig, String> {
        let mut c = AlertsConfig::default();
        if let Some(w) = self.window {
            if w < Duration::from_secs(1) {
                return Err("window must be at least 1s".into());
            }
            c.window = w;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            pii_customers,
            failed_verifications,
            risky_requests,
            blocked_cards
        );
        if let Some(h) = self.working_hours {
            c.working_hours = Some(parse_hours(&h)?);
        }
        let secret = match (self.webhook_secret, self.webhook_secret_file) {
            (Some(_), Some(_)) => {
                return Err("give webhook_secret or webhook_secret_file, not both".into())
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(SecretString::from(text.trim().to_string()))
            }
            (None, None) => None,
        };
        c.webhook = match (self.webhook_url, secret) {
            (Some(url), Some(secret)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("webhook_url `{url}` must be an http(s) URL"));
                }
                if secret.expose_secret().len() < 16 {
                    return Err("the webhook secret must be at least 16 characters".into());
                }
                Some(Webhook { url, secret })
            }
            (None, None) => None,
            _ => return Err("give webhook_url together with its secret".into()),
        };
        Ok(c)
    }
}

/// `07:00-19:00` (UTC, whole hours).
fn parse_hours(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("working_hours `{text}`: write it as 07:00-19:00 (UTC)");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let hour = |s: &str| -> Result<u32, String> {
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let h: u32 = h.parse().map_err(|_| bad())?;
        if m != "00" || h > 24 {
            return Err(bad());
        }
        Ok(h)
    };
    let (start, end) = (hour(a)?, hour(b)?);
    if start == end {
        return Err(bad());
    }
    Ok((start, end))
}

/// An alert from a rule; the same fields as the `security_alert` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    pub rule: &'static str,
    pub level: Level,
    pub actor: Option<i64>,
    pub customer: Option<CustomerId>,
    pub ticket: Option<TicketId>,
    pub message: String,
}

#[derive(Default)]
struct Windows {
    /// (rule, subject) → (time, item) seen in the window.
    seen: HashMap<(&'static str, String), VecDeque<(i64, String)>>,
    /// (rule, subject, level) → when it last alerted.
    fired: HashMap<(&'static str, String, Level), i64>,
}

pub struct Detector {
    config: AlertsConfig,
    windows: Mutex<Windows>,
}

/// Actions that read or reveal one customer's data.
const PII_ACTIONS: [&str; 4] = [
    "pii_revealed",
    "customer_read",
    "transcript_read",
    "customer_data_copied",
];

impl Detector {
    pub fn new(config: AlertsConfig) -> Detector {
        Detector {
            config,
            windows: Mutex::new(Windows::default()),
        }
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The alerts this new audit entry raises (none, usually).
    pub fn observe(&self, r: &AuditRecord) -> Vec<Raised> {
        let e = &r.entry;
        let mut out = Vec::new();
        let c = &self.config;
        let customer = e.customer_id.map(CustomerId);
        let ticket = e
            .object
            .as_ref()
            .filter(|o| o.kind == "ticket")
            .map(|o| TicketId(o.id));
        let Ok(mut w) = self.windows.lock() else {
            return out;
        };
        let window_ms = c.window.as_millis() as i64;
        let action = e.action.as_str();
        if PII_ACTIONS.contains(&action) && e.outcome == "allowed" {
            if let (Some(actor), Some(cust)) = (e.actor_id, e.customer_id) {
                if c.pii_customers > 0 {
                    let n = w.count(
                        "pii_access_burst",
                        &actor.to_string(),
                        e.at,
                        window_ms,
                        cust,
                    );
                    for (level, at_least) in [
                        (Level::Warning, c.pii_customers),
                        (Level::Critical, c.pii_customers * 2),
                    ] {
                        if n >= at_least
                            && w.fire(
                                "pii_access_burst",
                                &actor.to_string(),
                                level,
                                e.at,
                                window_ms,
                            )
                        {
                            out.push(Raised {
                                rule: "pii_access_burst",
                                level,
                                actor: Some(actor),
                                customer: None,
                                ticket: None,
                                message: format!(
                                    "Staff user {actor} read or revealed the data of {n} customers within {}.",
                                    humantime::format_duration(c.window)
                                ),
                            });
                        }
                    }
                }
                if let Some((start, end)) = c.working_hours {
                    let hour = ((e.at.div_euclid(3_600_000)) % 24) as u32;
                    let inside = if start < end {
                        hour >= start && hour < end
                    } else {
                        hour >= start || hour < end
                    };
                    if !inside
                        && w.fire(
                            "pii_access_off_hours",
                            &actor.to_string(),
                            Level::Info,
                            e.at,
                            window_ms,
                        )
                    {
                        out.push(Raised {
                            rule: "pii_access_off_hours",
                            level: Level::Info,
                            actor: Some(actor),
                            customer,
                            ticket,
                            message: format!(
                                "Staff user {actor} read customer {cust}'s data at {hour:02}:xx UTC, outside working hours {start:02}:00-{end:02}:00."
                            ),
                        });
                    }
                }
            }
        }
        if action == "verification_failed" && c.failed_verifications > 0 {
            if let Some(cust) = e.customer_id {
                let n = w.count(
                    "failed_verifications",
                    &cust.to_string(),
                    e.at,
                    window_ms,
                    r.seq,
                );
                if n >= c.failed_verifications
                    && w.fire(
                        "failed_verifications",
                        &cust.to_string(),
                        Level::Warning,
                        e.at,
                        window_ms,
                    )
                {
                    out.push(Raised {
                        rule: "failed_verifications",
                        level: Level::Warning,
                        actor: None,
                        customer,
                        ticket,
                        message: format!(
                            "{n} failed verifications against customer {cust} within {}: someone may be guessing codes.",
                            humantime::format_duration(c.window)
                        ),
                    });
                }
            }
        }
        if action == "ticket_flagged" && c.risky_requests > 0 {
            let what = e.detail.clone().unwrap_or_else(|| "risky request".into());
            if let Some(t) = ticket {
                let n = w.count("risky_request_burst", &what, e.at, window_ms, t.0);
                if n >= c.risky_requests
                    && w.fire(
                        "risky_request_burst",
                        &what,
                        Level::Warning,
                        e.at,
                        window_ms,
                    )
                {
                    out.push(Raised {
                        rule: "risky_request_burst",
                        level: Level::Warning,
                        actor: None,
                        customer: None,
                        ticket: Some(t),
                        message: format!(
                            "{n} tickets asked for the same risky request ({what}) within {}: a social-engineering campaign may be under way.",
                            humantime::format_duration(c.window)
                        ),
                    });
                }
            }
        }
        if action == "card_number_blocked" && c.blocked_cards > 0 {
            if let Some(cust) = e.customer_id {
                let n = w.count(
                    "card_numbers_blocked",
                    &cust.to_string(),
                    e.at,
                    window_ms,
                    r.seq,
                );
                if n >= c.blocked_cards
                    && w.fire(
                        "card_numbers_blocked",
                        &cust.to_string(),
                        Level::Warning,
                        e.at,
                        window_ms,
                    )
                {
                    out.push(Raised {
                        rule: "card_numbers_blocked",
                        level: Level::Warning,
                        actor: None,
                        customer,
                        ticket,
                        message: format!(
                            "{n} card numbers blocked from customer {cust} within {}: card testing or a confused customer.",
                            humantime::format_duration(c.window)
                        ),
                    });
                }
            }
        }
        out
    }
}

impl Windows {
    /// Adds `item` under (rule, subject) at `at`, forgets what left the window, and returns how
    /// many distinct items remain.
    fn count(
        &mut self,
        rule: &'static str,
        subject: &str,
        at: i64,
        window_ms: i64,
        item: impl ToString,
    ) -> usize {
        let q = self.seen.entry((rule, subject.to_string())).or_default();
        q.push_back((at, item.to_string()));
        while q.front().is_some_and(|(t, _)| *t <= at - window_ms) {
            q.pop_front();
        }
        // Keep memory bounded for a very busy subject.
        while q.len() > 10_000 {
            q.pop_front();
        }
        let mut distinct: Vec<&str> = q.iter().map(|(_, i)| i.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len()
    }

    /// Whether to alert now: not if the same rule, subject and level alerted within the window.
    fn fire(
        &mut self,
        rule: &'static str,
        subject: &str,
        level: Level,
        at: i64,
        window_ms: i64,
    ) -> bool {
        let key = (rule, subject.to_string(), level);
        match self.fired.get(&key) {
            Some(last) if at - *last < window_ms => false,
            _ => {
                self.fired.insert(key, at);
                true
            }
        }
    }
}

/// The audit detail of an alert: `level rule: message`.
pub fn detail(r: &Raised) -> String {
    format!("{} {}: {}", r.level.as_str(), r.rule, r.message)
}

/// Reads a detail written by [`detail`] back.
pub fn parse_detail(text: &str) -> Option<(Level, String, String)> {
    let (head, message) = text.split_once(": ")?;
    let (level, rule) = head.split_once(' ')?;
    Some((Level::parse(level)?, rule.to_string(), message.to_string()))
}

/// The webhook's body.
#[derive(Serialize)]
pub struct WebhookBody<'a> {
    pub kind: &'a str,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketId>,
    pub at: Timestamp,
    pub message: &'a str,
    /// The audit entry that records the alert.
    pub audit_seq: Option<i64>,
}

/// `X-Deskgate-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with the secret, of the
/// timestamp (`X-Deskgate-Timestamp`, Unix seconds), a dot, and the body.
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    #[allow(clippy::expect_used)] // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts `body` to the webhook, up to three tries a few seconds apart; failures are logged.
pub fn post(client: reqwest::Client, hook: Webhook, timestamp: i64, body: Vec<u8>) {
    tokio::spawn(async move {
        let signature = sign(&hook.secret, timestamp, &body);
        for attempt in 1..=3u32 {
            let sent = client
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("x-deskgate-timestamp", timestamp.to_string())
                .header("x-deskgate-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(
                    target: "deskgate::security",
                    status = r.status().as_u16(),
                    attempt,
                    "alert webhook refused the alert"
                ),
                Err(e) => tracing::warn!(
                    target: "deskgate::security",
                    error = %e,
                    attempt,
                    "alert webhook unreachable"
                ),
            }
            tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use recorder::audit::{Entry, ObjectRef};

    fn rec(
        seq: i64,
        at: i64,
        action: &str,
        actor: Option<i64>,
        customer: Option<i64>,
    ) -> AuditRecord {
        AuditRecord {
            seq,
            entry: Entry {
                at,
                actor_id: actor,
                actor_role: None,
                action: action.into(),
                outcome: "allowed".into(),
                customer_id: customer,
                object: None,
                detail: None,
                ip: None,
                user_agent: None,
                request_id: None,
                customers: vec![],
            },
            hash: [0; 32],
        }
    }

    #[test]
    fn many_customers_warn_then_go_critical_once_each() {
        let d = Detector::new(AlertsConfig {
            pii_customers: 3,
            ..Default::default()
        });
        let mut levels = Vec::new();
        for i in 0..8 {
            for a in d.observe(&rec(i, 1000 + i, "pii_revealed", Some(7), Some(100 + i))) {
                levels.push((i, a.level));
            }
        }
        assert_eq!(levels, vec![(2, Level::Warning), (5, Level::Critical)]);
        // The same customer again and again is one customer.
        let d = Detector::new(AlertsConfig {
            pii_customers: 3,
            ..Default::default()
        });
        for i in 0..10 {
            assert!(d
                .observe(&rec(i, 1000 + i, "customer_read", Some(7), Some(1)))
                .is_empty());
        }
    }

    #[test]
    fn the_window_forgets() {
        let d = Detector::new(AlertsConfig {
            blocked_cards: 2,
            window: Duration::from_secs(60),
            ..Default::default()
        });
        assert!(d
            .observe(&rec(1, 0, "card_number_blocked", None, Some(5)))
            .is_empty());
        assert!(d
            .observe(&rec(2, 61_000, "card_number_blocked", None, Some(5)))
            .is_empty());
        assert_eq!(
            d.observe(&rec(3, 62_000, "card_number_blocked", None, Some(5)))
                .len(),
            1
        );
    }

    #[test]
    fn off_hours_reads_are_info() {
        let d = Detector::new(AlertsConfig {
            working_hours: Some(parse_hours("07:00-19:00").unwrap()),
            ..Default::default()
        });
        // 1970-01-01 03:00 UTC.
        let mut r = rec(1, 3 * 3_600_000, "pii_revealed", Some(7), Some(1));
        r.entry.object = Some(ObjectRef::new("ticket", 4));
        let a = d.observe(&r);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].level, Level::Info);
        assert!(d
            .observe(&rec(2, 12 * 3_600_000, "pii_revealed", Some(8), Some(1)))
            .is_empty());
        assert!(parse_hours("7-19").is_err());
        assert_eq!(parse_hours("22:00-06:00").unwrap(), (22, 6));
    }

    #[test]
    fn details_read_back_and_signatures_are_over_timestamp_and_body() {
        let r = Raised {
            rule: "card_numbers_blocked",
            level: Level::Warning,
            actor: None,
            customer: None,
            ticket: None,
            message: "3 card numbers: blocked".into(),
        };
        let (level, rule, message) = parse_detail(&detail(&r)).unwrap();
        assert_eq!(
            (level, rule.as_str(), message.as_str()),
            (
                Level::Warning,
                "card_numbers_blocked",
                "3 card numbers: blocked"
            )
        );
        let secret = SecretString::from("0123456789abcdef".to_string());
        let a = sign(&secret, 1700000000, b"{}");
        assert_ne!(a, sign(&secret, 1700000001, b"{}"));
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
    }
}
