//! Helpers shared by the log's integration tests: a temporary directory removed on drop.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::PathBuf;

/// A fresh directory for one test, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    /// A new empty directory tagged `tag` (a leftover of an earlier run is removed first).
    pub fn new(tag: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("hdi-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
