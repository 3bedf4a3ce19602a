//! InitProducerId: producer ids for idempotent producers; a transactional id's come from the
//! transaction coordinator (`txn.rs`).

use hdi_kafka_client::codes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::Context;
use crate::security::acl::Operation;

/// Kafka's rule (KIP-679): `IDEMPOTENT_WRITE` on the cluster, or `WRITE` on some topic.
fn may_write_idempotently(cx: &Context<'_>) -> bool {
    if cx.allowed_cluster(Operation::IdempotentWrite) {
        return true;
    }
    let view = cx.broker.cluster.view();
    view.meta
        .topics
        .keys()
        .any(|topic| cx.allowed_topic(Operation::Write, topic))
}

/// Handles InitProducerId.
pub async fn init_producer_id(
    cx: &Context<'_>,
    r: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(id) = &r.transactional_id {
        return super::txn::init_producer_id(cx, id.0.as_str(), &r).await;
    }
    let mut response = InitProducerIdResponse::default();
    if !may_write_idempotently(cx) {
        response.error_code = codes::CLUSTER_AUTHORIZATION_FAILED;
    } else if r.producer_id.0 >= 0 {
        // KIP-360 epoch bump of a known producer.
        response.producer_id = r.producer_id;
        response.producer_epoch = r.producer_epoch.saturating_add(1);
    } else {
        let floor = cx.broker.cluster.view().meta.producer_id_floor;
        match cx.broker.producer_ids.next(floor) {
            Ok(id) => {
                response.producer_id = id.into();
                response.producer_epoch = 0;
            }
            Err(error) => {
                tracing::error!(error = %crate::state::chain(&error), "cannot allocate a producer id");
                response.error_code = codes::UNKNOWN_SERVER_ERROR;
            }
        }
    }
    response
}
