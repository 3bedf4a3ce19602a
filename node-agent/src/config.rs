//! Flags of `hdi-node-agent`, resolved once into a typed [`AgentConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::supervisor::{Isolation, is_root};

/// Command line of `hdi-node-agent`.
#[derive(Debug, Parser)]
#[command(name = "hdi-node-agent", version, about = "The hdi node agent")]
pub struct Flags {
    /// Base URL of the control plane, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    pub control_plane: String,
    /// The node's data directory: holds its identity and its workloads' data.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The failure domain (rack, zone, host group) of this node, as a number.
    #[arg(long, required_unless_present = "zone", conflicts_with = "zone")]
    pub fault_domain: Option<u32>,
    /// The failure domain by name (a Kubernetes pod passes its zone label): the fault domain is
    /// a stable number derived from it, so nodes naming one zone share a domain.
    #[arg(long)]
    pub zone: Option<String>,
    /// File holding the node-agent token the control plane expects.
    #[arg(long)]
    pub token_file: PathBuf,
    /// Node name (a DNS label); defaults to the name kept in the data directory, or `node-<id prefix>`.
    #[arg(long)]
    pub name: Option<String>,
    /// Address at which this node's workloads are reachable.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// How often to heartbeat.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// How often to fetch the node's workload assignment.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Directory holding `hdi-broker` and `hdi-executor` (default: the agent's own directory).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The node's storage directory, under which each workspace's storage root (where its jobs'
    /// file connectors read and write) is kept; nodes of one fleet share it (a network file
    /// system on several hosts). Default: `<data-dir>/storage`.
    #[arg(long)]
    pub storage_dir: Option<PathBuf>,
    /// CPU offered, in thousandths of a core (default: the cores this process may use).
    #[arg(long)]
    pub cpu_millis: Option<u64>,
    /// Memory offered, in bytes (default: the machine's memory).
    #[arg(long)]
    pub memory_bytes: Option<u64>,
    /// Who workloads run as: `cluster-users` (each cluster's workloads as the cluster's own
    /// operating-system user; the agent must run as root) or `agent-user` (as the agent itself,
    /// with no isolation between tenants). Default: `cluster-users` when the agent is root.
    #[arg(long, value_enum)]
    pub run_workloads_as: Option<RunWorkloadsAs>,
    /// Serve Prometheus metrics (`GET /metrics`: workloads by state, restarts, heartbeat
    /// outcomes) on this address. Without `--metrics-token-file` only a loopback address is
    /// accepted (start-up fails otherwise).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// File holding the token `GET /metrics` requires as `Authorization: Bearer <token>`.
    #[arg(long, value_name = "FILE", requires = "metrics_listen")]
    pub metrics_token_file: Option<PathBuf>,
}

/// `--run-workloads-as`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunWorkloadsAs {
    /// Each cluster's own user.
    ClusterUsers,
    /// The agent's user.
    AgentUser,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct AgentConfig {
    /// Control-plane base URL.
    pub control_plane: String,
    /// Data directory (created if missing).
    pub data_dir: PathBuf,
    /// Failure domain.
    pub fault_domain: u32,
    /// The agent token.
    pub token: String,
    /// Name override.
    pub name: Option<String>,
    /// Workload address.
    pub address: String,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Assignment poll period.
    pub poll_interval: Duration,
    /// Where the workload binaries are.
    pub bin_dir: PathBuf,
    /// Where workspaces' storage roots are.
    pub storage_dir: PathBuf,
    /// CPU override.
    pub cpu_millis: Option<u64>,
    /// Memory override.
    pub memory_bytes: Option<u64>,
    /// Who workloads run as.
    pub isolation: Isolation,
    /// The metrics listener's address and token, if any.
    pub metrics: Option<(std::net::SocketAddr, Option<String>)>,
}

