//! Verification state in Redis, for gateways that share one (`--redis-url`): the live
//! challenges and the customers' daily counts of wrong codes, decided by atomic Lua scripts,
//! so that every limit holds over all the nodes at once and no check waits for the database's
//! verification writes, which run alone. What must last stays in the durable store:
//!
//! - an **approved** challenge is recorded there under its own id (at approval, or, if that
//!   write failed, before an action names it), so authorised actions point at a row and a
//!   verification outlives Redis;
//! - every **wrong code** is added to the durable daily count as well, and a count Redis has
//!   lost (a restart without persistence) starts again from it, so the daily cap survives;
//! - the customers' languages, staff TOTP factors and recovery codes are only there.
//!
//! What Redis forgets, it fails closed on: a pending challenge lost in a Redis restart cannot
//! be checked (the customer is asked again). Challenge ids come from one Redis counter that is
//! never below the current time in milliseconds nor the highest id the durable store holds,
//! so a Redis that restarts empty never gives again an id the audit log has seen (unless
//! challenges were made faster than one a millisecond). Keys live a week after their last
//! change, by Redis's own clock (times inside the challenges are the gateway's).
//!
//! The scripts read keys they compute (the challenges of a ticket), which a single Redis, or a
//! primary with replicas, allows; a Redis Cluster does not.

use crate::store::Store;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::OnceCell;
use verify::challenge::millis;
use verify::lockout::{day_of, TotpLimits};
use verify::store::{
    AuthorisedAction, Created, NewChallenge, TotpFactor, VerificationStore, VerifyStoreError,
    VerifyStoreResult,
};
use verify::{Challenge, ChallengeState, CheckOutcome, Checked, Rules};

const NEXT_ID: &str = "deskgate:verify:next";
const CHALLENGE: &str = "deskgate:verify:c:";
/// How long a challenge, a ticket's list and a daily count stay after their last change.
const KEEP_MS: i64 = 7 * 86_400_000;

fn challenge_key(id: i64) -> String {
    format!("{CHALLENGE}{id}")
}

fn ticket_key(ticket: i64) -> String {
    format!("deskgate:verify:t:{ticket}")
}

fn failures_key(customer: i64, day: i64) -> String {
    format!("deskgate:verify:f:{customer}:{day}")
}

/// Cancels the pending challenges of the ticket (KEYS[2]) for the action and stores a new
/// one under the next id (KEYS[1], raised to ARGV[1] first if it is below). ARGV: floor, ticket, customer,
/// agent, action, destination, salt, code hash, now, expires at, ms to keep, key prefix.
/// Returns {id, canceled ids…}.
const CREATE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
local canceled = {}
for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local k = ARGV[12] .. old
  local c = redis.call('HMGET', k, 'state', 'action')
  if c[1] == 'pending' and c[2] == ARGV[5] then
    redis.call('HSET', k, 'state', 'canceled', 'closed_at', ARGV[9])
    table.insert(canceled, tonumber(old))
  end
end
local id = redis.call('INCR', KEYS[1])
local k = ARGV[12] .. id
redis.call('HSET', k, 'id', id, 'ticket', ARGV[2], 'customer', ARGV[3], 'agent', ARGV[4],
  'action', ARGV[5], 'state', 'pending', 'attempts', 0, 'resends', 0, 'destination', ARGV[6],
  'salt', ARGV[7], 'code_hash', ARGV[8], 'created_at', ARGV[9], 'sent_at', ARGV[9],
  'expires_at', ARGV[10])
redis.call('PEXPIRE', k, ARGV[11])
redis.call('ZADD', KEYS[2], id, id)
redis.call('PEXPIRE', KEYS[2], ARGV[11])
table.insert(canceled, 1, id)
return canceled
";

/// Replaces the code of the pending challenge KEYS[1] if the rules allow a resend now.
/// ARGV: salt, code hash, now, new expiry, max resends, latest allowed previous send, ms to
/// keep. Returns 1 if resent, else 0.
const RESEND: &str = r"
local c = redis.call('HMGET', KEYS[1], 'state', 'expires_at', 'resends', 'sent_at')
local now = tonumber(ARGV[3])
if c[1] ~= 'pending' or tonumber(c[2]) <= now or tonumber(c[3]) >= tonumber(ARGV[5])
   or tonumber(c[4]) > tonumber(ARGV[6]) then
  return 0
