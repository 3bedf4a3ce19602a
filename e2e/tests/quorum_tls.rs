//! The brokers' quorum listener under mutual TLS (what every managed cluster runs): three
//! `hdi-broker`s with certificates of one cluster authority form a cluster and replicate, and
//! the security review's forged peers are shut out: a plain-TCP client, a TLS client without a
//! certificate and one with another cluster's certificate cannot complete a request; a genuine
//! broker certificate cannot heartbeat or fetch as another broker (the connection is closed
//! unanswered), while the same call for its own id is answered.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hdi_e2e::{Proc, TempDir, bin, kcat, ports};
use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn write_tls(dir: &Path, ca: &hdi_pki::Authority, identity: &hdi_pki::Issued) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, pem) in [
        ("ca.pem", &ca.cert_pem),
        ("cert.pem", &identity.cert_pem),
        ("key.pem", &identity.key_pem),
    ] {
        hdi_stdx::secret::write_secret_file(&dir.join(name), pem).unwrap();
    }
}

/// One quorum request frame (u32 length, JSON); the answer's JSON, or `None` when the
/// connection closes (or fails) without one.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, json: &str) -> Option<String> {
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    stream.write_all(&frame).await.ok()?;
    let read = async {
        let total = stream.read_u32().await.ok()? as usize;
        let mut body = vec![0u8; total];
        stream.read_exact(&mut body).await.ok()?;
        let json_len = u32::from_be_bytes(body[..4].try_into().ok()?) as usize;
        Some(String::from_utf8_lossy(&body[4..4 + json_len]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()?
}

fn heartbeat(id: i32) -> String {
    format!(
        r#"{{"Heartbeat":{{"id":{id},"incarnation":"00000000-0000-0000-0000-000000000000","caught_up":false,"shutting_down":false,"quorum_addr":"127.0.0.1:1"}}}}"#
    )
}

fn fetch(replica: i32) -> String {
    format!(
        r#"{{"Fetch":{{"replica_id":{replica},"partitions":[{{"topic":"t","partition":0,"fetch_offset":0,"leader_epoch":0}}],"max_wait_ms":0,"partition_max_bytes":1}}}}"#
    )
}

/// A TLS client trusting `ca`, presenting `identity` (or no certificate).
#[allow(deprecated, reason = "ring's provider, as hdi-pki")]
async fn tls_client(
    address: &str,
    ca: &hdi_pki::Authority,
    identity: Option<&hdi_pki::Issued>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = match identity {
        Some(identity) => hdi_pki::client_config(&ca.cert_pem, identity).unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        }
    };
    let stream = TcpStream::connect(address).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(hdi_pki::quorum_server_name(), stream)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_shuts_forged_quorum_peers_out() {
    let dir = TempDir::new("quorum-tls");
    let ca = hdi_pki::Authority::generate("cluster-a").unwrap();
    let other = hdi_pki::Authority::generate("cluster-b").unwrap();
    let taken = ports::take(6).unwrap();
    let (kafka, quorum) = (&taken[..3], &taken[3..]);
    let voters: Vec<String> = (0..3)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, quorum[i]))
        .collect();
    let mut brokers = Vec::new();
    for i in 0..3 {
        let id = i32::try_from(i + 1).unwrap();
        let tls = dir.path().join(format!("tls-{id}"));
        write_tls(&tls, &ca, &ca.issue_broker(id).unwrap());
        brokers.push(Proc::spawn(
            &format!("broker-{id}"),
            Command::new(bin("hdi-broker"))
                .args(["--node-id", &id.to_string()])
                .args(["--listen", &format!("127.0.0.1:{}", kafka[i])])
                .args(["--quorum-listen", &format!("127.0.0.1:{}", quorum[i])])
                .args(["--quorum", &voters.join(",")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("data-{id}")))
                .arg("--quorum-tls-dir")
                .arg(&tls)
                .env("RUST_LOG", "info"),
        ));
    }
    for broker in &mut brokers {
        broker
            .wait_for_line("hdi-broker ready on ", Duration::from_secs(60))
            .unwrap();
    }
    // The cluster forms and replicates over TLS: a 3-replica topic takes acks=all writes once
    // every broker is registered.
    let bootstrap = format!("127.0.0.1:{}", kafka[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, _) = kcat(&bootstrap, &["-L"], None);
        if ok && String::from_utf8_lossy(&out).contains(" 3 brokers:") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three brokers never listed: {}",
            String::from_utf8_lossy(&out)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (ok, out, err) = kcat(
        &bootstrap,
        &[
            "-P",
            "-t",
            "replicated",
            "-X",
            "request.required.acks=-1",
            "-X",
            "topic.metadata.refresh.interval.ms=500",
        ],
        Some(b"one\ntwo\nthree\n"),
    );
    assert!(ok, "{err}");
    let _ = out;
    let (ok, out, err) = kcat(&bootstrap, &["-C", "-t", "replicated", "-e", "-q"], None);
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 3);

    let target = format!("127.0.0.1:{}", quorum[0]);
    // Plain TCP: the listener speaks TLS only.
    let mut plain = TcpStream::connect(&target).await.unwrap();
    assert_eq!(call(&mut plain, &heartbeat(2)).await, None);
    // TLS without a client certificate.
    if let Ok(mut anonymous) = tls_client(&target, &ca, None).await {
        assert_eq!(call(&mut anonymous, &heartbeat(2)).await, None);
    }
    // A certificate of another cluster's authority (for the same broker id).
    let foreign = other.issue_broker(2).unwrap();
    let foreign_ca = hdi_pki::Authority {
        cert_pem: ca.cert_pem.clone(),
        ..other.clone()
    };
    if let Ok(mut stranger) = tls_client(&target, &foreign_ca, Some(&foreign)).await {
        assert_eq!(call(&mut stranger, &heartbeat(2)).await, None);
    }
    // Broker 3's genuine certificate cannot speak for broker 2 ...
    let three = ca.issue_broker(3).unwrap();
    for request in [heartbeat(2), fetch(2)] {
        let mut genuine = tls_client(&target, &ca, Some(&three)).await.unwrap();
        assert_eq!(call(&mut genuine, &request).await, None, "{request}");
    }
    // ... but is answered for itself.
    let mut genuine = tls_client(&target, &ca, Some(&three)).await.unwrap();
    let answer = call(&mut genuine, &heartbeat(3)).await;
    assert!(answer.is_some(), "a broker's own heartbeat is answered");
}
