//! The verification state seam: challenges, failure counters and staff factors.
//!
//! The durable implementations are the gateway's SQLite and PostgreSQL stores. With Redis, the
//! live part (challenges and the daily failure counts) is decided there by atomic scripts and
//! the rest stays durable; [`VerificationStore::record_challenge`] and
//! [`VerificationStore::add_customer_failure`] are how the durable store keeps what must
//! outlive Redis. Whatever holds the state must make each operation atomic:
//! attempts are counted by one conditional update, an approval consumes a challenge exactly
//! once, a TOTP step is accepted only if it is later than the last accepted one, a recovery
//! code is used once. Identifiers are the gateway's, as plain integers.

use crate::challenge::{Challenge, Checked, Rules};
use crate::lockout::TotpLimits;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum VerifyStoreError {
    #[error("not found")]
    NotFound,
    #[error("verification store unavailable: {0}")]
    Unavailable(String),
}

pub type VerifyStoreResult<T> = Result<T, VerifyStoreError>;

/// A challenge to create; its code was already sent.
#[derive(Clone, Debug)]
pub struct NewChallenge {
    pub ticket: i64,
    pub customer: i64,
    pub agent: i64,
    pub action: String,
    pub destination: String,
    pub salt: Vec<u8>,
    pub code_hash: Vec<u8>,
    pub now: i64,
    pub expires_at: i64,
}

/// A created challenge and the pending ones for the same ticket and action that it canceled.
#[derive(Clone, Debug)]
pub struct Created {
    pub challenge: Challenge,
    pub canceled: Vec<i64>,
}

/// A staff user's TOTP factor as stored; the seed is sealed (encrypted) by the caller.
#[derive(Clone, Debug)]
pub struct TotpFactor {
    pub user: i64,
    pub sealed_seed: Vec<u8>,
    /// False between enrolment and the first correct code.
    pub confirmed: bool,
    /// The last time step accepted; a code of this step or any earlier one is refused.
    pub last_step: Option<i64>,
    /// Wrong codes since the last right one (an attempt in progress counts as one).
    pub failures: u32,
    pub last_failure_at: Option<i64>,
}

/// A sensitive action the gateway allowed, and the verification that allowed it.
#[derive(Clone, Debug)]
pub struct AuthorisedAction {
    pub id: i64,
    pub ticket: i64,
    pub action: String,
    pub agent: i64,
    pub challenge: i64,
    pub at: i64,
}

