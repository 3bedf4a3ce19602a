//! Rows of the `nodes` table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, to_i64, to_u64};
use crate::model::{Capacity, ClusterId, NodeId, NodeRecord, NodeSpec};

struct NodeRow {
    id: Uuid,
    name: String,
    fault_domain: i32,
    address: String,
    agent_version: String,
    cpu_millis: i64,
    memory_bytes: i64,
    disk_bytes: i64,
    registered_at: DateTime<Utc>,
    last_heartbeat_at: DateTime<Utc>,
    heartbeat_age_seconds: f64,
    incarnation: i64,
}

/// `sqlx::query_as!` of [`NodeRow`] with its one column list; the tail (`WHERE …`) and the
/// arguments follow.
macro_rules! select_nodes {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            NodeRow,
            r#"SELECT id, name, fault_domain, address, agent_version, cpu_millis, memory_bytes, disk_bytes,
                 registered_at, last_heartbeat_at,
                 GREATEST(EXTRACT(EPOCH FROM now() - last_heartbeat_at), 0)::float8 AS "heartbeat_age_seconds!",
                 incarnation
               FROM nodes "# + $tail
            $(, $arg)*
        )
    };
}

impl TryFrom<NodeRow> for NodeRecord {
    type Error = StoreError;

    fn try_from(row: NodeRow) -> Result<NodeRecord, StoreError> {
        let fault_domain = u32::try_from(row.fault_domain).map_err(|_| StoreError::Corrupt {
            column: "nodes.fault_domain",
            value: row.fault_domain.to_string(),
        })?;
        Ok(NodeRecord {
            id: NodeId::from_uuid(row.id),
            spec: NodeSpec {
                name: row.name,
                fault_domain,
                address: row.address,
                agent_version: row.agent_version,
                capacity: Capacity {
                    cpu_millis: to_u64(row.cpu_millis, "nodes.cpu_millis")?,
                    memory_bytes: to_u64(row.memory_bytes, "nodes.memory_bytes")?,
                    disk_bytes: to_u64(row.disk_bytes, "nodes.disk_bytes")?,
                },
            },
            registered_at: row.registered_at,
            last_heartbeat_at: row.last_heartbeat_at,
            heartbeat_age: Duration::from_secs_f64(row.heartbeat_age_seconds.max(0.0)),
            incarnation: to_u64(row.incarnation, "nodes.incarnation")?,
        })
    }
}

