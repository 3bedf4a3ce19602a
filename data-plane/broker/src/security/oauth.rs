//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with the control plane's access tokens: a person or a
//! service uses one identity for REST and Kafka. The broker verifies a token against the
//! control plane's published keys (its `/.well-known/jwks.json`, given as `--oauth-jwks-file`,
//! so the data path never calls the control plane): the header must be `EdDSA` with a known
//! `kid`, the Ed25519 signature must verify, `exp` must be in the future and `nbf` (when present)
//! in the past (30 s of leeway by default, as the control plane allows), and `iss` and `aud` must be the
//! configured ones. The principal is `User:<name>` (the hdi username, the `name` claim): the
//! same principal a SCRAM user of that name has, so ACLs name people once.
//!
//! The session lasts until the token expires: the broker tells the client (`session_lifetime_ms`,
//! KIP-368), accepts a re-authentication with a new token of the same principal, and closes a
//! connection whose session has expired.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, UnparsedPublicKey};

/// Clock skew tolerated on `exp` and `nbf` by default (Kafka's
/// `sasl.oauthbearer.clock.skew.seconds`).
pub const LEEWAY_SECS: i64 = 30;

/// How OAUTHBEARER tokens are verified.
#[derive(Clone, PartialEq, Eq)]
pub struct OauthConfig {
    /// Ed25519 public keys by `kid`.
    pub keys: BTreeMap<String, Vec<u8>>,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
}

impl std::fmt::Debug for OauthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthConfig")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// Reads a JSON Web Key Set of Ed25519 keys (`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":..,
/// "x":..}]}`; other keys are skipped).
///
/// # Errors
/// Text that is not such a set, or one without a usable key.
pub fn parse_jwks(text: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("no \"keys\" array")?;
    let mut out = BTreeMap::new();
    for key in keys {
        let field = |name: &str| key.get(name).and_then(|v| v.as_str());
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            continue;
        }
        let (Some(kid), Some(x)) = (field("kid"), field("x")) else {
            return Err("an Ed25519 key without \"kid\" or \"x\"".into());
        };
        let public = URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .filter(|p| p.len() == 32)
            .ok_or_else(|| format!("key {kid:?}: \"x\" is not a 32-byte base64url key"))?;
        out.insert(kid.to_owned(), public);
    }
    if out.is_empty() {
        return Err("no Ed25519 key".into());
    }
    Ok(out)
}

/// The bearer token of an OAUTHBEARER client message (`gs2-header %x01 auth=Bearer <token>
/// %x01 [kvpairs] %x01`).
///
/// # Errors
/// A message of another shape.
pub fn parse_client_message(message: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8")?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or("the message has no gs2 header")?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) || !gs2.ends_with(',') {
        return Err("the message has an invalid gs2 header".into());
    }
    let rest = rest
        .strip_suffix("\u{1}\u{1}")
        .ok_or("the message does not end with two separators")?;
    let mut token = None;
    for pair in rest.split('\u{1}') {
        let (key, value) = pair.split_once('=').ok_or("a key without a value")?;
        if key == "auth" {
            let bearer = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or("auth is not a Bearer token")?;
            token = Some(bearer.trim().to_owned());
        }
    }
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the message has no auth=Bearer token".into())
}

/// A verified token: its principal and when it expires (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `User:<name>`.
    pub principal: String,
    /// `exp`.
    pub expires_at: i64,
}

fn part(text: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("the token's {what} is not base64url"))
}