end
redis.call('HSET', KEYS[1], 'salt', ARGV[1], 'code_hash', ARGV[2], 'resends', tonumber(c[3]) + 1,
  'sent_at', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
";

/// One check of challenge KEYS[1] for the customer whose count of wrong codes today is
/// KEYS[2]. ARGV: right (1/0), now, verified until, max attempts, daily cap, the durable
/// count (empty if not read), ms to keep. Returns {outcome, failures today, attempts left,
/// state}: `locked`, `approved`, `wrong`, `max_attempts`, `missing` or `not_pending` (with
/// the state); or `seed` if Redis has no count for the day and ARGV[6] is empty: the caller
/// reads the durable count and checks again with it, which starts Redis's count.
const CHECK: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[6] == '' then
    return {'seed', '0', '0', ''}
  end
  redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[7])
end
local today = tonumber(redis.call('GET', KEYS[2]))
if today >= tonumber(ARGV[5]) then
  return {'locked', tostring(today), '0', ''}
end
local c = redis.call('HMGET', KEYS[1], 'state', 'expires_at', 'attempts')
if not c[1] then
  return {'missing', tostring(today), '0', ''}
end
local now = tonumber(ARGV[2])
local max = tonumber(ARGV[4])
local attempts = tonumber(c[3])
if c[1] == 'pending' and tonumber(c[2]) > now and attempts < max then
  if ARGV[1] == '1' then
    redis.call('HSET', KEYS[1], 'state', 'approved', 'verified_until', ARGV[3], 'closed_at', now)
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
    return {'approved', tostring(today), '0', 'approved'}
  end
  attempts = attempts + 1
  today = redis.call('INCR', KEYS[2])
  if attempts >= max then
    redis.call('HSET', KEYS[1], 'attempts', attempts, 'state', 'max_attempts', 'closed_at', now)
    return {'max_attempts', tostring(today), '0', 'max_attempts'}
  end
  redis.call('HSET', KEYS[1], 'attempts', attempts)
  return {'wrong', tostring(today), tostring(max - attempts), 'pending'}
end
if c[1] == 'pending' then
  redis.call('HSET', KEYS[1], 'state', 'expired', 'closed_at', c[2])
  return {'not_pending', tostring(today), '0', 'expired'}
end
return {'not_pending', tostring(today), '0', c[1]}
";

pub struct RedisVerification {
    conn: redis::aio::ConnectionManager,
    durable: Arc<dyn Store>,
    /// The durable store's highest challenge id, read once: Redis numbers above it.
    durable_max: OnceCell<i64>,
}

fn unavailable(e: redis::RedisError) -> VerifyStoreError {
    VerifyStoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &str) -> VerifyStoreError {
    VerifyStoreError::Unavailable(format!("redis: corrupt challenge ({what})"))
}

/// A challenge from its Redis hash; `None` for a hash that is gone.
fn challenge_from(fields: HashMap<String, Vec<u8>>) -> VerifyStoreResult<Option<Challenge>> {
    if fields.is_empty() {
        return Ok(None);
    }
    let text = |name: &str| -> VerifyStoreResult<String> {
        let v = fields.get(name).ok_or_else(|| corrupt(name))?;
        String::from_utf8(v.clone()).map_err(|_| corrupt(name))
    };
    let int =
        |name: &str| -> VerifyStoreResult<i64> { text(name)?.parse().map_err(|_| corrupt(name)) };
    let count = |name: &str| -> VerifyStoreResult<u32> {
        Ok(u32::try_from(int(name)?).unwrap_or(u32::MAX))
    };
    let bytes = |name: &str| -> VerifyStoreResult<Vec<u8>> {
        fields.get(name).cloned().ok_or_else(|| corrupt(name))
    };
    Ok(Some(Challenge {
        id: int("id")?,
        ticket: int("ticket")?,
        customer: int("customer")?,
        agent: int("agent")?,
        action: text("action")?,
        state: text("state")?
            .parse::<ChallengeState>()
            .map_err(|_| corrupt("state"))?,
        attempts: count("attempts")?,
        resends: count("resends")?,
        created_at: int("created_at")?,
        sent_at: int("sent_at")?,
        expires_at: int("expires_at")?,
        verified_until: match fields.get("verified_until") {
            Some(_) => Some(int("verified_until")?),
            None => None,
        },
        destination: text("destination")?,
        salt: bytes("salt")?,
        code_hash: bytes("code_hash")?,
    }))
}

