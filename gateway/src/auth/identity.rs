//! Customer identity signed by the embedding site: a JWT (HS256, i.e. HMAC-SHA256) over the
//! customer's id, name, email and phone, made on the site's server with the site's secret.
//! An identity that is not signed, or whose signature does not check, is never "verified".

use crate::clock::Timestamp;
use crate::store::NewCustomer;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What a valid token says about the customer.
#[derive(Clone, Debug, Deserialize)]
pub struct Identity {
    /// The customer's id at the site.
    pub sub: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// The customer's preferred language, a BCP 47 tag (the OpenID Connect claim): the
    /// language of their step-up code emails.
    #[serde(default)]
    pub locale: Option<String>,
    /// Expiry, seconds since the epoch; required so a leaked token does not work forever.
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("identity token is malformed or its signature does not match")]
    Invalid,
    #[error("identity token has expired")]
    Expired,
    #[error("this site has no identity secret configured")]
    NoSecret,
}

/// A field the gateway does not take: too long, or with control characters in it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} must be at most {max} printable characters")]
pub struct FieldError {
    pub field: &'static str,
    pub max: usize,
}

/// A customer field trimmed, `None` when empty, refused when longer than `max` characters or
/// holding control characters.
pub fn clean(
    field: &'static str,
    v: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match v.map(|s| s.trim().to_string()) {
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => {
            Err(FieldError { field, max })
        }
        other => Ok(other),
    }
}

impl Identity {
    /// The verified customer this identity names on `site`, with what the site signed, and
    /// the language they prefer if the code emails have a text in it.
    pub fn customer(self, site: &str) -> Result<(NewCustomer, Option<String>), FieldError> {
        let locale = self
            .locale
            .filter(|l| verify::template::Language::parse(l).is_some());
        let customer = NewCustomer {
            site: site.to_string(),
            external_id: Some(self.sub),
            name: clean("name", self.name, 120)?.unwrap_or_else(|| "Customer".into()),
            email: clean("email", self.email, 254)?,
            phone: clean("phone", self.phone, 32)?,
            verified: true,
        };
        Ok((customer, locale))
    }
}

/// Leeway for clocks that disagree between the site and the gateway.
const LEEWAY_SECS: i64 = 60;

pub fn verify(
    token: &str,
    secret: Option<&SecretString>,
    now: Timestamp,
) -> Result<Identity, IdentityError> {
    let secret = secret.ok_or(IdentityError::NoSecret)?;
    let mut v = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the gateway's clock, not the system's.
    v.validate_exp = false;
    v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
    let data = decode::<Identity>(
        token,
        &DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        &v,
    )
    .map_err(|_| IdentityError::Invalid)?;
    let id = data.claims;
    if id.exp.saturating_add(LEEWAY_SECS) < now.0 / 1000 {
        return Err(IdentityError::Expired);
    }
    if id.sub.is_empty() || id.sub.len() > 256 {
        return Err(IdentityError::Invalid);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn sign(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn accepts_a_token_signed_with_the_site_secret() {
        let t = sign(
            "s3cret",
            json!({"sub": "cust-1", "name": "Ada", "email": "ada@example.com", "exp": 1_800_000_600}),
        );
        let id = verify(&t, Some(&SecretString::from("s3cret")), NOW).unwrap();
        assert_eq!(id.sub, "cust-1");
        assert_eq!(id.email.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn an_expiry_at_the_end_of_time_is_valid_not_an_overflow() {
        let secret = SecretString::from("site secret");
        let token = sign("site secret", json!({"sub": "c-1", "exp": i64::MAX}));
        let id = verify(&token, Some(&secret), NOW).expect("valid");
        assert_eq!(id.sub, "c-1");
    }

    #[test]
    fn refuses_wrong_secret_expired_alg_none_and_missing_exp() {
        let good = SecretString::from("s3cret");
        let t = sign("other", json!({"sub": "c", "exp": 1_800_000_600}));
        assert_eq!(
            verify(&t, Some(&good), NOW).unwrap_err(),
            IdentityError::Invalid
        );
        let t = sign("s3cret", json!({"sub": "c", "exp": 1_799_999_000}));
        assert_eq!(
            verify(&t, Some(&good), NOW).unwrap_err(),
            IdentityError::Expired
        );
        let t = sign("s3cret", json!({"sub": "c"}));
        assert_eq!(
            verify(&t, Some(&good), NOW).unwrap_err(),
            IdentityError::Invalid
        );
        // An unsigned token ("alg": "none") must never pass.
        let unsigned =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJjIiwiZXhwIjoxODAwMDAwNjAwfQ.";
        assert_eq!(
            verify(unsigned, Some(&good), NOW).unwrap_err(),
            IdentityError::Invalid
        );
        assert_eq!(verify(&t, None, NOW).unwrap_err(), IdentityError::NoSecret);
    }
}
