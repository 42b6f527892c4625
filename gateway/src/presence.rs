//! Which agents have a console open. Each node counts its own agents' connections in memory;
//! with Redis configured it also publishes that count there, so auto-assignment, the queue
//! view and the widget's "agent online" see the agents of every node.
//!
//! In Redis each node owns one hash, `{deskgate:presence}:node:<id>` (agent id → open
//! consoles), rewritten whole on every change and at least every third of the TTL, and expiring
//! after the TTL: a node killed without a goodbye drops out by itself. A set of node ids indexes
//! the hashes so a reader never scans the keyspace; both writes and the read are Lua scripts,
//! so a reader never sees half a node. All keys share one hash tag: on a Redis Cluster they
//! live in one slot, which the scripts need.
//!
//! Redis unreachable: the node keeps its own agents (reads fall back to them) and writes again
//! on its next heartbeat, so a restarted Redis is filled in within a third of the TTL.

use crate::ids::UserId;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest a presence read or write waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const INDEX: &str = "{deskgate:presence}:nodes";
const NODE_PREFIX: &str = "{deskgate:presence}:node:";

/// Replaces a node's hash with the pairs given (none: removes the node).
/// KEYS[1] index, KEYS[2] the node's hash; ARGV[1] node id, ARGV[2] TTL in ms, then
/// agent, count pairs.
const WRITE: &str = r"
redis.call('DEL', KEYS[2])
if #ARGV > 2 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 3))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[1], ARGV[1])
else
  redis.call('SREM', KEYS[1], ARGV[1])
end
return 1
";

/// Every live node's pairs, flattened; forgets nodes whose hash has expired.
/// KEYS[1] index; ARGV[1] the prefix of a node's hash.
const READ: &str = r"
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = redis.call('HGETALL', ARGV[1] .. node)
  if #h == 0 then
    redis.call('SREM', KEYS[1], node)
  else
    for i = 1, #h do out[#out + 1] = h[i] end
  end
end
return out
";

/// One agent with a console open somewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OnlineAgent {
    #[schema(value_type = i64)]
    pub id: UserId,
    /// Open consoles over all nodes.
    pub connections: u32,
    /// Nodes holding them.
    pub nodes: u32,
}

struct Shared {
    conn: redis::aio::ConnectionManager,
    node: String,
    ttl: Duration,
    /// Wakes the heartbeat when this node's agents change.
    changed: Notify,
}

/// Agents online: this node's, and with Redis the cluster's.
pub struct Presence {
    local: Mutex<BTreeMap<UserId, u32>>,
    shared: Option<Shared>,
}

impl Presence {
    /// One node: presence is what this node sees.
    pub fn local() -> Presence {
        Presence {
            local: Mutex::default(),
            shared: None,
        }
    }

    /// Published into Redis under a random node id, expiring after `ttl` without a heartbeat.
    pub fn redis(conn: redis::aio::ConnectionManager, ttl: Duration) -> Presence {
        Presence {
            local: Mutex::default(),
            shared: Some(Shared {
                conn,
                node: format!("{:016x}", rand::random::<u64>()),
                ttl,
                changed: Notify::new(),
            }),
        }
    }

    /// Whether other nodes' agents are seen too.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// How often the heartbeat refreshes this node's entry.
    pub fn heartbeat_every(&self) -> Option<Duration> {
        self.shared.as_ref().map(|s| s.ttl / 3)
    }

    pub fn online(&self, user: UserId) {
        let mut p = self.local.lock().unwrap_or_else(|p| p.into_inner());
        *p.entry(user).or_default() += 1;
        drop(p);
        if let Some(s) = &self.shared {
            s.changed.notify_one();
        }
    }

    pub fn offline(&self, user: UserId) {
        let mut p = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = p.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                p.remove(&user);
            }
        }
        drop(p);
        if let Some(s) = &self.shared {
            s.changed.notify_one();
        }
    }

    fn here(&self) -> Vec<(UserId, u32)> {
        let p = self.local.lock().unwrap_or_else(|p| p.into_inner());
        p.iter().map(|(u, n)| (*u, *n)).collect()
    }

    fn as_agents(pairs: impl IntoIterator<Item = (UserId, u32)>) -> Vec<OnlineAgent> {
        let mut all: BTreeMap<UserId, OnlineAgent> = BTreeMap::new();
        for (id, n) in pairs {
            let a = all.entry(id).or_insert(OnlineAgent {
                id,
                connections: 0,
                nodes: 0,
            });
            a.connections += n;
            a.nodes += 1;
        }
        all.into_values().collect()
    }

    /// Agents with at least one open console, in id order: over the cluster with Redis, this
    /// node's alone without it or while Redis does not answer.
    pub async fn agents(&self) -> Vec<OnlineAgent> {
        let Some(s) = &self.shared else {
            return Self::as_agents(self.here());
        };
        let mut conn = s.conn.clone();
        let read = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("EVAL")
                .arg(READ)
                .arg(1)
                .arg(INDEX)
                .arg(NODE_PREFIX)
                .query_async::<Vec<String>>(&mut conn),
        )
        .await;
        match read {
            Ok(Ok(flat)) => {
                let pairs = flat
                    .chunks_exact(2)
                    .filter_map(|kv| Some((UserId(kv[0].parse().ok()?), kv[1].parse().ok()?)));
                Self::as_agents(pairs)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "presence: Redis read failed; this node's agents only");
                Self::as_agents(self.here())
            }
            Err(_) => {
                tracing::warn!("presence: Redis did not answer; this node's agents only");
                Self::as_agents(self.here())
            }
        }
    }

    /// Writes this node's agents to Redis (or removes the node when it has none).
    async fn publish(s: &Shared, pairs: &[(UserId, u32)]) -> Result<(), String> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(WRITE)
            .arg(2)
            .arg(INDEX)
            .arg(format!("{NODE_PREFIX}{}", s.node))
            .arg(&s.node)
            .arg(s.ttl.as_millis() as u64);
        for (u, n) in pairs {
            cmd.arg(u.0).arg(*n);
        }
        let mut conn = s.conn.clone();
        match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    /// With Redis: keeps this node's entry there until shutdown, then removes it.
    pub fn spawn_heartbeat(self: &std::sync::Arc<Self>, shutdown: CancellationToken) {
        if self.shared.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Some(s) = &me.shared else { return };
            let mut failing = false;
            loop {
                match Self::publish(s, &me.here()).await {
                    Ok(()) if failing => {
                        tracing::info!("presence: published to Redis again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "presence: cannot publish to Redis; retrying");
                        failing = true;
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = s.changed.notified() => {}
                    _ = tokio::time::sleep(s.ttl / 3) => {}
                }
            }
            // A clean stop takes the node's agents out at once rather than after the TTL.
            let _ = Self::publish(s, &[]).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_node_counts_its_own_consoles() {
        let p = Presence::local();
        p.online(UserId(2));
        p.online(UserId(2));
        p.online(UserId(1));
        p.offline(UserId(1));
        let agents = p.agents().await;
        assert_eq!(
            agents,
            [OnlineAgent {
                id: UserId(2),
                connections: 2,
                nodes: 1
            }]
        );
        p.offline(UserId(2));
        p.offline(UserId(2));
        assert!(p.agents().await.is_empty());
    }

    #[test]
    fn the_same_agent_on_two_nodes_is_one_agent() {
        let a = Presence::as_agents([(UserId(3), 1), (UserId(3), 2), (UserId(1), 1)]);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].connections, 3);
        assert_eq!(a[1].nodes, 2);
    }
}
