//! The executor's librdkafka reads (tables, secured clusters' sources, the sink's rerun check)
//! over what compaction and transactions leave in a log: offsets with no record (cleaned-away
//! records, transaction markers, aborted records a `read_committed` consumer drops) and a range
//! ending in a marker. A real `hdi-broker` with its cleaner, confluent-kafka's transactional
//! producer, and `hdi_executor::source::kafka_read_table` as a table source calls it.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hdi_e2e::{Broker, TempDir, client_command, client_script, kcat, test_python};
use hdi_executor::source::{ConsumerPool, kafka_read_table};

fn offsets(bootstrap: &str, topic: &str) -> Vec<i64> {
    let (ok, out, err) = kcat(
        bootstrap,
        &[
            "-C",
            "-t",
            topic,
            "-e",
            "-q",
            "-f",
            "%o\n",
            "-X",
            "isolation.level=read_uncommitted",
        ],
        None,
    );
    assert!(ok, "kcat consume: {err}");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn table(pool: &ConsumerPool, bootstrap: &str, topic: &str) -> Vec<String> {
    let rows = kafka_read_table(pool, bootstrap, topic).unwrap();
    (0..rows.len())
        .map(|i| String::from_utf8(rows.record(i).to_vec()).unwrap())
        .collect()
}

#[test]
fn a_table_reads_a_compacted_transactional_topic_with_gaps_and_markers() {
    let dir = TempDir::new("exec-table");
    let broker = Broker::start(dir.path(), None, &["--log-cleaner-backoff", "100ms"]);
    let b = broker.bootstrap.clone();
    let mut feed = client_command(test_python())
        .arg(client_script("table_feed.py"))
        .args(["--bootstrap", &b, "--topic", "accounts"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(feed.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "open");

    // The cleaner has compacted the 500 plain records: their offsets have gaps.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = offsets(&b, "accounts");
        if seen.len() < 300 {
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            assert!(seen.windows(2).any(|w| w[1] - w[0] > 1), "no gap: {seen:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never compacted: {} records",
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Read to the last stable offset: the open transaction's k2 is not seen yet, the aborted
    // k1 never, the range ends in the abort marker.
    let pool = ConsumerPool::shared();
    let mut want: Vec<String> = (0..10).map(|k| format!("k{k}-49")).collect();
    want[0] = "committed".into();
    assert_eq!(table(&pool, &b, "accounts"), want);

    let mut stdin = feed.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    assert!(feed.wait().unwrap().success());
    want[2] = "open".into();
    assert_eq!(table(&pool, &b, "accounts"), want);
}
