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

/// The ids of a `/proc/<pid>/status` line such as `Uid:` or `Groups:` (`pid` may be `self`):
/// for `Uid` and `Gid` the real, effective, saved and filesystem ids. Empty when the process is
/// gone or has no such line.
pub fn status_ids(pid: &str, field: &str) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    status_ids("self", "Uid").get(1) == Some(&0)
}

/// Whether the user `uid` (with group `uid` and no supplementary groups) can read the file at
/// `path`: runs `cat` as that user (the caller must be root).
pub fn can_read_as(uid: u32, path: &std::path::Path) -> bool {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("cat")
        .arg(path)
        .uid(uid)
        .gid(uid)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
