//! Limits on guessing across challenges and logins.
//!
//! - Customers: a cap of wrong codes per customer per day (UTC). Past it, step-up is locked
//!   for that customer until the next day and supervisors are alerted: someone is trying codes.
//! - Staff TOTP: NIST SP 800-63B §5.2.2 caps consecutive failed attempts on one account at
//!   100; before that, each failure past the first few makes the next attempt wait longer.

use std::time::Duration;

/// Consecutive wrong TOTP codes after which the account's second factor is locked until an
/// admin resets it (NIST SP 800-63B: at most 100).
pub const TOTP_FAILURE_CAP: u32 = 100;

/// The numbers that bound guessing at a staff user's second factor. The store applies them in
/// the one conditional update that takes an attempt ([`crate::store::VerificationStore::reserve_totp_attempt`]),
/// so parallel logins can neither exceed the cap nor skip a delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpLimits {
    /// Consecutive failures that lock the factor (NIST SP 800-63B §5.2.2: at most 100).
    pub cap: u32,
    /// Failures allowed without any delay (typos).
    pub free_failures: u32,
    /// The wait after the first failure past the free ones; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for TotpLimits {
    fn default() -> Self {
        TotpLimits {
            cap: TOTP_FAILURE_CAP,
            free_failures: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// Doublings past which the delay is the maximum anyway (keeps the shift in range).
pub const MAX_DOUBLINGS: u32 = 20;

impl TotpLimits {
    /// The wait before the next attempt after `failures` consecutive wrong codes: none for
    /// the first few, then doubling from `first_delay` up to `max_delay`.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.free_failures {
            return Duration::ZERO;
        }
        let exp = (failures - self.free_failures).min(MAX_DOUBLINGS);
        (self.first_delay * (1u32 << exp)).min(self.max_delay)
    }

    /// What an attempt may do now, given the failures so far and the last failure's time.
    pub fn gate(&self, failures: u32, last_failure_at: Option<i64>, now_ms: i64) -> TotpGate {
        if failures >= self.cap {
            return TotpGate::Locked;
        }
        let delay = crate::challenge::millis(self.delay(failures));
        match last_failure_at {
            Some(at) if now_ms < at + delay => TotpGate::Wait(at + delay - now_ms),
            _ => TotpGate::Open,
        }
    }
}

/// The day (since the epoch, UTC) of a time in milliseconds; the key of the daily cap.
pub fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000)
}

/// Whether a customer with `failures` wrong codes today is locked out of step-up.
pub fn customer_locked(failures: u32, cap: u32) -> bool {
    failures >= cap
}

/// What a TOTP attempt may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpGate {
    Open,
    /// Too soon after the last failure; retry after this many milliseconds.
    Wait(i64),
    /// The failure cap is reached; only an admin reset reopens it.
    Locked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_split_at_utc_midnight() {
        assert_eq!(day_of(86_399_999), 0);
        assert_eq!(day_of(86_400_000), 1);
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let l = TotpLimits::default();
        assert_eq!(l.delay(0), Duration::ZERO);
        assert_eq!(l.delay(2), Duration::ZERO);
        assert_eq!(l.delay(3), Duration::from_secs(1));
        assert_eq!(l.delay(4), Duration::from_secs(2));
        assert_eq!(l.delay(5), Duration::from_secs(4));
        assert_eq!(l.delay(8), Duration::from_secs(32));
        assert_eq!(l.delay(12), Duration::from_secs(512));
        assert_eq!(
            l.delay(13),
            Duration::from_secs(900),
            "1024 s is capped at 15 min"
        );
        assert_eq!(l.delay(99), Duration::from_secs(900));
        let mut last = Duration::ZERO;
        for n in 0..200 {
            assert!(l.delay(n) >= last, "delays never shrink");
            last = l.delay(n);
        }
    }

    #[test]
    fn gate_waits_then_opens_and_locks_at_the_cap() {
        let l = TotpLimits::default();
        assert_eq!(l.gate(0, None, 0), TotpGate::Open);
        assert_eq!(l.gate(2, Some(1_000), 1_000), TotpGate::Open);
        assert_eq!(l.gate(4, Some(1_000), 2_000), TotpGate::Wait(1_000));
        assert_eq!(l.gate(4, Some(1_000), 2_999), TotpGate::Wait(1));
        assert_eq!(l.gate(4, Some(1_000), 3_000), TotpGate::Open);
        assert_eq!(l.gate(99, Some(0), 900_000), TotpGate::Open);
        assert_eq!(l.gate(100, Some(0), i64::MAX / 2), TotpGate::Locked);
        assert_eq!(l.cap, 100, "NIST SP 800-63B's ceiling");
    }

    #[test]
    fn customer_cap() {
        assert!(!customer_locked(9, 10));
        assert!(customer_locked(10, 10));
    }
}
