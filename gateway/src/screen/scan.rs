//! The scanner: every card number in one message, in one pass over its bytes.
//!
//! 1. Skip text that cannot begin a digit, eight bytes at a time for ASCII without
//!    digits, one byte at a time elsewhere (a byte that cannot lead a digit of any
//!    script is never decoded).
//! 2. From a digit, read a *sequence*: groups of digits joined by gaps of at most
//!    [`MAX_GAP`] separators. Invisible characters and combining marks are ignored
//!    wherever they stand. A group of more than 19 digits ends the sequence: a long
//!    run that merely contains a card number is not one.
//! 3. A *candidate* is a run of whole groups of a sequence, 12 to 19 digits long, in
//!    a grouping people use for cards (see [`Shape`]). Candidates are judged from
//!    the leftmost group on; groups wait in a window until no later group can join
//!    a candidate that starts with them (more than 19 digits follow), so each group
//!    is part of at most 19 candidates and the work per byte is bounded.
//! 4. A candidate that passes Luhn and the issuer table is a card number unless its
//!    surroundings say it is something else (`context.rs`).

use super::brands::{self, Brand};
use super::context::{self, Left, Right};
use super::finding::{Finding, Verdict};
use super::pan::{LuhnPrefix, MaskedPan, MAX_LEN, MIN_LEN};
use super::tail::ConversationTail;
use super::unicode::{classify, digit_value, may_start_digit, Class, Seps};

/// More separators than this between two digit groups end a sequence (`4111 - 1111`
/// has three).
pub(super) const MAX_GAP: u8 = 4;

/// Room for every group a window can hold: at most 19 digits of groups waiting,
/// plus the one just read.
const WINDOW: usize = MAX_LEN + 1;

/// The separators between two digit groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Gap {
    pub(super) seps: Seps,
    pub(super) chars: u8,
    /// The gap is one `.` alone: a decimal point when the group after it stands alone.
    pub(super) point: bool,
    /// The gap spans the end of one message and the start of the next.
    pub(super) boundary: bool,
}

impl Gap {
    fn new(seps: Seps, c: char) -> Gap {
        Gap {
            seps,
            chars: 1,
            point: c == '.',
            boundary: false,
        }
    }

    fn add(&mut self, seps: Seps) {
        self.seps = self.seps.union(seps);
        self.chars = self.chars.saturating_add(1);
        self.point = false;
    }
}

/// A run of digits, with what the judging needs to know about its place.
///
/// It holds card digits, so it has no `Debug`.
#[derive(Clone, Copy)]
pub(super) struct Group {
    pub(super) digits: [u8; MAX_LEN],
    /// Digits in the run; beyond `MAX_LEN` only counted.
    pub(super) len: usize,
    /// Byte offsets of the first digit and just after the last one in the scanned
    /// text; 0 for a group carried over from an earlier message.
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) from_tail: bool,
    /// The gap before this group; empty for the first group of a sequence.
    pub(super) gap: Gap,
    /// Begins a message right where the previous message's digits ended, with no
    /// separator on either side: it may be the rest of the previous group.
    pub(super) joins_previous: bool,
    /// First group of its sequence: what stands before it matters.
    pub(super) first: bool,
    /// What stood before a first group carried over from an earlier message (for a
    /// group of this message it is read from the text when needed).
    pub(super) left: Left,
}

impl Group {
    const EMPTY: Group = Group {
        digits: [0; MAX_LEN],
        len: 0,
        start: 0,
        end: 0,
        from_tail: false,
        gap: Gap {
            seps: Seps::NONE,
            chars: 0,
            point: false,
            boundary: false,
        },
        joins_previous: false,
        first: false,
        left: Left {
            plus: false,
            fraction: false,
            glued: false,
            token_has_digit: false,
        },
    };

    fn push(&mut self, digit: u8, end: usize) {
        if let Some(slot) = self.digits.get_mut(self.len) {
            *slot = digit;
        }
        self.len = self.len.saturating_add(1);
        self.end = end;
    }

    pub(super) fn digits(&self) -> &[u8] {
        &self.digits[..self.len.min(MAX_LEN)]
    }

    /// Overwrites the digits, so that a dropped tail leaves none behind.
    pub(super) fn wipe(&mut self) {
        self.digits = [0; MAX_LEN];
        std::hint::black_box(&self.digits);
    }
}

/// The groups waiting for judgement, oldest first.
struct Window {
    groups: [Group; WINDOW],
    head: usize,
    len: usize,
    digits: usize,
}

