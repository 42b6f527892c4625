//! Staff TOTP (RFC 6238, on RFC 4226 HOTP) with totp-rs: seeds, enrolment (otpauth URI and a
//! QR code as SVG), and checks that accept one step of clock skew each way and never the same
//! or an earlier step twice.
//!
//! Authenticator apps agree on SHA-1, 6 digits and 30-second steps, so enrolment uses those;
//! the other hashes exist for the RFC test vectors.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per step.
pub const PERIOD: u64 = 30;
pub const DIGITS: usize = 6;
/// Steps of clock difference accepted each way.
pub const SKEW: i64 = 1;
/// Seed length for SHA-1 (RFC 4226 recommends 160 bits).
pub const SEED_BYTES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
    #[error("a code is six digits")]
    Format,
}

/// A TOTP seed; prints as `***`, zeroised on drop.
pub struct Seed(SecretBox<Vec<u8>>);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(***)")
    }
}

impl Seed {
    pub fn generate() -> Seed {
        let mut bytes = vec![0u8; SEED_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Seed(SecretBox::new(Box::new(bytes)))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Seed {
        Seed(SecretBox::new(Box::new(bytes)))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// One generator: a seed with its hash, digits and step length.
struct Generator(TOTP);

impl Generator {
    fn new(algorithm: Algorithm, digits: usize, period: u64, seed: &[u8]) -> Generator {
        // `new_unchecked`: the RFC vectors use 8 digits and seeds the checked constructor
        // would also accept; production seeds are always SEED_BYTES long.
        Generator(TOTP::new_unchecked(
            algorithm,
            digits,
            0,
            period,
            seed.to_vec(),
            None,
            String::new(),
        ))
    }

    fn staff(seed: &Seed) -> Generator {
        Generator::new(Algorithm::SHA1, DIGITS, PERIOD, seed.expose())
    }

    /// The code of a step (for HOTP, the counter with a period of one second).
    fn code(&self, step: u64) -> String {
        self.0.generate(step.saturating_mul(self.0.step))
    }
}

/// What a user needs to add the account to an authenticator app.
pub struct Enrolment {
    /// `otpauth://totp/…`; contains the seed, so it is a secret.
    pub uri: SecretString,
    /// The same URI as a QR code, an SVG document.
    pub qr_svg: SecretString,
    /// The seed in base32, for typing in by hand.
    pub secret_base32: SecretString,
}

pub fn enrolment(seed: &Seed, issuer: &str, account: &str) -> Result<Enrolment, TotpError> {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW as u8,
        PERIOD,
        seed.expose().to_vec(),
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    );
    let uri = totp.get_url();
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| TotpError::Qr(e.to_string()))?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        uri: SecretString::from(uri),
        qr_svg: SecretString::from(svg),
        secret_base32: SecretString::from(totp.get_secret_base32()),
    })
}

/// The step a time (seconds since the epoch) falls in.
pub fn step_of(unix_secs: u64) -> i64 {
    i64::try_from(unix_secs / PERIOD).unwrap_or(i64::MAX)
}

/// The step whose code `input` is, among the current step and one each way, considering only
/// steps after `after` (the last accepted one). The caller then stores the step atomically
/// so a concurrent second use of the same code fails there.
pub fn matching_step(
    seed: &Seed,
    input: &str,
    unix_secs: u64,
    after: Option<i64>,
) -> Result<Option<i64>, TotpError> {
    let typed: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != DIGITS || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Format);
    }
    let g = Generator::staff(seed);
    let now = step_of(unix_secs);
    let mut found = None;
    // Compare against every candidate, so timing does not tell which step matched.
    for step in (now - SKEW)..=(now + SKEW) {
        if step < 0 || after.is_some_and(|a| step <= a) {
            continue;
        }
        let code = g.code(step as u64);
        if bool::from(code.as_bytes().ct_eq(typed.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// A seed from its base32 form (as shown at enrolment), for tools that act as an
/// authenticator.
pub fn seed_from_base32(encoded: &str) -> Option<Seed> {
    totp_rs::Secret::Encoded(encoded.trim().to_string())
        .to_bytes()
        .ok()
        .map(Seed::from_bytes)
}

/// The current code of a seed; for tests and for tools that act as an authenticator.
pub fn code_at(seed: &Seed, unix_secs: u64) -> String {
    Generator::staff(seed).code(unix_secs / PERIOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let g = Generator::new(Algorithm::SHA1, 6, 1, SEED_SHA1);
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(g.code(counter as u64), *code, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_totp_vectors_for_all_three_hashes() {
        // RFC 6238 appendix B: the seed length matches the hash (20, 32 and 64 bytes).
        assert_eq!(SEED_SHA256.len(), 32);
        assert_eq!(SEED_SHA512.len(), 64);
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        let sha1 = Generator::new(Algorithm::SHA1, 8, 30, SEED_SHA1);
        let sha256 = Generator::new(Algorithm::SHA256, 8, 30, SEED_SHA256);
        let sha512 = Generator::new(Algorithm::SHA512, 8, 30, SEED_SHA512);
        for (t, c1, c256, c512) in table {
            assert_eq!(sha1.code(t / 30), c1, "SHA-1 at {t}");
            assert_eq!(sha256.code(t / 30), c256, "SHA-256 at {t}");
            assert_eq!(sha512.code(t / 30), c512, "SHA-512 at {t}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_each_way_and_no_more() {
        let seed = Seed::generate();
        let t = 1_800_000_000u64;
        let now = step_of(t);
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (t as i64 + offset * 30) as u64;
            let code = code_at(&seed, at);
            let got = matching_step(&seed, &code, t, None).unwrap();
            if ok {
                assert_eq!(got, Some(now + offset), "offset {offset}");
            } else {
                assert_eq!(got, None, "offset {offset}");
            }
        }
    }

    #[test]
    fn a_step_at_or_before_the_last_accepted_is_refused() {
        let seed = Seed::generate();
        let t = 1_800_000_000u64;
        let code = code_at(&seed, t);
        let step = matching_step(&seed, &code, t, None).unwrap().unwrap();
        assert_eq!(matching_step(&seed, &code, t, Some(step)).unwrap(), None);
        let earlier = code_at(&seed, t - 30);
        assert_eq!(matching_step(&seed, &earlier, t, Some(step)).unwrap(), None);
        let later = code_at(&seed, t + 30);
        assert_eq!(
            matching_step(&seed, &later, t + 30, Some(step)).unwrap(),
            Some(step + 1)
        );
    }

    #[test]
    fn enrolment_gives_an_otpauth_uri_and_an_svg_qr() {
        let seed = Seed::from_bytes(SEED_SHA1.to_vec());
        let e = enrolment(&seed, "ACME Support", "grace").unwrap();
        let uri = e.uri.expose_secret();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=ACME"), "{uri}");
        assert!(e.qr_svg.expose_secret().contains("<svg"));
        assert_eq!(
            e.secret_base32.expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(format!("{seed:?}"), "Seed(***)");
        let back = seed_from_base32(e.secret_base32.expose_secret()).unwrap();
        assert_eq!(back.expose(), SEED_SHA1);
    }

    #[test]
    fn malformed_codes_are_a_format_error() {
        let seed = Seed::generate();
        assert!(matching_step(&seed, "12345", 0, None).is_err());
        assert!(matching_step(&seed, "abcdef", 0, None).is_err());
    }
}
