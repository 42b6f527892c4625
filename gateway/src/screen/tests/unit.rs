//! Unit tests of each part: Luhn, masking, the issuer table, the Unicode tables,
//! the context rules, offsets, the conversation tail, and bounded work.

use super::super::context;
use super::super::scan::MAX_GAP;
use super::super::unicode::{
    classify, digit_value, is_transparent, may_start_digit, Class, Seps, ND_ZEROS, TRANSPARENT,
};
use super::{
    brand_of, complete_luhn, digits_of, expected_mask, luhn_valid, scan, scan_conversation, Brand,
    ConversationTail, ISSUERS,
};

#[test]
fn luhn_accepts_known_numbers_and_rejects_one_digit_changes() {
    for n in [
        "4111111111111111",
        "378282246310005",
        "6205500000000000004",
        "79927398713",
    ] {
        let digits = digits_of(n);
        assert!(luhn_valid(&digits), "{n}");
        for i in 0..digits.len() {
            let mut changed = digits.clone();
            changed[i] = (changed[i] + 1) % 10;
            assert!(!luhn_valid(&changed), "{n} changed at {i}");
        }
    }
    assert!(!luhn_valid(&digits_of("79927398710")));
}

#[test]
fn luhn_prefix_sums_agree_with_the_textbook_check() {
    let mut seed = 7u64;
    for _ in 0..2000 {
        let mut sums = super::super::pan::LuhnPrefix::default();
        let mut digits = Vec::new();
        for _ in 0..19 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = (seed >> 60) as u8 % 10;
            digits.push(d);
            sums.push(d);
            assert_eq!(sums.valid(), luhn_valid(&digits), "{digits:?}");
        }
    }
}

#[test]
fn masks_show_at_most_bin_and_last_four_and_hide_at_least_six() {
    assert_eq!(
        expected_mask(&digits_of("4111111111111111")),
        "411111******1111"
    );
    assert_eq!(
        expected_mask(&digits_of("378282246310005")),
        "37828******0005"
    );
    assert_eq!(
        expected_mask(&digits_of("36227206271667")),
        "3622******1667"
    );
    assert_eq!(
        expected_mask(&digits_of("6205500000000000004")),
        "620550*********0004"
    );
    assert_eq!(expected_mask(&digits_of("501800000009")), "50******0009");
    for len in 12..=19 {
        let masked = expected_mask(&vec![7; len]);
        assert_eq!(masked.len(), len);
        assert!(masked.chars().filter(|&c| c == '*').count() >= 6);
        assert!(masked.chars().filter(char::is_ascii_digit).count() <= 10);
    }
}

#[test]
fn the_table_is_in_brand_order_and_well_formed() {
    assert_eq!(ISSUERS.len(), Brand::ALL.len());
    for (issuer, brand) in ISSUERS.iter().zip(Brand::ALL) {
        assert_eq!(issuer.brand, brand);
        assert_eq!(Brand::from_id(brand.id()), Some(brand));
        assert!(!issuer.lengths.is_empty());
        assert!(issuer.lengths.iter().all(|l| (12..=19).contains(l)));
        for p in issuer.prefixes {
            assert!(p.lo <= p.hi, "{brand}");
            assert_eq!(p.lo.to_string().len(), usize::from(p.digits), "{brand}");
            assert_eq!(p.hi.to_string().len(), usize::from(p.digits), "{brand}");
        }
    }
}

