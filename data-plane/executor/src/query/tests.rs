//! Unit tests of the batch loop: input selection (Kafka, files, rate; trigger bounds), recovery
//! from real checkpoint directories (fresh, after a commit, an uncommitted batch run again with
//! exactly its logged input), and the batch's pure stages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::batch::{Applied, advance_watermark, finalize, tasks_for};
use super::input::{
    Position, Resume, end_position, files_input, kafka_input, offsets_view, rate_input,
    start_position,
};
use super::{LocalRunner, Query, QueryConfig, QueryHandle, QueryState};
use crate::checkpoint::{BatchInput, Checkpoint, CommitEntry, OffsetEntry};
use crate::plan::JobPlan;
use crate::sandbox::JobScope;
use crate::sink::SinkMark;
use crate::source::{ConsumerPool, SourceSpec};
use crate::sql::{WatermarkDef, parse_script};
use crate::stateful::{StateMeta, StateReply};
use crate::task::TaskInput;

fn kafka(ranges: &[(i32, (i64, i64))]) -> BatchInput {
    BatchInput::Kafka {
        ranges: ranges.iter().copied().collect(),
    }
}

fn offsets(batch_id: u64, input: BatchInput, watermark_ms: Option<i64>) -> OffsetEntry {
    OffsetEntry {
        batch_id,
        input,
        watermark_ms,
        sink_mark: SinkMark::new(),
        tables: BTreeMap::new(),
    }
}

#[test]
fn kafka_input_shares_the_limit_in_proportion() {
    let starts = BTreeMap::from([(0, 0), (1, 10)]);
    let ends = BTreeMap::from([(0, 100), (1, 30)]);
    // Everything without a limit.
    assert_eq!(
        kafka_input(&starts, &ends, None),
        kafka(&[(0, (0, 100)), (1, (10, 30))])
    );
    // 60 of 120: 100 * 60 / 120 = 50 from partition 0, the rest (10) from the last.
    assert_eq!(
        kafka_input(&starts, &ends, Some(60)),
        kafka(&[(0, (0, 50)), (1, (10, 20))])
    );
    // A limit above what there is reads what there is.
    assert_eq!(
        kafka_input(&starts, &ends, Some(1_000)),
        kafka(&[(0, (0, 100)), (1, (10, 30))])
    );
    // A partition added since the job started is read from 0; a start past the end (the topic
    // was recreated) reads nothing.
    let ends = BTreeMap::from([(0, 5), (1, 8), (2, 7)]);
    assert_eq!(
        kafka_input(&starts, &ends, None),
        kafka(&[(0, (0, 5)), (1, (8, 8)), (2, (0, 7))])
    );
    // Nothing new: empty ranges, an empty input.
    let input = kafka_input(
        &BTreeMap::from([(0, 9)]),
        &BTreeMap::from([(0, 9)]),
        Some(5),
    );
    assert_eq!(input, kafka(&[(0, (9, 9))]));
    assert!(input.is_empty());
}

#[test]
fn rate_input_is_bounded_by_the_limit() {
    assert_eq!(
        rate_input(1_000, 0, 100, Some(30)),
        BatchInput::Rate {
            start_ms: 1_000,
            from: 0,
            to: 30
        }
    );
    assert_eq!(
        rate_input(1_000, 90, 100, Some(30)),
        BatchInput::Rate {
            start_ms: 1_000,
            from: 90,
            to: 100
        }
    );
    // Rows not yet due give an empty batch, never a backward one.
    let input = rate_input(1_000, 90, 80, None);
    assert_eq!(
        input,
        BatchInput::Rate {
            start_ms: 1_000,
            from: 90,
            to: 90
        }
    );
    assert!(input.is_empty());
}

#[test]
fn files_input_takes_the_next_files_up_to_the_target() {
    let files: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("f{i}"))).collect();
    assert_eq!(
        files_input(1, &files, 5, Some(2)).unwrap(),
        BatchInput::Files {
            taken: 1,
            files: vec!["f1".into(), "f2".into()]
        }
    );
    // The target saw 3 files: the ones listed since are not read.
    assert_eq!(
        files_input(1, &files, 3, None).unwrap(),
        BatchInput::Files {
            taken: 1,
            files: vec!["f1".into(), "f2".into()]
        }
    );
    // Files gone from the directory bound the batch too.
    assert_eq!(
        files_input(4, &files, 9, None).unwrap(),
        BatchInput::Files {
            taken: 4,
            files: vec!["f4".into()]
        }
    );
    assert!(files_input(5, &files, 9, None).unwrap().is_empty());
}

