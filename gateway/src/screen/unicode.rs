//! The characters the screen must understand inside a run of digits: the value of a
//! decimal digit of any script, the separators people put between digit groups, and
//! the invisible characters and combining marks that may sit between digits without
//! separating them.
//!
//! The two tables are generated from the Unicode Character Database (version 18.0.0, through the `unicodedata2` Python package)
//! by `docs/screen/unicode_tables.py`; regenerate them when Unicode adds a script.

/// What a character is to the digit scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// A decimal digit (general category Nd) and its value.
    Digit(u8),
    /// Allowed between two digit groups.
    Separator(Seps),
    /// Invisible or combining: ignored wherever it appears inside a digit sequence.
    Transparent,
    /// Ends a digit sequence.
    Other,
}

/// A set of separator kinds. A gap between two digit groups may hold several
/// separators (`" - "`); the set remembers which kinds it held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Seps(u8);

impl Seps {
    pub(super) const NONE: Seps = Seps(0);
    pub(super) const SPACE: Seps = Seps(1);
    pub(super) const DASH: Seps = Seps(2);
    pub(super) const DOT: Seps = Seps(4);
    pub(super) const SLASH: Seps = Seps(8);

    pub(super) fn union(self, other: Seps) -> Seps {
        Seps(self.0 | other.0)
    }
}

/// Classifies one character.
pub(super) fn classify(c: char) -> Class {
    let cp = u32::from(c);
    if let Some(v) = digit_value(cp) {
        return Class::Digit(v);
    }
    if let Some(s) = separator(c) {
        return Class::Separator(s);
    }
    if is_transparent(cp) {
        return Class::Transparent;
    }
    Class::Other
}

/// The value of a decimal digit of any script (Unicode general category Nd).
///
/// `char::to_digit` knows only ASCII; every Nd block is ten consecutive code points
/// from zero to nine, so a table of the zeros is enough.
#[inline]
pub(super) fn digit_value(cp: u32) -> Option<u8> {
    if cp < 0x80 {
        return if (0x30..=0x39).contains(&cp) {
            Some((cp - 0x30) as u8)
        } else {
            None
        };
    }
    if cp < 0x10000 && !bmp_block_has_digit(cp) {
        return None;
    }
    let i = ND_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = *ND_ZEROS.get(i.checked_sub(1)?)?;
    let v = cp - zero;
    if v < 10 {
        Some(v as u8)
    } else {
        None
    }
}

/// Whether a byte of UTF-8 could begin a decimal digit: an ASCII digit, or the lead
/// byte of a multi-byte character in a range that holds digits. Lets the scanner
/// skip Cyrillic, Greek, Hebrew, CJK and most other text one byte at a time without
/// decoding it.
#[inline]
pub(super) fn may_start_digit(byte: u8) -> bool {
    LEAD_MAY_BE_DIGIT[usize::from(byte >> 6)] & (1u64 << (byte & 63)) != 0
}

fn bmp_block_has_digit(cp: u32) -> bool {
    let block = (cp >> 4) as usize;
    match DIGIT_BLOCKS.get(block >> 6) {
        Some(word) => word & (1u64 << (block & 63)) != 0,
        None => true,
    }
}

fn separator(c: char) -> Option<Seps> {
    let s = match c {
        // Spaces: ASCII, line breaks, tab, and every Unicode space separator (Zs),
        // among them the no-break space and the ideographic space.
        ' '
        | '\t'
        | '\n'
        | '\r'
        | '\u{0B}'
        | '\u{0C}'
        | '\u{85}'
        | '\u{A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => Seps::SPACE,
        // Hyphens and dashes, the minus sign, their small and fullwidth forms, and the
        // katakana-hiragana prolonged sound mark that Japanese input methods type for "-".
        '-'
        | '\u{2010}'..='\u{2015}'
        | '\u{2043}'
        | '\u{2212}'
        | '\u{2E3A}'
        | '\u{2E3B}'
        | '\u{30FC}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}'
        | '\u{FF70}' => Seps::DASH,
        // Full stops and middle dots, ASCII, ideographic, fullwidth and halfwidth.
        '.' | '\u{B7}' | '\u{2024}' | '\u{2027}' | '\u{2219}' | '\u{3002}' | '\u{30FB}'
        | '\u{FF0E}' | '\u{FF61}' | '\u{FF65}' => Seps::DOT,
        // Slashes and backslashes.
        '/' | '\\' | '\u{2044}' | '\u{2215}' | '\u{29F8}' | '\u{FF0F}' | '\u{FF3C}' => Seps::SLASH,
        _ => return None,
    };
    Some(s)
}

