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

/// Whether users other than an owner can pass through every directory on the way to `path`
/// (search permission for others on each), as a process switched to another user must.
pub fn reachable_by_others(path: &std::path::Path) -> bool {
    path.exists() && hdi_stdx::closed_ancestor(path).is_none()
}

/// Whether node agents started by this (test) process run workloads as their clusters' users:
/// it is root, and those users can reach the binaries' directory and every one of `dirs`.
/// Agents are started with `--run-workloads-as agent-user` otherwise, so that a checkout or
/// target directory closed to other users still runs the tests.
pub fn workloads_isolated(bin_dir: &std::path::Path, dirs: &[&std::path::Path]) -> bool {
    is_root() && reachable_by_others(bin_dir) && dirs.iter().all(|d| reachable_by_others(d))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn closed_directories_are_not_reachable() {
        let dir = std::env::temp_dir().join(format!("hdi-reach-{}", std::process::id()));
        let inner = dir.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        let mode = |m| std::fs::Permissions::from_mode(m);
        std::fs::set_permissions(&dir, mode(0o711)).unwrap();
        std::fs::set_permissions(&inner, mode(0o711)).unwrap();
        let open = reachable_by_others(&inner);
        std::fs::set_permissions(&dir, mode(0o700)).unwrap();
        let closed = reachable_by_others(&inner);
        std::fs::remove_dir_all(&dir).unwrap();
        // The system temp directory is open to all on every machine these tests run on.
        assert!(open);
        assert!(!closed);
        assert!(!reachable_by_others(&dir.join("gone")));
    }

    #[test]
    fn this_process_has_its_ids() {
        // Real, effective, saved and filesystem ids; a field that is not there gives none.
        assert_eq!(status_ids("self", "Uid").len(), 4);
        assert_eq!(status_ids("self", "Gid").len(), 4);
        assert!(status_ids("self", "NoSuchField").is_empty());
        assert!(
            status_ids("0", "Uid").is_empty(),
            "pid 0 has no /proc entry"
        );
    }
}
