//! Abuse limits: token buckets per client address, per visitor and per staff user, for the
//! actions worth flooding (logins, new visitors, messages, verification codes), and the count
//! of WebSocket connections each address holds. Buckets run on the gateway's
//! [`Clock`](crate::clock::Clock), so a refused caller is told exactly when to come back.
//!
//! Every check takes from this node's bucket first. With Redis configured it then takes from
//! the cluster's bucket for the same rule and key ([`redis`]), so a limit of N holds over all
//! nodes together; when Redis does not answer the node-local bucket decides alone (each node
//! then allows up to N by itself) and `/readyz` says not ready: limits never switch off and a
//! check never fails with an error. Connection counts stay per node.

pub mod redis;

use crate::clock::Timestamp;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `count` actions per `per`, refilled evenly; a full bucket allows a burst of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn new(count: u32, per_secs: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(per_secs),
        }
    }

    /// `10/1m`, `5/30s`, `100/1h`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("`{text}`: a rate is written count/period, like 10/1m");
        let (count, per) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
        if count == 0 || per.is_zero() {
            return Err(format!("`{text}`: count and period must be above zero"));
        }
        Ok(Rate { count, per })
    }
}

/// The rules; each has its rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `POST /api/session` from one address.
    LoginPerIp,
    /// `POST /api/session` naming one username.
    LoginPerUser,
    /// `POST /api/visitor` from one address.
    VisitorPerIp,
    /// Chat messages of one customer, over all their sockets.
    MessagesPerVisitor,
    /// Chat messages and notes of one staff user, over all their sockets.
    MessagesPerUser,
    /// Verification codes submitted from one address.
    VerifyPerIp,
    /// Verification codes submitted by one customer.
    VerifyPerVisitor,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::LoginPerIp => "login_per_ip",
            Rule::LoginPerUser => "login_per_user",
            Rule::VisitorPerIp => "visitor_per_ip",
            Rule::MessagesPerVisitor => "messages_per_visitor",
            Rule::MessagesPerUser => "messages_per_user",
            Rule::VerifyPerIp => "verify_per_ip",
            Rule::VerifyPerVisitor => "verify_per_visitor",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates {
    pub login_per_ip: Rate,
    pub login_per_user: Rate,
    pub visitor_per_ip: Rate,
    pub messages_per_visitor: Rate,
    pub messages_per_user: Rate,
    pub verify_per_ip: Rate,
    pub verify_per_visitor: Rate,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            login_per_ip: Rate::new(20, 60),
            login_per_user: Rate::new(10, 300),
            visitor_per_ip: Rate::new(30, 60),
            messages_per_visitor: Rate::new(60, 60),
            messages_per_user: Rate::new(600, 60),
            verify_per_ip: Rate::new(30, 600),
            verify_per_visitor: Rate::new(10, 600),
        }
    }
}

impl Rates {
    pub fn of(&self, rule: Rule) -> Rate {
        match rule {
            Rule::LoginPerIp => self.login_per_ip,
            Rule::LoginPerUser => self.login_per_user,
            Rule::VisitorPerIp => self.visitor_per_ip,
            Rule::MessagesPerVisitor => self.messages_per_visitor,
            Rule::MessagesPerUser => self.messages_per_user,
            Rule::VerifyPerIp => self.verify_per_ip,
            Rule::VerifyPerVisitor => self.verify_per_visitor,
        }
    }
}

/// `[limits]` in the config file: any rule's rate as `"count/period"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesFile {
    login_per_ip: Option<String>,
    login_per_user: Option<String>,
    visitor_per_ip: Option<String>,
    messages_per_visitor: Option<String>,
    messages_per_user: Option<String>,
    verify_per_ip: Option<String>,
    verify_per_visitor: Option<String>,
}

impl RatesFile {
    pub fn merge(self, mut r: Rates) -> Result<Rates, String> {
        for (given, slot) in [
            (self.login_per_ip, &mut r.login_per_ip),
            (self.login_per_user, &mut r.login_per_user),
            (self.visitor_per_ip, &mut r.visitor_per_ip),
            (self.messages_per_visitor, &mut r.messages_per_visitor),
            (self.messages_per_user, &mut r.messages_per_user),
            (self.verify_per_ip, &mut r.verify_per_ip),
            (self.verify_per_visitor, &mut r.verify_per_visitor),
        ] {
            if let Some(text) = given {
                *slot = Rate::parse(&text)?;
            }
        }
        Ok(r)
    }
}

/// Everything about abuse limits in the config.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// `false` turns the rate limits and the per-address connection cap off (load tests, which
    /// come from one address); timeouts and body limits stay.
    pub enabled: bool,
    pub rates: Rates,
    pub max_connections_per_ip: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            rates: Rates::default(),
            max_connections_per_ip: 50,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Refused by a rule: try again after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub rule: Rule,
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds, rounded up, for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let ms = self.retry_after.as_millis() as u64;
        ms.div_ceil(1000).max(1)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: i64,
}

/// Buckets kept before the full ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

