//! recorder: the vault of deskgate. It knows nothing of the gateway: no HTTP, no store, no
//! sockets; the gateway hands it plain values and stores what it returns.
//!
//! Map of the crate:
//! - [`audit`]: the audit entry model, its canonical encoding, the hash chain over entries,
//!   Ed25519-signed checkpoints with the key kept apart from the database, and the verifier
//!   that names the first entry that was edited, deleted, reordered or inserted.
//! - [`grant`]: access grants to closed objects (transcripts now, recordings later) as pure
//!   rules: request, review (never one's own), expiry of requests and of access, revocation.

pub mod audit;
pub mod grant;