/// Whether a code point is a combining mark (Mn, Mc, Me) or an invisible format
/// character (Cf: zero-width space, joiners, word joiner, byte order mark, soft
/// hyphen, bidirectional controls, tags).
pub(super) fn is_transparent(cp: u32) -> bool {
    if cp < 0xAD {
        return false;
    }
    let i = TRANSPARENT.partition_point(|&(lo, _)| lo <= cp);
    match i.checked_sub(1).and_then(|i| TRANSPARENT.get(i)) {
        Some(&(_, hi)) => cp <= hi,
        None => false,
    }
}

/// One bit per block of 16 code points of the Basic Multilingual Plane: set when the
/// block holds a decimal digit. Fine enough that the letters of a script rarely
/// share a block with its digits.
static DIGIT_BLOCKS: [u64; 64] = digit_blocks();

/// One bit per byte value: set for ASCII digits and for UTF-8 lead bytes whose
/// characters include a decimal digit.
static LEAD_MAY_BE_DIGIT: [u64; 4] = lead_bytes();

const fn digit_blocks() -> [u64; 64] {
    let mut blocks = [0u64; 64];
    let mut i = 0;
    while i < ND_ZEROS.len() {
        let zero = ND_ZEROS[i];
        if zero < 0x10000 {
            let mut cp = zero;
            while cp < zero + 10 {
                let block = (cp >> 4) as usize;
                blocks[block >> 6] |= 1u64 << (block & 63);
                cp += 1;
            }
        }
        i += 1;
    }
    blocks
}

const fn lead_bytes() -> [u64; 4] {
    let mut bits = [0u64; 4];
    let mut i = 0;
    while i < ND_ZEROS.len() {
        let zero = ND_ZEROS[i];
        let mut cp = zero;
        while cp < zero + 10 {
            let lead = if cp < 0x80 {
                cp
            } else if cp < 0x800 {
                0xC0 | (cp >> 6)
            } else if cp < 0x10000 {
                0xE0 | (cp >> 12)
            } else {
                0xF0 | (cp >> 18)
            };
            let lead = lead as usize;
            bits[lead >> 6] |= 1u64 << (lead & 63);
            cp += 1;
        }
        i += 1;
    }
    bits
}

