//! Rows of `replication_links` (geo-replication pairs: desired state of a cluster link on the
//! target cluster) and the operations that move a link between states.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{NewOperation, Store, StoreError, to_u64};
use crate::model::{
    ClusterId, LinkFilters, LinkState, OperationId, ReplicationLinkId, ReplicationLinkRecord,
    WorkspaceId,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

struct LinkRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    source_cluster_id: Uuid,
    source_cluster: String,
    target_cluster_id: Uuid,
    target_cluster: String,
    topics: Json<Vec<String>>,
    topics_exclude: Json<Vec<String>>,
    groups: Json<Vec<String>>,
    groups_exclude: Json<Vec<String>>,
    sync_configs: bool,
    state: String,
    reversed: bool,
    source_user: Option<String>,
    generation: i64,
    applied_generation: i64,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `sqlx::query_as!` of [`LinkRow`] with its one column list; the tail and arguments follow.
macro_rules! select_links {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            LinkRow,
            r#"SELECT l.id, l.workspace_id, l.name, l.source_cluster_id, s.name AS source_cluster,
                 l.target_cluster_id, t.name AS target_cluster,
                 l.topics AS "topics: Json<Vec<String>>",
                 l.topics_exclude AS "topics_exclude: Json<Vec<String>>",
                 l.groups AS "groups: Json<Vec<String>>",
                 l.groups_exclude AS "groups_exclude: Json<Vec<String>>",
                 l.sync_configs, l.state, l.reversed, l.source_user, l.generation,
                 l.applied_generation, l.created_by, l.created_at, l.updated_at
               FROM replication_links l
               JOIN clusters s ON s.id = l.source_cluster_id
               JOIN clusters t ON t.id = l.target_cluster_id "# + $tail
            $(, $arg)*
        )
    };
}

