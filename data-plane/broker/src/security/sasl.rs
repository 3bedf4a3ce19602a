//! A connection's SASL state (KIP-43 and KIP-152): on a SASL listener a client first sends
//! `SaslHandshake` naming a mechanism, then its tokens — raw length-prefixed frames after a v0
//! handshake, `SaslAuthenticate` requests after v1 — until it is authenticated or refused.
//! Before that only `ApiVersions` and these two are answered; anything else closes the
//! connection (as Kafka does). A refusal answers `SASL_AUTHENTICATION_FAILED` with a message and
//! closes the connection. On a SASL listener an authenticated client may authenticate again
//! (KIP-368, before its OAUTHBEARER token expires): the new principal must be the same.

use super::oauth::OauthConfig;
use super::scram::{ScramCredential, ScramMechanism, ScramServer, Step, failure_message};
use super::{ANONYMOUS, SaslMechanism};

/// Kafka's message for a failed PLAIN authentication.
pub const PLAIN_FAILED: &str = "Authentication failed: Invalid username or password";

/// Where a connection is in authenticating.
#[derive(Debug)]
pub enum Auth {
    /// Authenticated as this principal (`User:<name>`), or a listener without SASL.
    Done(String),
    /// A SASL listener before its handshake.
    Handshake,
    /// After the handshake: the mechanism's tokens.
    Tokens {
        /// The mechanism chosen.
        mechanism: SaslMechanism,
        /// Whether tokens come as raw frames (a v0 handshake).
        raw: bool,
        /// The SCRAM exchange (unused by PLAIN and OAUTHBEARER).
        scram: ScramServer,
        /// The principal being re-authenticated, if this is a re-authentication.
        previous: Option<String>,
    },
    /// Refused: the connection is closing.
    Failed,
}

/// What one token gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    /// Send this token back and wait for the next.
    Continue(Vec<u8>),
    /// Authenticated as `principal`; send this last token.
    Done {
        /// `User:<name>`.
        principal: String,
        /// The last server token (empty for PLAIN and OAUTHBEARER).
        reply: Vec<u8>,
        /// When the session ends (an OAUTHBEARER token's `exp`, seconds since the epoch).
        expires_at: Option<i64>,
    },
    /// Refused with this message.
    Failed(String),
}

impl Auth {
    /// The state a new connection starts in.
    pub fn new(sasl: bool, certificate_principal: Option<String>) -> Auth {
        match (sasl, certificate_principal) {
            (true, _) => Auth::Handshake,
            (false, Some(principal)) => Auth::Done(principal),
            (false, None) => Auth::Done(ANONYMOUS.to_owned()),
        }
    }

    /// The authenticated principal, if any.
    pub fn principal(&self) -> Option<&str> {
        match self {
            Auth::Done(principal) => Some(principal),
            _ => None,
        }
    }

    /// Whether the next frame is a raw token.
    pub fn expects_raw_token(&self) -> bool {
        matches!(self, Auth::Tokens { raw: true, .. })
    }

    /// Takes `SaslHandshake` at `version` for `mechanism`. `Err` carries Kafka's error code:
    /// `UNSUPPORTED_SASL_MECHANISM` or `ILLEGAL_SASL_STATE`.
    ///
    /// # Errors
    /// As above.
    pub fn handshake(
        &mut self,
        mechanism: &str,
        version: i16,
        enabled: &[SaslMechanism],
    ) -> Result<(), i16> {
        let previous = match self {
            Auth::Handshake => None,
            // Re-authentication (only where SASL is offered at all).
            Auth::Done(principal) if !enabled.is_empty() && version >= 1 => Some(principal.clone()),
            _ => return Err(hdi_kafka_client::codes::ILLEGAL_SASL_STATE),
        };
        let Some(mechanism) = SaslMechanism::from_name(mechanism).filter(|m| enabled.contains(m))
        else {
            return Err(hdi_kafka_client::codes::UNSUPPORTED_SASL_MECHANISM);
        };
        *self = Auth::Tokens {
            mechanism,
            raw: version == 0,
            scram: ScramServer::Start,
            previous,
        };
        Ok(())
    }

