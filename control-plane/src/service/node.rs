//! Nodes: registration and heartbeats from agents, listing for people.

use super::auth::require_platform_admin;
use crate::auth::Identity;
use crate::model::{Capacity, KafkaClientSecrets, NodeId, NodeRecord, NodeSpec, WorkloadConfig};
use crate::store::{Assignment, IssuedCertificate};
use hdi_stdx::secret::Secret;

use super::{ErrorCode, Service, ServiceError};

/// The largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 500;
/// The page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Which page of a list to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (default [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`]).
    pub page_size: Option<u32>,
    /// The opaque token of the previous page's `next_page_token`.
    pub page_token: Option<String>,
}

/// One page of nodes.
#[derive(Clone, Debug)]
pub struct NodePage {
    /// The nodes, ordered by name.
    pub items: Vec<NodeRecord>,
    /// The token for the next page, if there is one.
    pub next_page_token: Option<String>,
}

impl Service {
    /// Registers a node agent, or re-registers it after a restart (same id: a new incarnation).
    ///
    /// # Errors
    /// [`ServiceError::InvalidField`] for a bad spec; [`ServiceError::Conflict`] (`node_name_taken`)
    /// when another node has the name.
    pub async fn node_register(
        &self,
        id: NodeId,
        spec: NodeSpec,
    ) -> Result<NodeRecord, ServiceError> {
        validate_node_spec(&spec)?;
        match self.store.node_upsert(id, &spec).await {
            Ok(record) => Ok(record),
            Err(crate::store::StoreError::Conflict { what }) => Err(ServiceError::Conflict {
                code: ErrorCode::NodeNameTaken,
                message: format!(
                    "{what} is registered by another node; pick another name or remove that node"
                ),
            }),
            Err(other) => Err(other.into()),
        }
    }