/// The buckets and the connection counts of one node.
#[derive(Debug)]
pub struct Limiter {
    config: LimitsConfig,
    buckets: Mutex<HashMap<(Rule, String), Bucket>>,
    connections: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// The cluster's buckets, with Redis.
    shared: Option<redis::Shared>,
}

impl Limiter {
    pub fn new(config: LimitsConfig) -> Limiter {
        Limiter {
            config,
            buckets: Mutex::new(HashMap::new()),
            connections: Arc::new(Mutex::new(HashMap::new())),
            shared: None,
        }
    }

    /// Limits shared by every node through Redis (and node-local when it does not answer).
    pub fn with_redis(config: LimitsConfig, conn: ::redis::aio::ConnectionManager) -> Limiter {
        Limiter {
            shared: Some(redis::Shared::new(conn)),
            ..Limiter::new(config)
        }
    }

    /// Takes one token of `rule` for `key`, from this node's bucket and, with Redis, from the
    /// cluster's; or says how long until one is there.
    pub async fn check(&self, rule: Rule, key: &str, now: Timestamp) -> Result<(), Limited> {
        if !self.config.enabled {
            return Ok(());
        }
        self.check_local(rule, key, now)?;
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        match shared
            .take(rule, key, self.config.rates.of(rule), now)
            .await
        {
            redis::Taken::Granted | redis::Taken::Unreachable => Ok(()),
            redis::Taken::Refused(retry_after) => {
                // Not done: the local token goes back, so a later fallback counts only what
                // happened.
                self.refund_local(rule, key);
                Err(Limited { rule, retry_after })
            }
        }
    }

    /// Whether the limits are what they should be: shared over the cluster when Redis is
    /// configured (asks Redis when the last check could not reach it).
    pub async fn ready(&self) -> bool {
        match &self.shared {
            Some(s) if self.config.enabled => s.probe().await,
            _ => true,
        }
    }

    fn refund_local(&self, rule: Rule, key: &str) {
        let capacity = f64::from(self.config.rates.of(rule).count);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get_mut(&(rule, key.to_string())) {
            b.tokens = (b.tokens + 1.0).min(capacity);
        }
    }

    /// This node's bucket alone.
    fn check_local(&self, rule: Rule, key: &str, now: Timestamp) -> Result<(), Limited> {
        let rate = self.config.rates.of(rule);
        let capacity = f64::from(rate.count);
        let per_ms = capacity / (rate.per.as_millis().max(1) as f64);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            let rates = &self.config.rates;
            buckets.retain(|(r, _), b| {
                let rate = rates.of(*r);
                let refill = (now.0 - b.at) as f64 * f64::from(rate.count)
                    / (rate.per.as_millis().max(1) as f64);
                b.tokens + refill < f64::from(rate.count)
            });
        }
        let b = buckets.entry((rule, key.to_string())).or_insert(Bucket {
            tokens: capacity,
            at: now.0,
        });
        let elapsed = (now.0 - b.at).max(0) as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(capacity);
        b.at = now.0.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - b.tokens) / per_ms).ceil() as u64;
        Err(Limited {
            rule,
            retry_after: Duration::from_millis(wait_ms),
        })
    }

    /// Counts one more WebSocket of `ip`; `None` when it already holds the most allowed.
    /// The count drops when the returned guard does.
    pub fn connect(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut map = self.connections.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if self.config.enabled && *n >= self.config.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            ip,
            connections: self.connections.clone(),
        })
    }
}

/// One counted connection.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    connections: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.connections.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_its_burst_then_refills_evenly() {
        let mut config = LimitsConfig::default();
        config.rates.login_per_ip = Rate::parse("3/1m").unwrap();
        let l = Limiter::new(config);
        let t = Timestamp(1_000_000);
        for _ in 0..3 {
            l.check(Rule::LoginPerIp, "a", t).await.unwrap();
        }
        let refused = l.check(Rule::LoginPerIp, "a", t).await.unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.retry_after_secs(), 20);
        // Another key has its own bucket.
        l.check(Rule::LoginPerIp, "b", t).await.unwrap();
        l.check(Rule::LoginPerIp, "a", t.plus(Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(l
            .check(Rule::LoginPerIp, "a", t.plus(Duration::from_secs(21)))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn switched_off_nothing_is_refused() {
        let mut config = LimitsConfig::default();
        config.rates.login_per_ip = Rate::parse("1/1h").unwrap();
        config.enabled = false;
        let l = Limiter::new(config);
        for _ in 0..10 {
            l.check(Rule::LoginPerIp, "a", Timestamp(0)).await.unwrap();
        }
    }

    #[test]
    fn connection_slots_are_counted_per_address() {
        let config = LimitsConfig {
            max_connections_per_ip: 2,
            ..Default::default()
        };
        let l = Limiter::new(config);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.connect(ip).unwrap();
        let _b = l.connect(ip).unwrap();
        assert!(l.connect(ip).is_none());
        assert!(l.connect("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.connect(ip).is_some());
    }

    #[test]
    fn rates_parse_or_say_how_to_write_them() {
        assert_eq!(Rate::parse("10/1m").unwrap(), Rate::new(10, 60));
        assert!(Rate::parse("10").unwrap_err().contains("count/period"));
        assert!(Rate::parse("0/1m").is_err());
    }
}
