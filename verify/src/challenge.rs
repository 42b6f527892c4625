//! One step-up challenge: a code sent to a customer for one ticket and one action, asked for
//! by one agent. Its states follow Twilio Verify's model:
//!
//! ```text
//!              check ok                      
//!   pending ───────────▶ approved  (the ticket is verified for the action until verified_until)
//!     │ │ │
//!     │ │ └─ 5th wrong code ─────▶ max_attempts
//!     │ └─── 10 minutes pass ────▶ expired
//!     └───── a new challenge for the same ticket and action ──▶ canceled
//! ```
//!
//! Every state but `pending` is final. The rules' numbers live in [`Rules`]; the store applies
//! them atomically, this module names them and decides what a stored challenge means now.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeState {
    Pending,
    Approved,
    Expired,
    Canceled,
    MaxAttempts,
}

impl ChallengeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeState::Pending => "pending",
            ChallengeState::Approved => "approved",
            ChallengeState::Expired => "expired",
            ChallengeState::Canceled => "canceled",
            ChallengeState::MaxAttempts => "max_attempts",
        }
    }

    pub fn is_final(self) -> bool {
        self != ChallengeState::Pending
    }
}

impl FromStr for ChallengeState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => ChallengeState::Pending,
            "approved" => ChallengeState::Approved,
            "expired" => ChallengeState::Expired,
            "canceled" => ChallengeState::Canceled,
            "max_attempts" => ChallengeState::MaxAttempts,
            other => return Err(format!("unknown challenge state {other:?}")),
        })
    }
}

impl fmt::Display for ChallengeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numbers that bound a challenge. Defaults as in Twilio Verify and NIST SP 800-63B.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Wrong codes that end a challenge.
    pub max_attempts: u32,
    /// Time from sending to expiry.
    pub code_ttl: Duration,
    /// Times the code may be sent again.
    pub max_resends: u32,
    /// Time between two sendings.
    pub resend_cooldown: Duration,
    /// How long an approved challenge keeps the ticket verified for its action.
    pub verified_for: Duration,
    /// Wrong codes per customer per day (UTC) before step-up is locked for that customer.
    pub daily_failure_cap: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_attempts: 5,
            code_ttl: Duration::from_secs(10 * 60),
            max_resends: 3,
            resend_cooldown: Duration::from_secs(30),
            verified_for: Duration::from_secs(15 * 60),
            daily_failure_cap: 10,
        }
    }
}

/// A challenge as stored. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: i64,
    pub ticket: i64,
    pub customer: i64,
    pub agent: i64,
    pub action: String,
    pub state: ChallengeState,
    /// Wrong codes so far.
    pub attempts: u32,
    pub resends: u32,
    pub created_at: i64,
    pub sent_at: i64,
    pub expires_at: i64,
    /// Set once approved: the ticket is verified for the action until then.
    pub verified_until: Option<i64>,
    /// The masked address the code went to, e.g. `a***@example.com`.
    pub destination: String,
    /// Random per challenge; part of the code's keyed hash.
    pub salt: Vec<u8>,
    pub code_hash: Vec<u8>,
}

impl Challenge {
    /// The state as of `now`: a pending challenge past its expiry is expired even before the
    /// store has written so.
    pub fn state_at(&self, now: i64) -> ChallengeState {
        if self.state == ChallengeState::Pending && now >= self.expires_at {
            ChallengeState::Expired
        } else {
            self.state
        }
    }

    pub fn attempts_left(&self, rules: &Rules) -> u32 {
        rules.max_attempts.saturating_sub(self.attempts)
    }

    /// Whether the code may be sent again now, and if not, why.
    pub fn may_resend(&self, rules: &Rules, now: i64) -> Result<(), ResendRefused> {
        if self.state_at(now) != ChallengeState::Pending {
            return Err(ResendRefused::NotPending(self.state_at(now)));
        }
        if self.resends >= rules.max_resends {
            return Err(ResendRefused::Limit);
        }
        let ready = self.sent_at + millis(rules.resend_cooldown);
        if now < ready {
            return Err(ResendRefused::Cooldown {
                retry_after_ms: ready - now,
            });
        }
        Ok(())
    }

