//! The metadata quorum's storage (`cluster::raft`: the JSON-lines log with its group-commit fsync
//! thread, and the state machine) against openraft's own storage conformance suite: appends
//! acknowledged only once flushed and in order, truncation and purging across pending
//! acknowledgements, votes, snapshots, membership.

use hdi_broker::cluster::raft::{LogStore, StateMachine, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// A fresh log store and state machine in a temporary directory, kept while a test runs.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let io =
            |error: std::io::Error| StorageError::from(openraft::StorageIOError::write(&error));
        let dir = tempfile::tempdir().map_err(io)?;
        let log = LogStore::open(&dir.path().join("quorum")).map_err(io)?;
        let (machine, _view) = StateMachine::open(
            &dir.path().join("quorum"),
            Default::default(),
            Default::default(),
        )
        .map_err(io)?;
        Ok((dir, log, machine))
    }
}

#[test]
fn the_quorum_store_passes_openraft_s_storage_suite() -> Result<(), String> {
    Suite::test_all(Builder).map_err(|error| error.to_string())
}

/// A commit hint past the log's last entry, or naming an entry of another leader at its index,
/// is dropped (openraft would refuse to start with it); one matching an entry is kept.
#[tokio::test]
async fn a_commit_hint_that_does_not_match_the_log_is_dropped() {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    let id = |term: u64, index: u64| LogId::new(CommittedLeaderId::new(term, 0), index);
    let dir = tempfile::tempdir().unwrap();
    let quorum = dir.path().join("quorum");
    std::fs::create_dir_all(&quorum).unwrap();
    let mut lines = String::new();
    for index in 1..=3 {
        let entry: Entry<TypeConfig> = Entry {
            log_id: id(2, index),
            payload: EntryPayload::Blank,
        };
        lines.push_str(&serde_json::to_string(&entry).unwrap());
        lines.push('\n');
    }
    std::fs::write(quorum.join("log.jsonl"), lines).unwrap();
    let mut log = LogStore::open(&quorum).unwrap();
    let cases = [
        ("an entry of the log", id(2, 3), Some(id(2, 3))),
        ("an earlier entry", id(2, 1), Some(id(2, 1))),
        ("past the last entry", id(2, 4), None),
        ("another term at that index", id(1, 2), None),
    ];
    for (case, hint, want) in cases {
        log.save_committed(Some(hint)).await.unwrap();
        assert_eq!(log.read_committed().await.unwrap(), want, "{case}");
    }
}
