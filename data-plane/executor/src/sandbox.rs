//! The job sandbox: what a job's script may touch outside its own checkpoint.
//!
//! - [`FilesRoot`]: the directory the `files` source, the `file` static table and the `files`
//!   sink resolve their `path` in. The control plane gives each Spark cluster its workspace's
//!   storage root (`--files-root`); a relative path is taken inside it, an absolute one must lie
//!   in it, `..` is refused, and a path whose existing part leads out of it through a symbolic
//!   link is refused. Scripts are confined when they are planned (at submit, and again on every
//!   worker that plans them), and a worker reads only regular files, by name, inside the source
//!   directory it resolved itself ([`read_source_file`]), never a path sent over the wire.
//! - [`KafkaScope`]: the Kafka clusters a job's tables may name with `bootstrap_servers` (the
//!   control plane passes those of the job's workspace).
//!
//! `hdi-executor run` (one job in the user's own process) is unconfined unless given a root.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};

/// The largest file a `files` source or a `file` static table reads (256 MiB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Where a job's file connectors resolve their paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesRoot {
    /// The canonical root; `None` when unconfined.
    root: Option<PathBuf>,
}

impl FilesRoot {
    /// No confinement: paths are taken as written (`hdi-executor run` only).
    pub fn unconfined() -> FilesRoot {
        FilesRoot { root: None }
    }

    /// Confinement to `dir`, created if missing.
    ///
    /// # Errors
    /// When `dir` cannot be created or resolved.
    pub fn confined(dir: &Path) -> anyhow::Result<FilesRoot> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the files root {}", dir.display()))?;
        let root = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve the files root {}", dir.display()))?;
        Ok(FilesRoot { root: Some(root) })
    }

    /// The root, when confined.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Resolves a script's `path` option: inside the root when confined, as written otherwise.
    ///
    /// # Errors
    /// Why the path is refused, for people (the caller names the option and its position).
    pub fn resolve(&self, value: &str) -> Result<PathBuf, String> {
        if value.trim().is_empty() {
            return Err("is empty".into());
        }
        if value.contains('\0') {
            return Err("contains a NUL character".into());
        }
        let path = Path::new(value);
        let Some(root) = &self.root else {
            return Ok(path.to_path_buf());
        };
        let outside = || {
            format!(
                "'{value}' is outside the job's storage root {} (use a path relative to it)",
                root.display()
            )
        };
        let relative = if path.is_absolute() {
            path.strip_prefix(root).map_err(|_| outside())?
        } else {
            path
        };
        let mut inside = PathBuf::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => inside.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(format!(
                        "'{value}' may not contain '..' (paths resolve inside the job's storage root)"
                    ));
                }
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        let joined = root.join(&inside);
        // The part that exists must really lie in the root: a symbolic link may lead out of it.
        let mut existing = joined.as_path();
        let mut missing = Vec::new();
        while existing.symlink_metadata().is_err() {
            let (Some(name), Some(parent)) = (existing.file_name(), existing.parent()) else {
                return Err(outside());
            };
            missing.push(name.to_owned());
            existing = parent;
        }
        let real = existing
            .canonicalize()
            .map_err(|e| format!("'{value}' cannot be resolved: {e}"))?;
        if !real.starts_with(root) {
            return Err(format!(
                "'{value}' leads out of the job's storage root through a symbolic link"
            ));
        }
        Ok(missing
            .into_iter()
            .rev()
            .fold(real, |path, name| path.join(name)))
    }

    /// Checks again, when reading, that `path` (a resolved option) still lies in the root.
    ///
    /// # Errors
    /// When it resolves outside the root (a link placed since it was planned).
    pub fn recheck(&self, path: &Path) -> anyhow::Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let real = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        if !real.starts_with(root) {
            bail!("{} leads out of the job's storage root", path.display());
        }
        Ok(())
    }
}

/// Whether `name` may name a file of a `files` source: one path component, not hidden.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.starts_with('_')
        && !name.contains('/')
        && !name.contains('\0')
}

