//! `/media/pcm`, the agent's leg of a call: the start frame, the JSON control frames and the
//! binary PCM frames go through the checks the server applies. Nothing panics; a refusal is
//! a fixed reason that fits a close frame; what is accepted is what the protocol says.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run pcm -- -max_total_time=60` (from `gateway/`)

#![no_main]

use deskgate::voice::media::{self, Rate};
use deskgate::voice::pcm::{check_binary, parse_control, parse_start, Control, Refusal};
use deskgate::voice::{close, MAX_BINARY_FRAME, MAX_CLOSE_REASON};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match parse_start(text) {
            Ok((start, rate)) => {
                assert_eq!(start.kind, "start");
                assert_eq!(start.codec, "pcm16");
                assert_eq!(u64::from(rate.hz()), start.rate);
            }
            Err(r) => refusal(&r),
        }
        match parse_control(text) {
            Ok(Control::Mark { name }) => assert!((1..=64).contains(&name.len())),
            Ok(_) => {}
            Err(message) => assert!(message.len() <= MAX_CLOSE_REASON),
        }
    }
    for rate in [Rate::Hz8000, Rate::Hz16000] {
        match check_binary(data, rate) {
            Ok(pcm) => {
                assert!(data.len() <= MAX_BINARY_FRAME);
                assert!(!pcm.is_empty() && pcm.len() % rate.frame_samples() == 0);
                assert_eq!(media::pcm_to_le_bytes(&pcm), data, "PCM16 round-trips");
            }
            Err(r) => refusal(&r),
        }
    }
});

fn refusal(r: &Refusal) {
    assert!(r.reason.len() <= MAX_CLOSE_REASON, "{:?}", r.reason);
    assert!(
        [close::MALFORMED, close::TOO_BIG].contains(&r.code),
        "{r:?}"
    );
}
