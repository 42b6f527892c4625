//! The networked bus: events between gateway nodes over Redis pub/sub.
//!
//! Events go to one of [`SHARDS`] channels, `deskgate:bus:<n>`, chosen by conversation (other
//! topics by their own id), so a conversation's events keep their order on one channel.
//! Pub/sub rather than streams: a live event only matters to the sockets open now, and every
//! message is already committed to the database before it is published, so a node that misses
//! events (Redis restarting) loses nothing: its clients get a gap-free replay from the store
//! when they resume (`seq`), and streams would only add trimming and consumer groups.
//!
//! The channels may be spread over several Redis servers (`bus_redis_urls`), each publishing
//! only the channels that fall to it ([`server_of`], over the servers' URLs in sorted order, so
//! the order they are listed in does not matter). Every node subscribes to every channel on
//! every server, so a node whose list is ordered otherwise still hears everything, and its
//! [`Registry`] drops what no local socket follows: `listen`/`unlisten` cost nothing and a
//! reconnect only has to resubscribe. A node delivers its own events locally at once (keeping
//! `skip`, which names a local connection) and ignores them when Redis echoes them back.

use super::{Audience, Bus, BusError, Effect, Event, Topic};
use crate::hub::Registry;
use crate::ids::{ConversationId, CustomerId, Seq, TicketId, UserId};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Channels events are spread over.
pub const SHARDS: u64 = 16;
/// Wait between attempts to reach Redis again.
const RETRY: Duration = Duration::from_millis(500);
/// Longest a publish waits for Redis before the bus counts as unavailable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisBus {
    registry: Arc<Registry>,
    /// The servers the channels are spread over, in the order of their URLs.
    servers: Vec<Server>,
    /// This node's random id, to recognise its own events echoed back.
    node: String,
    _stop: tokio_util::sync::DropGuard,
}

/// One Redis server of the bus.
struct Server {
    publisher: redis::aio::ConnectionManager,
    /// Subscribed to every shard there.
    subscribed: Arc<AtomicBool>,
    /// The last publish there went through (reset when the subscription is made again).
    published: Arc<AtomicBool>,
}

fn channel(shard: u64) -> String {
    format!("deskgate:bus:{shard}")
}

/// The shard of a topic: a conversation's events always travel on the same channel.
pub fn shard_of(topic: &Topic) -> u64 {
    let id = match topic {
        Topic::Conversation(c) => c.0,
        Topic::Customer(c) => c.0,
        Topic::User(u) => u.0,
        Topic::Queue => 0,
    };
    id.unsigned_abs() % SHARDS
}

/// Which of `servers` servers publishes `shard`.
pub fn server_of(shard: u64, servers: usize) -> usize {
    (shard % servers.max(1) as u64) as usize
}

impl RedisBus {
    /// Connects to the Redis servers at `urls` (`redis://host:port/`; at least one) and starts
    /// a subscriber on each, which resubscribes by itself whenever its connection is lost.
    pub async fn connect(urls: &[&str], registry: Arc<Registry>) -> Result<RedisBus, BusError> {
        if urls.is_empty() {
            return Err(BusError::Unavailable("no Redis server for the bus".into()));
        }
        let mut urls = urls.to_vec();
        urls.sort_unstable();
        urls.dedup();
        let node = format!("{:016x}", rand::random::<u64>());
        let stop = CancellationToken::new();
        let mut servers = Vec::with_capacity(urls.len());
        for url in urls {
            let client = redis::Client::open(url)
                .map_err(|e| BusError::Unavailable(format!("invalid Redis URL: {e}")))?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(PUBLISH_TIMEOUT)
                .set_response_timeout(PUBLISH_TIMEOUT)
                .set_number_of_retries(1);
            let publisher = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|e| BusError::Unavailable(format!("cannot reach Redis: {e}")))?;
            let server = Server {
                publisher,
                subscribed: Arc::new(AtomicBool::new(false)),
                published: Arc::new(AtomicBool::new(true)),
            };
            tokio::spawn(subscriber(
                client,
                registry.clone(),
                node.clone(),
                [server.subscribed.clone(), server.published.clone()],
                stop.clone(),
            ));
            servers.push(server);
        }
        Ok(RedisBus {
            registry,
            servers,
            node,
            _stop: stop.drop_guard(),
        })
    }
}

/// Keeps one pub/sub connection to a server subscribed to every shard, reconnecting after
/// any loss.
async fn subscriber(
    client: redis::Client,
    registry: Arc<Registry>,
    node: String,
    [subscribed, published]: [Arc<AtomicBool>; 2],
    stop: CancellationToken,
) {
    let server = client.get_connection_info().addr.to_string();
    let mut lost = false;
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for shard in 0..SHARDS {
                pubsub.subscribe(channel(shard)).await?;
            }
            subscribed.store(true, Ordering::Relaxed);
            // Redis answers again; the next publish finds out whether it still fails.
            published.store(true, Ordering::Relaxed);
            tracing::info!(shards = SHARDS, %server, "bus subscribed to Redis");
            if lost {
                // Events published while the subscription was down never reached this
                // node's sockets: they reconnect and resume from their last `seq`, which the
                // database fills without a gap.
                registry.close_all(crate::protocol::close::SERVICE_RESTART);
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                    continue;
                };
                match decode(&payload) {
                    Some((from, event)) if from != node => registry.deliver(Arc::new(event)),
                    Some(_) => {}
                    None => tracing::warn!("bus: undecodable event from Redis dropped"),
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = session => r,
        };
        subscribed.store(false, Ordering::Relaxed);
        lost = true;
        match outcome {
            Ok(()) => tracing::warn!(%server, "bus: Redis closed the subscription; reconnecting"),
            Err(e) => tracing::warn!(%server, error = %e, "bus: Redis unreachable; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        let payload = encode(&self.node, &event);
        let shard = shard_of(&event.topic);
        self.registry.deliver(Arc::new(event));
        let server = &self.servers[server_of(shard, self.servers.len())];
        let mut conn = server.publisher.clone();
        let sent = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(channel(shard))
                .arg(payload)
                .query_async::<i64>(&mut conn),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                server.published.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                server.published.store(false, Ordering::Relaxed);
                Err(BusError::Unavailable(e.to_string()))
            }
            Err(_) => {
                server.published.store(false, Ordering::Relaxed);
                Err(BusError::Unavailable("Redis did not answer in time".into()))
            }
        }
    }

    async fn listen(&self, _topic: Topic) -> Result<(), BusError> {
        Ok(())
    }

    async fn unlisten(&self, _topic: Topic) -> Result<(), BusError> {
        Ok(())
    }

    fn ready(&self) -> bool {
        self.servers
            .iter()
            .all(|s| s.subscribed.load(Ordering::Relaxed) && s.published.load(Ordering::Relaxed))
    }
}