impl Store {
    /// Inserts a node or, for a known id, replaces its spec and counts a new incarnation; either way
    /// the registration counts as a heartbeat. The node belongs to the cluster its credential was
    /// enrolled for (none: the shared fleet).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another node already has the name.
    pub async fn node_upsert(&self, id: NodeId, spec: &NodeSpec) -> Result<NodeRecord, StoreError> {
        let fault_domain = i32::try_from(spec.fault_domain).map_err(|_| StoreError::Corrupt {
            column: "nodes.fault_domain",
            value: spec.fault_domain.to_string(),
        })?;
        let row = sqlx::query_as!(
            NodeRow,
            r#"INSERT INTO nodes (id, name, fault_domain, address, agent_version, cpu_millis, memory_bytes, disk_bytes, cluster_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 (SELECT cluster_id FROM node_credentials WHERE node_id = $1))
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, fault_domain = EXCLUDED.fault_domain,
                 cluster_id = EXCLUDED.cluster_id,
                 address = EXCLUDED.address, agent_version = EXCLUDED.agent_version,
                 cpu_millis = EXCLUDED.cpu_millis, memory_bytes = EXCLUDED.memory_bytes,
                 disk_bytes = EXCLUDED.disk_bytes, last_heartbeat_at = now(),
                 incarnation = nodes.incarnation + 1
               RETURNING id, name, fault_domain, address, agent_version, cpu_millis, memory_bytes, disk_bytes,
                 registered_at, last_heartbeat_at,
                 GREATEST(EXTRACT(EPOCH FROM now() - last_heartbeat_at), 0)::float8 AS "heartbeat_age_seconds!",
                 incarnation"#,
            id.into_uuid(),
            spec.name,
            fault_domain,
            spec.address,
            spec.agent_version,
            to_i64(spec.capacity.cpu_millis, "nodes.cpu_millis")?,
            to_i64(spec.capacity.memory_bytes, "nodes.memory_bytes")?,
            to_i64(spec.capacity.disk_bytes, "nodes.disk_bytes")?,
        )
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => row.try_into(),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::Conflict {
                    what: format!("node name {:?}", spec.name),
                })
            }
            Err(source) => Err(StoreError::Query {
                context: "node_upsert",
                source,
            }),
        }
    }

    /// Records a heartbeat and the node's current capacity. Returns `false` for an unknown node.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn node_heartbeat(
        &self,
        id: NodeId,
        capacity: &Capacity,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query!(
            "UPDATE nodes SET last_heartbeat_at = now(), cpu_millis = $2, memory_bytes = $3, disk_bytes = $4 \
             WHERE id = $1",
            id.into_uuid(),
            to_i64(capacity.cpu_millis, "nodes.cpu_millis")?,
            to_i64(capacity.memory_bytes, "nodes.memory_bytes")?,
            to_i64(capacity.disk_bytes, "nodes.disk_bytes")?,
        )
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query { context: "node_heartbeat", source })?;
        Ok(result.rows_affected() == 1)
    }

    /// One node by id.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn node_get(&self, id: NodeId) -> Result<Option<NodeRecord>, StoreError> {
        let row = select_nodes!("WHERE id = $1", id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                context: "node_get",
                source,
            })?;
        row.map(NodeRecord::try_from).transpose()
    }

    /// Up to `limit` nodes ordered by name, starting after the name `after` when given.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn nodes_list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = select_nodes!(
            "WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2",
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "nodes_list",
            source,
        })?;
        rows.into_iter().map(NodeRecord::try_from).collect()
    }
}

impl Store {
    /// Stores the digest of node `id`'s agent credential unless it has one; whether it was
    /// stored.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn node_credential_insert(
        &self,
        id: NodeId,
        digest: &[u8],
        cluster: Option<ClusterId>,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query!(
            "INSERT INTO node_credentials (node_id, digest, cluster_id) VALUES ($1, $2, $3)
             ON CONFLICT (node_id) DO NOTHING",
            id.into_uuid(),
            digest,
            cluster.map(ClusterId::into_uuid)
        )
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "node_credential_insert",
            source,
        })?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Sets `cluster`'s enrolment token (its digest): agents presenting it enrol as nodes of that
    /// cluster only. Replaces the previous one.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_enrolment_token_set(
        &self,
        cluster: ClusterId,
        digest: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO cluster_enrolment_tokens (cluster_id, digest) VALUES ($1, $2)
             ON CONFLICT (cluster_id) DO UPDATE SET digest = EXCLUDED.digest, created_at = now()",
            cluster.into_uuid(),
            digest
        )
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "cluster_enrolment_token_set",
            source,
        })?;
        Ok(())
    }

    /// The cluster whose enrolment token has `digest`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_by_enrolment_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<ClusterId>, StoreError> {
        let id = sqlx::query_scalar!(
            "SELECT cluster_id FROM cluster_enrolment_tokens WHERE digest = $1",
            digest
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "cluster_by_enrolment_token",
            source,
        })?;
        Ok(id.map(ClusterId::from_uuid))
    }

    /// The node whose agent credential has `digest`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn node_by_credential(&self, digest: &[u8]) -> Result<Option<NodeId>, StoreError> {
        let id = sqlx::query_scalar!(
            "SELECT node_id FROM node_credentials WHERE digest = $1",
            digest
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "node_by_credential",
            source,
        })?;
        Ok(id.map(NodeId::from_uuid))
    }

    /// Deletes node `id`'s agent credential; whether it had one.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn node_credential_delete(&self, id: NodeId) -> Result<bool, StoreError> {
        let deleted = sqlx::query!(
            "DELETE FROM node_credentials WHERE node_id = $1",
            id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            context: "node_credential_delete",
            source,
        })?;
        Ok(deleted.rows_affected() == 1)
    }
}