#[async_trait]
pub trait VerificationStore: Send + Sync + 'static {
    // --- customer challenges ---------------------------------------------------------------
    /// Cancels every pending challenge of the same ticket and action and stores the new one,
    /// in one transaction.
    async fn create_challenge(&self, new: NewChallenge) -> VerifyStoreResult<Created>;
    async fn challenge(&self, id: i64) -> VerifyStoreResult<Challenge>;
    /// The ticket's challenges that are pending at `now`, newest first.
    async fn pending_challenges(&self, ticket: i64, now: i64) -> VerifyStoreResult<Vec<Challenge>>;
    /// The ticket's latest challenge for each action (for the state agents see).
    async fn latest_challenges(&self, ticket: i64) -> VerifyStoreResult<Vec<Challenge>>;
    /// Replaces the code of a pending challenge after a resend, if the rules still allow one
    /// at `now` (checked in the same statement); `None` if they do not.
    async fn resend(
        &self,
        id: i64,
        salt: &[u8],
        code_hash: &[u8],
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Option<Challenge>>;
    /// Counts one check of the challenge of `customer`. `right` says whether the code matched
    /// the stored hash (compared by the caller in constant time). One transaction decides the
    /// outcome and counts it: it refuses the check (`Locked`) if the customer has reached
    /// `rules.daily_failure_cap` wrong codes today (UTC), counts the attempt with one
    /// conditional update, and adds a wrong one to the customer's daily count. So concurrent
    /// checks, of one challenge or of several of the customer's, never exceed `max_attempts`
    /// or the daily cap, and at most one approves.
    async fn check(
        &self,
        id: i64,
        customer: i64,
        right: bool,
        now: i64,
        rules: &Rules,
    ) -> VerifyStoreResult<Checked>;
    /// The approved, unexpired challenge that verifies the ticket for the action, if any.
    async fn live_verification(
        &self,
        ticket: i64,
        action: &str,
        now: i64,
    ) -> VerifyStoreResult<Option<Challenge>>;
    /// Records that a sensitive action was allowed on the strength of a verification.
    async fn record_action(
        &self,
        ticket: i64,
        action: &str,
        agent: i64,
        challenge: i64,
        now: i64,
    ) -> VerifyStoreResult<AuthorisedAction>;

    // --- the customer's language ------------------------------------------------------------
    /// Remembers the language a customer's code emails are written in (a tag with its own
    /// text, e.g. `ru`); a later call replaces it.
    async fn set_customer_language(
        &self,
        customer: i64,
        language: &str,
        now: i64,
    ) -> VerifyStoreResult<()>;
    async fn customer_language(&self, customer: i64) -> VerifyStoreResult<Option<String>>;

    // --- per-customer failure cap ----------------------------------------------------------
    /// The customer's wrong codes on `day` (days since the epoch, UTC); [`Self::check`] counts
    /// them.
    async fn customer_failures(&self, customer: i64, day: i64) -> VerifyStoreResult<u32>;
    /// Adds one wrong code to the customer's count for `day`; the new count. (For a store that
    /// decides checks elsewhere and keeps the count here too.)
    async fn add_customer_failure(&self, customer: i64, day: i64) -> VerifyStoreResult<u32>;

    // --- the durable record of challenges decided elsewhere --------------------------------
    /// The highest challenge id given or recorded here (0 if none): a store that numbers
    /// challenges elsewhere starts above it.
    async fn max_challenge_id(&self) -> VerifyStoreResult<i64>;
    /// Keeps a challenge decided elsewhere under its own id (an approval, so an authorised
    /// action can name it and it outlasts the live copy); replaces an earlier record of it.
    async fn record_challenge(&self, c: &Challenge, closed_at: i64) -> VerifyStoreResult<()>;

    // --- staff TOTP and recovery codes -----------------------------------------------------
    async fn totp_factor(&self, user: i64) -> VerifyStoreResult<Option<TotpFactor>>;
    /// Starts (or restarts) an enrolment: an unconfirmed factor with this sealed seed. Refused
    /// with `false` if a confirmed factor exists.
    async fn begin_totp(&self, user: i64, sealed_seed: &[u8], now: i64) -> VerifyStoreResult<bool>;
    /// Takes one attempt at the user's factor, if `limits` allow one at `now`: fewer than
    /// `limits.cap` failures and the delay their number calls for passed since the last one.
    /// The attempt is counted as a failure in advance (failures + 1, last failure now) in the
    /// same conditional update, so a burst of parallel attempts can neither exceed the cap nor
    /// skip a delay; a right code clears the count afterwards ([`Self::accept_totp_step`],
    /// [`Self::use_recovery_code`]). Returns the factor as it is after the reservation, or
    /// `None` if no attempt is allowed now (or there is no factor).
    async fn reserve_totp_attempt(
        &self,
        user: i64,
        now: i64,
        limits: &TotpLimits,
    ) -> VerifyStoreResult<Option<TotpFactor>>;
    /// Accepts `step` if it is later than the last accepted one, confirming the factor if it
    /// was not; clears the failure count. False if the step is not later (a replay).
    async fn accept_totp_step(&self, user: i64, step: i64, now: i64) -> VerifyStoreResult<bool>;
    /// Removes the factor and the user's recovery codes; false if there was none.
    async fn delete_totp(&self, user: i64) -> VerifyStoreResult<bool>;
    /// Replaces the user's recovery codes with these keyed hashes.
    async fn put_recovery_codes(
        &self,
        user: i64,
        hashes: &[[u8; 32]],
        now: i64,
    ) -> VerifyStoreResult<()>;
    /// Uses the recovery code with this hash; true exactly once per code. A code that works
    /// is a successful authentication: it clears the factor's failure count, as a right TOTP
    /// code does (NIST SP 800-63B counts consecutive failures).
    async fn use_recovery_code(&self, user: i64, hash: &[u8], now: i64) -> VerifyStoreResult<bool>;
    async fn recovery_codes_left(&self, user: i64) -> VerifyStoreResult<u32>;
}