#[test]
fn a_batch_starts_and_ends_where_its_input_says() {
    let input = kafka(&[(0, (3, 8)), (2, (10, 10))]);
    assert_eq!(
        start_position(&input),
        Position::Kafka(BTreeMap::from([(0, 3), (2, 10)]))
    );
    assert_eq!(
        end_position(&input),
        Position::Kafka(BTreeMap::from([(0, 8), (2, 10)]))
    );
    assert_eq!(
        offsets_view(&input),
        (
            BTreeMap::from([("0".to_string(), 3), ("2".to_string(), 10)]),
            BTreeMap::from([("0".to_string(), 8), ("2".to_string(), 10)])
        )
    );
    let files = BatchInput::Files {
        taken: 2,
        files: vec!["a".into(), "b".into()],
    };
    assert_eq!(start_position(&files), Position::Files(2));
    assert_eq!(end_position(&files), Position::Files(4));
    let rate = BatchInput::Rate {
        start_ms: 7,
        from: 10,
        to: 25,
    };
    assert_eq!(
        end_position(&rate),
        Position::Rate {
            start_ms: 7,
            next: 25
        }
    );
}

#[test]
fn resume_reads_the_newest_entry_and_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(Resume::read(&checkpoint).unwrap(), Resume::Fresh);
    assert_eq!(Resume::Fresh.committed(), 0);

    let first = offsets(0, kafka(&[(0, (0, 10)), (1, (0, 4))]), None);
    checkpoint.write_offsets(&first).unwrap();
    // Logged, not committed: run it again as logged.
    assert_eq!(
        Resume::read(&checkpoint).unwrap(),
        Resume::Rerun(first.clone())
    );
    assert_eq!(Resume::Rerun(first.clone()).committed(), 0);

    let commit = CommitEntry {
        batch_id: 0,
        watermark_ms: Some(1_000),
        output_rows: 3,
    };
    checkpoint.write_commit(&commit).unwrap();
    let resume = Resume::read(&checkpoint).unwrap();
    assert_eq!(
        resume,
        Resume::After {
            entry: first,
            commit
        }
    );
    assert_eq!(resume.committed(), 1);

    // The next batch logged over it wins, with the watermark it ran with.
    let second = offsets(1, kafka(&[(0, (10, 12)), (1, (4, 4))]), Some(1_000));
    checkpoint.write_offsets(&second).unwrap();
    let resume = Resume::read(&checkpoint).unwrap();
    assert_eq!(resume, Resume::Rerun(second));
    assert_eq!(resume.committed(), 1);
}

#[test]
fn the_watermark_trails_the_largest_event_and_never_goes_back() {
    let def = WatermarkDef {
        column: "ts".into(),
        delay: Duration::from_secs(5),
    };
    assert_eq!(
        advance_watermark(None, Some(&def), Some(10_000)),
        Some(5_000)
    );
    assert_eq!(
        advance_watermark(Some(7_000), Some(&def), Some(10_000)),
        Some(7_000)
    );
    assert_eq!(
        advance_watermark(Some(7_000), Some(&def), Some(20_000)),
        Some(15_000)
    );
    // No event time seen, or no watermark declared: unchanged.
    assert_eq!(
        advance_watermark(Some(7_000), Some(&def), None),
        Some(7_000)
    );
    assert_eq!(
        advance_watermark(Some(7_000), None, Some(20_000)),
        Some(7_000)
    );
    assert_eq!(advance_watermark(None, None, Some(20_000)), None);
}

#[test]
fn a_batch_has_a_task_per_partition_with_records_or_per_file() {
    let config = QueryConfig {
        id: "j".into(),
        name: "n".into(),
        script: "s".into(),
        bootstrap: Some("b:9092".into()),
        checkpoint: PathBuf::new(),
        scope: JobScope::default(),
    };
    let source = SourceSpec::Kafka {
        bootstrap: "b:9092".into(),
        topic: "t".into(),
        earliest: true,
    };
    let mut entry = offsets(4, kafka(&[(0, (0, 10)), (1, (5, 5)), (2, (3, 4))]), Some(9));
    entry.tables = BTreeMap::from([("dim".to_string(), BTreeMap::from([(0, 42)]))]);
    let tasks = tasks_for(&config, &source, &entry);
    let inputs: Vec<&TaskInput> = tasks.iter().map(|t| &t.input).collect();
    assert_eq!(
        inputs,
        [
            &TaskInput::Kafka {
                partition: 0,
                start: 0,
                end: 10
            },
            &TaskInput::Kafka {
                partition: 2,
                start: 3,
                end: 4
            }
        ]
    );
    assert!(tasks.iter().all(|t| t.batch_id == 4
        && t.watermark_ms == Some(9)
        && t.job_id == "j"
        && t.tables == entry.tables));

    let files = offsets(
        0,
        BatchInput::Files {
            taken: 0,
            files: vec!["/in/a".into(), "/in/b".into()],
        },
        None,
    );
    let source = SourceSpec::Files {
        dir: PathBuf::new(),
        max_files: None,
    };
    let inputs: Vec<TaskInput> = tasks_for(&config, &source, &files)
        .into_iter()
        .map(|t| t.input)
        .collect();
    assert_eq!(
        inputs,
        [
            TaskInput::Files {
                names: vec!["a".into()]
            },
            TaskInput::Files {
                names: vec!["b".into()]
            }
        ]
    );
}

