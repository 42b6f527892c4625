//! Sealed records: one AES-256-GCM ciphertext per stored value (a message body, a customer's
//! email), under its owner's data key, with a fresh random 96-bit nonce and the record's
//! identity (owner, sequence number, kind) as associated data. A ciphertext copied onto
//! another row, another sequence number or another field fails to open.

use crate::envelope::{DataKey, Owner};
use crate::error::{Error, Result};
use aes_gcm::aead::AeadInOut;
use aes_gcm::Nonce;
use rand::RngCore;
use std::fmt;

/// First byte of every sealed record: the format, so a later one can be told apart.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
const AAD_TAG: &[u8] = b"deskgate/seal/v1";

/// What field or object a record is. Part of the associated data, so a sealed email cannot be
/// presented as a phone number or a message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordKind(&'static str);

impl RecordKind {
    pub const MESSAGE_BODY: RecordKind = RecordKind("message.body");
    pub const CUSTOMER_NAME: RecordKind = RecordKind("customer.name");
    pub const CUSTOMER_EMAIL: RecordKind = RecordKind("customer.email");
    pub const CUSTOMER_PHONE: RecordKind = RecordKind("customer.phone");
    pub const CUSTOMER_EXTERNAL_ID: RecordKind = RecordKind("customer.external_id");
    pub const TOTP_SEED: RecordKind = RecordKind("totp.seed");
    pub const ATTACHMENT: RecordKind = RecordKind("attachment");
    pub const RECORDING: RecordKind = RecordKind("recording");
    pub const EXPORT: RecordKind = RecordKind("export");
    pub const OUTBOX_MAIL: RecordKind = RecordKind("outbox.mail");

    /// A kind this crate does not list yet; the name must stay fixed once data uses it.
    pub const fn new(name: &'static str) -> RecordKind {
        RecordKind(name)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The identity of one sealed record. `seq` is the message's sequence number in its
/// conversation, or 0 for a single-valued field.
#[derive(Clone, Copy, Debug)]
pub struct RecordId<'a> {
    pub owner: &'a Owner,
    pub seq: u64,
    pub kind: RecordKind,
}

impl<'a> RecordId<'a> {
    pub fn new(owner: &'a Owner, seq: u64, kind: RecordKind) -> RecordId<'a> {
        RecordId { owner, seq, kind }
    }

    /// The associated data: every field length-prefixed, so no two identities encode alike.
    pub(crate) fn aad(&self) -> Vec<u8> {
        let owner = self.owner.as_str().as_bytes();
        let kind = self.kind.0.as_bytes();
        let mut aad = Vec::with_capacity(AAD_TAG.len() + 8 + owner.len() + 8 + kind.len());
        aad.extend_from_slice(AAD_TAG);
        push_field(&mut aad, owner);
        aad.extend_from_slice(&self.seq.to_be_bytes());
        push_field(&mut aad, kind);
        aad
    }
}

pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Owners and kinds are short; a length beyond u32 cannot occur in a Vec we build.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// Seals `plaintext` as the record `id`: `1 ‖ nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &DataKey, id: &RecordId<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.push(FORMAT_V1);
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .cipher
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &id.aad(),
            (&mut out[1 + NONCE_LEN..]).into(),
        )
        .map_err(|_| Error::Encrypt)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a record sealed by [`seal`] under the same key and identity.
pub fn open(key: &DataKey, id: &RecordId<'_>, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(Error::Malformed("sealed record is shorter than its header"));
    }
    if sealed[0] != FORMAT_V1 {
        return Err(Error::Malformed("sealed record has an unknown format"));
    }
    let nonce = Nonce::try_from(&sealed[1..1 + NONCE_LEN])
        .map_err(|_| Error::Malformed("sealed record has a short nonce"))?;
    let (body, tag) = sealed[1 + NONCE_LEN..].split_at(sealed.len() - OVERHEAD);
    let mut plain = body.to_vec();
    key.cipher
        .decrypt_inout_detached(
            &nonce,
            &id.aad(),
            plain.as_mut_slice().into(),
            &aes_gcm::Tag::try_from(tag).map_err(|_| Error::Open)?,
        )
        .map_err(|_| Error::Open)?;
    Ok(plain)
}

