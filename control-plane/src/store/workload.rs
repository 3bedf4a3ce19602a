//! Rows of `workloads` and `ports`, the placement transaction, and what agents report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, os_id, to_u64};
use hdi_stdx::secret::Secret;

use crate::model::{
    ClusterAccess, ClusterId, ClusterSpec, KafkaClientSecrets, KafkaSecurity, NodeId,
    ObservedProcess, WorkloadConfig, WorkloadId, WorkloadRecord, WorkloadRole, WorkspaceId,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

/// A certificate and key to store for a workload, replacing the one read before (`None`: none).
#[derive(Clone, Copy)]
pub struct IssuedCertificate<'a> {
    /// The certificate (PEM).
    pub cert: &'a str,
    /// Its private key (PEM).
    pub key: &'a str,
    /// When it is due to be renewed.
    pub renew_at: chrono::DateTime<chrono::Utc>,
    /// The certificate it replaces.
    pub replacing: Option<&'a str>,
    /// The certificate of the authority that signed it (PEM): if that is no longer the
    /// cluster's current authority when this is stored (an authority rotation moved on since
    /// it was read), the certificate is stored due at once, to be issued again by the new one.
    pub signer: &'a str,
}

impl std::fmt::Debug for IssuedCertificate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// What a node must run: its assignment generation, its workloads and what their clusters give
/// them.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The node's assignment generation.
    pub generation: u64,
    /// Its workloads that are not being removed, by name.
    pub workloads: Vec<WorkloadRecord>,
    /// Each of their clusters' workspace and credential.
    pub access: BTreeMap<ClusterId, ClusterAccess>,
    /// Each broker workload's quorum certificate and key, once issued.
    pub tls: BTreeMap<WorkloadId, (String, String)>,
    /// Each Kafka cluster's quorum CA certificates to trust (two while they rotate), once made.
    pub quorum_ca: BTreeMap<ClusterId, String>,
    /// Each broker workload's Kafka listener certificate and key, once issued.
    pub kafka_tls: BTreeMap<WorkloadId, (String, String)>,
    /// The broker workloads whose quorum certificate is due to be renewed.
    pub tls_due: std::collections::BTreeSet<WorkloadId>,
    /// The broker workloads whose Kafka listener certificate is due to be renewed.
    pub kafka_tls_due: std::collections::BTreeSet<WorkloadId>,
    /// Each Kafka cluster's client security (`None`: PLAINTEXT) and secrets once made.
    pub kafka: BTreeMap<ClusterId, (Option<KafkaSecurity>, Option<KafkaClientSecrets>)>,
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetNode {
    /// Identity.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Address of its workloads.
    pub address: String,
    /// Fault domain.
    pub fault_domain: u32,
    /// Heartbeating.
    pub ready: bool,
    /// Offered CPU.
    pub cpu_millis: u64,
    /// Offered memory.
    pub memory_bytes: u64,
    /// CPU reserved by its workloads.
    pub reserved_cpu_millis: u64,
    /// Memory reserved by its workloads.
    pub reserved_memory_bytes: u64,
    /// `(cluster, role)` of each workload on it.
    pub workloads: Vec<(ClusterId, WorkloadRole)>,
}

/// The fleet at the moment of a placement, read under the placement lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetSnapshot {
    /// Nodes by name.
    pub nodes: Vec<FleetNode>,
    /// Ports taken, per address.
    pub taken_ports: BTreeMap<String, BTreeSet<u16>>,
    /// The cluster's existing workloads (for voter addresses).
    pub cluster_workloads: Vec<WorkloadRecord>,
}

/// A workload to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWorkload {
    /// The node.
    pub node_id: NodeId,
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: WorkloadRole,
    /// Broker or worker id.
    pub ordinal: u32,
    /// Process configuration.
    pub config: WorkloadConfig,
    /// Reserved CPU.
    pub cpu_millis: u64,
    /// Reserved memory.
    pub memory_bytes: u64,
    /// Ports it takes on the node's address.
    pub ports: Vec<u16>,
}

