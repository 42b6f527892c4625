//! The node-local hub: which connection follows which topic, fan-out of arriving events to
//! them, and which agents are online ([`Presence`], this node's or the cluster's).
//!
//! Fan-out never waits on a connection: each one has a bounded queue, and a connection whose
//! queue is full is told to close (code 4009) instead of slowing everyone else down. The one
//! exception is the live queue view: it is state, not a log, so a `queue` event that finds the
//! queue half full is dropped and the connection is told to send a fresh snapshot of the queue
//! once it catches up ([`ConnCtl::take_queue_lag`]); the other half stays free for the
//! connection's own conversations. A burst of new tickets thus never costs an agent
//! their console.

use crate::bus::{Bus, BusError, Event, Side, Topic};
use crate::ids::{ConnId, UserId};
use crate::presence::{OnlineAgent, Presence};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// Close code for a connection that does not read fast enough.
pub const CLOSE_TOO_SLOW: u16 = 4009;

/// How the hub reaches one connection.
#[derive(Clone)]
pub struct Subscriber {
    pub conn: ConnId,
    pub side: Side,
    pub tx: mpsc::Sender<Arc<Event>>,
    pub ctl: Arc<ConnCtl>,
}

/// Out-of-band control of one connection: asks its task to close with a code.
#[derive(Debug, Default)]
pub struct ConnCtl {
    close: AtomicU16,
    notify: Notify,
    /// A `queue` event was dropped because the queue of frames was full.
    queue_lagged: AtomicBool,
}

impl ConnCtl {
    /// Asks the connection to close; the first code asked for wins. True for that first ask.
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .close
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            self.notify.notify_one();
        }
        first
    }

    /// Notes that a `queue` event did not fit; true for the first since the last take.
    fn lag_queue(&self) -> bool {
        !self.queue_lagged.swap(true, Ordering::SeqCst)
    }

    /// Whether a `queue` event was dropped since the last call (clearing it): the
    /// connection's queue view is stale and needs a snapshot. Asked on every turn of a
    /// connection's loop, so the common answer is a plain read that writes nothing.
    pub fn take_queue_lag(&self) -> bool {
        self.queue_lagged.load(Ordering::Relaxed) && self.queue_lagged.swap(false, Ordering::SeqCst)
    }

    /// Waits until a close is asked for and returns its code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.close.load(Ordering::SeqCst);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

const SHARDS: usize = 32;

/// Local followers by topic, sharded so that busy conversations do not contend on one lock.
pub struct Registry {
    shards: Vec<Mutex<HashMap<Topic, Vec<Subscriber>>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Connections closed because their queue filled up.
    pub slow_closed: AtomicU64,
    /// Times a connection's queue view fell behind and was resent whole.
    pub queue_lags: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            slow_closed: AtomicU64::new(0),
            queue_lags: AtomicU64::new(0),
        }
    }
}

impl Registry {
    fn shard(&self, topic: &Topic) -> &Mutex<HashMap<Topic, Vec<Subscriber>>> {
        &self.shards[(self.hasher.hash_one(topic) as usize) % SHARDS]
    }

    /// Adds a follower; true if it is the topic's first on this node.
    fn add(&self, topic: Topic, sub: Subscriber) -> bool {
        let mut map = self.shard(&topic).lock().unwrap_or_else(|p| p.into_inner());
        let subs = map.entry(topic).or_default();
        if subs.iter().any(|s| s.conn == sub.conn) {
            return false;
        }
        subs.push(sub);
        subs.len() == 1
    }

    /// Removes a follower; true if the topic has no follower left on this node.
    fn remove(&self, topic: Topic, conn: ConnId) -> bool {
        let mut map = self.shard(&topic).lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = map.get_mut(&topic) else {
            return false;
        };
        subs.retain(|s| s.conn != conn);
        if subs.is_empty() {
            map.remove(&topic);
            true
        } else {
            false
        }
    }

