//! Tests of the card-number screen: the shared vectors, property tests over every
//! rendering of generated card numbers and of things that only look like them, and
//! unit tests of each part.

mod cli;
mod negatives;
mod renderings;
mod unit;
mod vectors;

use super::brands::{self, Brand, ISSUERS};
use super::pan::luhn_valid;
use super::{ConversationTail, Screen, Verdict};

/// Digit zeros of a few scripts, ASCII first.
const SCRIPTS: [u32; 12] = [
    0x30, 0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x0F20, 0x1040, 0x07C0, 0x1D7CE, 0x1D7F6,
];

fn digit_char(zero: u32, d: u8) -> char {
    char::from_u32(zero + u32::from(d)).unwrap_or('?')
}

fn ascii(digits: &[u8]) -> String {
    digits.iter().map(|&d| digit_char(0x30, d)).collect()
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b - b'0').collect()
}

/// Sets the last digit so that the number passes Luhn.
fn complete_luhn(digits: &mut [u8]) {
    let Some(last) = digits.len().checked_sub(1) else {
        return;
    };
    for d in 0..10 {
        digits[last] = d;
        if luhn_valid(digits) {
            return;
        }
    }
}

fn scan(text: &str) -> Verdict {
    Screen::new().scan(text)
}

fn scan_conversation(messages: &[&str]) -> Vec<Verdict> {
    let screen = Screen::new();
    let mut tail = ConversationTail::new();
    messages
        .iter()
        .map(|m| screen.scan_continuing(&mut tail, m))
        .collect()
}

/// The masked form the screen must report for a number.
fn expected_mask(digits: &[u8]) -> String {
    super::pan::MaskedPan::from_digits(digits)
        .as_str()
        .to_owned()
}

fn brand_of(digits: &[u8]) -> Option<Brand> {
    brands::identify(digits)
}

#[allow(dead_code)]
fn issuers() -> &'static [brands::Issuer] {
    &ISSUERS
}