#[test]
fn state_replies_add_up_in_partition_order() {
    let reply = |rows_updated, snapshot: &[u8]| StateReply {
        meta: StateMeta {
            rows_updated,
            state_rows: 10 * rows_updated,
            state_bytes: 100 * rows_updated,
            apply_ms: 0,
        },
        emitted: Vec::new(),
        snapshot: snapshot.to_vec(),
    };
    let applied = Applied::from_replies(vec![
        ("a".into(), reply(1, b"p0")),
        ("b".into(), reply(2, b"p1")),
        ("a".into(), reply(3, b"p2")),
    ])
    .unwrap();
    assert_eq!(
        applied.snapshots,
        [b"p0".to_vec(), b"p1".to_vec(), b"p2".to_vec()]
    );
    assert_eq!(
        (
            applied.figures.rows_updated,
            applied.figures.rows,
            applied.figures.bytes
        ),
        (6, 60, 600)
    );
    assert_eq!(
        applied.figures.owners,
        BTreeMap::from([("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])])
    );
}

#[tokio::test]
async fn the_final_query_runs_over_the_emitted_groups_only_when_there_are_some() {
    use datafusion::arrow::array::{Array, AsArray as _, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::arrow::record_batch::RecordBatch;

    let plan = JobPlan::new(
        parse_script(
            "CREATE TABLE tx (account TEXT, amount BIGINT) WITH (connector = 'files', path = '/in');
             CREATE TABLE out WITH (connector = 'memory', output_mode = 'update');
             INSERT INTO out SELECT account, count(*) AS n FROM tx GROUP BY account HAVING count(*) > 1;",
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let aggregate = plan.aggregate().unwrap();
    let groups = RecordBatch::try_new(
        Arc::clone(&aggregate.groups_schema),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int64Array::from(vec![1, 5])),
        ],
    )
    .unwrap();
    let output = finalize(Some(aggregate), vec![groups.clone()])
        .await
        .unwrap();
    let rows: usize = output.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1, "HAVING keeps b alone");
    assert_eq!(output[0].column(1).as_primitive::<Int64Type>().value(0), 5);
    assert!(
        finalize(Some(aggregate), Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    // DISTINCT emits its rows as they are.
    let passed = finalize(None, vec![groups]).await.unwrap();
    assert_eq!(passed[0].column(0).len(), 2);
}

/// A directory of JSON-lines files `part-<n>.json`, file `n` with `n + 1` records.
fn write_inputs(dir: &Path, files: std::ops::Range<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    for n in files {
        let text: String = (0..=n)
            .map(|i| format!("{{\"account\":\"a{}\",\"amount\":{i}}}\n", i % 3))
            .collect();
        std::fs::write(dir.join(format!("part-{n:04}.json")), text).unwrap();
    }
}

/// A map job over the files under `dir/in`, into memory.
fn files_job(dir: &Path, options: &str, settings: &str) -> String {
    format!(
        "CREATE TABLE tx (account TEXT, amount BIGINT) WITH (connector = 'files', path = '{}'{options});
         CREATE TABLE out WITH (connector = 'memory');
         {settings}
         INSERT INTO out SELECT account, amount FROM tx;",
        dir.join("in").display()
    )
}

async fn start(dir: &Path, script: &str) -> (Query, Arc<QueryHandle>) {
    let handle = Arc::new(QueryHandle::default());
    let query = Query::start(
        QueryConfig {
            id: "test".into(),
            name: "test".into(),
            script: script.into(),
            bootstrap: None,
            checkpoint: dir.join("checkpoint"),
            scope: JobScope::default(),
        },
        Arc::new(LocalRunner::default()),
        ConsumerPool::shared(),
        Arc::clone(&handle),
    )
    .await
    .unwrap();
    (query, handle)
}

fn commit_of(dir: &Path, batch: u64) -> Option<CommitEntry> {
    Checkpoint::open(&dir.join("checkpoint"))
        .unwrap()
        .commit_of(batch)
        .unwrap()
}

fn batches_committed(handle: &QueryHandle) -> u64 {
    handle.status.lock().unwrap().batches_committed
}

#[tokio::test]
async fn a_new_query_starts_at_the_first_file_and_resumes_after_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_inputs(&dir.join("in"), 0..3);
    let script = files_job(dir, ", max_files_per_trigger = '1'", "");

    let (mut query, handle) = start(dir, &script).await;
    query.recover().await.unwrap();
    assert_eq!((query.next_batch, &query.position), (0, &None));
    assert_eq!(
        query.next_input(&Position::Files(3)).await.unwrap(),
        BatchInput::Files {
            taken: 0,
            files: vec![dir.join("in/part-0000.json")]
        }
    );
    assert!(query.step(None).await.unwrap());
    assert!(query.step(None).await.unwrap());
    assert_eq!(batches_committed(&handle), 2);
    // Files 0 and 1: 1 and 2 records.
    assert_eq!(commit_of(dir, 1).unwrap().output_rows, 2);
    drop(query);

    // A restart resumes after batch 1, at the third file.
    let (mut query, handle) = start(dir, &script).await;
    query.recover().await.unwrap();
    assert_eq!(query.next_batch, 2);
    assert_eq!(query.position, Some(Position::Files(2)));
    assert_eq!(batches_committed(&handle), 2);
    assert_eq!(
        query.next_input(&Position::Files(3)).await.unwrap(),
        BatchInput::Files {
            taken: 2,
            files: vec![dir.join("in/part-0002.json")]
        }
    );
    assert!(query.step(None).await.unwrap());
    assert_eq!(commit_of(dir, 2).unwrap().output_rows, 3);
    // Nothing new: no batch, nothing logged.
    assert!(!query.step(None).await.unwrap());
    let checkpoint = Checkpoint::open(&dir.join("checkpoint")).unwrap();
    assert_eq!(checkpoint.latest_offsets().unwrap().unwrap().batch_id, 2);
    // A file that arrives later is the next batch (a processing-time trigger lists again).
    write_inputs(&dir.join("in"), 3..4);
    assert!(query.step(None).await.unwrap());
    assert_eq!(commit_of(dir, 3).unwrap().output_rows, 4);
    let progress = handle.recent(1);
    assert_eq!(progress[0].batch_id, 3);
    assert_eq!(progress[0].sources[0].start_offset["files"], 3);
    assert_eq!(progress[0].sources[0].end_offset["files"], 4);
}

#[tokio::test]
async fn an_uncommitted_batch_runs_again_with_exactly_its_logged_input() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_inputs(&dir.join("in"), 0..4);
    // No per-trigger bound: a new batch would take every file left.
    let script = files_job(dir, "", "");
    let (mut query, _) = start(dir, &script).await;
    query.recover().await.unwrap();
    assert_eq!(
        query.next_input(&Position::Files(4)).await.unwrap(),
        BatchInput::Files {
            taken: 0,
            files: (0..4)
                .map(|n| dir.join(format!("in/part-{n:04}.json")))
                .collect()
        }
    );
    drop(query);

    // Batch 0 committed file 0; batch 1 was logged with file 1 alone, then the driver died.
    let checkpoint = Checkpoint::open(&dir.join("checkpoint")).unwrap();
    let first = offsets(
        0,
        BatchInput::Files {
            taken: 0,
            files: vec![dir.join("in/part-0000.json")],
        },
        None,
    );
    checkpoint.write_offsets(&first).unwrap();
    checkpoint
        .write_commit(&CommitEntry {
            batch_id: 0,
            watermark_ms: None,
            output_rows: 1,
        })
        .unwrap();
    let logged = offsets(
        1,
        BatchInput::Files {
            taken: 1,
            files: vec![dir.join("in/part-0001.json")],
        },
        None,
    );
    checkpoint.write_offsets(&logged).unwrap();

    let (mut query, handle) = start(dir, &script).await;
    query.recover().await.unwrap();
    // It ran batch 1 as logged (file 1: 2 rows), not the 3 files a new batch would take.
    assert_eq!(
        commit_of(dir, 1),
        Some(CommitEntry {
            batch_id: 1,
            watermark_ms: None,
            output_rows: 2
        })
    );
    assert_eq!(checkpoint.latest_offsets().unwrap(), Some(logged));
    assert_eq!(query.next_batch, 2);
    assert_eq!(query.position, Some(Position::Files(2)));
    assert_eq!(batches_committed(&handle), 2);
    assert_eq!(handle.recent(10).len(), 1);
    assert_eq!(handle.recent(1)[0].batch_id, 1);
    // Then the rest in one batch.
    assert!(query.step(None).await.unwrap());
    assert_eq!(commit_of(dir, 2).unwrap().output_rows, 3 + 4);
}

#[tokio::test]
async fn a_stateful_batch_run_again_commits_what_its_first_run_did() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_inputs(&dir.join("in"), 0..3);
    let script = format!(
        "CREATE TABLE tx (account TEXT, amount BIGINT) WITH (connector = 'files', path = '{}', max_files_per_trigger = '1');
         CREATE TABLE out WITH (connector = 'memory', output_mode = 'update');
         SET state_partitions = '2';
         INSERT INTO out SELECT account, count(*) AS n, sum(amount) AS total FROM tx GROUP BY account;",
        dir.join("in").display()
    );
    let (mut query, _) = start(dir, &script).await;
    query.recover().await.unwrap();
    for _ in 0..3 {
        assert!(query.step(None).await.unwrap());
    }
    drop(query);
    let first_run = commit_of(dir, 2).unwrap();
    // Groups a0, a1, a2 all change in batch 2 (file 2's records 0, 1, 2).
    assert_eq!(first_run.output_rows, 3);
    let commit = dir.join(format!("checkpoint/commits/{:020}", 2));
    std::fs::remove_file(&commit).unwrap();

    // The rerun restores the state after batch 1 from the checkpoint's snapshots.
    let (mut query, handle) = start(dir, &script).await;
    query.recover().await.unwrap();
    assert_eq!(commit_of(dir, 2), Some(first_run));
    assert_eq!(query.next_batch, 3);
    let progress = &handle.recent(1)[0];
    assert_eq!(progress.batch_id, 2);
    assert_eq!(progress.state_operators[0].num_state_partitions, 2);
    assert_eq!(progress.state_operators[0].num_rows_total, 3);
}

#[tokio::test]
async fn available_now_reads_what_existed_at_start_then_completes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_inputs(&dir.join("in"), 0..3);
    let script = files_job(
        dir,
        ", max_files_per_trigger = '2'",
        "SET trigger = 'available_now';",
    );
    // The target fixed at start bounds every batch: a file listed since is left for later.
    let (mut query, _) = start(dir, &script).await;
    query.recover().await.unwrap();
    let target = Position::Files(3);
    write_inputs(&dir.join("in"), 3..4);
    assert!(query.step(Some(&target)).await.unwrap());
    assert_eq!(query.position, Some(Position::Files(2)));
    assert!(query.step(Some(&target)).await.unwrap());
    assert_eq!(query.position, Some(Position::Files(3)));
    assert!(!query.step(Some(&target)).await.unwrap());
    drop(query);

    // The whole loop: a restart takes the file left, then completes.
    let (query, handle) = start(dir, &script).await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    assert_eq!(query.run(stopped).await, QueryState::Completed);
    assert_eq!(batches_committed(&handle), 3);
    assert_eq!(commit_of(dir, 2).unwrap().output_rows, 4);
    assert_eq!(commit_of(dir, 3), None);
}

#[tokio::test]
async fn a_rate_source_reads_at_most_max_records_per_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let script = "CREATE TABLE r WITH (connector = 'rate', rows_per_second = '100');
         CREATE TABLE out WITH (connector = 'blackhole');
         SET max_records_per_trigger = '30';
         INSERT INTO out SELECT ts, value FROM r;";
    let (mut query, _) = start(dir, script).await;
    query.recover().await.unwrap();
    let due = |next| Position::Rate {
        start_ms: 5_000,
        next,
    };
    let input = query.next_input(&due(100)).await.unwrap();
    assert_eq!(
        input,
        BatchInput::Rate {
            start_ms: 5_000,
            from: 0,
            to: 30
        }
    );
    // A new query starts its rows at 0.
    assert_eq!(query.position, Some(due(0)));
    query.position = Some(end_position(&input));
    assert_eq!(
        query.next_input(&due(45)).await.unwrap(),
        BatchInput::Rate {
            start_ms: 5_000,
            from: 30,
            to: 45
        }
    );
}
