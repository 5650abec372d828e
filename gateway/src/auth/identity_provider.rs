//! Tokens from the shop's identity provider (Keycloak, Auth0, Cognito...): RS256/ES256 JWTs
//! checked with `jsonwebtoken` against the provider's JWKS, with its issuer, this API's
//! audience, `exp` and `nbf`.
//!
//! The keys are cached. A token naming a key we do not have fetches the JWKS again (the
//! provider rotated a new key in), at most once per `jwks_refresh_min_ms`; the whole set is
//! fetched again after `jwks_max_age_secs` anyway, so a key rotated out stops working.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};

use super::Role;
use crate::settings::AuthSettings;

/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the token's header is not readable")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token names no key the identity provider publishes")]
    UnknownKey,
    #[error("the identity provider's keys cannot be fetched")]
    Unreachable,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Who a provider's token names.
#[derive(Debug, PartialEq, Eq)]
pub struct ProviderCaller {
    pub user_id: u64,
    pub role: Role,
}

/// The public-key algorithms among `names`, or the one that is not.
pub fn public_key_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    names
        .iter()
        .map(|name| {
            let algorithm: Algorithm = name
                .parse()
                .map_err(|_| format!("auth.algorithms: unknown algorithm {name:?}"))?;
            match algorithm {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(format!(
                    "auth.algorithms: {name} is a shared-secret algorithm, not a provider's"
                )),
                other => Ok(other),
            }
        })
        .collect()
}