impl OauthConfig {
    /// Verifies a compact JWT at time `now` (seconds since the epoch).
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a compact JWT".into());
        };
        let header: serde_json::Value = serde_json::from_slice(&part(header, "header")?)
            .map_err(|_| "the token's header is not JSON")?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err("the token is not signed with EdDSA".into());
        }
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or("the token names no key (kid)")?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| format!("the token's key {kid:?} is not known"))?;
        let signed_len = token.len() - signature.len() - 1;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(
                &token.as_bytes()[..signed_len],
                &part(signature, "signature")?,
            )
            .map_err(|_| "the token's signature does not verify")?;
        let claims: serde_json::Value = serde_json::from_slice(&part(payload, "payload")?)
            .map_err(|_| "the token's claims are not JSON")?;
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
        let expires_at = number("exp").ok_or("the token has no exp")?;
        if expires_at + self.leeway_secs <= now {
            return Err("the token has expired".into());
        }
        if number("nbf").is_some_and(|nbf| nbf - self.leeway_secs > now) {
            return Err("the token is not valid yet".into());
        }
        if text("iss") != Some(self.issuer.as_str()) {
            return Err("the token's issuer is not accepted".into());
        }
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => a == &self.audience,
            Some(serde_json::Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(&self.audience))
            }
            _ => false,
        };
        if !audience_ok {
            return Err("the token's audience is not accepted".into());
        }
        let name = text("name")
            .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
            .ok_or("the token names no user (name)")?;
        Ok(Verified {
            principal: format!("User:{name}"),
            expires_at,
        })
    }
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    /// A key pair and a token signer, as the control plane makes them.
    pub(crate) struct Signer(Ed25519KeyPair);

    impl Signer {
        pub(crate) fn new() -> Signer {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            Signer(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }

        pub(crate) fn config(&self) -> OauthConfig {
            OauthConfig {
                keys: BTreeMap::from([("k1".to_owned(), self.0.public_key().as_ref().to_vec())]),
                issuer: "hdi-control-plane".into(),
                audience: "hdi-api".into(),
                leeway_secs: LEEWAY_SECS,
            }
        }

        pub(crate) fn token(&self, header: &str, claims: &serde_json::Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self.0.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }

    pub(crate) fn claims(name: &str, exp: i64) -> serde_json::Value {
        serde_json::json!({"iss": "hdi-control-plane", "aud": "hdi-api", "sub": "u1",
            "name": name, "iat": exp - 600, "exp": exp, "jti": "j"})
    }

    const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#;

    #[test]
    fn the_control_planes_tokens_verify_and_name_their_user() {
        let signer = Signer::new();
        let config = signer.config();
        let now = 1_000_000;
        let token = signer.token(HEADER, &claims("alice", now + 600));
        assert_eq!(
            config.verify(&token, now).unwrap(),
            Verified {
                principal: "User:alice".into(),
                expires_at: now + 600
            }
        );
        // Expired, future nbf, other issuer or audience, unknown kid, other algorithm, forged.
        assert!(config.verify(&token, now + 700).is_err());
        let mut early = claims("alice", now + 600);
        early["nbf"] = serde_json::json!(now + 100);
        assert!(config.verify(&signer.token(HEADER, &early), now).is_err());
        let mut other = claims("alice", now + 600);
        other["iss"] = serde_json::json!("evil");
        assert!(config.verify(&signer.token(HEADER, &other), now).is_err());
        let mut aud = claims("alice", now + 600);
        aud["aud"] = serde_json::json!(["x", "hdi-api"]);
        assert!(config.verify(&signer.token(HEADER, &aud), now).is_ok());
        aud["aud"] = serde_json::json!("x");
        assert!(config.verify(&signer.token(HEADER, &aud), now).is_err());
        let unknown = r#"{"alg":"EdDSA","kid":"k2"}"#;
        assert!(
            config
                .verify(&signer.token(unknown, &claims("a", now + 600)), now)
                .is_err()
        );
        let none = r#"{"alg":"none","kid":"k1"}"#;
        assert!(
            config
                .verify(&signer.token(none, &claims("a", now + 600)), now)
                .is_err()
        );
        let stranger = Signer::new().token(HEADER, &claims("alice", now + 600));
        assert!(config.verify(&stranger, now).is_err());
        let (head, _) = token.rsplit_once('.').unwrap();
        let body = URL_SAFE_NO_PAD.encode(claims("mallory", now + 600).to_string());
        let spliced = format!(
            "{}.{body}.{}",
            head.split('.').next().unwrap(),
            token.rsplit('.').next().unwrap()
        );
        assert!(config.verify(&spliced, now).is_err());
    }

    #[test]
    fn client_messages_and_key_sets_parse() {
        assert_eq!(
            parse_client_message(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            parse_client_message(b"n,a=alice,\x01host=h\x01port=9\x01auth=Bearer t\x01\x01")
                .unwrap(),
            "t"
        );
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"p=x,,\x01auth=Bearer t\x01\x01",
        ] {
            assert!(parse_client_message(bad).is_err(), "{bad:?}");
        }
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA","use":"sig"},{"kty":"RSA","kid":"r"}]}"#;
        assert_eq!(parse_jwks(jwks).unwrap().len(), 1);
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(
            parse_jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"AA"}]}"#).is_err()
        );
    }
}
