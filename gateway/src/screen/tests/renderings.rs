//! Property: every generated card number is found, however it is written.

use proptest::prelude::*;
use proptest::sample::Index;

use super::super::unicode::digit_value;
use super::{
    brand_of, complete_luhn, digit_char, expected_mask, luhn_valid, scan, ISSUERS, SCRIPTS,
};

/// A valid card number of any brand, any of the brand's prefixes and lengths.
pub(super) fn pan() -> impl Strategy<Value = Vec<u8>> {
    (
        0..ISSUERS.len(),
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
        prop::collection::vec(0u8..10, 19),
    )
        .prop_map(|(issuer, prefix, length, value, rest)| {
            let issuer = &ISSUERS[issuer];
            let prefix = prefix.get(issuer.prefixes);
            let len = usize::from(*length.get(issuer.lengths));
            let span = (prefix.hi - prefix.lo + 1) as usize;
            let lead = prefix.lo + value.index(span) as u32;
            let mut digits: Vec<u8> = lead.to_string().bytes().map(|b| b - b'0').collect();
            let missing = len - digits.len();
            digits.extend_from_slice(&rest[..missing]);
            complete_luhn(&mut digits);
            digits
        })
}

#[derive(Clone, Debug)]
enum Layout {
    Contiguous,
    /// Groups of four, the last one shorter; one separator per gap.
    Fours(Vec<&'static str>),
    /// 4-6-rest, as American Express and Diners Club print.
    FourSix(&'static str),
    EachDigit(&'static str),
    /// Two groups split anywhere after the fourth digit.
    Loose(Index, &'static str),
}

#[derive(Clone, Debug)]
enum Script {
    One(u32),
    PerDigit(Vec<Index>),
}

#[derive(Clone, Debug)]
enum Decoration {
    None,
    /// An invisible character after each digit whose bit is set.
    Invisible(&'static str, u32),
    /// A combining mark after every digit.
    Marks(&'static str),
}

#[derive(Clone, Debug)]
enum Wrapper {
    Bare,
    Text(&'static str, &'static str),
    Json,
    Url,
    Html,
    AfterNumber(&'static str),
    WithCode,
    SecondCard,
}

const SEPARATORS: [&str; 16] = [
    " ",
    "-",
    ".",
    "/",
    "  ",
    " - ",
    "--",
    "\u{a0}",
    "\u{202f}",
    "\u{3000}",
    "\u{ff0d}",
    "\u{2013}",
    "\t",
    "\n",
    "\u{ff0e}",
    " \u{200b}",
];
const DIGIT_SEPARATORS: [&str; 5] = [" ", "-", ".", "\u{a0}", "  "];
const INVISIBLE: [&str; 7] = [
    "\u{200b}", "\u{200c}", "\u{200d}", "\u{2060}", "\u{feff}", "\u{ad}", "\u{200e}",
];
const MARKS: [&str; 5] = [
    "\u{332}",
    "\u{336}",
    "\u{301}",
    "\u{fe0f}\u{20e3}",
    "\u{20dd}",
];
const TEXTS: [(&str, &str); 12] = [
    ("my card number is ", ", can you check?"),
    ("Ma carte : ", " merci"),
    ("Номер карты ", " спасибо"),
    ("我的卡号是", "谢谢"),
    ("カード番号は", "です"),
    ("رقم البطاقة ", " شكرا"),
    ("मेरा कार्ड ", " है"),
    ("בכרטיס ", " תודה"),
    ("บัตร ", " ค่ะ"),
    ("Kartennummer: ", "."),
    ("card=", "&exp=12/27"),
    ("💳 ", " 🙏"),
];
const NUMBERS_BEFORE: [&str; 4] = ["2026 ", "order 12345 ", "12/27 ", "15.03.2026 "];

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Contiguous),
        prop::collection::vec(prop::sample::select(&SEPARATORS[..]), 1..=4).prop_map(Layout::Fours),
        prop::sample::select(&SEPARATORS[..]).prop_map(Layout::FourSix),
        prop::sample::select(&DIGIT_SEPARATORS[..]).prop_map(Layout::EachDigit),
        (any::<Index>(), prop::sample::select(&SEPARATORS[..5]))
            .prop_map(|(i, s)| Layout::Loose(i, s)),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    prop_oneof![
        3 => Just(Script::One(0x30)),
        3 => prop::sample::select(&SCRIPTS[..]).prop_map(Script::One),
        1 => prop::collection::vec(any::<Index>(), 19).prop_map(Script::PerDigit),
    ]
}

fn decoration() -> impl Strategy<Value = Decoration> {
    prop_oneof![
        4 => Just(Decoration::None),
        2 => (prop::sample::select(&INVISIBLE[..]), any::<u32>())
            .prop_map(|(s, bits)| Decoration::Invisible(s, bits)),
        1 => prop::sample::select(&MARKS[..]).prop_map(Decoration::Marks),
    ]
}

fn wrapper() -> impl Strategy<Value = Wrapper> {
    prop_oneof![
        2 => Just(Wrapper::Bare),
        3 => prop::sample::select(&TEXTS[..]).prop_map(|(a, b)| Wrapper::Text(a, b)),
        1 => Just(Wrapper::Json),
        1 => Just(Wrapper::Url),
        1 => Just(Wrapper::Html),
        1 => prop::sample::select(&NUMBERS_BEFORE[..]).prop_map(Wrapper::AfterNumber),
        1 => Just(Wrapper::WithCode),
        1 => Just(Wrapper::SecondCard),
    ]
}

/// Group sizes of a layout for a number of `len` digits.
fn sizes(layout: &Layout, len: usize) -> Vec<usize> {
    match layout {
        Layout::Contiguous => vec![len],
        Layout::Fours(_) => {
            let mut s = vec![4; len / 4];
            if len % 4 > 0 {
                s.push(len % 4);
            }
            s
        }
        Layout::FourSix(_) => vec![4, 6, len - 10],
        Layout::EachDigit(_) => vec![1; len],
        Layout::Loose(i, _) => {
            let first = 4 + i.index(len - 7);
            vec![first, len - first]
        }
    }
}

fn separator(layout: &Layout, gap: usize) -> &'static str {
    match layout {
        Layout::Fours(seps) => seps[gap % seps.len()],
        Layout::FourSix(s) | Layout::EachDigit(s) | Layout::Loose(_, s) => s,
        Layout::Contiguous => "",
    }
}

fn render(digits: &[u8], layout: &Layout, script: &Script, decoration: &Decoration) -> String {
    let mut out = String::new();
    let mut i = 0;
    for (gap, size) in sizes(layout, digits.len()).into_iter().enumerate() {
        if gap > 0 {
            out.push_str(separator(layout, gap - 1));
        }
        for &d in &digits[i..i + size] {
            let zero = match script {
                Script::One(zero) => *zero,
                Script::PerDigit(picks) => *picks[i].get(&SCRIPTS),
            };
            out.push(digit_char(zero, d));
            match decoration {
                Decoration::None => {}
                Decoration::Invisible(s, bits) => {
                    if bits & (1 << i) != 0 {
                        out.push_str(s);
                    }
                }
                Decoration::Marks(s) => out.push_str(s),
            }
            i += 1;
        }
    }
    out
}

fn wrap(number: &str, wrapper: &Wrapper) -> String {
    match wrapper {
        Wrapper::Bare => number.to_owned(),
        Wrapper::Text(before, after) => format!("{before}{number}{after}"),
        Wrapper::Json => format!("{{\"pan\":\"{number}\",\"exp\":\"12/27\"}}"),
        Wrapper::Url => format!("https://shop.example/pay?card={number}&cvv=123"),
        Wrapper::Html => format!("<tr><td>{number}</td></tr>"),
        Wrapper::AfterNumber(before) => format!("{before}{number}"),
        Wrapper::WithCode => format!("{number} 123"),
        Wrapper::SecondCard => format!("{number} and 5555555555554444"),
    }
}

/// The digits, by value, of the characters `start..end` of `text`.
fn digits_between(text: &str, start: usize, end: usize) -> Vec<u8> {
    text.chars()
        .skip(start)
        .take(end - start)
        .filter_map(|c| digit_value(u32::from(c)))
        .collect()
}

/// Whether a shorter number is found instead, by design: a 1–3 digit last group
/// after a group of four reads as a security code when the digits before it are a
/// valid number too.
fn code_like_ending(digits: &[u8], layout: &Layout) -> bool {
    let Layout::Fours(_) = layout else {
        return false;
    };
    let short = digits.len() % 4;
    if short == 0 {
        return false;
    }
    let head = &digits[..digits.len() - short];
    head.len() >= 12 && luhn_valid(head) && brand_of(head).is_some()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_rendering_of_a_card_number_is_found(
        digits in pan(),
        layout in layout(),
        script in script(),
        decoration in decoration(),
        wrapper in wrapper(),
    ) {
        prop_assume!(!matches!(
            (&layout, &wrapper),
            (Layout::Loose(..), Wrapper::AfterNumber(_))
        ));
        prop_assert!(brand_of(&digits).is_some());
        let number = render(&digits, &layout, &script, &decoration);
        let text = wrap(&number, &wrapper);
        let verdict = scan(&text);
        prop_assert!(verdict.is_blocked(), "not found in {:?}", text);
        if !code_like_ending(&digits, &layout) {
            let first = &verdict.findings()[0];
            prop_assert_eq!(first.masked().as_str(), expected_mask(&digits), "in {:?}", text);
            prop_assert_eq!(Some(first.brand()), brand_of(&digits));
            prop_assert_eq!(digits_between(&text, first.start(), first.end()), digits.clone());
        }
        if let Wrapper::SecondCard = wrapper {
            prop_assert!(verdict.findings().len() >= 2, "second card missed in {:?}", text);
        }
    }

    #[test]
    fn a_card_number_split_across_messages_is_found(
        digits in pan(),
        layout in layout(),
        script in script(),
        cut in any::<Index>(),
    ) {
        // Split at a gap between groups, or between two digits of a group.
        let number = render(&digits, &layout, &script, &Decoration::None);
        let chars: Vec<char> = number.chars().collect();
        let at = 1 + cut.index(chars.len() - 1);
        let first: String = chars[..at].iter().collect();
        let second: String = chars[at..].iter().collect();
        let first_msg = format!("my card is {first}");
        let verdicts = super::scan_conversation(&[&first_msg, &second]);
        prop_assert!(
            verdicts[0].is_blocked() || verdicts[1].is_blocked(),
            "missed {:?} then {:?}", first_msg, second
        );
        if !verdicts[0].is_blocked() {
            prop_assert_eq!(verdicts[1].findings()[0].start(), 0);
        }
    }
}
