//! Recovery codes: ten one-time codes a staff user keeps for the day their authenticator is
//! lost. Shown once; stored as keyed hashes; each works once.

use crate::code::CodeKey;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

/// Codes issued at a time.
pub const COUNT: usize = 10;
/// Letters and digits that cannot be confused with each other when read aloud or typed.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A fresh set of codes, formatted `xxxxx-xxxxx`.
pub fn generate() -> Vec<SecretString> {
    let mut rng = rand::rngs::OsRng;
    (0..COUNT)
        .map(|_| {
            let mut s = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    s.push('-');
                }
                s.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
            }
            SecretString::from(s)
        })
        .collect()
}

/// A typed code as it is hashed: lower case, without dashes or spaces.
fn normalise(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether the input looks like a recovery code at all (as opposed to a TOTP code).
pub fn looks_like(input: &str) -> bool {
    let n = normalise(input);
    n.len() == 10 && n.bytes().all(|b| ALPHABET.contains(&b))
}

/// The keyed hash a code is stored and looked up under, bound to its user.
pub fn hash(key: &CodeKey, user: i64, code: &str) -> [u8; 32] {
    key.mac(
        b"deskgate-recovery-v1",
        &user.to_be_bytes(),
        normalise(code).as_bytes(),
    )
}

pub fn hash_all(key: &CodeKey, user: i64, codes: &[SecretString]) -> Vec<[u8; 32]> {
    codes
        .iter()
        .map(|c| hash(key, user, c.expose_secret()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_that_hash_the_same_however_typed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let set: std::collections::HashSet<_> = codes
            .iter()
            .map(|c| c.expose_secret().to_string())
            .collect();
        assert_eq!(set.len(), COUNT);
        let key = CodeKey::new([3; 32]);
        let c = codes[0].expose_secret();
        assert!(looks_like(c));
        let typed = c.to_uppercase().replace('-', " ");
        assert_eq!(hash(&key, 1, c), hash(&key, 1, &typed));
        assert_ne!(hash(&key, 1, c), hash(&key, 2, c), "bound to the user");
        assert!(!looks_like("123456"));
    }
}
