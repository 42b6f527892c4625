//! Twilio's `X-Twilio-Signature` on a media stream's upgrade, the other way to admit a phone
//! leg besides the media token. Twilio signs each request with the account's auth token:
//! base64 of HMAC-SHA1 over the URL it connected to (for a WebSocket, no POST parameters
//! follow). A site configured with `twilio_auth_token` admits streams to
//! `/media/twilio?site=<key>` so signed, without a media token. The URL is the gateway's
//! public one (`public_url`, with `https` read as `wss`), else the `Host` it was reached at.

use crate::config::Config;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio signs with.
pub const HEADER: &str = "x-twilio-signature";

fn mac(auth_token: &[u8], url: &str) -> Hmac<Sha1> {
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(auth_token)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(url.as_bytes());
    m
}

/// The signature Twilio sends for `url` (for the tests, and a backend checking its own).
pub fn sign(auth_token: &[u8], url: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url).finalize().into_bytes())
}

/// Whether `signature` is Twilio's for `url`; the comparison takes the same time wherever the
/// bytes differ.
pub fn verify(auth_token: &[u8], url: &str, signature: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(auth_token, url).verify_slice(&sig).is_ok()
}

/// The URL the provider connected to: the public URL's scheme and authority (or the `Host`
/// header's, over `wss` when the gateway serves TLS itself), then the path and query as sent.
pub fn requested_url(config: &Config, host: Option<&str>, path_and_query: &str) -> Option<String> {
    let base = match config.public_url.as_deref() {
        Some(url) => {
            let url = url.trim_end_matches('/');
            if let Some(rest) = url.strip_prefix("https://") {
                format!("wss://{rest}")
            } else if let Some(rest) = url.strip_prefix("http://") {
                format!("ws://{rest}")
            } else {
                url.to_string()
            }
        }
        None => {
            let scheme = if config.tls.is_some() { "wss" } else { "ws" };
            format!("{scheme}://{}", host?)
        }
    };
    Some(format!("{base}{path_and_query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Twilio's security documentation: the auth token `12345` over its sample
    /// request (the URL with the POST parameters sorted and appended).
    #[test]
    fn agrees_with_twilios_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = "CallSidCA1234567890ABCDE\
                      Caller+12349013030\
                      Digits1234\
                      From+12349013030\
                      To+18005551212";
        let signed = format!("{url}{params}");
        assert_eq!(sign(b"12345", &signed), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify(b"12345", &signed, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    }

    #[test]
    fn a_wrong_token_url_or_signature_is_refused() {
        let url = "wss://support.example.com/media/twilio?site=shop";
        let sig = sign(b"token", url);
        assert!(verify(b"token", url, &sig));
        assert!(!verify(b"other", url, &sig));
        assert!(!verify(
            b"token",
            "wss://support.example.com/media/twilio?site=evil",
            &sig
        ));
        assert!(!verify(b"token", url, "not base64!"));
        assert!(!verify(b"token", url, ""));
    }

    #[test]
    fn the_url_is_the_public_one_with_a_websocket_scheme() {
        let mut c = Config::default();
        assert_eq!(
            requested_url(&c, Some("127.0.0.1:8080"), "/media/twilio?site=a").as_deref(),
            Some("ws://127.0.0.1:8080/media/twilio?site=a")
        );
        assert_eq!(requested_url(&c, None, "/media/twilio"), None);
        c.public_url = Some("https://support.example.com/".into());
        assert_eq!(
            requested_url(&c, Some("10.0.0.5"), "/media/twilio?site=a").as_deref(),
            Some("wss://support.example.com/media/twilio?site=a")
        );
    }
}
