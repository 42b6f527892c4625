//! Where each live call is held, for the other nodes of a cluster. A call lives on the node its
//! customer's leg reached; with Redis, that node writes where it is under three keys, one per
//! way the call is asked for (its id, its ticket, its customer), each holding the same
//! [`Home`] as JSON:
//!
//! - `{deskgate:calls}:call:<call id>`
//! - `{deskgate:calls}:ticket:<ticket id>`
//! - `{deskgate:calls}:customer:<customer id>`
//!
//! They expire after [`TTL`] and the node rewrites them every third of it, so the calls of a
//! node killed without a goodbye drop out by themselves, and a Redis restarted empty is filled
//! in again. A call that ends removes its keys, unless they already name another call. A node
//! asked for a call it does not hold (the agent's leg, the call API, a payment's pause) reads
//! the key and relays to the node it names ([`super::relay`]). Without Redis, or without a URL
//! the other nodes can reach this one at, nothing is written and calls stay on their node.

use super::Call;
use crate::ids::{CustomerId, TicketId};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a node's calls stay listed without being rewritten.
pub const TTL: Duration = Duration::from_secs(30);
/// Longest a directory read or write waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const PREFIX: &str = "{deskgate:calls}:";

/// Deletes each key that still holds ARGV[1]: a call that ended takes away its own entries,
/// never those of a call that took its ticket or customer since.
const FORGET: &str = r"
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
";

/// Where a live call is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    pub call: String,
    /// The URL of the node holding it (its `node_url`).
    pub node: String,
    pub ticket: TicketId,
    pub customer: CustomerId,
}

/// Why the directory could not say where a call is.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the call directory is unavailable: {0}")]
pub struct Unavailable(String);

/// This node's view of the cluster's calls.
pub struct Directory {
    redis: Option<redis::aio::ConnectionManager>,
    /// This node's URL, set once its listener is bound.
    me: OnceLock<String>,
}

fn call_key(id: &str) -> String {
    format!("{PREFIX}call:{id}")
}

fn ticket_key(t: TicketId) -> String {
    format!("{PREFIX}ticket:{}", t.0)
}

fn customer_key(c: CustomerId) -> String {
    format!("{PREFIX}customer:{}", c.0)
}

impl Directory {
    pub fn new(redis: Option<redis::aio::ConnectionManager>) -> Directory {
        Directory {
            redis,
            me: OnceLock::new(),
        }
    }

    /// The URL the other nodes reach this one at; calls are listed from now on.
    pub fn set_node(&self, url: String) {
        let _ = self.me.set(url);
    }

    /// This node's URL, when its calls are listed for the others.
    pub fn node(&self) -> Option<&str> {
        self.redis.as_ref().and(self.me.get().map(String::as_str))
    }

    fn home(&self, call: &Call) -> Option<String> {
        let home = Home {
            call: call.id.clone(),
            node: self.node()?.to_string(),
            ticket: call.ticket,
            customer: call.customer,
        };
        serde_json::to_string(&home).ok()
    }

    /// Lists (or lists again) calls held here, for [`TTL`].
    pub async fn announce(&self, calls: &[Arc<Call>]) -> Result<(), Unavailable> {
        let Some(redis) = &self.redis else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        for call in calls {
            let Some(home) = self.home(call) else {
                return Ok(());
            };
            let ttl = TTL.as_millis() as u64;
            for key in [
                call_key(&call.id),
                ticket_key(call.ticket),
                customer_key(call.customer),
            ] {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(&home)
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
            }
        }
        let mut conn = redis.clone();
        timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// Takes an ended call off the list.
    pub async fn forget(&self, call: &Call) -> Result<(), Unavailable> {
        let (Some(redis), Some(home)) = (&self.redis, self.home(call)) else {
            return Ok(());
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(FORGET)
            .arg(3)
            .arg(call_key(&call.id))
            .arg(ticket_key(call.ticket))
            .arg(customer_key(call.customer))
            .arg(home);
        let mut conn = redis.clone();
        timed(cmd.query_async::<i64>(&mut conn)).await.map(|_| ())
    }

    async fn read(&self, key: String) -> Result<Option<Home>, Unavailable> {
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        let mut conn = redis.clone();
        let text = timed(
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn),
        )
        .await?;
        // An entry this node wrote is no call elsewhere: it is one that just ended here.
        Ok(text
            .and_then(|t| serde_json::from_str::<Home>(&t).ok())
            .filter(|h| self.me.get() != Some(&h.node)))
    }

    /// The node holding call `id`, if it is another one.
    pub async fn find(&self, id: &str) -> Result<Option<Home>, Unavailable> {
        self.read(call_key(id)).await
    }

    /// The call going on in a ticket on another node.
    pub async fn of_ticket(&self, ticket: TicketId) -> Result<Option<Home>, Unavailable> {
        self.read(ticket_key(ticket)).await
    }

    /// A customer's call on another node.
    pub async fn of_customer(&self, customer: CustomerId) -> Result<Option<Home>, Unavailable> {
        self.read(customer_key(customer)).await
    }

    /// Rewrites this node's calls every third of [`TTL`] until shutdown.
    pub fn spawn_refresh(calls: Arc<super::Calls>, shutdown: CancellationToken) {
        if calls.directory.node().is_none() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TTL / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let live = calls.all();
                if live.is_empty() {
                    continue;
                }
                if let Err(e) = calls.directory.announce(&live).await {
                    tracing::warn!(error = %e, calls = live.len(), "cannot list this node's calls; other nodes cannot relay to them");
                }
            }
        });
    }
}

async fn timed<T>(
    query: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(REDIS_TIMEOUT, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Unavailable(e.to_string())),
        Err(_) => Err(Unavailable("Redis did not answer in time".into())),
    }
}
