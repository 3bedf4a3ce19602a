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
