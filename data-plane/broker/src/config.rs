//! The broker's configuration: command-line flags resolved once into [`BrokerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::security::{Listener, SaslMechanism, SecurityConfig, SecurityProtocol, SharedSecurity};

/// Command line of `hdi-broker`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "hdi-broker",
    version,
    about = "The hdi Kafka-compatible broker"
)]
pub struct Flags {
    /// This broker's node id.
    #[arg(long)]
    pub node_id: i32,
    /// Where topics, offsets and state live.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to accept Kafka clients on without TLS or authentication (a `PLAINTEXT`
    /// listener; shorthand for `--listener PLAINTEXT://ADDR`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// `host:port` clients of `--listen` should use (default: the listen address).
    #[arg(long)]
    pub advertised_listener: Option<String>,
    /// A Kafka listener: `PROTOCOL://IP:PORT[/ADVERTISED_HOST:PORT]`, PROTOCOL one of
    /// PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (one listener per protocol). Repeatable.
    #[arg(long = "listener", value_name = "PROTOCOL://IP:PORT[/HOST:PORT]")]
    pub listeners: Vec<String>,
    /// Directory with the TLS identity of SSL and SASL_SSL listeners: `cert.pem`, `key.pem`
    /// (mode 0600) and, when clients present certificates, `ca.pem`.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Whether SSL and SASL_SSL clients present certificates (Kafka's `ssl.client.auth`):
    /// none, requested or required. The principal of a certificate is its common name.
    #[arg(long, default_value = "none")]
    pub ssl_client_auth: String,
    /// SASL mechanisms offered, comma-separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
    /// OAUTHBEARER (which needs --oauth-jwks-file).
    #[arg(long, default_value = "SCRAM-SHA-512,SCRAM-SHA-256")]
    pub sasl_mechanisms: String,
    /// File (mode 0600) of static SCRAM users, one `NAME MECHANISM ITERATIONS SALT STORED_KEY
    /// SERVER_KEY` per line (base64): the platform's own users, known before the quorum is.
    #[arg(long, value_name = "FILE")]
    pub sasl_users_file: Option<PathBuf>,
    /// The control plane's JSON Web Key Set (its `/.well-known/jwks.json`) for OAUTHBEARER:
    /// its access tokens then authenticate Kafka clients as `User:<username>`.
    #[arg(long, value_name = "FILE")]
    pub oauth_jwks_file: Option<PathBuf>,
    /// The `iss` OAUTHBEARER tokens must have.
    #[arg(long, default_value = "hdi-control-plane")]
    pub oauth_issuer: String,
    /// The `aud` OAUTHBEARER tokens must have.
    #[arg(long, default_value = "hdi-api")]
    pub oauth_audience: String,
    /// Clock skew tolerated on OAUTHBEARER tokens' `exp` and `nbf`.
    #[arg(long, default_value = "30s", value_parser = humantime_duration)]
    pub oauth_clock_skew: Duration,
    /// Enforce ACLs: a request needs an ACL allowing it (or a super user).
    #[arg(long)]
    pub authorizer: bool,
    /// Principals allowed everything, `User:NAME` separated by `;` or `,`.
    #[arg(long, default_value = "")]
    pub super_users: String,
    /// Create unknown topics when a client's Metadata request allows it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics with -1.
    #[arg(long, default_value_t = 1)]
    pub default_partitions: i32,
    /// How long a new consumer group waits for more members before its first rebalance completes
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    pub group_initial_rebalance_delay: Duration,
    /// How long a partition keeps the state of a producer that wrote nothing (Kafka's
    /// `producer.id.expiration.ms`, default 1 day); a producer with a transaction open is kept.
    #[arg(long, default_value = "86400s", value_parser = humantime_duration)]
    pub producer_id_expiration: Duration,
    /// fsync policy of new topics (`flush.messages`): 1 = every batch; 0 = leave to the OS.
    #[arg(long, default_value_t = 0)]
    pub flush_messages: u64,
    /// Address of this broker's quorum listener (Raft, heartbeats, replication).
    #[arg(long)]
    pub quorum_listen: Option<SocketAddr>,
    /// Directory holding `ca.pem`, `cert.pem` and `key.pem` (mode 0600): the quorum listener
    /// then requires mutual TLS with certificates of that authority, and peers are called
    /// with it (see hdi-pki). Without it the quorum is plain TCP.
    #[arg(long, value_name = "DIR")]
    pub quorum_tls_dir: Option<std::path::PathBuf>,
    /// The metadata quorum's voters: `ID@HOST:PORT,...` (their quorum listeners). A broker whose
    /// id is not listed joins as a non-voting member. Without it: a single-node cluster.
    #[arg(long)]
    pub quorum: Option<String>,
    /// Rack (fault domain) of this broker, for replica placement.
    #[arg(long)]
    pub rack: Option<String>,
    /// How long the controller waits for a broker's heartbeat before fencing it (moving its
    /// leaderships away).
    #[arg(long, default_value = "3s", value_parser = humantime_duration)]
    pub broker_session_timeout: Duration,
    /// A follower not caught up for this long leaves the ISR (`replica.lag.time.max.ms`).
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    pub replica_lag_time_max: Duration,
    /// Bytes per second this broker, as leader, sends to replicas that a reassignment is adding
    /// (Kafka's `leader.replication.throttled.rate`); 0 = unlimited. In-sync followers are never
    /// throttled.
    #[arg(long, default_value_t = 0)]
    pub reassignment_throttle: u64,
    /// `log.cleaner.enable`: compact the logs of topics whose `cleanup.policy` includes
    /// `compact` (one cleaner thread, as `log.cleaner.threads=1`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how long the cleaner sleeps when no log is due.
    #[arg(long, default_value = "15s", value_parser = humantime_duration)]
    pub log_cleaner_backoff: Duration,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaner's reads plus writes; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub log_cleaner_io_max_bytes_per_second: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaner's key map.
    #[arg(long, default_value_t = 128 << 20)]
    pub log_cleaner_dedupe_buffer_size: usize,
    /// `transaction.partition.verification.enable` (KIP-890): a partition leader asks the
    /// transaction coordinator before a produce opens a transaction on a partition, so a batch
    /// the coordinator does not know of cannot leave one hanging. `false` only for tests of the
    /// partition side alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub transaction_partition_verification_enable: bool,
    /// Test only: reach node ID's quorum listener at HOST:PORT instead of its own address
    /// (`ID@HOST:PORT,...`; the fault suite puts proxies there to cut links).
    #[arg(long, hide = true)]
    pub peer_route: Option<String>,
    /// Test only, unsafe: answer acks=all as soon as the leader has appended (no replication
    /// wait). The fault suite uses it to show that its checker catches lost writes.
    #[arg(long, hide = true)]
    pub testing_ack_before_replication: bool,
    /// Test only, wrong on purpose: a mirror rewrites one byte of the first batch it copies into
    /// partition 0 (with a valid CRC). The geo-replication tests use it to show that their
    /// checker catches a mirror that is not its source's copy.
    #[arg(long, hide = true)]
    pub testing_mirror_rewrites_a_batch: bool,
    /// Incremental fetch sessions (KIP-227) this broker caches at most
    /// (`max.incremental.fetch.session.cache.slots`); 0 turns sessions off.
    #[arg(long, default_value_t = 1000)]
    pub max_incremental_fetch_session_cache_slots: usize,
    /// A fetch session idle this long may be evicted for a new one, and one this old may be
    /// evicted for a bigger one (`min.incremental.fetch.session.eviction.ms`).
    #[arg(long, default_value = "120s", value_parser = humantime_duration)]
    pub min_incremental_fetch_session_eviction: Duration,
    /// Followers fetch from their leaders in fetch sessions (KIP-227): after a full fetch, only
    /// the partitions whose position changed are sent, and only those with something new come
    /// back. `false`: every replica fetch lists every partition (as before sessions; for
    /// comparison).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub replica_fetch_sessions: bool,
    /// Replication factor of auto-created topics and of CreateTopics with -1 (capped at the
    /// number of live brokers).
    #[arg(long, default_value_t = 3)]
    pub default_replication_factor: i16,
    /// Serve Prometheus metrics (`GET /metrics`, OpenMetrics text) on this address. Without
    /// `--metrics-token-file` only a loopback address is accepted (start-up fails otherwise).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the token `GET /metrics` requires as `Authorization: Bearer <token>`
    /// (401 otherwise).
    #[arg(long, value_name = "FILE", requires = "metrics_listen")]
    pub metrics_token_file: Option<PathBuf>,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.trim().split_at(
        text.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" | "" => Ok(Duration::from_secs(value)),
        _ => Err(format!("invalid duration {text:?}: use ms or s")),
    }
}