    /// Records a heartbeat.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when the node is not registered (the agent must register again).
    pub async fn node_heartbeat(
        &self,
        id: NodeId,
        capacity: Capacity,
        applied_generation: u64,
        workloads: &[crate::store::ReportedWorkload],
    ) -> Result<(), ServiceError> {
        validate_capacity(&capacity)?;
        if self.store.node_heartbeat(id, &capacity).await? {
            self.store
                .node_report_workloads(id, applied_generation, workloads)
                .await?;
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                what: format!("node {id}"),
            })
        }
    }

    /// Exchanges the bootstrap token or a cluster's enrolment token (checked by the caller) for
    /// node `id`'s own agent credential: a fresh secret, returned once; only its digest is kept.
    /// With `cluster`, the node belongs to that cluster.
    ///
    /// # Errors
    /// `node_credential_exists` when the node has one (a platform admin revokes it first).
    pub async fn node_enrol(
        &self,
        id: NodeId,
        cluster: Option<crate::model::ClusterId>,
    ) -> Result<String, ServiceError> {
        let secret = crate::auth::new_api_token_secret()
            .map_err(|e| super::auth::internal("node_credential", e.to_string()))?;
        let secret = format!("node_{}", secret.trim_start_matches("hdi_"));
        let result = if self
            .store
            .node_credential_insert(id, &crate::auth::digest(&secret), cluster)
            .await?
        {
            Ok(secret)
        } else {
            Err(ServiceError::Conflict {
                code: ErrorCode::NodeCredentialExists,
                message: format!(
                    "node {id} has a credential already; a platform admin revokes it \
                     (DELETE /v1/nodes/{id}/credential) before the agent enrols again"
                ),
            })
        };
        self.audit(
            "agent",
            "node.enrol",
            &format!("nodes/{id}"),
            &result.as_ref().map(|_| ()),
        )
        .await;
        result
    }

    /// The cluster whose enrolment token `token` is, if any.
    ///
    /// # Errors
    /// The store failed.
    pub async fn cluster_by_enrolment_token(
        &self,
        token: &str,
    ) -> Result<Option<crate::model::ClusterId>, ServiceError> {
        Ok(self
            .store
            .cluster_by_enrolment_token(&crate::auth::digest(token))
            .await?)
    }

    /// The node an agent credential belongs to.
    ///
    /// # Errors
    /// `unauthorized` for an unknown credential.
    pub async fn node_by_credential(&self, token: &str) -> Result<NodeId, ServiceError> {
        self.store
            .node_by_credential(&crate::auth::digest(token))
            .await?
            .ok_or(ServiceError::Unauthenticated(
                crate::auth::AuthError::WrongToken {
                    expected: crate::auth::Principal::Agent,
                },
            ))
    }

    /// Revokes node `id`'s agent credential (platform admins only): its agent's calls are
    /// refused until it enrols again with the bootstrap token.
    ///
    /// # Errors
    /// `forbidden`, `not_found` (no credential).
    pub async fn node_credential_revoke(
        &self,
        caller: &Identity,
        id: NodeId,
    ) -> Result<(), ServiceError> {
        let result = async {
            require_platform_admin(caller)?;
            if self.store.node_credential_delete(id).await? {
                Ok(())
            } else {
                Err(ServiceError::NotFound {
                    what: format!("credential of node {id}"),
                })
            }
        }
        .await;
        self.audited(
            &caller.username,
            "node.credential.revoke",
            format!("nodes/{id}"),
            result,
        )
        .await
    }

    /// One node.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn node_get(&self, id: NodeId) -> Result<NodeRecord, ServiceError> {
        self.store
            .node_get(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("node {id}"),
            })
    }

    /// A page of nodes ordered by name.
    ///
    /// # Errors
    /// [`ServiceError::InvalidField`] for a bad page size or token.
    pub async fn nodes_list(&self, page: PageRequest) -> Result<NodePage, ServiceError> {
        let size = match page.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(size) if (1..=MAX_PAGE_SIZE).contains(&size) => size,
            Some(_) => {
                return Err(ServiceError::InvalidField {
                    field: "page_size".into(),
                    message: format!("must be between 1 and {MAX_PAGE_SIZE}"),
                });
            }
        };
        let after = page
            .page_token
            .as_deref()
            .map(decode_page_token)
            .transpose()?;
        // One extra row tells whether another page follows.
        let mut items = self.store.nodes_list(after.as_deref(), size + 1).await?;
        let next_page_token = if items.len() > size as usize {
            items.truncate(size as usize);
            items.last().map(|last| encode_page_token(&last.spec.name))
        } else {
            None
        };
        Ok(NodePage {
            items,
            next_page_token,
        })
    }

    /// What a node must run.
    ///
    /// # Errors
    /// `not_found` for an unknown node.
    pub async fn node_assignment(&self, node: NodeId) -> Result<Assignment, ServiceError> {
        let read = || async {
            self.store
                .node_assignment(node)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    what: format!("node {node}"),
                })
        };
        let assignment = read().await?;
        let quorum = self.issue_quorum_certificates(&assignment).await?;
        let kafka = self.issue_kafka_certificates(&assignment).await?;
        if quorum || kafka {
            return read().await;
        }
        Ok(assignment)
    }

    /// Makes the Kafka secrets of every secured cluster of `assignment`'s brokers (its Kafka CA
    /// and administrator password) and issues each broker with TLS its listener certificate
    /// (naming the broker's address), again when it is due for renewal; whether anything was
    /// made.
    async fn issue_kafka_certificates(
        &self,
        assignment: &Assignment,
    ) -> Result<bool, ServiceError> {
        let failed = |what: &str, e: String| ServiceError::Upstream {
            code: ErrorCode::Internal,
            message: format!("cannot make {what}: {e}"),
        };
        let mut issued = false;
        for workload in &assignment.workloads {
            if !matches!(workload.config, WorkloadConfig::Broker { .. }) {
                continue;
            }
            let Some((Some(security), secrets)) = assignment.kafka.get(&workload.cluster_id) else {
                continue;
            };
            let secrets = match secrets {
                Some(secrets) => secrets.clone(),
                None => {
                    let authority = hdi_pki::Authority::generate_for(
                        &workload.cluster_id.to_string(),
                        hdi_pki::Purpose::Kafka,
                    )
                    .map_err(|e| failed("a Kafka CA", e.to_string()))?;
                    let password = crate::auth::new_kafka_password()
                        .map_err(|e| failed("a Kafka password", e.to_string()))?;
                    let candidate = KafkaClientSecrets {
                        ca_trust: authority.cert_pem.clone(),
                        ca_cert: authority.cert_pem,
                        ca_key: Secret::new(authority.key_pem),
                        admin_password: Secret::new(password),
                    };
                    issued = true;
                    self.store
                        .kafka_secrets_make(workload.cluster_id, &candidate)
                        .await?
                }
            };
            let current = assignment.kafka_tls.get(&workload.id);
            if !security.tls
                || (current.is_some() && !assignment.kafka_tls_due.contains(&workload.id))
            {
                continue;
            }
            let authority = hdi_pki::Authority::from_pem(
                &secrets.ca_cert,
                secrets.ca_key.expose(),
                hdi_pki::Purpose::Kafka,
            )
            .map_err(|e| failed("a Kafka server certificate", e.to_string()))?;
            let server = authority
                .issue_server(std::slice::from_ref(&workload.address))
                .map_err(|e| failed("a Kafka server certificate", e.to_string()))?;
            self.store
                .workload_kafka_tls_issue(
                    workload.id,
                    &IssuedCertificate {
                        cert: &server.cert_pem,
                        key: &server.key_pem,
                        renew_at: renew_at(),
                        replacing: current.map(|(cert, _)| cert.as_str()),
                        signer: &secrets.ca_cert,
                    },
                )
                .await?;
            tracing::info!(workload = %workload.name, renewed = current.is_some(), "Kafka listener certificate issued");
            issued = true;
        }
        Ok(issued)
    }

    /// Issues the quorum certificate of every broker workload of `assignment` that has none or
    /// whose certificate is due for renewal (making its cluster's authority first if needed);
    /// whether any was issued.
    async fn issue_quorum_certificates(
        &self,
        assignment: &Assignment,
    ) -> Result<bool, ServiceError> {
        let mut issued = false;
        for workload in &assignment.workloads {
            let WorkloadConfig::Broker { broker_id, .. } = workload.config else {
                continue;
            };
            let current = assignment.tls.get(&workload.id);
            if current.is_some() && !assignment.tls_due.contains(&workload.id) {
                continue;
            }
            let failed = |e: hdi_pki::PkiError| ServiceError::Upstream {
                code: ErrorCode::Internal,
                message: format!("cannot issue a quorum certificate: {e}"),
            };
            let candidate =
                hdi_pki::Authority::generate(&workload.cluster_id.to_string()).map_err(failed)?;
            let (cert_pem, key_pem) = self
                .store
                .quorum_ca(workload.cluster_id, (candidate.cert_pem, candidate.key_pem))
                .await?;
            let authority =
                hdi_pki::Authority::from_pem(&cert_pem, &key_pem, hdi_pki::Purpose::Quorum)
                    .map_err(failed)?;
            let broker = authority.issue_broker(broker_id).map_err(failed)?;
            self.store
                .workload_tls_issue(
                    workload.id,
                    &IssuedCertificate {
                        cert: &broker.cert_pem,
                        key: &broker.key_pem,
                        renew_at: renew_at(),
                        replacing: current.map(|(cert, _)| cert.as_str()),
                        signer: &cert_pem,
                    },
                )
                .await?;
            tracing::info!(workload = %workload.name, broker_id, renewed = current.is_some(), "quorum certificate issued");
            issued = true;
        }
        Ok(issued)
    }
}