    /// Whether the ticket is verified for the action at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.state == ChallengeState::Approved && self.verified_until.is_some_and(|t| now < t)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResendRefused {
    #[error("the challenge is {0}, not pending")]
    NotPending(ChallengeState),
    #[error("the code was sent the most times allowed")]
    Limit,
    #[error("the code was sent moments ago; wait {retry_after_ms} ms")]
    Cooldown { retry_after_ms: i64 },
}

/// What checking a code did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Right code: the challenge is approved, this check was the one that consumed it.
    Approved { verified_until: i64 },
    /// Wrong code; the challenge stays pending.
    Wrong { attempts_left: u32 },
    /// Wrong code, and it was the last allowed: the challenge is now `max_attempts`.
    MaxAttempts,
    /// The challenge was no longer pending (approved, expired, canceled, max_attempts) when
    /// the check arrived; nothing changed.
    NotPending(ChallengeState),
    /// The customer had reached the daily cap of wrong codes before this check; the code was
    /// not looked at and nothing changed.
    Locked,
}

/// A check and the customer's wrong codes today after it (the daily cap's count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    pub outcome: CheckOutcome,
    pub failures_today: u32,
}

pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(now: i64) -> Challenge {
        Challenge {
            id: 1,
            ticket: 2,
            customer: 3,
            agent: 4,
            action: "change_address".into(),
            state: ChallengeState::Pending,
            attempts: 0,
            resends: 0,
            created_at: now,
            sent_at: now,
            expires_at: now + 600_000,
            verified_until: None,
            destination: "a***@example.com".into(),
            salt: vec![0; 16],
            code_hash: vec![0; 32],
        }
    }

    #[test]
    fn defaults_are_the_documented_numbers() {
        let r = Rules::default();
        assert_eq!(r.max_attempts, 5);
        assert_eq!(r.code_ttl, Duration::from_secs(600));
        assert_eq!(r.max_resends, 3);
        assert_eq!(r.resend_cooldown, Duration::from_secs(30));
        assert_eq!(r.verified_for, Duration::from_secs(900));
        assert_eq!(r.daily_failure_cap, 10);
    }

    #[test]
    fn a_pending_challenge_expires_with_time() {
        let c = pending(1_000);
        assert_eq!(c.state_at(1_000 + 599_999), ChallengeState::Pending);
        assert_eq!(c.state_at(1_000 + 600_000), ChallengeState::Expired);
    }

    #[test]
    fn resend_needs_cooldown_and_stops_at_the_limit() {
        let r = Rules::default();
        let mut c = pending(0);
        assert_eq!(
            c.may_resend(&r, 10_000),
            Err(ResendRefused::Cooldown {
                retry_after_ms: 20_000
            })
        );
        assert_eq!(c.may_resend(&r, 30_000), Ok(()));
        c.resends = 3;
        assert_eq!(c.may_resend(&r, 60_000), Err(ResendRefused::Limit));
        c.resends = 0;
        c.state = ChallengeState::Canceled;
        assert_eq!(
            c.may_resend(&r, 60_000),
            Err(ResendRefused::NotPending(ChallengeState::Canceled))
        );
    }

    #[test]
    fn live_only_while_approved_and_unexpired() {
        let mut c = pending(0);
        assert!(!c.is_live(1));
        c.state = ChallengeState::Approved;
        c.verified_until = Some(900_000);
        assert!(c.is_live(899_999));
        assert!(!c.is_live(900_000));
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in [
            ChallengeState::Pending,
            ChallengeState::Approved,
            ChallengeState::Expired,
            ChallengeState::Canceled,
            ChallengeState::MaxAttempts,
        ] {
            assert_eq!(s.as_str().parse::<ChallengeState>().unwrap(), s);
        }
    }
}
