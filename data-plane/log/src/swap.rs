//! The files of a log clean and their crash recovery, after Kafka's rules, plus the cleaner's
//! durable checkpoint.
//!
//! A clean replaces a group of adjacent segments `[B, ...]` by one cleaned segment in these
//! steps, each of which a crash may interrupt:
//! 1. write `B.log.cleaned` and fsync it;
//! 2. rename it to `B.log.swap` and fsync the directory: from here the clean is decided;
//! 3. rename each old segment `X.log` of the group to `X.log.deleted`;
//! 4. rename `B.log.swap` to `B.log` and fsync the directory;
//! 5. delete the `.deleted` files.
//!
//! Recovery when the log opens ([`recover`]): a `.cleaned` file is an unfinished clean and is
//! deleted (the old segments are all still there). A `.swap` file is complete: every `.log`
//! segment whose base offset falls inside the swap's offsets is one it replaces and is deleted,
//! then the swap is renamed to `.log`. Remaining `.deleted` files are deleted. Old segments of a
//! group that lie past the swap's last offset (everything in them was cleaned away) may survive
//! a crash between steps 2 and 3; they hold only superseded records at offsets the swap does not
//! cover, so the log stays ordered and the next clean removes them again.
//!
//! The checkpoint (`cleaner-checkpoint`, written to a temporary file, fsynced and renamed) keeps
//! the first dirty offset: everything below it has been cleaned by a pass that swapped all of
//! its groups. When tombstones and markers may go is kept in the batches themselves (their
//! KIP-534 delete horizon), not here. The file starts with `version 2`; a file without it was
//! written by a cleaner that advanced the checkpoint without deduplicating transactional records,
//! so it reads as no progress (the first pass deduplicates the whole log once, after which
//! removing a tombstone below the checkpoint cannot bring an older value back).

use std::path::{Path, PathBuf};

use crate::LogError;
use crate::segment::{self, Segment};

pub(crate) const CLEANED: &str = ".cleaned";
pub(crate) const SWAP: &str = ".swap";
pub(crate) const DELETED: &str = ".deleted";
const CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// The checkpoint's first line: written by a cleaner that deduplicates transactional records
/// (older files' progress is not trusted, see the module docs).
const CHECKPOINT_VERSION: &str = "version 2";

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// `dir/<base>.log<suffix>`.
pub(crate) fn path_with(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}{suffix}", segment::file_name(base)))
}

/// The base offset of `<base>.log<suffix>`.
fn parse_with(name: &str, suffix: &str) -> Option<i64> {
    segment::parse_file_name(name.strip_suffix(suffix)?)
}

/// Finishes or undoes an interrupted clean in `dir` (see the module docs). Returns what it did,
/// for the log's [`crate::Recovery`].
///
/// # Errors
/// [`LogError::Io`].
pub(crate) fn recover(dir: &Path, index_interval_bytes: u64) -> Result<Vec<String>, LogError> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io("cannot list log directory", dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let mut done = Vec::new();
    for name in &names {
        if parse_with(name, CLEANED).is_some() {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(io("cannot delete", &path))?;
            done.push(format!("deleted unfinished clean {name}"));
        }
    }
    let mut swaps: Vec<i64> = names.iter().filter_map(|n| parse_with(n, SWAP)).collect();
    swaps.sort_unstable();
    for base in swaps {
        let swap = path_with(dir, base, SWAP);
        let (cleaned, _) = Segment::open(&swap, base, index_interval_bytes, true)?;
        let end = cleaned.next_offset;
        drop(cleaned);
        let logs: Vec<i64> = std::fs::read_dir(dir)
            .map_err(io("cannot list log directory", dir))?
            .filter_map(Result::ok)
            .filter_map(|entry| segment::parse_file_name(&entry.file_name().to_string_lossy()))
            .filter(|b| *b >= base && (*b < end || *b == base))
            .collect();
        for old in logs {
            let path = dir.join(segment::file_name(old));
            std::fs::remove_file(&path).map_err(io("cannot delete replaced segment", &path))?;
            done.push(format!("deleted segment {old} replaced by a clean"));
        }
        let target = dir.join(segment::file_name(base));
        std::fs::rename(&swap, &target).map_err(io("cannot rename swap", &swap))?;
        done.push(format!("completed the clean of segment {base}"));
    }
    for name in &names {
        if parse_with(name, DELETED).is_some() {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(io("cannot delete", &path))?;
            done.push(format!("deleted {name}"));
        }
    }
    if !done.is_empty() {
        segment::sync_dir(dir)?;
    }
    Ok(done)
}

