//! Test dependencies outside cargo, installed idempotently: Debian packages (PostgreSQL, kcat),
//! a Python venv with the Kafka client libraries and schemathesis, and kafkajs from npm. Versions are pinned so
//! that a fresh machine tests against the same clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{output, run};

/// Python packages of the client suites and the API conformance test. The venv records this
/// list in a stamp file and is recreated from scratch whenever the list changes.
const PYTHON_PACKAGES: &[&str] = &[
    "confluent-kafka==2.16.1",
    "kafka-python==3.0.12",
    "schemathesis==4.32.5",
];
/// npm packages of the client suites.
const NPM_PACKAGES: &[&str] = &["kafkajs@2.2.4"];

/// Paths the tests need, exported to them as environment variables.
pub struct TestTools {
    /// `HDI_TEST_PYTHON`: the venv's interpreter.
    pub python: PathBuf,
    /// `HDI_TEST_NODE_PATH`: the `node_modules` with kafkajs.
    pub node_path: PathBuf,
}

/// Installs (when missing) and returns the test tools, under `dir`.
pub fn ensure(dir: &Path) -> anyhow::Result<TestTools> {
    std::fs::create_dir_all(dir)?;
    if which("kcat").is_none() {
        eprintln!("xtask: installing kcat (Debian)");
        apt_install(&["kcat"])?;
    }
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(".hdi-packages");
    let wanted = PYTHON_PACKAGES.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("xtask: creating the Python venv with {wanted}");
        let system_python = which("python3").context("python3 is not installed")?;
        run(
            "python3 -m venv",
            Command::new(system_python)
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )?;
        run(
            "pip install",
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(PYTHON_PACKAGES),
        )?;
        std::fs::write(&stamp, &wanted)?;
    }
    let node_dir = dir.join("node");
    let node_path = node_dir.join("node_modules");
    if !node_path.join("kafkajs/package.json").exists() {
        eprintln!("xtask: installing {} from npm", NPM_PACKAGES.join(" "));
        if which("npm").is_none() {
            apt_install(&["nodejs", "npm"])?;
        }
        std::fs::create_dir_all(&node_dir)?;
        if !node_dir.join("package.json").exists() {
            std::fs::write(
                node_dir.join("package.json"),
                "{\"name\": \"hdi-test-tools\", \"private\": true}\n",
            )?;
        }
        run(
            "npm install",
            Command::new("npm")
                .current_dir(&node_dir)
                .args(["install", "--no-audit", "--no-fund", "--silent"])
                .args(NPM_PACKAGES),
        )?;
    }
    output("node --version", Command::new("node").arg("--version"))
        .context("node is not usable")?;
    Ok(TestTools { python, node_path })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Installs Debian packages with apt-get (root needed), refreshing the package lists first.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if crate::sys::effective_uid() != 0 {
        bail!(
            "missing packages {packages:?}; install them (apt-get install {}) or run as root",
            packages.join(" ")
        );
    }
    run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    run(
        "apt-get install",
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
