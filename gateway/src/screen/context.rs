//! The text around a candidate number that shows it is something else: a phone
//! number, the fraction of a decimal, part of an identifier (hex digest, SKU,
//! tracking code), an IBAN, a UUID. Consulted only for candidates that already pass
//! Luhn and the issuer table, and every look is bounded, so none of it costs the
//! scan its linear time.

use super::unicode::is_transparent;

/// How far to look past invisible characters for the neighbour of a digit run.
const MAX_TRANSPARENT: usize = 16;
/// How far to look along an identifier for one of its digits.
const MAX_TOKEN: usize = 64;
/// The longest IBAN (34 characters) with its printed spaces, and some.
const MAX_IBAN_SPAN: usize = 44;
const UUID_LEN: usize = 36;

/// What stands just before the first digit of a digit sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Left {
    /// `+`: an international phone number starts here.
    pub(super) plus: bool,
    /// `1,` or `1.` (a decimal separator after a digit): this run is a fraction.
    pub(super) fraction: bool,
    /// Glued to an ASCII letter or `_`: the run continues a word.
    pub(super) glued: bool,
    /// That word holds a digit too (`3f9a…`, `GB29NWBK…`, `1Z999AA…`): an identifier.
    pub(super) token_has_digit: bool,
}

/// What stands just after the last digit of a candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Right {
    pub(super) glued: bool,
    pub(super) token_has_digit: bool,
}

fn is_word_byte(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// The context before byte offset `at` of `text`.
pub(super) fn left_of(text: &str, at: usize) -> Left {
    let before = text.get(..at).unwrap_or("");
    let mut chars = before
        .chars()
        .rev()
        .take(MAX_TRANSPARENT + MAX_TOKEN)
        .skip_while(|&c| is_transparent(u32::from(c)));
    let Some(prev) = chars.next() else {
        return Left::default();
    };
    match prev {
        '+' => Left {
            plus: true,
            ..Left::default()
        },
        ',' | '.' => Left {
            fraction: chars.next().is_some_and(|c| c.is_ascii_digit()),
            ..Left::default()
        },
        c if is_word_byte(c) => Left {
            glued: true,
            token_has_digit: chars
                .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
                .any(|c| c.is_ascii_digit()),
            ..Left::default()
        },
        _ => Left::default(),
    }
}

/// The context after byte offset `at` of `text`.
pub(super) fn right_of(text: &str, at: usize) -> Right {
    let after = text.get(at..).unwrap_or("");
    let mut chars = after
        .chars()
        .take(MAX_TRANSPARENT + MAX_TOKEN)
        .skip_while(|&c| is_transparent(u32::from(c)));
    match chars.next() {
        Some(c) if is_word_byte(c) => Right {
            glued: true,
            token_has_digit: chars
                .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
                .any(|c| c.is_ascii_digit()),
        },
        _ => Right::default(),
    }
}

/// Whether a run glued to letters is part of an identifier rather than a card number
/// someone typed after a word (`card4111…`): glued on both sides, or to a word that
/// has digits of its own.
pub(super) fn is_identifier(left: Left, right: Right) -> bool {
    (left.glued && (right.glued || left.token_has_digit)) || (right.glued && right.token_has_digit)
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Whether bytes `start..end` of `text` lie inside an IBAN whose ISO 13616 check
/// digits are right (`DE89 3704 0044 0532 0130 00`, `BE68539007547034`).
pub(super) fn inside_iban(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let from = floor_boundary(text, start.saturating_sub(MAX_IBAN_SPAN));
    // An IBAN begins with two letters: without one before the digits, there is none.
    let before = bytes.get(from..start).unwrap_or(&[]);
    before.iter().any(u8::is_ascii_alphabetic) && (from..start).any(|p| iban_at(bytes, p, end))
}

/// Whether an IBAN starts at byte `p` and ends at or after byte `end`.
fn iban_at(bytes: &[u8], p: usize, end: usize) -> bool {
    let head = match bytes.get(p..p + 4) {
        Some(h) => h,
        None => return false,
    };
    if !(head[0].is_ascii_alphabetic()
        && head[1].is_ascii_alphabetic()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return false;
    }
    if p > 0 && bytes.get(p - 1).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    // ISO 13616: move the first four characters to the end, read letters as 10..35,
    // and the whole number mod 97 must be 1. The BBAN goes first, so fold it as it
    // comes and append the head at each possible end.
    let mut rem: u32 = 0;
    let mut count = 4;
    let mut i = p + 4;
    let mut last_was_space = false;
    while let Some(&b) = bytes.get(i) {
        // Printed IBANs group their characters by four with single spaces.
        if b == b' ' {
            if last_was_space {
                break;
            }
            last_was_space = true;
            i += 1;
            continue;
        }
        let Some(v) = alnum_value(b) else { break };
        last_was_space = false;
        rem = fold(rem, v);
        count += 1;
        i += 1;
        if count > 34 {
            break;
        }
        let at_boundary = !bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
        if count >= 15 && i >= end && at_boundary {
            let mut check = rem;
            for &h in head {
                if let Some(v) = alnum_value(h) {
                    check = fold(check, v);
                }
            }
            if check == 1 {
                return true;
            }
        }
    }
    false
}

fn alnum_value(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'A'..=b'Z' => Some(u32::from(b - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 10),
        _ => None,
    }
}

fn fold(rem: u32, v: u32) -> u32 {
    if v >= 10 {
        (rem * 100 + v) % 97
    } else {
        (rem * 10 + v) % 97
    }
}

/// Whether bytes `start..end` of `text` lie inside a UUID
/// (`8-4-4-4-12` hexadecimal digits).
pub(super) fn inside_uuid(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let is_part = |b: &u8| b.is_ascii_hexdigit() || *b == b'-';
    let mut lo = start;
    while lo > 0 && start - lo <= UUID_LEN && bytes.get(lo - 1).is_some_and(is_part) {
        lo -= 1;
    }
    let mut hi = end;
    while hi - end <= UUID_LEN && bytes.get(hi).is_some_and(is_part) {
        hi += 1;
    }
    let Some(span) = bytes.get(lo..hi) else {
        return false;
    };
    span.len() == UUID_LEN
        && span.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}
