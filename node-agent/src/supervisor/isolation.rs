//! Tenant isolation on a node: the operating-system identity each workload runs as, and the
//! ownership and modes of what the agent makes for it.
//!
//! With [`Isolation::ClusterUsers`] (the agent runs as root) every cluster's workloads run as
//! the cluster's own user, with the cluster's own group as their primary group and the
//! workspace's group as their only supplementary group, under umask 007:
//! - the workload directory stays root's (`root:<cluster> 0750`), so the agent's own files in it
//!   (the log, the pid file) cannot be swapped for links by the workload;
//! - its data directory (`data/`) is the cluster user's (`0700`);
//! - its secret directories are `root:<cluster> 0750` and their files the cluster user's `0600`
//!   (written under a fresh name, owned before they are renamed into place);
//! - a workspace's storage root is `root:<workspace> 2770`, shared by that workspace's clusters
//!   and closed to every other user.
//!
//! Nothing is followed through a symbolic link: ownership changes use `lchown`, and a data
//! directory is walked only the first time it is handed over (before any process of the cluster
//! could write in it).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use hdi_api::RunAs;

/// Who workloads run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Each cluster's workloads as the cluster's own user (the agent must be root).
    ClusterUsers,
    /// Every workload as the agent's own user (an agent that is not root cannot switch).
    AgentUser,
}

impl Isolation {
    /// `ClusterUsers` when this process is root, else `AgentUser`.
    pub fn for_this_process() -> Isolation {
        if is_root() {
            Isolation::ClusterUsers
        } else {
            Isolation::AgentUser
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    #[allow(unsafe_code, reason = "geteuid(2) takes nothing and cannot fail")]
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// The `(uid, gid)` files of a workload's process are given: its cluster's user and group.
pub fn owner(run_as: RunAs) -> (u32, u32) {
    (run_as.uid, run_as.uid)
}

/// Gives `dir` (the workload directory) to root and the cluster's group, `0750`.
///
/// # Errors
/// When it cannot be changed.
pub fn workload_dir(dir: &Path, run_as: RunAs) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(0), Some(run_as.uid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
}

/// Gives a secret directory to root and the cluster's group, `0750` (the workload reads its
/// files, which it owns, and cannot add, remove or swap entries).
///
/// # Errors
/// When it cannot be changed.
pub fn secret_dir(dir: &Path, run_as: RunAs) -> std::io::Result<()> {
    workload_dir(dir, run_as)
}

/// Hands the data directory `dir` to the cluster's user (`0700`). The first time (it is not the
/// user's yet) everything under it is handed over too: what an earlier agent or process left
/// there as another user.
///
/// # Errors
/// When something cannot be changed.
pub fn data_dir(dir: &Path, run_as: RunAs) -> std::io::Result<()> {
    let (uid, gid) = owner(run_as);
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.uid() != uid {
        chown_tree(dir, uid, gid)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Hands `dir` and everything under it to `uid:gid`, the directory itself last: its owner marks
/// a finished walk, so a walk that fails halfway is done again at the next start.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
}

/// Gives a workspace's storage root to root and the workspace's group, `2770` (new files take
/// the workspace's group).
///
/// # Errors
/// When it cannot be changed.
pub fn storage_root(dir: &Path, run_as: RunAs) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(0), Some(run_as.workspace_gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2770))
}

/// Whether others may run the program at `path`.
pub fn runnable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o001 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_ancestors_are_found() {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        for dir in [root.path(), &root.path().join("a"), &inner] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let walk = |p: &Path| hdi_stdx::closed_ancestor(p).filter(|d| d.starts_with(root.path()));
        assert_eq!(walk(&inner), None);
        std::fs::set_permissions(
            root.path().join("a"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(
            walk(&inner),
            Some(root.path().join("a").canonicalize().unwrap())
        );
    }

    #[test]
    fn a_data_dir_is_handed_over_whole() {
        if !is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("topic-0/sub")).unwrap();
        std::fs::write(data.join("meta"), b"m").unwrap();
        std::fs::write(data.join("topic-0/00.log"), b"l").unwrap();
        std::fs::write(data.join("topic-0/sub/x"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        let run_as = RunAs {
            uid: 1_500_000_001,
            workspace_gid: 1_500_000_002,
        };
        // What an earlier walk that stopped halfway leaves: one file handed over, the directory not.
        std::os::unix::fs::lchown(data.join("meta"), Some(run_as.uid), Some(run_as.uid)).unwrap();
        data_dir(&data, run_as).unwrap();
        for path in [
            data.clone(),
            data.join("meta"),
            data.join("topic-0"),
            data.join("topic-0/00.log"),
            data.join("topic-0/sub"),
            data.join("topic-0/sub/x"),
            data.join("link"),
        ] {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (run_as.uid, run_as.uid),
                "{path:?}"
            );
        }
        let passwd = std::fs::metadata("/etc/passwd").unwrap();
        assert_eq!(passwd.uid(), 0, "the link's target must not be handed over");
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777,
            0o700
        );
    }

    #[test]
    fn programs_must_be_executable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("p");
        std::fs::write(&program, b"").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!runnable_by_others(&program));
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(runnable_by_others(&program));
        assert!(!runnable_by_others(dir.path()));
    }
}
