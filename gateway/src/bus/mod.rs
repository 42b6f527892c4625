//! The bus seam: live events between the gateway's connections, and (with a networked bus)
//! between gateway nodes.
//!
//! A [`Bus`] only carries [`Event`]s between nodes. On each node the [`Hub`](crate::hub::Hub)
//! keeps which local connections follow which [`Topic`] and fans an arriving event out to them,
//! so a node listens to a topic once however many of its sockets follow it (the way Centrifugo
//! separates its broker from its per-node hub).

pub mod memory;
pub mod redis;

use crate::ids::{ConnId, ConversationId, CustomerId, Seq, UserId};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::time::Instant;

/// What a connection can follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Messages, typing, receipts and ticket changes of one conversation.
    Conversation(ConversationId),
    /// All tabs of one customer (a new conversation opened in another tab).
    Customer(CustomerId),
    /// All devices of one staff user (assignments, revocation).
    User(UserId),
    /// Queue changes, for every staff connection.
    Queue,
}

/// Which connections on a topic may see an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    Staff,
    Customers,
}

/// The side a connection is on, matched against an event's [`Audience`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Customer,
    Staff,
}

impl Audience {
    pub fn admits(self, side: Side) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Staff => side == Side::Staff,
            Audience::Customers => side == Side::Customer,
        }
    }
}

/// A change a connection makes to itself when the event reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Start following a conversation; messages up to `after` are already known to the client
    /// or fetched by it on demand.
    Follow {
        conversation: ConversationId,
        ticket: crate::ids::TicketId,
        after: Seq,
    },
    /// Stop following a conversation (the ticket left this agent).
    Unfollow(ConversationId),
    /// Close the connection with this WebSocket close code.
    Close(u16),
}

/// One live event. The frame is serialised once by the publisher and shared by every
/// connection that writes it.
#[derive(Clone, Debug)]
pub struct Event {
    pub topic: Topic,
    pub audience: Audience,
    /// The JSON frame to send, if the event has one.
    pub frame: Option<Arc<str>>,
    /// For conversation messages: lets a connection drop duplicates and fill gaps.
    pub seq: Option<(ConversationId, Seq)>,
    pub effect: Option<Effect>,
    /// The connection that caused the event and should not get it back (typing indicators).
    pub skip: Option<ConnId>,
    /// When the event was published on this node, for the relay-latency histogram.
    pub born: Instant,
}

impl Event {
    pub fn new(topic: Topic, audience: Audience, frame: Arc<str>) -> Event {
        Event {
            topic,
            audience,
            frame: Some(frame),
            seq: None,
            effect: None,
            skip: None,
            born: Instant::now(),
        }
    }

    pub fn effect(topic: Topic, effect: Effect) -> Event {
        Event {
            topic,
            audience: Audience::Everyone,
            frame: None,
            seq: None,
            effect: Some(effect),
            skip: None,
            born: Instant::now(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends the event to every node (this one included) that listens to its topic.
    async fn publish(&self, event: Event) -> Result<(), BusError>;
    /// This node now has a local follower of the topic.
    async fn listen(&self, topic: Topic) -> Result<(), BusError>;
    /// This node has no local follower of the topic any more.
    async fn unlisten(&self, topic: Topic) -> Result<(), BusError>;
    /// Whether the bus is connected, for `/readyz`.
    fn ready(&self) -> bool;
}