/// The log cleaner's settings (Kafka's broker-level `log.cleaner.*`).
#[derive(Clone, Debug)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.backoff.ms`.
    pub backoff: Duration,
    /// The dedupe buffer and the I/O rate.
    pub limits: hdi_log::cleaner::CleanerLimits,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Node id.
    pub node_id: i32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// The log cleaner (`log.cleaner.*`).
    pub cleaner: CleanerSettings,
    /// Kafka listeners (at least one; the first is the one the cluster record names first).
    pub listeners: Vec<Listener>,
    /// Authentication and authorization (replaced when the broker reloads its files).
    pub security: SharedSecurity,
    /// Auto-create topics on Metadata.
    pub auto_create_topics: bool,
    /// Default partition count.
    pub default_partitions: i32,
    /// Initial rebalance delay of new groups.
    pub group_initial_rebalance_delay: Duration,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration: Duration,
    /// Default `flush.messages` (None = OS).
    pub flush_messages: Option<u64>,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Quorum listener address.
    pub quorum_listen: Option<SocketAddr>,
    /// Quorum voters by id (empty: single node).
    pub quorum: std::collections::BTreeMap<u64, String>,
    /// Rack.
    pub rack: Option<String>,
    /// Broker session timeout.
    pub broker_session_timeout: Duration,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max: Duration,
    /// Default replication factor.
    pub default_replication_factor: i16,
    /// Test-only address overrides of peers' quorum listeners.
    pub peer_routes: std::collections::BTreeMap<u64, String>,
    /// `transaction.partition.verification.enable`.
    pub transaction_partition_verification: bool,
    /// Test-only: acks=all does not wait for replication.
    pub testing_ack_before_replication: bool,
    /// Test only: a mirror rewrites one byte of the first batch it copies into partition 0.
    pub testing_mirror_rewrites_a_batch: bool,
    /// Reassignment throttle in bytes per second (None = unlimited).
    pub reassignment_throttle: Option<u64>,
    /// Fetch sessions cached at most.
    pub fetch_session_slots: usize,
    /// `min.incremental.fetch.session.eviction.ms`.
    pub fetch_session_eviction: Duration,
    /// Followers fetch in fetch sessions.
    pub replica_fetch_sessions: bool,
}