/// When a certificate issued now is due to be renewed: two thirds into its lifetime, so a
/// control plane or node that is down for weeks still renews it in time.
fn renew_at() -> chrono::DateTime<chrono::Utc> {
    let lifetime = chrono::Duration::from_std(hdi_pki::LEAF_LIFETIME * 2 / 3)
        .unwrap_or(chrono::Duration::days(60));
    chrono::Utc::now() + lifetime
}

fn validate_node_spec(spec: &NodeSpec) -> Result<(), ServiceError> {
    let invalid = |field: &str, message: &str| {
        Err(ServiceError::InvalidField {
            field: field.to_owned(),
            message: message.to_owned(),
        })
    };
    // A Kubernetes pod's node is `<pod>.<namespace>`: DNS labels joined by dots.
    if spec.name.len() > 253 || !spec.name.split('.').all(is_dns_label) {
        return invalid(
            "name",
            "must be DNS labels (1-63 lowercase letters, digits or '-', starting and ending with a \
             letter or digit) joined by '.', at most 253 characters",
        );
    }
    if spec.address.is_empty()
        || spec.address.len() > 253
        || spec.address.chars().any(|c| c.is_whitespace())
    {
        return invalid(
            "address",
            "must be a host name or IP address without spaces",
        );
    }
    if spec.agent_version.is_empty() || spec.agent_version.len() > 64 {
        return invalid("agent_version", "must be 1-64 characters");
    }
    if i32::try_from(spec.fault_domain).is_err() {
        return invalid("fault_domain", "must be at most 2147483647");
    }
    validate_capacity(&spec.capacity)
}

