//! `hdi-pki`: the certificates of a Kafka cluster's quorum listener (the broker-to-broker
//! Raft, heartbeat and replication port), and the mutual-TLS configurations that use them.
//!
//! The control plane gives each cluster its own certificate authority ([`Authority`]) and each
//! broker a certificate it issues ([`Authority::issue_broker`]) naming `quorum.hdi` (what a
//! broker checks when it calls a peer) and `broker-<id>.quorum.hdi` (who the caller is: a
//! listener checks a heartbeat's or a replica fetch's broker id against it, [`names_broker`]).
//! A listener accepts only clients with a certificate of the same authority; a certificate of
//! another cluster, or none, fails the handshake. TLS 1.3 only, on ring.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The name every broker certificate carries, which callers verify.
pub const QUORUM_NAME: &str = "quorum.hdi";

/// The name that identifies broker `id` in its certificate.
pub fn broker_name(id: i32) -> String {
    format!("broker-{id}.{QUORUM_NAME}")
}

/// Why certificates cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Making or signing a certificate failed.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM document does not parse.
    #[error("{what} is not valid PEM: {reason}")]
    Pem {
        /// Which document.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refuses the configuration.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client verifier cannot be built.
    #[error("invalid client verifier: {0}")]
    Verifier(String),
}

/// A cluster's certificate authority: its certificate and private key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Authority {
    /// The CA certificate.
    pub cert_pem: String,
    /// The CA's private key (kept by the control plane only).
    pub key_pem: String,
    /// The cluster it is for (its subject's common name).
    pub cluster: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A certificate and its private key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued(..)")
    }
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "hdi");
    name.push(
        DnType::CommonName,
        format!("hdi cluster {cluster} quorum CA"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Authority {
    /// A new authority for `cluster` (an id or name, recorded in its subject).
    ///
    /// # Errors
    /// When generating the key or the certificate fails.
    pub fn generate(cluster: &str) -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(cluster).self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cluster: cluster.to_owned(),
        })
    }

    /// A certificate for broker `id`, naming [`QUORUM_NAME`] and [`broker_name`]`(id)`, usable to
    /// serve and to call.
    ///
    /// # Errors
    /// When the CA key does not parse or signing fails.
    pub fn issue_broker(&self, id: i32) -> Result<Issued, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::new(ca_params(&self.cluster), ca_key);
        let mut params = CertificateParams::new(vec![QUORUM_NAME.to_owned(), broker_name(id)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, broker_name(id));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[allow(
    deprecated,
    reason = "ring, as the rest of the workspace: one crypto provider, no aws-lc build"
)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what,
            reason: "no certificate".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what: "the private key",
        reason: e.to_string(),
    })
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certs("the CA certificate", ca_pem)? {
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

/// The quorum listener's configuration: serves `identity`, requires a client certificate of the
/// authority `ca_pem`.
///
/// # Errors
/// When a document does not parse or rustls refuses it.
pub fn server_config(ca_pem: &str, identity: &Issued) -> Result<ServerConfig, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs("the certificate", &identity.cert_pem)?,
            key(&identity.key_pem)?,
        )?)
}

/// A broker's configuration for calling peers: presents `identity`, trusts only `ca_pem`
/// (connect with the server name [`QUORUM_NAME`]).
///
/// # Errors
/// When a document does not parse or rustls refuses it.
pub fn client_config(ca_pem: &str, identity: &Issued) -> Result<ClientConfig, PkiError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(
            certs("the certificate", &identity.cert_pem)?,
            key(&identity.key_pem)?,
        )?)
}

/// The server name callers verify.
pub fn quorum_server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from(QUORUM_NAME).map_or_else(
            |_| unreachable!("QUORUM_NAME is a valid DNS name"),
            |name| name.to_owned(),
        ),
    )
}

/// Whether the (already verified) end-entity certificate `cert` names broker `id`.
pub fn names_broker(cert: &CertificateDer<'_>, id: i32) -> bool {
    let Ok(end_entity) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(broker_name(id)) else {
        return false;
    };
    end_entity.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn broker_certificates_name_their_broker_and_configs_build() {
        let ca = Authority::generate("c1").unwrap();
        let one = ca.issue_broker(1).unwrap();
        let der = certs("x", &one.cert_pem).unwrap().remove(0);
        assert!(names_broker(&der, 1));
        assert!(!names_broker(&der, 2));
        assert!(!names_broker(&der, 11));
        server_config(&ca.cert_pem, &one).unwrap();
        client_config(&ca.cert_pem, &one).unwrap();
        assert_eq!(format!("{ca:?}"), "Authority { cluster: \"c1\", .. }");
        assert_eq!(format!("{one:?}"), "Issued(..)");
        assert!(server_config("not pem", &one).is_err());
    }
}
