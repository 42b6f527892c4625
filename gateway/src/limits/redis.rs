//! The buckets shared by every node through Redis: one hash per rule and key, taken from by an
//! atomic Lua script (a token bucket refilled evenly, as the node-local one), expiring once it
//! would be full again, so idle keys cost Redis nothing.
//!
//! Rules checked once per chat frame take a small lease of tokens at a time and spend it in
//! memory, so a busy socket costs one round trip per lease, not per frame. Leased tokens are
//! taken from the shared bucket: a node never spends more than it was granted, so the limit
//! holds over the cluster; a sender spread over several nodes can at worst be refused a few
//! tokens early (those parked in another node's lease). Leases lapse after [`LEASE_FOR`].
//!
//! Redis unreachable: [`Shared::take`] says so at once, the caller's node-local bucket alone
//! decides (it is always taken from first), and [`Shared::reachable`] turns `/readyz` to not
//! ready. After a failure Redis is not asked again for [`RETRY_AFTER`], so a dead Redis does not
//! add its timeout to every request.

use super::{Rate, Rule};
use crate::clock::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Longest a check waits for Redis before the node-local bucket decides alone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// After a failure, how long checks skip Redis before trying it again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long leased tokens may be spent before they lapse.
pub const LEASE_FOR: Duration = Duration::from_secs(10);
/// Leases in memory before lapsed ones are dropped.
const MAX_LEASES: usize = 100_000;

/// Takes up to ARGV[4] whole tokens from the bucket KEYS[1] of capacity ARGV[1], refilled by
/// ARGV[2] tokens per ms, at time ARGV[3] (ms). Returns {granted, ms until one is there}.
/// Time never runs backwards for a bucket (a node whose clock lags cannot refill it).
const TAKE: &str = r"
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(cap, tokens + (now - at) * rate)
  at = now
end
local got = math.min(want, math.floor(tokens))
local wait = 0
if got >= 1 then
  tokens = tokens - got
else
  got = 0
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'at', at)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((cap - tokens) / rate)))
return {got, wait}
";

/// What the shared bucket said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    Granted,
    /// Empty: a token is there again after this long.
    Refused(Duration),
    /// Redis did not answer; the node-local bucket decides alone.
    Unreachable,
}

struct Lease {
    tokens: u32,
    until: Timestamp,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("reachable", &self.reachable())
            .finish_non_exhaustive()
    }
}

pub struct Shared {
    conn: redis::aio::ConnectionManager,
    leases: Mutex<HashMap<(Rule, String), Lease>>,
    /// The last call to Redis went through (or a probe since did).
    reachable: AtomicBool,
    /// Set after a failure: Redis is left alone until then.
    retry_at: Mutex<Option<tokio::time::Instant>>,
}

/// Tokens a node leases at once for `rule`: one for the rare actions, so those are exact
/// over the cluster; a few for per-frame rules.
pub fn lease_size(rule: Rule, rate: Rate) -> u32 {
    match rule {
        Rule::MessagesPerVisitor | Rule::MessagesPerUser => (rate.count / 20).clamp(1, 16),
        _ => 1,
    }
}

/// The Redis key of a bucket. The key (an address, a username) is hashed: Redis holds no
/// client addresses or names in clear.
fn redis_key(rule: Rule, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!(
        "deskgate:limit:{}:{}",
        rule.as_str(),
        hex::encode(&digest[..16])
    )
}

impl Shared {
    pub fn new(conn: redis::aio::ConnectionManager) -> Shared {
        Shared {
            conn,
            leases: Mutex::default(),
            reachable: AtomicBool::new(true),
            retry_at: Mutex::new(None),
        }
    }

    /// Whether the last check reached Redis.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Asks Redis whether it answers (for `/readyz`); a failure also spares the next checks
    /// the wait, a success lets them use Redis again at once.
    pub async fn probe(&self) -> bool {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {
                self.recovered();
                true
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                false
            }
            Err(_) => {
                self.failed("Redis did not answer in time");
                false
            }
        }
    }

    fn recovered(&self) {
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!("rate limits: Redis answers again; buckets are shared");
        }
        *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn failed(&self, why: &str) {
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                "rate limits: Redis unreachable; node-local buckets only"
            );
        }
        *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now() + RETRY_AFTER);
    }

    /// Takes one token of `rule` for `key` from the shared bucket, from this node's lease when
    /// it has one.
    pub async fn take(&self, rule: Rule, key: &str, rate: Rate, now: Timestamp) -> Taken {
        let size = lease_size(rule, rate);
        if size > 1 && self.spend_lease(rule, key, now) {
            return Taken::Granted;
        }
        if let Some(at) = *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) {
            if tokio::time::Instant::now() < at {
                return Taken::Unreachable;
            }
        }
        let per_ms = f64::from(rate.count) / (rate.per.as_millis().max(1) as f64);
        let mut conn = self.conn.clone();
        let mut call = redis::cmd("EVAL");
        call.arg(TAKE)
            .arg(1)
            .arg(redis_key(rule, key))
            .arg(rate.count)
            .arg(format!("{per_ms:.17e}"))
            .arg(now.0)
            .arg(size);
        let call = call.query_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok((got, wait))) => {
                self.recovered();
                if got < 1 {
                    return Taken::Refused(Duration::from_millis(wait.max(1) as u64));
                }
                if got > 1 {
                    self.keep_lease(rule, key, (got - 1) as u32, now);
                }
                Taken::Granted
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                Taken::Unreachable
            }
            Err(_) => {
                self.failed("Redis did not answer in time");
                Taken::Unreachable
            }
        }
    }

    fn spend_lease(&self, rule: Rule, key: &str, now: Timestamp) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let Some(l) = leases.get_mut(&(rule, key.to_string())) else {
            return false;
        };
        if l.tokens == 0 || now.0 >= l.until.0 {
            leases.remove(&(rule, key.to_string()));
            return false;
        }
        l.tokens -= 1;
        true
    }

    fn keep_lease(&self, rule: Rule, key: &str, tokens: u32, now: Timestamp) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases.len() >= MAX_LEASES {
            leases.retain(|_, l| l.tokens > 0 && now.0 < l.until.0);
        }
        leases.insert(
            (rule, key.to_string()),
            Lease {
                tokens,
                until: now.plus(LEASE_FOR),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_per_frame_rules_lease_more_than_one_token() {
        assert_eq!(lease_size(Rule::LoginPerIp, Rate::new(1000, 60)), 1);
        assert_eq!(lease_size(Rule::VisitorPerIp, Rate::new(1000, 60)), 1);
        assert_eq!(lease_size(Rule::MessagesPerVisitor, Rate::new(60, 60)), 3);
        assert_eq!(lease_size(Rule::MessagesPerUser, Rate::new(600, 60)), 16);
        assert_eq!(lease_size(Rule::MessagesPerUser, Rate::new(5, 60)), 1);
    }

    #[test]
    fn bucket_keys_hold_no_address_in_clear() {
        let k = redis_key(Rule::LoginPerIp, "192.0.2.7");
        assert!(k.starts_with("deskgate:limit:login_per_ip:"));
        assert!(!k.contains("192.0.2.7"));
        assert_eq!(k, redis_key(Rule::LoginPerIp, "192.0.2.7"));
        assert_ne!(k, redis_key(Rule::LoginPerUser, "192.0.2.7"));
    }
}