impl Window {
    fn new() -> Window {
        Window {
            groups: [Group::EMPTY; WINDOW],
            head: 0,
            len: 0,
            digits: 0,
        }
    }

    fn slot(&self, i: usize) -> usize {
        let at = self.head + i;
        if at >= WINDOW {
            at - WINDOW
        } else {
            at
        }
    }

    fn get(&self, i: usize) -> &Group {
        &self.groups[self.slot(i)]
    }

    fn push(&mut self, group: Group) {
        // The scanner judges the oldest group before more than 19 digits wait, so
        // this never drops a group; it only keeps a broken invariant from panicking.
        while self.len >= WINDOW {
            self.pop(1);
        }
        self.digits += group.len;
        let slot = self.slot(self.len);
        self.groups[slot] = group;
        self.len += 1;
    }

    fn pop(&mut self, n: usize) {
        for _ in 0..n.min(self.len) {
            self.digits -= self.groups[self.head].len;
            self.head = self.slot(1);
            self.len -= 1;
        }
    }
}

/// The groupings accepted for a candidate of `k` groups. Whole groups only, so a
/// candidate never starts or ends inside a run of digits.
///
/// - one group (`4111111111111111`);
/// - fours, the last group 1 to 4 digits (`4111 1111 1111 1111`, `3782 8224 6310 005`,
///   `6200 0000 0000 0000 004`);
/// - 4-6-x, the American Express and Diners Club print (`3782 822463 10005`,
///   `3622 720627 1667`);
/// - one digit per group with the same separators throughout (`4 1 1 1 …`);
/// - at the start of a sequence, 2 to 4 groups of 4 or more digits
///   (`41111111 11111111`, `4111 111111111111`): a card typed loosely. After other
///   groups these shapes would match the tails of order numbers
///   (`114-5555555-5555554`), so they count only at the start.
///
/// What this leaves out is how phone numbers (`+44 20 7946 0958`), IP addresses,
/// versions, dates and most order numbers are written: groups of one to three
/// digits, or of mixed sizes.
#[derive(Default)]
struct Shape {
    groups: usize,
    all_ones: bool,
    /// The separators between single digits; a message boundary matches any.
    ones_gap: Option<Seps>,
    fours_before_last: bool,
    last: usize,
    first_three: [usize; 3],
    smallest_before_last: usize,
}

impl Shape {
    fn add(&mut self, g: &Group) {
        if self.groups == 0 {
            self.all_ones = g.len == 1;
            self.fours_before_last = true;
            self.smallest_before_last = usize::MAX;
        } else {
            if !g.gap.boundary {
                match self.ones_gap {
                    None => self.ones_gap = Some(g.gap.seps),
                    Some(seps) => self.all_ones = self.all_ones && seps == g.gap.seps,
                }
            }
            self.all_ones = self.all_ones && g.len == 1;
            self.fours_before_last = self.fours_before_last && self.last == 4;
            self.smallest_before_last = self.smallest_before_last.min(self.last);
        }
        if let Some(slot) = self.first_three.get_mut(self.groups) {
            *slot = g.len;
        }
        self.last = g.len;
        self.groups += 1;
    }

    /// Adds a group as the continuation of the last one (a group split by a
    /// message boundary).
    fn extend_last(&mut self, g: &Group) {
        if self.groups == 0 {
            self.add(g);
            return;
        }
        self.last += g.len;
        self.all_ones = false;
        if let Some(slot) = self.first_three.get_mut(self.groups - 1) {
            *slot = self.last;
        }
    }

    fn plausible(&self, sequence_start: bool) -> bool {
        let k = self.groups;
        k == 1
            || self.all_ones
            || (self.fours_before_last && (1..=4).contains(&self.last))
            || (k == 3
                && self.first_three[0] == 4
                && self.first_three[1] == 6
                && (2..=9).contains(&self.first_three[2]))
            || (sequence_start && k <= 4 && self.smallest_before_last.min(self.last) >= 4)
    }
}

/// Counts characters up to a byte offset, moving forward only, so that turning the
/// offsets of all findings into character offsets costs one pass.
#[derive(Default)]
struct CharCounter {
    byte: usize,
    chars: usize,
}

impl CharCounter {
    fn offset(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            *self = CharCounter::default();
        }
        let span = text.as_bytes().get(self.byte..byte).unwrap_or(&[]);
        self.chars += count_chars(span);
        self.byte = byte;
        self.chars
    }
}

