//! Property: what only looks like a card number passes.

use proptest::prelude::*;
use proptest::sample::Index;

use super::renderings::pan;
use super::{ascii, digit_char, luhn_valid, scan, SCRIPTS};

const WORDS: [&str; 12] = [
    "hello",
    "order",
    "ticket",
    "thanks",
    "merci",
    "спасибо",
    "谢谢",
    "شكرا",
    "please",
    "refund",
    "delivery",
    "today",
];

/// A contiguous run of 12–19 digits failing Luhn, in any script, among words.
fn luhn_failure() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0u8..10, 12..=19),
        prop::sample::select(&SCRIPTS[..]),
        prop::sample::select(&WORDS[..]),
    )
        .prop_map(|(mut digits, zero, word)| {
            if luhn_valid(&digits) {
                let last = digits.len() - 1;
                digits[last] = (digits[last] + 1) % 10;
            }
            let number: String = digits.iter().map(|&d| digit_char(zero, d)).collect();
            format!("{word} {number} {word}")
        })
}

/// 20 to 60 digits in one run, with a valid card number somewhere inside.
fn long_run() -> impl Strategy<Value = String> {
    (
        pan(),
        prop::collection::vec(0u8..10, 1..=20),
        prop::collection::vec(0u8..10, 0..=20),
        prop::sample::select(&SCRIPTS[..]),
    )
        .prop_filter("longer than any card number", |(card, before, after, _)| {
            card.len() + before.len() + after.len() > 19
        })
        .prop_map(|(card, before, after, zero)| {
            [before, card, after]
                .concat()
                .iter()
                .map(|&d| digit_char(zero, d))
                .collect()
        })
}

/// International phone numbers: `+`, a country code, groups of two or three digits
/// (the last up to four), or the whole number run together.
fn phone() -> impl Strategy<Value = String> {
    (
        1u32..999,
        prop::collection::vec(
            (
                10u32..1000,
                prop::sample::select(&[" ", "-", ".", "\u{a0}"][..]),
            ),
            2..=4,
        ),
        1000u32..10000,
        any::<bool>(),
    )
        .prop_map(|(country, groups, last, together)| {
            let mut s = format!("+{country}");
            for (g, sep) in &groups {
                if !together {
                    s.push_str(sep);
                }
                s.push_str(&g.to_string());
            }
            if !together {
                s.push(' ');
            }
            s.push_str(&last.to_string());
            format!("call me at {s} please")
        })
}

fn ipv4() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        1..=4,
    )
    .prop_map(|ips| ips.join(" "))
}

fn date_or_time() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        1_000_000_000_000u64..2_000_000_000_000u64,
        0usize..7,
    )
        .prop_map(|(y, mo, d, h, mi, s, ms, form)| match form {
            0 => format!("{y}-{mo:02}-{d:02}"),
            1 => format!("{d:02}/{mo:02}/{y} {h:02}:{mi:02}"),
            2 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z"),
            3 => format!("{d:02}.{mo:02}.{y} {h:02}:{mi:02}:{s:02}"),
            4 => format!("ts={ms}"),
            5 => format!("{y}{mo:02}{d:02} {h:02}{mi:02}{s:02}"),
            _ => format!("{mo}/{d}/{y}, {h}:{mi:02} pm"),
        })
}

fn uuid() -> impl Strategy<Value = String> {
    (any::<u128>(), any::<bool>()).prop_map(|(v, digits_only)| {
        let hex = if digits_only {
            // A UUID whose hexadecimal digits happen to be all decimal.
            format!("{:032}", v % 10u128.pow(32))
        } else {
            format!("{v:032x}")
        };
        format!(
            "id {}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    })
}

/// A card number masked the ways people and systems mask them.
fn masked() -> impl Strategy<Value = String> {
    (
        pan(),
        prop::sample::select(&['*', 'X', 'x', '•', '#'][..]),
        any::<bool>(),
    )
        .prop_map(|(digits, mask, grouped)| {
            let n = digits.len();
            let s: String = ascii(&digits)
                .chars()
                .enumerate()
                .map(|(i, c)| if i < 6 || i >= n - 4 { c } else { mask })
                .collect();
            if grouped {
                s.as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                s
            }
        })
}

/// IBANs of several countries with correct check digits, printed or compact.
fn iban() -> impl Strategy<Value = String> {
    const FORMS: [(&str, &str); 10] = [
        ("DE", "nnnnnnnnnnnnnnnnnn"),
        ("BE", "nnnnnnnnnnnn"),
        ("FR", "nnnnnnnnnnaaaaaaaaaaann"),
        ("GB", "AAAAnnnnnnnnnnnnnn"),
        ("NL", "AAAAnnnnnnnnnn"),
        ("ES", "nnnnnnnnnnnnnnnnnnnn"),
        ("PL", "nnnnnnnnnnnnnnnnnnnnnnnn"),
        ("NO", "nnnnnnnnnnn"),
        ("IT", "Annnnnnnnnnaaaaaaaaaaaa"),
        ("CH", "nnnnnaaaaaaaaaaaa"),
    ];
    (
        prop::sample::select(&FORMS[..]),
        prop::collection::vec(0u8..36, 30),
        any::<bool>(),
    )
        .prop_map(|((country, form), values, printed)| {
            let bban: String = form
                .chars()
                .zip(values)
                .map(|(kind, v)| match kind {
                    'n' => char::from(b'0' + v % 10),
                    'A' => char::from(b'A' + v % 26),
                    _ if v < 10 => char::from(b'0' + v),
                    _ => char::from(b'A' + v - 10),
                })
                .collect();
            let check = 98 - iban_mod97(&format!("{bban}{country}00"));
            let iban = format!("{country}{check:02}{bban}");
            if printed {
                iban.as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                iban
            }
        })
}

fn iban_mod97(s: &str) -> u32 {
    s.chars().fold(0, |rem, c| {
        let v = c.to_digit(36).unwrap_or(0);
        if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        }
    })
}

fn price() -> impl Strategy<Value = String> {
    (1u64..100_000_000, 0u32..100, 0usize..4).prop_map(|(units, cents, form)| {
        let grouped = |sep: char| {
            let s = units.to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(sep);
                }
                out.push(c);
            }
            out
        };
        match form {
            0 => format!("${}.{cents:02}", grouped(',')),
            1 => format!("{},{cents:02} €", grouped(' ')),
            2 => format!("€{},{cents:02}", grouped('.')),
            _ => format!("total {units}.{cents:02} USD"),
        }
    })
}

/// Chat text with short numbers (quantities, days, times) between words.
fn chat() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(&WORDS[..]), 0u32..1000), 1..30).prop_map(|parts| {
        parts
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn luhn_failures_pass(text in luhn_failure()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn long_runs_pass(text in long_run()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn phone_numbers_pass(text in phone()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn ip_addresses_pass(text in ipv4()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn dates_and_times_pass(text in date_or_time()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn uuids_pass(text in uuid()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn masked_numbers_pass(text in masked()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn ibans_pass(text in iban()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn prices_pass(text in price()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn chat_with_small_numbers_passes(text in chat()) {
        prop_assert!(!scan(&text).is_blocked(), "blocked {:?}", text);
    }

    #[test]
    fn any_text_scans_within_bounds(text in "\\PC{0,200}", index in any::<Index>()) {
        let _ = index;
        let chars = text.chars().count();
        let verdict = scan(&text);
        let mut last_end = 0;
        for f in verdict.findings() {
            prop_assert!(f.start() <= f.end() && f.end() <= chars);
            prop_assert!(f.start() >= last_end);
            last_end = f.end();
        }
    }
}
