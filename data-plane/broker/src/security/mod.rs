//! Who a Kafka client is and what it may do: the listeners' security protocols, TLS, SASL
//! authentication (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` with the control
//! plane's tokens), mutual-TLS principals, and ACLs.
//!
//! - [`Listener`]: one Kafka listener (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`), its
//!   bind address and the address it advertises; a broker has one or more.
//! - [`SecurityConfig`]: the TLS identity (`--tls-dir`), whether clients present certificates
//!   (`--ssl-client-auth`), the SASL mechanisms, the static users (`--sasl-users-file`: SCRAM
//!   credentials, for the platform's own admin user), whether ACLs are enforced
//!   (`--authorizer`) and the super users.
//! - [`sasl`]: a connection's authentication state machine (`SaslHandshake`, then raw tokens or
//!   `SaslAuthenticate`).
//! - [`scram`]: salted credentials and the SCRAM exchange; [`acl`]: bindings and decisions.
//!
//! Principals are Kafka's `User:<name>`: the SASL user, or the common name of a verified client
//! certificate, or `User:ANONYMOUS` on a listener without authentication.

pub mod acl;
pub mod oauth;
pub mod quota;
pub mod sasl;
pub mod scram;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use scram::{ScramCredential, ScramMechanism};

/// The principal of a client nobody authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A listener's security protocol (Kafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS; clients authenticate by certificate, if at all.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name, also the listener's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol of a name.
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// Whether connections run TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL before anything else.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One Kafka listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Security protocol (and name).
    pub protocol: SecurityProtocol,
    /// Where it accepts connections.
    pub bind: SocketAddr,
    /// The host clients are told to use.
    pub advertised_host: String,
    /// The port clients are told to use (0 until a `:0` bind is resolved).
    pub advertised_port: i32,
}

impl Listener {
    /// Parses `PROTOCOL://HOST:PORT[/ADVERTISED_HOST:PORT]` (advertised: the bind address).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Listener, String> {
        let (protocol, rest) = text
            .split_once("://")
            .ok_or("expected PROTOCOL://HOST:PORT[/ADVERTISED_HOST:PORT]")?;
        let protocol = SecurityProtocol::from_name(protocol).ok_or_else(|| {
            format!(
                "unknown security protocol {protocol:?}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )
        })?;
        let (bind, advertised) = match rest.split_once('/') {
            Some((bind, advertised)) => (bind, Some(advertised)),
            None => (rest, None),
        };
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| format!("{bind:?} is not an IP address and port"))?;
        let (advertised_host, advertised_port) = match advertised {
            None => (bind.ip().to_string(), i32::from(bind.port())),
            Some(text) => host_port(text)
                .ok_or_else(|| format!("advertised address {text:?} must be host:port"))?,
        };
        Ok(Listener {
            protocol,
            bind,
            advertised_host,
            advertised_port,
        })
    }
}

/// Splits `host:port` (brackets around an IPv6 host allowed).
pub fn host_port(text: &str) -> Option<(String, i32)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_owned(), i32::from(port)))
}

/// A SASL mechanism a listener may offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    /// `PLAIN`: the password itself, checked against the user's SCRAM credential (use it over
    /// TLS only).
    Plain,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    Scram(ScramMechanism),
    /// `OAUTHBEARER` with the control plane's access tokens (see [`oauth`]).
    OauthBearer,
}

impl SaslMechanism {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism of a SASL name.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            "OAUTHBEARER" => Some(SaslMechanism::OauthBearer),
            other => ScramMechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }
}

/// Users known to the broker: those of `--sasl-users-file` (static) over the quorum's.
pub type Users = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// The broker's security settings.
#[derive(Clone)]
pub struct SecurityConfig {
    /// TLS for `SSL` and `SASL_SSL` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Mechanisms offered on SASL listeners.
    pub mechanisms: Vec<SaslMechanism>,
    /// Static users (SCRAM credentials from `--sasl-users-file`).
    pub static_users: Users,
    /// How OAUTHBEARER tokens are verified (`--oauth-jwks-file`).
    pub oauth: Option<oauth::OauthConfig>,
    /// Whether ACLs are enforced.
    pub authorizer: bool,
    /// Principals allowed everything (`User:<name>`).
    pub super_users: BTreeSet<String>,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("tls", &self.tls.is_some())
            .field("mechanisms", &self.mechanisms)
            .field(
                "static_users",
                &self.static_users.keys().collect::<Vec<_>>(),
            )
            .field("oauth", &self.oauth)
            .field("authorizer", &self.authorizer)
            .field("super_users", &self.super_users)
            .finish()
    }
}

