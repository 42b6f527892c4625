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
/// Wrong TOTP codes allowed without any delay (typos).
const TOTP_FREE_FAILURES: u32 = 3;
/// The longest delay between two TOTP attempts.
const TOTP_MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// The day (since the epoch, UTC) of a time in milliseconds; the key of the daily cap.
pub fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000)
}

/// Whether a customer with `failures` wrong codes today is locked out of step-up.
pub fn customer_locked(failures: u32, cap: u32) -> bool {
    failures >= cap
}

/// The wait before the next TOTP attempt after `failures` consecutive wrong codes: none for
/// the first few, then doubling from 1 second up to 15 minutes.
pub fn totp_delay(failures: u32) -> Duration {
    if failures < TOTP_FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (failures - TOTP_FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << exp).min(TOTP_MAX_DELAY)
}

/// What a TOTP attempt may do now, given the failures so far and the last failure's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpGate {
    Open,
    /// Too soon after the last failure; retry after this many milliseconds.
    Wait(i64),
    /// The failure cap is reached; only an admin reset reopens it.
    Locked,
}

pub fn totp_gate(failures: u32, last_failure_at: Option<i64>, now_ms: i64) -> TotpGate {
    if failures >= TOTP_FAILURE_CAP {
        return TotpGate::Locked;
    }
    let delay = crate::challenge::millis(totp_delay(failures));
    match last_failure_at {
        Some(at) if now_ms < at + delay => TotpGate::Wait(at + delay - now_ms),
        _ => TotpGate::Open,
    }
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
        assert_eq!(totp_delay(0), Duration::ZERO);
        assert_eq!(totp_delay(2), Duration::ZERO);
        assert_eq!(totp_delay(3), Duration::from_secs(1));
        assert_eq!(totp_delay(4), Duration::from_secs(2));
        assert_eq!(totp_delay(8), Duration::from_secs(32));
        assert_eq!(totp_delay(99), TOTP_MAX_DELAY);
        let mut last = Duration::ZERO;
        for n in 0..100 {
            assert!(totp_delay(n) >= last, "delays never shrink");
            last = totp_delay(n);
        }
    }

    #[test]
    fn gate_waits_then_opens_and_locks_at_the_cap() {
        assert_eq!(totp_gate(0, None, 0), TotpGate::Open);
        assert_eq!(totp_gate(4, Some(1_000), 2_000), TotpGate::Wait(1_000));
        assert_eq!(totp_gate(4, Some(1_000), 3_000), TotpGate::Open);
        assert_eq!(totp_gate(100, Some(0), i64::MAX / 2), TotpGate::Locked);
    }

    #[test]
    fn customer_cap() {
        assert!(!customer_locked(9, 10));
        assert!(customer_locked(10, 10));
    }
}