/// Why the flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--advertised-listener` is not `host:port`.
    #[error("--advertised-listener {0:?} must be host:port")]
    BadAdvertised(String),
    /// `--default-partitions` is not positive.
    #[error("--default-partitions must be at least 1")]
    BadPartitions,
    /// `--quorum` is malformed.
    #[error("--quorum {0:?} must be ID@HOST:PORT[,ID@HOST:PORT...] with distinct ids >= 0")]
    BadQuorum(String),
    /// `--quorum` without `--quorum-listen`.
    #[error("--quorum needs --quorum-listen")]
    QuorumWithoutListener,
    /// `--default-replication-factor` is not positive.
    #[error("--default-replication-factor must be at least 1")]
    BadReplicationFactor,
    /// `--node-id` is outside 0..=65535 (producer ids carry it in 16 bits).
    #[error("--node-id must be 0..=65535")]
    BadNodeId,
    /// A listener or security flag is unusable.
    #[error("{0}")]
    Security(String),
    /// `--metrics-listen` or `--metrics-token-file` is unusable.
    #[error("{0}")]
    Metrics(String),
}

impl Flags {
    /// The metrics listener's address and token (read from `--metrics-token-file`), if any.
    ///
    /// # Errors
    /// The token file cannot be read, or the address is not loopback and there is no token.
    pub fn metrics(&self) -> Result<Option<(SocketAddr, Option<String>)>, ConfigError> {
        let Some(addr) = self.metrics_listen else {
            return Ok(None);
        };
        let token = self
            .metrics_token_file
            .as_deref()
            .map(hdi_http_serve::metrics::read_token_file)
            .transpose()
            .map_err(ConfigError::Metrics)?;
        hdi_http_serve::metrics::check_listen(addr, token.as_deref())
            .map_err(ConfigError::Metrics)?;
        Ok(Some((addr, token)))
    }
}

