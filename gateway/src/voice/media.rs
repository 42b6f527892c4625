//! The one audio format inside the gateway: mono PCM16 in 20 ms frames at 8 or 16 kHz, and
//! the conversions at the edges: G.711 μ-law (telephony) and 8 ↔ 16 kHz resampling.

/// Every frame carries this much audio.
pub const FRAME_MS: u32 = 20;

/// The two rates the gateway carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Rate {
    /// Telephony (G.711).
    #[serde(rename = "8000")]
    Hz8000,
    /// Browser microphones (wideband).
    #[serde(rename = "16000")]
    Hz16000,
}

impl Rate {
    pub fn parse(hz: u64) -> Option<Rate> {
        match hz {
            8000 => Some(Rate::Hz8000),
            16000 => Some(Rate::Hz16000),
            _ => None,
        }
    }

    pub fn hz(self) -> u32 {
        match self {
            Rate::Hz8000 => 8000,
            Rate::Hz16000 => 16000,
        }
    }

    /// Samples in one 20 ms frame.
    pub fn frame_samples(self) -> usize {
        (self.hz() * FRAME_MS / 1000) as usize
    }
}

// --- G.711 μ-law ---------------------------------------------------------------------------
// As in ITU-T G.711 and its reference implementation (Sun's g711.c): 14-bit magnitude, bias
// 0x84, eight segments, the code word stored inverted.

const BIAS: i32 = 0x84;
const CLIP: i32 = 8159;
const SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

/// One linear sample to its μ-law code.
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
        Some(seg) => {
            let code = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
            (code as u8) ^ mask
        }
    }
}

/// One μ-law code to its linear sample.
pub fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    v as i16
}

pub fn ulaw_to_pcm(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| ulaw_decode(c)).collect()
}

pub fn pcm_to_ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| ulaw_encode(s)).collect()
}

/// Little-endian PCM16 bytes (the wire form of `/media/pcm`) to samples; an odd length is
/// not PCM16.
pub fn pcm_from_le_bytes(bytes: &[u8]) -> Option<Vec<i16>> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect(),
    )
}

pub fn pcm_to_le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

// --- 8 ↔ 16 kHz ----------------------------------------------------------------------------

/// Taps of the half-band low-pass filter both directions use: a Hamming-windowed sinc with its
/// cut-off at 4 kHz of the 16 kHz rate. Odd, so its delay is a whole number of samples.
const TAPS: usize = 31;

fn halfband() -> [f32; TAPS] {
    let mut h = [0f32; TAPS];
    let mid = (TAPS / 2) as f32;
    for (n, tap) in h.iter_mut().enumerate() {
        let x = n as f32 - mid;
        let sinc = if x == 0.0 {
            0.5
        } else {
            (std::f32::consts::PI * 0.5 * x).sin() / (std::f32::consts::PI * x)
        };
        let w = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * n as f32 / (TAPS as f32 - 1.0)).cos();
        *tap = sinc * w;
    }
    let sum: f32 = h.iter().sum();
    for tap in h.iter_mut() {
        *tap /= sum;
    }
    h
}

