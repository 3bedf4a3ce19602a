//! `hdi-pki`: the certificates of a Kafka cluster's quorum listener (the broker-to-broker
//! Raft, heartbeat and replication port) and of its Kafka listeners, and the TLS
//! configurations that use them.
//!
//! A cluster has two authorities, never mixed: the quorum's ([`Purpose::Quorum`]), whose
//! certificates admit a peer to the metadata quorum, and the Kafka listeners'
//! ([`Purpose::Kafka`]), which signs the brokers' server certificates
//! ([`Authority::issue_server`]) and users' client certificates for mutual TLS
//! ([`Authority::issue_client`]; the principal is the subject's common name,
//! [`common_name`]). A Kafka client certificate therefore never opens the quorum.
//!
//! The control plane gives each cluster its own certificate authority ([`Authority`]) and each
//! broker a certificate it issues ([`Authority::issue_broker`]) naming `quorum.hdi` (what a
//! broker checks when it calls a peer) and `broker-<id>.quorum.hdi` (who the caller is: a
//! listener checks a heartbeat's or a replica fetch's broker id against it, [`names_broker`]).
//! A listener accepts only clients with a certificate of the same authority; a certificate of
//! another cluster, or none, fails the handshake. TLS 1.3 only, on ring.
//!
//! Authorities are valid for [`CA_LIFETIME`], what they issue for [`LEAF_LIFETIME`] (from an
//! hour before issue, for clocks a little behind): the control plane renews a leaf certificate
//! once less than a third of its lifetime is left, and the brokers reload it without a restart.
//!
//! Authorities rotate: a CA's subject names its cluster's label and its kind (`hdi cluster
//! <label> <kind> CA`), so one read back from PEM ([`Authority::from_pem`]) keeps its name,
//! and a new authority of the same cluster gets a label of its own. Trust is a bundle of PEM
//! certificates, so during a rotation configurations trust the current and the next authority
//! at once.
//!
//! The test harness of a real Kubernetes API server (`hdi-e2e`'s `KubeControlPlane`) takes its
//! certificates from here too: a client certificate carrying a group
//! ([`Authority::issue_client_in_group`]) and a token-signing key pair ([`SigningKey`]).

use std::sync::Arc;

/// The TLS library the configurations are for (so users need not name its version).
pub use rustls;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How long a certificate authority is valid.
pub const CA_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a server, client or broker certificate is valid.
pub const LEAF_LIFETIME: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// How far before issue a certificate is valid (clocks of peers a little behind).
const BACKDATE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Valid from [`BACKDATE`] ago for `lifetime`.
fn validity(params: &mut CertificateParams, lifetime: std::time::Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

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
    /// The cluster it is for (in its subject's common name).
    pub cluster: String,
    /// What it signs.
    pub purpose: Purpose,
}

/// Which listener an authority's certificates are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The brokers' quorum listener.
    Quorum,
    /// The Kafka listeners (servers and clients).
    Kafka,
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

impl Purpose {
    fn kind(self) -> &'static str {
        match self {
            Purpose::Quorum => "quorum",
            Purpose::Kafka => "Kafka",
        }
    }
}

/// The common name of the authority `cluster` (its label) has for `purpose`.
fn ca_common_name(cluster: &str, purpose: Purpose) -> String {
    format!("hdi cluster {cluster} {} CA", purpose.kind())
}

