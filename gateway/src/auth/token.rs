//! Bearer tokens (staff sessions, visitor tokens, the bootstrap secret): 256 random bits,
//! shown to their holder once and stored only as a SHA-256 digest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Kinds of token, told apart by prefix so a leaked one is recognisable in a secret scanner.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Session,
    Visitor,
    Bootstrap,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Session => "dgs_",
            Kind::Visitor => "dgv_",
            Kind::Bootstrap => "dgb_",
        }
    }
}

pub fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh token and the digest to store.
pub fn issue(kind: Kind) -> (SecretString, [u8; 32]) {
    let token = format!("{}{}", kind.prefix(), random_string(32));
    let digest = digest(&token);
    (SecretString::from(token), digest)
}

/// The digest under which a presented token is looked up.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn digest_secret(token: &SecretString) -> [u8; 32] {
    digest(token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_stored_as_digests() {
        let (a, da) = issue(Kind::Visitor);
        let (b, db) = issue(Kind::Visitor);
        assert!(a.expose_secret().starts_with("dgv_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(da, db);
        assert_eq!(digest(a.expose_secret()), da);
        assert!(a.expose_secret().len() > 40);
    }
}
