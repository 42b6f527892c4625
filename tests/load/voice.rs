//! The two legs of a call as the generator speaks them (docs/voice.md): the phone leg's Twilio
//! Media Streams events on `/media/twilio`, the agent leg's start frame and binary PCM16 on
//! `/media/pcm`, the media token that admits the phone leg, and the stamp every 20 ms frame
//! carries in its audio so that the far leg can tell which frame of which call arrived, and
//! when it was sent.
//!
//! The stamp is [`STAMP_CODES`] μ-law codes at the start of the frame, one nibble each, coded
//! `0xF0 | nibble`: quiet, positive samples (they decode to 0..=120). With an 8 kHz agent leg
//! the gateway does not resample: the caller's μ-law is decoded to PCM16 for the agent, and
//! the agent's PCM16 is μ-law-encoded for the phone. G.711 encoding is the exact inverse of
//! decoding on decoded values, so the agent leg reads a stamp by encoding the samples it
//! receives, and sends the decoded values of a stamp's codes for the phone leg to read.

use std::fmt::Write as _;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Samples (and μ-law bytes) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Bytes of one 20 ms PCM16 frame on the agent leg.
pub const PCM_FRAME_BYTES: usize = 2 * FRAME_SAMPLES;
/// Call index (4 bytes), frame number (4), send time (8) and a check (2), a nibble a code.
pub const STAMP_CODES: usize = 2 * 18;
/// μ-law silence: the code of 0, and what the rest of a frame after its stamp holds.
const SILENCE: u8 = 0xFF;

/// Which frame of which call, and when it left the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The call's index in this run.
    pub call: u32,
    /// The frame's number in its direction, from 1.
    pub seq: u32,
    /// Microseconds on the generator's clock.
    pub sent_us: u64,
}

/// Why a received frame carries no stamp the generator wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// Not 160 samples.
    Length,
    /// A code outside the stamp's alphabet: the audio was changed on the way.
    Code,
    /// The check does not match.
    Check,
}

impl Unreadable {
    pub fn label(&self) -> &'static str {
        match self {
            Unreadable::Length => "a frame that is not 20 ms",
            Unreadable::Code => "a frame whose stamp was altered",
            Unreadable::Check => "a frame whose stamp fails its check",
        }
    }
}

fn check(bytes: &[u8; 16]) -> u16 {
    // Fletcher-16: catches a swapped or shifted nibble, which a plain sum would not.
    let (mut a, mut b) = (0u16, 0u16);
    for &x in bytes {
        a = (a + u16::from(x)) % 255;
        b = (b + a) % 255;
    }
    (b << 8) | a
}

impl Stamp {
    fn bytes(&self) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[..4].copy_from_slice(&self.call.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.sent_us.to_be_bytes());
        let mut body = [0u8; 16];
        body.copy_from_slice(&out[..16]);
        out[16..].copy_from_slice(&check(&body).to_be_bytes());
        out
    }

    /// The frame as μ-law codes: the stamp, then silence.
    pub fn ulaw(&self) -> [u8; FRAME_SAMPLES] {
        let mut frame = [SILENCE; FRAME_SAMPLES];
        for (i, b) in self.bytes().iter().enumerate() {
            frame[2 * i] = 0xF0 | (b >> 4);
            frame[2 * i + 1] = 0xF0 | (b & 0x0F);
        }
        frame
    }

    /// The frame as the agent leg sends it: little-endian PCM16, the decoded μ-law codes.
    pub fn pcm_le(&self) -> Vec<u8> {
        self.ulaw()
            .iter()
            .flat_map(|&c| ulaw_decode(c).to_le_bytes())
            .collect()
    }

    /// Reads the stamp from a frame of μ-law codes.
    pub fn from_ulaw(codes: &[u8]) -> Result<Stamp, Unreadable> {
        if codes.len() != FRAME_SAMPLES {
            return Err(Unreadable::Length);
        }
        let mut bytes = [0u8; 18];
        for (i, pair) in codes[..STAMP_CODES].chunks_exact(2).enumerate() {
            if pair[0] & 0xF0 != 0xF0 || pair[1] & 0xF0 != 0xF0 {
                return Err(Unreadable::Code);
            }
            bytes[i] = (pair[0] << 4) | (pair[1] & 0x0F);
        }
        let mut body = [0u8; 16];
        body.copy_from_slice(&bytes[..16]);
        if check(&body).to_be_bytes() != bytes[16..] {
            return Err(Unreadable::Check);
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&bytes[8..16]);
        Ok(Stamp {
            call: u32_at(0),
            seq: u32_at(4),
            sent_us: u64::from_be_bytes(sent),
        })
    }

    /// Reads the stamp from a binary frame of the agent leg: PCM16 encoded back to μ-law.
    pub fn from_pcm_le(bytes: &[u8]) -> Result<Stamp, Unreadable> {
        if bytes.len() != PCM_FRAME_BYTES {
            return Err(Unreadable::Length);
        }
        let codes: Vec<u8> = bytes
            .chunks_exact(2)
            .map(|b| ulaw_encode(i16::from_le_bytes([b[0], b[1]])))
            .collect();
        Stamp::from_ulaw(&codes)
    }
}

