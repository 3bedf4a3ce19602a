//! The Java Kafka client suite: the programs of `e2e/clients/java/hdi/compat/` (package
//! `hdi.compat`), compiled with `javac` against the jars of `HDI_TEST_JAVA_LIB` (kafka-clients
//! from `e2e/clients/java/pom.xml`, which `cargo xtask test` copies from Maven Central once per
//! content of the pom) and run as [`Proc`]esses.
//!
//! The classes are compiled once per content of the sources, into a directory named by their
//! hash beside the jars (`target/test-tools/java/classes-<hash>`, by `crate::maven`); an
//! exclusive file lock makes parallel tests wait for one `javac` instead of racing. Each program
//! checks its own assertions, prints progress lines a test may wait for, and ends with one JSON
//! line (`{"ok": true, ...}`, exit code 0; `"ok": false` with the failures, exit code 1).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Proc, last_json_line};

/// The directory holding the jars of the Java Kafka client, from `HDI_TEST_JAVA_LIB`.
pub fn java_lib() -> PathBuf {
    PathBuf::from(
        std::env::var_os("HDI_TEST_JAVA_LIB")
            .expect("HDI_TEST_JAVA_LIB is not set: run the tests with `cargo xtask test`"),
    )
}

/// The compiled classes of the suite ([`crate::maven::javac_classes`]: compiled now unless this
/// content of the sources was compiled before against these jars).
pub fn java_classes() -> PathBuf {
    crate::maven::javac_classes("java/hdi/compat", &java_lib())
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
