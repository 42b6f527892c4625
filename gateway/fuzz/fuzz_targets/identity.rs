//! Identity tokens (JWT HS256 signed by the embedding site): `identity::verify` never panics,
//! on any token; claims signed with the site's secret come back as they were signed, when
//! they are valid; the same claims under another secret, or unsigned, never pass.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run identity -- -max_total_time=60` (from `gateway/`)

#![no_main]

use deskgate::auth::identity::{verify, IdentityError};
use deskgate::clock::Timestamp;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::Value;

const SECRET: &str = "site identity secret";
const NOW: Timestamp = Timestamp(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    let secret = SecretString::from(SECRET);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The input as a token: a forger knows no secret, so nothing passes.
    if let Ok(id) = verify(text, Some(&secret), NOW) {
        panic!("an unsigned input was accepted: {id:?}");
    }
    assert_eq!(
        verify(text, None, NOW).unwrap_err(),
        IdentityError::NoSecret
    );

    // The input as claims, signed with the site's secret.
    let Ok(claims) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Ok(token) = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    ) else {
        return;
    };
    match verify(&token, Some(&secret), NOW) {
        Ok(id) => {
            assert_eq!(claims["sub"].as_str(), Some(id.sub.as_str()));
            assert!(!id.sub.is_empty() && id.sub.len() <= 256);
            assert_eq!(claims["exp"].as_i64(), Some(id.exp));
            assert!(id.exp.saturating_add(60) >= NOW.0 / 1000);
            assert_eq!(claims["email"].as_str(), id.email.as_deref());
        }
        Err(IdentityError::Expired) => {
            assert!(claims["exp"]
                .as_i64()
                .is_some_and(|e| e.saturating_add(60) < NOW.0 / 1000));
        }
        Err(e) => assert_eq!(e, IdentityError::Invalid),
    }
    let other = SecretString::from("another site's secret");
    assert_eq!(
        verify(&token, Some(&other), NOW).unwrap_err(),
        IdentityError::Invalid
    );
});