    /// Closes every local connection with `code` (events were missed: they resume from the
    /// store).
    pub fn close_all(&self, code: u16) {
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|p| p.into_inner());
            for s in map.values().flatten() {
                s.ctl.close(code);
            }
        }
    }

    /// Hands the event to every local follower it is meant for, without waiting.
    pub fn deliver(&self, event: Arc<Event>) {
        let map = self
            .shard(&event.topic)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(subs) = map.get(&event.topic) else {
            return;
        };
        for s in subs {
            if Some(s.conn) == event.skip || !event.audience.admits(s.side) {
                continue;
            }
            // The queue view may fill half the queue at most, so that a burst of queue events
            // never leaves a connection without room for its own conversations.
            if event.topic == Topic::Queue && s.tx.capacity() <= s.tx.max_capacity() / 2 {
                if s.ctl.lag_queue() {
                    self.queue_lags.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = s.tx.try_send(event.clone()) {
                // Events keep coming until the connection has left; count it once.
                if s.ctl.close(CLOSE_TOO_SLOW) {
                    self.slow_closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The hub: the registry plus the bus that brings events from other nodes.
#[derive(Clone)]
pub struct Hub {
    pub registry: Arc<Registry>,
    bus: Arc<dyn Bus>,
    pub presence: Arc<Presence>,
    next_conn: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(registry: Arc<Registry>, bus: Arc<dyn Bus>) -> Hub {
        Self::with_presence(registry, bus, Arc::new(Presence::local()))
    }

    pub fn with_presence(
        registry: Arc<Registry>,
        bus: Arc<dyn Bus>,
        presence: Arc<Presence>,
    ) -> Hub {
        Hub {
            registry,
            bus,
            presence,
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    pub async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.bus.publish(event).await
    }

    pub async fn follow(&self, topic: Topic, sub: Subscriber) -> Result<(), BusError> {
        if self.registry.add(topic, sub) {
            self.bus.listen(topic).await?;
        }
        Ok(())
    }

    pub async fn unfollow(&self, topic: Topic, conn: ConnId) {
        if self.registry.remove(topic, conn) {
            // A bus that cannot drop the topic now will deliver events no one takes; harmless.
            let _ = self.bus.unlisten(topic).await;
        }
    }

    /// Whether any connection on this node follows the topic (a customer's tabs, say).
    pub fn is_followed(&self, topic: Topic) -> bool {
        let map = self
            .registry
            .shard(&topic)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(&topic).is_some_and(|subs| !subs.is_empty())
    }

    pub fn bus_ready(&self) -> bool {
        self.bus.ready()
    }

    /// An agent connection opened on this node.
    pub fn agent_online(&self, user: UserId) {
        self.presence.online(user);
    }

    /// An agent connection closed on this node.
    pub fn agent_offline(&self, user: UserId) {
        self.presence.offline(user);
    }

    /// Agents with at least one open console, in id order (over every node with Redis).
    pub async fn online_agents(&self) -> Vec<OnlineAgent> {
        self.presence.agents().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{memory::MemoryBus, Audience};
    use crate::ids::ConversationId;

    fn sub(id: u64, side: Side, cap: usize) -> (Subscriber, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(cap);
        (
            Subscriber {
                conn: ConnId(id),
                side,
                tx,
                ctl: Arc::new(ConnCtl::default()),
            },
            rx,
        )
    }

    #[tokio::test]
    async fn fans_out_by_audience_and_closes_a_full_follower_only() {
        let registry = Arc::new(Registry::default());
        let hub = Hub::new(registry.clone(), Arc::new(MemoryBus::new(registry)));
        let topic = Topic::Conversation(ConversationId(1));
        let (customer, mut crx) = sub(1, Side::Customer, 8);
        let (agent, mut arx) = sub(2, Side::Staff, 8);
        let (slow, _srx) = sub(3, Side::Staff, 1);
        let slow_ctl = slow.ctl.clone();
        hub.follow(topic, customer).await.unwrap();
        hub.follow(topic, agent).await.unwrap();
        hub.follow(topic, slow).await.unwrap();

        hub.publish(Event::new(topic, Audience::Staff, "note".into()))
            .await
            .unwrap();
        hub.publish(Event::new(topic, Audience::Everyone, "msg".into()))
            .await
            .unwrap();

        assert_eq!(crx.recv().await.unwrap().frame.as_deref(), Some("msg"));
        assert_eq!(arx.recv().await.unwrap().frame.as_deref(), Some("note"));
        assert_eq!(arx.recv().await.unwrap().frame.as_deref(), Some("msg"));
        assert_eq!(slow_ctl.closed().await, CLOSE_TOO_SLOW);
    }

    #[tokio::test]
    async fn queue_events_fill_half_a_queue_then_ask_for_a_snapshot_instead_of_closing() {
        let registry = Arc::new(Registry::default());
        let hub = Hub::new(registry.clone(), Arc::new(MemoryBus::new(registry.clone())));
        let conversation = Topic::Conversation(ConversationId(1));
        let (console, mut rx) = sub(1, Side::Staff, 8);
        let ctl = console.ctl.clone();
        hub.follow(Topic::Queue, console.clone()).await.unwrap();
        hub.follow(conversation, console).await.unwrap();

        for i in 0..20 {
            let frame = format!("upsert {i}");
            hub.publish(Event::new(Topic::Queue, Audience::Staff, frame.into()))
                .await
                .unwrap();
        }
        // The other half is still there for the console's own conversations.
        for i in 0..4 {
            let frame = format!("msg {i}");
            hub.publish(Event::new(conversation, Audience::Everyone, frame.into()))
                .await
                .unwrap();
        }
        assert_eq!(registry.queue_lags.load(Ordering::Relaxed), 1);
        assert_eq!(registry.slow_closed.load(Ordering::Relaxed), 0);
        assert!(ctl.take_queue_lag(), "a snapshot is due");
        assert!(!ctl.take_queue_lag(), "once");
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            got.push(ev.frame.as_deref().unwrap_or_default().to_string());
        }
        let want = [
            "upsert 0", "upsert 1", "upsert 2", "upsert 3", "msg 0", "msg 1", "msg 2", "msg 3",
        ];
        assert_eq!(got, want);

        // A conversation event that does not fit still closes the connection.
        for i in 0..9 {
            let frame = format!("more {i}");
            hub.publish(Event::new(conversation, Audience::Everyone, frame.into()))
                .await
                .unwrap();
        }
        assert_eq!(ctl.closed().await, CLOSE_TOO_SLOW);
    }
}
