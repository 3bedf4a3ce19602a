//! The Kubernetes objects an hdi cluster runs as, built purely from the cluster.
//!
//! Per node pool (and, for Spark, the implicit `driver` pool of one): a StatefulSet whose pods
//! run `hdi-node-agent` enrolling with the cluster's own enrolment token (a Secret), so each pod
//! registers as a node of that cluster only and runs the workload the control plane's scheduler
//! assigns to it, exactly as on the local fleet; a headless Service giving each pod a stable DNS name (its advertised
//! address); a PodDisruptionBudget (one pod of a pool down at a time); volume claims sized from
//! the pool; requests and limits from the size catalog; spread across zones (the zone is the
//! fault domain: the agent reads its pod's zone label through the downward API). Per cluster: a
//! bootstrap Service over every pod, and a NetworkPolicy that lets clients reach the client
//! port and only the cluster's own pods reach the quorum port. Every object carries the
//! `app.kubernetes.io` labels and one controller owner reference (the `HdiCluster`, or the
//! anchor ConfigMap of a cluster made through REST), so deleting the owner garbage-collects
//! everything.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{CLUSTER_LABEL, MANAGED_BY, POOL_LABEL};

/// The zone label Kubernetes puts on nodes (and, at binding, on pods).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Where the enrolment token is mounted in agent pods.
pub const ENROLMENT_MOUNT: &str = "/etc/hdi/enrolment";

/// Where the pod's persistent volume is mounted (the agent's data directory).
pub const DATA_MOUNT: &str = "/var/lib/hdi";

/// The ports workloads listen on inside a pod (each pod has its own address, so they are the
/// same on every pod).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Kafka clients.
    pub kafka: u16,
    /// The brokers' quorum and replication listener.
    pub quorum: u16,
    /// The executor's driver or worker API.
    pub executor: u16,
}

impl Default for Ports {
    fn default() -> Ports {
        Ports {
            kafka: 9092,
            quorum: 9093,
            executor: 8080,
        }
    }
}

/// One pool as pods: how many, and what each reserves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// Pool name (`driver` for a Spark cluster's driver).
    pub name: String,
    /// Pods wanted (a StatefulSet's replicas).
    pub replicas: u32,
    /// CPU request and limit, in millicores.
    pub cpu_millis: u64,
    /// Memory request and limit, in bytes.
    pub memory_bytes: u64,
    /// The volume claim of each pod, in GiB.
    pub storage_gib: u32,
}

/// Everything the objects of one cluster are built from.
#[derive(Clone, Debug)]
pub struct ClusterPlan {
    /// The cluster's name (and the objects' name prefix `hdi-<name>`).
    pub name: String,
    /// The namespace the objects go in.
    pub namespace: String,
    /// The hdi cluster id the agents bind to.
    pub cluster_id: String,
    /// Kafka or Spark.
    pub kind: hdi_api::ClusterKind,
    /// Its pools, the Spark driver included.
    pub pools: Vec<PoolPlan>,
    /// The image the pods run (`hdi:<version>`).
    pub image: String,
    /// The control plane's URL as the pods reach it.
    pub control_plane_url: String,
    /// The Secret holding the agents' enrolment token as `token`.
    pub enrolment_secret: String,
    /// The controller owner of every object.
    pub owner: OwnerReference,
    /// The storage class of the volume claims (the cluster's default when absent).
    pub storage_class: Option<String>,
    /// Ports inside the pods.
    pub ports: Ports,
}

/// The objects of one cluster.
#[derive(Clone, Debug, Default)]
pub struct Children {
    /// One per pool.
    pub stateful_sets: Vec<StatefulSet>,
    /// A headless Service per pool, then the bootstrap Service.
    pub services: Vec<Service>,
    /// One per pool.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// The cluster's network policy.
    pub network_policies: Vec<NetworkPolicy>,
}

/// The name prefix of a cluster's objects.
pub fn prefix(cluster: &str) -> String {
    format!("hdi-{cluster}")
}

/// The StatefulSet (and headless Service) of a pool.
pub fn pool_object(cluster: &str, pool: &str) -> String {
    format!("hdi-{cluster}-{pool}")
}

/// The bootstrap Service of a cluster.
pub fn bootstrap_service(cluster: &str) -> String {
    format!("hdi-{cluster}-bootstrap")
}

/// The node name a pod registers under (node names are unique across the fleet).
pub fn node_name(namespace: &str, pod: &str) -> String {
    format!("{pod}.{namespace}")
}

/// The stable DNS name of a pool's pod `ordinal`: the address its workloads advertise.
pub fn pod_address(cluster: &str, pool: &str, namespace: &str, ordinal: u32) -> String {
    let set = pool_object(cluster, pool);
    format!("{set}-{ordinal}.{set}.{namespace}.svc")
}

