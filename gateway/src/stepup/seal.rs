//! Sealing of TOTP seeds at rest, with the vault's envelope encryption: each staff user with a
//! second factor has a data key of their own (`user:<id>`, wrapped by the keyring like every
//! other), and the seed is a sealed record of kind `totp.seed` under it. `deskgate keys
//! rotate` and `rewrap` therefore cover seeds too, and a sealed seed copied to another user's
//! row does not open.
//!
//! Seeds sealed before (format 1: AES-256-GCM under a key derived from the verification key)
//! still open, and are sealed again the vault's way at start-up ([`StepUp::reseal_legacy_seeds`]).

use super::keys::Keys;
use super::StepUp;
use crate::clock::Timestamp;
use crate::ids::UserId;
use crate::store::Store;
use crate::vault::KeyOwner;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use recorder::{RecordId, RecordKind};
use verify::totp::Seed;

/// First byte of a seed sealed under the verification key (before the vault sealed them).
const LEGACY: u8 = 1;
/// First byte of a seed sealed as a vault record; the record follows.
const VAULT: u8 = 2;
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed seed is damaged or was sealed under another key")]
    Open,
    #[error("sealing failed")]
    Seal,
    #[error("the seed's data key is unavailable: {0}")]
    Key(String),
}

fn owner(user: UserId) -> KeyOwner {
    KeyOwner::new("user", user.0)
}

/// Seals a seed under the user's data key (created on first use).
pub async fn seal(
    store: &dyn Store,
    user: UserId,
    seed: &Seed,
    now: Timestamp,
) -> Result<Vec<u8>, SealError> {
    let owner = owner(user);
    let key = store
        .data_key(&owner, true, now)
        .await
        .map_err(|e| SealError::Key(e.to_string()))?
        .ok_or_else(|| SealError::Key(owner.to_string()))?;
    let id = RecordId::new(&owner, 0, RecordKind::TOTP_SEED);
    let record = recorder::seal(&key, &id, seed.expose()).map_err(|_| SealError::Seal)?;
    let mut out = Vec::with_capacity(1 + record.len());
    out.push(VAULT);
    out.extend_from_slice(&record);
    Ok(out)
}

/// Opens a sealed seed of either format.
pub async fn open(
    store: &dyn Store,
    keys: &Keys,
    user: UserId,
    sealed: &[u8],
) -> Result<Seed, SealError> {
    match sealed.first() {
        Some(&VAULT) => {
            let owner = owner(user);
            let key = store
                .data_key(&owner, false, Timestamp(0))
                .await
                .map_err(|e| SealError::Key(e.to_string()))?
                .ok_or(SealError::Open)?;
            let id = RecordId::new(&owner, 0, RecordKind::TOTP_SEED);
            let seed = recorder::open(&key, &id, &sealed[1..]).map_err(|_| SealError::Open)?;
            Ok(Seed::from_bytes(seed))
        }
        Some(&LEGACY) => open_legacy(keys, user, sealed),
        _ => Err(SealError::Open),
    }
}

fn legacy_aad(user: UserId) -> Vec<u8> {
    let mut a = b"deskgate-totp-seed-v1".to_vec();
    a.extend_from_slice(&user.0.to_be_bytes());
    a
}

fn open_legacy(keys: &Keys, user: UserId, sealed: &[u8]) -> Result<Seed, SealError> {
    if sealed.len() < 1 + NONCE_BYTES {
        return Err(SealError::Open);
    }
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*keys.seal_key()));
    let nonce = Nonce::try_from(&sealed[1..1 + NONCE_BYTES]).map_err(|_| SealError::Open)?;
    let seed = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[1 + NONCE_BYTES..],
                aad: &legacy_aad(user),
            },
        )
        .map_err(|_| SealError::Open)?;
    Ok(Seed::from_bytes(seed))
}

impl StepUp {
    /// Seals again, with the vault, every seed still sealed under the verification key; runs
    /// at start-up. Returns how many moved.
    pub async fn reseal_legacy_seeds(&self) -> anyhow::Result<u64> {
        let mut moved = 0;
        for user in self.store.users().await? {
            let Some(factor) = self.vs().totp_factor(user.id.0).await? else {
                continue;
            };
            if factor.sealed_seed.first() != Some(&LEGACY) {
                continue;
            }
            let seed = open_legacy(&self.keys, user.id, &factor.sealed_seed)?;
            let sealed = seal(self.store.as_ref(), user.id, &seed, self.clock.now()).await?;
            if self
                .store
                .reseal_totp_seed(user.id, &factor.sealed_seed, &sealed)
                .await?
            {
                moved += 1;
            }
        }
        if moved > 0 {
            tracing::info!(target: "deskgate::security", moved, "TOTP seeds sealed again with the vault's keys");
        }
        Ok(moved)
    }
}

#[cfg(test)]
pub(crate) fn seal_legacy(keys: &Keys, user: UserId, seed: &Seed) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*keys.seal_key()));
    let nonce = [7u8; NONCE_BYTES];
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: seed.expose(),
                aad: &legacy_aad(user),
            },
        )
        .unwrap_or_default();
    let mut out = vec![LEGACY];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_seeds_open_and_are_bound_to_key_and_user() {
        let keys = Keys::from_master([9; 32]);
        let seed = Seed::from_bytes(b"12345678901234567890".to_vec());
        let sealed = seal_legacy(&keys, UserId(7), &seed);
        assert!(!sealed.windows(20).any(|w| w == b"12345678901234567890"));
        assert_eq!(
            open_legacy(&keys, UserId(7), &sealed).unwrap().expose(),
            seed.expose()
        );
        assert!(open_legacy(&keys, UserId(8), &sealed).is_err());
        assert!(open_legacy(&Keys::from_master([1; 32]), UserId(7), &sealed).is_err());
    }
}