/// One workload in an agent's heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedWorkload {
    /// Name.
    pub name: String,
    /// State.
    pub state: ObservedProcess,
    /// Process id.
    pub pid: Option<u32>,
    /// Restarts.
    pub restarts: u32,
    /// How the last process ended.
    pub last_exit: Option<String>,
}

struct WorkloadRow {
    id: Uuid,
    cluster_id: Uuid,
    node_id: Uuid,
    node_name: String,
    address: String,
    fault_domain: i32,
    node_ready: bool,
    name: String,
    role: String,
    ordinal: i32,
    spec: Json<WorkloadConfig>,
    removing: bool,
    gone: bool,
    observed_state: Option<String>,
    observed_restarts: i64,
}

impl TryFrom<WorkloadRow> for WorkloadRecord {
    type Error = StoreError;

    fn try_from(row: WorkloadRow) -> Result<WorkloadRecord, StoreError> {
        Ok(WorkloadRecord {
            id: WorkloadId::from_uuid(row.id),
            cluster_id: ClusterId::from_uuid(row.cluster_id),
            node_id: NodeId::from_uuid(row.node_id),
            node_name: row.node_name,
            address: row.address,
            fault_domain: u32::try_from(row.fault_domain).map_err(|_| StoreError::Corrupt {
                column: "nodes.fault_domain",
                value: row.fault_domain.to_string(),
            })?,
            node_ready: row.node_ready,
            role: WorkloadRole::parse(&row.role).ok_or_else(|| StoreError::Corrupt {
                column: "workloads.role",
                value: row.role.clone(),
            })?,
            name: row.name,
            ordinal: u32::try_from(row.ordinal).map_err(|_| StoreError::Corrupt {
                column: "workloads.ordinal",
                value: row.ordinal.to_string(),
            })?,
            config: row.spec.0,
            removing: row.removing,
            gone: row.gone,
            observed: ObservedProcess::parse(row.observed_state.as_deref()),
            restarts: u32::try_from(to_u64(
                row.observed_restarts,
                "workloads.observed_restarts",
            )?)
            .unwrap_or(u32::MAX),
        })
    }
}

fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The workloads of `cluster_ids` (removing ones included) by cluster, role and ordinal, on the
/// pool or inside a transaction.
async fn workloads_of_clusters(
    executor: impl sqlx::PgExecutor<'_>,
    cluster_ids: &[ClusterId],
    node_ready_timeout: Duration,
    context: &'static str,
) -> Result<Vec<WorkloadRecord>, StoreError> {
    let rows = sqlx::query_as!(
        WorkloadRow,
        r#"SELECT w.id, w.cluster_id, w.node_id, n.name AS node_name, n.address, n.fault_domain,
             (now() - n.last_heartbeat_at) < make_interval(secs => $2) AS "node_ready!",
             w.name, w.role, w.ordinal, w.spec AS "spec: Json<WorkloadConfig>", w.removing,
             (w.removing AND w.removed_generation IS NOT NULL
              AND n.applied_generation >= w.removed_generation
              AND w.observed_state = 'Absent') AS "gone!",
             w.observed_state, w.observed_restarts
           FROM workloads w JOIN nodes n ON n.id = w.node_id
           WHERE w.cluster_id = ANY($1) ORDER BY w.cluster_id, w.role, w.ordinal"#,
        &cluster_ids
            .iter()
            .map(|id| id.into_uuid())
            .collect::<Vec<_>>(),
        node_ready_timeout.as_secs_f64()
    )
    .fetch_all(executor)
    .await
    .map_err(query_error(context))?;
    rows.into_iter().map(WorkloadRecord::try_from).collect()
}

