//! Request handlers, one module per API family. Each takes the decoded `kafka-protocol` request
//! and returns its response; Kafka wire types do not travel past this module (the state modules
//! take and return plain Rust types).

mod admin;
mod cluster_admin;
mod fetch;
mod fetch_session;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod producer;
mod quotas;
mod security;
mod txn;

pub use security::{sasl_authenticate_response, sasl_handshake_response};

use std::net::SocketAddr;

use hdi_kafka_client::codes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::security::acl::{self, Operation, ResourceType};
use crate::security::quota;

/// What a handler knows about the request besides its body.
pub struct Context<'a> {
    /// The broker.
    pub broker: &'a Broker,
    /// The request's API version.
    pub version: i16,
    /// The client id from the header.
    pub client_id: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's principal (`User:<name>`, `User:ANONYMOUS` without authentication).
    pub principal: String,
    /// The name of the listener the client came in on (`PLAINTEXT`, `SASL_SSL`...).
    pub listener: &'static str,
    /// How long the connection reads nothing more after this answer (a quota's throttle, ms).
    pub throttle_ms: std::sync::atomic::AtomicU64,
}

impl Context<'_> {
    /// Whether the client may do `operation` on a resource (always, without `--authorizer`, and
    /// for super users).
    pub fn allowed(&self, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        let security = self.broker.config.security.current();
        if !security.authorizer || security.super_users.contains(&self.principal) {
            return true;
        }
        let view = self.broker.cluster.view();
        acl::authorize(
            &view.meta.acls,
            &self.principal,
            &self.peer.ip().to_string(),
            operation,
            resource_type,
            name,
        )
    }

    /// The user name the client's quotas are looked up by (the principal without `User:`).
    fn quota_user(&self) -> &str {
        self.principal
            .strip_prefix("User:")
            .unwrap_or(&self.principal)
    }

    /// Whether a `key` quota applies to the client.
    pub fn has_quota(&self, key: &str) -> bool {
        let view = self.broker.cluster.view();
        !view.meta.quotas.is_empty()
            && quota::resolve(&view.meta.quotas, self.quota_user(), &self.client_id, key).is_some()
    }

    /// Meters `amount` (bytes, or for `request_percentage` nanoseconds of CPU) against the
    /// client's `key` quota, if one applies: returns the throttle time (ms) to answer with, and
    /// mutes the connection for it after the answer.
    pub fn quota(&self, key: &str, amount: u64) -> i32 {
        let view = self.broker.cluster.view();
        if view.meta.quotas.is_empty() {
            return 0;
        }
        let user = self.quota_user();
        let Some((entity, value)) = quota::resolve(&view.meta.quotas, user, &self.client_id, key)
        else {
            return 0;
        };
        let wait = crate::state::lock(&self.broker.quota_meters).record(
            entity,
            key,
            quota::Caller {
                user,
                client_id: &self.client_id,
            },
            quota::meter_rate(key, value),
            amount,
            std::time::Instant::now(),
        );
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.throttle_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// [`Context::allowed`] on a topic.
    pub fn allowed_topic(&self, operation: Operation, topic: &str) -> bool {
        self.allowed(operation, ResourceType::Topic, topic)
    }

    /// [`Context::allowed`] on a group.
    pub fn allowed_group(&self, operation: Operation, group: &str) -> bool {
        self.allowed(operation, ResourceType::Group, group)
    }

    /// [`Context::allowed`] on the cluster.
    pub fn allowed_cluster(&self, operation: Operation) -> bool {
        self.allowed(operation, ResourceType::Cluster, acl::CLUSTER_NAME)
    }
}

/// The APIs this broker implements, with the versions it accepts: only what is implemented is
/// advertised.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    // v7 adds MAX_TIMESTAMP, v8 EARLIEST_LOCAL, v9 LATEST_TIERED, v10 a timeout (for tiered
    // storage, which this broker has not: answers never wait).
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // Transactions (KIP-98), the classic protocol: `transaction.version` 2 (KIP-890) is not
    // advertised, so clients add partitions themselves (AddPartitionsToTxn v0-v3; v4 is the
    // brokers' batched form) and end with EndTxn v0-v3.
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The version range accepted for `key`, if implemented (clamped to what the codec supports).
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    let (_, min, max) = SUPPORTED.iter().find(|(k, _, _)| *k == key)?;
    let codec = key.valid_versions();
    Some(((*min).max(codec.min), (*max).min(codec.max)))
}

