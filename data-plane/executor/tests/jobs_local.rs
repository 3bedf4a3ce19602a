//! Jobs run in-process (the runtime of `hdi-executor run`) over generated JSON files, each result
//! read back from its Parquet sink through the manifest and compared with the same computation
//! done directly: hopping windows, session windows, a static CSV join, `SELECT DISTINCT`, update
//! mode, and a batch run again after a crash before its commit (the file sink's exactly-once).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::AsArray as _;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use hdi_executor::query::{LocalRunner, Query, QueryConfig, QueryHandle, QueryState};
use hdi_executor::sandbox::{FilesRoot, JobScope, KafkaScope};
use hdi_executor::sink::committed_files;
use hdi_executor::source::ConsumerPool;
use hdi_executor::task::TaskContext;

const T0: i64 = 1_795_687_200_000;

struct Event {
    account: String,
    amount: f64,
    ts: i64,
    id: u64,
}

/// Event `i`: 8 accounts, whole amounts, 100 ms apart with up to 2 s of disorder; every 10th
/// event is sent twice (same id) for the dedup job.
fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            account: format!("acct-{}", (i * 7) % 8),
            amount: ((i * 31) % 100 + 1) as f64,
            ts: T0 + 100 * i as i64 - ((i * 13) % 20) as i64 * 100,
            id: i,
        })
        .collect()
}

fn write_files(dir: &Path, events: &[Event], files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per = events.len().div_ceil(files);
    for (f, chunk) in events.chunks(per).enumerate() {
        let mut text = String::new();
        for e in chunk {
            let line = format!(
                r#"{{"account":"{}","amount":{},"ts":{},"id":{}}}"#,
                e.account, e.amount, e.ts, e.id
            );
            text.push_str(&line);
            text.push('\n');
            if e.id % 10 == 0 {
                text.push_str(&line);
                text.push('\n');
            }
        }
        std::fs::write(dir.join(format!("part-{f:04}.json")), text).unwrap();
    }
}

fn temp(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("hdi-jobs-local-{tag}-"))
        .tempdir()
        .unwrap()
}

async fn run(dir: &Path, sql: &str) -> QueryState {
    let files = FilesRoot::confined(dir).unwrap();
    let handle = Arc::new(QueryHandle::default());
    let query = Query::start(
        QueryConfig {
            id: "test".into(),
            name: "test".into(),
            script: sql.into(),
            bootstrap: None,
            checkpoint: dir.join("checkpoint"),
            // Confined to the test's directory, as a cluster's jobs are to their files root.
            scope: JobScope {
                files: files.clone(),
                kafka: KafkaScope::only([]),
            },
        },
        Arc::new(LocalRunner {
            context: Arc::new(TaskContext::new(files)),
            ..LocalRunner::default()
        }),
        ConsumerPool::shared(),
        handle,
    )
    .await
    .unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    query.run(stopped).await
}

async fn output(dir: &Path) -> Vec<RecordBatch> {
    let files = committed_files(&dir.join("out")).unwrap();
    let ctx = SessionContext::new();
    let mut batches = Vec::new();
    for file in files {
        let frame = ctx
            .read_parquet(file.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        batches.extend(frame.collect().await.unwrap());
    }
    // DataFusion reads Parquet strings as Utf8View: back to Utf8 for the comparisons.
    batches
        .into_iter()
        .map(|b| {
            let columns: Vec<_> = b
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Utf8View => cast(c, &DataType::Utf8).unwrap(),
                    _ => Arc::clone(c),
                })
                .collect();
            let fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                .collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        })
        .collect()
}

fn source(dir: &Path, extra: &str) -> String {
    format!(
        "CREATE TABLE tx (account TEXT, amount DOUBLE, ts TIMESTAMP, id BIGINT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           WITH (connector = 'files', path = '{}', max_files_per_trigger = '1');
         CREATE TABLE out WITH (connector = 'files', path = '{}'{extra});
         SET trigger = 'available_now';",
        dir.join("in").display(),
        dir.join("out").display()
    )
}

/// The largest event time seen, and the watermark it gives.
fn final_watermark(events: &[Event]) -> i64 {
    events.iter().map(|e| e.ts).max().unwrap() - 5_000
}

