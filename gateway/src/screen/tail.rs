//! The digits a conversation's last message ended with, so that a card number typed
//! across two or more messages (`my card is 4111 1111`, then `1111 1111`) is caught
//! in the message that completes it.

use std::fmt;

use super::scan::{Carry, Gap, Group};

/// Per-conversation state for [`Screen::scan_continuing`](super::Screen::scan_continuing).
///
/// It holds at most the last [`ConversationTail::MAX_DIGITS`] digits of the previous
/// message, and only when that message ended with them (separators aside). It holds
/// card digits, so it prints only how many it holds, and overwrites them when they
/// are dropped.
#[derive(Default)]
pub struct ConversationTail {
    groups: Vec<Group>,
    trailing: Gap,
}

impl ConversationTail {
    /// A card number has at most 19 digits and the next message must bring at least
    /// one of them.
    pub const MAX_DIGITS: usize = 18;

    pub fn new() -> ConversationTail {
        ConversationTail::default()
    }

    /// Forgets the carried digits, for instance when the conversation goes quiet
    /// long enough that the next message is no continuation.
    pub fn clear(&mut self) {
        for g in &mut self.groups {
            g.wipe();
        }
        self.groups.clear();
        self.trailing = Gap::default();
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many digits are carried.
    pub fn digits(&self) -> usize {
        self.groups.iter().map(|g| g.len).sum()
    }

    pub(super) fn trailing(&self) -> Gap {
        self.trailing
    }

    /// Hands the carried groups to the scanner, leaving the tail empty.
    pub(super) fn take_groups(&mut self) -> Vec<Group> {
        self.trailing = Gap::default();
        std::mem::take(&mut self.groups)
    }

    pub(super) fn replace(&mut self, carry: Carry) {
        self.clear();
        self.groups = carry.groups;
        self.trailing = carry.trailing;
    }
}

impl fmt::Debug for ConversationTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationTail")
            .field("digits", &self.digits())
            .finish()
    }
}

impl Drop for ConversationTail {
    fn drop(&mut self) {
        self.clear();
    }
}