    /// Takes one token; `lookup` finds a user's credential for a mechanism, `oauth` verifies
    /// bearer tokens (at `now`, seconds since the epoch).
    pub fn token(
        &mut self,
        bytes: &[u8],
        lookup: impl Fn(&str, ScramMechanism) -> Option<ScramCredential>,
        oauth: Option<&OauthConfig>,
        now: i64,
    ) -> Token {
        let Auth::Tokens {
            mechanism,
            scram,
            previous,
            ..
        } = self
        else {
            *self = Auth::Failed;
            return Token::Failed("SASL tokens before a SaslHandshake".into());
        };
        let previous = previous.clone();
        let mut outcome = match *mechanism {
            SaslMechanism::Plain => plain(bytes, &lookup),
            SaslMechanism::Scram(m) => match scram.step(m, bytes, |user| lookup(user, m)) {
                Step::Continue(reply) => return Token::Continue(reply),
                Step::Done { user, reply } => Token::Done {
                    principal: format!("User:{user}"),
                    reply,
                    expires_at: None,
                },
                Step::Failed(message) => Token::Failed(message),
            },
            SaslMechanism::OauthBearer => bearer(bytes, oauth, now),
        };
        if let (Some(previous), Token::Done { principal, .. }) = (&previous, &outcome)
            && previous != principal
        {
            outcome = Token::Failed(format!(
                "re-authentication as {principal} on a connection of {previous}"
            ));
        }
        *self = match &outcome {
            Token::Done { principal, .. } => Auth::Done(principal.clone()),
            _ => Auth::Failed,
        };
        outcome
    }
}

/// OAUTHBEARER: one message with the bearer token, verified against the control plane's keys.
fn bearer(bytes: &[u8], oauth: Option<&OauthConfig>, now: i64) -> Token {
    let Some(oauth) = oauth else {
        return Token::Failed("OAUTHBEARER is not configured".into());
    };
    match super::oauth::parse_client_message(bytes).and_then(|token| oauth.verify(&token, now)) {
        Ok(verified) => Token::Done {
            principal: verified.principal,
            reply: Vec::new(),
            expires_at: Some(verified.expires_at),
        },
        Err(reason) => Token::Failed(reason),
    }
}

/// PLAIN (RFC 4616): `authzid NUL user NUL password`, checked against the user's strongest
/// SCRAM credential.
fn plain(bytes: &[u8], lookup: &impl Fn(&str, ScramMechanism) -> Option<ScramCredential>) -> Token {
    let mut parts = bytes.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Token::Failed("a PLAIN token is authzid NUL user NUL password".into());
    };
    let Ok(user) = std::str::from_utf8(user) else {
        return Token::Failed(PLAIN_FAILED.into());
    };
    if user.is_empty() || !(authzid.is_empty() || authzid == user.as_bytes()) {
        return Token::Failed(PLAIN_FAILED.into());
    }
    let verified = ScramMechanism::ALL
        .into_iter()
        .find_map(|m| lookup(user, m).map(|credential| credential.verify_password(m, password)));
    if verified == Some(true) {
        Token::Done {
            principal: format!("User:{user}"),
            reply: Vec::new(),
            expires_at: None,
        }
    } else {
        Token::Failed(PLAIN_FAILED.into())
    }
}