/// Why the flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--metrics-listen` or `--metrics-token-file` is unusable.
    #[error("{0}")]
    Metrics(String),
    /// `--zone` is empty (a pod whose zone label Kubernetes did not copy).
    #[error(
        "--zone is empty: the node's zone is unknown (is the node labelled topology.kubernetes.io/zone?)"
    )]
    NoZone,
    /// The token file cannot be read.
    #[error("cannot read --token-file {path}")]
    ReadToken {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("--token-file {path} is empty")]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The heartbeat interval is zero.
    #[error("--heartbeat-interval must be greater than zero")]
    ZeroInterval,
    /// The poll interval is zero.
    #[error("--poll-interval must be greater than zero")]
    ZeroPollInterval,
    /// No `--bin-dir` and the agent's own executable cannot be located.
    #[error("cannot locate the agent's executable to default --bin-dir; pass --bin-dir")]
    NoBinDir {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--run-workloads-as cluster-users` by an agent that is not root.
    #[error("--run-workloads-as cluster-users needs the agent to run as root")]
    NotRoot,
    /// The control-plane URL is not http(s).
    #[error("--control-plane {url:?} must start with http:// or https://")]
    BadUrl {
        /// The URL given.
        url: String,
    },
}

impl Flags {
    /// Reads the token file and checks the values.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag at fault.
    pub fn resolve(self) -> Result<AgentConfig, ConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroInterval);
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::ZeroPollInterval);
        }
        if !(self.control_plane.starts_with("http://")
            || self.control_plane.starts_with("https://"))
        {
            return Err(ConfigError::BadUrl {
                url: self.control_plane,
            });
        }
        let bin_dir = match self.bin_dir {
            Some(dir) => dir,
            None => default_bin_dir()?,
        };
        let isolation = match self.run_workloads_as {
            None => Isolation::for_this_process(),
            Some(RunWorkloadsAs::AgentUser) => Isolation::AgentUser,
            Some(RunWorkloadsAs::ClusterUsers) if is_root() => Isolation::ClusterUsers,
            Some(RunWorkloadsAs::ClusterUsers) => return Err(ConfigError::NotRoot),
        };
        let fault_domain = match (self.fault_domain, &self.zone) {
            (Some(domain), _) => domain,
            (None, Some(zone)) if !zone.trim().is_empty() => zone_domain(zone.trim()),
            (None, _) => return Err(ConfigError::NoZone),
        };
        let metrics = match self.metrics_listen {
            None => None,
            Some(addr) => {
                let token = self
                    .metrics_token_file
                    .as_deref()
                    .map(hdi_http_serve::metrics::read_token_file)
                    .transpose()
                    .map_err(ConfigError::Metrics)?;
                hdi_http_serve::metrics::check_listen(addr, token.as_deref())
                    .map_err(ConfigError::Metrics)?;
                Some((addr, token))
            }
        };
        Ok(AgentConfig {
            metrics,
            token: read_token(&self.token_file)?,
            bin_dir,
            storage_dir: self
                .storage_dir
                .unwrap_or_else(|| self.data_dir.join("storage")),
            poll_interval: self.poll_interval,
            control_plane: self.control_plane,
            data_dir: self.data_dir,
            fault_domain,
            name: self.name,
            address: self.address,
            heartbeat_interval: self.heartbeat_interval,
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
            isolation,
        })
    }
}

/// The fault domain of a zone name: 32-bit FNV-1a, kept below 2^31 (the control plane's range).
pub fn zone_domain(zone: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in zone.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash & 0x7fff_ffff
}

/// The directory of the running executable: the binaries are installed side by side.
fn default_bin_dir() -> Result<PathBuf, ConfigError> {
    let exe = std::env::current_exe().map_err(|source| ConfigError::NoBinDir { source })?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ConfigError::NoBinDir {
            source: std::io::Error::other(format!("{} has no parent directory", exe.display())),
        })
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadToken {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::EmptyToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_map_to_stable_distinct_domains() {
        let a = zone_domain("zone-a");
        assert_eq!(a, zone_domain("zone-a"));
        assert_ne!(a, zone_domain("zone-b"));
        assert!(a < 1 << 31);
        // FNV-1a of the empty string is its offset basis (masked).
        assert_eq!(zone_domain(""), 0x811c_9dc5 & 0x7fff_ffff);
    }

    #[test]
    fn an_empty_zone_is_refused() {
        let flags = Flags::try_parse_from([
            "hdi-node-agent",
            "--control-plane",
            "http://127.0.0.1:1",
            "--data-dir",
            "/tmp/x",
            "--token-file",
            "/nonexistent",
            "--zone",
            " ",
        ])
        .expect("flags parse");
        assert!(matches!(flags.resolve(), Err(ConfigError::NoZone)));
    }
}