impl Flags {
    /// Resolves the flags.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag.
    pub fn resolve(self) -> Result<BrokerConfig, ConfigError> {
        let listeners = self.listeners()?;
        let security = self.security(&listeners)?;
        if self.default_partitions < 1 {
            return Err(ConfigError::BadPartitions);
        }
        if self.default_replication_factor < 1 {
            return Err(ConfigError::BadReplicationFactor);
        }
        if !(0..=0xffff).contains(&self.node_id) {
            return Err(ConfigError::BadNodeId);
        }
        let quorum = match &self.quorum {
            None => std::collections::BTreeMap::new(),
            Some(text) => parse_quorum(text).ok_or_else(|| ConfigError::BadQuorum(text.clone()))?,
        };
        let peer_routes = match &self.peer_route {
            None => std::collections::BTreeMap::new(),
            Some(text) => parse_quorum(text).ok_or_else(|| ConfigError::BadQuorum(text.clone()))?,
        };
        if !quorum.is_empty() && self.quorum_listen.is_none() {
            return Err(ConfigError::QuorumWithoutListener);
        }
        Ok(BrokerConfig {
            node_id: self.node_id,
            data_dir: self.data_dir,
            cleaner: CleanerSettings {
                enabled: self.log_cleaner_enable,
                backoff: self.log_cleaner_backoff,
                limits: hdi_log::cleaner::CleanerLimits {
                    dedupe_buffer_bytes: self.log_cleaner_dedupe_buffer_size,
                    io_max_bytes_per_second: match self.log_cleaner_io_max_bytes_per_second {
                        0 => f64::INFINITY,
                        rate => rate as f64,
                    },
                },
            },
            listeners,
            security: SharedSecurity::new(security),
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            group_initial_rebalance_delay: self.group_initial_rebalance_delay,
            producer_id_expiration: self.producer_id_expiration,
            flush_messages: (self.flush_messages > 0).then_some(self.flush_messages),
            max_request_bytes: 100 * 1024 * 1024,
            quorum_listen: self.quorum_listen,
            quorum,
            rack: self.rack,
            broker_session_timeout: self.broker_session_timeout,
            replica_lag_time_max: self.replica_lag_time_max,
            default_replication_factor: self.default_replication_factor,
            peer_routes,
            transaction_partition_verification: self.transaction_partition_verification_enable,
            testing_ack_before_replication: self.testing_ack_before_replication,
            testing_mirror_rewrites_a_batch: self.testing_mirror_rewrites_a_batch,
            reassignment_throttle: (self.reassignment_throttle > 0)
                .then_some(self.reassignment_throttle),
            fetch_session_slots: self.max_incremental_fetch_session_cache_slots,
            fetch_session_eviction: self.min_incremental_fetch_session_eviction,
            replica_fetch_sessions: self.replica_fetch_sessions,
        })
    }
}