// --- G.711 μ-law, as in the ITU-T reference (14-bit magnitude, bias 0x84, eight segments) ----

const BIAS: i32 = 0x84;
const CLIP: i32 = 8159;
const SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    let v = v.min(CLIP) + (BIAS >> 2);
    match SEG_END.iter().position(|&end| v <= end) {
        None => 0x7F ^ mask,
        Some(seg) => ((((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F)) as u8) ^ mask,
    }
}

pub fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    v as i16
}

// --- The phone leg: Twilio Media Streams ----------------------------------------------------

/// `v1.<site>.<call>.<expires>.<hex HMAC-SHA256>`, signed with the site's identity secret as
/// a site's backend signs it for its telephony provider.
pub fn media_token(secret: &str, site: &str, call: &str, expires: u64) -> String {
    // An HMAC takes a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("deskgate-media-v1\n{site}\n{call}\n{expires}").as_bytes());
    let sig = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in sig {
        let _ = write!(hex, "{b:02x}");
    }
    format!("v1.{site}.{call}.{expires}.{hex}")
}

pub fn connected() -> String {
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
}

/// The `start` event, in Twilio's shape: μ-law at 8 kHz mono, the token in `customParameters`.
pub fn start(stream: &str, call: &str, token: &str) -> String {
    serde_json::json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream,
        "start": {
            "streamSid": stream,
            "accountSid": "ACdeskgateload",
            "callSid": call,
            "tracks": ["inbound"],
            "customParameters": { "token": token, "from": "+15550100" },
            "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
        },
    })
    .to_string()
}

/// The `media` event carrying frame `seq` (Twilio's `sequenceNumber` counts `start` as 1).
pub fn media(stream: &str, seq: u32, frame: &[u8; FRAME_SAMPLES], out: &mut String) {
    out.clear();
    let _ = write!(
        out,
        r#"{{"event":"media","sequenceNumber":"{n}","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{ms}","payload":""#,
        n = u64::from(seq) + 1,
        ms = u64::from(seq.saturating_sub(1)) * 20,
    );
    base64::engine::general_purpose::STANDARD.encode_string(frame, out);
    let _ = write!(out, r#""}},"streamSid":"{stream}"}}"#);
}

pub fn stop(stream: &str, seq: u32) -> String {
    format!(
        r#"{{"event":"stop","sequenceNumber":"{}","streamSid":"{stream}","stop":{{}}}}"#,
        u64::from(seq) + 2
    )
}

/// What the gateway sends the phone leg; only `media` is read further.
#[derive(Deserialize)]
pub struct PhoneIn<'a> {
    pub event: &'a str,
    #[serde(borrow)]
    pub media: Option<PhoneMedia<'a>>,
}

#[derive(Deserialize)]
pub struct PhoneMedia<'a> {
    pub payload: &'a str,
}

/// The μ-law codes of a `media` event's payload.
pub fn payload_codes(payload: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()
}

// --- The agent leg: `/media/pcm` ------------------------------------------------------------

/// The first frame of the agent leg: PCM16 at 8 kHz, so the gateway does not resample.
pub fn agent_start(session: &str, call: &str) -> String {
    serde_json::json!({
        "type": "start", "token": session, "call": call, "codec": "pcm16", "rate": 8000,
    })
    .to_string()
}