/// The characters of a UTF-8 span: every byte but a continuation byte (10xxxxxx)
/// starts one. Eight bytes at a time, since a finding far into a long text needs
/// every character before it counted.
fn count_chars(span: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = span.chunks_exact(8);
    let mut count = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Top bit set and the bit below it clear: a continuation byte.
        let continuation = w & !(w << 1) & HIGH;
        count += 8 - continuation.count_ones() as usize;
    }
    count
        + chunks
            .remainder()
            .iter()
            .filter(|&&b| (b as i8) >= -0x40)
            .count()
}

/// What the last sequence of a message leaves for the next message.
pub(super) struct Carry {
    pub(super) groups: Vec<Group>,
    pub(super) trailing: Gap,
}

struct Scanner<'t> {
    text: &'t str,
    window: Window,
    findings: Vec<Finding>,
    chars: CharCounter,
    /// Set when a sequence runs to the end of the text.
    carry: Option<Carry>,
}

/// Scans one message. With a tail, digits the previous message ended with may begin
/// a card number here, and the tail is replaced by what this message ends with.
pub(super) fn scan(text: &str, tail: Option<&mut ConversationTail>) -> Verdict {
    let bytes = text.as_bytes();
    let mut tail = tail;
    // Set up only once a sequence may hold a card number: most messages have no
    // digits, or only short numbers.
    let mut scanner: Option<Scanner<'_>> = None;
    let mut pos = 0;
    if let Some(tail) = tail.as_deref_mut() {
        if let Some((first_digit, gap)) = continuation(text, tail) {
            let scanner = scanner.get_or_insert_with(|| Scanner::new(text));
            for mut group in tail.take_groups() {
                group.from_tail = true;
                group.start = 0;
                group.end = 0;
                scanner.add(group);
            }
            pos = scanner.sequence(first_digit, Some(gap));
        }
    }
    while let Some(start) = next_digit(bytes, pos) {
        pos = match short_ascii_sequence(bytes, start) {
            Some(end) => end,
            None => scanner
                .get_or_insert_with(|| Scanner::new(text))
                .sequence(start, None),
        };
    }
    let (findings, carry) = match scanner {
        Some(scanner) => (scanner.findings, scanner.carry),
        None => (Vec::new(), None),
    };
    if let Some(tail) = tail {
        match carry {
            Some(carry) => tail.replace(carry),
            None => tail.clear(),
        }
    }
    Verdict::new(findings)
}

/// The end of the sequence starting at byte `start` when it is plain ASCII, ends
/// before the end of the text, and has fewer digits than any card number: the
/// dates, prices, times and order numbers of ordinary chat. `None` when the
/// sequence needs the full reading.
fn short_ascii_sequence(bytes: &[u8], start: usize) -> Option<usize> {
    let mut digits = 0;
    let mut gap = 0;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                gap = 0;
                if digits >= MIN_LEN {
                    return None;
                }
            }
            // The ASCII separators of `unicode::classify`.
            b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | b'-' | b'.' | b'/' | b'\\' => {
                gap += 1;
                if gap > MAX_GAP {
                    return Some(i);
                }
            }
            // A letter of another script ends the sequence like an ASCII one; a
            // digit, separator or invisible character needs the full reading.
            0xC0.. => {
                let ends = decode(bytes, i)
                    .and_then(char::from_u32)
                    .is_some_and(|c| classify(c) == Class::Other);
                return if ends { Some(i) } else { None };
            }
            _ => return Some(i),
        }
    }
    // The end of the text: what is left may carry over to the next message.
    None
}

