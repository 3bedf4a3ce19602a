//! Deterministic fuzzing of the executor's decoders of outside input (as the broker's
//! `bad_input.rs`): job scripts (they arrive over the job API), Kafka record payloads (any
//! producer writes them), task requests (a worker's `POST /v1/tasks` body), task answers (a
//! worker's reply the driver decodes), state requests and answers (`POST /v1/state`), and the
//! record batches of a Fetch answer (a task's direct Kafka read). Truncations, bit flips, byte insertions and random bytes:
//! each decoder must answer an error or a value, never panic.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use hdi_executor::plan::JobPlan;
use hdi_executor::source::{RawBatch, decode_fetched};
use hdi_executor::sql::parse_script;
use hdi_executor::stateful::{StateHeader, StateMeta, StateReply, StateRequest};
use hdi_executor::task::{TaskMeta, TaskOutput, TaskRequest, decode};

/// xorshift64*: the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutations of `seed`: every truncation point (sampled), bit flips, insertions, deletions.
fn mutations(seed: &[u8], rng: &mut Rng, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let step = (seed.len() / 64).max(1);
    for cut in (0..seed.len()).step_by(step) {
        out.push(seed[..cut].to_vec());
    }
    for _ in 0..count {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes.insert(at, rng.next() as u8),
                2 => {
                    bytes.remove(at);
                }
                _ => bytes[at] = rng.next() as u8,
            }
        }
        out.push(bytes);
    }
    for len in [1, 7, 64, 600] {
        out.push((0..len).map(|_| rng.next() as u8).collect());
    }
    out
}

const SCRIPT: &str = "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
  WITH (connector = 'kafka', topic = 'transactions', bootstrap_servers = 'localhost:9092');
CREATE TABLE accounts (id TEXT, tier TEXT) WITH (connector = 'file', path = '/tmp/a.csv');
CREATE TABLE alerts WITH (connector = 'kafka', topic = 'alerts', bootstrap_servers = 'localhost:9092', output_mode = 'append');
SET trigger = 'processing_time 1s';
INSERT INTO alerts
SELECT window_start, window_end, account, sum(amount) AS total, count(*) AS n, approx_distinct(account) AS d
FROM HOP(tx, ts, INTERVAL '10' SECOND, INTERVAL '1' MINUTE) JOIN accounts a ON tx.account = a.id
GROUP BY window_start, window_end, account HAVING sum(amount) > 10000;";

#[tokio::test]
async fn mutated_job_scripts_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let mut planned = 0;
    for bytes in mutations(SCRIPT.as_bytes(), &mut rng, 1500) {
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if let Ok(script) = parse_script(&text)
            && JobPlan::new(script).await.is_ok()
        {
            planned += 1;
        }
    }
    // Some mutations (in comments-free places like literals) still plan.
    assert!(planned > 0);
}

#[test]
fn mutated_records_never_panic_the_json_decoder() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let mut rng = Rng(0x5eed_0002);
    let seed =
        br#"{"account":"acct-1","amount":12.5,"ts":"2026-11-26T10:00:00.123Z","x":[1,{"y":null}]}"#;
    let records = mutations(seed, &mut rng, 3000);
    // One at a time, and all together (the bulk path, then its record-by-record fallback).
    let mut all = RawBatch::default();
    for record in &records {
        let mut one = RawBatch::default();
        one.push(record);
        all.push(record);
        let (batch, bad) = decode(&one, &schema).unwrap();
        assert_eq!(batch.num_rows() + bad.len(), 1);
    }
    let (batch, bad) = decode(&all, &schema).unwrap();
    assert_eq!(batch.num_rows() + bad.len(), records.len());
}

