//! `hdictl link failover NAME --break-glass --client-config FILE`: the emergency failover that
//! needs no control plane. It talks Kafka to the target cluster's brokers directly, as the Kafka
//! user of a client configuration (`hdictl cluster client-config` writes one; the user needs
//! `alter_configs` and `describe_configs` on the cluster resource `kafka-cluster`: create it
//! before an emergency, keep the file offline), sets `hdi.link.<name>.state=failover`, waits
//! until every mirror partition has stopped, and prints where each stopped and the loss bound
//! its brokers measured. When the control plane returns, its link reconciler finds the link
//! failed over on the brokers and records it so.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdi_kafka_client::{Connection, SaslLogin, Security};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::Format;
use crate::output::Table;

/// How a client configuration (librdkafka properties) reaches the cluster.
struct Target {
    bootstrap: Vec<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<SaslLogin>,
}

/// Reads a librdkafka client configuration (`key=value` lines, `#` comments).
fn target(file: &Path) -> anyhow::Result<Target> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --client-config {}", file.display()))?;
    let properties: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let get = |key: &str| {
        properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let bootstrap: Vec<String> = get("bootstrap.servers")
        .context("the client configuration has no bootstrap.servers")?
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".to_owned());
    let tls = if protocol.ends_with("SSL") {
        let pem = match (get("ssl.ca.pem"), get("ssl.ca.location")) {
            (Some(pem), _) => pem,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read ssl.ca.location {path}"))?,
            (None, None) => bail!("security.protocol is {protocol}: ssl.ca.location is needed"),
        };
        Some(Arc::new(
            hdi_pki::trust_config(&pem).context("ssl.ca.location is not a usable CA")?,
        ))
    } else {
        None
    };
    let sasl = if protocol.starts_with("SASL_") {
        let mechanism = get("sasl.mechanisms")
            .or_else(|| get("sasl.mechanism"))
            .context("the client configuration has no sasl.mechanisms")?;
        let username =
            get("sasl.username").context("the client configuration has no sasl.username")?;
        let password =
            get("sasl.password").context("the client configuration has no sasl.password")?;
        if password.starts_with('<') {
            bail!(
                "sasl.password in {} is a placeholder: fill it in",
                file.display()
            );
        }
        Some(SaslLogin {
            mechanism,
            username,
            password,
        })
    } else {
        None
    };
    Ok(Target {
        bootstrap,
        tls,
        sasl,
    })
}

impl Target {
    async fn connect(&self, address: &str) -> anyhow::Result<Connection> {
        let security = Security::for_address(address, self.tls.as_ref(), self.sasl.as_ref())
            .map_err(anyhow::Error::msg)?;
        tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect_secure(address, "hdictl-break-glass", 64 << 20, &security),
        )
        .await
        .with_context(|| format!("{address}: no connection in 10 s"))?
        .with_context(|| format!("cannot reach {address}"))
    }

    async fn connect_any(&self) -> anyhow::Result<Connection> {
        let mut last = None;
        for address in &self.bootstrap {
            match self.connect(address).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no bootstrap servers")))
    }
}

/// Every broker's mirror partitions of link `name` (the JSON arrays of
/// `hdi.link.<name>.partitions`), merged.
async fn partitions(target: &Target, name: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut connection = target.connect_any().await?;
    let metadata = connection
        .call(
            &MetadataRequest::default().with_topics(Some(Vec::new())),
            12,
        )
        .await
        .context("Metadata")?;
    let mut out = Vec::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host.as_str(), broker.port);
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_string(broker.node_id.0.to_string()))
                .with_configuration_keys(Some(vec![StrBytes::from_string(format!(
                    "hdi.link.{name}.partitions"
                ))])),
        ]);
        let mut connection = target.connect(&address).await?;
        let response = connection
            .call(&request, 4)
            .await
            .with_context(|| format!("DescribeConfigs of broker {}", broker.node_id.0))?;
        for result in &response.results {
            if result.error_code != 0 {
                bail!(
                    "broker {} refuses DescribeConfigs ({}): {}",
                    broker.node_id.0,
                    hdi_kafka_client::codes::error_name(result.error_code),
                    result.error_message.as_deref().unwrap_or("")
                );
            }
            for config in &result.configs {
                let value = config.value.as_deref().unwrap_or("[]");
                let parsed: Vec<serde_json::Value> =
                    serde_json::from_str(value).with_context(|| {
                        format!("broker {}: not a partition list", broker.node_id.0)
                    })?;
                out.extend(parsed);
            }
        }
    }
    out.sort_by_key(|p| (p["topic"].to_string(), p["partition"].as_i64()));
    Ok(out)
}

/// Runs the break-glass failover of link `name` (see the module doc).
///
/// # Errors
/// An unusable client configuration, unreachable brokers, a refusal (e.g. the user may not
/// alter the cluster's configs), or partitions that do not stop within `timeout`.
pub async fn failover(
    name: &str,
    client_config: &Path,
    timeout: Duration,
    format: Format,
) -> anyhow::Result<()> {
    let target = target(client_config)?;
    let mut connection = target.connect_any().await?;
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(format!("hdi.link.{name}.state")))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("failover"))),
            ]),
    ]);
    let response = connection
        .call(&request, 0)
        .await
        .context("IncrementalAlterConfigs")?;
    if let Some(refused) = response.responses.iter().find(|r| r.error_code != 0) {
        bail!(
            "the brokers refuse the failover of link {name:?} ({}): {}",
            hdi_kafka_client::codes::error_name(refused.error_code),
            refused.error_message.as_deref().unwrap_or("")
        );
    }
    let started = Instant::now();
    eprintln!(
        "link {name}: state set to failover on the brokers; waiting for every partition to stop"
    );
    let stopped = loop {
        let now = partitions(&target, name).await?;
        if !now.is_empty() && now.iter().all(|p| p["state"] == "stopped") {
            break now;
        }
        if started.elapsed() > timeout {
            let left = now.iter().filter(|p| p["state"] != "stopped").count();
            bail!("{left} partition(s) of link {name:?} have not stopped after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let number = |p: &serde_json::Value, key: &str| p[key].as_i64().unwrap_or(0);
    let loss: i64 = stopped.iter().map(|p| number(p, "loss_records")).sum();
    let loss_ms = stopped
        .iter()
        .map(|p| number(p, "loss_ms"))
        .max()
        .unwrap_or(0);
    match format {
        Format::Json | Format::Yaml => {
            let value = serde_json::json!({
                "link": name,
                "seconds": started.elapsed().as_secs_f64(),
                "loss_records": loss,
                "loss_ms": loss_ms,
                "partitions": stopped,
            });
            crate::output::print_value(format, &value)?;
        }
        Format::Table => {
            let mut table = Table::new(["TOPIC", "PARTITION", "STOP OFFSET", "LOSS", "LOSS MS"]);
            for p in &stopped {
                table.row([
                    p["topic"].as_str().unwrap_or_default().to_owned(),
                    number(p, "partition").to_string(),
                    number(p, "stop_offset").to_string(),
                    number(p, "loss_records").to_string(),
                    number(p, "loss_ms").to_string(),
                ]);
            }
            print!("{}", table.render());
            println!(
                "link {name} failed over in {:.1} s without the control plane: {} partition(s) stopped; loss bound {loss} record(s), {loss_ms} ms",
                started.elapsed().as_secs_f64(),
                stopped.len()
            );
        }
    }
    Ok(())
}
