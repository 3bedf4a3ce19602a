//! The control plane's JWTs: Ed25519 (`EdDSA`) keys, issuing access tokens and verifying them.
//!
//! Verification accepts exactly `EdDSA` with a `kid` naming one of the known keys (so `none`,
//! `HS*` and `RS*` headers, a missing or unknown `kid` all fail), then checks the signature,
//! `exp` (with [`LEEWAY`]), `nbf` when present, `iss` and `aud`, and requires `sub` to be a user id.
//! Whether that user still exists, and what it may do, is the service layer's business.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::model::UserId;

/// The JOSE name of the one signing algorithm.
pub const ALGORITHM: &str = "EdDSA";
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// A signing key pair as stored: the private key in PKCS#8 DER, the public key as raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Key id, published in the JWKS and put in every token header.
    pub kid: String,
    /// PKCS#8 DER of the Ed25519 private key.
    pub private_pkcs8: Vec<u8>,
    /// The 32 raw bytes of the Ed25519 public key.
    pub public: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why key material could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("cannot get random bytes")]
    Random(#[source] getrandom::Error),
    /// The key could not be encoded.
    #[error("cannot encode the key")]
    Encode(#[source] ed25519_dalek::pkcs8::Error),
    /// A stored public key is not 32 bytes.
    #[error("stored public key {kid:?} is not an Ed25519 key")]
    BadPublicKey {
        /// Its id.
        kid: String,
    },
    /// Signing failed.
    #[error("cannot sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl KeyMaterial {
    /// A fresh Ed25519 key pair; its `kid` is derived from the public key.
    ///
    /// # Errors
    /// [`KeyError::Random`] or [`KeyError::Encode`].
    pub fn generate() -> Result<KeyMaterial, KeyError> {
        let mut seed = [0_u8; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let private_pkcs8 = key
            .to_pkcs8_der()
            .map_err(KeyError::Encode)?
            .as_bytes()
            .to_vec();
        let public = key.verifying_key().to_bytes().to_vec();
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&public)[..12]);
        Ok(KeyMaterial {
            kid,
            private_pkcs8,
            public,
        })
    }
}

/// Who tokens are issued by and for, and how long they live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// The `iss` claim issued and required.
    pub issuer: String,
    /// The `aud` claim issued and required.
    pub audience: String,
    /// Lifetime of an access token.
    pub ttl: Duration,
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The username (informational; the user is looked up by `sub`).
    pub name: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Not before (seconds since the epoch), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id.
    pub jti: String,
}

/// An issued access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// One public key of the JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id.
    pub kid: String,
    /// The public key, unpadded base64url (the JWK `x`).
    pub x: String,
}

/// The keys in force: the active one signs, all of them verify.
pub struct TokenKeys {
    settings: TokenSettings,
    active_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    published: Vec<PublicJwk>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("settings", &self.settings)
            .field("active_kid", &self.active_kid)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys signing with `active` and verifying with `active` and every key of `others`.
    ///
    /// # Errors
    /// [`KeyError::BadPublicKey`] for a stored public key that is not 32 bytes.
    pub fn new(
        settings: TokenSettings,
        active: &KeyMaterial,
        others: &[KeyMaterial],
    ) -> Result<TokenKeys, KeyError> {
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        for key in std::iter::once(active).chain(others) {
            if key.public.len() != 32 {
                return Err(KeyError::BadPublicKey {
                    kid: key.kid.clone(),
                });
            }
            if verifying.contains_key(&key.kid) {
                continue;
            }
            verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&key.public));
            published.push(PublicJwk {
                kid: key.kid.clone(),
                x: URL_SAFE_NO_PAD.encode(&key.public),
            });
        }
        Ok(TokenKeys {
            settings,
            active_kid: active.kid.clone(),
            signing: EncodingKey::from_ed_der(&active.private_pkcs8),
            verifying,
            published,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The public keys to publish at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[PublicJwk] {
        &self.published
    }

    /// A signed access token for a user, valid from `now` (seconds since the epoch) for the TTL.
    ///
    /// # Errors
    /// [`KeyError::Sign`].
    pub fn issue(&self, user: UserId, username: &str, now: i64) -> Result<IssuedToken, KeyError> {
        let ttl = self.settings.ttl.as_secs().max(1);
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user.to_string(),
            name: username.to_owned(),
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            nbf: None,
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active_kid.clone());
        let access_token =
            jsonwebtoken::encode(&header, &claims, &self.signing).map_err(KeyError::Sign)?;
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
        })
    }

    /// Verifies a token and returns the user id it names.
    ///
    /// # Errors
    /// A reason for the log (the caller only learns `401`).
    pub fn verify(&self, token: &str) -> Result<(UserId, Claims), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let kid = header.kid.ok_or("the header has no kid")?;
        let key = self
            .verifying
            .get(&kid)
            .ok_or_else(|| format!("unknown kid {kid:?}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| format!("claims: {e}"))?;
        let user = UserId::from_str(&data.claims.sub)
            .map_err(|_| format!("sub {:?} is not a user id", data.claims.sub))?;
        Ok((user, data.claims))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "hdi-control-plane".into(),
            audience: "hdi-api".into(),
            ttl: Duration::from_secs(900),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issued_tokens_verify_and_name_their_user() {
        let key = KeyMaterial::generate().unwrap();
        assert_eq!(key.public.len(), 32);
        let keys = TokenKeys::new(settings(), &key, &[]).unwrap();
        let user = UserId::new_v4();
        let issued = keys.issue(user, "alice", now()).unwrap();
        assert_eq!(issued.expires_in, 900);
        let (sub, claims) = keys.verify(&issued.access_token).unwrap();
        assert_eq!(sub, user);
        assert_eq!(claims.name, "alice");
        assert_eq!(claims.aud, "hdi-api");
        assert_eq!(keys.jwks().len(), 1);
        assert_eq!(keys.jwks()[0].kid, key.kid);
    }

    #[test]
    fn refuses_other_keys_settings_and_times() {
        let key = KeyMaterial::generate().unwrap();
        let other = KeyMaterial::generate().unwrap();
        assert_ne!(key.kid, other.kid);
        let keys = TokenKeys::new(settings(), &key, &[]).unwrap();
        let user = UserId::new_v4();
        // Signed by another key under our kid.
        let mut forged = other.clone();
        forged.kid = key.kid.clone();
        let forger = TokenKeys::new(settings(), &forged, &[]).unwrap();
        let token = forger.issue(user, "x", now()).unwrap().access_token;
        assert!(keys.verify(&token).is_err());
        // Other issuer, audience, expired.
        for changed in [
            TokenSettings {
                issuer: "evil".into(),
                ..settings()
            },
            TokenSettings {
                audience: "other".into(),
                ..settings()
            },
        ] {
            let signer = TokenKeys::new(changed, &key, &[]).unwrap();
            let token = signer.issue(user, "x", now()).unwrap().access_token;
            assert!(keys.verify(&token).is_err());
        }
        let old = keys.issue(user, "x", now() - 3600).unwrap().access_token;
        assert!(keys.verify(&old).unwrap_err().contains("Expired"));
        // Within the leeway, still accepted.
        let recent = keys.issue(user, "x", now() - 910).unwrap().access_token;
        assert!(keys.verify(&recent).is_ok());
        // An older key still verifies once known.
        let rotated = TokenKeys::new(settings(), &other, std::slice::from_ref(&key)).unwrap();
        let token = keys.issue(user, "x", now()).unwrap().access_token;
        assert!(rotated.verify(&token).is_ok());
        assert_eq!(rotated.jwks().len(), 2);
    }
}