fn validate_capacity(capacity: &Capacity) -> Result<(), ServiceError> {
    let invalid = |field: &str, message: &str| {
        Err(ServiceError::InvalidField {
            field: field.to_owned(),
            message: message.to_owned(),
        })
    };
    let fields = [
        ("capacity.cpu_millis", capacity.cpu_millis),
        ("capacity.memory_bytes", capacity.memory_bytes),
        ("capacity.disk_bytes", capacity.disk_bytes),
    ];
    for (field, value) in fields {
        if i64::try_from(value).is_err() {
            return invalid(field, "is too large");
        }
    }
    if capacity.cpu_millis == 0 || capacity.memory_bytes == 0 {
        return invalid("capacity", "a node must offer some CPU and memory");
    }
    Ok(())
}

/// A DNS label as Kubernetes names nodes: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
        && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
}

pub(super) fn encode_page_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn decode_page_token(token: &str) -> Result<String, ServiceError> {
    let bad = || ServiceError::InvalidField {
        field: "page_token".into(),
        message: "is not a token returned by a previous page".into(),
    };
    if !token.len().is_multiple_of(2) || token.len() > 128 {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let name = String::from_utf8(bytes).map_err(|_| bad())?;
    if is_dns_label(&name) {
        Ok(name)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NodeSpec {
        NodeSpec {
            name: "node-0".into(),
            fault_domain: 0,
            address: "127.0.0.1".into(),
            agent_version: "0.1.0".into(),
            capacity: Capacity {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
                disk_bytes: 1 << 30,
            },
        }
    }

    fn field_of(result: Result<(), ServiceError>) -> Option<String> {
        match result {
            Err(ServiceError::InvalidField { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        type Mutation = Box<dyn Fn(&mut NodeSpec)>;
        let cases: Vec<(&str, Mutation, Option<&str>)> = vec![
            ("valid", Box::new(|_| {}), None),
            (
                "upper-case name",
                Box::new(|s| s.name = "Node-0".into()),
                Some("name"),
            ),
            (
                "empty name",
                Box::new(|s| s.name = String::new()),
                Some("name"),
            ),
            (
                "trailing dash",
                Box::new(|s| s.name = "node-".into()),
                Some("name"),
            ),
            (
                "long name",
                Box::new(|s| s.name = "a".repeat(64)),
                Some("name"),
            ),
            (
                "address with space",
                Box::new(|s| s.address = "a b".into()),
                Some("address"),
            ),
            (
                "empty version",
                Box::new(|s| s.agent_version = String::new()),
                Some("agent_version"),
            ),
            (
                "huge fault domain",
                Box::new(|s| s.fault_domain = u32::MAX),
                Some("fault_domain"),
            ),
            (
                "huge disk",
                Box::new(|s| s.capacity.disk_bytes = u64::MAX),
                Some("capacity.disk_bytes"),
            ),
            (
                "no cpu",
                Box::new(|s| s.capacity.cpu_millis = 0),
                Some("capacity"),
            ),
        ];
        for (case, mutate, expected) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(
                field_of(validate_node_spec(&s)).as_deref(),
                expected,
                "case {case}"
            );
        }
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = encode_page_token("node-17");
        assert_eq!(decode_page_token(&token).unwrap(), "node-17");
        for bad in ["zz", "abc", "4e4f44", &"61".repeat(65)] {
            assert!(decode_page_token(bad).is_err(), "{bad} should be rejected");
        }
    }
}
