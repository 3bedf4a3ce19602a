//! Java programs for the e2e tests: the Java Kafka client suite (the programs of
//! `e2e/clients/java/hdi/compat/`, package `hdi.compat`) and, for `crate::kafka_ecosystem`, the
//! Java tools built on Kafka. Their jars come from Maven Central through `cargo xtask test`, which
//! copies them once per content of each pom (`e2e/clients/java/pom.xml`,
//! `e2e/clients/java-ecosystem/pom.xml`) under `target/test-tools/` and names the directories in
//! `HDI_TEST_JAVA_LIB` and `HDI_TEST_JAVA_ECOSYSTEM_LIB`; the tests download nothing themselves.
//!
//! The `.java` sources are compiled here with `javac`, once per content of the sources, into a
//! directory named by their hash beside the jars (`target/test-tools/java/classes-<hash>`); an
//! exclusive file lock makes parallel tests wait for one `javac` instead of racing. Each program
//! checks its own assertions, prints progress lines a test may wait for, and ends with one JSON
//! line (`{"ok": true, ...}`, exit code 0; `"ok": false` with the failures, exit code 1).

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Proc, client_script, last_json_line};

/// The directory holding the jars of the Java Kafka client, from `HDI_TEST_JAVA_LIB`.
pub fn java_lib() -> PathBuf {
    jars("HDI_TEST_JAVA_LIB", "the Java Kafka client")
}

/// The directory holding the jars of Kafka Connect, MirrorMaker 2 and Kafka Streams, from
/// `HDI_TEST_JAVA_ECOSYSTEM_LIB`.
pub fn java_ecosystem_lib() -> PathBuf {
    jars(
        "HDI_TEST_JAVA_ECOSYSTEM_LIB",
        "Kafka Connect, MirrorMaker 2 and Kafka Streams",
    )
}

/// The directory of jars `variable` names, which must hold some: fails the test, saying how to
/// get them, when it is unset or holds none.
fn jars(variable: &str, what: &str) -> PathBuf {
    let Some(dir) = std::env::var_os(variable) else {
        panic!(
            "{variable} (the jars of {what}) is not set: run the tests with `cargo xtask test`, \
             which copies the jars from Maven Central"
        );
    };
    let dir = PathBuf::from(dir);
    let has_jars = std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "jar"))
    });
    assert!(
        has_jars,
        "{variable}={}: no jars of {what} there; `cargo xtask test` copies them from Maven \
         Central (delete the `.hdi-pom` stamp beside that directory to copy them again)",
        dir.display()
    );
    dir
}

/// The compiled classes of the suite ([`javac_classes`]: compiled now unless this content of
/// the sources was compiled before against these jars).
pub fn java_classes() -> PathBuf {
    javac_classes("java/hdi/compat", &java_lib())
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

/// Waits up to `timeout` for a Java program (started by [`java_program`], or one of
/// `crate::kafka_ecosystem`'s) to exit; its final JSON line. Fails the test (with every line the
/// program printed) when it runs too long, exits with an error or does not report `"ok": true`.
pub fn java_result(program: &mut Proc, timeout: Duration) -> serde_json::Value {
    let (status, lines) = program.wait_exit_lines(timeout).unwrap();
    let output = lines.join("\n");
    let (last, value) = last_json_line(&output);
    assert!(
        status.success() && value["ok"] == true,
        "{} failed ({status}):\n{output}",
        program.name()
    );
    eprintln!("{}: {last}", program.name());
    value
}

/// Runs `hdi.compat.<main>` with `args` to its end (at most `timeout`): [`java_result`].
pub fn java_run(main: &str, args: &[&str], timeout: Duration) -> serde_json::Value {
    java_result(&mut java_program(main, args), timeout)
}

/// The classes of the `.java` files directly in `e2e/clients/<sources>/` compiled against the
/// jars in `lib`: compiled now unless a directory for this content of the sources and this
/// classpath is already complete (a `.complete` file in it; one that died half way is compiled
/// again from scratch). Put it on `-cp` beside `lib/*`.
pub fn javac_classes(sources: &str, lib: &Path) -> PathBuf {
    let dir = client_script(sources);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    files.sort();
    let mut hasher = std::hash::DefaultHasher::new();
    lib.as_os_str().as_encoded_bytes().hash(&mut hasher);
    for file in &files {
        file.as_os_str().as_encoded_bytes().hash(&mut hasher);
        std::fs::read(file).unwrap().hash(&mut hasher);
    }
    let base = lib.parent().unwrap_or(lib).to_path_buf();
    let classes = base.join(format!("classes-{:016x}", hasher.finish()));
    let done = classes.join(".complete");
    if done.exists() {
        return classes;
    }
    let lock = std::fs::File::create(base.join(".javac.lock")).unwrap();
    lock.lock().unwrap();
    if !done.exists() {
        let started = Instant::now();
        let _ = std::fs::remove_dir_all(&classes);
        let out = Command::new("javac")
            .args(["--release", "17", "-nowarn", "-encoding", "UTF-8", "-cp"])
            .arg(format!("{}/*", lib.display()))
            .arg("-d")
            .arg(&classes)
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("javac does not start (is a JDK on PATH?): {e}"));
        assert!(
            out.status.success(),
            "javac failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
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
