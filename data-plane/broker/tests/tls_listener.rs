//! Answers over TLS larger than the transport holds reach a reader that takes them slowly
//! (nothing of them stays in the TLS session's buffer): the Kafka listener through a real
//! socket, and the quorum's RPC frames through a small in-memory pipe.
#![allow(clippy::unwrap_used, reason = "test")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use hdi_broker::security::SecurityProtocol;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Reads one length-prefixed frame 16 KiB at a time, pausing `pause` between reads (so the
/// writer finds its transport full again and again); `None` when it has not all arrived
/// within 20 s or the stream ends inside it.
async fn read_frame_slowly<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    pause: Duration,
) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(20), async {
        let length = stream.read_u32().await.ok()?;
        let mut frame = vec![0u8; usize::try_from(length).ok()?];
        let mut read = 0;
        while read < frame.len() {
            let end = (read + 16 * 1024).min(frame.len());
            match stream.read(&mut frame[read..end]).await.ok()? {
                0 => return None,
                n => read += n,
            }
            tokio::time::sleep(pause).await;
        }
        Some(frame)
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fetch_answer_over_tls_arrives_whole_when_read_late() {
    let dir = common::temp_dir("tls-listener");
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = hdi_pki::Authority::generate_for("test", hdi_pki::Purpose::Kafka).unwrap();
    let server = ca.issue_server(&["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(tls.join("cert.pem"), &server.cert_pem).unwrap();
    std::fs::write(tls.join("key.pem"), &server.key_pem).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tls.join("key.pem"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let data = dir.path().join("data");
    let broker = common::open_with(
        &data,
        &[
            "--listener",
            "SSL://127.0.0.1:9093",
            "--tls-dir",
            tls.to_str().unwrap(),
        ],
    )
    .await;
    common::create_topic(&broker, "big", 1).await;
    // 4 MiB in the log, in answer to one fetch.
    let payload = vec![7u8; 512 * 1024];
    for timestamp in 0..8 {
        common::produce(&broker, "big", timestamp, &payload).await;
    }
    let index = broker
        .config
        .listeners
        .iter()
        .position(|l| l.protocol == SecurityProtocol::Ssl)
        .unwrap();
    // A small send buffer (accepted sockets inherit it, and it stops the kernel growing it), so
    // the broker's writes find the socket full again and again, the last one too.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let address = listener.local_addr().unwrap();
    let serving = tokio::spawn(hdi_broker::server::serve(
        Arc::clone(&broker.broker),
        listener,
        index,
    ));

    let config = hdi_pki::trust_config(&ca.cert_pem).unwrap();
    // A small receive buffer, so the broker's writes block long before the answer is out.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(address).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let fetch = RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(32 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(common::name("big"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(32 << 20),
                    ]),
            ]),
    );
    let body = common::frame(ApiKey::Fetch, 11, 1, &fetch);
    stream
        .write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    stream.flush().await.unwrap();
    // The client reads slowly, so each of the broker's writes finds the socket full and the
    // last one is left in its TLS session unless it is flushed.
    let answer = read_frame_slowly(&mut stream, Duration::from_micros(500))
        .await
        .expect("the fetch answer stopped short: its end stayed in the broker's TLS session");
    assert!(
        answer.len() > 8 * 512 * 1024,
        "the answer holds the whole log: {} bytes",
        answer.len()
    );
    serving.abort();
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_quorum_answer_over_tls_arrives_whole_when_read_slowly() {
    use hdi_pki::{Authority, Purpose};
    let ca = Authority::generate_for("test", Purpose::Quorum).unwrap();
    let server = hdi_pki::server_config(&ca.cert_pem, &ca.issue_broker(1).unwrap()).unwrap();
    let client = hdi_pki::client_config(&ca.cert_pem, &ca.issue_broker(2).unwrap()).unwrap();
    // A pipe that holds 16 KiB: the writer finds it full again and again, the last time too.
    let (near, far) = tokio::io::duplex(16 * 1024);
    let (server, client) = tokio::join!(
        tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(near),
        tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(hdi_pki::quorum_server_name(), far),
    );
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    let raw = bytes::Bytes::from(vec![9u8; 4 << 20]);
    let writer = tokio::spawn(async move {
        hdi_broker::cluster::rpc::write_response(
            &mut server,
            &serde_json::json!({"ok": true}),
            std::slice::from_ref(&raw),
        )
        .await
        .unwrap();
        // Kept open: the reader must get the frame from what was written, not from an end.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(server);
    });
    let frame = read_frame_slowly(&mut client, Duration::from_micros(200))
        .await
        .expect("the quorum answer stopped short: its end stayed in the writer's TLS session");
    let json_len =
        usize::try_from(u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])).unwrap();
    assert_eq!(frame.len(), 4 + json_len + (4 << 20));
    assert!(frame[4 + json_len..].iter().all(|b| *b == 9));
    writer.abort();
}