fn ca_params(cluster: &str, purpose: Purpose) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "hdi");
    name.push(DnType::CommonName, ca_common_name(cluster, purpose));
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
        Authority::generate_for(cluster, Purpose::Quorum)
    }

    /// A new authority for `cluster`'s quorum or Kafka listeners.
    ///
    /// # Errors
    /// When generating the key or the certificate fails.
    pub fn generate_for(cluster: &str, purpose: Purpose) -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(cluster, purpose);
        validity(&mut params, CA_LIFETIME);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cluster: cluster.to_owned(),
            purpose,
        })
    }

    /// The authority whose certificate and key are `cert_pem` and `key_pem` (as stored): its
    /// label is read back from the certificate's subject, so what it signs names it as their
    /// issuer exactly. A cluster's label is its id, and after a rotation its id and when the
    /// new authority was made, so that two authorities of one cluster never share a name.
    ///
    /// # Errors
    /// When the certificate does not parse, is not an authority of this kind, or the key does
    /// not parse.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        purpose: Purpose,
    ) -> Result<Authority, PkiError> {
        let not_ours = || PkiError::Pem {
            what: "the CA certificate",
            reason: format!("its subject is not an hdi {} CA's", purpose.kind()),
        };
        let der = certs("the CA certificate", cert_pem)?.remove(0);
        let name = common_name(&der).ok_or_else(not_ours)?;
        let cluster = name
            .strip_prefix("hdi cluster ")
            .and_then(|rest| rest.strip_suffix(&format!(" {} CA", purpose.kind())))
            .ok_or_else(not_ours)?;
        KeyPair::from_pem(key_pem)?;
        Ok(Authority {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            cluster: cluster.to_owned(),
            purpose,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::new(ca_params(&self.cluster, self.purpose), ca_key))
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        purpose: ExtendedKeyUsagePurpose,
    ) -> Result<Issued, PkiError> {
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, LEAF_LIFETIME);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A Kafka listener's server certificate for the names clients connect to (DNS names or IP
    /// addresses: librdkafka and the Java client check them).
    ///
    /// # Errors
    /// No names, or signing fails.
    pub fn issue_server(&self, hosts: &[String]) -> Result<Issued, PkiError> {
        let first = hosts
            .first()
            .ok_or_else(|| PkiError::Verifier("a server certificate needs a name".into()))?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
        self.sign(params, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for mutual TLS whose common name is `user` (the principal
    /// `User:<user>`).
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue_client(&self, user: &str) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client certificate whose common name is `user` and whose organization is `group`:
    /// Kubernetes reads them as the user and one of its groups (`system:masters` is
    /// cluster-admin), which the test harness of a real kube-apiserver uses.
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue_client_in_group(&self, user: &str, group: &str) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
        params.distinguished_name.push(DnType::CommonName, user);
        self.sign(params, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A certificate for broker `id`, naming [`QUORUM_NAME`] and [`broker_name`]`(id)`, usable to
    /// serve and to call.
    ///
    /// # Errors
    /// When the CA key does not parse or signing fails.
    pub fn issue_broker(&self, id: i32) -> Result<Issued, PkiError> {
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(vec![QUORUM_NAME.to_owned(), broker_name(id)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, broker_name(id));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, LEAF_LIFETIME);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A key pair for signing tokens (ECDSA P-256), as PEM: the private key (PKCS#8) and its public
/// key (SubjectPublicKeyInfo). A Kubernetes API server signs service-account tokens with one.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The private key.
    pub private_pem: String,
    /// Its public key.
    pub public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A new key pair.
    ///
    /// # Errors
    /// When generating the key fails.
    pub fn generate() -> Result<SigningKey, PkiError> {
        let key = KeyPair::generate()?;
        Ok(SigningKey {
            private_pem: key.serialize_pem(),
            public_pem: key.public_key_pem(),
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

/// A Kafka client's configuration that trusts only `ca_pem` and presents no certificate (the
/// control plane calling a cluster's SSL or SASL_SSL listener; TLS 1.2 and 1.3).
///
/// # Errors
/// When the document does not parse or rustls refuses it.
pub fn trust_config(ca_pem: &str) -> Result<ClientConfig, PkiError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth())
}

/// Whether a Kafka listener asks clients for a certificate (Kafka's `ssl.client.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Never.
    None,
    /// Asked, not required: a client without one authenticates otherwise.
    Requested,
    /// Required: no certificate of the authority, no connection.
    Required,
}

/// A Kafka listener's configuration (TLS 1.2 and 1.3): serves `identity`; with `client_ca`,
/// verifies client certificates of that authority as `auth` says.
///
/// # Errors
/// When a document does not parse, `auth` needs a `client_ca` that is missing, or rustls
/// refuses the configuration.
pub fn listener_config(
    identity: &Issued,
    client_ca: Option<&str>,
    auth: ClientAuth,
) -> Result<ServerConfig, PkiError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match (auth, client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(PkiError::Verifier(
                "client certificates need a client CA (ca.pem)".into(),
            ));
        }
        (auth, Some(ca)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| PkiError::Verifier(e.to_string()))?,
            )
        }
    };
    Ok(builder.with_single_cert(
        certs("the certificate", &identity.cert_pem)?,
        key(&identity.key_pem)?,
    )?)
}

/// The subject common name of an (already verified) certificate: a mutual-TLS principal.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let end_entity = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut name = Der(end_entity.subject());
    // Name ::= SEQUENCE OF RelativeDistinguishedName (the outer SEQUENCE already removed);
    // RDN ::= SET OF AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }.
    let mut found = None;
    while let Some((0x31, mut set)) = name.next() {
        while let Some((0x30, mut attribute)) = set.next() {
            let (0x06, oid) = attribute.next()? else {
                return None;
            };
            let (tag, value) = attribute.next()?;
            // 2.5.4.3 commonName, as UTF8String, PrintableString or IA5String.
            if oid.0 == [0x55, 0x04, 0x03] && matches!(tag, 0x0c | 0x13 | 0x16) {
                found = Some(String::from_utf8(value.0.to_vec()).ok()?);
            }
        }
    }
    if !name.0.is_empty() {
        return None;
    }
    found
}

/// A DER reader over a slice: yields `(tag, contents)` (short and long definite lengths only).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, Der<'a>)> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (bytes, tail) = rest.split_at(count);
            rest = tail;
            bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
        };
        if rest.len() < length {
            return None;
        }
        let (contents, tail) = rest.split_at(length);
        self.0 = tail;
        Some((tag, Der(contents)))
    }
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

    #[test]
    fn kafka_certificates_serve_names_and_carry_principals() {
        let ca = Authority::generate_for("c1", Purpose::Kafka).unwrap();
        let server = ca
            .issue_server(&["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let client = ca.issue_client("alice=x,y").unwrap();
        let der = |pem: &str| certs("x", pem).unwrap().remove(0);
        assert_eq!(
            common_name(&der(&client.cert_pem)).as_deref(),
            Some("alice=x,y")
        );
        assert_eq!(
            common_name(&der(&server.cert_pem)).as_deref(),
            Some("127.0.0.1")
        );
        assert!(!names_broker(&der(&client.cert_pem), 1));
        listener_config(&server, None, ClientAuth::None).unwrap();
        listener_config(&server, Some(&ca.cert_pem), ClientAuth::Required).unwrap();
        listener_config(&server, Some(&ca.cert_pem), ClientAuth::Requested).unwrap();
        assert!(listener_config(&server, None, ClientAuth::Required).is_err());
        assert_eq!(
            common_name(&CertificateDer::from(vec![0x30, 0x03, 0x01])),
            None
        );
    }

    #[test]
    fn group_client_certificates_and_signing_keys() {
        let ca = Authority::generate_for("k8s", Purpose::Kafka).unwrap();
        let admin = ca
            .issue_client_in_group("hdi-admin", "system:masters")
            .unwrap();
        let der = certs("x", &admin.cert_pem).unwrap().remove(0);
        assert_eq!(common_name(&der).as_deref(), Some("hdi-admin"));
        // The organization is in the subject, next to the common name.
        let subject = webpki::EndEntityCert::try_from(&der)
            .unwrap()
            .subject()
            .to_vec();
        assert!(
            subject
                .windows(b"system:masters".len())
                .any(|w| w == b"system:masters")
        );
        let key = SigningKey::generate().unwrap();
        assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(key.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
    }

    #[test]
    fn leaf_certificates_expire_and_authorities_outlive_them() {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::UnixTime;
        let ca = Authority::generate_for("c1", Purpose::Kafka).unwrap();
        let server = ca.issue_server(&["127.0.0.1".into()]).unwrap();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(roots(&ca.cert_pem).unwrap(), provider())
                .build()
                .unwrap();
        let leaf = certs("x", &server.cert_pem).unwrap().remove(0);
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let at = |from_now: i64| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                now.saturating_add_signed(from_now),
            ))
        };
        let day = 24 * 3600;
        let check = |when| verifier.verify_server_cert(&leaf, &[], &name, &[], when);
        check(at(0)).unwrap();
        // Backdated an hour for clocks behind, valid for 90 days, not a day more.
        check(at(-1800)).unwrap();
        check(at(89 * day)).unwrap();
        let expired = check(at(91 * day)).unwrap_err();
        assert!(format!("{expired:?}").contains("Expired"), "{expired:?}");
        assert!(check(at(-2 * 3600)).is_err());
        // The authority outlives many renewals of what it signs.
        let renewed = ca.issue_server(&["127.0.0.1".into()]).unwrap();
        let leaf = certs("x", &renewed.cert_pem).unwrap().remove(0);
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], at(0))
            .unwrap();
        assert!(CA_LIFETIME > LEAF_LIFETIME * 30);
    }

    #[test]
    fn authorities_read_back_and_rotate_through_a_bundle() {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::UnixTime;
        let old = Authority::generate_for("c1", Purpose::Kafka).unwrap();
        let new = Authority::generate_for("c1 (2026-12-06T08:00:00Z)", Purpose::Kafka).unwrap();
        // Read back from what the control plane stores, the label included.
        let stored = Authority::from_pem(&new.cert_pem, &new.key_pem, Purpose::Kafka).unwrap();
        assert_eq!(stored.cluster, "c1 (2026-12-06T08:00:00Z)");
        assert!(Authority::from_pem(&new.cert_pem, &new.key_pem, Purpose::Quorum).is_err());
        assert!(Authority::from_pem(&new.cert_pem, "junk", Purpose::Kafka).is_err());
        let verify = |trusted: &str, signer: &Authority| {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(roots(trusted).unwrap(), provider())
                    .build()
                    .unwrap();
            let issued = signer.issue_server(&["127.0.0.1".into()]).unwrap();
            let leaf = certs("x", &issued.cert_pem).unwrap().remove(0);
            let name = ServerName::try_from("127.0.0.1").unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
                .is_ok()
        };
        // A bundle of both authorities trusts what either signs; each alone only its own.
        // The control plane joins stored certificates as they are: each ends its line.
        assert!(old.cert_pem.ends_with("-----\n") && new.cert_pem.ends_with("-----\n"));
        let bundle = format!("{}{}", old.cert_pem, new.cert_pem);
        assert!(verify(&bundle, &old));
        assert!(verify(&bundle, &stored));
        assert!(verify(&new.cert_pem, &stored));
        assert!(!verify(&old.cert_pem, &stored));
        assert!(!verify(&new.cert_pem, &old));
    }
}