/// Labels selecting a cluster's pods, or one pool's.
pub fn selector(cluster: &str, pool: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "hdi".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
    ]);
    if let Some(pool) = pool {
        labels.insert(POOL_LABEL.to_owned(), pool.to_owned());
    }
    labels
}

fn labels(plan: &ClusterPlan, pool: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = selector(&plan.name, pool);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
    labels.insert("hdi.io/cluster-id".to_owned(), plan.cluster_id.clone());
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        match plan.kind {
            hdi_api::ClusterKind::Kafka => "kafka",
            hdi_api::ClusterKind::Spark => "spark",
        }
        .to_owned(),
    );
    labels
}

fn meta(plan: &ClusterPlan, name: String, pool: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels(plan, pool)),
        owner_references: Some(vec![plan.owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn pool_ports(plan: &ClusterPlan) -> Vec<(&'static str, u16)> {
    match plan.kind {
        hdi_api::ClusterKind::Kafka => {
            vec![("kafka", plan.ports.kafka), ("quorum", plan.ports.quorum)]
        }
        hdi_api::ClusterKind::Spark => vec![("executor", plan.ports.executor)],
    }
}

fn stateful_set(plan: &ClusterPlan, pool: &PoolPlan) -> StatefulSet {
    let name = pool_object(&plan.name, &pool.name);
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(format!("{}m", pool.cpu_millis))),
        (
            "memory".to_owned(),
            Quantity(format!("{}", pool.memory_bytes)),
        ),
    ]);
    let address = format!("$(POD_NAME).{name}.$(POD_NAMESPACE).svc");
    let args = vec![
        "--control-plane".to_owned(),
        plan.control_plane_url.clone(),
        "--data-dir".to_owned(),
        format!("{DATA_MOUNT}/agent"),
        "--token-file".to_owned(),
        format!("{ENROLMENT_MOUNT}/token"),
        "--name".to_owned(),
        "$(POD_NAME).$(POD_NAMESPACE)".to_owned(),
        "--address".to_owned(),
        address,
        "--zone".to_owned(),
        "$(HDI_ZONE)".to_owned(),
        "--cpu-millis".to_owned(),
        pool.cpu_millis.to_string(),
        "--memory-bytes".to_owned(),
        pool.memory_bytes.to_string(),
        "--run-workloads-as".to_owned(),
        "agent-user".to_owned(),
    ];
    let container = Container {
        name: "agent".to_owned(),
        image: Some(plan.image.clone()),
        command: Some(vec!["/usr/local/bin/hdi-node-agent".to_owned()]),
        args: Some(args),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("HDI_ZONE", &format!("metadata.labels['{ZONE_LABEL}']")),
        ]),
        ports: Some(
            pool_ports(plan)
                .into_iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.to_owned()),
                    container_port: i32::from(port),
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".to_owned(),
                mount_path: DATA_MOUNT.to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "enrolment".to_owned(),
                mount_path: ENROLMENT_MOUNT.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            // The root file system is read-only; scratch space for the workloads.
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            labels: Some(labels(plan, Some(&pool.name))),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: plan.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(format!("{}Gi", pool.storage_gib)),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: meta(plan, name.clone(), Some(&pool.name)),
        spec: StatefulSetSpec {
            replicas: Some(i32::try_from(pool.replicas).unwrap_or(i32::MAX)),
            service_name: Some(name),
            // Pods start together; the control plane orders what runs on them.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector(&plan.name, Some(&pool.name))),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(plan, Some(&pool.name))),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        fs_group: Some(65532),
                        run_as_non_root: Some(true),
                        ..PodSecurityContext::default()
                    }),
                    termination_grace_period_seconds: Some(30),
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: ZONE_LABEL.to_owned(),
                        when_unsatisfiable: "DoNotSchedule".to_owned(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector(&plan.name, Some(&pool.name))),
                            ..LabelSelector::default()
                        }),
                        ..TopologySpreadConstraint::default()
                    }]),
                    volumes: Some(vec![
                        Volume {
                            name: "enrolment".to_owned(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(plan.enrolment_secret.clone()),
                                default_mode: Some(0o400),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "tmp".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

fn service(plan: &ClusterPlan, name: String, pool: Option<&str>, headless: bool) -> Service {
    Service {
        metadata: meta(plan, name, pool),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_owned()),
            // Brokers must find each other before they are ready.
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(selector(&plan.name, pool)),
            ports: Some(
                pool_ports(plan)
                    .into_iter()
                    .filter(|(name, _)| headless || *name != "quorum")
                    .map(|(name, port)| ServicePort {
                        name: Some(name.to_owned()),
                        port: i32::from(port),
                        target_port: Some(IntOrString::Int(i32::from(port))),
                        protocol: Some("TCP".to_owned()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn network_policy(plan: &ClusterPlan) -> NetworkPolicy {
    let port = |port: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector(&plan.name, None)),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let ingress = match plan.kind {
        hdi_api::ClusterKind::Kafka => vec![
            // Clients from anywhere (the listener authenticates them).
            NetworkPolicyIngressRule {
                ports: Some(vec![port(plan.ports.kafka)]),
                from: None,
            },
            // The quorum and replication listener: this cluster's brokers only.
            NetworkPolicyIngressRule {
                ports: Some(vec![port(plan.ports.quorum)]),
                from: Some(vec![own_pods]),
            },
        ],
        hdi_api::ClusterKind::Spark => vec![NetworkPolicyIngressRule {
            ports: Some(vec![port(plan.ports.executor)]),
            from: None,
        }],
    };
    NetworkPolicy {
        metadata: meta(plan, prefix(&plan.name), None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(&plan.name, None)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Every object of the cluster (pure).
pub fn build(plan: &ClusterPlan) -> Children {
    let mut children = Children::default();
    for pool in &plan.pools {
        children.stateful_sets.push(stateful_set(plan, pool));
        children.services.push(service(
            plan,
            pool_object(&plan.name, &pool.name),
            Some(&pool.name),
            true,
        ));
        children.disruption_budgets.push(PodDisruptionBudget {
            metadata: meta(plan, pool_object(&plan.name, &pool.name), Some(&pool.name)),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector(&plan.name, Some(&pool.name))),
                    ..LabelSelector::default()
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        });
    }
    children
        .services
        .push(service(plan, bootstrap_service(&plan.name), None, false));
    children.network_policies.push(network_policy(plan));
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: hdi_api::ClusterKind) -> ClusterPlan {
        ClusterPlan {
            name: "payments".to_owned(),
            namespace: "bank".to_owned(),
            cluster_id: "0b6d8a4e-6f0c-4a53-9a43-3b0c7e0e8f11".to_owned(),
            kind,
            pools: vec![PoolPlan {
                name: "brokers".to_owned(),
                replicas: 3,
                cpu_millis: 500,
                memory_bytes: 1 << 30,
                storage_gib: 20,
            }],
            image: "hdi:0.1.0".to_owned(),
            control_plane_url: "http://hdi-control-plane.hdi-system.svc:8080".to_owned(),
            enrolment_secret: "hdi-payments-enrolment".to_owned(),
            owner: OwnerReference {
                api_version: "hdi.io/v1alpha1".to_owned(),
                kind: "HdiCluster".to_owned(),
                name: "payments".to_owned(),
                uid: "9f1d".to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            storage_class: Some("fast".to_owned()),
            ports: Ports::default(),
        }
    }

    #[test]
    fn a_kafka_pool_is_a_stateful_set_of_agents_bound_to_the_cluster() {
        let children = build(&plan(hdi_api::ClusterKind::Kafka));
        assert_eq!(children.stateful_sets.len(), 1);
        let set = &children.stateful_sets[0];
        assert_eq!(set.metadata.name.as_deref(), Some("hdi-payments-brokers"));
        assert_eq!(
            set.metadata
                .owner_references
                .as_ref()
                .map(|o| o[0].controller),
            Some(Some(true))
        );
        let spec = &set.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("hdi-payments-brokers"));
        let pod = spec.template.spec.as_ref().expect("pod spec");
        let args = pod.containers[0].args.clone().unwrap_or_default();
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        assert_eq!(
            after("--token-file").as_deref(),
            Some("/etc/hdi/enrolment/token")
        );
        assert_eq!(
            after("--address").as_deref(),
            Some("$(POD_NAME).hdi-payments-brokers.$(POD_NAMESPACE).svc")
        );
        let limits = pod.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));
        let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
        let storage = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        assert_eq!(storage.as_deref(), Some("20Gi"));
        assert_eq!(
            pod.topology_spread_constraints
                .as_ref()
                .map(|t| t[0].topology_key.clone()),
            Some(ZONE_LABEL.to_owned())
        );
        // Headless per pool, then bootstrap without the quorum port.
        assert_eq!(children.services.len(), 2);
        let bootstrap = &children.services[1];
        assert_eq!(
            bootstrap.metadata.name.as_deref(),
            Some("hdi-payments-bootstrap")
        );
        let ports: Vec<i32> = bootstrap
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, vec![9092]);
        // Only the cluster's own pods reach the quorum port.
        let rules = children.network_policies[0]
            .spec
            .as_ref()
            .and_then(|s| s.ingress.clone())
            .unwrap_or_default();
        assert!(rules[0].from.is_none());
        assert!(rules[1].from.is_some());
    }

    #[test]
    fn pod_addresses_are_the_headless_services_names() {
        assert_eq!(
            pod_address("payments", "brokers", "bank", 2),
            "hdi-payments-brokers-2.hdi-payments-brokers.bank.svc"
        );
        assert_eq!(
            node_name("bank", "hdi-payments-brokers-2"),
            "hdi-payments-brokers-2.bank"
        );
    }
}
