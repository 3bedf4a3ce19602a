//! `hdi-broker`: a Kafka-wire-compatible broker over `hdi-log`.
//!
//! Modules, top down; each uses only the ones below it:
//! - [`server`]: TCP listener, request framing, header decoding and dispatch; requests on one
//!   connection are answered in order, as Kafka does. Also the quorum listener's dispatch.
//! - `tasks`: the broker's own tasks ([`broker::Broker::start_tasks`]).
//! - [`handlers`]: one module per API family; Kafka wire types (from `kafka-protocol`) stop here.
//! - [`replication`]: follower fetchers, answers to followers, ISR maintenance.
//! - [`broker`]: the [`broker::Broker`] context the layers above take: configuration and all
//!   shared state.
//! - [`replica`] and [`replicas`]: partition replicas (leader and follower sides) and the replica
//!   manager.
//! - [`cluster`]: the metadata quorum (openraft), broker membership and the controller.
//! - [`groups`]: the classic consumer-group coordinator and durable committed offsets.
//! - [`producers`]: producer ids and per-partition idempotence state.
//! - [`security`]: listeners' security protocols, SASL (PLAIN, SCRAM) and ACL decisions.
//! - [`state`]: shared error and lock helpers; Kafka error codes are `hdi_kafka_client::codes`.
//!
//! It knows nothing of the control plane beyond its own configuration. Brokers form a cluster
//! through a Raft metadata quorum; without `--quorum` a broker is a one-member cluster running the
//! same code.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod groups;
pub mod handlers;
pub mod producers;
pub mod replica;
pub mod replicas;
pub mod replication;
pub mod security;
pub mod server;
pub mod state;
mod tasks;
pub mod topic_config;

#[cfg(test)]
mod tests {
    /// The crate's modules, top down (as the crate docs list them).
    const LAYERS: &[&str] = &[
        "server",
        "tasks",
        "handlers",
        "replication",
        "broker",
        "replicas",
        "replica",
        "cluster",
        "groups",
        "producers",
        "topic_config",
        "config",
        "security",
        "state",
    ];

    /// The modules a file's code names as `crate::<module>` (comments and tests left out).
    fn uses(source: &str) -> Vec<&str> {
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut used = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if end > 0 {
                    used.push(&rest[..end]);
                } else if let Some(list) = rest.strip_prefix('{') {
                    // `use crate::{a, b::c};` on one line.
                    let list = list.split('}').next().unwrap_or_default();
                    used.extend(list.split(',').filter_map(|item| {
                        let name = item.trim().split("::").next()?;
                        (!name.is_empty()).then_some(name)
                    }));
                }
            }
        }
        used
    }

    /// Each module uses only modules below it: no cycles between the server, the handlers, the
    /// replication tasks and the `Broker` context they share.
    #[test]
    fn modules_use_only_the_layers_below_them() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.clone()];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("read src") {
                    files.push(entry.expect("entry").path());
                }
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src");
            let module = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .map(|m| m.trim_end_matches(".rs"))
                .expect("module name");
            if module == "lib" || module == "main" {
                continue;
            }
            let layer = LAYERS
                .iter()
                .position(|l| *l == module)
                .unwrap_or_else(|| panic!("{module} is not in LAYERS"));
            let source = std::fs::read_to_string(&path).expect("read");
            for used in uses(&source) {
                if used == module {
                    continue;
                }
                let below = LAYERS.iter().position(|l| *l == used);
                assert!(
                    below.is_some_and(|b| b > layer),
                    "{} uses crate::{used}, which is not below {module}",
                    relative.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 20, "{checked} files");
    }
}