impl TryFrom<LinkRow> for ReplicationLinkRecord {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<ReplicationLinkRecord, StoreError> {
        Ok(ReplicationLinkRecord {
            id: ReplicationLinkId::from_uuid(row.id),
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            name: row.name,
            source_cluster_id: ClusterId::from_uuid(row.source_cluster_id),
            source_cluster: row.source_cluster,
            target_cluster_id: ClusterId::from_uuid(row.target_cluster_id),
            target_cluster: row.target_cluster,
            filters: LinkFilters {
                topics: row.topics.0,
                topics_exclude: row.topics_exclude.0,
                groups: row.groups.0,
                groups_exclude: row.groups_exclude.0,
            },
            sync_configs: row.sync_configs,
            state: LinkState::parse(&row.state).ok_or_else(|| StoreError::Corrupt {
                column: "replication_links.state",
                value: row.state.clone(),
            })?,
            reversed: row.reversed,
            source_user: row.source_user,
            generation: to_u64(row.generation, "replication_links.generation")?,
            applied_generation: to_u64(
                row.applied_generation,
                "replication_links.applied_generation",
            )?,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// What [`Store::link_transition`] did.
#[derive(Debug)]
pub enum LinkTransition {
    /// The state changed and the operation started.
    Started(Box<crate::model::OperationRecord>),
    /// The link was not in one of the expected states (it is in this one).
    WrongState(LinkState),
    /// Another operation of the link is running.
    Busy(Box<crate::model::OperationRecord>),
    /// No such link.
    Gone,
}

/// A new link.
#[derive(Clone, Debug)]
pub struct NewLink<'a> {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Name.
    pub name: &'a str,
    /// Source cluster.
    pub source: ClusterId,
    /// Target cluster.
    pub target: ClusterId,
    /// Filters.
    pub filters: &'a LinkFilters,
    /// The Kafka user to make on a secured source.
    pub source_user: Option<&'a str>,
    /// Who asks.
    pub created_by: &'a str,
}

impl Store {
    /// Inserts a link.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the workspace has a link of that name, else
    /// [`StoreError::Query`].
    pub async fn link_insert(
        &self,
        link: &NewLink<'_>,
    ) -> Result<ReplicationLinkRecord, StoreError> {
        let inserted = sqlx::query!(
            "INSERT INTO replication_links (id, workspace_id, name, source_cluster_id, \
             target_cluster_id, topics, topics_exclude, groups, groups_exclude, source_user, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            Uuid::new_v4(),
            link.workspace_id.into_uuid(),
            link.name,
            link.source.into_uuid(),
            link.target.into_uuid(),
            Json(&link.filters.topics) as _,
            Json(&link.filters.topics_exclude) as _,
            Json(&link.filters.groups) as _,
            Json(&link.filters.groups_exclude) as _,
            link.source_user,
            link.created_by
        )
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Conflict {
                    what: format!("replication link {:?}", link.name),
                });
            }
            Err(source) => {
                return Err(StoreError::Query {
                    context: "link_insert",
                    source,
                });
            }
        }
        self.link_get(link.workspace_id, link.name)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "replication_links.name",
                value: link.name.to_owned(),
            })
    }

    /// A link by name.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn link_get(
        &self,
        workspace_id: WorkspaceId,
        name: &str,
    ) -> Result<Option<ReplicationLinkRecord>, StoreError> {
        let row = select_links!(
            "WHERE l.workspace_id = $1 AND l.name = $2",
            workspace_id.into_uuid(),
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("link_get"))?;
        row.map(ReplicationLinkRecord::try_from).transpose()
    }

    /// A link by id.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn link_get_by_id(
        &self,
        id: ReplicationLinkId,
    ) -> Result<Option<ReplicationLinkRecord>, StoreError> {
        let row = select_links!("WHERE l.id = $1", id.into_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("link_get_by_id"))?;
        row.map(ReplicationLinkRecord::try_from).transpose()
    }

    /// Up to `limit` links of a workspace by name, after `after`.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn links_list(
        &self,
        workspace_id: WorkspaceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReplicationLinkRecord>, StoreError> {
        let rows = select_links!(
            "WHERE l.workspace_id = $1 AND ($2::text IS NULL OR l.name > $2) ORDER BY l.name LIMIT $3",
            workspace_id.into_uuid(),
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("links_list"))?;
        rows.into_iter()
            .map(ReplicationLinkRecord::try_from)
            .collect()
    }

    /// Leases up to `limit` links for `owner` for `lease` (those unleased, already its own, or
    /// whose lease ran out): their ids.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn links_claim(
        &self,
        owner: Uuid,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<ReplicationLinkId>, StoreError> {
        let ids = sqlx::query_scalar!(
            "UPDATE replication_links SET lease_owner = $1, \
             lease_until = now() + make_interval(secs => $2) \
             WHERE id IN (SELECT id FROM replication_links \
                          WHERE lease_owner IS NULL OR lease_owner = $1 OR lease_until < now() \
                          ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
            owner,
            lease.as_secs_f64(),
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("links_claim"))?;
        Ok(ids.into_iter().map(ReplicationLinkId::from_uuid).collect())
    }

    /// Gives up `owner`'s leases of links (at shutdown).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn links_release(&self, owner: Uuid) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE replication_links SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1",
            owner
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("links_release"))?;
        Ok(())
    }

    /// The links whose source or target is `cluster_id`.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn links_of_cluster(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Vec<ReplicationLinkRecord>, StoreError> {
        let rows = select_links!(
            "WHERE l.source_cluster_id = $1 OR l.target_cluster_id = $1 ORDER BY l.name",
            cluster_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("links_of_cluster"))?;
        rows.into_iter()
            .map(ReplicationLinkRecord::try_from)
            .collect()
    }

    /// Replaces a link's filters (bumping its generation); false when there is no such link.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn link_update_filters(
        &self,
        id: ReplicationLinkId,
        filters: &LinkFilters,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query!(
            "UPDATE replication_links SET topics = $2, topics_exclude = $3, groups = $4, \
             groups_exclude = $5, generation = generation + 1, updated_at = now() WHERE id = $1",
            id.into_uuid(),
            Json(&filters.topics) as _,
            Json(&filters.topics_exclude) as _,
            Json(&filters.groups) as _,
            Json(&filters.groups_exclude) as _
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("link_update_filters"))?;
        Ok(updated.rows_affected() == 1)
    }

    /// Moves a link from one of `from` to `to` and starts `operation` on the link's target
    /// cluster, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn link_transition(
        &self,
        id: ReplicationLinkId,
        from: &[LinkState],
        to: LinkState,
        operation: &NewOperation,
    ) -> Result<LinkTransition, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        let locked = sqlx::query!(
            "SELECT l.state, l.workspace_id, l.name, l.target_cluster_id, l.generation, \
             c.name AS cluster_name FROM replication_links l \
             JOIN clusters c ON c.id = l.target_cluster_id WHERE l.id = $1 FOR UPDATE OF l",
            id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("link_lock"))?;
        let Some(locked) = locked else {
            return Ok(LinkTransition::Gone);
        };
        let running = sqlx::query_scalar!(
            "SELECT id FROM operations WHERE link_id = $1 AND state = 'Running'",
            id.into_uuid()
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_error("link_operation_running"))?;
        if let Some(running) = running {
            drop(tx);
            let op = self
                .operation_get(OperationId::from_uuid(running))
                .await?
                .ok_or(StoreError::Corrupt {
                    column: "operations.id",
                    value: running.to_string(),
                })?;
            return Ok(LinkTransition::Busy(Box::new(op)));
        }
        let current = LinkState::parse(&locked.state).ok_or_else(|| StoreError::Corrupt {
            column: "replication_links.state",
            value: locked.state.clone(),
        })?;
        if !from.contains(&current) {
            return Ok(LinkTransition::WrongState(current));
        }
        sqlx::query!(
            "UPDATE replication_links SET state = $2, generation = generation + 1, \
             updated_at = now() WHERE id = $1",
            id.into_uuid(),
            to.as_str()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("link_transition"))?;
        sqlx::query!(
            "INSERT INTO operations (id, workspace_id, cluster_id, cluster_name, kind, \
             target_generation, created_by, link_id, link_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            operation.id.into_uuid(),
            locked.workspace_id,
            locked.target_cluster_id,
            locked.cluster_name,
            operation.kind.as_str(),
            locked.generation + 1,
            operation.created_by,
            id.into_uuid(),
            locked.name
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("link_operation_insert"))?;
        tx.commit().await.map_err(query_error("commit"))?;
        let op = self
            .operation_get(operation.id)
            .await?
            .ok_or(StoreError::Corrupt {
                column: "operations.id",
                value: operation.id.to_string(),
            })?;
        Ok(LinkTransition::Started(Box::new(op)))
    }

    /// Sets a link's state (the link reconciler, when an operation ends), bumping the generation.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn link_set_state(
        &self,
        id: ReplicationLinkId,
        state: LinkState,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE replication_links SET state = $2, generation = generation + 1, \
             updated_at = now() WHERE id = $1",
            id.into_uuid(),
            state.as_str()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("link_set_state"))?;
        Ok(())
    }

    /// Records that the target holds `generation` of the link.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn link_applied(
        &self,
        id: ReplicationLinkId,
        generation: u64,
    ) -> Result<(), StoreError> {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        sqlx::query!(
            "UPDATE replication_links SET applied_generation = GREATEST(applied_generation, $2) \
             WHERE id = $1",
            id.into_uuid(),
            generation
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("link_applied"))?;
        Ok(())
    }

    /// Ends a reverse: the old target is the source from now on, the old source the target
    /// (whose link mirrors the literal `topics`), mirroring, read as `source_user` on the new
    /// source.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn link_reverse_swap(
        &self,
        id: ReplicationLinkId,
        topics: &[String],
        source_user: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE replication_links SET source_cluster_id = target_cluster_id, \
             target_cluster_id = source_cluster_id, topics = $2, topics_exclude = '[]', \
             state = 'mirroring', reversed = true, source_user = $3, \
             generation = generation + 1, applied_generation = 0, updated_at = now() \
             WHERE id = $1",
            id.into_uuid(),
            Json(topics) as _,
            source_user
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("link_reverse_swap"))?;
        Ok(())
    }

    /// Deletes a link; false when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn link_delete(&self, id: ReplicationLinkId) -> Result<bool, StoreError> {
        let deleted = sqlx::query!(
            "DELETE FROM replication_links WHERE id = $1",
            id.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("link_delete"))?;
        Ok(deleted.rows_affected() == 1)
    }

    /// The fault domains of the nodes a cluster's workloads are placed on (not those being
    /// removed), sorted.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn cluster_fault_domains(
        &self,
        cluster_id: ClusterId,
    ) -> Result<Vec<u32>, StoreError> {
        let domains = sqlx::query_scalar!(
            "SELECT DISTINCT n.fault_domain FROM workloads w JOIN nodes n ON n.id = w.node_id \
             WHERE w.cluster_id = $1 AND NOT w.removing ORDER BY n.fault_domain",
            cluster_id.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("cluster_fault_domains"))?;
        Ok(domains
            .into_iter()
            .filter_map(|d| u32::try_from(d).ok())
            .collect())
    }
}
