//! Envelope encryption: every conversation, customer or recording (an "owner") has its own
//! random 256-bit data key; the data key is stored only wrapped (AES-256-GCM) by a keyring
//! version, and the wrapped form says which version. Destroying the wrapped key destroys the
//! data (crypto-shredding); rotating re-wraps 32 bytes per owner and never touches the data.

use crate::error::{Error, Result};
use crate::keyring::{Key256, KeyVersion, Keyring};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use std::fmt;

/// Domain tag of the wrapping's associated data: a wrapped key cannot pass for anything else.
const WRAP_AAD: &[u8] = b"deskgate/wrap/v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of [`WrappedKey::bytes`]: nonce, the 32-byte key encrypted, the tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Who a data key belongs to, e.g. `conversation:42`, `customer:7`, `recording:9`. It is bound
/// into the wrapping, so a wrapped key copied onto another owner's row does not unwrap.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    pub fn new(kind: &str, id: impl fmt::Display) -> Owner {
        Owner(format!("{kind}:{id}"))
    }

    pub fn conversation(id: impl fmt::Display) -> Owner {
        Owner::new("conversation", id)
    }

    pub fn customer(id: impl fmt::Display) -> Owner {
        Owner::new("customer", id)
    }

    pub fn recording(id: impl fmt::Display) -> Owner {
        Owner::new("recording", id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An unwrapped data key with its AES key schedule ready. Zeroed on drop, prints as `***`.
pub struct DataKey {
    key: Key256,
    pub(crate) cipher: Aes256Gcm,
}

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> DataKey {
        DataKey::from_key(Key256::random())
    }

    fn from_key(key: Key256) -> DataKey {
        let cipher = Aes256Gcm::new(key.expose().into());
        DataKey { key, cipher }
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        self.key.expose()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A data key as stored: encrypted under keyring `version`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub version: KeyVersion,
    /// nonce (12) ‖ ciphertext (32) ‖ tag (16).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WrappedKey({}, {} bytes)",
            self.version,
            self.bytes.len()
        )
    }
}

fn aad(owner: &Owner, version: KeyVersion) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD.len() + 4 + owner.0.len());
    aad.extend_from_slice(WRAP_AAD);
    aad.extend_from_slice(&version.0.to_be_bytes());
    aad.extend_from_slice(owner.0.as_bytes());
    aad
}

impl Keyring {
    /// Wraps `key` for `owner` under the current version.
    pub fn wrap(&self, owner: &Owner, key: &DataKey) -> Result<WrappedKey> {
        self.wrap_with(self.current(), owner, key)
    }

    fn wrap_with(&self, version: KeyVersion, owner: &Owner, key: &DataKey) -> Result<WrappedKey> {
        let kek = Aes256Gcm::new(self.kek(version)?.key.expose().into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = kek
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.expose(),
                    aad: &aad(owner, version),
                },
            )
            .map_err(|_| Error::Encrypt)?;
        let mut bytes = Vec::with_capacity(WRAPPED_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ok(WrappedKey { version, bytes })
    }

