//! Checks a stream of sequence numbers that should be 1, 2, 3, … with no gap and no repeat:
//! it counts duplicates and late (out-of-order) arrivals as they come, and which numbers are
//! still missing at the end.

use std::collections::BTreeSet;

/// A gap wider than this is not tracked number by number (a wild sequence number must not
/// eat the generator's memory); it is counted as `jumped` instead.
const MAX_TRACKED_GAP: u64 = 100_000;

#[derive(Clone, Debug, Default)]
pub struct SeqTracker {
    /// Numbers at or below this are not expected (they came before the measurement).
    base: u64,
    highest: u64,
    missing: BTreeSet<u64>,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub jumped: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next number, or the first after a gap: new and not late.
    New,
    /// A number that was missing: new, but arrived after a later one.
    Late,
    Duplicate,
    /// At or below the base: not part of what is checked.
    Ignored,
}

impl SeqTracker {
    /// Expects `base + 1` first.
    pub fn after(base: u64) -> Self {
        Self {
            base,
            highest: base,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq <= self.base {
            return Seen::Ignored;
        }
        if seq > self.highest {
            let gap = seq - self.highest - 1;
            if gap > MAX_TRACKED_GAP {
                self.jumped += gap;
            } else {
                self.missing.extend(self.highest + 1..seq);
            }
            self.highest = seq;
            self.received += 1;
            return Seen::New;
        }
        if self.missing.remove(&seq) {
            self.received += 1;
            self.out_of_order += 1;
            Seen::Late
        } else {
            self.duplicates += 1;
            Seen::Duplicate
        }
    }

    /// The highest number received so far (the base if none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    pub fn has(&self, seq: u64) -> bool {
        seq > self.base && seq <= self.highest && !self.missing.contains(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = SeqTracker::after(1);
        for s in 2..=10 {
            assert_eq!(t.observe(s), Seen::New);
        }
        assert_eq!((t.received, t.duplicates, t.out_of_order), (9, 0, 0));
        assert!(t.has(5) && t.has(10) && !t.has(1) && !t.has(11));
        assert_eq!(t.highest(), 10);
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates() {
        let mut t = SeqTracker::after(0);
        assert_eq!(t.observe(1), Seen::New);
        assert_eq!(t.observe(4), Seen::New);
        assert!(!t.has(2) && !t.has(3) && t.has(4));
        assert_eq!(t.observe(3), Seen::Late);
        assert_eq!(t.observe(3), Seen::Duplicate);
        assert_eq!(t.observe(4), Seen::Duplicate);
        assert_eq!(t.observe(0), Seen::Ignored);
        assert_eq!((t.received, t.duplicates, t.out_of_order), (3, 2, 1));
        assert!(!t.has(2) && t.has(3));
    }

    #[test]
    fn wild_jumps_are_counted_not_stored() {
        let mut t = SeqTracker::after(0);
        t.observe(1);
        t.observe(1_000_000_000);
        assert_eq!(t.jumped, 999_999_998);
        assert!(t.missing.is_empty());
    }
}
