//! Kafka error codes: one table, `kafka_protocol::ResponseError` (the protocol guide's
//! `Errors.java`), with the codes hdi acts on as named constants and [`error_name`] for the rest.
//!
//! The constants are derived from the table, not typed in, and a test checks that each one's
//! name is the Kafka name of its code, so they cannot drift from it.

#![allow(missing_docs, reason = "the names are the protocol's own")]

use kafka_protocol::error::ResponseError;

/// No error.
pub const NONE: i16 = 0;

macro_rules! codes {
    ($($name:ident = $variant:ident,)*) => {
        $(pub const $name: i16 = ResponseError::$variant.code();)*

        /// Every constant with its name, for the test that the names are Kafka's.
        #[cfg(test)]
        const ALL: &[(&str, i16)] = &[$((stringify!($name), $name),)*];
    };
}

codes! {
    UNKNOWN_SERVER_ERROR = UnknownServerError,
    OFFSET_OUT_OF_RANGE = OffsetOutOfRange,
    CORRUPT_MESSAGE = CorruptMessage,
    UNKNOWN_TOPIC_OR_PARTITION = UnknownTopicOrPartition,
    INVALID_FETCH_SIZE = InvalidFetchSize,
    LEADER_NOT_AVAILABLE = LeaderNotAvailable,
    NOT_LEADER_OR_FOLLOWER = NotLeaderOrFollower,
    REQUEST_TIMED_OUT = RequestTimedOut,
    BROKER_NOT_AVAILABLE = BrokerNotAvailable,
    REPLICA_NOT_AVAILABLE = ReplicaNotAvailable,
    MESSAGE_TOO_LARGE = MessageTooLarge,
    NETWORK_EXCEPTION = NetworkException,
    COORDINATOR_LOAD_IN_PROGRESS = CoordinatorLoadInProgress,
    COORDINATOR_NOT_AVAILABLE = CoordinatorNotAvailable,
    NOT_COORDINATOR = NotCoordinator,
    INVALID_TOPIC_EXCEPTION = InvalidTopicException,
    RECORD_LIST_TOO_LARGE = RecordListTooLarge,
    NOT_ENOUGH_REPLICAS = NotEnoughReplicas,
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = NotEnoughReplicasAfterAppend,
    INVALID_REQUIRED_ACKS = InvalidRequiredAcks,
    ILLEGAL_GENERATION = IllegalGeneration,
    INCONSISTENT_GROUP_PROTOCOL = InconsistentGroupProtocol,
    INVALID_GROUP_ID = InvalidGroupId,
    UNKNOWN_MEMBER_ID = UnknownMemberId,
    INVALID_SESSION_TIMEOUT = InvalidSessionTimeout,
    REBALANCE_IN_PROGRESS = RebalanceInProgress,
    INVALID_COMMIT_OFFSET_SIZE = InvalidCommitOffsetSize,
    INVALID_TIMESTAMP = InvalidTimestamp,
    UNSUPPORTED_VERSION = UnsupportedVersion,
    TOPIC_ALREADY_EXISTS = TopicAlreadyExists,
    INVALID_PARTITIONS = InvalidPartitions,
    INVALID_REPLICATION_FACTOR = InvalidReplicationFactor,
    INVALID_REPLICA_ASSIGNMENT = InvalidReplicaAssignment,
    INVALID_CONFIG = InvalidConfig,
    NOT_CONTROLLER = NotController,
    INVALID_REQUEST = InvalidRequest,
    POLICY_VIOLATION = PolicyViolation,
    OUT_OF_ORDER_SEQUENCE_NUMBER = OutOfOrderSequenceNumber,
    DUPLICATE_SEQUENCE_NUMBER = DuplicateSequenceNumber,
    INVALID_PRODUCER_EPOCH = InvalidProducerEpoch,
    INVALID_TXN_STATE = InvalidTxnState,
    INVALID_PRODUCER_ID_MAPPING = InvalidProducerIdMapping,
    INVALID_TRANSACTION_TIMEOUT = InvalidTransactionTimeout,
    CONCURRENT_TRANSACTIONS = ConcurrentTransactions,
    TRANSACTION_COORDINATOR_FENCED = TransactionCoordinatorFenced,
    OPERATION_NOT_ATTEMPTED = OperationNotAttempted,
    KAFKA_STORAGE_ERROR = KafkaStorageError,
    UNKNOWN_PRODUCER_ID = UnknownProducerId,
    TRANSACTIONAL_ID_NOT_FOUND = TransactionalIdNotFound,
    INVALID_RECORD = InvalidRecord,
    UNSTABLE_OFFSET_COMMIT = UnstableOffsetCommit,
    PRODUCER_FENCED = ProducerFenced,
    REASSIGNMENT_IN_PROGRESS = ReassignmentInProgress,
    NON_EMPTY_GROUP = NonEmptyGroup,
    GROUP_ID_NOT_FOUND = GroupIdNotFound,
    FENCED_LEADER_EPOCH = FencedLeaderEpoch,
    UNKNOWN_LEADER_EPOCH = UnknownLeaderEpoch,
    OFFSET_NOT_AVAILABLE = OffsetNotAvailable,
    MEMBER_ID_REQUIRED = MemberIdRequired,
    PREFERRED_LEADER_NOT_AVAILABLE = PreferredLeaderNotAvailable,
    ELECTION_NOT_NEEDED = ElectionNotNeeded,
    NO_REASSIGNMENT_IN_PROGRESS = NoReassignmentInProgress,
    UNKNOWN_TOPIC_ID = UnknownTopicId,
    INELIGIBLE_REPLICA = IneligibleReplica,
    TOPIC_AUTHORIZATION_FAILED = TopicAuthorizationFailed,
    GROUP_AUTHORIZATION_FAILED = GroupAuthorizationFailed,
    CLUSTER_AUTHORIZATION_FAILED = ClusterAuthorizationFailed,
    UNSUPPORTED_SASL_MECHANISM = UnsupportedSaslMechanism,
    ILLEGAL_SASL_STATE = IllegalSaslState,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = TransactionalIdAuthorizationFailed,
    SECURITY_DISABLED = SecurityDisabled,
    SASL_AUTHENTICATION_FAILED = SaslAuthenticationFailed,
    RESOURCE_NOT_FOUND = ResourceNotFound,
    DUPLICATE_RESOURCE = DuplicateResource,
    UNACCEPTABLE_CREDENTIAL = UnacceptableCredential,
}