/// Where a message continues the digits of the previous one: the byte offset of its
/// first digit, when only a few separators stand before it, and the gap across the
/// two messages. With no separator on either side the first group may continue
/// the previous message's last group, or follow it as a group of its own.
fn continuation(text: &str, tail: &ConversationTail) -> Option<(usize, Gap)> {
    if tail.is_empty() {
        return None;
    }
    let mut gap = tail.trailing();
    for (i, c) in text.char_indices() {
        match classify(c) {
            Class::Digit(_) => {
                gap.point = false;
                gap.boundary = true;
                return Some((i, gap));
            }
            Class::Separator(s) => {
                gap.add(s);
                if gap.chars > MAX_GAP {
                    return None;
                }
            }
            Class::Transparent => {}
            Class::Other => return None,
        }
    }
    None
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Scanner<'t> {
        Scanner {
            text,
            window: Window::new(),
            findings: Vec::new(),
            chars: CharCounter::default(),
            carry: None,
        }
    }

    /// Reads the sequence that begins with the digit at byte `start`, judging its
    /// candidates as it goes. Returns the byte offset where scanning resumes.
    /// `seeded` is the gap before the first group when the window already holds
    /// groups carried over from the previous message.
    fn sequence(&mut self, start: usize, seeded: Option<Gap>) -> usize {
        let text = self.text;
        let rest = text.get(start..).unwrap_or("");
        let mut first = seeded.is_none();
        let mut gap = seeded.unwrap_or_default();
        let mut open: Option<Group> = None;
        for (offset, c) in rest.char_indices() {
            let at = start + offset;
            match classify(c) {
                Class::Digit(v) => {
                    if open.is_none() {
                        open = Some(Group {
                            start: at,
                            gap,
                            joins_previous: gap.boundary && gap.chars == 0,
                            first,
                            ..Group::EMPTY
                        });
                    }
                    if let Some(group) = &mut open {
                        group.push(v, at + c.len_utf8());
                    }
                }
                Class::Separator(s) => match open.take() {
                    Some(group) => {
                        first = self.close(group);
                        gap = if first {
                            Gap::default()
                        } else {
                            Gap::new(s, c)
                        };
                    }
                    None => {
                        gap.add(s);
                        if gap.chars > MAX_GAP {
                            self.finish(None);
                            return at;
                        }
                    }
                },
                Class::Transparent => {}
                Class::Other => {
                    if let Some(group) = open.take() {
                        self.close(group);
                    }
                    self.finish(None);
                    return at;
                }
            }
        }
        let trailing = match open.take() {
            Some(group) => {
                self.close(group);
                Gap::default()
            }
            None => gap,
        };
        self.finish(Some(trailing));
        text.len()
    }

    /// Ends a group. A group too long to be part of a card number ends the sequence
    /// too; returns whether the next group begins a new sequence.
    fn close(&mut self, group: Group) -> bool {
        if group.len > MAX_LEN {
            self.finish(None);
            return true;
        }
        self.add(group);
        false
    }

    fn add(&mut self, group: Group) {
        self.window.push(group);
        // Once more than 19 digits wait, no candidate starting with the oldest
        // group can grow any longer.
        while self.window.digits > MAX_LEN {
            self.judge_front();
        }
    }

    /// Ends the current sequence: judges every group still waiting. `trailing` is
    /// the gap after the last group when the sequence runs to the end of the text;
    /// what is left unused then carries over to the next message.
    fn finish(&mut self, trailing: Option<Gap>) {
        let Some(trailing) = trailing else {
            while self.window.len > 0 {
                self.judge_front();
            }
            self.carry = None;
            return;
        };
        let mut groups: Vec<Group> = (0..self.window.len).map(|i| *self.window.get(i)).collect();
        let mut judged = 0;
        let mut unused_from = 0;
        while self.window.len > 0 {
            let (dropped, found) = self.judge_front();
            judged += dropped;
            if found {
                unused_from = judged;
            }
        }
        // Keep the last groups holding at most MAX_DIGITS digits.
        let mut digits = 0;
        let mut keep_from = groups.len();
        while keep_from > unused_from {
            let len = groups.get(keep_from - 1).map_or(0, |g| g.len);
            if digits + len > ConversationTail::MAX_DIGITS {
                break;
            }
            digits += len;
            keep_from -= 1;
        }
        for g in groups.iter_mut().take(keep_from) {
            g.wipe();
        }
        groups.drain(..keep_from);
        for g in groups.iter_mut().filter(|g| g.first && !g.from_tail) {
            g.left = context::left_of(self.text, g.start);
        }
        self.carry = Some(Carry { groups, trailing });
    }

    /// Judges every candidate that starts with the oldest waiting group, records the
    /// card number found there if any, and drops the groups it used (or just the
    /// oldest one). Returns how many groups were dropped and whether a card was found.
    fn judge_front(&mut self) -> (usize, bool) {
        if self.window.digits < MIN_LEN {
            // Nothing waiting is long enough: drop it all at once.
            let dropped = self.window.len;
            self.window.pop(dropped);
            return (dropped, false);
        }
        let mut digits = [0u8; MAX_LEN];
        let mut n = 0;
        let mut luhn = LuhnPrefix::default();
        let mut shape = Shape::default();
        // The same groups read with a message boundary inside a group.
        let mut joined = Shape::default();
        // The longest card number starting here, and one ending a group earlier.
        let mut longest: Option<(usize, usize, Brand)> = None;
        let mut shorter: Option<(usize, usize, Brand)> = None;
        for j in 0..self.window.len {
            let group = self.window.get(j);
            if n + group.len > MAX_LEN {
                break;
            }
            digits[n..n + group.len].copy_from_slice(group.digits());
            n += group.len;
            for &d in group.digits() {
                luhn.push(d);
            }
            shape.add(group);
            if group.joins_previous {
                joined.extend_last(group);
            } else {
                joined.add(group);
            }
            if n < MIN_LEN || group.from_tail {
                // Too short, or already judged with the message it came in.
                continue;
            }
            let start = self.window.get(0).first;
            if !luhn.valid() || !(shape.plausible(start) || joined.plausible(start)) {
                continue;
            }
            let Some(brand) = brands::identify(&digits[..n]) else {
                continue;
            };
            if !self.context_allows(j) {
                continue;
            }
            shorter = longest.filter(|&(k, _, _)| k + 1 == j);
            longest = Some((j, n, brand));
        }
        // A group of one to three digits after a complete number is more often its
        // security code than the end of a longer number: prefer the number without
        // it, so that the masked form never shows a security code.
        let chosen = match (longest, shorter) {
            (Some((j, _, _)), Some(s))
                if j > 0 && self.window.get(j).len <= 3 && self.window.get(j - 1).len >= 4 =>
            {
                Some(s)
            }
            (l, _) => l,
        };
        let found = match chosen {
            Some((j, len, brand)) => {
                let first = self.window.get(0);
                let last = self.window.get(j);
                let start = if first.from_tail {
                    0
                } else {
                    self.chars.offset(self.text, first.start)
                };
                let end = self.chars.offset(self.text, last.end);
                let masked = MaskedPan::from_digits(&digits[..len]);
                self.findings.push(Finding::new(brand, start, end, masked));
                j + 1
            }
            None => 0,
        };
        let dropped = found.max(1);
        self.window.pop(dropped);
        (dropped, found > 0)
    }

    /// Whether the surroundings of the candidate made of waiting groups `0..=j`
    /// leave it a card number.
    fn context_allows(&self, j: usize) -> bool {
        let first = self.window.get(0);
        let last = self.window.get(j);
        let left = match (first.first, first.from_tail) {
            (true, true) => first.left,
            (true, false) => context::left_of(self.text, first.start),
            (false, _) => Left::default(),
        };
        if left.plus {
            return false;
        }
        if j == 0 && (left.fraction || first.gap.point) {
            return false;
        }
        let right = if j + 1 == self.window.len {
            context::right_of(self.text, last.end)
        } else {
            Right::default()
        };
        if context::is_identifier(left, right) {
            return false;
        }
        if !first.from_tail
            && (context::inside_iban(self.text, first.start, last.end)
                || context::inside_uuid(self.text, first.start, last.end))
        {
            return false;
        }
        true
    }
}

