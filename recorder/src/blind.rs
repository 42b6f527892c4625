//! Blind index: a keyed HMAC-SHA256 of a normalised value (an email, a phone number, an
//! external id), stored beside the sealed value so an exact-match lookup works without the
//! plaintext in the database. The key lives in the keyring, so the index alone is not a
//! dictionary-attackable hash.

use crate::keyring::Keyring;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HMAC of `field` and `normalised`; the caller normalises (lower-cases an email, strips a
/// phone number to its digits) so equal values index alike.
pub fn blind_index(ring: &Keyring, field: &str, normalised: &str) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(ring.index_key().expose()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return [0u8; 32];
    };
    mac.update(b"deskgate/blind/v1\0");
    mac.update(field.as_bytes());
    mac.update(b"\0");
    mac.update(normalised.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The HMAC by which one gateway node vouches for a request it relays to another: both hold
/// the keyring, nobody else does. Keyed as the blind index is, under a label of its own, so
/// neither value can stand for the other. The parts are joined with NUL, which none of them
/// holds.
pub fn node_mac(ring: &Keyring, parts: &[&str]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(ring.index_key().expose()) else {
        return [0u8; 32];
    };
    mac.update(b"deskgate/node-relay/v1");
    for part in parts {
        mac.update(b"\0");
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_index_alike_and_fields_and_rings_differ() {
        let ring = Keyring::generate(0);
        let a = blind_index(&ring, "email", "a@example.com");
        assert_eq!(a, blind_index(&ring, "email", "a@example.com"));
        assert_ne!(a, blind_index(&ring, "email", "b@example.com"));
        assert_ne!(a, blind_index(&ring, "phone", "a@example.com"));
        assert_ne!(
            a,
            blind_index(&Keyring::generate(0), "email", "a@example.com")
        );
    }

    #[test]
    fn a_node_mac_is_bound_to_each_part_and_to_its_label() {
        let ring = Keyring::generate(0);
        let m = node_mac(&ring, &["1700000000", "GET", "/media/pcm"]);
        assert_eq!(m, node_mac(&ring, &["1700000000", "GET", "/media/pcm"]));
        assert_ne!(m, node_mac(&ring, &["1700000001", "GET", "/media/pcm"]));
        assert_ne!(m, node_mac(&ring, &["1700000000", "GET/media/pcm"]));
        assert_ne!(
            m,
            node_mac(&Keyring::generate(0), &["1700000000", "GET", "/media/pcm"])
        );
        assert_ne!(m, blind_index(&ring, "1700000000", "GET"));
    }

    #[test]
    fn rotation_keeps_the_index_stable() {
        let mut ring = Keyring::generate(0);
        let before = blind_index(&ring, "email", "a@example.com");
        ring.rotate(1);
        assert_eq!(before, blind_index(&ring, "email", "a@example.com"));
    }
}
