//! recorder: the vault of deskgate. It knows keys, ciphertexts, grant rules and the audit
//! chain; it knows nothing of tickets, sockets or SQL (the gateway stores what this crate
//! produces).
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
//! - [`file`]: sealed files (exports, outbox mails): a wrapped data key in the header, then a
//!   STREAM, opened with the keyring alone.
//! - [`retention`]: per-kind retention policies, legal hold, the crypto-shredding decision.
//! - [`blind`]: keyed blind index for exact-match lookups of sealed values.
//! - [`audit`]: the audit entry model, its canonical encoding, the hash chain over entries,
//!   Ed25519-signed checkpoints with the key kept apart from the database, and the verifier
//!   that names the first entry that was edited, deleted, reordered or inserted.
//! - [`grant`]: access grants to closed objects (transcripts now, recordings later) as pure
//!   rules: request, review (never one's own), expiry of requests and of access, revocation.
//! - [`error`]: the crate's error type.

pub mod audit;
pub mod blind;
pub mod envelope;
pub mod error;
pub mod file;
pub mod grant;
pub mod keyring;
pub mod retention;
pub mod seal;
pub mod stream;

pub use envelope::{DataKey, Owner, WrappedKey};
pub use error::{Error, Result};
pub use keyring::{KeyVersion, Keyring, Opened};
pub use seal::{open, open_string, seal, seal_str, RecordId, RecordKind};