/// Full numbers from braintree/credit-card-type's tests, and the brand it gives.
#[test]
fn brands_match_braintree() {
    let cases = [
        ("4111111111111111", Brand::Visa),
        ("4012888888881881", Brand::Visa),
        ("4111111111111111110", Brand::Visa),
        ("5555555555554444", Brand::Mastercard),
        ("2221000000000009", Brand::Mastercard),
        ("2720999999999996", Brand::Mastercard),
        ("378282246310005", Brand::AmericanExpress),
        ("30569309025904", Brand::DinersClub),
        ("36700102000000", Brand::DinersClub),
        ("6011000990139424", Brand::Discover),
        ("6445644564456445", Brand::Discover),
        ("9792100000000001", Brand::Troy),
        ("6502740000000001", Brand::Troy),
        ("3530111333300000", Brand::Jcb),
        ("3537286818376838569", Brand::Jcb),
        ("6212345678900000003", Brand::UnionPay),
        ("8100513433325374", Brand::UnionPay),
        ("5895626292990446", Brand::Naranja),
        ("6304000000000000", Brand::Maestro),
        ("6799990100000000019", Brand::Maestro),
        ("6277809990229178", Brand::Elo),
        ("5066991111111118", Brand::Elo),
        ("6062820524845321", Brand::Hipercard),
        ("6370950000000005", Brand::Hiper),
    ];
    for (n, brand) in cases {
        let digits = digits_of(n);
        assert_eq!(brand_of(&digits), Some(brand), "{n}");
    }
    // Prefixes alone, completed to a length the brand uses.
    let prefixes = [
        ("2200", Brand::Mir, 16),
        ("2204", Brand::Mir, 19),
        ("506099", Brand::Verve, 16),
        ("507941", Brand::Verve, 19),
        ("62183", Brand::Maestro, 16),
        ("1800", Brand::Jcb, 16),
        ("2131", Brand::Jcb, 17),
        ("589562", Brand::Naranja, 16),
        ("65083702", Brand::Troy, 16),
        ("63737423", Brand::Hiper, 16),
    ];
    for (prefix, brand, len) in prefixes {
        let mut digits = digits_of(prefix);
        digits.resize(len, 0);
        complete_luhn(&mut digits);
        assert_eq!(brand_of(&digits), Some(brand), "{prefix}");
    }
}

#[test]
fn lengths_are_part_of_the_match() {
    let cases = [
        ("4222222222222", None),  // Visa uses 16, 18, 19
        ("34343434343434", None), // American Express: 15
        ("5555555555554444", Some(Brand::Mastercard)),
        ("555555555555444", None),                // Mastercard: 16 only
        ("60110000000000", Some(Brand::Maestro)), // Discover: 16, 19
        ("2720999999999", None),
        ("7000000000000000", None),
        ("0000000000000000", None),
    ];
    for (n, brand) in cases {
        let mut digits = digits_of(n);
        complete_luhn(&mut digits);
        assert_eq!(brand_of(&digits), brand, "{n}");
    }
}

#[test]
fn every_decimal_digit_of_every_script_has_its_value() {
    let mut count = 0;
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let expected = ND_ZEROS
            .iter()
            .find(|&&z| (z..z + 10).contains(&cp))
            .map(|&z| (cp - z) as u8);
        assert_eq!(digit_value(cp), expected, "U+{cp:04X}");
        if expected.is_some() {
            count += 1;
            let mut buf = [0u8; 4];
            let lead = c.encode_utf8(&mut buf).as_bytes()[0];
            assert!(may_start_digit(lead), "U+{cp:04X}");
            assert_eq!(classify(c), Class::Digit(expected.unwrap_or(0)));
        }
    }
    assert_eq!(count, ND_ZEROS.len() * 10);
    // Rust's own tables agree that these are numbers.
    for z in [0x30, 0x660, 0x6F0, 0x966, 0xE50, 0xFF10, 0x1D7CE] {
        assert!(char::from_u32(z).is_some_and(char::is_numeric));
    }
}

#[test]
fn bytes_that_cannot_lead_a_digit_are_skipped() {
    for b in 0x80..0xC0u8 {
        assert!(!may_start_digit(b), "continuation byte {b:#x}");
    }
    // Latin-1 supplement, Cyrillic, Greek, Hebrew, CJK, Hangul lead bytes.
    for b in [0xC3u8, 0xCE, 0xD0, 0xD1, 0xD7, 0xE3, 0xE4, 0xE9, 0xEB, 0xED] {
        assert!(!may_start_digit(b), "{b:#x}");
    }
    for b in b'0'..=b'9' {
        assert!(may_start_digit(b));
    }
    assert!(!may_start_digit(b'a'));
}

#[test]
fn invisible_characters_and_marks_are_transparent() {
    for c in [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{AD}',
        '\u{200E}',
        '\u{202E}',
        '\u{2066}',
        '\u{301}',
        '\u{332}',
        '\u{336}',
        '\u{20E3}',
        '\u{FE0F}',
        '\u{64B}',
        '\u{E0001}',
        '\u{E0100}',
    ] {
        assert!(is_transparent(u32::from(c)), "U+{:04X}", u32::from(c));
        assert_eq!(classify(c), Class::Transparent);
    }
    for c in ['a', '1', ' ', '-', '.', '+', '*', 'é', '中'] {
        assert!(!is_transparent(u32::from(c)), "{c}");
    }
    assert!(TRANSPARENT.windows(2).all(|w| w[0].1 < w[1].0));
}

