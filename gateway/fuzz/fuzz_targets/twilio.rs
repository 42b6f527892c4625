//! `/media/twilio`: Twilio Media Streams messages and Telnyx's variant go through the parser
//! and the checks the server applies before the media token is looked at. Nothing panics; a
//! refusal is a fixed reason that fits a close frame (it cannot carry input: its type is
//! `&'static str`); a payload decodes into whole 20 ms frames and a tail, nothing lost.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run twilio -- -max_total_time=60` (from `gateway/`)

#![no_main]

use base64::Engine;
use deskgate::voice::media::Rate;
use deskgate::voice::twilio::{check_start, decode_payload, parse, Dialect, Inbound, Refusal};
use deskgate::voice::{close, MAX_CLOSE_REASON};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Dialect::of(text);
    match parse(text) {
        Err(r) => refusal(&r),
        Ok(Inbound::Start {
            sequence_number,
            stream,
            start,
        }) => match check_start(sequence_number.as_ref(), stream, &start) {
            Ok(stream) => {
                assert!(!start.call.is_empty() && start.call.len() <= 64);
                let _ = stream;
            }
            Err(r) => refusal(&r),
        },
        Ok(Inbound::Media {
            sequence_number,
            media,
        }) => {
            if let Some(s) = sequence_number {
                if let Err(r) = s.value() {
                    refusal(&r);
                }
            }
            let mut rest = Vec::new();
            match decode_payload(&media.payload, &mut rest) {
                Ok(frames) => {
                    let n = Rate::Hz8000.frame_samples();
                    assert!(frames.iter().all(|f| f.len() == n));
                    assert!(rest.len() < n);
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(&media.payload)
                        .expect("accepted payloads are base64");
                    assert_eq!(frames.len() * n + rest.len(), bytes.len());
                }
                Err(r) => refusal(&r),
            }
        }
        Ok(Inbound::Dtmf { dtmf }) => match dtmf.checked() {
            Ok(d) => assert_eq!(d.len(), 1),
            Err(r) => refusal(&r),
        },
        Ok(_) => {}
    }
});

fn refusal(r: &Refusal) {
    assert!(r.reason.len() <= MAX_CLOSE_REASON, "{:?}", r.reason);
    assert!(
        [close::MALFORMED, close::POLICY, close::TOO_BIG].contains(&r.code),
        "{r:?}"
    );
}