    /// Unwraps a stored data key of `owner`.
    pub fn unwrap(&self, owner: &Owner, wrapped: &WrappedKey) -> Result<DataKey> {
        if wrapped.bytes.len() != WRAPPED_LEN {
            return Err(Error::Malformed("wrapped key has the wrong length"));
        }
        let kek = Aes256Gcm::new(self.kek(wrapped.version)?.key.expose().into());
        let (nonce, ct) = wrapped.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| Error::Unwrap)?;
        let plain = zeroize::Zeroizing::new(
            kek.decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: &aad(owner, wrapped.version),
                },
            )
            .map_err(|_| Error::Unwrap)?,
        );
        let key = Key256::from_slice(&plain).ok_or(Error::Unwrap)?;
        Ok(DataKey::from_key(key))
    }

    /// A new data key for `owner`, and its wrapped form to store.
    pub fn new_data_key(&self, owner: &Owner) -> Result<(DataKey, WrappedKey)> {
        let key = DataKey::generate();
        let wrapped = self.wrap(owner, &key)?;
        Ok((key, wrapped))
    }

    /// Re-wraps a stored key under the current version; `None` when it already is.
    pub fn rewrap(&self, owner: &Owner, wrapped: &WrappedKey) -> Result<Option<WrappedKey>> {
        if wrapped.version == self.current() {
            return Ok(None);
        }
        let key = self.unwrap(owner, wrapped)?;
        self.wrap(owner, &key).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_unwraps_to_the_same_key_and_records_its_version() {
        let ring = Keyring::generate(0);
        let owner = Owner::conversation(42);
        let (key, wrapped) = ring.new_data_key(&owner).unwrap();
        assert_eq!(wrapped.version, KeyVersion(1));
        assert_eq!(wrapped.bytes.len(), WRAPPED_LEN);
        let back = ring.unwrap(&owner, &wrapped).unwrap();
        assert_eq!(back.expose(), key.expose());
    }

    #[test]
    fn a_wrapped_key_does_not_unwrap_for_another_owner() {
        let ring = Keyring::generate(0);
        let (_, wrapped) = ring.new_data_key(&Owner::conversation(1)).unwrap();
        assert!(matches!(
            ring.unwrap(&Owner::conversation(2), &wrapped),
            Err(Error::Unwrap)
        ));
        assert!(matches!(
            ring.unwrap(&Owner::customer(1), &wrapped),
            Err(Error::Unwrap)
        ));
    }

    #[test]
    fn a_tampered_wrapped_key_fails() {
        let ring = Keyring::generate(0);
        let owner = Owner::conversation(1);
        let (_, wrapped) = ring.new_data_key(&owner).unwrap();
        for i in 0..wrapped.bytes.len() {
            let mut bad = wrapped.clone();
            bad.bytes[i] ^= 0x01;
            assert!(ring.unwrap(&owner, &bad).is_err(), "byte {i}");
        }
        let mut short = wrapped.clone();
        short.bytes.pop();
        assert!(matches!(
            ring.unwrap(&owner, &short),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn a_wrong_version_label_fails_and_an_unknown_version_is_named() {
        let mut ring = Keyring::generate(0);
        let owner = Owner::conversation(1);
        let (_, wrapped) = ring.new_data_key(&owner).unwrap();
        ring.rotate(1);
        let relabelled = WrappedKey {
            version: KeyVersion(2),
            bytes: wrapped.bytes.clone(),
        };
        assert!(matches!(
            ring.unwrap(&owner, &relabelled),
            Err(Error::Unwrap)
        ));
        let unknown = WrappedKey {
            version: KeyVersion(9),
            bytes: wrapped.bytes,
        };
        assert!(matches!(
            ring.unwrap(&owner, &unknown),
            Err(Error::UnknownVersion(9))
        ));
    }

    #[test]
    fn rotation_wraps_new_keys_with_the_new_version_and_rewrap_moves_old_ones() {
        let mut ring = Keyring::generate(0);
        let owner = Owner::conversation(5);
        let (key, old) = ring.new_data_key(&owner).unwrap();
        assert_eq!(ring.rotate(1), KeyVersion(2));
        let (_, fresh) = ring.new_data_key(&Owner::conversation(6)).unwrap();
        assert_eq!(fresh.version, KeyVersion(2));
        // The old wrapping still opens until it is re-wrapped.
        assert_eq!(ring.unwrap(&owner, &old).unwrap().expose(), key.expose());
        let moved = ring.rewrap(&owner, &old).unwrap().unwrap();
        assert_eq!(moved.version, KeyVersion(2));
        assert!(ring.rewrap(&owner, &moved).unwrap().is_none());
        ring.retire(KeyVersion(1)).unwrap();
        assert_eq!(ring.unwrap(&owner, &moved).unwrap().expose(), key.expose());
        assert!(matches!(
            ring.unwrap(&owner, &old),
            Err(Error::UnknownVersion(1))
        ));
    }

    #[test]
    fn another_keyring_cannot_unwrap() {
        let a = Keyring::generate(0);
        let b = Keyring::generate(0);
        let owner = Owner::conversation(1);
        let (_, wrapped) = a.new_data_key(&owner).unwrap();
        assert!(matches!(b.unwrap(&owner, &wrapped), Err(Error::Unwrap)));
    }
}
