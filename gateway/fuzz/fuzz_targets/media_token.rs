//! Media tokens (`v1.<site>.<call>.<expires>.<hmac>`): `token::verify` never panics, on any
//! token and call id; a token it accepts admits exactly the call it was asked about; a token
//! signed for any call id round-trips, until it expires.
//!
//! Input: `<token>\n<call id>`; the call id is also signed with the site's secret.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run media_token -- -max_total_time=60` (from `gateway/`)

#![no_main]

use deskgate::clock::Timestamp;
use deskgate::config::{Config, SiteConfig};
use deskgate::sites::Sites;
use deskgate::voice::token::{sign, verify, TokenError};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use std::sync::OnceLock;

const SECRET: &str = "site identity secret";

fn sites() -> &'static Sites {
    static SITES: OnceLock<Sites> = OnceLock::new();
    SITES.get_or_init(|| {
        let config = Config {
            sites: vec![SiteConfig {
                key: "shop".into(),
                name: None,
                identity_secret: Some(SecretString::from(SECRET)),
                identity_secret_file: None,
                allowed_origins: Vec::new(),
                prechat: false,
                language: None,
                twilio_auth_token: None,
                twilio_auth_token_file: None,
            }],
            ..Default::default()
        };
        Sites::load(&config).expect("a configured site needs no files")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (token, call) = text.split_once('\n').unwrap_or((text, "CA1"));
    let now = Timestamp(1_800_000_000_000);
    if let Ok(t) = verify(sites(), token, call, now) {
        // Only a token signed with the secret gets here; a fuzzer cannot sign.
        assert_eq!(t.call, call);
        assert!(t.expires.saturating_mul(1000) > now.0);
    }

    // Any call id, signed, is admitted for that call and no other, until it expires.
    let expires = data
        .iter()
        .fold(0i64, |a, &b| a.wrapping_mul(31).wrapping_add(i64::from(b)));
    let signed = sign(SECRET.as_bytes(), "shop", call, expires);
    let result = verify(sites(), &signed, call, now);
    if signed.len() > 512 {
        assert_eq!(result, Err(TokenError::Malformed));
    } else if expires.saturating_mul(1000) <= now.0 {
        assert_eq!(result, Err(TokenError::Expired));
    } else {
        let t = result.expect("a signed token admits its call");
        assert_eq!(
            (t.site.as_str(), t.call.as_str(), t.expires),
            ("shop", call, expires)
        );
        let other = format!("{call}x");
        assert_eq!(
            verify(sites(), &signed, &other, now),
            Err(TokenError::OtherCall)
        );
        let forged = sign(b"not the secret", "shop", call, expires);
        assert_eq!(
            verify(sites(), &forged, call, now),
            Err(TokenError::BadSignature)
        );
    }
});
