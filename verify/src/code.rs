//! The one-time code a customer receives: six decimal digits from the operating system's
//! CSPRNG, stored only as HMAC-SHA256 under a server key and compared in constant time.

use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Number of digits of a code.
pub const DIGITS: usize = 6;

/// A code in clear: exists only between generation and the email, and between the customer's
/// `verify` frame and the check. Prints as `***`; zeroised when dropped.
pub struct Code(SecretString);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(***)")
    }
}

impl Code {
    /// A fresh code, uniform over 000000–999999.
    pub fn generate() -> Code {
        let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
        Code(SecretString::from(format!("{n:06}")))
    }

    /// What the customer typed: six digits, spaces around or between them ignored.
    pub fn parse(input: &str) -> Result<Code, CodeFormatError> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        let code = SecretString::from(digits);
        let s = code.expose_secret();
        if s.len() != DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeFormatError);
        }
        Ok(Code(code))
    }

    /// The digits, for the email only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a code is six digits")]
pub struct CodeFormatError;

/// The server key codes are hashed under. A database copy alone does not let anyone test
/// the million possible codes against a stored hash.
pub struct CodeKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(***)")
    }
}

impl CodeKey {
    pub fn new(key: [u8; 32]) -> CodeKey {
        CodeKey(SecretBox::new(Box::new(key)))
    }

    /// The keyed hash of a code for one challenge. `salt` is the challenge's own random salt,
    /// so equal codes of two challenges never hash alike.
    pub fn hash(&self, salt: &[u8], code: &Code) -> [u8; 32] {
        self.mac(b"deskgate-otp-v1", salt, code.expose().as_bytes())
    }

    /// Whether `code` is the one hashed as `stored`, in time independent of where they differ.
    pub fn matches(&self, salt: &[u8], code: &Code, stored: &[u8]) -> bool {
        let h = self.hash(salt, code);
        h.ct_eq(stored).into()
    }

    /// The keyed hash of any short secret under a label (recovery codes use it too).
    pub fn mac(&self, label: &[u8], salt: &[u8], data: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; this cannot fail.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(&(label.len() as u64).to_be_bytes());
        m.update(label);
        m.update(&(salt.len() as u64).to_be_bytes());
        m.update(salt);
        m.update(data);
        m.finalize().into_bytes().into()
    }
}

/// A random salt for a new challenge.
pub fn salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| Code::generate().expose().to_string())
            .collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.len() > 190, "codes repeat too often: {}", codes.len());
    }

    #[test]
    fn parse_accepts_six_digits_with_spaces_only() {
        assert_eq!(Code::parse(" 123 456 ").unwrap().expose(), "123456");
        assert!(Code::parse("12345").is_err());
        assert!(Code::parse("1234567").is_err());
        assert!(Code::parse("12345a").is_err());
        assert!(Code::parse("١٢٣٤٥٦").is_err(), "only ASCII digits");
    }

    #[test]
    fn hash_is_keyed_salted_and_checked() {
        let key = CodeKey::new([7; 32]);
        let code = Code::parse("042517").unwrap();
        let h = key.hash(b"salt-a", &code);
        assert!(key.matches(b"salt-a", &code, &h));
        assert!(!key.matches(b"salt-b", &code, &h), "salt binds the hash");
        assert!(!key.matches(b"salt-a", &Code::parse("042518").unwrap(), &h));
        let other = CodeKey::new([8; 32]);
        assert!(!other.matches(b"salt-a", &code, &h), "key binds the hash");
        assert!(
            !key.matches(b"salt-a", &code, &h[..31]),
            "length is checked"
        );
    }

    #[test]
    fn debug_never_shows_the_code_or_key() {
        let code = Code::parse("987654").unwrap();
        assert_eq!(format!("{code:?}"), "Code(***)");
        assert_eq!(format!("{:?}", CodeKey::new([1; 32])), "CodeKey(***)");
    }
}
