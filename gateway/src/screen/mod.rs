//! The card-number screen: finds payment card numbers (PANs) in chat text, so that a
//! message carrying one is refused before it is stored or delivered.
//!
//! A card number here is 12 to 19 digits that pass the Luhn check and begin with an
//! issuer range of a brand that uses that length. The screen finds one however it
//! is typed: grouped by spaces, dashes, dots or slashes; in the digits of any
//! script; with invisible characters or combining marks between the digits; inside
//! text of any language, JSON, URLs or HTML; right after an unrelated number; or
//! split across the messages of a conversation. It lets through what only looks like
//! one: numbers with the wrong check digit or length, long digit runs, phone
//! numbers, dates, IP addresses, IBANs, UUIDs, identifiers and masked numbers. It
//! reads each message once, in time linear in its length.
//!
//! A [`Finding`] never holds the number itself, only its brand, its place and its
//! masked form (at most the first six and last four digits), so findings may be
//! logged and shown.
//!
//! Module map:
//! - `brands`: the issuer table (brand, leading digits, lengths) and its source;
//! - `unicode`: digits of every script, separators, invisible characters;
//! - `scan`: the single pass over a message, the groupings a card may take;
//! - `context`: what around a candidate shows it is something else;
//! - `pan`: the Luhn check and the masked form;
//! - `finding`: [`Finding`] and [`Verdict`];
//! - `tail`: [`ConversationTail`], the digits carried between messages;
//! - `cli`: `deskgate scan`, JSON lines in and out.
//!
//! The module depends on std, serde and serde_json only.

mod brands;
pub mod cli;
mod context;
mod finding;
mod pan;
mod scan;
mod tail;
mod unicode;

#[cfg(test)]
mod tests;

pub use self::brands::Brand;
pub use self::finding::{Finding, Verdict};
pub use self::pan::MaskedPan;
pub use self::tail::ConversationTail;

/// The card-number screen. It holds no state of its own: build one at start-up and
/// share it; the per-conversation state lives in [`ConversationTail`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Screen {
    _private: (),
}

impl Screen {
    pub const fn new() -> Screen {
        Screen { _private: () }
    }

    /// Screens one message on its own.
    pub fn scan(&self, text: &str) -> Verdict {
        scan::scan(text, None)
    }

    /// Screens the next message of a conversation: a card number begun at the end of
    /// the previous message and completed here is found, with start 0. `tail` is
    /// then updated with what this message ends with.
    pub fn scan_continuing(&self, tail: &mut ConversationTail, text: &str) -> Verdict {
        scan::scan(text, Some(tail))
    }
}
