//! What every executor process does whatever its role: lock its data directory, watch for the
//! signals that stop it, bind its listen address, and check `host:port` flags.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// An exclusive `flock` on `<data-dir>/lock`, held until dropped (the process's lifetime).
#[derive(Debug)]
pub struct DataDirLock {
    _lock: hdi_stdx::DataDirLock,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error(
        "data directory {} is in use by another hdi-executor process (it holds {}/lock)",
        path.display(), path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The directory or its lock file cannot be created, opened or locked.
    #[error("{action} {}", path.display())]
    Io {
        /// What failed.
        action: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Creates `data_dir` if needed and locks it, so that a second process on it fails fast.
///
/// # Errors
/// [`DataDirError::Locked`] when another process holds it; [`DataDirError::Io`] otherwise.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, DataDirError> {
    use hdi_stdx::LockError;
    match hdi_stdx::lock_data_dir(data_dir, "lock") {
        Ok(lock) => Ok(DataDirLock { _lock: lock }),
        Err(LockError::Locked) => Err(DataDirError::Locked {
            path: data_dir.to_owned(),
        }),
        Err(LockError::CreateDir(source)) => Err(DataDirError::Io {
            action: "cannot create data directory",
            path: data_dir.to_owned(),
            source,
        }),
        Err(LockError::Open { path, source }) => Err(DataDirError::Io {
            action: "cannot open",
            path,
            source,
        }),
        Err(LockError::Lock { path, source }) => Err(DataDirError::Io {
            action: "cannot lock",
            path,
            source,
        }),
    }
}

/// Binds `--listen`; answers the listener and the address it got (the port when `listen` asked
/// for port 0).
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(listen: &str) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
    let local = listener
        .local_addr()
        .context("cannot read the listen address")?;
    Ok((listener, local))
}

/// SIGTERM and SIGINT, watched from start-up so that none is missed.
#[derive(Debug)]
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Starts watching SIGTERM and SIGINT (must run inside a Tokio runtime).
    ///
    /// # Errors
    /// When a signal handler cannot be installed.
    pub fn watch() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Waits for the next stop signal; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Checks a `host:port` value (a flag or a worker's reported address): a non-empty host, a colon,
/// and a port number. Returns it unchanged.
///
/// # Errors
/// A message saying what is wrong, for clap or a problem document.
pub fn parse_host_port(value: &str) -> Result<String, String> {
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("'{value}' is not host:port"));
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(format!("'{value}' has no valid host (expected host:port)"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "'{value}' has no valid port (expected host:port, port 0-65535)"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn host_port_values() {
        for good in [
            "127.0.0.1:0",
            "localhost:7077",
            "[::1]:80",
            "driver.svc:65535",
        ] {
            assert_eq!(parse_host_port(good).unwrap(), good);
        }
        for bad in [
            "",
            "127.0.0.1",
            ":80",
            "host:",
            "host:65536",
            "host:x",
            "a b:1",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_second_lock_on_the_same_directory_fails() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let first = lock_data_dir(&dir).unwrap();
        assert!(dir.join("lock").exists());
        let second = lock_data_dir(&dir).unwrap_err();
        assert!(matches!(second, DataDirError::Locked { .. }), "{second}");
        assert!(second.to_string().contains("in use"), "{second}");
        drop(first);
        drop(lock_data_dir(&dir).unwrap());
    }
}
