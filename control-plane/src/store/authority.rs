//! Rotation of Kafka clusters' certificate authorities (`clusters.ca_rotation`,
//! `clusters.*_ca_next_*`, `clusters.*_ca_previous_cert`; the phases are migration 0014's), and
//! what clients are told of the authorities. What is trusted during a rotation is defined once,
//! as the generated columns `clusters.quorum_ca_trust` and `clusters.kafka_ca_trust` (migration
//! 0016), which every query that hands out trust reads.
//!
//! Every step is one guarded statement, so control planes racing (or one killed between steps)
//! never skip or repeat a phase: a step applies only to a cluster still in the phase it leaves.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::{AuthorityPhase, AuthorityRotationRecord, ClusterAuthorities, ClusterId};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

/// The new authorities a rotation starts with: `(certificate, key)` PEM pairs.
pub struct NextAuthorities<'a> {
    /// The quorum's.
    pub quorum: (&'a str, &'a str),
    /// The Kafka listeners' (kept only when the cluster has a Kafka CA).
    pub kafka: (&'a str, &'a str),
}

/// What asking to start a rotation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStart {
    /// Started: the new authorities are trusted from now on and sign from the given time.
    Started,
    /// A rotation is already in progress.
    InProgress,
    /// The cluster has no authority yet (no broker was ever assigned).
    NoAuthority,
}

/// What one step of [`Store::authority_rotation_advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// The new authorities sign now; this many broker certificates became due.
    Promoted(u64),
    /// Every broker certificate is the new authorities'.
    Settling,
    /// The old authorities are no longer trusted: the rotation is over.
    Finished,
}

fn rotation(
    phase: Option<String>,
    at: Option<DateTime<Utc>>,
) -> Result<Option<AuthorityRotationRecord>, StoreError> {
    match (phase, at) {
        (Some(phase), Some(at)) => Ok(Some(AuthorityRotationRecord {
            phase: AuthorityPhase::parse(&phase).ok_or(StoreError::Corrupt {
                column: "clusters.ca_rotation",
                value: phase,
            })?,
            at,
        })),
        _ => Ok(None),
    }
}