/// Kafka's failure message for a mechanism (what clients show).
pub fn failure(mechanism: SaslMechanism) -> String {
    match mechanism {
        SaslMechanism::Plain => PLAIN_FAILED.into(),
        SaslMechanism::Scram(m) => failure_message(m),
        SaslMechanism::OauthBearer => "Authentication failed: invalid bearer token".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::oauth::tests::{Signer, claims};
    use super::super::scram::client;
    use super::*;

    #[test]
    fn bearer_tokens_authenticate_and_reauthentication_keeps_the_principal() {
        let signer = Signer::new();
        let config = signer.config();
        let header = r#"{"alg":"EdDSA","kid":"k1"}"#;
        let message = |name: &str| {
            format!(
                "n,,\u{1}auth=Bearer {}\u{1}\u{1}",
                signer.token(header, &claims(name, 2_000))
            )
        };
        let offered = [SaslMechanism::OauthBearer];
        let mut auth = Auth::new(true, None);
        auth.handshake("OAUTHBEARER", 1, &offered).unwrap();
        assert_eq!(
            auth.token(message("alice").as_bytes(), users(), Some(&config), 1_000),
            Token::Done {
                principal: "User:alice".into(),
                reply: vec![],
                expires_at: Some(2_000)
            }
        );
        // Re-authentication: the same user again passes, another user fails.
        auth.handshake("OAUTHBEARER", 1, &offered).unwrap();
        assert!(matches!(
            auth.token(message("alice").as_bytes(), users(), Some(&config), 1_500),
            Token::Done { .. }
        ));
        auth.handshake("OAUTHBEARER", 1, &offered).unwrap();
        assert!(matches!(
            auth.token(message("bob").as_bytes(), users(), Some(&config), 1_500),
            Token::Failed(_)
        ));
        // Expired, or no verifier configured.
        let mut late = Auth::new(true, None);
        late.handshake("OAUTHBEARER", 1, &offered).unwrap();
        assert!(matches!(
            late.token(message("alice").as_bytes(), users(), Some(&config), 9_000),
            Token::Failed(_)
        ));
        let mut unconfigured = Auth::new(true, None);
        unconfigured.handshake("OAUTHBEARER", 1, &offered).unwrap();
        assert!(matches!(
            unconfigured.token(message("alice").as_bytes(), users(), None, 1_000),
            Token::Failed(_)
        ));
    }

    fn users() -> impl Fn(&str, ScramMechanism) -> Option<ScramCredential> {
        let sha512 = ScramCredential::from_password(ScramMechanism::Sha512, "pw", 4096).unwrap();
        move |user, m| (user == "alice" && m == ScramMechanism::Sha512).then(|| sha512.clone())
    }

    #[test]
    fn plain_checks_the_scram_credential() {
        let all = [SaslMechanism::Plain];
        let mut auth = Auth::new(true, None);
        auth.handshake("PLAIN", 1, &all).unwrap();
        assert_eq!(
            auth.token(b"\0alice\0pw", users(), None, 0),
            Token::Done {
                principal: "User:alice".into(),
                reply: vec![],
                expires_at: None
            }
        );
        assert_eq!(auth.principal(), Some("User:alice"));
        for bad in [
            &b"\0alice\0px"[..],
            b"\0bob\0pw",
            b"bob\0alice\0pw",
            b"alice\0pw",
            b"\0\0pw",
        ] {
            let mut auth = Auth::new(true, None);
            auth.handshake("PLAIN", 1, &all).unwrap();
            assert!(
                matches!(auth.token(bad, users(), None, 0), Token::Failed(_)),
                "{bad:?}"
            );
            assert!(matches!(auth, Auth::Failed));
        }
    }

    #[test]
    fn scram_runs_two_round_trips() {
        let all = [SaslMechanism::Scram(ScramMechanism::Sha512)];
        let mut auth = Auth::new(true, None);
        auth.handshake("SCRAM-SHA-512", 0, &all).unwrap();
        assert!(auth.expects_raw_token());
        let first = client::first("alice", "nonce1");
        let Token::Continue(server_first) = auth.token(first.as_bytes(), users(), None, 0) else {
            panic!()
        };
        let last = client::last(
            ScramMechanism::Sha512,
            "pw",
            &first,
            std::str::from_utf8(&server_first).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            auth.token(last.as_bytes(), users(), None, 0),
            Token::Done { .. }
        ));
        assert_eq!(auth.principal(), Some("User:alice"));
    }

    #[test]
    fn handshakes_refuse_what_is_not_offered() {
        let offered = [SaslMechanism::Scram(ScramMechanism::Sha512)];
        let mut auth = Auth::new(true, None);
        assert_eq!(
            auth.handshake("PLAIN", 1, &offered),
            Err(hdi_kafka_client::codes::UNSUPPORTED_SASL_MECHANISM)
        );
        assert_eq!(
            auth.handshake("GSSAPI", 1, &offered),
            Err(hdi_kafka_client::codes::UNSUPPORTED_SASL_MECHANISM)
        );
        auth.handshake("SCRAM-SHA-512", 1, &offered).unwrap();
        assert_eq!(
            auth.handshake("SCRAM-SHA-512", 1, &offered),
            Err(hdi_kafka_client::codes::ILLEGAL_SASL_STATE)
        );
        // Re-authentication on a SASL listener, not before a v1 handshake, not without SASL.
        let mut done = Auth::Done("User:alice".into());
        assert_eq!(
            done.handshake("SCRAM-SHA-512", 0, &offered),
            Err(hdi_kafka_client::codes::ILLEGAL_SASL_STATE)
        );
        assert_eq!(done.handshake("SCRAM-SHA-512", 1, &offered), Ok(()));
        let mut anonymous = Auth::new(false, None);
        assert_eq!(
            anonymous.handshake("PLAIN", 1, &[]),
            Err(hdi_kafka_client::codes::ILLEGAL_SASL_STATE)
        );
        let mut plaintext = Auth::new(false, None);
        assert_eq!(plaintext.principal(), Some(ANONYMOUS));
        assert!(matches!(
            plaintext.token(b"x", users(), None, 0),
            Token::Failed(_)
        ));
    }
}