#[tokio::test]
async fn hopping_windows_equal_a_direct_computation() {
    let temp_dir = temp("hop");
    let dir = temp_dir.path();
    let all = events(3000);
    write_files(&dir.join("in"), &all, 6);
    let sql = format!(
        "{} INSERT INTO out SELECT window_start, account, sum(amount) AS total, count(*) AS n, max(amount) AS hi
         FROM HOP(tx, ts, INTERVAL '10' SECOND, INTERVAL '30' SECOND)
         GROUP BY window_start, window_end, account;",
        source(dir, "")
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let watermark = final_watermark(&all);
    let mut expected: BTreeMap<(i64, String), (f64, i64, f64)> = BTreeMap::new();
    for e in &all {
        let mut start = e.ts - e.ts.rem_euclid(10_000);
        while start > e.ts - 30_000 {
            if start + 30_000 <= watermark {
                let entry = expected
                    .entry((start, e.account.clone()))
                    .or_insert((0.0, 0, 0.0));
                // Duplicated input lines count twice: they are two records.
                let copies = if e.id % 10 == 0 { 2 } else { 1 };
                entry.0 += e.amount * f64::from(copies);
                entry.1 += i64::from(copies);
                entry.2 = entry.2.max(e.amount);
            }
            start -= 10_000;
        }
    }
    let mut got = BTreeMap::new();
    for batch in output(dir).await {
        let starts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let accounts = batch.column(1).as_string::<i32>();
        let totals = batch.column(2).as_primitive::<Float64Type>();
        let counts = batch.column(3).as_primitive::<Int64Type>();
        let highs = batch.column(4).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let previous = got.insert(
                (starts.value(i), accounts.value(i).to_string()),
                (totals.value(i), counts.value(i), highs.value(i)),
            );
            assert!(previous.is_none(), "a window was emitted twice");
        }
    }
    assert!(expected.len() > 50);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn sessions_close_after_their_gap() {
    let temp_dir = temp("session");
    let dir = temp_dir.path();
    // Two accounts; bursts separated by 20 s gaps.
    let mut all = Vec::new();
    for burst in 0..6i64 {
        for k in 0..10i64 {
            all.push(Event {
                account: format!("acct-{}", k % 2),
                amount: 1.0,
                ts: T0 + burst * 30_000 + k * 500,
                // Never a multiple of 10: no duplicate lines here.
                id: ((burst * 10 + k) * 10 + 1) as u64,
            });
        }
    }
    write_files(&dir.join("in"), &all, 3);
    let sql = format!(
        "{} INSERT INTO out SELECT account, window_start, window_end, count(*) AS n
         FROM SESSION(tx, ts, INTERVAL '10' SECOND) GROUP BY account, window_start, window_end;",
        source(dir, "")
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let mut got = BTreeSet::new();
    for batch in output(dir).await {
        let accounts = batch.column(0).as_string::<i32>();
        let starts = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let ends = batch.column(2).as_primitive::<TimestampMillisecondType>();
        let counts = batch.column(3).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            got.insert((
                accounts.value(i).to_string(),
                starts.value(i) - T0,
                ends.value(i) - T0,
                counts.value(i),
            ));
        }
    }
    // The watermark ends 5 s behind the last event (150 s + 4.5 s): bursts 0..=4 are closed.
    let mut expected = BTreeSet::new();
    for burst in 0..5i64 {
        for account in 0..2i64 {
            let first = burst * 30_000 + account * 500;
            let last = burst * 30_000 + (8 + account) * 500;
            expected.insert((format!("acct-{account}"), first, last + 10_000, 5));
        }
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_static_csv_join_filters_and_enriches() {
    let temp_dir = temp("join");
    let dir = temp_dir.path();
    let all = events(500);
    write_files(&dir.join("in"), &all, 2);
    let csv = dir.join("accounts.csv");
    let mut text = String::from("id,tier\n");
    for a in 0..8 {
        text.push_str(&format!(
            "acct-{a},{}\n",
            if a % 2 == 0 { "gold" } else { "basic" }
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let sql = format!(
        "{} CREATE TABLE accounts (id TEXT, tier TEXT) WITH (connector = 'file', path = '{}', format = 'csv');
         INSERT INTO out SELECT tx.id, upper(a.tier) AS tier, tx.amount
         FROM tx JOIN accounts a ON tx.account = a.id WHERE a.tier = 'gold' AND tx.amount > 50;",
        source(dir, ""),
        csv.display()
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let mut got = Vec::new();
    for batch in output(dir).await {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let tiers = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert_eq!(tiers.value(i), "GOLD");
            got.push(ids.value(i));
        }
    }
    got.sort_unstable();
    let mut expected: Vec<i64> = all
        .iter()
        .filter(|e| {
            e.account
                .trim_start_matches("acct-")
                .parse::<u64>()
                .unwrap()
                % 2
                == 0
                && e.amount > 50.0
        })
        .flat_map(|e| vec![e.id as i64; if e.id % 10 == 0 { 2 } else { 1 }])
        .collect();
    expected.sort_unstable();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn distinct_drops_duplicates_across_batches() {
    let temp_dir = temp("dedup");
    let dir = temp_dir.path();
    let all = events(400);
    write_files(&dir.join("in"), &all, 4);
    // A duplicate of every 10th event also arrives in a later file.
    let mut late_copies = String::new();
    for e in all.iter().filter(|e| e.id % 10 == 0 && e.id > 350) {
        late_copies.push_str(&format!(
            r#"{{"account":"{}","amount":{},"ts":{},"id":{}}}"#,
            e.account, e.amount, e.ts, e.id
        ));
        late_copies.push('\n');
    }
    std::fs::write(dir.join("in/part-9999.json"), late_copies).unwrap();
    let sql = format!(
        "{} INSERT INTO out SELECT DISTINCT id, account, ts FROM tx;",
        source(dir, "")
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let mut ids = Vec::new();
    for batch in output(dir).await {
        let column = batch.column(0).as_primitive::<Int64Type>();
        ids.extend((0..batch.num_rows()).map(|i| column.value(i)));
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..400).collect::<Vec<i64>>());
}

#[tokio::test]
async fn update_mode_emits_the_running_counts() {
    let temp_dir = temp("update");
    let dir = temp_dir.path();
    let all = events(800);
    write_files(&dir.join("in"), &all, 4);
    let sql = format!(
        "{} INSERT INTO out SELECT account, count(*) AS n, sum(amount) AS total FROM tx GROUP BY account;",
        source(dir, ", output_mode = 'update'")
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    // Each batch emits the accounts it changed; the last emission of each is its total.
    let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let mut emissions = 0;
    for batch in output(dir).await {
        let accounts = batch.column(0).as_string::<i32>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        let totals = batch.column(2).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            emissions += 1;
            last.insert(
                accounts.value(i).to_string(),
                (counts.value(i), totals.value(i)),
            );
        }
    }
    let mut expected: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for e in &all {
        let copies = if e.id % 10 == 0 { 2 } else { 1 };
        let entry = expected.entry(e.account.clone()).or_insert((0, 0.0));
        entry.0 += copies;
        entry.1 += e.amount * copies as f64;
    }
    assert_eq!(last, expected);
    assert_eq!(
        emissions,
        4 * 8,
        "every account changes in each of the 4 batches"
    );
}

#[tokio::test]
async fn a_batch_run_again_after_a_crash_writes_the_same_files_once() {
    let temp_dir = temp("rerun");
    let dir = temp_dir.path();
    let all = events(2000);
    write_files(&dir.join("in"), &all, 4);
    let sql = format!(
        "{} INSERT INTO out SELECT window_start, account, count(*) AS n
         FROM TUMBLE(tx, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, account;",
        source(dir, ", partition_by = 'account'")
    );
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let first = output(dir).await;
    let rows = |batches: &[RecordBatch]| -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        for b in batches {
            for i in 0..b.num_rows() {
                let row: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| format!("{:?}", c.slice(i, 1)))
                    .collect();
                assert!(set.insert(row.join("|")), "a row twice");
            }
        }
        set
    };
    let before = rows(&first);
    // The last batch "crashed" after writing its files but before its commit.
    let commits = dir.join("checkpoint/commits");
    let mut entries: Vec<_> = std::fs::read_dir(&commits)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    std::fs::remove_file(entries.last().unwrap()).unwrap();
    assert_eq!(run(dir, &sql).await, QueryState::Completed);
    let after = rows(&output(dir).await);
    assert_eq!(before, after);
    assert!(!before.is_empty());
    // Partitioned by account.
    assert!(dir.join("out/account=acct-3").is_dir());
    let files: Vec<PathBuf> = committed_files(&dir.join("out")).unwrap();
    assert!(files.iter().all(|f| f.exists()));
}