impl Store {
    /// Starts rotating a cluster's authorities: `next` is trusted from now on beside the current
    /// ones (every node of the cluster's brokers gets a new assignment generation carrying it),
    /// and signs from `signing_from` once those nodes have applied it.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn authority_rotation_start(
        &self,
        cluster_id: ClusterId,
        next: &NextAuthorities<'_>,
        signing_from: DateTime<Utc>,
    ) -> Result<RotationStart, StoreError> {
        let mut tx = self.pool.begin().await.map_err(query_error("begin"))?;
        let started = sqlx::query!(
            "UPDATE clusters SET
                ca_rotation = 'trusting', ca_rotation_at = $6,
                quorum_ca_next_cert = $2, quorum_ca_next_key = $3,
                kafka_ca_next_cert = CASE WHEN kafka_ca_cert IS NULL THEN NULL ELSE $4 END,
                kafka_ca_next_key = CASE WHEN kafka_ca_cert IS NULL THEN NULL ELSE $5 END,
                quorum_ca_previous_cert = NULL, kafka_ca_previous_cert = NULL
             WHERE id = $1 AND ca_rotation IS NULL AND quorum_ca_cert IS NOT NULL",
            cluster_id.into_uuid(),
            next.quorum.0,
            next.quorum.1,
            next.kafka.0,
            next.kafka.1,
            signing_from
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("authority_rotation_start"))?;
        if started.rows_affected() == 1 {
            // A new assignment for every node of the cluster's brokers: the switch waits until
            // each has applied it (and so holds the new trust).
            sqlx::query!(
                "UPDATE nodes SET workload_generation = workload_generation + 1
                 WHERE id IN (SELECT node_id FROM workloads WHERE cluster_id = $1 AND NOT removing)",
                cluster_id.into_uuid()
            )
            .execute(&mut *tx)
            .await
            .map_err(query_error("authority_rotation_start_nodes"))?;
            tx.commit().await.map_err(query_error("commit"))?;
            return Ok(RotationStart::Started);
        }
        drop(tx);
        let row = sqlx::query!(
            r#"SELECT ca_rotation IS NOT NULL AS "rotating!" FROM clusters WHERE id = $1"#,
            cluster_id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("authority_rotation_start_check"))?;
        Ok(match row {
            Some(row) if row.rotating => RotationStart::InProgress,
            _ => RotationStart::NoAuthority,
        })
    }

    /// Moves a cluster's rotation on by at most one phase, when its condition holds:
    /// `trusting` → `issuing` once its time has come and every node of the cluster's brokers
    /// has applied its latest assignment (which the start bumped: so each holds the new trust)
    /// (the new authorities sign, every broker certificate is due); `issuing` → `settling` once no broker certificate of the cluster
    /// predates the new authorities; `settling` → over once `settle` has passed (the nodes
    /// have fetched and loaded their new certificates), dropping the old certificates.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn authority_rotation_advance(
        &self,
        cluster_id: ClusterId,
        settle: Duration,
    ) -> Result<Option<RotationStep>, StoreError> {
        let id = cluster_id.into_uuid();
        let promoted = sqlx::query!(
            r#"WITH promoted AS (
                 UPDATE clusters SET
                   quorum_ca_previous_cert = quorum_ca_cert,
                   quorum_ca_cert = quorum_ca_next_cert, quorum_ca_key = quorum_ca_next_key,
                   kafka_ca_previous_cert =
                     CASE WHEN kafka_ca_next_cert IS NULL THEN NULL ELSE kafka_ca_cert END,
                   kafka_ca_cert = coalesce(kafka_ca_next_cert, kafka_ca_cert),
                   kafka_ca_key = coalesce(kafka_ca_next_key, kafka_ca_key),
                   quorum_ca_next_cert = NULL, quorum_ca_next_key = NULL,
                   kafka_ca_next_cert = NULL, kafka_ca_next_key = NULL,
                   ca_rotation = 'issuing', ca_rotation_at = now()
                 WHERE id = $1 AND ca_rotation = 'trusting' AND ca_rotation_at <= now()
                   AND NOT EXISTS (
                     SELECT 1 FROM workloads w JOIN nodes n ON n.id = w.node_id
                     WHERE w.cluster_id = $1 AND NOT w.removing
                       AND n.applied_generation < n.workload_generation)
                 RETURNING id),
               due AS (
                 UPDATE workloads SET
                   tls_renew_at = CASE WHEN tls_cert IS NULL THEN tls_renew_at ELSE to_timestamp(0) END,
                   kafka_renew_at = CASE WHEN kafka_cert IS NULL THEN kafka_renew_at ELSE to_timestamp(0) END
                 WHERE cluster_id IN (SELECT id FROM promoted) AND NOT removing
                   AND (tls_cert IS NOT NULL OR kafka_cert IS NOT NULL)
                 RETURNING id)
               SELECT (SELECT count(*) FROM promoted) AS "promoted!",
                      (SELECT count(*) FROM due) AS "due!""#,
            id
        )
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("authority_rotation_promote"))?;
        if promoted.promoted > 0 {
            return Ok(Some(RotationStep::Promoted(
                u64::try_from(promoted.due).unwrap_or(0),
            )));
        }
        let settling = sqlx::query!(
            "UPDATE clusters c SET ca_rotation = 'settling', ca_rotation_at = now()
             WHERE c.id = $1 AND c.ca_rotation = 'issuing' AND NOT EXISTS (
               SELECT 1 FROM workloads w
               WHERE w.cluster_id = c.id AND NOT w.removing AND (
                 (w.tls_cert IS NOT NULL
                  AND (w.tls_renew_at IS NULL OR w.tls_renew_at <= c.ca_rotation_at))
                 OR (w.kafka_cert IS NOT NULL
                  AND (w.kafka_renew_at IS NULL OR w.kafka_renew_at <= c.ca_rotation_at))))",
            id
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("authority_rotation_settle"))?;
        if settling.rows_affected() > 0 {
            return Ok(Some(RotationStep::Settling));
        }
        let finished = sqlx::query!(
            "UPDATE clusters SET ca_rotation = NULL, ca_rotation_at = NULL,
                quorum_ca_previous_cert = NULL, kafka_ca_previous_cert = NULL
             WHERE id = $1 AND ca_rotation = 'settling'
               AND ca_rotation_at <= now() - make_interval(secs => $2)",
            id,
            settle.as_secs_f64()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("authority_rotation_finish"))?;
        Ok((finished.rows_affected() > 0).then_some(RotationStep::Finished))
    }

    /// What clients are told of the authorities of those of `ids` that have any: the Kafka CA
    /// certificates to trust and a rotation in progress.
    ///
    /// # Errors
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    pub async fn cluster_authorities(
        &self,
        ids: &[ClusterId],
    ) -> Result<HashMap<ClusterId, ClusterAuthorities>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.into_uuid()).collect();
        let rows = sqlx::query!(
            r#"SELECT id,
                      kafka_ca_trust AS kafka_trust,
                      ca_rotation, ca_rotation_at
                 FROM clusters
               WHERE id = ANY($1) AND (kafka_ca_cert IS NOT NULL OR ca_rotation IS NOT NULL)"#,
            &ids
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("cluster_authorities"))?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    ClusterId::from_uuid(row.id),
                    ClusterAuthorities {
                        kafka_trust: row.kafka_trust,
                        rotation: rotation(row.ca_rotation, row.ca_rotation_at)?,
                    },
                ))
            })
            .collect()
    }
}