#[test]
fn separators_have_their_kind() {
    let cases = [
        (' ', Seps::SPACE),
        ('\u{A0}', Seps::SPACE),
        ('\u{3000}', Seps::SPACE),
        ('\n', Seps::SPACE),
        ('-', Seps::DASH),
        ('\u{2013}', Seps::DASH),
        ('\u{FF0D}', Seps::DASH),
        ('.', Seps::DOT),
        ('\u{FF0E}', Seps::DOT),
        ('/', Seps::SLASH),
    ];
    for (c, seps) in cases {
        assert_eq!(classify(c), Class::Separator(seps), "{c:?}");
    }
    for c in [',', ':', '*', '+', '(', 'x', '#'] {
        assert_eq!(classify(c), Class::Other, "{c:?}");
    }
}

#[test]
fn offsets_count_characters() {
    let text = "café 🙂 ٤١١١١١١١١١١١١١١١ — 4111 1111 1111 1111";
    let verdict = scan(text);
    let spans: Vec<(usize, usize)> = verdict
        .findings()
        .iter()
        .map(|f| (f.start(), f.end()))
        .collect();
    assert_eq!(spans, [(7, 23), (26, 45)]);
    let chars: Vec<char> = text.chars().collect();
    assert_eq!(chars[7], '٤');
    assert_eq!(chars[44], '1');
}

#[test]
fn offsets_far_into_a_long_text_count_every_character() {
    let filler = "Жж 中文 ٣ a é 🙂 ".repeat(500);
    let text = format!("{filler}4111 1111 1111 1111{filler}5555555555554444");
    let verdict = scan(&text);
    let n = filler.chars().count();
    let spans: Vec<(usize, usize)> = verdict
        .findings()
        .iter()
        .map(|f| (f.start(), f.end()))
        .collect();
    assert_eq!(spans, [(n, n + 19), (2 * n + 19, 2 * n + 35)]);
}

#[test]
fn two_cards_and_a_code_give_two_findings() {
    let verdict = scan("4111 1111 1111 1111 737 and 5555-5555-5555-4444 12/27");
    let found: Vec<(Brand, &str)> = verdict
        .findings()
        .iter()
        .map(|f| (f.brand(), f.masked().as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Brand::Visa, "411111******1111"),
            (Brand::Mastercard, "555555******4444")
        ]
    );
}

#[test]
fn a_security_code_after_the_number_is_never_in_the_mask() {
    // 4111 1111 1111 1111 + a code that makes a valid 19-digit Visa.
    let mut digits = digits_of("4111111111111111000");
    complete_luhn(&mut digits);
    let code: String = digits[16..].iter().map(|d| char::from(b'0' + d)).collect();
    let verdict = scan(&format!("4111 1111 1111 1111 {code}"));
    assert_eq!(verdict.findings().len(), 1);
    assert_eq!(verdict.findings()[0].last4(), "1111");
}

#[test]
fn context_rules_stop_only_what_they_describe() {
    let phone = {
        let mut d = digits_of("573001234567");
        complete_luhn(&mut d);
        d.iter().map(|d| char::from(b'0' + d)).collect::<String>()
    };
    assert!(
        scan(&phone).is_blocked(),
        "the digits alone look like a Maestro card"
    );
    assert!(!scan(&format!("+{phone}")).is_blocked());
    assert!(!scan(&format!("+\u{200B}{phone}")).is_blocked());

    assert!(scan("6011111111111117").is_blocked());
    assert!(!scan("0.6011111111111117").is_blocked());
    assert!(!scan("0,6011111111111117").is_blocked());
    assert!(scan("12.6011 1111 1111 1117").is_blocked());

    assert!(scan("card4111111111111111").is_blocked());
    assert!(scan("4111111111111111exp").is_blocked());
    assert!(!scan("ab4111111111111111cd").is_blocked());
    assert!(!scan("a1b4111111111111111").is_blocked());
    assert!(!scan("4111111111111111c0ffee").is_blocked());
}

#[test]
fn ibans_and_uuids_are_recognised() {
    assert!(context::inside_iban("DE89 3704 0044 0532 0130 00", 10, 24));
    assert!(context::inside_iban("x GB29NWBK60161331926819 y", 10, 24));
    assert!(!context::inside_iban("DE88 3704 0044 0532 0130 00", 10, 24));
    let uuid = "id 550e8400-e29b-41d4-a716-446655440000.";
    assert!(context::inside_uuid(uuid, 27, 39));
    assert!(!context::inside_uuid(
        "550e8400-e29b-41d4-a716-4466554400001",
        24,
        36
    ));

    let mut d = digits_of("501800000009");
    complete_luhn(&mut d);
    let inner: String = d.iter().map(|d| char::from(b'0' + d)).collect();
    let grouped = format!("{}-{}-{}", &inner[..4], &inner[4..8], &inner[8..]);
    assert!(
        scan(&grouped).is_blocked(),
        "the digits alone look like a Maestro card"
    );
    assert!(!scan(&format!("12345678-{grouped}-123456789012")).is_blocked());
}

