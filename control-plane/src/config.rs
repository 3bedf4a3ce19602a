//! The configuration of the `hdi-control-plane` binary: raw command-line flags, parsed once into a
//! typed [`ServeConfig`] that is passed explicitly (no globals).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::MIN_TOKEN_LEN;

/// Command line of `hdi-control-plane`.
#[derive(Debug, Parser)]
#[command(name = "hdi-control-plane", version, about = "The hdi control plane")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing buys nothing"
)]
pub enum Command {
    /// Serve the REST API.
    Serve(ServeFlags),
    /// Print the OpenAPI document.
    Openapi,
    /// Run the Kubernetes operator: `HdiCluster`, `HdiTopic` and `HdiJob` resources through the
    /// service layer (the API server from `KUBECONFIG` or the in-cluster service account).
    Operator(OperatorFlags),
}

/// Flags of `hdi-control-plane operator`.
#[derive(Debug, Args)]
pub struct OperatorFlags {
    /// PostgreSQL URL (the control plane's database).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// How long to wait for the database at start-up.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_connect_timeout: Duration,
    /// A node whose last heartbeat is older than this is NotReady (as the control plane's).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub node_ready_timeout: Duration,
    /// How often an idle resource is reconciled again from the watch cache (a change or a
    /// converging cluster is looked at at once).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: Duration,
}

/// Flags of `hdi-control-plane serve`, as given.
#[derive(Debug, Args)]
pub struct ServeFlags {
    /// Address to listen on; port 0 picks a free port (the ready line names it).
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
    /// PostgreSQL URL, e.g. postgres://user@localhost/hdi?host=/run/postgresql.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// File holding the admin secret: the API token of the built-in platform-admin user `admin`
    /// (created or updated at start-up).
    #[arg(long)]
    pub admin_token_file: PathBuf,
    /// File holding the token node agents present.
    #[arg(long)]
    pub agent_token_file: PathBuf,
    /// A node whose last heartbeat is older than this is NotReady (e.g. 10s, 1500ms).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub node_ready_timeout: Duration,
    /// How long to wait for the database at start-up.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_connect_timeout: Duration,
    /// Ports the local provisioner gives workloads, `FIRST-LAST` (each broker takes two).
    #[arg(long, default_value = "20000-29999")]
    pub workload_ports: String,
    /// Time between reconcile passes when nothing changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    /// The `iss` of the access tokens this control plane signs (and requires).
    #[arg(long, default_value = "hdi-control-plane")]
    pub jwt_issuer: String,
    /// The `aud` of the access tokens this control plane signs (and requires).
    #[arg(long, default_value = "hdi-api")]
    pub jwt_audience: String,
    /// Lifetime of an access token from `POST /v1/auth/token`.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,
    /// Serve the API only: run no reconciler (an API replica beside others that reconcile).
    #[arg(long)]
    pub no_reconciler: bool,
    /// How often the metrics sampler reads every serving Kafka cluster's offsets for
    /// `GET .../clusters/{cluster}/metrics` (the last hour is kept in memory); `0s` turns it off.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub metrics_interval: Duration,
    /// An operation still converging after this long is failed with `timed_out`.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub operation_timeout: Duration,
    /// A request's headers must arrive within this (also the longest idle keep-alive wait);
    /// slower connections are closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,
    /// Where clusters' workloads run: `local` (registered node agents) or `kubernetes` (pods
    /// of StatefulSets in the namespace named like the cluster's workspace; the API server from
    /// `KUBECONFIG` or the in-cluster service account).
    #[arg(long, value_enum, default_value = "local")]
    pub provisioner: ProvisionerKind,
    /// `--provisioner kubernetes`: the image the pods run.
    #[arg(long, default_value = concat!("hdi:", env!("CARGO_PKG_VERSION")))]
    pub kubernetes_image: String,
    /// `--provisioner kubernetes`: this control plane's URL as pods reach it (e.g. its
    /// Service's `http://hdi-control-plane.hdi-system.svc:8080`).
    #[arg(long)]
    pub kubernetes_control_plane_url: Option<String>,
    /// `--provisioner kubernetes`: the storage class of the pods' volume claims (the cluster's
    /// default when absent).
    #[arg(long)]
    pub kubernetes_storage_class: Option<String>,
}