/// The cleaner's durable progress for one log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every offset below this has been cleaned by a pass that swapped all its groups.
    pub first_dirty: i64,
}

impl Checkpoint {
    /// Reads the checkpoint of `dir` (empty when there is none, it does not parse or is not
    /// [`CHECKPOINT_VERSION`]: the cleaner then starts from the log start, which is always safe).
    pub(crate) fn read(dir: &Path) -> Checkpoint {
        let Ok(text) = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) else {
            return Checkpoint::default();
        };
        let mut lines = text.lines();
        if lines.next() != Some(CHECKPOINT_VERSION) {
            return Checkpoint::default();
        }
        let first_dirty = lines
            .next()
            .and_then(|l| l.strip_prefix("first-dirty "))
            .and_then(|v| v.trim().parse().ok())
            .filter(|_| lines.next().is_none());
        match first_dirty {
            Some(first_dirty) => Checkpoint { first_dirty },
            None => Checkpoint::default(),
        }
    }

    /// Writes the checkpoint durably (temporary file, fsync, rename, directory fsync).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let text = format!("{CHECKPOINT_VERSION}\nfirst-dirty {}\n", self.first_dirty);
        std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io("cannot sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("cannot rename", &tmp))?;
        segment::sync_dir(dir)
    }

    /// Records a pass that cleaned everything below `up_to`.
    pub(crate) fn advance(&mut self, up_to: i64) {
        self.first_dirty = self.first_dirty.max(up_to);
    }

    /// Forgets progress past `end` (the log was truncated there).
    pub(crate) fn clamp(&mut self, end: i64) {
        self.first_dirty = self.first_dirty.min(end);
    }
}

/// Test support: a crash injected before the n-th file operation of a clean. Each step of the
/// swap (a file created, synced, renamed or deleted, the checkpoint written) first asks
/// `FailPoint::step`; once the budget is spent every step fails, as if the process had died
/// there (nothing after it runs, nothing is cleaned up).
#[derive(Clone, Debug, Default)]
pub struct FailPoint {
    remaining: Option<u32>,
}

impl FailPoint {
    /// Never fails.
    pub fn none() -> FailPoint {
        FailPoint { remaining: None }
    }

    /// Fails the `n`-th step (0-based) and every later one.
    pub fn after(n: u32) -> FailPoint {
        FailPoint { remaining: Some(n) }
    }

    /// Whether a step failed.
    pub fn fired(&self) -> bool {
        self.remaining == Some(0)
    }

    pub(crate) fn step(&mut self, what: &'static str, path: &Path) -> Result<(), LogError> {
        match &mut self.remaining {
            None => Ok(()),
            Some(0) => Err(LogError::Io {
                action: what,
                path: path.to_owned(),
                source: std::io::Error::other("injected crash"),
            }),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn checkpoint_round_trips_only_advances_and_distrusts_older_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()), Checkpoint::default());
        let mut checkpoint = Checkpoint::default();
        checkpoint.advance(25);
        checkpoint.advance(10);
        checkpoint.write(dir.path()).unwrap();
        let read = Checkpoint::read(dir.path());
        assert_eq!(read, checkpoint);
        assert_eq!(read.first_dirty, 25);
        let mut clamped = read.clone();
        clamped.clamp(10);
        assert_eq!(clamped.first_dirty, 10);
        // Older versions' checkpoints (without the version line, with or without their pass
        // history) were advanced past undeduplicated transactional records: no progress.
        for old in ["first-dirty 40\n", "first-dirty 40\n10 1000\n40 2000\n"] {
            std::fs::write(dir.path().join(CHECKPOINT_FILE), old).unwrap();
            assert_eq!(
                Checkpoint::read(dir.path()),
                Checkpoint::default(),
                "{old:?}"
            );
        }
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            "version 2\nfirst-dirty 40\n",
        )
        .unwrap();
        assert_eq!(Checkpoint::read(dir.path()).first_dirty, 40);
    }
}
