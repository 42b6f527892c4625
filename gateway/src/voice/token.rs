//! The media token: what lets a telephony provider's stream into `/media/twilio`. The site's
//! backend, answering the provider's call webhook, signs the site, the provider's call id and
//! an expiry with the site's identity secret (the one it already signs customer identities
//! with), and puts the token in the stream's custom parameters (`token`) or the stream URL
//! (`?token=`).
//!
//! `v1.<site>.<call id>.<expires, Unix seconds>.<hex HMAC-SHA256>` over
//! `deskgate-media-v1\n<site>\n<call id>\n<expires>`.

use crate::clock::Timestamp;
use crate::sites::Sites;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

/// A verified token: which site's call it admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaToken {
    pub site: String,
    pub call: String,
    pub expires: i64,
}

/// Why a token was refused; the client hears one reason for all of them.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the media token is malformed")]
    Malformed,
    #[error("the media token names an unknown site")]
    UnknownSite,
    #[error("the media token's signature does not match")]
    BadSignature,
    #[error("the media token has expired")]
    Expired,
    #[error("the media token is for another call")]
    OtherCall,
}

fn message(site: &str, call: &str, expires: i64) -> String {
    format!("deskgate-media-v1\n{site}\n{call}\n{expires}")
}

fn mac(secret: &[u8], site: &str, call: &str, expires: i64) -> Hmac<Sha256> {
    // An HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(message(site, call, expires).as_bytes());
    m
}

/// Signs a token (what a site's backend does; the tests and `docs/voice.md` use it).
pub fn sign(secret: &[u8], site: &str, call: &str, expires: i64) -> String {
    let sig = hex::encode(mac(secret, site, call, expires).finalize().into_bytes());
    format!("v1.{site}.{call}.{expires}.{sig}")
}

/// Checks a token against the site's secret, the clock and the call the stream announced.
pub fn verify(
    sites: &Sites,
    token: &str,
    call: &str,
    now: Timestamp,
) -> Result<MediaToken, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() < 5 || parts[0] != "v1" || token.len() > 512 {
        return Err(TokenError::Malformed);
    }
    let sig = hex::decode(parts[parts.len() - 1]).map_err(|_| TokenError::Malformed)?;
    let expires: i64 = parts[parts.len() - 2]
        .parse()
        .map_err(|_| TokenError::Malformed)?;
    let site = parts[1];
    let named = parts[2..parts.len() - 2].join(".");
    let secret = sites
        .get(site)
        .and_then(|s| s.identity_secret.as_ref())
        .ok_or(TokenError::UnknownSite)?;
    mac(
        secret.expose_secret().trim().as_bytes(),
        site,
        &named,
        expires,
    )
    .verify_slice(&sig)
    .map_err(|_| TokenError::BadSignature)?;
    if expires.saturating_mul(1000) <= now.0 {
        return Err(TokenError::Expired);
    }
    if named != call {
        return Err(TokenError::OtherCall);
    }
    Ok(MediaToken {
        site: site.to_string(),
        call: named,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> (tempfile::TempDir, Sites) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data: dir.path().to_path_buf(),
            ..Default::default()
        };
        let sites = Sites::load(&config).unwrap();
        (dir, sites)
    }

    fn secret(s: &Sites) -> String {
        s.get("demo")
            .and_then(|s| s.identity_secret.as_ref())
            .map(|s| s.expose_secret().trim().to_string())
            .unwrap()
    }

    #[test]
    fn a_signed_token_admits_its_call_only_until_it_expires() {
        let (_dir, s) = sites();
        let t = sign(secret(&s).as_bytes(), "demo", "CA12.34", 1000);
        let ok = verify(&s, &t, "CA12.34", Timestamp(999_000)).unwrap();
        assert_eq!(ok.call, "CA12.34");
        assert_eq!(
            verify(&s, &t, "CA99", Timestamp(0)),
            Err(TokenError::OtherCall)
        );
        assert_eq!(
            verify(&s, &t, "CA12.34", Timestamp(1_000_000)),
            Err(TokenError::Expired)
        );
        let forged = sign(b"another secret", "demo", "CA12.34", 1000);
        assert_eq!(
            verify(&s, &forged, "CA12.34", Timestamp(0)),
            Err(TokenError::BadSignature)
        );
        let other = sign(secret(&s).as_bytes(), "nosuch", "CA1", 1000);
        assert_eq!(
            verify(&s, &other, "CA1", Timestamp(0)),
            Err(TokenError::UnknownSite)
        );
        for bad in [
            "",
            "v1",
            "v2.demo.CA1.1000.00",
            "v1.demo.CA1.soon.00",
            "v1.demo.CA1.1000.zz",
        ] {
            assert_eq!(
                verify(&s, bad, "CA1", Timestamp(0)),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }
}
