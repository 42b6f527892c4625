//! Step-up verification: proving that the person in a chat is the customer before an agent
//! does something sensitive, and a second factor for staff logins.
//!
//! Map of the crate:
//! - [`challenge`]: one verification attempt and its states (pending, approved, expired,
//!   canceled, max_attempts), with the [`Rules`] that bound it.
//! - [`code`]: the 6-digit one-time code, kept only as a keyed hash and checked in constant time.
//! - [`store`]: the [`VerificationStore`] seam: where challenges, counters and staff factors live;
//!   every operation is atomic so racing requests have one winner.
//! - [`lockout`]: the per-customer daily failure cap and the staff TOTP failure cap.
//! - [`totp`]: staff TOTP (RFC 6238): enrolment, otpauth URI, QR code, replay-safe checks.
//! - [`recovery`]: one-time recovery codes for a lost authenticator.
//! - [`mail`]: delivery over SMTP (lettre, STARTTLS or implicit TLS) or to a file outbox.
//! - [`template`]: the email a customer receives, in each supported language.
//! - [`risk`]: phrases that flag a ticket's first message for step-up.
//!
//! This crate knows nothing of the gateway: identifiers are plain integers here, and the
//! gateway's store implements [`VerificationStore`].

pub mod challenge;
pub mod code;
pub mod lockout;
pub mod mail;
pub mod recovery;
pub mod risk;
pub mod store;
pub mod template;
pub mod totp;

pub use challenge::{Challenge, ChallengeState, CheckOutcome, Checked, Rules};
pub use code::{Code, CodeKey};
pub use store::{VerificationStore, VerifyStoreError};
