//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's KIP-84 use them): the
//! salted credential a broker keeps instead of a password ([`ScramCredential`]), the server side
//! of the two-round-trip exchange ([`ScramServer`]), and checking a PLAIN password against the
//! same credential ([`ScramCredential::verify_password`]).
//!
//! Every message from the client is parsed here and only here (the fuzz targets in
//! `tests/bad_input.rs` feed it junk). Channel binding (`p=`) is refused, as Kafka does;
//! delegation-token extensions (`tokenauth=true`) are refused (hdi has no delegation tokens).
//! An unknown user gets a server-first message with a salt derived from the user name and a
//! per-process secret, then fails at the proof like a wrong password: the exchange does not say
//! which names exist.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom as _};
use serde::{Deserialize, Serialize};

/// The fewest PBKDF2 iterations a credential may have (Kafka's minimum).
pub const MIN_ITERATIONS: u32 = 4096;
/// The most PBKDF2 iterations a credential may have (Kafka's maximum).
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (Kafka's mechanism type 1).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// `SCRAM-SHA-512` (Kafka's mechanism type 2).
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both, strongest first.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha512, ScramMechanism::Sha256];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL name.
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's numeric type (`ScramMechanism` in the admin API).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism of Kafka's numeric type.
    pub fn from_kafka_type(value: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == value)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Output length of the hash, in bytes.
    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

/// What a broker keeps of a user's password for one mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a credential cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Iterations outside Kafka's bounds.
    #[error("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {0}")]
    Iterations(i64),
    /// An empty salt or a salted password of the wrong length.
    #[error("{0}")]
    Shape(String),
}

impl ScramCredential {
    /// The credential of a salted password (what `AlterUserScramCredentials` sends).
    ///
    /// # Errors
    /// Iterations out of bounds, an empty salt, or a salted password that is not the hash's
    /// length.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i64,
    ) -> Result<ScramCredential, CredentialError> {
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or(CredentialError::Iterations(iterations))?;
        if salt.is_empty() || salt.len() > 1024 {
            return Err(CredentialError::Shape(
                "the salt must hold 1 to 1024 bytes".into(),
            ));
        }
        if salted_password.len() != mechanism.output_len() {
            return Err(CredentialError::Shape(format!(
                "a {} salted password has {} bytes, not {}",
                mechanism.name(),
                mechanism.output_len(),
                salted_password.len()
            )));
        }
        Ok(ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&mechanism.mac(salted_password, b"Client Key")),
            server_key: mechanism.mac(salted_password, b"Server Key"),
            iterations,
        })
    }

    /// The credential of `password` with a fresh random salt.
    ///
    /// # Errors
    /// Iterations out of bounds, or no randomness.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let mut salt = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| CredentialError::Shape("no randomness for a salt".into()))?;
        let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations)?;
        ScramCredential::from_salted_password(mechanism, &salt, &salted, i64::from(iterations))
    }

    /// Whether `password` is this credential's (PLAIN over SCRAM credentials: one PBKDF2).
    pub fn verify_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let Ok(salted) = salted_password(mechanism, password, &self.salt, self.iterations) else {
            return false;
        };
        let stored = mechanism.hash(&mechanism.mac(&salted, b"Client Key"));
        constant_time_eq(&stored, &self.stored_key)
    }

    /// One line of a `--sasl-users-file`: `NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY`
    /// (the last three base64).
    pub fn to_line(&self, name: &str, mechanism: ScramMechanism) -> String {
        format!(
            "{name} {} {} {} {} {}",
            mechanism.name(),
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }

    /// Parses a line made by [`ScramCredential::to_line`].
    ///
    /// # Errors
    /// What is wrong with the line.
    pub fn parse_line(line: &str) -> Result<(String, ScramMechanism, ScramCredential), String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, mechanism, iterations, salt, stored, server] = fields[..] else {
            return Err(
                "expected NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY (base64)".into(),
            );
        };
        let mechanism = ScramMechanism::from_name(mechanism)
            .ok_or_else(|| format!("unknown mechanism {mechanism:?}"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| format!("iterations {iterations:?} out of bounds"))?;
        let decode = |what: &str, text: &str| {
            B64.decode(text)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        let credential = ScramCredential {
            salt: decode("the salt", salt)?,
            stored_key: decode("the stored key", stored)?,
            server_key: decode("the server key", server)?,
            iterations,
        };
        if credential.salt.is_empty()
            || credential.stored_key.len() != mechanism.output_len()
            || credential.server_key.len() != mechanism.output_len()
        {
            return Err(format!("keys of the wrong length for {}", mechanism.name()));
        }
        Ok((name.to_owned(), mechanism, credential))
    }
}