impl Store {
    /// The workloads of a cluster (removing ones included), by role and ordinal.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn workloads_of_cluster(
        &self,
        cluster_id: ClusterId,
        node_ready_timeout: Duration,
    ) -> Result<Vec<WorkloadRecord>, StoreError> {
        workloads_of_clusters(
            &self.pool,
            &[cluster_id],
            node_ready_timeout,
            "workloads_of_cluster",
        )
        .await
    }

    /// The workloads of several clusters at once (for list pages), by cluster, role, ordinal.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn workloads_of_clusters(
        &self,
        cluster_ids: &[ClusterId],
        node_ready_timeout: Duration,
    ) -> Result<Vec<WorkloadRecord>, StoreError> {
        workloads_of_clusters(
            &self.pool,
            cluster_ids,
            node_ready_timeout,
            "workloads_of_clusters",
        )
        .await
    }

    /// What a node must run: its assignment generation and its workloads that are not being
    /// removed. `None` for an unknown node.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn node_assignment(&self, node_id: NodeId) -> Result<Option<Assignment>, StoreError> {
        // One snapshot, so that the generation matches the set.
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(query_error("node_assignment_isolation"))?;
        let generation = sqlx::query_scalar!(
            "SELECT workload_generation FROM nodes WHERE id = $1",
            node_id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("node_assignment_generation"))?;
        let Some(generation) = generation else {
            return Ok(None);
        };
        let rows = sqlx::query_as!(
            WorkloadRow,
            r#"SELECT w.id, w.cluster_id, w.node_id, n.name AS node_name, n.address, n.fault_domain,
                 (now() - n.last_heartbeat_at) < make_interval(secs => $2) AS "node_ready!",
                 w.name, w.role, w.ordinal, w.spec AS "spec: Json<WorkloadConfig>", w.removing,
                 (w.removing AND w.removed_generation IS NOT NULL
                  AND n.applied_generation >= w.removed_generation
                  AND w.observed_state = 'Absent') AS "gone!",
                 w.observed_state, w.observed_restarts
               FROM workloads w JOIN nodes n ON n.id = w.node_id
               WHERE w.node_id = $1 AND NOT w.removing ORDER BY w.name"#,
            node_id.into_uuid(),
            3600.0_f64
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("node_assignment"))?;
        let access = sqlx::query!(
            r#"SELECT c.id, c.workspace_id, c.credential, c.kind,
                      c.quorum_ca_trust,
                      c.spec AS "spec: Json<ClusterSpec>",
                      c.kafka_ca_cert, c.kafka_ca_key, c.kafka_admin_password, c.os_uid, w.os_gid,
                      c.kafka_ca_trust
                 FROM clusters c JOIN workspaces w ON w.id = c.workspace_id
             WHERE c.id IN (SELECT cluster_id FROM workloads WHERE node_id = $1 AND NOT removing)"#,
            node_id.into_uuid()
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("node_assignment_access"))?;
        let tls = sqlx::query!(
            r#"SELECT id, tls_cert, tls_key, kafka_cert, kafka_key,
                      (tls_cert IS NOT NULL AND (tls_renew_at IS NULL OR tls_renew_at <= now()))
                        AS "tls_due!",
                      (kafka_cert IS NOT NULL AND (kafka_renew_at IS NULL OR kafka_renew_at <= now()))
                        AS "kafka_tls_due!"
                 FROM workloads
               WHERE node_id = $1 AND NOT removing"#,
            node_id.into_uuid()
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("node_assignment_tls"))?;
        tx.commit().await.map_err(query_error("commit"))?;
        let workloads = rows
            .into_iter()
            .map(WorkloadRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let quorum_ca = access
            .iter()
            .filter_map(|row| Some((ClusterId::from_uuid(row.id), row.quorum_ca_trust.clone()?)))
            .collect();
        let kafka = access
            .iter()
            .filter(|row| row.kind == "kafka")
            .map(|row| {
                let secrets = match (
                    row.kafka_ca_cert.clone(),
                    row.kafka_ca_trust.clone(),
                    row.kafka_ca_key.clone(),
                    row.kafka_admin_password.clone(),
                ) {
                    (Some(ca_cert), Some(ca_trust), Some(ca_key), Some(password)) => {
                        Some(KafkaClientSecrets {
                            ca_cert,
                            ca_trust,
                            ca_key: Secret::new(ca_key),
                            admin_password: Secret::new(password),
                        })
                    }
                    _ => None,
                };
                let id = ClusterId::from_uuid(row.id);
                (id, (row.spec.0.security.clone(), secrets))
            })
            .collect();
        let pair =
            |cert: &Option<String>, key: &Option<String>| Some((cert.clone()?, key.clone()?));
        Ok(Some(Assignment {
            generation: to_u64(generation, "nodes.workload_generation")?,
            workloads,
            tls: tls
                .iter()
                .filter_map(|row| {
                    Some((
                        WorkloadId::from_uuid(row.id),
                        pair(&row.tls_cert, &row.tls_key)?,
                    ))
                })
                .collect(),
            kafka_tls: tls
                .iter()
                .filter_map(|row| {
                    Some((
                        WorkloadId::from_uuid(row.id),
                        pair(&row.kafka_cert, &row.kafka_key)?,
                    ))
                })
                .collect(),
            tls_due: tls
                .iter()
                .filter(|row| row.tls_due)
                .map(|row| WorkloadId::from_uuid(row.id))
                .collect(),
            kafka_tls_due: tls
                .iter()
                .filter(|row| row.kafka_tls_due)
                .map(|row| WorkloadId::from_uuid(row.id))
                .collect(),
            kafka,
            quorum_ca,
            access: access
                .into_iter()
                .map(|row| {
                    let access = ClusterAccess {
                        workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                        credential: Secret::new(row.credential),
                        os_uid: os_id(row.os_uid, "clusters.os_uid")?,
                        workspace_gid: os_id(row.os_gid, "workspaces.os_gid")?,
                    };
                    Ok((ClusterId::from_uuid(row.id), access))
                })
                .collect::<Result<_, StoreError>>()?,
        }))
    }

    /// A cluster's quorum certificate authority (certificate and key): the stored one, or
    /// `candidate`, stored, when it has none yet (control planes racing agree on one).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn quorum_ca(
        &self,
        cluster_id: ClusterId,
        candidate: (String, String),
    ) -> Result<(String, String), StoreError> {
        let read = || {
            sqlx::query!(
                "SELECT quorum_ca_cert, quorum_ca_key FROM clusters WHERE id = $1",
                cluster_id.into_uuid()
            )
        };
        let row = read()
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("quorum_ca"))?;
        if let (Some(cert), Some(key)) = (row.quorum_ca_cert, row.quorum_ca_key) {
            return Ok((cert, key));
        }
        let (cert, key) = candidate;
        sqlx::query!(
            "UPDATE clusters SET quorum_ca_cert = $2, quorum_ca_key = $3
             WHERE id = $1 AND quorum_ca_cert IS NULL",
            cluster_id.into_uuid(),
            cert,
            key
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("quorum_ca_set"))?;
        let row = read()
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("quorum_ca"))?;
        match (row.quorum_ca_cert, row.quorum_ca_key) {
            (Some(cert), Some(key)) => Ok((cert, key)),
            _ => Err(StoreError::Corrupt {
                column: "clusters.quorum_ca_cert",
                value: "NULL after storing a CA".into(),
            }),
        }
    }

    /// Stores a workload's quorum certificate and key, unless another control plane stored one
    /// since `issued.replacing` was read.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workload_tls_issue(
        &self,
        id: WorkloadId,
        issued: &IssuedCertificate<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE workloads w SET tls_cert = $2, tls_key = $3,
                 tls_renew_at = CASE
                   WHEN (SELECT c.quorum_ca_cert FROM clusters c WHERE c.id = w.cluster_id) = $6
                   THEN $4 ELSE to_timestamp(0) END
             WHERE w.id = $1 AND w.tls_cert IS NOT DISTINCT FROM $5",
            id.into_uuid(),
            issued.cert,
            issued.key,
            issued.renew_at,
            issued.replacing,
            issued.signer
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("workload_tls_set"))?;
        Ok(())
    }

    /// Makes every certificate of `cluster`'s broker workloads due for renewal now (an
    /// operator's rotation); how many workloads have one. Due since the epoch, not since now:
    /// during an authority rotation a certificate counts as the new authority's once its
    /// renewal time is past the rotation's, which only issuing it again does.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_certificates_due(&self, cluster: ClusterId) -> Result<u64, StoreError> {
        let done = sqlx::query!(
            "UPDATE workloads SET tls_renew_at = to_timestamp(0), kafka_renew_at = to_timestamp(0)
             WHERE cluster_id = $1 AND NOT removing
               AND (tls_cert IS NOT NULL OR kafka_cert IS NOT NULL)",
            cluster.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("cluster_certificates_due"))?;
        Ok(done.rows_affected())
    }

    /// Places workloads: under a fleet-wide lock, reads the fleet, lets `choose` (pure) decide,
    /// and inserts its workloads with their ports, bumping each affected node's generation. The
    /// fleet is the cluster's own nodes when `own_nodes` (Kubernetes pods enrolled for it), else
    /// the nodes that belong to no cluster.
    ///
    /// # Errors
    /// [`StoreError::Query`]; `choose`'s error is returned inside `Ok(Err(..))`.
    pub async fn workloads_place<E>(
        &self,
        cluster_id: ClusterId,
        own_nodes: bool,
        node_ready_timeout: Duration,
        choose: impl FnOnce(&FleetSnapshot) -> Result<Vec<NewWorkload>, E>,
    ) -> Result<Result<Vec<NewWorkload>, E>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('hdi.placement'))")
            .execute(&mut *tx)
            .await
            .map_err(query_error("placement_lock"))?;
        let nodes = sqlx::query!(
            r#"SELECT n.id, n.name, n.address, n.fault_domain,
                 (now() - n.last_heartbeat_at) < make_interval(secs => $1) AS "ready!",
                 n.cpu_millis, n.memory_bytes,
                 COALESCE((SELECT sum(cpu_millis) FROM workloads w WHERE w.node_id = n.id), 0)::bigint
                   AS "reserved_cpu!",
                 COALESCE((SELECT sum(memory_bytes) FROM workloads w WHERE w.node_id = n.id), 0)::bigint
                   AS "reserved_memory!"
               FROM nodes n WHERE n.cluster_id IS NOT DISTINCT FROM $2 ORDER BY n.name"#,
            node_ready_timeout.as_secs_f64(),
            own_nodes.then_some(cluster_id.into_uuid())
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error("placement_nodes"))?;
        let placed = sqlx::query!("SELECT node_id, cluster_id, role FROM workloads")
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error("placement_workloads"))?;
        let ports = sqlx::query!("SELECT address, port FROM ports")
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error("placement_ports"))?;
        let mut snapshot = FleetSnapshot {
            cluster_workloads: workloads_of_clusters(
                &mut *tx,
                &[cluster_id],
                node_ready_timeout,
                "placement_cluster_workloads",
            )
            .await?,
            ..FleetSnapshot::default()
        };
        for node in nodes {
            snapshot.nodes.push(FleetNode {
                id: NodeId::from_uuid(node.id),
                fault_domain: u32::try_from(node.fault_domain).unwrap_or(0),
                ready: node.ready,
                cpu_millis: to_u64(node.cpu_millis, "nodes.cpu_millis")?,
                memory_bytes: to_u64(node.memory_bytes, "nodes.memory_bytes")?,
                reserved_cpu_millis: to_u64(node.reserved_cpu, "workloads.cpu_millis")?,
                reserved_memory_bytes: to_u64(node.reserved_memory, "workloads.memory_bytes")?,
                workloads: placed
                    .iter()
                    .filter(|placed| placed.node_id == node.id)
                    .filter_map(|placed| {
                        Some((
                            ClusterId::from_uuid(placed.cluster_id),
                            WorkloadRole::parse(&placed.role)?,
                        ))
                    })
                    .collect(),
                name: node.name,
                address: node.address,
            });
        }
        for taken in ports {
            if let Ok(port) = u16::try_from(taken.port) {
                snapshot
                    .taken_ports
                    .entry(taken.address)
                    .or_default()
                    .insert(port);
            }
        }
        let chosen = match choose(&snapshot) {
            Ok(chosen) => chosen,
            Err(error) => return Ok(Err(error)),
        };
        for workload in &chosen {
            let id = Uuid::new_v4();
            sqlx::query!(
                "INSERT INTO workloads (id, cluster_id, node_id, name, role, ordinal, spec, cpu_millis, memory_bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                id,
                cluster_id.into_uuid(),
                workload.node_id.into_uuid(),
                workload.name,
                workload.role.as_str(),
                i32::try_from(workload.ordinal).unwrap_or(i32::MAX),
                Json(&workload.config) as _,
                i64_of(workload.cpu_millis),
                i64_of(workload.memory_bytes)
            )
            .execute(&mut *tx)
            .await
            .map_err(query_error("workload_insert"))?;
            for port in &workload.ports {
                sqlx::query!(
                    "INSERT INTO ports (address, port, workload_id) \
                     SELECT address, $2, $3 FROM nodes WHERE id = $1",
                    workload.node_id.into_uuid(),
                    i32::from(*port),
                    id
                )
                .execute(&mut *tx)
                .await
                .map_err(query_error("port_insert"))?;
            }
            sqlx::query!(
                "UPDATE nodes SET workload_generation = workload_generation + 1 WHERE id = $1",
                workload.node_id.into_uuid()
            )
            .execute(&mut *tx)
            .await
            .map_err(query_error("node_generation"))?;
        }
        tx.commit().await.map_err(query_error("commit"))?;
        Ok(Ok(chosen))
    }

    /// Marks a workload for removal: its node's next assignment leaves it out.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workload_remove(&self, id: WorkloadId) -> Result<(), StoreError> {
        sqlx::query!(
            "WITH bumped AS (UPDATE nodes SET workload_generation = workload_generation + 1 \
                             WHERE id = (SELECT node_id FROM workloads WHERE id = $1 AND NOT removing) \
                             RETURNING workload_generation) \
             UPDATE workloads SET removing = true, removed_generation = (SELECT workload_generation FROM bumped) \
             WHERE id = $1 AND NOT removing",
            id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("workload_remove"))?;
        Ok(())
    }

    /// Deletes the row of a workload its agent has stopped and cleaned up (ports go with it).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workload_forget(&self, id: WorkloadId) -> Result<(), StoreError> {
        sqlx::query!(
            "DELETE FROM workloads WHERE id = $1 AND removing",
            id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("workload_forget"))?;
        Ok(())
    }

    /// Records what an agent reports: the generation it applied and the state of each workload
    /// it runs; workloads of the node it does not mention are `Absent`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn node_report_workloads(
        &self,
        node_id: NodeId,
        applied_generation: u64,
        reports: &[ReportedWorkload],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        sqlx::query!(
            "UPDATE nodes SET applied_generation = GREATEST(applied_generation, LEAST($2, workload_generation)) WHERE id = $1",
            node_id.into_uuid(),
            i64_of(applied_generation)
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("node_applied_generation"))?;
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        let states: Vec<&str> = reports.iter().map(|r| r.state.as_str()).collect();
        let pids: Vec<Option<i64>> = reports.iter().map(|r| r.pid.map(i64::from)).collect();
        let restarts: Vec<i64> = reports.iter().map(|r| i64::from(r.restarts)).collect();
        let exits: Vec<Option<&str>> = reports.iter().map(|r| r.last_exit.as_deref()).collect();
        sqlx::query!(
            "UPDATE workloads w SET observed_state = r.state, observed_pid = r.pid, \
               observed_restarts = r.restarts, observed_last_exit = r.last_exit, observed_at = now() \
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
               AS r(name, state, pid, restarts, last_exit) \
             WHERE w.node_id = $1 AND w.name = r.name",
            node_id.into_uuid(),
            &names as &[&str],
            &states as &[&str],
            &pids as &[Option<i64>],
            &restarts,
            &exits as &[Option<&str>]
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("workload_report"))?;
        sqlx::query!(
            "UPDATE workloads SET observed_state = 'Absent', observed_pid = NULL, observed_at = now() \
             WHERE node_id = $1 AND NOT (name = ANY($2::text[]))",
            node_id.into_uuid(),
            &names as &[&str]
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("workload_absent"))?;
        tx.commit().await.map_err(query_error("commit"))?;
        Ok(())
    }
}
