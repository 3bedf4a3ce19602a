//! `hdi-broker`: runs a single-node Kafka-compatible broker.
//!
//! `hdi-broker --node-id 1 --data-dir DIR --listen 127.0.0.1:9092 [--advertised-listener HOST:PORT]
//! [--listener SASL_SSL://127.0.0.1:9093 --tls-dir DIR --sasl-users-file FILE --authorizer
//! --super-users User:admin] [--quorum-listen 127.0.0.1:9192 --quorum 1@127.0.0.1:9192,2@...
//! [--quorum-tls-dir DIR]] [--metrics-listen 127.0.0.1:9404 [--metrics-token-file FILE]]`.
//! `hdi-broker scram-credential NAME < password` prints a `--sasl-users-file` line;
//! `hdi-broker dev-certificates DIR` writes a development `--tls-dir`.
//! Logs one line when ready; stops cleanly on SIGTERM or SIGINT (flushing every partition);
//! SIGHUP reloads the TLS files, static users and JWKS (renewed certificates, rotated keys).
//! Start-up failures print one line naming the problem and exit 1.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use hdi_broker::broker::Broker;
use hdi_broker::config::Flags;
use hdi_broker::server::{serve, serve_quorum};

/// `hdi-broker scram-credential NAME`: prints a `--sasl-users-file` line for the password read
/// from standard input (never from the command line).
#[derive(Debug, Parser)]
#[command(name = "hdi-broker scram-credential")]
struct ScramCredentialFlags {
    /// The user.
    name: String,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    mechanism: String,
    /// PBKDF2 iterations (4096 to 16384).
    #[arg(long, default_value_t = 8192)]
    iterations: u32,
}

/// `hdi-broker dev-certificates DIR --host H...`: a new Kafka certificate authority and a
/// server certificate for the hosts, as `--tls-dir` wants them (`ca.pem`, `cert.pem`, `key.pem`
/// 0600), for brokers run by hand and benchmarks; managed clusters get theirs from the control
/// plane.
#[derive(Debug, Parser)]
#[command(name = "hdi-broker dev-certificates")]
struct DevCertificatesFlags {
    /// Directory to write (created).
    dir: std::path::PathBuf,
    /// Names the certificate is for (repeatable; default 127.0.0.1 and localhost).
    #[arg(long = "host")]
    hosts: Vec<String>,
}

