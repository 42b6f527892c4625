//! Staff passwords, hashed with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};
use std::sync::OnceLock;

/// Shortest password accepted, as NIST SP 800-63B asks for user-chosen secrets.
pub const MIN_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("password hashing failed")]
    Hash,
}

pub fn hash(password: &SecretString) -> Result<String, PasswordError> {
    if password.expose_secret().chars().count() < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Checks a password against a stored hash; `None` (no such user) costs the same as a real
/// check, so a caller cannot tell a wrong name from a wrong password by timing.
pub fn verify(password: &SecretString, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a password of anyone", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let (target, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(target) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// A random password for accounts created without one (printed once to the operator).
pub fn generate() -> SecretString {
    SecretString::from(super::token::random_string(18))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch() {
        let pw = SecretString::from("correct horse battery");
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, Some(&h)));
        assert!(!verify(
            &SecretString::from("wrong horse battery"),
            Some(&h)
        ));
        assert!(!verify(&pw, None));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(
            hash(&SecretString::from("short")),
            Err(PasswordError::TooShort)
        ));
    }
}
