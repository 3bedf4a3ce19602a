//! `hdi-stdx`: small utilities that several hdi crates need and that fit nowhere else, on `std`
//! alone (no dependencies, so that every crate, the data plane's included, may use it).
//!
//! - [`lock_data_dir`]: an exclusive lock on a data directory, so that a second process given the
//!   same directory fails fast instead of corrupting it.
//! - [`error_chain`]: an error and its sources on one line, for logs and messages.
//! - [`secret`]: secrets handed to processes as 0600 files, never shown in `Debug`, compared in
//!   constant time.
//! - [`closed_ancestor`]: where other users cannot pass on the way to a path.

pub mod secret;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// An exclusive lock on a data directory (an advisory `flock` on a file in it), held until
/// dropped; the OS releases it when the process dies, however it dies.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why [`lock_data_dir`] failed. Callers turn it into their own error, with their own words.
#[derive(Debug)]
pub enum LockError {
    /// Another process (or another handle in this one) holds the lock.
    Locked,
    /// The directory cannot be created.
    CreateDir(std::io::Error),
    /// The lock file cannot be created or opened.
    Open {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Locking failed for another reason than the lock being held.
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Locked => f.write_str("the data directory is locked by another process"),
            LockError::CreateDir(_) => f.write_str("cannot create the data directory"),
            LockError::Open { path, .. } => write!(f, "cannot open {}", path.display()),
            LockError::Lock { path, .. } => write!(f, "cannot lock {}", path.display()),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Locked => None,
            LockError::CreateDir(source)
            | LockError::Open { source, .. }
            | LockError::Lock { source, .. } => Some(source),
        }
    }
}

/// Creates `data_dir` if needed and takes an exclusive lock on `data_dir/lock_file` without
/// waiting ([`File::try_lock`], `flock(LOCK_EX | LOCK_NB)` on Linux).
///
/// # Errors
/// [`LockError::Locked`] when the lock is held; the other variants on I/O errors.
pub fn lock_data_dir(data_dir: &Path, lock_file: &str) -> Result<DataDirLock, LockError> {
    std::fs::create_dir_all(data_dir).map_err(LockError::CreateDir)?;
    let path = data_dir.join(lock_file);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Locked),
        Err(TryLockError::Error(source)) => Err(LockError::Lock { path, source }),
    }
}

/// An error and its sources on one line: `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The outermost directory on the way to `path` (itself included) that users other than its
/// owner cannot pass through (no search permission for others), if any: a process switched to
/// another user could not reach `path` through it. `None` also when `path` cannot be resolved.
pub fn closed_ancestor(path: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = path.canonicalize().ok()?;
    path.ancestors()
        .filter(|dir| {
            std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 == 0)
        })
        .last()
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_is_dropped() {
        let temp = tempfile::TempDir::new().unwrap();
        let dir = temp.path().join("data");
        let first = lock_data_dir(&dir, "lock").unwrap();
        assert!(matches!(
            lock_data_dir(&dir, "lock"),
            Err(LockError::Locked)
        ));
        drop(first);
        let again = lock_data_dir(&dir, "lock");
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn error_chain_joins_every_source() {
        let error = LockError::Open {
            path: PathBuf::from("/x/lock"),
            source: std::io::Error::other("denied"),
        };
        assert_eq!(error_chain(&error), "cannot open /x/lock: denied");
    }
}