impl RedisVerification {
    pub fn new(conn: redis::aio::ConnectionManager, durable: Arc<dyn Store>) -> Self {
        Self {
            conn,
            durable,
            durable_max: OnceCell::new(),
        }
    }

    fn durable(&self) -> &dyn VerificationStore {
        self.durable.verification()
    }

    /// The least the next id may be: see the module's notes.
    async fn floor(&self, now: i64) -> VerifyStoreResult<i64> {
        let durable = self
            .durable_max
            .get_or_try_init(|| self.durable().max_challenge_id())
            .await?;
        Ok(now.max(*durable))
    }

    /// The challenge's hash as Redis holds it (empty if gone).
    async fn fields(&self, id: i64) -> VerifyStoreResult<HashMap<String, Vec<u8>>> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(challenge_key(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn load(&self, id: i64) -> VerifyStoreResult<Option<Challenge>> {
        challenge_from(self.fields(id).await?)
    }

    /// The ticket's challenges still in Redis, newest first.
    async fn of_ticket(&self, ticket: i64) -> VerifyStoreResult<Vec<Challenge>> {
        let mut conn = self.conn.clone();
        let ids: Vec<i64> = redis::cmd("ZREVRANGE")
            .arg(ticket_key(ticket))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(challenge_key(*id));
        }
        let all: Vec<HashMap<String, Vec<u8>>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(all.len());
        for fields in all {
            out.extend(challenge_from(fields)?);
        }
        Ok(out)
    }

    /// Keeps a decided challenge in the durable store, closed when Redis says it was.
    async fn record(&self, id: i64) -> VerifyStoreResult<()> {
        let fields = self.fields(id).await?;
        let closed_at = fields
            .get("closed_at")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .ok_or_else(|| corrupt("closed_at"))?;
        let challenge = challenge_from(fields)?.ok_or(VerifyStoreError::NotFound)?;
        self.durable().record_challenge(&challenge, closed_at).await
    }

    /// Runs [`CHECK`] with the durable count of the day, if it is given.
    async fn run_check(
        &self,
        (id, customer, day): (i64, i64, i64),
        right: bool,
        now: i64,
        rules: &Rules,
        durable_today: Option<u32>,
    ) -> VerifyStoreResult<(String, u32, u32, String)> {
        let mut conn = self.conn.clone();
        redis::cmd("EVAL")
            .arg(CHECK)
            .arg(2)
            .arg(challenge_key(id))
            .arg(failures_key(customer, day))
            .arg(if right { 1 } else { 0 })
            .arg(now)
            .arg(now + millis(rules.verified_for))
            .arg(i64::from(rules.max_attempts))
            .arg(i64::from(rules.daily_failure_cap))
            .arg(durable_today.map(|n| n.to_string()).unwrap_or_default())
            .arg(KEEP_MS)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl VerificationStore for RedisVerification {
    async fn create_challenge(&self, n: NewChallenge) -> VerifyStoreResult<Created> {
        let floor = self.floor(n.now).await?;
        let mut conn = self.conn.clone();
        let ids: Vec<i64> = redis::cmd("EVAL")
            .arg(CREATE)
            .arg(2)
            .arg(NEXT_ID)
            .arg(ticket_key(n.ticket))
            .arg(floor)
            .arg(n.ticket)
            .arg(n.customer)
            .arg(n.agent)
            .arg(&n.action)
            .arg(&n.destination)
            .arg(&n.salt[..])
            .arg(&n.code_hash[..])
            .arg(n.now)
            .arg(n.expires_at)
            .arg(KEEP_MS)
            .arg(CHALLENGE)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let (&id, canceled) = ids.split_first().ok_or_else(|| corrupt("no id"))?;
        let challenge = self.load(id).await?.ok_or(VerifyStoreError::NotFound)?;
        Ok(Created {
            challenge,
            canceled: canceled.to_vec(),
        })
    }

    async fn challenge(&self, id: i64) -> VerifyStoreResult<Challenge> {
        match self.load(id).await? {
            Some(c) => Ok(c),
            // Gone from Redis: an approval is still in the durable record.
            None => self.durable().challenge(id).await,
        }
    }

    async fn pending_challenges(&self, ticket: i64, now: i64) -> VerifyStoreResult<Vec<Challenge>> {
        let mut all = self.of_ticket(ticket).await?;
        all.retain(|c| c.state == ChallengeState::Pending && c.expires_at > now);
        Ok(all)
    }

    async fn latest_challenges(&self, ticket: i64) -> VerifyStoreResult<Vec<Challenge>> {
        let mut latest: HashMap<String, Challenge> = HashMap::new();
        // The durable record first (approvals Redis may have forgotten), then Redis's own.
        let recorded = self.durable().latest_challenges(ticket).await?;
        for c in recorded.into_iter().chain(self.of_ticket(ticket).await?) {
            match latest.get(&c.action) {
                Some(have) if have.id >= c.id => {}
                _ => {
                    latest.insert(c.action.clone(), c);
                }
            }
        }
        let mut out: Vec<Challenge> = latest.into_values().collect();
        out.sort_by(|a, b| a.action.cmp(&b.action));
        Ok(out)
    }

    async fn resend(
        &self,
        id: i64,
        salt: &[u8],
        code_hash: &[u8],
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Option<Challenge>> {
        let mut conn = self.conn.clone();
        let resent: i64 = redis::cmd("EVAL")
            .arg(RESEND)
            .arg(1)
            .arg(challenge_key(id))
            .arg(salt)
            .arg(code_hash)
            .arg(now)
            .arg(now + millis(rules.code_ttl))
            .arg(i64::from(rules.max_resends))
            .arg(now - millis(rules.resend_cooldown))
            .arg(KEEP_MS)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if resent == 1 {
            self.load(id).await
        } else {
            Ok(None)
        }
    }

    async fn check(
        &self,
        id: i64,
        customer: i64,
        right: bool,
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Checked> {
        let key = (id, customer, day_of(now));
        let mut checked = self.run_check(key, right, now, rules, None).await?;
        if checked.0 == "seed" {
            // Redis has no count for the day (its first check, or Redis lost it): it starts
            // from the durable one.
            let durable = self.durable().customer_failures(customer, key.2).await?;
            checked = self
                .run_check(key, right, now, rules, Some(durable))
                .await?;
        }
        let (outcome, today, left, state) = checked;
        let outcome = match outcome.as_str() {
            "locked" => CheckOutcome::Locked,
            "approved" => CheckOutcome::Approved {
                verified_until: now + millis(rules.verified_for),
            },
            "wrong" => CheckOutcome::Wrong {
                attempts_left: left,
            },
            "max_attempts" => CheckOutcome::MaxAttempts,
            "not_pending" => CheckOutcome::NotPending(state.parse().map_err(|_| corrupt("state"))?),
            // Not in Redis: recorded in the durable store (decided), or unknown.
            _ => {
                let c = self.durable().challenge(id).await?;
                CheckOutcome::NotPending(c.state_at(now))
            }
        };
        match outcome {
            CheckOutcome::Wrong { .. } | CheckOutcome::MaxAttempts => {
                // Redis has counted it already; the durable count is what survives Redis.
                if let Err(e) = self.durable().add_customer_failure(customer, key.2).await {
                    tracing::warn!(error = %e, "a wrong verification code was counted in Redis only");
                }
            }
            CheckOutcome::Approved { .. } => {
                if let Err(e) = self.record(id).await {
                    tracing::warn!(error = %e, "an approval is in Redis only until the action records it");
                }
            }
            _ => {}
        }
        Ok(Checked {
            outcome,
            failures_today: today,
        })
    }

    async fn live_verification(
        &self,
        ticket: i64,
        action: &str,
        now: i64,
    ) -> VerifyStoreResult<Option<Challenge>> {
        let live = self.of_ticket(ticket).await?.into_iter().find(|c| {
            c.action == action
                && c.state == ChallengeState::Approved
                && c.verified_until.is_some_and(|u| u > now)
        });
        match live {
            Some(c) => Ok(Some(c)),
            None => self.durable().live_verification(ticket, action, now).await,
        }
    }

    async fn record_action(
        &self,
        ticket: i64,
        action: &str,
        agent: i64,
        challenge: i64,
        now: i64,
    ) -> VerifyStoreResult<AuthorisedAction> {
        // The action names the challenge: it must be in the durable record first (recorded at
        // approval, unless that write failed).
        match self.durable().challenge(challenge).await {
            Ok(_) => {}
            Err(VerifyStoreError::NotFound) => match self.record(challenge).await {
                Ok(()) | Err(VerifyStoreError::NotFound) => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
        self.durable()
            .record_action(ticket, action, agent, challenge, now)
            .await
    }

    async fn set_customer_language(
        &self,
        customer: i64,
        language: &str,
        now: i64,
    ) -> VerifyStoreResult<()> {
        self.durable()
            .set_customer_language(customer, language, now)
            .await
    }

    async fn customer_language(&self, customer: i64) -> VerifyStoreResult<Option<String>> {
        self.durable().customer_language(customer).await
    }

    async fn customer_failures(&self, customer: i64, day: i64) -> VerifyStoreResult<u32> {
        let mut conn = self.conn.clone();
        let live: Option<u32> = redis::cmd("GET")
            .arg(failures_key(customer, day))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let durable = self.durable().customer_failures(customer, day).await?;
        Ok(live.unwrap_or(0).max(durable))
    }

    async fn add_customer_failure(&self, customer: i64, day: i64) -> VerifyStoreResult<u32> {
        self.durable().add_customer_failure(customer, day).await
    }

    async fn max_challenge_id(&self) -> VerifyStoreResult<i64> {
        let mut conn = self.conn.clone();
        let next: Option<i64> = redis::cmd("GET")
            .arg(NEXT_ID)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(next
            .unwrap_or(0)
            .max(self.durable().max_challenge_id().await?))
    }

    async fn record_challenge(&self, c: &Challenge, closed_at: i64) -> VerifyStoreResult<()> {
        self.durable().record_challenge(c, closed_at).await
    }

    async fn totp_factor(&self, user: i64) -> VerifyStoreResult<Option<TotpFactor>> {
        self.durable().totp_factor(user).await
    }

    async fn begin_totp(&self, user: i64, sealed_seed: &[u8], now: i64) -> VerifyStoreResult<bool> {
        self.durable().begin_totp(user, sealed_seed, now).await
    }

    async fn reserve_totp_attempt(
        &self,
        user: i64,
        now: i64,
        limits: &TotpLimits,
    ) -> VerifyStoreResult<Option<TotpFactor>> {
        self.durable().reserve_totp_attempt(user, now, limits).await
    }

    async fn accept_totp_step(&self, user: i64, step: i64, now: i64) -> VerifyStoreResult<bool> {
        self.durable().accept_totp_step(user, step, now).await
    }

    async fn delete_totp(&self, user: i64) -> VerifyStoreResult<bool> {
        self.durable().delete_totp(user).await
    }

    async fn put_recovery_codes(
        &self,
        user: i64,
        hashes: &[[u8; 32]],
        now: i64,
    ) -> VerifyStoreResult<()> {
        self.durable().put_recovery_codes(user, hashes, now).await
    }

    async fn use_recovery_code(&self, user: i64, hash: &[u8], now: i64) -> VerifyStoreResult<bool> {
        self.durable().use_recovery_code(user, hash, now).await
    }

    async fn recovery_codes_left(&self, user: i64) -> VerifyStoreResult<u32> {
        self.durable().recovery_codes_left(user).await
    }
}
