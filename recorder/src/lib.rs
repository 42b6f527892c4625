//! recorder: the vault of deskgate. It knows keys, ciphertexts and retention rules; it knows
//! nothing of tickets, sockets or SQL (the gateway stores what this crate produces).
//!
//! Map of the crate:
//! - [`keyring`]: versioned key-encryption keys in a 0600 file outside the database, and the
//!   blind-index key; rotate, retire, save.
//! - [`envelope`]: a random 256-bit data key per owner (conversation, customer, recording),
//!   stored wrapped by a keyring version; unwrap, rewrap.
//! - [`seal`]: AES-256-GCM records with a random nonce and the record's identity (owner,
//!   sequence number, kind) as associated data.
//! - [`stream`]: the STREAM construction for long objects (recordings, exports): fixed-size
//!   segments, counter and last-segment flag in the nonce, random access to one segment.
//! - [`retention`]: per-kind retention policies, legal hold, the crypto-shredding decision.
//! - [`blind`]: keyed blind index for exact-match lookups of sealed values.
//! - [`error`]: the crate's error type.

pub mod blind;
pub mod envelope;
pub mod error;
pub mod keyring;
pub mod retention;
pub mod seal;
pub mod stream;

pub use envelope::{DataKey, Owner, WrappedKey};
pub use error::{Error, Result};
pub use keyring::{KeyVersion, Keyring, Opened};
pub use seal::{open, open_string, seal, seal_str, RecordId, RecordKind};