/// PBKDF2 of `password` (Kafka applies no SASLprep: the UTF-8 bytes as given).
///
/// # Errors
/// Iterations out of bounds.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, CredentialError> {
    let rounds = NonZeroU32::new(iterations)
        .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&i.get()))
        .ok_or(CredentialError::Iterations(i64::from(iterations)))?;
    let mut out = vec![0u8; mechanism.output_len()];
    pbkdf2::derive(mechanism.pbkdf2(), rounds, salt, password, &mut out);
    Ok(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Kafka's message for every failed SCRAM exchange (wrong password, unknown user, bad proof).
pub fn failure_message(mechanism: ScramMechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// One SCRAM exchange, server side.
#[derive(Debug)]
pub enum ScramServer {
    /// Waiting for client-first.
    Start,
    /// Sent server-first; waiting for client-final.
    SentFirst(Box<Pending>),
    /// Done (succeeded or failed): nothing more is accepted.
    Finished,
}

/// What a server remembers between server-first and client-final.
#[derive(Debug)]
pub struct Pending {
    user: String,
    gs2_header: String,
    nonce: String,
    client_first_bare: String,
    server_first: String,
    credential: Option<ScramCredential>,
}

/// What one step gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the final message.
    Done {
        /// The user.
        user: String,
        /// server-final.
        reply: Vec<u8>,
    },
    /// Failed: send Kafka's error with this message and close.
    Failed(String),
}

/// Undoes SCRAM's `saslname` escaping (`=2C` → `,`, `=3D` → `=`); other `=` are invalid.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The parts of client-first.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,,` (with `a=` if given).
    pub gs2_header: String,
    /// The user (unescaped).
    pub user: String,
    /// The client nonce.
    pub nonce: String,
    /// The message without the gs2 header.
    pub bare: String,
}

/// Parses client-first.
///
/// # Errors
/// Why the message is refused.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, String> {
    let text = std::str::from_utf8(message).map_err(|_| "client-first is not UTF-8")?;
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid_field = parts.next().ok_or("client-first has no gs2 header")?;
    let bare = parts.next().ok_or("client-first has no gs2 header")?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("channel binding is not supported".into()),
        _ => return Err("client-first has an invalid gs2 flag".into()),
    }
    let authzid = match authzid_field {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .and_then(unescape)
                .ok_or("client-first has an invalid authzid")?,
        ),
    };
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .and_then(unescape)
        .filter(|u| !u.is_empty())
        .ok_or("client-first has no user name")?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or("client-first has no valid nonce")?;
    for extension in fields {
        if extension.starts_with("tokenauth=") {
            return Err("delegation tokens are not supported".into());
        }
    }
    if authzid.is_some_and(|a| a != user) {
        return Err("the authorization id must be the user name".into());
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authzid_field},"),
        user,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

/// The parts of client-final.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFinal {
    /// The decoded channel-binding field (`c=`).
    pub channel_binding: Vec<u8>,
    /// The nonce (`r=`).
    pub nonce: String,
    /// The message up to the proof (what the auth message includes).
    pub without_proof: String,
    /// The decoded proof.
    pub proof: Vec<u8>,
}

/// Parses client-final.
///
/// # Errors
/// Why the message is refused.
pub fn parse_client_final(message: &[u8]) -> Result<ClientFinal, String> {
    let text = std::str::from_utf8(message).map_err(|_| "client-final is not UTF-8")?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final has no proof")?;
    let mut fields = without_proof.split(',');
    let channel_binding = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .and_then(|c| B64.decode(c).ok())
        .ok_or("client-final has no valid channel binding")?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or("client-final has no nonce")?;
    let proof = B64
        .decode(proof)
        .map_err(|_| "client-final's proof is not base64")?;
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_owned(),
        without_proof: without_proof.to_owned(),
        proof,
    })
}

/// 24 random bytes as hex: printable, without `,`, `+` or `/` (Kafka's own nonces are
/// alphanumeric too).
fn random_nonce() -> Option<String> {
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A per-process secret that makes unknown users' salts stable but unguessable.
fn decoy_salt(mechanism: ScramMechanism, user: &str) -> Vec<u8> {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut bytes = [0u8; 32];
        let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
        bytes
    });
    let mut salt = mechanism.mac(secret, user.as_bytes());
    salt.truncate(24);
    salt
}