/// Text frames of the agent leg: `started` (with the rate), `ended`, and control events.
#[derive(Deserialize)]
pub struct AgentIn<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub rate: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_table_values() {
        // ITU-T G.711: code 0xFF is 0, 0x80 the largest positive, 0x00 the largest negative.
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(0), 0xFF);
        // Every code but 0x7F (negative zero, decoded to 0 like 0xFF) round-trips.
        for code in (0..=255u8).filter(|&c| c != 0x7F) {
            assert_eq!(ulaw_encode(ulaw_decode(code)), code, "{code:#x}");
        }
    }

    #[test]
    fn a_stamp_survives_both_directions() {
        let stamp = Stamp {
            call: 999,
            seq: 3000,
            sent_us: 0x0123_4567_89ab_cdef,
        };
        assert_eq!(Stamp::from_ulaw(&stamp.ulaw()), Ok(stamp));
        // Phone → agent: the gateway decodes μ-law to PCM16.
        let pcm: Vec<u8> = stamp
            .ulaw()
            .iter()
            .flat_map(|&c| ulaw_decode(c).to_le_bytes())
            .collect();
        assert_eq!(Stamp::from_pcm_le(&pcm), Ok(stamp));
        // Agent → phone: the gateway encodes the agent's PCM16 to μ-law.
        let sent = stamp.pcm_le();
        let codes: Vec<u8> = sent
            .chunks_exact(2)
            .map(|b| ulaw_encode(i16::from_le_bytes([b[0], b[1]])))
            .collect();
        assert_eq!(Stamp::from_ulaw(&codes), Ok(stamp));
    }

    #[test]
    fn altered_frames_are_told_apart() {
        let stamp = Stamp {
            call: 1,
            seq: 2,
            sent_us: 3,
        };
        let mut codes = stamp.ulaw();
        // The two nibbles of the last byte of `seq` (0x02) trade places.
        codes.swap(14, 15);
        assert_eq!(Stamp::from_ulaw(&codes), Err(Unreadable::Check));
        codes[0] = 0x10;
        assert_eq!(Stamp::from_ulaw(&codes), Err(Unreadable::Code));
        assert_eq!(Stamp::from_ulaw(&codes[..80]), Err(Unreadable::Length));
        assert_eq!(Stamp::from_pcm_le(&[0; 640]), Err(Unreadable::Length));
        assert_eq!(
            Stamp::from_ulaw(&[0xFF; FRAME_SAMPLES]),
            Err(Unreadable::Check)
        );
    }

    #[test]
    fn media_events_are_twilios() {
        let frame = Stamp {
            call: 7,
            seq: 1,
            sent_us: 9,
        }
        .ulaw();
        let mut text = String::new();
        media("MZ1", 1, &frame, &mut text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "media");
        assert_eq!(v["sequenceNumber"], "2");
        assert_eq!(v["streamSid"], "MZ1");
        let payload = v["media"]["payload"].as_str().unwrap();
        assert_eq!(payload_codes(payload).unwrap(), frame.to_vec());
        let parsed: PhoneIn = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.media.unwrap().payload, payload);
        let start: serde_json::Value =
            serde_json::from_str(&start("MZ1", "CA1", "v1.demo.CA1.9.ab")).unwrap();
        assert_eq!(
            start["start"]["customParameters"]["token"],
            "v1.demo.CA1.9.ab"
        );
        assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
        let stop: serde_json::Value = serde_json::from_str(&stop("MZ1", 5)).unwrap();
        assert_eq!(
            (stop["event"].as_str(), stop["sequenceNumber"].as_str()),
            (Some("stop"), Some("7"))
        );
    }

    #[test]
    fn the_media_token_is_the_documented_hmac() {
        // Python: hmac.new(b"a-site-identity-secret",
        //   b"deskgate-media-v1\ndemo\nCA1\n1767225600", hashlib.sha256).hexdigest()
        let t = media_token("a-site-identity-secret", "demo", "CA1", 1_767_225_600);
        assert_eq!(
            t,
            "v1.demo.CA1.1767225600.\
             b48d7e2fb15096dfb5853f9e7c1573692c7b3e24d469803c331651c046762b2e"
        );
    }
}