/// Where clusters' workloads run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProvisionerKind {
    /// Registered node agents.
    Local,
    /// Pods of StatefulSets on a Kubernetes cluster.
    Kubernetes,
}

/// The resolved configuration of `serve`.
#[derive(Clone)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Database URL (may hold a password: never log it whole, see [`redact_url`]).
    pub database_url: String,
    /// The admin token.
    pub admin_token: String,
    /// The node-agent token.
    pub agent_token: String,
    /// Node readiness timeout.
    pub node_ready_timeout: Duration,
    /// Database connect timeout.
    pub database_connect_timeout: Duration,
    /// Workload ports.
    pub workload_ports: std::ops::RangeInclusive<u16>,
    /// Reconcile interval.
    pub reconcile_interval: Duration,
    /// Whether this process runs the reconciler.
    pub reconciler: bool,
    /// The metrics sampler's interval; `None`: no sampler.
    pub metrics_interval: Option<Duration>,
    /// Operation timeout.
    pub operation_timeout: Duration,
    /// Issuer, audience and lifetime of access tokens.
    pub tokens: crate::auth::jwt::TokenSettings,
    /// The HTTP header timeout.
    pub http_header_timeout: Duration,
    /// The Kubernetes provisioner's settings, when it is the provisioner.
    pub kubernetes: Option<crate::provision::kubernetes::KubernetesSettings>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("node_ready_timeout", &self.node_ready_timeout)
            .finish_non_exhaustive()
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--workload-ports` is not a usable range.
    #[error(
        "--workload-ports {value:?} must be FIRST-LAST with 1024 <= FIRST and at least 16 ports"
    )]
    BadPortRange {
        /// The value given.
        value: String,
    },
    /// A token file cannot be read.
    #[error("cannot read {flag} {path}")]
    ReadToken {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A token is too short to be a secret.
    #[error("{flag} {path}: the token must be at least {MIN_TOKEN_LEN} characters")]
    WeakToken {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A duration flag is zero.
    #[error("--admin-token-file and --agent-token-file hold the same token; they must differ")]
    SameTokens,
    #[error("{flag} must not be empty")]
    Empty { flag: &'static str },
    #[error("{flag} must be greater than zero")]
    ZeroDuration {
        /// The flag.
        flag: &'static str,
    },
}

impl ServeFlags {
    /// Resolves the flags: reads the token files and checks values.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag at fault.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        if self.node_ready_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration {
                flag: "--node-ready-timeout",
            });
        }
        if self.database_connect_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration {
                flag: "--database-connect-timeout",
            });
        }
        if self.access_token_ttl.is_zero() {
            return Err(ConfigError::ZeroDuration {
                flag: "--access-token-ttl",
            });
        }
        if self.jwt_issuer.trim().is_empty() {
            return Err(ConfigError::Empty {
                flag: "--jwt-issuer",
            });
        }
        if self.jwt_audience.trim().is_empty() {
            return Err(ConfigError::Empty {
                flag: "--jwt-audience",
            });
        }
        if self.http_header_timeout.is_zero() {
            return Err(ConfigError::ZeroDuration {
                flag: "--http-header-timeout",
            });
        }
        if self.reconcile_interval.is_zero() {
            return Err(ConfigError::ZeroDuration {
                flag: "--reconcile-interval",
            });
        }
        let workload_ports =
            parse_port_range(&self.workload_ports).ok_or_else(|| ConfigError::BadPortRange {
                value: self.workload_ports.clone(),
            })?;
        let kubernetes = match self.provisioner {
            ProvisionerKind::Local => None,
            ProvisionerKind::Kubernetes => Some(crate::provision::kubernetes::KubernetesSettings {
                image: self.kubernetes_image,
                control_plane_url: self
                    .kubernetes_control_plane_url
                    .ok_or(ConfigError::Empty {
                        flag: "--kubernetes-control-plane-url",
                    })?,
                storage_class: self.kubernetes_storage_class,
            }),
        };
        let admin_token = read_token("--admin-token-file", &self.admin_token_file)?;
        let agent_token = read_token("--agent-token-file", &self.agent_token_file)?;
        if admin_token == agent_token {
            return Err(ConfigError::SameTokens);
        }
        Ok(ServeConfig {
            tokens: crate::auth::jwt::TokenSettings {
                issuer: self.jwt_issuer,
                audience: self.jwt_audience,
                ttl: self.access_token_ttl,
            },
            workload_ports,
            reconcile_interval: self.reconcile_interval,
            reconciler: !self.no_reconciler,
            // At most one sample a second: the series keep an hour of them.
            metrics_interval: (!self.metrics_interval.is_zero())
                .then(|| self.metrics_interval.max(Duration::from_secs(1))),
            operation_timeout: self.operation_timeout,
            listen: self.listen,
            database_url: self.database_url,
            admin_token,
            agent_token,
            node_ready_timeout: self.node_ready_timeout,
            database_connect_timeout: self.database_connect_timeout,
            http_header_timeout: self.http_header_timeout,
            kubernetes,
        })
    }
}

/// `FIRST-LAST` with `1024 <= FIRST <= LAST`, at least 16 ports.
fn parse_port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (first, last) = text.split_once('-')?;
    let first: u16 = first.trim().parse().ok()?;
    let last: u16 = last.trim().parse().ok()?;
    (first >= 1024 && last >= first && last - first >= 15).then_some(first..=last)
}

fn read_token(flag: &'static str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadToken {
        flag,
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim().to_owned();
    if token.len() < MIN_TOKEN_LEN {
        return Err(ConfigError::WeakToken {
            flag,
            path: path.to_owned(),
        });
    }
    Ok(token)
}

/// A database URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        let cases = [
            (
                "postgres://hdi:s3cret@db:5432/hdi",
                "postgres://hdi:***@db:5432/hdi",
            ),
            (
                "postgres://postgres@localhost/hdi?host=/tmp",
                "postgres://postgres@localhost/hdi?host=/tmp",
            ),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want);
        }
    }

    #[test]
    fn port_ranges_are_checked() {
        assert_eq!(parse_port_range("20000-29999"), Some(20000..=29999));
        assert_eq!(parse_port_range("80-200"), None);
        assert_eq!(parse_port_range("30000-20000"), None);
        assert_eq!(parse_port_range("20000-20003"), None);
        assert_eq!(parse_port_range("x-y"), None);
        assert_eq!(parse_port_range("20000"), None);
    }

    #[test]
    fn token_files_are_read_trimmed_and_checked() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let weak = dir.join("weak");
        std::fs::write(&weak, "short\n").unwrap();
        let agent = dir.join("agent");
        std::fs::write(&agent, "agent-0123456789abcdef\n").unwrap();
        let flags = |admin: &Path| ServeFlags {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: "postgres://x@y/z".into(),
            admin_token_file: admin.to_owned(),
            agent_token_file: agent.clone(),
            node_ready_timeout: Duration::from_secs(10),
            database_connect_timeout: Duration::from_secs(5),
            workload_ports: "20000-20100".into(),
            reconcile_interval: Duration::from_secs(1),
            no_reconciler: false,
            metrics_interval: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(900),
            jwt_issuer: "hdi-control-plane".into(),
            jwt_audience: "hdi-api".into(),
            access_token_ttl: Duration::from_secs(900),
            http_header_timeout: Duration::from_secs(10),
            provisioner: ProvisionerKind::Local,
            kubernetes_image: "hdi:test".into(),
            kubernetes_control_plane_url: None,
            kubernetes_storage_class: None,
        };
        assert_eq!(
            flags(&good).resolve().unwrap().admin_token,
            "0123456789abcdef0123"
        );
        let err = flags(&weak).resolve().unwrap_err();
        assert!(err.to_string().starts_with("--admin-token-file"), "{err}");
        let err = flags(&agent).resolve().unwrap_err();
        assert!(err.to_string().contains("must differ"), "{err}");
        let err = flags(&dir.join("missing")).resolve().unwrap_err();
        assert!(
            err.to_string().contains("cannot read --admin-token-file"),
            "{err}"
        );
    }
}
