//! HS256 JSON Web Tokens: exactly the one algorithm this engine issues.
//!
//! Why not a general JWT library: the usual ones pull in RSA, ECDSA and EdDSA stacks we do
//! not use (a minute of build time on two cores), and accepting only HS256 means the
//! `alg` header can never pick a weaker check. The primitives (HMAC-SHA256, base64url,
//! constant-time comparison) come from RustCrypto and the base64 crate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::Role;

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}`, the only header we issue or accept.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header")]
    UnsupportedHeader,
    #[error("bad signature")]
    BadSignature,
    #[error("expired token")]
    Expired,
}

pub struct JwtKeys {
    /// HMAC-SHA256 with the secret already absorbed: cloned per token. Keying it from the
    /// secret for every request hashed two more blocks per Buy Now (issue 14).
    keyed: HmacSha256,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

impl JwtKeys {
    pub fn new(secret: SecretString) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        let keyed = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts any key length");
        Self { keyed }
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    pub fn encode(&self, claims: &Claims) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims always serialize"));
        let signing_input = format!("{HEADER}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Whether `token` has the engine's own header (HS256, no key id): anything else is
    /// left to the identity provider.
    pub fn is_own(token: &str) -> bool {
        token
            .split_once('.')
            .is_some_and(|(header, _)| header == HEADER)
    }

    pub fn decode(&self, token: &str, now_secs: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // Every token this engine issues has exactly `HEADER`: known to say HS256 without
        // decoding it. Any other header is read, and only HS256 is accepted.
        if header_b64 != HEADER {
            let header_json = URL_SAFE_NO_PAD
                .decode(header_b64)
                .map_err(|_| TokenError::Malformed)?;
            let header: Header =
                serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
            if header.alg != "HS256" {
                return Err(TokenError::UnsupportedHeader);
            }
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Malformed)?;
        // The signed part is `header.payload` exactly as sent.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now_secs {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(SecretString::from(secret.to_owned()))
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "42".into(),
            role: Role::Customer,
            exp,
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let token = keys("s3cret").encode(&claims(1_000));
        assert_eq!(keys("s3cret").decode(&token, 999), Ok(claims(1_000)));
        assert_eq!(
            keys("s3cret").decode(&token, 1_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_hs256_header_is_read_and_accepted() {
        // Not our own header's bytes (fields in another order): decoded, found HS256.
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
        assert_ne!(header, HEADER);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"42","role":"customer","exp":1000}"#);
        let signing_input = format!("{header}.{payload}");
        let mut mac = keys("s3cret").mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{signing_input}.{signature}");
        assert_eq!(keys("s3cret").decode(&token, 999), Ok(claims(1_000)));
        assert_eq!(
            keys("other").decode(&token, 999),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let token = keys("s3cret").encode(&claims(1_000));
        assert_eq!(
            keys("other").decode(&token, 0),
            Err(TokenError::BadSignature)
        );
        let admin = URL_SAFE_NO_PAD.encode(br#"{"sub":"42","role":"admin","exp":1000}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(
            keys("s3cret").decode(&forged, 0),
            Err(TokenError::BadSignature)
        );
        let none_alg = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let unsigned = format!("{none_alg}.{}.", parts[1]);
        assert_eq!(
            keys("s3cret").decode(&unsigned, 0),
            Err(TokenError::UnsupportedHeader)
        );
        assert_eq!(keys("s3cret").decode("a.b", 0), Err(TokenError::Malformed));
        assert_eq!(keys("s3cret").decode("", 0), Err(TokenError::Malformed));
    }
}