/// The code point of the digit zero of every script (general category Nd).
#[rustfmt::skip]
pub(super) const ND_ZEROS: [u32; 77] = [
    0x0030, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6,
    0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0,
    0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900,
    0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x10D40,
    0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50,
    0x11D50, 0x11DA0, 0x11DE0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50,
    0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140,
    0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// Inclusive ranges of combining marks and invisible format characters.
#[rustfmt::skip]
pub(super) static TRANSPARENT: [(u32, u32); 278] = [
    (0x00AD, 0x00AD), (0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05BD),
    (0x05BF, 0x05BF), (0x05C1, 0x05C2), (0x05C4, 0x05C5), (0x05C7, 0x05C9),
    (0x0600, 0x0605), (0x0610, 0x061A), (0x061C, 0x061C), (0x064B, 0x065F),
    (0x0670, 0x0670), (0x06D6, 0x06DD), (0x06DF, 0x06E4), (0x06E7, 0x06E8),
    (0x06EA, 0x06ED), (0x070F, 0x070F), (0x0711, 0x0711), (0x0730, 0x074A),
    (0x07A6, 0x07B0), (0x07EB, 0x07F3), (0x07FD, 0x07FD), (0x0816, 0x0819),
    (0x081B, 0x0823), (0x0825, 0x0827), (0x0829, 0x082D), (0x0859, 0x085B),
    (0x0890, 0x089F), (0x08CA, 0x0903), (0x093A, 0x093C), (0x093E, 0x094F),
    (0x0951, 0x0957), (0x0962, 0x0963), (0x0981, 0x0983), (0x09BC, 0x09BC),
    (0x09BE, 0x09CD), (0x09D7, 0x09D7), (0x09E2, 0x09E3), (0x09FE, 0x0A03),
    (0x0A3C, 0x0A51), (0x0A70, 0x0A71), (0x0A75, 0x0A75), (0x0A81, 0x0A83),
    (0x0ABC, 0x0ABC), (0x0ABE, 0x0ACD), (0x0AE2, 0x0AE3), (0x0AFA, 0x0B03),
    (0x0B3C, 0x0B3C), (0x0B3E, 0x0B57), (0x0B62, 0x0B63), (0x0B82, 0x0B82),
    (0x0BBE, 0x0BCD), (0x0BD7, 0x0BD7), (0x0C00, 0x0C04), (0x0C3C, 0x0C3C),
    (0x0C3E, 0x0C56), (0x0C62, 0x0C63), (0x0C81, 0x0C83), (0x0CBC, 0x0CBC),
    (0x0CBE, 0x0CD6), (0x0CE2, 0x0CE3), (0x0CF3, 0x0D03), (0x0D3B, 0x0D3C),
    (0x0D3E, 0x0D4D), (0x0D57, 0x0D57), (0x0D62, 0x0D63), (0x0D81, 0x0D83),
    (0x0DCA, 0x0DDF), (0x0DF2, 0x0DF3), (0x0E31, 0x0E31), (0x0E34, 0x0E3A),
    (0x0E47, 0x0E4E), (0x0EB1, 0x0EB1), (0x0EB4, 0x0EBC), (0x0EC8, 0x0ECE),
    (0x0F18, 0x0F19), (0x0F35, 0x0F35), (0x0F37, 0x0F37), (0x0F39, 0x0F39),
    (0x0F3E, 0x0F3F), (0x0F71, 0x0F84), (0x0F86, 0x0F87), (0x0F8D, 0x0FBC),
    (0x0FC6, 0x0FC6), (0x102B, 0x103E), (0x1056, 0x1059), (0x105E, 0x1060),
    (0x1062, 0x1064), (0x1067, 0x106D), (0x1071, 0x1074), (0x1082, 0x108D),
    (0x108F, 0x108F), (0x109A, 0x109D), (0x135D, 0x135F), (0x1712, 0x1715),
    (0x1732, 0x1734), (0x1752, 0x1753), (0x1772, 0x1773), (0x17B4, 0x17D3),
    (0x17DD, 0x17DD), (0x180B, 0x180F), (0x1885, 0x1886), (0x18A9, 0x18A9),
    (0x1920, 0x193B), (0x1A17, 0x1A1B), (0x1A55, 0x1A7F), (0x1AB0, 0x1B04),
    (0x1B34, 0x1B44), (0x1B6B, 0x1B73), (0x1B80, 0x1B82), (0x1BA1, 0x1BAD),
    (0x1BE6, 0x1BF3), (0x1C24, 0x1C37), (0x1CD0, 0x1CD2), (0x1CD4, 0x1CE8),
    (0x1CED, 0x1CED), (0x1CF4, 0x1CF4), (0x1CF7, 0x1CF9), (0x1DC0, 0x1DFF),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x20D0, 0x20F0),
    (0x2CEF, 0x2CF1), (0x2D7F, 0x2D7F), (0x2DE0, 0x2DFF), (0x302A, 0x302F),
    (0x3099, 0x309A), (0xA66F, 0xA672), (0xA674, 0xA67D), (0xA69E, 0xA69F),
    (0xA6F0, 0xA6F1), (0xA802, 0xA802), (0xA806, 0xA806), (0xA80B, 0xA80B),
    (0xA823, 0xA827), (0xA82C, 0xA82C), (0xA880, 0xA881), (0xA8B4, 0xA8C5),
    (0xA8E0, 0xA8F1), (0xA8FF, 0xA8FF), (0xA926, 0xA92D), (0xA947, 0xA953),
    (0xA980, 0xA983), (0xA9B3, 0xA9C0), (0xA9E5, 0xA9E5), (0xAA29, 0xAA36),
    (0xAA43, 0xAA43), (0xAA4C, 0xAA4D), (0xAA7B, 0xAA7D), (0xAAB0, 0xAAB0),
    (0xAAB2, 0xAAB4), (0xAAB7, 0xAAB8), (0xAABE, 0xAABF), (0xAAC1, 0xAAC1),
    (0xAAEB, 0xAAEF), (0xAAF5, 0xAAF6), (0xABE3, 0xABEA), (0xABEC, 0xABED),
    (0xFB1E, 0xFB1E), (0xFE00, 0xFE0F), (0xFE20, 0xFE2F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x101FD, 0x101FD), (0x102E0, 0x102E0), (0x10376, 0x1037A),
    (0x10A01, 0x10A0F), (0x10A38, 0x10A3F), (0x10AE5, 0x10AE6), (0x10D24, 0x10D27),
    (0x10D69, 0x10D6D), (0x10EAB, 0x10EAC), (0x10ECB, 0x10ECF), (0x10EF0, 0x10EFF),
    (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11000, 0x11002), (0x11038, 0x11046),
    (0x11070, 0x11070), (0x11073, 0x11074), (0x1107F, 0x11082), (0x110B0, 0x110BA),
    (0x110BD, 0x110BD), (0x110C2, 0x110CD), (0x11100, 0x11102), (0x11127, 0x11134),
    (0x11145, 0x11146), (0x11173, 0x11173), (0x11180, 0x11182), (0x111B3, 0x111C0),
    (0x111C9, 0x111CC), (0x111CE, 0x111CF), (0x1122C, 0x11237), (0x1123E, 0x1123E),
    (0x11241, 0x11241), (0x112DF, 0x112EA), (0x11300, 0x11303), (0x1133B, 0x1133C),
    (0x1133E, 0x1134D), (0x11357, 0x11357), (0x11362, 0x11374), (0x113B8, 0x113D0),
    (0x113D2, 0x113D2), (0x113E1, 0x113E2), (0x11435, 0x11446), (0x1145E, 0x1145E),
    (0x114B0, 0x114C3), (0x115AF, 0x115C0), (0x115DC, 0x115DD), (0x11630, 0x11640),
    (0x116AB, 0x116B7), (0x1171D, 0x1172B), (0x1182C, 0x1183A), (0x11930, 0x1193E),
    (0x11940, 0x11940), (0x11942, 0x11943), (0x119D1, 0x119E0), (0x119E4, 0x119E4),
    (0x11A01, 0x11A0A), (0x11A33, 0x11A39), (0x11A3B, 0x11A3E), (0x11A47, 0x11A47),
    (0x11A51, 0x11A5B), (0x11A8A, 0x11A99), (0x11B60, 0x11B67), (0x11C2F, 0x11C3F),
    (0x11C92, 0x11CB6), (0x11D31, 0x11D45), (0x11D47, 0x11D47), (0x11D8A, 0x11D97),
    (0x11DF0, 0x11DF0), (0x11EF3, 0x11EF6), (0x11F00, 0x11F01), (0x11F03, 0x11F03),
    (0x11F34, 0x11F42), (0x11F5A, 0x11F5A), (0x13430, 0x13440), (0x13447, 0x13455),
    (0x1611E, 0x1612F), (0x16AF0, 0x16AF4), (0x16B30, 0x16B36), (0x16F4F, 0x16F4F),
    (0x16F51, 0x16F92), (0x16FE4, 0x16FF1), (0x1BC9D, 0x1BC9E), (0x1BCA0, 0x1BCA3),
    (0x1CF00, 0x1CF46), (0x1D127, 0x1D128), (0x1D165, 0x1D169), (0x1D16D, 0x1D182),
    (0x1D185, 0x1D18B), (0x1D1AA, 0x1D1AD), (0x1D242, 0x1D244), (0x1D250, 0x1D252),
    (0x1D25B, 0x1D25C), (0x1D25F, 0x1D25F), (0x1D280, 0x1D281), (0x1DA00, 0x1DA36),
    (0x1DA3B, 0x1DA6C), (0x1DA75, 0x1DA75), (0x1DA84, 0x1DA84), (0x1DA9B, 0x1DAAF),
    (0x1E000, 0x1E02A), (0x1E08F, 0x1E08F), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE),
    (0x1E2EC, 0x1E2EF), (0x1E4EC, 0x1E4EF), (0x1E5EE, 0x1E5EF), (0x1E6E3, 0x1E6E3),
    (0x1E6E6, 0x1E6E6), (0x1E6EE, 0x1E6EF), (0x1E6F5, 0x1E6F5), (0x1E8D0, 0x1E8D6),
    (0x1E944, 0x1E94A), (0xE0001, 0xE01EF),
];