/// The security settings in force, replaced whole when the broker reloads its files (SIGHUP:
/// the TLS certificate, key and CA, the static users and the JWKS), so that renewed
/// certificates and rotated signing keys take effect without a restart. Connections take a
/// snapshot ([`SharedSecurity::current`]) per use: an established TLS session keeps its
/// certificate, new handshakes get the new one.
#[derive(Clone, Debug, Default)]
pub struct SharedSecurity(Arc<std::sync::RwLock<Arc<SecurityConfig>>>);

impl SharedSecurity {
    /// Settings that start as `config`.
    pub fn new(config: SecurityConfig) -> SharedSecurity {
        SharedSecurity(Arc::new(std::sync::RwLock::new(Arc::new(config))))
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<SecurityConfig> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts `config` in force for what comes next.
    pub fn replace(&self, config: SecurityConfig) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

impl From<SecurityConfig> for SharedSecurity {
    fn from(config: SecurityConfig) -> SharedSecurity {
        SharedSecurity::new(config)
    }
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            tls: None,
            mechanisms: vec![
                SaslMechanism::Scram(ScramMechanism::Sha512),
                SaslMechanism::Scram(ScramMechanism::Sha256),
            ],
            static_users: Users::new(),
            oauth: None,
            authorizer: false,
            super_users: BTreeSet::new(),
        }
    }
}

/// Reads a file that holds secrets, refusing it unless only its owner may read it.
///
/// # Errors
/// A missing, unreadable or too open file, named.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:o}: a file of secrets may be readable by its owner only (chmod 600)",
            path.display(),
            mode & 0o777
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Loads `--tls-dir`: `cert.pem`, `key.pem` (0600) and, for client certificates, `ca.pem`.
///
/// # Errors
/// What is missing or invalid, named.
pub fn load_tls(
    dir: &Path,
    client_auth: hdi_pki::ClientAuth,
) -> Result<rustls::ServerConfig, String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let identity = hdi_pki::Issued {
        cert_pem: read("cert.pem")?,
        key_pem: read_secret_file(&dir.join("key.pem"))?,
    };
    let ca = match client_auth {
        hdi_pki::ClientAuth::None => None,
        _ => Some(read("ca.pem")?),
    };
    hdi_pki::listener_config(&identity, ca.as_deref(), client_auth).map_err(|e| e.to_string())
}

/// Parses a `--sasl-users-file` (one credential per line, `#` comments).
///
/// # Errors
/// The first bad line, with its number.
pub fn parse_users(text: &str) -> Result<Users, String> {
    let mut users = Users::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, mechanism, credential) =
            ScramCredential::parse_line(line).map_err(|e| format!("line {}: {e}", number + 1))?;
        users.entry(name).or_default().insert(mechanism, credential);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn listeners_parse_and_bad_ones_are_named() {
        let l = Listener::parse("SASL_SSL://127.0.0.1:9093").unwrap();
        assert_eq!(
            (l.protocol, l.advertised_host.as_str(), l.advertised_port),
            (SecurityProtocol::SaslSsl, "127.0.0.1", 9093)
        );
        let l = Listener::parse("SSL://0.0.0.0:0/kafka-1.example:19093").unwrap();
        assert_eq!(
            (l.advertised_host.as_str(), l.advertised_port),
            ("kafka-1.example", 19093)
        );
        assert!(
            Listener::parse("TLS://127.0.0.1:1")
                .unwrap_err()
                .contains("TLS")
        );
        assert!(Listener::parse("127.0.0.1:1").is_err());
        assert!(Listener::parse("SSL://localhost:1").is_err());
        assert!(Listener::parse("SSL://127.0.0.1:1/host").is_err());
    }

    #[test]
    fn users_files_parse_with_line_numbers() {
        let c = ScramCredential::from_password(ScramMechanism::Sha512, "pw", 4096).unwrap();
        let text = format!(
            "# admin\n\n{}\n",
            c.to_line("admin", ScramMechanism::Sha512)
        );
        let users = parse_users(&text).unwrap();
        assert_eq!(users["admin"][&ScramMechanism::Sha512], c);
        assert!(parse_users("x\n").unwrap_err().starts_with("line 1:"));
    }
}
