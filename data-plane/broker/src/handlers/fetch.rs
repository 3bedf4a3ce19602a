//! Fetch: reads whole batches from each requested partition and long-polls: the request waits
//! until `min_bytes` are available or `max_wait_ms` passes, woken by appends (not by polling).

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::Context;
use crate::codes;

/// Handles Fetch.
pub async fn fetch(cx: &Context<'_>, request: FetchRequest) -> FetchResponse {
    let broker = cx.broker;
    let max_wait =
        Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0).min(60_000));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    loop {
        // Register interest before reading, so an append between the read and the wait wakes us.
        let notified = broker.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, bytes, errors) = super::blocking(|| collect(cx, &request, max_bytes));
        let now = tokio::time::Instant::now();
        // min_bytes 0 answers at once, as in Kafka.
        if bytes >= min_bytes || errors || now >= deadline {
            tracing::debug!(
                bytes,
                waited_ms = (now + max_wait - deadline).as_millis() as u64,
                "fetch answered"
            );
            return FetchResponse::default().with_responses(responses);
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn collect(
    cx: &Context<'_>,
    request: &FetchRequest,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let broker = cx.broker;
    let mut total = 0usize;
    let mut errors = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in &request.topics {
        let topic = broker
            .topics
            .get(wanted.topic.0.as_str())
            .or_else(|| broker.topics.get_by_id(wanted.topic_id));
        let mut partitions = Vec::with_capacity(wanted.partitions.len());
        for fp in &wanted.partitions {
            let data = PartitionData::default().with_partition_index(fp.partition);
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                errors = true;
                partitions.push(
                    data.with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_high_watermark(-1),
                );
                continue;
            };
            let (start, high_watermark) = partition.offsets();
            // log_start_offset exists from v5.
            let start = if cx.version >= 5 { start } else { -1 };
            let data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(high_watermark)
                .with_log_start_offset(start);
            let budget = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(total))
                .max(1);
            // The response is full: later partitions return nothing this time (KIP-74).
            if fp.fetch_offset == high_watermark || (total > 0 && total >= max_bytes) {
                partitions.push(data);
                continue;
            }
            match partition.read(fp.fetch_offset, budget) {
                Ok(records) => {
                    total += records.len();
                    partitions.push(data.with_records(Some(records)));
                }
                Err(error) => {
                    errors = true;
                    partitions.push(data.with_error_code(error.code));
                }
            }
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(wanted.topic.clone())
                .with_topic_id(wanted.topic_id)
                .with_partitions(partitions),
        );
    }
    (topics, total, errors)
}
