//! The node's identity, kept in its data directory so that a restarted agent is the same node, and
//! the lock that keeps two agents off one data directory.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What identifies this node across restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node id, chosen on first start.
    pub id: Uuid,
    /// The node name.
    pub name: String,
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// An I/O error on a file of the data directory.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another agent holds the data directory.
    #[error("another hdi-node-agent is running with --data-dir {path}")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The identity file is not valid JSON of the expected shape.
    #[error("{path} is corrupt; move it away to register as a new node")]
    Corrupt {
        /// The identity file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// An exclusive lock on a data directory, held for the agent's lifetime.
pub struct DataDirLock {
    _lock: hdi_stdx::DataDirLock,
}

/// Creates `data_dir` if needed and locks it (`flock`), so that a second agent on it fails fast.
///
/// # Errors
/// [`IdentityError::Locked`] when another agent holds it; [`IdentityError::Io`] otherwise.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, IdentityError> {
    use hdi_stdx::LockError;
    match hdi_stdx::lock_data_dir(data_dir, "agent.lock") {
        Ok(lock) => Ok(DataDirLock { _lock: lock }),
        Err(LockError::Locked) => Err(IdentityError::Locked {
            path: data_dir.to_owned(),
        }),
        Err(LockError::CreateDir(source)) => Err(IdentityError::Io {
            action: "cannot create",
            path: data_dir.to_owned(),
            source,
        }),
        Err(LockError::Open { path, source }) => Err(IdentityError::Io {
            action: "cannot open",
            path,
            source,
        }),
        Err(LockError::Lock { path, source }) => Err(IdentityError::Io {
            action: "cannot lock",
            path,
            source,
        }),
    }
}

/// Loads the identity from `data_dir/node.json`, or creates it (new id) on first start. A `name`
/// given on the command line replaces the stored one.
///
/// # Errors
/// [`IdentityError`] when the file cannot be read, decoded or written.
pub fn load_or_create(data_dir: &Path, name: Option<&str>) -> Result<Identity, IdentityError> {
    let path = data_dir.join("node.json");
    let stored = match std::fs::read(&path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<Identity>(&bytes).map_err(|source| {
                IdentityError::Corrupt {
                    path: path.clone(),
                    source,
                }
            })?,
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(IdentityError::Io {
                action: "cannot read",
                path,
                source,
            });
        }
    };
    let identity = match stored {
        Some(identity) if name.is_none_or(|n| n == identity.name) => return Ok(identity),
        Some(identity) => Identity {
            id: identity.id,
            name: name.unwrap_or_default().to_owned(),
        },
        None => {
            let id = Uuid::new_v4();
            let name = name
                .map(str::to_owned)
                .unwrap_or_else(|| format!("node-{}", &id.simple().to_string()[..8]));
            Identity { id, name }
        }
    };
    write_atomically(&path, &identity)?;
    Ok(identity)
}

fn write_atomically(path: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let tmp = path.with_extension("json.tmp");
    let io = |action, source| IdentityError::Io {
        action,
        path: tmp.clone(),
        source,
    };
    let mut file = File::create(&tmp).map_err(|e| io("cannot create", e))?;
    let bytes = serde_json::to_vec_pretty(identity).map_err(|e| io("cannot encode", e.into()))?;
    file.write_all(&bytes).map_err(|e| io("cannot write", e))?;
    file.sync_all().map_err(|e| io("cannot sync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("cannot rename", e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync directory of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_restart_and_rename() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let _lock = lock_data_dir(&dir).unwrap();
        let first = load_or_create(&dir, Some("node-a")).unwrap();
        assert_eq!(load_or_create(&dir, None).unwrap(), first);
        let renamed = load_or_create(&dir, Some("node-b")).unwrap();
        assert_eq!((renamed.id, renamed.name.as_str()), (first.id, "node-b"));
        std::fs::write(dir.join("node.json"), b"{not json").unwrap();
        assert!(matches!(
            load_or_create(&dir, None),
            Err(IdentityError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_second_lock_on_the_same_dir_fails() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let first = lock_data_dir(&dir).unwrap();
        assert!(matches!(
            lock_data_dir(&dir),
            Err(IdentityError::Locked { .. })
        ));
        drop(first);
        lock_data_dir(&dir).unwrap();
    }
}
