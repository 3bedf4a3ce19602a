//! The process table under `/proc`: which processes there are, each with its directory there.

use std::path::PathBuf;

/// Every process listed under `/proc`, as its pid and its `/proc/<pid>` directory (empty when
/// `/proc` cannot be read). A process may exit before its files are read: callers skip those.
pub fn processes() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, entry.path()))
        })
        .collect()
}