impl ScramServer {
    /// Takes the client's next message; `lookup` finds a user's credential.
    pub fn step(
        &mut self,
        mechanism: ScramMechanism,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Step {
        match std::mem::replace(self, ScramServer::Finished) {
            ScramServer::Start => {
                let first = match parse_client_first(message) {
                    Ok(first) => first,
                    Err(reason) => return Step::Failed(reason),
                };
                let credential = lookup(&first.user);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (decoy_salt(mechanism, &first.user), MIN_ITERATIONS),
                };
                let Some(server_nonce) = random_nonce() else {
                    return Step::Failed("no randomness for a nonce".into());
                };
                let nonce = format!("{}{server_nonce}", first.nonce);
                let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
                let reply = server_first.clone().into_bytes();
                *self = ScramServer::SentFirst(Box::new(Pending {
                    user: first.user,
                    gs2_header: first.gs2_header,
                    nonce,
                    client_first_bare: first.bare,
                    server_first,
                    credential,
                }));
                Step::Continue(reply)
            }
            ScramServer::SentFirst(pending) => {
                let last = match parse_client_final(message) {
                    Ok(last) => last,
                    Err(reason) => return Step::Failed(reason),
                };
                if last.channel_binding != pending.gs2_header.as_bytes() {
                    return Step::Failed("client-final's channel binding does not match".into());
                }
                // Kafka checks that the nonce ends with the one it sent (librdkafka 2.0.2 repeats
                // the client's part); the proof covers the message as sent either way.
                if !last.nonce.ends_with(&pending.nonce) {
                    return Step::Failed("client-final's nonce does not match".into());
                }
                let Some(credential) = pending.credential else {
                    return Step::Failed(failure_message(mechanism));
                };
                let auth_message = format!(
                    "{},{},{}",
                    pending.client_first_bare, pending.server_first, last.without_proof
                );
                let signature = mechanism.mac(&credential.stored_key, auth_message.as_bytes());
                if last.proof.len() != signature.len() {
                    return Step::Failed(failure_message(mechanism));
                }
                let client_key: Vec<u8> = last
                    .proof
                    .iter()
                    .zip(&signature)
                    .map(|(p, s)| p ^ s)
                    .collect();
                if !constant_time_eq(&mechanism.hash(&client_key), &credential.stored_key) {
                    return Step::Failed(failure_message(mechanism));
                }
                let verifier = mechanism.mac(&credential.server_key, auth_message.as_bytes());
                Step::Done {
                    user: pending.user,
                    reply: format!("v={}", B64.encode(verifier)).into_bytes(),
                }
            }
            ScramServer::Finished => Step::Failed("the SCRAM exchange is over".into()),
        }
    }
}

/// The client side of an exchange, for tests and tools (the broker never calls it).
pub mod client {
    use base64::Engine as _;

    use super::{B64, ScramMechanism, salted_password};

    /// client-first for `user` with `nonce`.
    pub fn first(user: &str, nonce: &str) -> String {
        format!(
            "n,,n={},r={nonce}",
            user.replace('=', "=3D").replace(',', "=2C")
        )
    }

    /// client-final for the server's first message, or `None` when it does not parse.
    pub fn last(
        mechanism: ScramMechanism,
        password: &str,
        client_first: &str,
        server_first: &str,
    ) -> Option<String> {
        last_with_nonce(mechanism, password, client_first, server_first, None)
    }