fn clamp(v: f32) -> i16 {
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// A resampler for one stream, frame after frame: it keeps the filter's history, so frame
/// boundaries do not click. Delay: 15 samples at 16 kHz (under 1 ms).
///
/// The half-band filter is zero at every other tap but the centre, and zero-stuffing leaves
/// every other input zero, so only the taps that meet a sample are computed: 17 products per
/// 8 kHz output going down, 16 and 1 for the two 16 kHz outputs of each sample going up.
pub struct Resampler {
    /// The filter's even taps (h[0], h[2], …, h[30]).
    even: [f32; TAPS / 2 + 1],
    /// The centre tap, h[15].
    centre: f32,
    /// Past input: the last 15 samples at 8 kHz going up, the last 30 at 16 kHz going down.
    history: Vec<f32>,
}

impl Default for Resampler {
    fn default() -> Self {
        let h = halfband();
        let mut even = [0f32; TAPS / 2 + 1];
        for (m, tap) in even.iter_mut().enumerate() {
            *tap = h[2 * m];
        }
        Resampler {
            even,
            centre: h[TAPS / 2],
            history: Vec::new(),
        }
    }
}

impl Resampler {
    fn with_history(&mut self, keep: usize, samples: &[i16]) -> Vec<f32> {
        let mut buf = std::mem::take(&mut self.history);
        if buf.len() != keep {
            buf = vec![0.0; keep];
        }
        buf.extend(samples.iter().map(|&s| f32::from(s)));
        buf
    }

    /// 8 kHz to 16 kHz: zero-stuffing, then the low-pass (gain 2 for the stuffed zeros).
    pub fn up(&mut self, samples: &[i16]) -> Vec<i16> {
        const KEEP: usize = TAPS / 2;
        let buf = self.with_history(KEEP, samples);
        let mut out = Vec::with_capacity(samples.len() * 2);
        for k in 0..samples.len() {
            let at = KEEP + k;
            let acc: f32 = (0..self.even.len())
                .map(|m| self.even[m] * buf[at - m])
                .sum();
            out.push(clamp(2.0 * acc));
            out.push(clamp(2.0 * self.centre * buf[at - 7]));
        }
        self.history = buf[buf.len() - KEEP..].to_vec();
        out
    }

    /// 16 kHz to 8 kHz: the low-pass, then every second sample.
    pub fn down(&mut self, samples: &[i16]) -> Vec<i16> {
        const KEEP: usize = TAPS - 1;
        let buf = self.with_history(KEEP, samples);
        let mut out = Vec::with_capacity(samples.len() / 2);
        for i in (0..samples.len()).step_by(2) {
            let at = KEEP + i;
            let acc: f32 = (0..self.even.len())
                .map(|m| self.even[m] * buf[at - 2 * m])
                .sum::<f32>()
                + self.centre * buf[at - TAPS / 2];
            out.push(clamp(acc));
        }
        self.history = buf[buf.len() - KEEP..].to_vec();
        out
    }
}

/// Converts one stream's frames from one rate to another (or passes them through).
pub struct Converter {
    from: Rate,
    to: Rate,
    resampler: Resampler,
}

impl Converter {
    pub fn new(from: Rate, to: Rate) -> Converter {
        Converter {
            from,
            to,
            resampler: Resampler::default(),
        }
    }

    pub fn convert(&mut self, samples: &[i16]) -> Vec<i16> {
        match (self.from, self.to) {
            (Rate::Hz8000, Rate::Hz16000) => self.resampler.up(samples),
            (Rate::Hz16000, Rate::Hz8000) => self.resampler.down(samples),
            _ => samples.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, rate: u32, n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    /// Frequency from the rate of upward zero crossings.
    fn frequency(s: &[i16], rate: u32) -> f32 {
        let ups = s.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        ups as f32 * rate as f32 / s.len() as f32
    }

    fn rms(s: &[i16]) -> f32 {
        (s.iter().map(|&x| f32::from(x).powi(2)).sum::<f32>() / s.len() as f32).sqrt()
    }

    #[test]
    fn ulaw_decodes_the_g711_table_values() {
        // Code words and their linear values (16-bit scale) from the G.711 reference.
        for (code, linear) in [
            (0xFFu8, 0i16),
            (0x7F, 0),
            (0x80, 32124),
            (0x00, -32124),
            (0xF0, 120),
            (0x70, -120),
            (0xEF, 132),
            (0xE0, 372),
            (0xDF, 396),
            (0x8F, 16764),
            (0xC0, 1884),
            (0x40, -1884),
        ] {
            assert_eq!(ulaw_decode(code), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn ulaw_encodes_the_g711_decision_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F ^ 0x01);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(32124), 0x80);
        assert_eq!(ulaw_encode(120), 0xF0);
        assert_eq!(ulaw_encode(-120), 0x70);
    }

    #[test]
    fn every_ulaw_code_round_trips() {
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            // 0x7F is negative zero; it encodes back as positive zero.
            let expect = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back, expect, "code {code:#04x}");
        }
    }

    #[test]
    fn ulaw_error_stays_within_half_a_step() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = ulaw_decode(ulaw_encode(s));
            let err = (i32::from(s) - i32::from(back)).abs();
            // Steps double with each segment, from 8 near zero to 1024 at the top: half a step
            // is under |s|/32, plus what the 14-bit shift drops.
            let bound = i32::from(s).abs() / 32 + 8;
            assert!(err <= bound, "{s} → {back}: {err} > {bound}");
        }
    }

    #[test]
    fn pcm_bytes_are_little_endian_and_even() {
        assert_eq!(pcm_to_le_bytes(&[1, -2]), vec![1, 0, 0xFE, 0xFF]);
        assert_eq!(pcm_from_le_bytes(&[1, 0, 0xFE, 0xFF]), Some(vec![1, -2]));
        assert_eq!(pcm_from_le_bytes(&[1, 0, 0]), None);
    }

    #[test]
    fn frames_hold_20_ms() {
        assert_eq!(Rate::Hz8000.frame_samples(), 160);
        assert_eq!(Rate::Hz16000.frame_samples(), 320);
        assert_eq!(Rate::parse(16000), Some(Rate::Hz16000));
        assert_eq!(Rate::parse(44100), None);
    }

    #[test]
    fn a_sine_keeps_its_frequency_through_the_resampler() {
        // One second, in 20 ms frames, as the gateway feeds it.
        for hz in [440.0f32, 1000.0, 3000.0] {
            let s8 = sine(hz, 8000, 8000, 10000.0);
            let mut up = Resampler::default();
            let s16: Vec<i16> = s8.chunks(160).flat_map(|f| up.up(f)).collect();
            assert_eq!(s16.len(), 16000);
            let f = frequency(&s16[100..], 16000);
            assert!((f - hz).abs() < hz * 0.01, "up {hz}: {f}");
            assert!(
                (rms(&s16[100..]) - rms(&s8)).abs() < rms(&s8) * 0.05,
                "up {hz} level"
            );

            let s16 = sine(hz, 16000, 16000, 10000.0);
            let mut down = Resampler::default();
            let s8: Vec<i16> = s16.chunks(320).flat_map(|f| down.down(f)).collect();
            assert_eq!(s8.len(), 8000);
            let f = frequency(&s8[50..], 8000);
            assert!((f - hz).abs() < hz * 0.01, "down {hz}: {f}");
            assert!(
                (rms(&s8[50..]) - rms(&s16)).abs() < rms(&s16) * 0.05,
                "down {hz} level"
            );
        }
    }

    #[test]
    fn the_shortcuts_compute_the_full_convolution() {
        let h = halfband();
        let x: Vec<i16> = (0..480)
            .map(|i| ((i * 7919) % 20011) as i16 - 10000)
            .collect();
        let conv = |s: &[f32], t: usize| -> f32 {
            (0..TAPS).filter(|&j| t >= j).map(|j| h[j] * s[t - j]).sum()
        };
        let stuffed: Vec<f32> = x.iter().flat_map(|&v| [f32::from(v), 0.0]).collect();
        let mut up = Resampler::default();
        let fast: Vec<i16> = x.chunks(160).flat_map(|f| up.up(f)).collect();
        for (t, &y) in fast.iter().enumerate() {
            assert!(
                (f32::from(y) - 2.0 * conv(&stuffed, t)).abs() <= 1.0,
                "up {t}"
            );
        }
        let plain: Vec<f32> = x.iter().map(|&v| f32::from(v)).collect();
        let mut down = Resampler::default();
        let fast: Vec<i16> = x.chunks(160).flat_map(|f| down.down(f)).collect();
        for (k, &y) in fast.iter().enumerate() {
            assert!(
                (f32::from(y) - conv(&plain, 2 * k)).abs() <= 1.0,
                "down {k}"
            );
        }
    }

    #[test]
    fn downsampling_removes_what_8_khz_cannot_carry() {
        // 6 kHz would alias to 2 kHz at 8 kHz; the filter takes it out.
        let s16 = sine(6000.0, 16000, 16000, 10000.0);
        let mut down = Resampler::default();
        let s8: Vec<i16> = s16.chunks(320).flat_map(|f| down.down(f)).collect();
        assert!(rms(&s8[50..]) < 10000.0 * 0.05, "{}", rms(&s8[50..]));
    }

    #[test]
    fn a_tone_survives_ulaw_and_both_resamplings() {
        let pcm = sine(1000.0, 16000, 16000, 8000.0);
        let mut down = Converter::new(Rate::Hz16000, Rate::Hz8000);
        let mut up = Converter::new(Rate::Hz8000, Rate::Hz16000);
        let out: Vec<i16> = pcm
            .chunks(320)
            .flat_map(|f| {
                let law = pcm_to_ulaw(&down.convert(f));
                up.convert(&ulaw_to_pcm(&law))
            })
            .collect();
        let f = frequency(&out[200..], 16000);
        assert!((f - 1000.0).abs() < 10.0, "{f}");
    }
}