#[test]
fn left_context_is_read_past_invisible_characters() {
    let left = context::left_of("tel +\u{200B}\u{200B}5", 11);
    assert!(left.plus);
    let left = context::left_of("A1B", 3);
    assert!(left.glued && left.token_has_digit);
    let left = context::left_of("", 0);
    assert!(!left.glued && !left.plus);
}

#[test]
fn gaps_longer_than_the_limit_split_sequences() {
    let gap = " ".repeat(usize::from(MAX_GAP));
    assert!(scan(&format!("4111{gap}1111{gap}1111{gap}1111")).is_blocked());
    let gap = " ".repeat(usize::from(MAX_GAP) + 1);
    assert!(!scan(&format!("4111{gap}1111{gap}1111{gap}1111")).is_blocked());
}

#[test]
fn a_tail_is_bounded_and_never_printed() {
    let screen = super::Screen::new();
    let mut tail = ConversationTail::new();
    let verdict = screen.scan_continuing(&mut tail, "1200 1201 1202 1203 1204 1205 1206 12");
    assert!(!verdict.is_blocked());
    assert!(tail.digits() <= ConversationTail::MAX_DIGITS);
    assert!(!tail.is_empty());
    let shown = format!("{tail:?}");
    assert!(!shown.contains("12"), "{shown}");
    screen.scan_continuing(&mut tail, "thanks");
    assert!(tail.is_empty());
    screen.scan_continuing(&mut tail, "4111 1111");
    tail.clear();
    assert!(!screen.scan_continuing(&mut tail, "1111 1111").is_blocked());
}

#[test]
fn a_split_card_reports_start_zero_and_its_end_in_the_second_message() {
    let verdicts = scan_conversation(&["my card is 4111 1111", "1111 1111 ok?"]);
    assert!(!verdicts[0].is_blocked());
    let f = &verdicts[1].findings()[0];
    assert_eq!((f.start(), f.end()), (0, 9));
    assert_eq!(f.masked().as_str(), "411111******1111");
}

#[test]
fn a_number_inside_one_group_split_by_the_message_boundary() {
    let verdicts = scan_conversation(&["card 411", "1111111111111 thanks"]);
    assert!(verdicts[1].is_blocked());
    let verdicts = scan_conversation(&["card 4111 11", "11 1111 1111"]);
    assert!(verdicts[1].is_blocked());
}

#[test]
fn findings_never_print_the_number() {
    let verdict = scan("pay with 4012 8888 8888 1881 now");
    assert!(verdict.is_blocked());
    let printed = format!("{verdict:?} {}", verdict.findings()[0]);
    assert!(!printed.contains("8888"), "{printed}");
    assert!(printed.contains("401288******1881"), "{printed}");
    assert_eq!(verdict.findings()[0].last4(), "1881");
}

/// Adversarial inputs finish, and the findings stay within bounds. Speed is
/// measured in the benchmark, not asserted here.
#[test]
fn adversarial_inputs_finish_with_sane_findings() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let spaced: String = (0..100_000).map(|_| format!("{} ", next() % 10)).collect();
    let fours: String = (0..50_000)
        .map(|_| format!("{:04} ", next() % 10_000))
        .collect();
    let cards = "4111 1111 1111 1111 ".repeat(10_000);
    let run = "4".repeat(200_000);
    let invisible = format!("4{}", "\u{200B}".repeat(100_000));
    let mixed: String = (0..100_000)
        .map(|i| {
            char::from_u32(0x660 + (next() % 10) as u32 + if i % 2 == 0 { 0 } else { 0x9A0 })
                .unwrap_or('0')
        })
        .collect();
    for text in [&spaced, &fours, &cards, &run, &invisible, &mixed] {
        let verdict = scan(text);
        let digits = text
            .chars()
            .filter(|&c| digit_value(u32::from(c)).is_some())
            .count();
        assert!(verdict.findings().len() <= digits / 12);
    }
    assert_eq!(scan(&cards).findings().len(), 10_000);
}
