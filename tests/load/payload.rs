//! Chat text that carries its own send time and its place in the conversation:
//! `t=<µs since generator start>;c=<conversation index>;n=<message number>;` then padding to
//! the requested size. The receiver needs nothing else to measure latency and check order.
//!
//! Microseconds, not nanoseconds, and letters-only padding: no run of digits gets anywhere near
//! the 12–19 digits of a card number, so the card-number screen never blocks a load message.

use std::fmt::Write as _;

/// The largest chat text the protocol allows.
pub const MAX_TEXT: usize = 8000;

const PAD: &[u8] = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub sent_us: u64,
    pub conv: u32,
    pub n: u64,
}

/// Writes the text for `stamp` into `out`, `size` bytes long (or just the header if `size` is
/// smaller, and never more than [`MAX_TEXT`]).
pub fn encode(stamp: Stamp, size: usize, out: &mut String) {
    out.clear();
    let _ = write!(out, "t={};c={};n={};", stamp.sent_us, stamp.conv, stamp.n);
    let target = size.min(MAX_TEXT);
    let mut i = 0;
    while out.len() < target {
        out.push(char::from(PAD[i % PAD.len()]));
        i += 1;
    }
}

/// The stamp of a load message, or `None` for any other text.
pub fn decode(text: &str) -> Option<Stamp> {
    let mut fields = text.splitn(4, ';');
    let mut next = |key: &str| -> Option<u64> { fields.next()?.strip_prefix(key)?.parse().ok() };
    let sent_us = next("t=")?;
    let conv = u32::try_from(next("c=")?).ok()?;
    let n = next("n=")?;
    Some(Stamp { sent_us, conv, n })
}

/// The text of the message that opens a conversation (not timed, not counted).
pub fn opener(conv: u32) -> String {
    format!("open;c={conv}; load test conversation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_the_requested_size() {
        let stamp = Stamp {
            sent_us: 9_876_543_210,
            conv: 12_345,
            n: 77,
        };
        let mut text = String::new();
        for size in [0, 10, 100, 1000, 8000, 20_000] {
            encode(stamp, size, &mut text);
            assert_eq!(decode(&text), Some(stamp));
            let header = "t=9876543210;c=12345;n=77;".len();
            assert_eq!(text.len(), size.clamp(header, MAX_TEXT));
            assert!(!text.trim().is_empty());
        }
    }

    #[test]
    fn no_long_digit_runs() {
        let mut text = String::new();
        encode(
            Stamp {
                sent_us: 9_999_999_999,
                conv: u32::MAX,
                n: 999_999,
            },
            500,
            &mut text,
        );
        let longest = text
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap();
        assert!(longest <= 10, "{text}");
    }

    #[test]
    fn other_texts_are_not_stamps() {
        assert_eq!(decode(&opener(3)), None);
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("t=1;c=x;n=1;"), None);
        assert_eq!(decode("t=1;c=2;"), None);
        assert_eq!(
            decode("t=1;c=2;n=3"),
            Some(Stamp {
                sent_us: 1,
                conv: 2,
                n: 3
            })
        );
    }
}
