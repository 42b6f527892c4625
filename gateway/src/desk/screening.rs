//! The card-number screen in the message path: every chat message and note is screened before
//! it is stored; one that carries a card number is replaced by a placeholder, and the event is
//! recorded without the number.
//!
//! A card number split over consecutive messages is caught through a [`ConversationTail`] per
//! conversation and side, kept on this node (a customer's consecutive messages reach one node in
//! all but a reconnect to another node between them).

use crate::ids::{ConversationId, CustomerId, TicketId, UserId};
use crate::screen::{ConversationTail, Finding, Screen};
use std::collections::HashMap;
use std::sync::Mutex;

/// What stands in the conversation instead of a withheld message.
pub const PLACEHOLDER: &str = "Message withheld: it contained a payment card number.";

/// Tails kept at most; past this they are all dropped (each holds at most 18 digits, so the
/// bound is about memory, and dropping them only forgets a half-typed split number).
const MAX_TAILS: usize = 200_000;

/// Whose consecutive messages a tail follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TailKey {
    /// A customer's messages (to their open conversation).
    Customer(CustomerId),
    /// One agent's messages in one ticket.
    Agent(TicketId, UserId),
}

#[derive(Default)]
pub struct Screening {
    screen: Screen,
    tails: Mutex<HashMap<TailKey, ConversationTail>>,
}

impl Screening {
    /// Screens the next message of `key`. The tail moves past this message; if the message is
    /// then not stored, call [`Screening::forget`] so the next message does not continue it.
    pub fn check(&self, key: TailKey, text: &str) -> Vec<Finding> {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if tails.len() >= MAX_TAILS && !tails.contains_key(&key) {
            tails.clear();
        }
        let tail = tails.entry(key).or_default();
        let verdict = self.screen.scan_continuing(tail, text);
        if verdict.is_blocked() {
            // The withheld digits must not combine with what comes next.
            tail.clear();
        }
        verdict.into_findings()
    }

    /// Screens text that is not part of a conversation's flow (an internal note).
    pub fn check_alone(&self, text: &str) -> Vec<Finding> {
        self.screen.scan(text).into_findings()
    }

    pub fn forget(&self, key: TailKey) {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        tails.remove(&key);
    }
}

/// Records a withheld message as a security event: who, where, which brands; never the number.
pub fn record_blocked(
    findings: &[Finding],
    author: &'static str,
    author_id: i64,
    ticket: Option<TicketId>,
    conversation: Option<ConversationId>,
) {
    let brands: Vec<&str> = findings.iter().map(|f| f.brand().id()).collect();
    tracing::warn!(
        target: "deskgate::security",
        event = "card_number_blocked",
        author,
        author_id,
        ticket = ticket.map(|t| t.0),
        conversation = conversation.map(|c| c.0),
        brands = ?brands,
        count = findings.len(),
        "message withheld: payment card number"
    );
}