/// The Kafka name of an error code as in the protocol guide and `Errors.java`
/// (`36` → `"TOPIC_ALREADY_EXISTS"`); `"NONE"` for 0 and `"UNKNOWN"` for codes the table does
/// not have.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(_)) => "UNKNOWN".to_owned(),
        // The variant names are the Java names in CamelCase (`TopicAlreadyExists`).
        Some(error) => {
            let camel = error.to_string();
            let mut name = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_the_kafka_names() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(41), "NOT_CONTROLLER");
        assert_eq!(error_name(100), "UNKNOWN_TOPIC_ID");
        assert_eq!(error_name(12345), "UNKNOWN");
    }

    #[test]
    fn every_constant_is_named_as_its_code() {
        assert_eq!(error_name(NONE), "NONE");
        for (name, code) in ALL {
            assert_eq!(error_name(*code), *name, "code {code}");
        }
    }

    #[test]
    fn the_codes_are_the_protocol_guides() {
        // A sample against the guide's numbers, in case the table itself moved.
        let guide = [
            (UNKNOWN_SERVER_ERROR, -1),
            (OFFSET_OUT_OF_RANGE, 1),
            (NOT_LEADER_OR_FOLLOWER, 6),
            (INVALID_TIMESTAMP, 32),
            (NOT_CONTROLLER, 41),
            (KAFKA_STORAGE_ERROR, 56),
            (OFFSET_NOT_AVAILABLE, 78),
            (INELIGIBLE_REPLICA, 107),
        ];
        for (constant, code) in guide {
            assert_eq!(constant, code);
        }
    }
}