/// The byte offset of the next decimal digit of any script at or after `i`, which
/// must be a character boundary.
fn next_digit(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if w & HIGH == 0 {
            // Eight ASCII bytes: a byte is a digit when adding 0x50 sets its top bit
            // (it is at least '0') and adding 0x46 does not (it is below ':'). No
            // byte is above 0x7F, so no sum carries into the next byte.
            let digits = w.wrapping_add(ONES * 0x50) & !w.wrapping_add(ONES * 0x46) & HIGH;
            if digits == 0 {
                i += 8;
                continue;
            }
            return Some(i + (digits.trailing_zeros() / 8) as usize);
        }
        // Not all ASCII: go character by character to the end of the word.
        let end = i + 8;
        while i < end {
            let b = bytes[i];
            if b.is_ascii_digit() || (may_start_digit(b) && digit_at(bytes, i).is_some()) {
                return Some(i);
            }
            i += utf8_len(b);
        }
    }
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_digit() || (may_start_digit(b) && digit_at(bytes, i).is_some()) {
            return Some(i);
        }
        i += utf8_len(b);
    }
    None
}

/// The length of the UTF-8 character whose first byte is `b`.
#[inline]
fn utf8_len(b: u8) -> usize {
    match b {
        0..=0xBF => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[inline]
fn digit_at(bytes: &[u8], i: usize) -> Option<u8> {
    decode(bytes, i).and_then(digit_value)
}

/// The code point of the UTF-8 character whose lead byte is at `i`.
#[inline]
fn decode(bytes: &[u8], i: usize) -> Option<u32> {
    let lead = u32::from(*bytes.get(i)?);
    let cont = |k: usize| bytes.get(i + k).map(|&b| u32::from(b & 0x3F));
    Some(if lead < 0x80 {
        lead
    } else if lead < 0xE0 {
        ((lead & 0x1F) << 6) | cont(1)?
    } else if lead < 0xF0 {
        ((lead & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?
    } else {
        ((lead & 0x07) << 18) | (cont(1)? << 12) | (cont(2)? << 6) | cont(3)?
    })
}
