//! Who is calling: the crypto and parsing side of authentication, with no storage and no HTTP.
//!
//! - People (and scripts acting for them) are users. They prove who they are with a short-lived
//!   JWT ([`jwt`], signed by the control plane's own Ed25519 key) obtained from
//!   `POST /v1/auth/token` in exchange for a password ([`password`], argon2id) or an API token.
//!   For compatibility, a bearer that is not JWT-shaped (not three dot-separated parts) is taken as
//!   an API token and looked up by its SHA-256 digest; the `--admin-token-file` secret is the API
//!   token of the built-in platform-admin user `admin`.
//! - Node agents prove themselves with the agent token ([`Authenticator`]), compared by SHA-256
//!   digest. An agent token never passes as a user and a user's credential never as an agent.
//!
//! Roles per workspace ([`Role`]) are looked up from the database on every request by the
//! service layer, never trusted from a token. Every refusal is logged with its reason; the caller
//! only sees `401`.

pub mod jwt;
pub mod password;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::model::UserId;

/// The kind of caller a token proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A user (a person, or a script with the user's API token).
    User,
    /// A node agent (may register and heartbeat nodes, nothing else).
    Agent,
}

/// An authenticated user, as the service layer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's id (the JWT `sub`).
    pub user_id: UserId,
    /// The user's name; audit events and operations record it as the actor.
    pub username: String,
    /// A platform administrator may do everything in every workspace.
    pub platform_admin: bool,
}

/// A user's role in one workspace; each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads the workspace's clusters, operations and topics.
    Viewer,
    /// Also creates, changes and deletes clusters and topics.
    Operator,
    /// Also manages the workspace's role bindings.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role of a stored or wire name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Why a request was refused authentication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("Authorization header is not a Bearer token")]
    NotBearer,
    /// The token is not the one for the required principal.
    #[error("bearer token does not match the {expected:?} token")]
    WrongToken {
        /// The principal the endpoint requires.
        expected: Principal,
    },
    /// A JWT that does not verify.
    #[error("invalid JWT: {0}")]
    InvalidJwt(String),
    /// An API token that is unknown or expired.
    #[error("unknown or expired API token")]
    UnknownApiToken,
    /// A valid JWT whose user no longer exists.
    #[error("the token's user {0} no longer exists")]
    UnknownUser(UserId),
    /// A session cookie that names no live session (unknown, expired, idle too long, or ended).
    #[error("the session has ended; log in again")]
    UnknownSession,
}

/// The token of an `Authorization: Bearer <token>` header value.
///
/// # Errors
/// [`AuthError::Missing`] or [`AuthError::NotBearer`].
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::NotBearer)
}

/// Whether a bearer token is to be verified as a JWT (three dot-separated parts) rather than looked
/// up as an API token. API tokens this service issues never contain a dot.
pub fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The SHA-256 digest a secret is stored and compared by.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh API-token secret: `hdi_` and 32 random bytes in unpadded base64url (no dots).
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_api_token_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("hdi_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A fresh portal session secret: `hdis_` and 32 random bytes in unpadded base64url.
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_session_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("hdis_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A fresh Kafka SCRAM password: 32 random bytes in unpadded base64url (43 characters, safe
/// in librdkafka, Java and kafkajs configurations).
///
/// # Errors
/// When the operating system's random source fails.
pub fn new_kafka_password() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks node agents' bearer tokens against the configured agent secret.
pub struct Authenticator {
    agent_digest: [u8; 32],
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

impl Authenticator {
    /// An authenticator for the node agents' token.
    pub fn new(agent_token: &str) -> Authenticator {
        Authenticator {
            agent_digest: digest(agent_token),
        }
    }

    /// Checks the value of an `Authorization` header for the agent token.
    ///
    /// # Errors
    /// An [`AuthError`] saying why the header does not prove a node agent.
    pub fn check_agent(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer(header)?;
        if digest(token) == self.agent_digest {
            Ok(Principal::Agent)
        } else {
            Err(AuthError::WrongToken {
                expected: Principal::Agent,
            })
        }
    }
}

/// Minimum length of a configured token: shorter secrets are refused at start-up.
pub const MIN_TOKEN_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_agent_token() {
        let auth = Authenticator::new("agent-secret-0123456789");
        let wrong = Err(AuthError::WrongToken {
            expected: Principal::Agent,
        });
        let cases = [
            (None, Err(AuthError::Missing)),
            (Some("Basic abc"), Err(AuthError::NotBearer)),
            (Some("Bearer "), Err(AuthError::NotBearer)),
            (
                Some("BEARER agent-secret-0123456789"),
                Err(AuthError::NotBearer),
            ),
            (Some("Bearer agent-secret-0123456789"), Ok(Principal::Agent)),
            (Some("bearer agent-secret-0123456789"), Ok(Principal::Agent)),
            (Some("Bearer agent-secret-012345678"), wrong.clone()),
            (Some("Bearer admin-secret-0123456789"), wrong),
        ];
        for (header, want) in cases {
            assert_eq!(auth.check_agent(header), want, "header {header:?}");
        }
    }

    #[test]
    fn api_tokens_are_never_jwt_shaped() {
        for _ in 0..50 {
            let secret = new_api_token_secret().unwrap_or_default();
            assert!(secret.starts_with("hdi_") && secret.len() == 47, "{secret}");
            assert!(!is_jwt(&secret));
        }
        assert!(is_jwt("a.b.c"));
        assert!(!is_jwt("a.b.c.d"));
        assert!(!is_jwt("admin-0123456789abcdef"));
    }

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("owner"), None);
    }
}
