//! The quorum listener's transport: mutual TLS with the cluster's certificate authority when the
//! broker is given `--quorum-tls-dir` (what the control plane does for every managed cluster),
//! plain TCP otherwise (a broker run by hand or by the broker's own tests).
//!
//! With TLS, a connection whose client has no certificate of the cluster's authority fails the
//! handshake, and [`Caller::may_speak_for`] tells whether the caller's certificate names the
//! broker a heartbeat or a replica fetch claims to come from (`hdi-pki`'s `broker-<id>` name).
//! The configuration is set once per process at start-up ([`install`]): every peer connection
//! the broker opens (Raft, forwarded proposals, heartbeats, replica fetches) then uses it, until
//! [`replace`] puts a renewed certificate in force for the handshakes that follow.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::metadata::BrokerId;

/// Any byte stream a quorum connection runs on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// A quorum connection: TCP, or TLS over it.
pub type QuorumStream = Box<dyn Io>;

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's quorum TLS configuration.
#[derive(Clone)]
pub struct QuorumTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls(..)")
    }
}

static TLS: OnceLock<std::sync::RwLock<QuorumTls>> = OnceLock::new();

/// The configuration in force, if TLS is installed.
fn current() -> Option<QuorumTls> {
    TLS.get().map(|lock| {
        lock.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    })
}

impl QuorumTls {
    /// Loads `ca.pem`, `cert.pem` and `key.pem` (which must be readable by its owner only) from
    /// `dir`.
    ///
    /// # Errors
    /// A file that is missing, too open, or not valid PEM, named.
    pub fn load(dir: &Path) -> anyhow::Result<QuorumTls> {
        use std::os::unix::fs::PermissionsExt as _;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))
        };
        let key_path = dir.join("key.pem");
        let mode = std::fs::metadata(&key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} has mode {:o}: a private key may be readable by its owner only (chmod 600)",
                key_path.display(),
                mode & 0o777
            );
        }
        let ca = read("ca.pem")?;
        let identity = hdi_pki::Issued {
            cert_pem: read("cert.pem")?,
            key_pem: read("key.pem")?,
        };
        let server = hdi_pki::server_config(&ca, &identity)?;
        let client = hdi_pki::client_config(&ca, &identity)?;
        Ok(QuorumTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })
    }
}

/// Makes `tls` this process's quorum transport (once, at start-up).
///
/// # Errors
/// When one was installed already.
pub fn install(tls: QuorumTls) -> anyhow::Result<()> {
    TLS.set(std::sync::RwLock::new(tls))
        .map_err(|_| anyhow::anyhow!("the quorum TLS configuration is installed already"))
}

/// Puts `tls` in force for the handshakes that follow (a renewed certificate); connections
/// already open keep theirs.
///
/// # Errors
/// When no configuration was installed at start-up (a plain-TCP quorum stays one).
pub fn replace(tls: QuorumTls) -> anyhow::Result<()> {
    let lock = TLS
        .get()
        .ok_or_else(|| anyhow::anyhow!("the quorum runs without TLS"))?;
    *lock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = tls;
    Ok(())
}

/// Whether the quorum listener requires mutual TLS in this process.
pub fn enabled() -> bool {
    TLS.get().is_some()
}

/// A connection this broker opened to a peer, secured when TLS is installed.
///
/// # Errors
/// The handshake's failure (or its timeout).
pub async fn secure(stream: TcpStream) -> std::io::Result<QuorumStream> {
    let Some(tls) = current() else {
        return Ok(Box::new(stream));
    };
    let handshake = tls.connector.connect(hdi_pki::quorum_server_name(), stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// Who is on the other end of an accepted quorum connection.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A peer of a plain-TCP quorum (no TLS installed): trusted as before.
    Unauthenticated,
    /// A broker of this cluster, by its verified certificate.
    Broker(CertificateDer<'static>),
}

impl Caller {
    /// Whether the caller may act as broker `id` (send its heartbeats, fetch as its replica).
    pub fn may_speak_for(&self, id: BrokerId) -> bool {
        match self {
            Caller::Unauthenticated => true,
            Caller::Broker(cert) => hdi_pki::names_broker(cert, id),
        }
    }
}

/// Secures an accepted connection: the TLS handshake (which verifies the client's certificate)
/// when TLS is installed.
///
/// # Errors
/// A failed or slow handshake (no certificate, or one of another authority).
pub async fn accept(stream: TcpStream) -> std::io::Result<(QuorumStream, Caller)> {
    let Some(tls) = current() else {
        return Ok((Box::new(stream), Caller::Unauthenticated));
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
    };
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| cert.clone().into_owned())
        .ok_or_else(|| std::io::Error::other("no client certificate"))?;
    Ok((Box::new(stream), Caller::Broker(cert)))
}