/// The ApiVersions answer.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .filter_map(|(key, _, _)| {
            let (min, max) = supported(*key)?;
            Some(
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

/// What to do after a request. (One per request, moved straight into the encoder: the size
/// difference between the variants costs nothing worth a box.)
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived, never stored or copied in bulk"
)]
pub enum Outcome {
    /// Send this response.
    Respond(ResponseKind),
    /// Send nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection: the request has no handler (only advertised APIs are decoded, so
    /// this means a bug, and a client must not wait forever for an answer).
    Close(String),
}

/// Raises the `throttle_time_ms` of `response` to `ms` (a request quota's throttle, known only
/// once the request was handled), for every response that has the field.
pub fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    macro_rules! raise {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    raise!(
        AddOffsetsToTxn,
        AddPartitionsToTxn,
        AlterClientQuotas,
        AlterConfigs,
        AlterPartitionReassignments,
        AlterUserScramCredentials,
        ApiVersions,
        CreateAcls,
        CreatePartitions,
        CreateTopics,
        DeleteAcls,
        DeleteGroups,
        DeleteRecords,
        DeleteTopics,
        DescribeAcls,
        DescribeClientQuotas,
        DescribeCluster,
        DescribeConfigs,
        DescribeGroups,
        DescribeLogDirs,
        DescribeProducers,
        DescribeTransactions,
        DescribeUserScramCredentials,
        ElectLeaders,
        EndTxn,
        Fetch,
        FindCoordinator,
        Heartbeat,
        IncrementalAlterConfigs,
        InitProducerId,
        JoinGroup,
        LeaveGroup,
        ListGroups,
        ListOffsets,
        ListPartitionReassignments,
        ListTransactions,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        OffsetForLeaderEpoch,
        Produce,
        SyncGroup,
        TxnOffsetCommit,
    );
}

/// Runs the handler for `request`.
pub async fn dispatch(cx: &Context<'_>, request: RequestKind) -> Outcome {
    Outcome::Respond(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions_response(codes::NONE))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(cx, r).await),
        RequestKind::Produce(r) => {
            return produce::produce(cx, r)
                .await
                .map_or(Outcome::NoResponse, |r| {
                    Outcome::Respond(ResponseKind::Produce(r))
                });
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(cx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(offsets::list_offsets(cx, r)),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(offsets::delete_records(cx, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(cx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(cx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(cx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(cx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(cx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(admin::alter_configs(cx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(cx, r).await)
        }
        RequestKind::DescribeCluster(_) => {
            ResponseKind::DescribeCluster(admin::describe_cluster(cx))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(cx, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join_group(cx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync_group(cx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(cx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(cx, r)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(cx, r).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(cx, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(cx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(cx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(cx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            cluster_admin::alter_partition_reassignments(cx, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            cluster_admin::list_partition_reassignments(cx, r),
        ),
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(cluster_admin::elect_leaders(cx, r).await)
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(cluster_admin::describe_log_dirs(cx, r))
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(security::create_acls(cx, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(security::describe_acls(cx, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(security::delete_acls(cx, r).await),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            security::describe_user_scram_credentials(cx, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            security::alter_user_scram_credentials(cx, r).await,
        ),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe_client_quotas(cx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter_client_quotas(cx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer::init_producer_id(cx, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(producer::describe_producers(cx, r))
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(cx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(cx, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(cx, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(cx, r).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(cx, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list_transactions(cx, r))
        }
        other => {
            return Outcome::Close(format!(
                "no handler for request {:?}",
                std::mem::discriminant(&other)
            ));
        }
    })
}

/// A `StrBytes` from a string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Runs blocking storage work on the runtime without stalling other tasks on this worker.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
