//! Who may call what: bearer tokens for people (admin) and for node agents.
//!
//! Tokens are compared by their SHA-256 digests, so the comparison time says nothing about the
//! secret. Every refusal is logged with its reason (the caller only sees `401`). Users, roles per
//! workspace and signed JWTs replace the single admin token when the cluster API arrives.

use sha2::{Digest, Sha256};

/// The kind of caller a token proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A platform administrator (may read and change everything).
    Admin,
    /// A node agent (may register and heartbeat nodes, nothing else).
    Agent,
}

/// Why a request was refused.
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
}

/// Checks bearer tokens against the configured secrets.
pub struct Authenticator {
    admin_digest: [u8; 32],
    agent_digest: [u8; 32],
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

impl Authenticator {
    /// An authenticator for one admin token and one agent token.
    pub fn new(admin_token: &str, agent_token: &str) -> Authenticator {
        Authenticator {
            admin_digest: digest(admin_token),
            agent_digest: digest(agent_token),
        }
    }

    /// Checks the value of an `Authorization` header for the `expected` principal.
    ///
    /// # Errors
    /// An [`AuthError`] saying why the header does not prove `expected`.
    pub fn check(&self, header: Option<&str>, expected: Principal) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NotBearer)?;
        let wanted = match expected {
            Principal::Admin => &self.admin_digest,
            Principal::Agent => &self.agent_digest,
        };
        if &digest(token) == wanted {
            Ok(expected)
        } else {
            Err(AuthError::WrongToken { expected })
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Minimum length of a configured token: shorter secrets are refused at start-up.
pub const MIN_TOKEN_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_each_principal_against_its_own_token() {
        let auth = Authenticator::new("admin-secret-0123456789", "agent-secret-0123456789");
        let cases = [
            (None, Principal::Admin, Err(AuthError::Missing)),
            (
                Some("Basic abc"),
                Principal::Admin,
                Err(AuthError::NotBearer),
            ),
            (Some("Bearer "), Principal::Admin, Err(AuthError::NotBearer)),
            (
                Some("Bearer admin-secret-0123456789"),
                Principal::Admin,
                Ok(Principal::Admin),
            ),
            (
                Some("Bearer admin-secret-0123456789"),
                Principal::Agent,
                Err(AuthError::WrongToken {
                    expected: Principal::Agent,
                }),
            ),
            (
                Some("Bearer agent-secret-0123456789"),
                Principal::Agent,
                Ok(Principal::Agent),
            ),
            (
                Some("Bearer agent-secret-012345678"),
                Principal::Agent,
                Err(AuthError::WrongToken {
                    expected: Principal::Agent,
                }),
            ),
        ];
        for (header, expected, want) in cases {
            assert_eq!(auth.check(header, expected), want, "header {header:?}");
        }
    }
}