struct Keys {
    by_id: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

pub struct IdentityProvider {
    jwks_url: String,
    /// One per accepted algorithm: `jsonwebtoken` wants every algorithm of a validation to
    /// be of the key's family (RSA or EC).
    validations: Vec<(Algorithm, Validation)>,
    role_claim: Vec<String>,
    refresh_min: Duration,
    max_age: Duration,
    client: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time; holds when the last one started.
    fetching: Mutex<Option<Instant>>,
}

impl IdentityProvider {
    /// `None` when no provider is configured (`Settings::check` made sure the rest is).
    pub fn from_settings(auth: &AuthSettings) -> anyhow::Result<Option<Self>> {
        let Some(jwks_url) = &auth.jwks_url else {
            return Ok(None);
        };
        let algorithms = public_key_algorithms(&auth.algorithms).map_err(anyhow::Error::msg)?;
        let (Some(issuer), Some(audience)) = (&auth.issuer, &auth.audience) else {
            anyhow::bail!("auth.jwks_url needs auth.issuer and auth.audience");
        };
        let validations = algorithms
            .into_iter()
            .map(|algorithm| {
                let mut validation = Validation::new(algorithm);
                validation.validate_nbf = true;
                // Clocks of the provider and the nodes differ by a little.
                validation.leeway = 30;
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (algorithm, validation)
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|error| anyhow::anyhow!("building the JWKS client: {error}"))?;
        Ok(Some(Self {
            jwks_url: jwks_url.clone(),
            validations,
            role_claim: auth.role_claim.split('.').map(str::to_owned).collect(),
            refresh_min: Duration::from_millis(auth.jwks_refresh_min_ms),
            max_age: Duration::from_secs(auth.jwks_max_age_secs),
            client,
            keys: RwLock::new(Keys {
                by_id: HashMap::new(),
                fetched_at: None,
            }),
            fetching: Mutex::new(None),
        }))
    }

    /// Checks a provider's token and says who it names.
    pub async fn verify(&self, token: &str) -> Result<ProviderCaller, ProviderError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ProviderError::Malformed)?;
        let Some((_, validation)) = self
            .validations
            .iter()
            .find(|(algorithm, _)| *algorithm == header.alg)
        else {
            return Err(ProviderError::Algorithm);
        };
        let kid = header.kid.ok_or(ProviderError::UnknownKey)?;
        let key = self.key(&kid).await?;
        let claims = jsonwebtoken::decode::<Value>(token, &key, validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ProviderError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => ProviderError::Algorithm,
                _ => ProviderError::Invalid(error.to_string()),
            })?
            .claims;
        Ok(ProviderCaller {
            user_id: user_id(&claims),
            role: self.role(&claims),
        })
    }

    /// The key `kid`, fetching the JWKS again if it is unknown (rate-bounded) or stale.
    async fn key(&self, kid: &str) -> Result<DecodingKey, ProviderError> {
        {
            let keys = self.keys.read().await;
            let fresh = keys
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.max_age);
            if fresh && let Some(key) = keys.by_id.get(kid) {
                return Ok(key.clone());
            }
        }
        let refreshed = self.refresh().await;
        match self.keys.read().await.by_id.get(kid) {
            Some(key) => Ok(key.clone()),
            // The provider is down: keys we had still verify (the log says it).
            None => Err(refreshed.err().unwrap_or(ProviderError::UnknownKey)),
        }
    }

    /// Fetches the JWKS unless a fetch started less than `refresh_min` ago (while the keys
    /// are not stale).
    async fn refresh(&self) -> Result<(), ProviderError> {
        let mut last = self.fetching.lock().await;
        let stale = self
            .keys
            .read()
            .await
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.max_age);
        if !stale && last.is_some_and(|at| at.elapsed() < self.refresh_min) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let set: JwkSet = self
            .client
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| {
                tracing::warn!(%error, url = %self.jwks_url, "fetching the JWKS failed");
                ProviderError::Unreachable
            })?
            .json()
            .await
            .map_err(|error| {
                tracing::warn!(%error, url = %self.jwks_url, "the JWKS is not readable");
                ProviderError::Unreachable
            })?;
        let by_id: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                match DecodingKey::from_jwk(jwk) {
                    Ok(key) => Some((kid, key)),
                    Err(error) => {
                        tracing::warn!(%error, kid, "a JWKS key is not usable");
                        None
                    }
                }
            })
            .collect();
        tracing::info!(keys = by_id.len(), "identity provider keys fetched");
        *self.keys.write().await = Keys {
            by_id,
            fetched_at: Some(Instant::now()),
        };
        Ok(())
    }

    fn role(&self, claims: &Value) -> Role {
        let mut value = claims;
        for step in &self.role_claim {
            value = &value[step.as_str()];
        }
        let names: Vec<&str> = match value {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        [Role::Admin, Role::Logistics, Role::Delivery, Role::Seller]
            .into_iter()
            .find(|role| {
                names
                    .iter()
                    .any(|name| name.parse::<Role>().ok() == Some(*role))
            })
            .unwrap_or(Role::Customer)
    }
}

/// The engine's user id for a provider's subject: the number itself when it is one, else a
/// stable 63-bit digest of issuer and subject (providers' subjects are UUIDs or opaque).
fn user_id(claims: &Value) -> u64 {
    let subject = match &claims["sub"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if let Ok(number) = subject.parse::<u64>() {
        return number;
    }
    let issuer = claims["iss"].as_str().unwrap_or_default();
    let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_key_algorithms_are_accepted() {
        let names = |list: &[&str]| {
            list.iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            public_key_algorithms(&names(&["RS256", "ES256"])),
            Ok(vec![Algorithm::RS256, Algorithm::ES256])
        );
        assert!(public_key_algorithms(&names(&["HS256"])).is_err());
        assert!(public_key_algorithms(&names(&["none"])).is_err());
    }

    #[test]
    fn subjects_become_stable_user_ids() {
        let uuid = serde_json::json!({"sub": "2f8e5c1a-0000-4000-8000-000000000001", "iss": "a"});
        assert_eq!(user_id(&uuid), user_id(&uuid.clone()));
        let other_issuer =
            serde_json::json!({"sub": "2f8e5c1a-0000-4000-8000-000000000001", "iss": "b"});
        assert_ne!(user_id(&uuid), user_id(&other_issuer));
        assert_eq!(user_id(&serde_json::json!({"sub": "42"})), 42);
    }
}