    /// [`last`], sending `nonce` instead of the server's (librdkafka 2.0.2 repeats its part).
    pub fn last_with_nonce(
        mechanism: ScramMechanism,
        password: &str,
        client_first: &str,
        server_first: &str,
        nonce: Option<&str>,
    ) -> Option<String> {
        let mut server_nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                server_nonce = Some(v);
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = B64.decode(v).ok();
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = v.parse().ok();
            }
        }
        let salted = salted_password(mechanism, password.as_bytes(), &salt?, iterations?).ok()?;
        let client_key = mechanism.mac(&salted, b"Client Key");
        let stored = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={}", nonce.or(server_nonce)?);
        let bare = client_first.strip_prefix("n,,")?;
        let auth = format!("{bare},{server_first},{without_proof}");
        let signature = mechanism.mac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        Some(format!("{without_proof},p={}", B64.encode(proof)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn exchange(mechanism: ScramMechanism, stored: &ScramCredential, password: &str) -> Step {
        let mut server = ScramServer::Start;
        let first = client::first("alice", "fyko+d2lbbFgONRv9qkxdawL");
        let Step::Continue(server_first) =
            server.step(mechanism, first.as_bytes(), |_| Some(stored.clone()))
        else {
            panic!("no server-first");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let last = client::last(mechanism, password, &first, &server_first).unwrap();
        server.step(mechanism, last.as_bytes(), |_| None)
    }

    #[test]
    fn a_right_password_authenticates_and_a_wrong_one_fails() {
        for mechanism in ScramMechanism::ALL {
            let stored = ScramCredential::from_password(mechanism, "s3cret", 4096).unwrap();
            assert!(matches!(
                exchange(mechanism, &stored, "s3cret"),
                Step::Done { ref user, .. } if user == "alice"
            ));
            assert_eq!(
                exchange(mechanism, &stored, "guess"),
                Step::Failed(failure_message(mechanism))
            );
            assert!(stored.verify_password(mechanism, b"s3cret"));
            assert!(!stored.verify_password(mechanism, b"s3cre"));
        }
    }

    /// RFC 7677's SCRAM-SHA-256 test vector (user "user", password "pencil").
    #[test]
    fn rfc_7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(ScramMechanism::Sha256, b"pencil", &salt, 4096).unwrap();
        let stored =
            ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, &salted, 4096)
                .unwrap();
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let mechanism = ScramMechanism::Sha256;
        let signature = mechanism.mac(&stored.stored_key, auth.as_bytes());
        let client_key = mechanism.mac(&salted, b"Client Key");
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let verifier = mechanism.mac(&stored.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(verifier),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// librdkafka 2.0.2 sends the client nonce twice in client-final; Kafka accepts a nonce
    /// that ends with the one it sent, and so do we (the proof covers what was sent).
    #[test]
    fn a_repeated_client_nonce_is_accepted_as_kafka_accepts_it() {
        let mechanism = ScramMechanism::Sha512;
        let stored = ScramCredential::from_password(mechanism, "pw", 4096).unwrap();
        let mut server = ScramServer::Start;
        let first = client::first("alice", "abc");
        let Step::Continue(reply) =
            server.step(mechanism, first.as_bytes(), |_| Some(stored.clone()))
        else {
            panic!()
        };
        let server_first = String::from_utf8(reply).unwrap();
        let nonce = server_first[2..].split(',').next().unwrap().to_owned();
        let doubled = format!("abc{nonce}");
        let last = client::last_with_nonce(mechanism, "pw", &first, &server_first, Some(&doubled))
            .unwrap();
        assert!(last.contains(&format!("r=abc{nonce}")));
        assert!(matches!(
            server.step(mechanism, last.as_bytes(), |_| None),
            Step::Done { .. }
        ));
    }

    #[test]
    fn unknown_users_get_a_stable_decoy_and_fail_at_the_proof() {
        let mechanism = ScramMechanism::Sha512;
        let first = client::first("nobody", "abc");
        let answer =
            |server: &mut ScramServer| match server.step(mechanism, first.as_bytes(), |_| None) {
                Step::Continue(reply) => String::from_utf8(reply).unwrap(),
                other => panic!("{other:?}"),
            };
        let (mut one, mut two) = (ScramServer::Start, ScramServer::Start);
        let (a, b) = (answer(&mut one), answer(&mut two));
        let salt = |s: &str| {
            s.split(",s=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(salt(&a), salt(&b));
        let last = client::last(mechanism, "x", &first, &a).unwrap();
        assert_eq!(
            one.step(mechanism, last.as_bytes(), |_| None),
            Step::Failed(failure_message(mechanism))
        );
    }

    #[test]
    fn malformed_and_unsupported_messages_are_refused() {
        for bad in [
            "",
            "n,,",
            "p=tls-unique,,n=a,r=x",
            "x,,n=a,r=x",
            "n,,n=,r=x",
            "n,,n=a=2,r=x",
            "n,,n=a,r=",
            "n,a=b,n=a,r=x",
            "n,,n=a,r=x,tokenauth=true",
        ] {
            assert!(parse_client_first(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let ok = parse_client_first(b"n,a=a=2Cb,n=a=2Cb,r=x").unwrap();
        assert_eq!(
            (ok.user.as_str(), ok.gs2_header.as_str()),
            ("a,b", "n,a=a=2Cb,")
        );
        for bad in ["", "c=biws,r=x", "c=!!,r=x,p=AA==", "c=biws,r=x,p=!!"] {
            assert!(parse_client_final(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_file_lines_round_trip_and_bad_ones_are_named() {
        let c = ScramCredential::from_password(ScramMechanism::Sha256, "pw", 4096).unwrap();
        let line = c.to_line("admin", ScramMechanism::Sha256);
        assert_eq!(
            ScramCredential::parse_line(&line).unwrap(),
            ("admin".to_owned(), ScramMechanism::Sha256, c)
        );
        assert!(ScramCredential::parse_line("admin SCRAM-SHA-1 4096 AA AA AA").is_err());
        assert!(ScramCredential::parse_line("admin SCRAM-SHA-256 10 AA AA AA").is_err());
        assert!(
            ScramCredential::from_salted_password(ScramMechanism::Sha512, b"s", &[0; 32], 4096)
                .is_err()
        );
    }
}
