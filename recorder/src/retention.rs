//! Retention: how long each kind of object is kept after it ends, and what happens then. The
//! answer to "expired" is crypto-shredding: the object's wrapped data key is destroyed, so its
//! ciphertext is unreadable everywhere, old backups included. A legal hold overrides expiry.
//!
//! Times are milliseconds since the Unix epoch, as the gateway stores them.

use std::collections::BTreeMap;
use std::time::Duration;

/// Kinds of object with a retention period of their own. A transcript ends when its ticket
/// closes; a customer record when the customer's last ticket closed (or they were last seen,
/// if later); a recording when its call ends.
pub const TRANSCRIPT: &str = "transcript";
pub const CUSTOMER: &str = "customer";
pub const RECORDING: &str = "recording";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Retention period per kind; a kind without a policy is kept until deleted by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    policies: BTreeMap<String, Duration>,
}

impl Default for Retention {
    /// Transcripts and recordings one year after their ticket closed; customer records two
    /// years after the customer's last activity.
    fn default() -> Self {
        let mut policies = BTreeMap::new();
        policies.insert(TRANSCRIPT.to_owned(), 365 * DAY);
        policies.insert(CUSTOMER.to_owned(), 730 * DAY);
        policies.insert(RECORDING.to_owned(), 365 * DAY);
        Retention { policies }
    }
}

/// What to do with one object now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep it; `until` is when it expires (`None`: no policy for its kind).
    Keep { until: Option<i64> },
    /// Expired, but under legal hold: keep it.
    Held,
    /// Expired and not held: destroy its data key.
    Shred,
}

impl Retention {
    /// No policies at all: nothing expires.
    pub fn none() -> Retention {
        Retention {
            policies: BTreeMap::new(),
        }
    }

    pub fn with(mut self, kind: &str, keep_for: Duration) -> Retention {
        self.policies.insert(kind.to_owned(), keep_for);
        self
    }

    pub fn keep_for(&self, kind: &str) -> Option<Duration> {
        self.policies.get(kind).copied()
    }

    /// When an object of `kind` that ended at `ended_at` expires.
    pub fn expires_at(&self, kind: &str, ended_at: i64) -> Option<i64> {
        let keep = self.keep_for(kind)?;
        let ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        Some(ended_at.saturating_add(ms))
    }

    /// The latest end time an object of `kind` may have and already be expired at `now`;
    /// the sweeper selects objects that ended before it.
    pub fn cutoff(&self, kind: &str, now: i64) -> Option<i64> {
        let keep = self.keep_for(kind)?;
        let ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        Some(now.saturating_sub(ms))
    }

    pub fn decide(&self, kind: &str, ended_at: i64, legal_hold: bool, now: i64) -> Decision {
        match self.expires_at(kind, ended_at) {
            Some(at) if at <= now && legal_hold => Decision::Held,
            Some(at) if at <= now => Decision::Shred,
            until => Decision::Keep { until },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS_PER_DAY: i64 = 86_400_000;

    #[test]
    fn a_transcript_is_kept_for_a_year_then_shredded() {
        let r = Retention::default();
        let closed = 1_000 * MS_PER_DAY;
        let expiry = closed + 365 * MS_PER_DAY;
        assert_eq!(
            r.decide(TRANSCRIPT, closed, false, expiry - 1),
            Decision::Keep {
                until: Some(expiry)
            }
        );
        assert_eq!(r.decide(TRANSCRIPT, closed, false, expiry), Decision::Shred);
        assert_eq!(r.cutoff(TRANSCRIPT, expiry), Some(closed));
    }

    #[test]
    fn a_legal_hold_keeps_an_expired_object() {
        let r = Retention::default().with(TRANSCRIPT, Duration::from_secs(60));
        assert_eq!(r.decide(TRANSCRIPT, 0, true, 60_000), Decision::Held);
        assert_eq!(r.decide(TRANSCRIPT, 0, false, 60_000), Decision::Shred);
    }

    #[test]
    fn kinds_have_their_own_policies_and_unknown_kinds_never_expire() {
        let r = Retention::none().with(RECORDING, Duration::from_secs(1));
        assert_eq!(r.decide(RECORDING, 0, false, 1_000), Decision::Shred);
        assert_eq!(
            r.decide(TRANSCRIPT, 0, false, i64::MAX),
            Decision::Keep { until: None }
        );
        assert_eq!(r.cutoff("export", 5), None);
    }
}
