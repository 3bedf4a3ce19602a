//! Transaction verification (KIP-890 part 1), the partition leader's side: before a produce
//! appends a transactional batch that would open a transaction on a partition (none of its
//! producer is open there at that epoch), the leader asks the transaction coordinator whether
//! the producer id and epoch are the transactional id's current ones and the partition is in
//! its ongoing transaction, as Kafka's `AddPartitionsToTxnManager` does with AddPartitionsToTxn
//! `verify_only`. Without it, a stray batch (a zombie's, after its transaction was aborted, or
//! a client's that skipped AddPartitionsToTxn) would open a transaction no marker ever ends,
//! pinning the partition's last stable offset.
//!
//! The coordinator is the controller: on it the question is answered in place
//! ([`crate::txn_coordinator::verify_partitions`]); other brokers send
//! [`Request::VerifyTxnPartitions`] over the quorum listener, answered by [`serve`]. The
//! coordinator's answers become Produce errors as Kafka's `ReplicaManager` translates them:
//! PRODUCER_FENCED is INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE stays ("Partition was not added
//! to the transaction"), and a coordinator that moved, loads, is busy completing the
//! transaction or cannot be reached is NOT_ENOUGH_REPLICAS, which every client retries
//! (NOT_COORDINATOR is no Produce error). Only the first batch of a transaction per partition is
//! verified: the partition's producer state ([`crate::producers::VerificationGuard`]) carries
//! the result to the append, and later batches of the open transaction append as before.

use std::time::Duration;

use hdi_kafka_client::codes;

use crate::broker::Broker;
use crate::cluster::rpc::{Peer, Request, VerifyTxnPartitionsRequest};
use crate::state::{KafkaError, chain};
use crate::txn_markers::TopicPartition;

/// How long a leader waits for the coordinator's answer before the produce is answered
/// NOT_ENOUGH_REPLICAS (retried by the client).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the transaction coordinator whether `partitions` are in the ongoing transaction of
/// `transactional_id`'s `producer` (id, epoch): per partition, in order, `Ok` or the error to
/// answer the produce with.
pub async fn verify(
    broker: &Broker,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: Vec<TopicPartition>,
) -> Vec<(TopicPartition, Result<(), KafkaError>)> {
    let answer = ask(broker, transactional_id, producer, &partitions).await;
    partitions
        .into_iter()
        .enumerate()
        .map(|(i, tp)| {
            let code = match &answer {
                Ok(codes) => codes.get(i).copied().unwrap_or(codes::UNKNOWN_SERVER_ERROR),
                Err(code) => *code,
            };
            let result = produce_error(code, producer);
            (tp, result)
        })
        .collect()
}

/// Answers a peer's [`Request::VerifyTxnPartitions`] as the coordinator (NOT_COORDINATOR when
/// this broker is not). The caller checked that the peer speaks for the broker it names.
///
/// # Errors
/// The Kafka error code for every partition.
pub fn serve(broker: &Broker, request: &VerifyTxnPartitionsRequest) -> Result<Vec<i16>, i16> {
    crate::txn_coordinator::verify_partitions(
        broker,
        &request.transactional_id,
        (request.producer_id, request.producer_epoch),
        &request.partitions,
    )
}

/// The coordinator's answer: here when this broker coordinates, else from the controller.
async fn ask(
    broker: &Broker,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
) -> Result<Vec<i16>, i16> {
    if broker.cluster.is_controller() {
        return crate::txn_coordinator::verify_partitions(
            broker,
            transactional_id,
            producer,
            partitions,
        );
    }
    let Some(addr) = broker
        .cluster
        .leader_id()
        .and_then(|id| u64::try_from(id).ok())
        .and_then(|id| broker.cluster.node_addr(id))
    else {
        return Err(codes::COORDINATOR_NOT_AVAILABLE);
    };
    let request = Request::VerifyTxnPartitions(VerifyTxnPartitionsRequest {
        from: broker.config.node_id,
        transactional_id: transactional_id.to_owned(),
        producer_id: producer.0,
        producer_epoch: producer.1,
        partitions: partitions.to_vec(),
    });
    match Peer::new(addr)
        .call::<Result<Vec<i16>, i16>>(&request, VERIFY_TIMEOUT)
        .await
    {
        Ok((answer, _)) => answer,
        Err(error) => {
            tracing::debug!(transactional_id, error = %chain(&error), "cannot reach the transaction coordinator to verify");
            Err(codes::NETWORK_EXCEPTION)
        }
    }
}

/// The Produce answer for the coordinator's `code` about a partition, as Kafka's
/// `AddPartitionsToTxnManager` and `ReplicaManager` translate it.
///
/// # Errors
/// The translated error (every code but NONE).
pub fn produce_error(code: i16, producer: (i64, i16)) -> Result<(), KafkaError> {
    let (code, message) = match code {
        codes::NONE => return Ok(()),
        // "Producers expect to handle INVALID_PRODUCER_EPOCH in this scenario."
        codes::PRODUCER_FENCED | codes::INVALID_PRODUCER_EPOCH => (
            codes::INVALID_PRODUCER_EPOCH,
            format!(
                "producer {} epoch {} is not the transactional id's current epoch",
                producer.0, producer.1
            ),
        ),
        codes::INVALID_TXN_STATE => (
            codes::INVALID_TXN_STATE,
            "Partition was not added to the transaction".to_owned(),
        ),
        codes::NETWORK_EXCEPTION
        | codes::COORDINATOR_LOAD_IN_PROGRESS
        | codes::COORDINATOR_NOT_AVAILABLE
        | codes::NOT_COORDINATOR
        | codes::CONCURRENT_TRANSACTIONS => (
            codes::NOT_ENOUGH_REPLICAS,
            format!(
                "Unable to verify the partition has been added to the transaction. \
                 Underlying error: {}",
                codes::error_name(code)
            ),
        ),
        other => (
            other,
            format!(
                "the transaction coordinator refused producer {} epoch {}: {}",
                producer.0,
                producer.1,
                codes::error_name(other)
            ),
        ),
    };
    Err(KafkaError::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_answers_become_kafkas_produce_errors() {
        let cases = [
            (codes::NONE, codes::NONE),
            (codes::PRODUCER_FENCED, codes::INVALID_PRODUCER_EPOCH),
            (codes::INVALID_TXN_STATE, codes::INVALID_TXN_STATE),
            (codes::NOT_COORDINATOR, codes::NOT_ENOUGH_REPLICAS),
            (
                codes::COORDINATOR_LOAD_IN_PROGRESS,
                codes::NOT_ENOUGH_REPLICAS,
            ),
            (codes::COORDINATOR_NOT_AVAILABLE, codes::NOT_ENOUGH_REPLICAS),
            (codes::NETWORK_EXCEPTION, codes::NOT_ENOUGH_REPLICAS),
            (codes::CONCURRENT_TRANSACTIONS, codes::NOT_ENOUGH_REPLICAS),
            (
                codes::INVALID_PRODUCER_ID_MAPPING,
                codes::INVALID_PRODUCER_ID_MAPPING,
            ),
        ];
        for (answer, want) in cases {
            let got = produce_error(answer, (7, 1))
                .err()
                .map_or(codes::NONE, |e| e.code);
            assert_eq!(got, want, "{}", codes::error_name(answer));
        }
        let message = produce_error(codes::NOT_COORDINATOR, (7, 1))
            .unwrap_err()
            .message;
        assert!(
            message.ends_with("Underlying error: NOT_COORDINATOR"),
            "{message}"
        );
    }
}