fn encode(node: &str, e: &Event) -> Vec<u8> {
    let topic = match e.topic {
        Topic::Conversation(c) => json!(["conversation", c.0]),
        Topic::Customer(c) => json!(["customer", c.0]),
        Topic::User(u) => json!(["user", u.0]),
        Topic::Queue => json!(["queue", 0]),
    };
    let audience = match e.audience {
        Audience::Everyone => "everyone",
        Audience::Staff => "staff",
        Audience::Customers => "customers",
    };
    let effect = match &e.effect {
        None => Value::Null,
        Some(Effect::Follow {
            conversation,
            ticket,
            after,
        }) => json!(["follow", conversation.0, ticket.0, after.0]),
        Some(Effect::Unfollow(c)) => json!(["unfollow", c.0]),
        Some(Effect::Close(code)) => json!(["close", code]),
    };
    json!({
        "node": node,
        "topic": topic,
        "audience": audience,
        "frame": e.frame.as_deref(),
        "seq": e.seq.map(|(c, s)| [c.0, s.0]),
        "effect": effect,
    })
    .to_string()
    .into_bytes()
}

/// An event from another node; `skip` names a connection of that node, so it is dropped.
fn decode(payload: &[u8]) -> Option<(String, Event)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let node = v["node"].as_str()?.to_string();
    let id = v["topic"][1].as_i64()?;
    let topic = match v["topic"][0].as_str()? {
        "conversation" => Topic::Conversation(ConversationId(id)),
        "customer" => Topic::Customer(CustomerId(id)),
        "user" => Topic::User(UserId(id)),
        "queue" => Topic::Queue,
        _ => return None,
    };
    let audience = match v["audience"].as_str()? {
        "everyone" => Audience::Everyone,
        "staff" => Audience::Staff,
        "customers" => Audience::Customers,
        _ => return None,
    };
    let effect = match v["effect"][0].as_str() {
        None => None,
        Some("follow") => Some(Effect::Follow {
            conversation: ConversationId(v["effect"][1].as_i64()?),
            ticket: TicketId(v["effect"][2].as_i64()?),
            after: Seq(v["effect"][3].as_i64()?),
        }),
        Some("unfollow") => Some(Effect::Unfollow(ConversationId(v["effect"][1].as_i64()?))),
        Some("close") => Some(Effect::Close(u16::try_from(v["effect"][1].as_u64()?).ok()?)),
        Some(_) => return None,
    };
    let seq = match &v["seq"] {
        Value::Null => None,
        s => Some((ConversationId(s[0].as_i64()?), Seq(s[1].as_i64()?))),
    };
    Some((
        node,
        Event {
            topic,
            audience,
            frame: v["frame"].as_str().map(Arc::from),
            seq,
            effect,
            skip: None,
            born: tokio::time::Instant::now(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_trip_except_its_local_skip() {
        let mut e = Event::new(
            Topic::Conversation(ConversationId(7)),
            Audience::Staff,
            Arc::from("{\"type\":\"message\"}"),
        );
        e.seq = Some((ConversationId(7), Seq(3)));
        e.effect = Some(Effect::Follow {
            conversation: ConversationId(7),
            ticket: TicketId(5),
            after: Seq(2),
        });
        e.skip = Some(crate::ids::ConnId(9));
        let (node, back) = decode(&encode("n1", &e)).expect("decodes");
        assert_eq!(node, "n1");
        assert_eq!(back.topic, e.topic);
        assert_eq!(back.audience, e.audience);
        assert_eq!(back.frame, e.frame);
        assert_eq!(back.seq, e.seq);
        assert_eq!(back.effect, e.effect);
        assert_eq!(back.skip, None);
    }

    #[test]
    fn a_conversation_always_goes_to_the_same_shard() {
        let t = Topic::Conversation(ConversationId(12345));
        assert_eq!(shard_of(&t), shard_of(&t));
        assert!(shard_of(&t) < SHARDS);
        assert!(decode(b"not json").is_none());
    }

    #[test]
    fn the_shards_are_spread_over_every_server() {
        for servers in 1..=5 {
            let used: std::collections::BTreeSet<usize> =
                (0..SHARDS).map(|s| server_of(s, servers)).collect();
            assert_eq!(used, (0..servers).collect(), "{servers} servers");
        }
        assert_eq!(server_of(7, 0), 0);
    }
}
