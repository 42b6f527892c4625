//! The card-number screen must never panic, on any text, alone or as the messages of
//! a conversation, and what it reports must stay within the text.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run screen -- -max_total_time=60` (from `gateway/`)
//!
//! The screen depends on std, serde and serde_json only, so the target builds its
//! source directly instead of the whole gateway.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/screen/mod.rs"]
mod screen;

use screen::{ConversationTail, Screen, Verdict};

fuzz_target!(|data: &[u8]| {
    let screen = Screen::new();
    if let Ok(text) = std::str::from_utf8(data) {
        check(&screen.scan(text), text, false);

        // The same text as two or three messages of one conversation.
        let mut tail = ConversationTail::new();
        let cuts = cut_points(text, data.first().copied().unwrap_or(0));
        let mut from = 0;
        for to in cuts.into_iter().chain([text.len()]) {
            let part = &text[from..to];
            check(&screen.scan_continuing(&mut tail, part), part, true);
            assert!(tail.digits() <= ConversationTail::MAX_DIGITS);
            from = to;
        }
    }

    // `deskgate scan` answers every input line, whatever it holds.
    let mut out = Vec::new();
    screen::cli::run(data, &mut out).unwrap();
    let lines_in = match data {
        [] => 0,
        _ => data.split(|&b| b == b'\n').count() - usize::from(data.ends_with(b"\n")),
    };
    let lines_out = out.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(lines_in, lines_out);
});

/// Char boundaries at which to split the text, chosen by one input byte.
fn cut_points(text: &str, seed: u8) -> Vec<usize> {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    if boundaries.is_empty() {
        return Vec::new();
    }
    let a = boundaries[usize::from(seed) % boundaries.len()];
    let b = boundaries[usize::from(seed.rotate_left(4)) % boundaries.len()];
    let mut cuts = vec![a.min(b), a.max(b)];
    cuts.dedup();
    cuts
}

fn check(verdict: &Verdict, text: &str, continuing: bool) {
    let chars = text.chars().count();
    let mut last_end = 0;
    for f in verdict.findings() {
        assert!(
            f.start() <= f.end() && f.end() <= chars,
            "offsets out of bounds"
        );
        assert!(
            f.start() >= last_end,
            "findings overlap or are out of order"
        );
        // Twelve digits at least, unless the number began in an earlier message.
        if !(continuing && f.start() == 0) {
            assert!(
                f.end() - f.start() >= 12,
                "a finding shorter than a card number"
            );
        }
        let masked = f.masked().as_str();
        assert!((12..=19).contains(&masked.len()));
        assert!(masked.chars().filter(|&c| c == '*').count() >= 6);
        assert!(f.last4().chars().all(|c| c.is_ascii_digit()));
        last_end = f.end();
    }
    assert!(verdict.findings().len() * 12 <= chars + 12 * usize::from(continuing));
}
