//! What the screen knows about one card number once it has the digits: the Luhn
//! check, and the masked form that is the only form of it ever shown or kept.

use std::fmt;

use serde::{Serialize, Serializer};

/// The shortest and longest card numbers of the issuer table.
pub(super) const MIN_LEN: usize = 12;
pub(super) const MAX_LEN: usize = 19;

/// Digits a masked form always hides, so that the shown digits plus the Luhn check
/// never leave fewer than 10^5 possible numbers.
const MIN_HIDDEN: usize = 6;

/// The Luhn (mod 10) check over digit values, in its textbook form (rightmost digit
/// first), against which [`LuhnPrefix`] is tested.
#[cfg(test)]
pub(super) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 {
                twice - 9
            } else {
                twice
            }
        } else {
            d
        };
    }
    sum % 10 == 0
}

/// Luhn sums of a number read from the left, so that each of its prefixes can be
/// checked in constant time as digits are added.
#[derive(Clone, Copy, Default)]
pub(super) struct LuhnPrefix {
    /// Sums of the digits at even and odd positions from the left, as they are and
    /// doubled (with 9 taken off doubles above 9).
    plain: [u32; 2],
    doubled: [u32; 2],
    len: usize,
}

impl LuhnPrefix {
    pub(super) fn push(&mut self, digit: u8) {
        const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
        let d = usize::from(digit.min(9));
        let parity = self.len & 1;
        self.plain[parity] += d as u32;
        self.doubled[parity] += DOUBLED[d];
        self.len += 1;
    }

    /// Whether the digits so far pass Luhn: counting from the last digit, which is
    /// not doubled, every second digit is.
    pub(super) fn valid(&self) -> bool {
        if self.len == 0 {
            return false;
        }
        let last = (self.len - 1) & 1;
        (self.plain[last] + self.doubled[1 - last]) % 10 == 0
    }
}

/// A card number masked for display: at most the first six digits (the BIN) and the
/// last four, the maximum PCI DSS 3.4.1 allows, the rest as `*`
/// (`411111******1111`). Short numbers show fewer leading digits so that at least
/// six stay hidden (`37828******0005` for a 15-digit number).
///
/// It is built only from a complete number and holds nothing else, so it is safe to
/// print, log and send.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MaskedPan(String);

impl MaskedPan {
    /// Masks a card number given as digit values (0–9).
    pub(super) fn from_digits(digits: &[u8]) -> MaskedPan {
        let n = digits.len();
        let last = n.min(4);
        let first = n.saturating_sub(last + MIN_HIDDEN).min(6);
        let hidden = n - first - last;
        let mut s = String::with_capacity(n);
        for &d in &digits[..first] {
            s.push(char::from(b'0' + d));
        }
        s.extend(std::iter::repeat_n('*', hidden));
        for &d in &digits[n - last..] {
            s.push(char::from(b'0' + d));
        }
        MaskedPan(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits, the part a person may be shown to recognise their card.
    pub fn last4(&self) -> &str {
        self.0.get(self.0.len().saturating_sub(4)..).unwrap_or("")
    }

    /// How many digits the number had.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskedPan({})", self.0)
    }
}

impl Serialize for MaskedPan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}