/// Seals UTF-8 text.
pub fn seal_str(key: &DataKey, id: &RecordId<'_>, text: &str) -> Result<Vec<u8>> {
    seal(key, id, text.as_bytes())
}

/// Opens a record sealed by [`seal_str`].
pub fn open_string(key: &DataKey, id: &RecordId<'_>, sealed: &[u8]) -> Result<String> {
    String::from_utf8(open(key, id, sealed)?).map_err(|_| Error::Malformed("record is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(n: u64) -> Owner {
        Owner::conversation(n)
    }

    #[test]
    fn a_record_opens_under_its_own_identity() {
        let key = DataKey::generate();
        let o = owner(1);
        let id = RecordId::new(&o, 3, RecordKind::MESSAGE_BODY);
        let sealed = seal_str(&key, &id, "hello there").unwrap();
        assert_eq!(sealed.len(), "hello there".len() + OVERHEAD);
        assert_eq!(open_string(&key, &id, &sealed).unwrap(), "hello there");
        let empty = seal(&key, &id, b"").unwrap();
        assert_eq!(open(&key, &id, &empty).unwrap(), b"");
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let key = DataKey::generate();
        let o = owner(1);
        let id = RecordId::new(&o, 1, RecordKind::MESSAGE_BODY);
        let a = seal(&key, &id, b"same").unwrap();
        let b = seal(&key, &id, b"same").unwrap();
        assert_ne!(a[1..13], b[1..13], "nonces repeat");
        assert_ne!(a, b);
    }

    #[test]
    fn a_record_moved_to_another_identity_fails() {
        let key = DataKey::generate();
        let (o1, o2) = (owner(1), owner(2));
        let id = RecordId::new(&o1, 7, RecordKind::MESSAGE_BODY);
        let sealed = seal(&key, &id, b"secret").unwrap();
        for other in [
            RecordId::new(&o2, 7, RecordKind::MESSAGE_BODY),
            RecordId::new(&o1, 8, RecordKind::MESSAGE_BODY),
            RecordId::new(&o1, 7, RecordKind::CUSTOMER_EMAIL),
        ] {
            assert!(
                matches!(open(&key, &other, &sealed), Err(Error::Open)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let key = DataKey::generate();
        let o = owner(1);
        let id = RecordId::new(&o, 1, RecordKind::CUSTOMER_PHONE);
        let sealed = seal(&key, &id, b"+1 555 0132").unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(open(&key, &id, &bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn truncated_or_extended_records_fail() {
        let key = DataKey::generate();
        let o = owner(1);
        let id = RecordId::new(&o, 1, RecordKind::MESSAGE_BODY);
        let sealed = seal(&key, &id, b"twelve bytes").unwrap();
        for len in 0..sealed.len() {
            assert!(open(&key, &id, &sealed[..len]).is_err(), "len {len}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&key, &id, &longer).is_err());
    }

    #[test]
    fn another_data_key_fails() {
        let o = owner(1);
        let id = RecordId::new(&o, 1, RecordKind::MESSAGE_BODY);
        let sealed = seal(&DataKey::generate(), &id, b"x").unwrap();
        assert!(matches!(
            open(&DataKey::generate(), &id, &sealed),
            Err(Error::Open)
        ));
    }

    #[test]
    fn identities_do_not_collide_by_concatenation() {
        let a = Owner::new("conversation", "1");
        let b = Owner::new("conversation", "1\0");
        let ida = RecordId::new(&a, 1, RecordKind::new("x"));
        let idb = RecordId::new(&b, 1, RecordKind::new("x"));
        assert_ne!(ida.aad(), idb.aad());
    }
}