fn tool(name: &str) -> anyhow::Result<()> {
    use hdi_broker::security::scram::{ScramCredential, ScramMechanism};
    match name {
        "scram-credential" => {
            let flags = ScramCredentialFlags::parse_from(std::env::args().skip(1));
            let mechanism = ScramMechanism::from_name(&flags.mechanism)
                .context("--mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512")?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(
                !password.is_empty(),
                "the password (standard input) is empty"
            );
            let credential = ScramCredential::from_password(mechanism, password, flags.iterations)?;
            println!("{}", credential.to_line(&flags.name, mechanism));
            Ok(())
        }
        _ => {
            use std::os::unix::fs::PermissionsExt as _;
            let flags = DevCertificatesFlags::parse_from(std::env::args().skip(1));
            let hosts = if flags.hosts.is_empty() {
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
            } else {
                flags.hosts
            };
            let ca = hdi_pki::Authority::generate_for("dev", hdi_pki::Purpose::Kafka)?;
            let server = ca.issue_server(&hosts)?;
            std::fs::create_dir_all(&flags.dir)
                .with_context(|| format!("cannot create {}", flags.dir.display()))?;
            std::fs::write(flags.dir.join("ca.pem"), &ca.cert_pem)?;
            std::fs::write(flags.dir.join("cert.pem"), &server.cert_pem)?;
            let key = flags.dir.join("key.pem");
            std::fs::write(&key, &server.key_pem)?;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            println!("{}", flags.dir.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    if let Some(name) = std::env::args()
        .nth(1)
        .filter(|a| a == "scram-credential" || a == "dev-certificates")
    {
        return match tool(&name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hdi-broker {name}: error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let flags = Flags::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let tls = flags.quorum_tls_dir.clone();
    let reload_flags = flags.clone();
    let result = flags
        .metrics()
        .and_then(|metrics| Ok((flags.resolve()?, metrics)))
        .map_err(anyhow::Error::from)
        .and_then(|(config, metrics)| {
            if let Some(dir) = tls {
                let tls = hdi_broker::cluster::transport::QuorumTls::load(&dir)
                    .context("--quorum-tls-dir")?;
                hdi_broker::cluster::transport::install(tls)?;
            }
            Ok((config, metrics))
        })
        .and_then(|(config, metrics)| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(config, metrics, reload_flags))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hdi-broker: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP: reads the security files again (a renewed certificate and key, the static users,
/// the JWKS; the quorum's certificate) and puts them in force for the connections that follow.
/// What does not load leaves the settings in force unchanged, and says why.
fn reload(broker: &Broker, flags: &Flags) {
    match flags.reload_security() {
        Ok(security) => {
            broker.config.security.replace(security);
            tracing::info!("SIGHUP: reloaded the Kafka listeners' TLS files, users and JWKS");
        }
        Err(error) => {
            tracing::warn!("SIGHUP: kept the Kafka listeners' security settings in force: {error}");
        }
    }
    if let Some(dir) = &flags.quorum_tls_dir {
        match hdi_broker::cluster::transport::QuorumTls::load(dir)
            .and_then(hdi_broker::cluster::transport::replace)
        {
            Ok(()) => tracing::info!("SIGHUP: reloaded the quorum listener's TLS files"),
            Err(error) => {
                tracing::warn!("SIGHUP: kept the quorum listener's TLS files in force: {error:#}");
            }
        }
    }
}

async fn run(
    mut config: hdi_broker::config::BrokerConfig,
    metrics: Option<(std::net::SocketAddr, Option<String>)>,
    flags: Flags,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // First of all: a SIGHUP (a reload request) must never stop the broker as it would by
    // default.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut listeners = Vec::new();
    for listener in &mut config.listeners {
        let bind = listener.bind;
        let socket = tokio::net::TcpListener::bind(bind).await.with_context(|| {
            format!(
                "cannot listen on {bind} ({} listener)",
                listener.protocol.name()
            )
        })?;
        if listener.advertised_port == 0 {
            // `HOST:0` picked a free port: advertise the one we got.
            listener.advertised_port = i32::from(socket.local_addr()?.port());
        }
        listeners.push(socket);
    }
    let local = listeners[0].local_addr()?;
    let described: Vec<String> = config
        .listeners
        .iter()
        .zip(&listeners)
        .map(|(l, s)| {
            let addr = s
                .local_addr()
                .map_or_else(|_| l.bind.to_string(), |a| a.to_string());
            format!("{}://{addr}", l.protocol.name())
        })
        .collect();
    let quorum_listener = match config.quorum_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--quorum-listen)"))?,
        ),
        None => None,
    };
    let metrics_listener = match &metrics {
        Some((addr, _)) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let quorum_addr = match &quorum_listener {
        Some(l) => l.local_addr()?.to_string(),
        None => String::new(),
    };
    if config.testing_ack_before_replication {
        tracing::warn!(
            "--testing-ack-before-replication: acks=all does NOT wait for replication; acknowledged writes can be lost (test use only)"
        );
    }
    let data_dir = config.data_dir.clone();
    let broker = Broker::open(config, quorum_addr)
        .await
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let mut tasks = broker.start_tasks();
    if let Some(listener) = quorum_listener {
        tasks.spawn(serve_quorum(Arc::clone(&broker), listener));
    }
    if broker.config.quorum.is_empty() {
        // A one-member cluster: serve once this broker is registered and unfenced (a second or
        // so), so that the first clients see it in Metadata.
        if !broker
            .wait_until_unfenced(std::time::Duration::from_secs(30))
            .await
        {
            anyhow::bail!("the single-node metadata quorum did not start within 30 s");
        }
    }
    if let (Some(listener), Some((_, token))) = (metrics_listener, metrics) {
        let addr = listener.local_addr()?;
        let scraped = Arc::clone(&broker);
        let source: hdi_http_serve::metrics::Source =
            Arc::new(move || scraped.metrics_exposition());
        tasks.spawn(async move {
            let served = hdi_http_serve::serve(
                listener,
                hdi_http_serve::metrics::router(source, token),
                hdi_http_serve::Limits::with_request_timeout(std::time::Duration::from_secs(10)),
                std::future::pending(),
            )
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
        tracing::info!("metrics on http://{addr}/metrics");
    }
    for (index, listener) in listeners.into_iter().enumerate() {
        tasks.spawn(serve(Arc::clone(&broker), listener, index));
    }
    tracing::info!(
        node_id = broker.config.node_id,
        "hdi-broker ready on {local} (listeners {})",
        described.join(", ")
    );
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT: stopping");
                break;
            }
            _ = hangup.recv() => reload(&broker, &flags),
        }
    }
    if !broker.config.quorum.is_empty() {
        broker
            .controlled_shutdown(std::time::Duration::from_secs(10))
            .await;
    }
    tasks.abort_all();
    let _ = broker.cluster.raft.shutdown().await;
    tokio::task::spawn_blocking(move || broker.flush_all())
        .await
        .context("flush task failed")?;
    tracing::info!("hdi-broker stopped");
    Ok(())
}