impl Flags {
    fn listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let mut listeners = Vec::new();
        if let Some(listen) = self.listen {
            let advertised = self
                .advertised_listener
                .clone()
                .unwrap_or_else(|| listen.to_string());
            let (host, port) = crate::security::host_port(&advertised)
                .ok_or_else(|| ConfigError::BadAdvertised(advertised.clone()))?;
            listeners.push(Listener {
                protocol: SecurityProtocol::Plaintext,
                bind: listen,
                advertised_host: host,
                advertised_port: port,
            });
        }
        for text in &self.listeners {
            let listener = Listener::parse(text)
                .map_err(|e| ConfigError::Security(format!("--listener {text:?}: {e}")))?;
            if listeners.iter().any(|l| l.protocol == listener.protocol) {
                return Err(ConfigError::Security(format!(
                    "--listener {text:?}: one listener per security protocol"
                )));
            }
            listeners.push(listener);
        }
        if listeners.is_empty() {
            return Err(ConfigError::Security(
                "give --listen ADDR or at least one --listener PROTOCOL://IP:PORT".into(),
            ));
        }
        Ok(listeners)
    }

    /// The security settings as the files named by the flags say now (what SIGHUP reloads).
    ///
    /// # Errors
    /// As at start-up: a file missing, too open or invalid, named.
    pub fn reload_security(&self) -> Result<SecurityConfig, ConfigError> {
        let listeners = self.listeners()?;
        self.security(&listeners)
    }

    fn security(&self, listeners: &[Listener]) -> Result<SecurityConfig, ConfigError> {
        let bad = |e: String| ConfigError::Security(e);
        let client_auth = match self.ssl_client_auth.as_str() {
            "none" => hdi_pki::ClientAuth::None,
            "requested" => hdi_pki::ClientAuth::Requested,
            "required" => hdi_pki::ClientAuth::Required,
            other => {
                return Err(bad(format!(
                    "--ssl-client-auth {other:?}: use none, requested or required"
                )));
            }
        };
        let needs_tls = listeners.iter().any(|l| l.protocol.tls());
        let tls = match (&self.tls_dir, needs_tls) {
            (Some(dir), true) => Some(std::sync::Arc::new(
                crate::security::load_tls(dir, client_auth)
                    .map_err(|e| bad(format!("--tls-dir: {e}")))?,
            )),
            (None, true) => {
                return Err(bad(
                    "SSL and SASL_SSL listeners need --tls-dir (cert.pem, key.pem)".into(),
                ));
            }
            (_, false) => None,
        };
        let mut mechanisms = Vec::new();
        for name in self
            .sasl_mechanisms
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
                bad(format!(
                    "--sasl-mechanisms: {name:?} is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
                ))
            })?;
            if !mechanisms.contains(&mechanism) {
                mechanisms.push(mechanism);
            }
        }
        if mechanisms.is_empty() && listeners.iter().any(|l| l.protocol.sasl()) {
            return Err(bad(
                "--sasl-mechanisms: SASL listeners need a mechanism".into()
            ));
        }
        let static_users = match &self.sasl_users_file {
            Some(path) => crate::security::read_secret_file(path)
                .and_then(|text| crate::security::parse_users(&text))
                .map_err(|e| bad(format!("--sasl-users-file: {e}")))?,
            None => crate::security::Users::new(),
        };
        let oauth = match &self.oauth_jwks_file {
            Some(path) => Some(crate::security::oauth::OauthConfig {
                keys: std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| crate::security::oauth::parse_jwks(&text))
                    .map_err(|e| bad(format!("--oauth-jwks-file {}: {e}", path.display())))?,
                issuer: self.oauth_issuer.clone(),
                audience: self.oauth_audience.clone(),
                leeway_secs: i64::try_from(self.oauth_clock_skew.as_secs()).unwrap_or(i64::MAX),
            }),
            None => None,
        };
        if oauth.is_none() && mechanisms.contains(&SaslMechanism::OauthBearer) {
            return Err(bad(
                "--sasl-mechanisms OAUTHBEARER needs --oauth-jwks-file".into()
            ));
        }
        let mut super_users = std::collections::BTreeSet::new();
        for principal in self
            .super_users
            .split([';', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if principal.strip_prefix("User:").is_none_or(str::is_empty) {
                return Err(bad(format!(
                    "--super-users: {principal:?} must be User:NAME"
                )));
            }
            super_users.insert(principal.to_owned());
        }
        Ok(SecurityConfig {
            tls,
            mechanisms,
            static_users,
            oauth,
            authorizer: self.authorizer,
            super_users,
        })
    }
}

fn parse_quorum(text: &str) -> Option<std::collections::BTreeMap<u64, String>> {
    let mut voters = std::collections::BTreeMap::new();
    for part in text.split(',') {
        let (id, addr) = part.trim().split_once('@')?;
        let id: u64 = id.parse().ok()?;
        let (host, port) = addr.rsplit_once(':')?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return None;
        }
        if voters.insert(id, addr.to_owned()).is_some() {
            return None;
        }
    }
    Some(voters)
}
