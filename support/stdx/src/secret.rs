//! Secrets handed to processes as files: a value that never shows in `Debug` output, read from a
//! file that only its owner may read, written that way, and compared in constant time.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The shortest secret accepted from a file (32 characters).
pub const MIN_SECRET_LEN: usize = 32;

/// A secret string: `Debug` prints `Secret(..)`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in time that depends only on the lengths.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

/// Why a secret file is refused.
#[derive(Debug)]
pub enum SecretFileError {
    /// It cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Its group or others may read or write it.
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It holds fewer than [`MIN_SECRET_LEN`] characters (after trimming).
    TooShort {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretFileError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            SecretFileError::Mode { path, mode } => write!(
                f,
                "{} has mode {mode:o}: a secret file may be readable by its owner only (chmod 600)",
                path.display()
            ),
            SecretFileError::TooShort { path } => write!(
                f,
                "{} holds fewer than {MIN_SECRET_LEN} characters",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SecretFileError {}

/// Reads a secret from `path`: mode 0600 or stricter, at least [`MIN_SECRET_LEN`] characters,
/// surrounding whitespace trimmed.
///
/// # Errors
/// A [`SecretFileError`] naming the file.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    let read = |source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let value = text.trim();
    if value.len() < MIN_SECRET_LEN {
        return Err(SecretFileError::TooShort {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(value.to_owned()))
}

/// Writes `value` to `path` with mode 0600 (through a temporary file renamed over it, so the file
/// never exists with a wider mode or half written).
///
/// # Errors
/// The I/O error.
pub fn write_secret_file(path: &Path, value: &str) -> std::io::Result<()> {
    write_secret_file_as(path, value, None)
}

/// [`write_secret_file`], the file owned by `owner` (`(uid, gid)`; changing it needs root)
/// before it is renamed into place. The temporary file is created new (never through an existing
/// name or link), so a directory its future owner may write in cannot redirect the write.
///
/// # Errors
/// The I/O error.
pub fn write_secret_file_as(
    path: &Path,
    value: &str,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    // A name of its own, so that concurrent writers do not meet on one temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.write_all(value.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `a == b` in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secret_files_round_trip_and_refuse_wide_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential");
        let value = "0123456789abcdef0123456789abcdef";
        write_secret_file(&path, value).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let secret = read_secret_file(&path).unwrap();
        assert!(secret.matches(value.as_bytes()));
        assert!(!secret.matches(b"0123456789abcdef0123456789abcdeX"));
        assert!(!secret.matches(b""));
        assert_eq!(format!("{secret:?}"), "Secret(..)");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_secret_file(&path),
            Err(SecretFileError::Mode { mode: 0o644, .. })
        ));
        write_secret_file(&path, "short").unwrap();
        assert!(matches!(
            read_secret_file(&path),
            Err(SecretFileError::TooShort { .. })
        ));
    }
}