#[test]
fn mutated_task_requests_never_panic() {
    let request = TaskRequest {
        job_id: "job".into(),
        script: SCRIPT.into(),
        bootstrap: Some("localhost:9092".into()),
        batch_id: 7,
        watermark_ms: Some(1_795_687_200_000),
        input: hdi_executor::task::TaskInput::Kafka {
            partition: 2,
            start: 10,
            end: 20,
        },
        tables: [("accounts".to_string(), [(0, 5), (1, 7)].into())].into(),
        kafka_access: Default::default(),
    };
    let seed = serde_json::to_vec(&request).unwrap();
    let mut rng = Rng(0x5eed_0003);
    let mut parsed = 0;
    for bytes in mutations(&seed, &mut rng, 3000) {
        if serde_json::from_slice::<TaskRequest>(&bytes).is_ok() {
            parsed += 1;
        }
    }
    assert!(parsed > 0);
}

#[test]
fn mutated_task_answers_never_panic() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, true),
        Field::new("total", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Float64Array::from(vec![1.0, 2.5, 3.0])),
            Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    let output = TaskOutput {
        batches: vec![batch],
        meta: TaskMeta {
            input_rows: 3,
            ..TaskMeta::default()
        },
    };
    let seed = output.encode(&schema).unwrap();
    assert_eq!(TaskOutput::decode(&seed).unwrap().meta.input_rows, 3);
    let mut rng = Rng(0x5eed_0004);
    for bytes in mutations(&seed, &mut rng, 3000) {
        let _ = TaskOutput::decode(&bytes);
    }
}

#[test]
fn mutated_state_requests_and_answers_never_panic() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, true),
        Field::new("total", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Float64Array::from(vec![1.0, 2.5, 3.0])),
        ],
    )
    .unwrap();
    let request = StateRequest {
        header: StateHeader {
            job_id: "job".into(),
            query_id: "q".into(),
            script: SCRIPT.into(),
            bootstrap: None,
            batch_id: 3,
            partition: 1,
            partitions: 4,
            base: Some(2),
            watermark_ms: Some(1_795_687_200_000),
            owned: vec![1, 3],
            with_snapshot: false,
        },
        partials: vec![batch.clone()],
        snapshot: Some(Arc::new(vec![7; 40])),
    };
    let seed = request.encode(&schema).unwrap();
    assert_eq!(StateRequest::decode(&seed).unwrap().header.batch_id, 3);
    let mut rng = Rng(0x5eed_0005);
    for bytes in mutations(&seed, &mut rng, 3000) {
        let _ = StateRequest::decode(&bytes);
    }
    let reply = StateReply {
        meta: StateMeta {
            state_rows: 3,
            ..StateMeta::default()
        },
        emitted: vec![batch],
        snapshot: vec![9; 40],
    };
    let seed = reply.encode(&schema).unwrap();
    assert_eq!(StateReply::decode(&seed).unwrap().meta.state_rows, 3);
    for bytes in mutations(&seed, &mut rng, 3000) {
        let _ = StateReply::decode(&bytes);
    }
}

#[test]
fn mutated_fetch_answers_never_panic_the_record_decoder() {
    let values: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("{{\"account\":\"acct-{i}\",\"amount\":{i}}}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let t0 = 1_795_687_200_000;
    let mut seed = hdi_log::batch::build_batch(100, t0, &refs[..10]);
    seed.extend(hdi_log::batch::build_batch(110, t0, &refs[10..]));
    let read = decode_fetched(103, 118, &seed).unwrap().unwrap();
    assert_eq!(read.len(), 15);
    assert_eq!(read.record(0), refs[3]);
    let mut rng = Rng(0x5eed_0006);
    for bytes in mutations(&seed, &mut rng, 3000) {
        let _ = decode_fetched(103, 118, &bytes);
    }
    // With the CRC made right again, so the mutations reach the record decoding.
    let single = hdi_log::batch::build_batch(0, t0, &refs);
    for mut bytes in mutations(&single, &mut rng, 3000) {
        if bytes.len() > 21 {
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        let _ = decode_fetched(0, 20, &bytes);
        let _ = decode_fetched(i64::MAX - 5, i64::MAX, &bytes);
    }
}
