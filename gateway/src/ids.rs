//! Identifier newtypes. Every id that crosses a module boundary has its own type so a
//! ticket id can never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A ticket: the unit of work in the queue.
    TicketId
);
id_type!(
    /// A conversation: the ordered messages of one ticket.
    ConversationId
);
id_type!(
    /// A staff account (agent, lead, supervisor, approver, admin).
    UserId
);
id_type!(
    /// A customer, as known to one site.
    CustomerId
);
id_type!(
    /// An internal note on a ticket.
    NoteId
);
id_type!(
    /// A file attached to a conversation.
    AttachmentId
);

/// Position of a message in its conversation: 1, 2, 3, … without gaps.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Seq(pub i64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One WebSocket connection on this node; never stored, never sent to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

id_type!(
    /// An access request and, once approved, the grant it became.
    GrantId
);
