//! Helpers shared by the log's integration tests: a temporary directory removed on drop.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::PathBuf;

/// A fresh path for one test (not created yet), inside a temporary directory removed when
/// dropped.
pub struct Dir(pub PathBuf, tempfile::TempDir);

impl Dir {
    /// A new path tagged `tag`.
    pub fn new(tag: &str) -> Dir {
        let temp = tempfile::Builder::new()
            .prefix(&format!("hdi-log-{tag}-"))
            .tempdir()
            .unwrap();
        Dir(temp.path().join("log"), temp)
    }
}