/// Reads the file `name` of the source directory `dir`: a regular file (a symbolic link is
/// refused), at most [`MAX_FILE_BYTES`].
///
/// # Errors
/// When the name is not a plain file name, the file is not a regular file, is too large or
/// cannot be read.
pub fn read_source_file(files: &FilesRoot, dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    if !valid_file_name(name) {
        bail!("'{name}' is not a file name of the source directory");
    }
    files.recheck(dir)?;
    read_regular_file(&dir.join(name))
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`], refusing symbolic links, devices, FIFOs
/// and directories.
///
/// # Errors
/// When it is not such a file or cannot be read.
pub fn read_regular_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{} has {} bytes, more than the {MAX_FILE_BYTES} a file may have",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!("{} grew past {MAX_FILE_BYTES} bytes", path.display());
    }
    Ok(bytes)
}

/// The Kafka clusters a job's tables may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaScope {
    /// Every allowed `host:port`, lower-cased; `None` when any address may be named.
    allowed: Option<BTreeSet<String>>,
}

impl KafkaScope {
    /// Any cluster may be named.
    pub fn any() -> KafkaScope {
        KafkaScope { allowed: None }
    }

    /// Only the clusters whose bootstrap servers (`host:port,host:port`) are listed.
    pub fn only<'a>(clusters: impl IntoIterator<Item = &'a str>) -> KafkaScope {
        KafkaScope {
            allowed: Some(clusters.into_iter().flat_map(addresses).collect()),
        }
    }

    /// Checks a table's `bootstrap_servers`: every address must belong to an allowed cluster.
    ///
    /// # Errors
    /// Why it is refused, for people.
    pub fn check(&self, bootstrap: &str) -> Result<(), String> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let named: Vec<String> = addresses(bootstrap).collect();
        if named.is_empty() {
            return Err("names no address".into());
        }
        match named.iter().find(|a| !allowed.contains(*a)) {
            None => Ok(()),
            Some(address) => Err(format!(
                "'{address}' is not a Kafka cluster of the job's workspace"
            )),
        }
    }
}

fn addresses(bootstrap: &str) -> impl Iterator<Item = String> + '_ {
    bootstrap
        .split(',')
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
}

/// What a job may touch: its files root and the Kafka clusters it may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobScope {
    /// Where its file connectors resolve paths.
    pub files: FilesRoot,
    /// Which Kafka clusters its tables may name.
    pub kafka: KafkaScope,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn root() -> (tempfile::TempDir, FilesRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::confined(&dir.path().join("ws")).unwrap();
        (dir, root)
    }

    #[test]
    fn relative_and_inner_absolute_paths_resolve_inside_the_root() {
        let (_dir, files) = root();
        let base = files.root().unwrap().to_path_buf();
        assert_eq!(files.resolve("in").unwrap(), base.join("in"));
        assert_eq!(files.resolve("./a/b/").unwrap(), base.join("a/b"));
        let absolute = base.join("x/y");
        assert_eq!(files.resolve(absolute.to_str().unwrap()).unwrap(), absolute);
    }

    #[test]
    fn escapes_are_refused() {
        let (dir, files) = root();
        for bad in [
            "../../../../secrets",
            "a/../../b",
            "..",
            "/etc/passwd",
            "/",
            "",
            " ",
        ] {
            assert!(files.resolve(bad).is_err(), "{bad:?} was accepted");
        }
        // A link inside the root that points out of it.
        let outside = dir.path().join("secrets");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, files.root().unwrap().join("link")).unwrap();
        let error = files.resolve("link/admin-token").unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(files.recheck(&files.root().unwrap().join("link")).is_err());
    }

    #[test]
    fn unconfined_takes_paths_as_written() {
        let files = FilesRoot::unconfined();
        assert_eq!(files.resolve("../x").unwrap(), PathBuf::from("../x"));
    }

    #[test]
    fn source_files_are_plain_names_of_regular_files() {
        let (dir, files) = root();
        let source = files.root().unwrap().join("in");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("a.json"), b"{}\n").unwrap();
        assert_eq!(
            read_source_file(&files, &source, "a.json").unwrap(),
            b"{}\n"
        );
        for bad in [
            "../a.json",
            "/etc/passwd",
            ".hidden",
            "_manifest",
            "",
            "a/b",
        ] {
            assert!(read_source_file(&files, &source, bad).is_err(), "{bad:?}");
        }
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), source.join("link")).unwrap();
        assert!(read_source_file(&files, &source, "link").is_err());
        std::fs::create_dir(source.join("sub")).unwrap();
        assert!(read_source_file(&files, &source, "sub").is_err());
        assert!(read_regular_file(Path::new("/dev/zero")).is_err());
    }

    #[test]
    fn kafka_scope_allows_only_listed_clusters() {
        let scope = KafkaScope::only(["127.0.0.1:9092,127.0.0.1:9093", "Host:1"]);
        assert!(scope.check("127.0.0.1:9093").is_ok());
        assert!(scope.check("host:1, 127.0.0.1:9092").is_ok());
        assert!(scope.check("127.0.0.1:9094").is_err());
        assert!(scope.check("127.0.0.1:9092,evil:1").is_err());
        assert!(scope.check(" , ").is_err());
        assert!(KafkaScope::any().check("anything:1").is_ok());
    }
}
