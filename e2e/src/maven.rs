//! Java programs from Maven Central for the e2e tests, installed by the tests themselves (a fresh
//! CI machine has only a JDK 17 and Maven): the jars a `pom.xml` under `e2e/clients/` depends on,
//! copied with `mvn dependency:copy-dependencies` into `<target>/test-tools/<name>/lib` (Maven's
//! own repository beside them in `m2`, never `~/.m2`) once per content of the pom, and `.java`
//! sources compiled with `javac` against them once per content of the sources.
//!
//! Both steps hold an exclusive file lock beside their output, so parallel tests wait for one
//! `mvn` or one `javac` instead of racing; a finished step leaves a stamp (the pom's hash, or
//! a `.complete` file in a directory named by the sources' hash), and a step that died half way
//! is done again from scratch.

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::client_script;

/// `<target>/test-tools`, where the tests' own installs live (the target directory is the one
/// the test executables were built into).
fn test_tools_dir() -> PathBuf {
    // Test executables live in <target>/debug/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    target.join("test-tools")
}

/// A stable hash of some bytes, as 16 hex digits.
fn content_hash(parts: &[&[u8]]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// Runs `command`, failing the test with its output when it fails.
fn run(what: &str, command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} does not start (is it on PATH?): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The jars `e2e/clients/<name>/pom.xml` depends on (a directory to put on `-cp` as `dir/*`):
/// copied from Maven Central now unless this content of the pom was copied before.
pub fn maven_jars(name: &str) -> PathBuf {
    let pom = client_script(&format!("{name}/pom.xml"));
    let dir = test_tools_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("lib");
    let stamp = dir.join(".hdi-pom");
    let wanted = content_hash(&[&std::fs::read(&pom).unwrap()]);
    let copied = || std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str());
    if copied() {
        return lib;
    }
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !copied() {
        let started = Instant::now();
        let _ = std::fs::remove_file(&stamp);
        let _ = std::fs::remove_dir_all(&lib);
        run(
            "mvn dependency:copy-dependencies",
            Command::new("mvn")
                .args(["-q", "-B", "-f"])
                .arg(&pom)
                .arg("dependency:copy-dependencies")
                .arg(format!("-DoutputDirectory={}", lib.display()))
                .arg(format!("-Dmaven.repo.local={}", dir.join("m2").display())),
        );
        std::fs::write(&stamp, &wanted).unwrap();
        eprintln!(
            "mvn: the jars of {} into {} ({:.1}s)",
            pom.display(),
            lib.display(),
            started.elapsed().as_secs_f64()
        );
    }
    lib
}

/// The classes of the `.java` files directly in `e2e/clients/<sources>/` compiled against the
/// jars in `lib`: compiled now unless a directory for this content of the sources and this
/// classpath is already complete. Put it on `-cp` beside `lib/*`.
pub fn javac_classes(sources: &str, lib: &Path) -> PathBuf {
    let dir = client_script(sources);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    files.sort();
    let mut parts: Vec<Vec<u8>> = vec![lib.as_os_str().as_encoded_bytes().to_vec()];
    for file in &files {
        parts.push(file.as_os_str().as_encoded_bytes().to_vec());
        parts.push(std::fs::read(file).unwrap());
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let base = lib.parent().unwrap_or(lib).to_path_buf();
    let classes = base.join(format!("classes-{}", content_hash(&parts)));
    let done = classes.join(".complete");
    if done.exists() {
        return classes;
    }
    let lock = std::fs::File::create(base.join(".javac.lock")).unwrap();
    lock.lock().unwrap();
    if !done.exists() {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&classes);
        run(
            "javac",
            Command::new("javac")
                .args(["--release", "17", "-nowarn", "-encoding", "UTF-8", "-cp"])
                .arg(format!("{}/*", lib.display()))
                .arg("-d")
                .arg(&classes)
                .args(&files),
        );
        std::fs::write(&done, "").unwrap();
        eprintln!(
            "javac: {} sources into {} ({:.1}s)",
            files.len(),
            classes.display(),
            started.elapsed().as_secs_f64()
        );
    }
    classes
}
