//! Sealing of TOTP seeds at rest: AES-256-GCM under a key derived from the verification key,
//! bound to the user it belongs to (a sealed seed copied to another user's row does not open).
//!
//! This pair of functions is the only place seeds are encrypted or decrypted, so moving them
//! to the vault's envelope encryption is a change of this file alone.

use super::keys::Keys;
use crate::ids::UserId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use verify::totp::Seed;

/// Format version, first byte of every sealed seed.
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed seed is damaged or was sealed under another key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

fn aad(user: UserId) -> Vec<u8> {
    let mut a = b"deskgate-totp-seed-v1".to_vec();
    a.extend_from_slice(&user.0.to_be_bytes());
    a
}

pub fn seal(keys: &Keys, user: UserId, seed: &Seed) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(keys.seal_key()));
    let mut nonce = [0u8; NONCE_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: seed.expose(),
                aad: &aad(user),
            },
        )
        .map_err(|_| SealError::Seal)?;
    let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub fn open(keys: &Keys, user: UserId, sealed: &[u8]) -> Result<Seed, SealError> {
    if sealed.len() < 1 + NONCE_BYTES || sealed[0] != VERSION {
        return Err(SealError::Open);
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(keys.seal_key()));
    let seed = cipher
        .decrypt(
            Nonce::from_slice(&sealed[1..1 + NONCE_BYTES]),
            Payload {
                msg: &sealed[1 + NONCE_BYTES..],
                aad: &aad(user),
            },
        )
        .map_err(|_| SealError::Open)?;
    Ok(Seed::from_bytes(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_and_are_bound_to_key_and_user() {
        let keys = Keys::from_master([9; 32]);
        let seed = Seed::from_bytes(b"12345678901234567890".to_vec());
        let sealed = seal(&keys, UserId(7), &seed).unwrap();
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            open(&keys, UserId(7), &sealed).unwrap().expose(),
            seed.expose()
        );
        assert!(open(&keys, UserId(8), &sealed).is_err());
        assert!(open(&Keys::from_master([1; 32]), UserId(7), &sealed).is_err());
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(open(&keys, UserId(7), &damaged).is_err());
    }
}
