//! How this process reaches secured Kafka clusters: the librdkafka properties (security
//! protocol, SASL login, CA certificate) the control plane sends with each job definition
//! (`kafka_access`), kept by bootstrap address for every Kafka client the process makes. The
//! driver learns them from job definitions and validations and passes them to workers with
//! every task; a cluster no definition named is PLAINTEXT.
//!
//! Every librdkafka client is made by [`client_config`]; the direct fetch path (plain sockets)
//! is used only for PLAINTEXT clusters ([`is_secured`]).

use std::collections::BTreeMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use hdi_executor_api::KafkaProperties;
use rdkafka::ClientConfig;

/// Properties by lower-cased `host:port`.
fn registry() -> &'static RwLock<BTreeMap<String, KafkaProperties>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<String, KafkaProperties>>> = OnceLock::new();
    REGISTRY.get_or_init(RwLock::default)
}

fn addresses(bootstrap: &str) -> impl Iterator<Item = String> + '_ {
    bootstrap
        .split(',')
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
}

/// Keeps `access` (bootstrap servers → properties) for the clusters it names; newer
/// properties replace older ones (a rotated password).
pub fn register(access: &BTreeMap<String, KafkaProperties>) {
    if access.is_empty() {
        return;
    }
    let mut registry = registry().write().unwrap_or_else(PoisonError::into_inner);
    for (bootstrap, properties) in access {
        for address in addresses(bootstrap) {
            registry.insert(address, properties.clone());
        }
    }
}

/// Everything registered, by address (what the driver sends its workers).
pub fn snapshot() -> BTreeMap<String, KafkaProperties> {
    registry()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The properties of the cluster `bootstrap` names (by its first registered address).
fn properties(bootstrap: &str) -> Option<KafkaProperties> {
    let registry = registry().read().unwrap_or_else(PoisonError::into_inner);
    addresses(bootstrap).find_map(|a| registry.get(&a).cloned())
}

/// Whether the cluster needs TLS or SASL.
pub fn is_secured(bootstrap: &str) -> bool {
    properties(bootstrap).is_some_and(|p| !p.0.is_empty())
}

/// A librdkafka configuration for the cluster `bootstrap` names: its servers and, when it is
/// secured, its security properties.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    if let Some(properties) = properties(bootstrap) {
        for (key, value) in &properties.0 {
            config.set(key, value);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_cluster_is_reached_with_its_properties_by_any_of_its_addresses() {
        let secured = KafkaProperties(BTreeMap::from([
            ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ("sasl.username".to_owned(), "hdi-jobs".to_owned()),
        ]));
        register(&BTreeMap::from([(
            "10.9.0.1:9092, 10.9.0.2:9092".to_owned(),
            secured,
        )]));
        assert!(is_secured("10.9.0.2:9092"));
        let config = client_config("10.9.0.2:9092,10.9.0.1:9092");
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(
            config.get("bootstrap.servers"),
            Some("10.9.0.2:9092,10.9.0.1:9092")
        );
        assert!(!is_secured("10.9.0.3:9092"));
        assert_eq!(
            client_config("10.9.0.3:9092").get("security.protocol"),
            None
        );
    }
}
