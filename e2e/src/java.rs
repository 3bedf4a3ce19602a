//! The Java Kafka client suite: the programs of `e2e/clients/java/hdi/compat/` (package
//! `hdi.compat`), compiled with `javac` against the jars of `HDI_TEST_JAVA_LIB` (kafka-clients
//! from `e2e/clients/java/pom.xml`, which `cargo xtask test` copies from Maven Central once per
//! content of the pom) and run as [`Proc`]esses.
//!
//! The classes are compiled once per content of the sources, into a directory named by their
//! hash beside the jars (`target/test-tools/java/compat-<hash>`); an exclusive file lock makes
//! parallel tests wait for one `javac` instead of racing. Each program checks its own
//! assertions, prints progress lines a test may wait for, and ends with one JSON line
//! (`{"ok": true, ...}`, exit code 0; `"ok": false` with the failures, exit code 1).

use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Proc, client_script, last_json_line};

/// The directory holding the jars of the Java Kafka client, from `HDI_TEST_JAVA_LIB`.
pub fn java_lib() -> PathBuf {
    PathBuf::from(
        std::env::var_os("HDI_TEST_JAVA_LIB")
            .expect("HDI_TEST_JAVA_LIB is not set: run the tests with `cargo xtask test`"),
    )
}

/// The `.java` files of the suite, sorted.
fn sources() -> Vec<PathBuf> {
    let dir = client_script("java/hdi/compat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    files.sort();
    files
}

/// The compiled classes of the suite: compiled now unless a directory for this content of the
/// sources (and this classpath) is already complete.
pub fn java_classes() -> PathBuf {
    let lib = java_lib();
    let sources = sources();
    let mut hasher = std::hash::DefaultHasher::new();
    for source in &sources {
        source.file_name().hash(&mut hasher);
        std::fs::read(source).unwrap().hash(&mut hasher);
    }
    lib.hash(&mut hasher);
    let base = lib.parent().unwrap_or(&lib).to_path_buf();
    let classes = base.join(format!("compat-{:016x}", hasher.finish()));
    let done = classes.join(".complete");
    if done.exists() {
        return classes;
    }
    let lock = std::fs::File::create(base.join("compat.lock")).unwrap();
    lock.lock().unwrap();
    if !done.exists() {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&classes);
        let out = Command::new("javac")
            .args(["--release", "17", "-nowarn", "-encoding", "UTF-8", "-cp"])
            .arg(format!("{}/*", lib.display()))
            .arg("-d")
            .arg(&classes)
            .args(&sources)
            .output()
            .expect("javac (a JDK 17) is on PATH: `cargo xtask test` installs one when missing");
        assert!(
            out.status.success(),
            "javac {}:\n{}{}",
            classes.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&done, "").unwrap();
        eprintln!(
            "javac: {} sources into {} ({:.1}s)",
            sources.len(),
            classes.display(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(lock);
    classes
}

/// Starts `hdi.compat.<main>` with `args` (its output collected; SIGKILLed when dropped).
pub fn java_program(main: &str, args: &[&str]) -> Proc {
    let classes = java_classes();
    let classpath = format!("{}/*:{}", java_lib().display(), classes.display());
    Proc::spawn(
        &format!("java {main}"),
        Command::new("java")
            .args([
                "-Xmx384m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                "-cp",
                &classpath,
            ])
            .arg(format!("hdi.compat.{main}"))
            .args(args),
    )
}

/// Waits up to `timeout` for a program started by [`java_program`] to exit; its final JSON
/// line. Fails the test (with every line the program printed) when it runs too long, exits
/// with an error or does not report `"ok": true`.
pub fn java_result(program: &mut Proc, timeout: Duration) -> serde_json::Value {
    let (status, lines) = program.wait_exit_lines(timeout).unwrap();
    let output = lines.join("\n");
    let (last, value) = last_json_line(&output);
    assert!(
        status.success() && value["ok"] == true,
        "Java program failed ({status}):\n{output}"
    );
    eprintln!("{last}");
    value
}

/// Runs `hdi.compat.<main>` with `args` to its end (at most `timeout`): [`java_result`].
pub fn java_run(main: &str, args: &[&str], timeout: Duration) -> serde_json::Value {
    java_result(&mut java_program(main, args), timeout)
}
