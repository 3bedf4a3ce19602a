//! `cargo xtask kube-bin`: a real Kubernetes control plane for the tests, built from Go modules.
//!
//! No package ships kube-apiserver, so this builds kube-apiserver, etcd, kube-controller-manager
//! and kube-scheduler from the wrapper Go module `support/k8s-bin/` (it requires
//! `k8s.io/kubernetes` and replaces its staging modules with the matching `v0.x` versions), and
//! kwok with a plain `go install sigs.k8s.io/kwok/cmd/kwok@<version>`. Everything goes under the
//! cargo target directory, keyed by version: `target/k8s/<version>/bin` holds the binaries,
//! `target/k8s/gomod` and `target/k8s/gocache` the module and build caches, so a fresh CI machine
//! needs only Go and the Go module proxy, and builds once per machine (a cold build is tens of
//! minutes on 2 cores; a warm cache makes a rebuild a matter of linking).
//!
//! The build is the one upstream does (`hack/lib/golang.sh`): `CGO_ENABLED=0`, `-trimpath`, tags
//! `selinux,notest,grpcnotrace`, stripped, and version-stamped with `-ldflags -X` (an unstamped
//! build reports `v0.0.0-master`, and tools such as kwokctl parse the version). A stamp file,
//! written only once every binary is built, records the recipe and the wrapper module's
//! `go.mod`/`go.sum`: when any of them changes, the binaries are built again. An exclusive lock on
//! `target/k8s/.lock` keeps two runs from building into one directory at once.
//!
//! kwok's stages (what it makes nodes, pods and volumes do) are not built into its binary; they
//! are YAML files in its module. [`KWOK_STAGES`] are copied from the module cache into
//! `bin/kwok-stages/`, next to the binaries, so that the test harness (`hdi-e2e`'s
//! `KubeControlPlane`, which gets the directory in `HDI_TEST_K8S_BIN`) depends on one directory
//! of this layout and not on the module cache's.
//!
//! `--regenerate` rewrites the wrapper module's replace block from the `go.mod` the proxy serves
//! for `k8s.io/kubernetes` (each of its `k8s.io/*` requirements at `v0.0.0` is a staging module)
//! and runs `go mod tidy`; do it when [`KUBERNETES_VERSION`] changes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use crate::util::{output, repo_root, run};

/// The Kubernetes release built.
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// The version of its staging modules (`k8s.io/api`, `k8s.io/client-go`, …).
const STAGING_VERSION: &str = "v0.37.2";
/// `gitMajor` and `gitMinor` of the version stamp.
const MAJOR_MINOR: (&str, &str) = ("1", "37");
/// The build date stamped into the binaries (fixed, so that builds are reproducible).
const BUILD_DATE: &str = "2026-12-01T00:00:00Z";
/// The kwok release installed.
pub const KWOK_VERSION: &str = "v0.8.0";
/// Build tags of the Kubernetes servers, as upstream.
const KUBE_TAGS: &str = "selinux,notest,grpcnotrace";

/// The binaries `target/k8s/<version>/bin` holds once built.
pub const BINARIES: &[&str] = &[
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// The kwok stages the test harness runs with, as `(directory under kustomize/stage, file)` in
/// kwok's module: nodes become Ready and keep their Leases, pods on them run and become Ready
/// (and are deleted when asked), and claims of StorageClass `kwok-volume` are provisioned and
/// bound. The StorageClass itself the harness creates.
pub const KWOK_STAGES: &[(&str, &str)] = &[
    ("node/fast", "node-initialize.yaml"),
    (
        "node/heartbeat-with-lease",
        "node-heartbeat-with-lease.yaml",
    ),
    ("pod/fast", "pod-ready.yaml"),
    ("pod/fast", "pod-complete.yaml"),
    ("pod/fast", "pod-delete.yaml"),
    ("volume/fast", "pvc-provision.yaml"),
    ("volume/fast", "pv-bind.yaml"),
    ("volume/fast", "pvc-delete.yaml"),
    ("volume/fast", "pv-delete.yaml"),
];

/// Flags of `cargo xtask kube-bin`.
#[derive(Debug, Args)]
pub struct KubeBinArgs {
    /// First rewrite `support/k8s-bin/go.mod`'s replace block from the go.mod the Go module proxy
    /// serves for k8s.io/kubernetes, and run `go mod tidy`.
    #[arg(long)]
    regenerate: bool,
}

/// `cargo xtask kube-bin [--regenerate]`: prints the binaries' directory once they are built.
pub fn run_kube_bin(args: KubeBinArgs) -> anyhow::Result<()> {
    if args.regenerate {
        regenerate()?;
    }
    let bin = ensure()?;
    println!("{}", bin.display());
    Ok(())
}

/// The wrapper module's directory.
fn module_dir() -> PathBuf {
    repo_root().join("support/k8s-bin")
}

/// `target/k8s`: the caches and every version's binaries.
fn k8s_root() -> anyhow::Result<PathBuf> {
    Ok(crate::util::target_dir()?.join("k8s"))
}

/// Builds the binaries unless they are built already with the current recipe; returns their
/// directory (`target/k8s/<version>/bin`), the value of `HDI_TEST_K8S_BIN`. Needs Go only when it
/// builds.
pub fn ensure() -> anyhow::Result<PathBuf> {
    let root = k8s_root()?;
    let version_dir = root.join(KUBERNETES_VERSION);
    let bin = version_dir.join("bin");
    std::fs::create_dir_all(&root)?;
    let lock = File::create(root.join(".lock"))?;
    lock.lock().context("cannot lock target/k8s/.lock")?;
    let stamp = version_dir.join(".hdi-built");
    let wanted = recipe()?;
    let built = std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && BINARIES.iter().all(|name| bin.join(name).is_file())
        && KWOK_STAGES
            .iter()
            .all(|(_, file)| bin.join("kwok-stages").join(file).is_file());
    if !built {
        let _ = std::fs::remove_file(&stamp);
        build(&root, &bin)?;
        std::fs::write(&stamp, &wanted)?;
    }
    check_version(&bin)?;
    Ok(bin)
}

/// What the binaries are built from: the versions, the build flags, and the wrapper module.
fn recipe() -> anyhow::Result<String> {
    let read = |name: &str| {
        let path = module_dir().join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    Ok(format!(
        "kubernetes {KUBERNETES_VERSION} (staging {STAGING_VERSION}), kwok {KWOK_VERSION}\n\
         ldflags {}\ntags {KUBE_TAGS}\nstages {KWOK_STAGES:?}\n--- go.mod\n{}--- go.sum\n{}",
        kube_ldflags(),
        read("go.mod")?,
        read("go.sum")?,
    ))
}

/// `-ldflags` of the Kubernetes servers: stripped, with the version stamp upstream's
/// `hack/lib/version.sh` sets.
fn kube_ldflags() -> String {
    let (major, minor) = MAJOR_MINOR;
    let mut flags = String::from("-s -w");
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        flags.push_str(&format!(
            " -X {package}.gitVersion={KUBERNETES_VERSION} -X {package}.gitMajor={major} \
             -X {package}.gitMinor={minor} -X {package}.gitTreeState=clean \
             -X {package}.buildDate={BUILD_DATE}"
        ));
    }
    flags
}

/// `go`, run in the wrapper module with its caches under `root` and nothing fetched but modules:
/// `GOTOOLCHAIN=local` fails fast instead of downloading another Go; `-modcacherw` keeps the
/// module cache removable by `cargo clean`.
fn go(root: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .current_dir(module_dir())
        .env("GOMODCACHE", root.join("gomod"))
        .env("GOCACHE", root.join("gocache"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-modcacherw")
        .env("GOWORK", "off")
        .env("CGO_ENABLED", "0");
    command
}

/// Fails clearly when Go is not installed; its version otherwise.
fn require_go(root: &Path) -> anyhow::Result<String> {
    let version = output("go version", go(root).arg("version")).map_err(|error| {
        anyhow::anyhow!(
            "building the Kubernetes test binaries (or regenerating support/k8s-bin/go.mod) \
             needs Go (go 1.26 or newer, as support/k8s-bin/go.mod says) and the Go module \
             proxy, but `go version` failed: {error:#}. Install Go (https://go.dev/dl/ or your \
             distribution's golang package) and run again"
        )
    })?;
    Ok(version.trim().to_owned())
}

/// Builds every binary into `bin` (cold: tens of minutes), then copies kwok's stages.
fn build(root: &Path, bin: &Path) -> anyhow::Result<()> {
    let go_version = require_go(root)?;
    eprintln!(
        "xtask: building Kubernetes {KUBERNETES_VERSION} (kube-apiserver, etcd, \
         kube-controller-manager, kube-scheduler) and kwok {KWOK_VERSION} with {go_version} \
         into {} (cold: tens of minutes; cached afterwards)",
        bin.display()
    );
    std::fs::create_dir_all(bin)?;
    let ldflags = format!("all={}", kube_ldflags());
    let kube = |packages: &[&str]| {
        let mut command = go(root);
        command
            .args([
                "build",
                "-trimpath",
                "-tags",
                KUBE_TAGS,
                "-ldflags",
                &ldflags,
                "-o",
            ])
            // A directory as `-o` (with its trailing slash) takes several main packages.
            .arg(format!("{}/", bin.display()))
            .args(
                packages
                    .iter()
                    .map(|p| format!("k8s.io/kubernetes/cmd/{p}")),
            );
        command
    };
    let mut etcd = go(root);
    etcd.args(["build", "-trimpath", "-ldflags", "-s -w", "-o"])
        .arg(bin.join("etcd"))
        .arg("go.etcd.io/etcd/server/v3");
    let mut kwok = go(root);
    kwok.env("GOBIN", bin)
        .args(["install", "-trimpath", "-ldflags", "-s -w"])
        .arg(format!("sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"));
    let steps: [(&str, Command); 4] = [
        ("kube-apiserver", kube(&["kube-apiserver"])),
        ("etcd", etcd),
        (
            "kube-controller-manager and kube-scheduler",
            kube(&["kube-controller-manager", "kube-scheduler"]),
        ),
        ("kwok", kwok),
    ];
    for (what, mut command) in steps {
        let started = Instant::now();
        run(&format!("go build of {what}"), &mut command)?;
        eprintln!(
            "xtask: built {what} in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    copy_kwok_stages(root, &bin.join("kwok-stages"))
}

/// Copies [`KWOK_STAGES`] from kwok's module (in the module cache under `root`) into `dir`.
fn copy_kwok_stages(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let module = root
        .join("gomod/sigs.k8s.io")
        .join(format!("kwok@{KWOK_VERSION}"))
        .join("kustomize/stage");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for (stage, file) in KWOK_STAGES {
        let from = module.join(stage).join(file);
        std::fs::copy(&from, dir.join(file))
            .with_context(|| format!("cannot copy kwok's stage {}", from.display()))?;
    }
    Ok(())
}

/// `kube-apiserver --version` names [`KUBERNETES_VERSION`] (the stamp took).
fn check_version(bin: &Path) -> anyhow::Result<()> {
    let printed = output(
        "kube-apiserver --version",
        Command::new(bin.join("kube-apiserver")).arg("--version"),
    )?;
    let wanted = format!("Kubernetes {KUBERNETES_VERSION}");
    if printed.trim() != wanted {
        bail!(
            "{} --version printed {:?}, expected {wanted:?}: delete {} and build again",
            bin.join("kube-apiserver").display(),
            printed.trim(),
            bin.display()
        );
    }
    Ok(())
}

/// Rewrites the wrapper module's replace block: every `k8s.io/*` module that the go.mod served for
/// `k8s.io/kubernetes@KUBERNETES_VERSION` requires at `v0.0.0` (its staging modules, which
/// upstream replaces with `./staging/...` paths) is replaced with itself at [`STAGING_VERSION`];
/// replaces of `k8s.io/*` modules it no longer has are dropped. Then `go mod tidy`.
fn regenerate() -> anyhow::Result<()> {
    let root = k8s_root()?;
    require_go(&root)?;
    let kubernetes = format!("k8s.io/kubernetes@{KUBERNETES_VERSION}");
    let download: serde_json::Value = serde_json::from_str(&output(
        "go mod download -json",
        go(&root).args(["mod", "download", "-json", &kubernetes]),
    )?)
    .context("go mod download -json printed no JSON")?;
    let served = download["GoMod"]
        .as_str()
        .with_context(|| format!("go mod download names no go.mod for {kubernetes}"))?;
    let staging = staging_modules(&go_mod_json(&root, Some(Path::new(served)))?);
    if staging.is_empty() {
        bail!("the go.mod served for {kubernetes} requires no k8s.io module at v0.0.0");
    }
    let current = go_mod_json(&root, None)?;
    let mut edit = go(&root);
    edit.args(["mod", "edit", &format!("-require={kubernetes}")]);
    for old in current["Replace"].as_array().into_iter().flatten() {
        if let Some(path) = old["Old"]["Path"].as_str()
            && path.starts_with("k8s.io/")
        {
            edit.arg(format!("-dropreplace={path}"));
        }
    }
    for module in &staging {
        edit.arg(format!("-replace={module}={module}@{STAGING_VERSION}"));
    }
    run("go mod edit", &mut edit)?;
    run("go mod tidy", go(&root).args(["mod", "tidy"]))?;
    eprintln!(
        "xtask: support/k8s-bin/go.mod replaces {} staging modules of {kubernetes} with \
         {STAGING_VERSION}",
        staging.len()
    );
    Ok(())
}

/// `go mod edit -json` of `file`, or of the wrapper module's go.mod.
fn go_mod_json(root: &Path, file: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    let mut command = go(root);
    command.args(["mod", "edit", "-json"]);
    if let Some(file) = file {
        command.arg(file);
    }
    let text = output("go mod edit -json", &mut command)?;
    serde_json::from_str(&text).context("go mod edit -json printed no JSON")
}

/// The staging modules a `go mod edit -json` document requires: `k8s.io/*` at `v0.0.0` (or the
/// pseudo-version of no commit).
fn staging_modules(go_mod: &serde_json::Value) -> Vec<String> {
    let mut modules: Vec<String> = go_mod["Require"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|require| {
            let version = require["Version"].as_str().unwrap_or_default();
            version == "v0.0.0" || version.starts_with("v0.0.0-00010101000000")
        })
        .filter_map(|require| require["Path"].as_str())
        .filter(|path| path.starts_with("k8s.io/"))
        .map(str::to_owned)
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn staging_modules_are_the_k8s_requirements_at_v0_0_0() {
        let go_mod = serde_json::json!({"Require": [
            {"Path": "k8s.io/api", "Version": "v0.0.0"},
            {"Path": "k8s.io/utils", "Version": "v0.0.0-20260626114624-be93311217bd"},
            {"Path": "k8s.io/kms", "Version": "v0.0.0-00010101000000-000000000000"},
            {"Path": "github.com/x/y", "Version": "v0.0.0"},
            {"Path": "k8s.io/klog/v2", "Version": "v2.140.0"},
        ]});
        assert_eq!(staging_modules(&go_mod), ["k8s.io/api", "k8s.io/kms"]);
        assert!(staging_modules(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_stamp_names_the_version_in_both_version_packages() {
        let flags = kube_ldflags();
        assert!(flags.starts_with("-s -w "));
        for package in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            assert!(flags.contains(&format!("-X {package}.gitVersion={KUBERNETES_VERSION}")));
        }
        assert!(KUBERNETES_VERSION.ends_with(STAGING_VERSION.trim_start_matches("v0")));
    }

    #[test]
    fn the_wrapper_module_requires_the_version_built() {
        let go_mod = std::fs::read_to_string(module_dir().join("go.mod")).unwrap();
        assert!(
            go_mod.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}")),
            "support/k8s-bin/go.mod does not require k8s.io/kubernetes {KUBERNETES_VERSION}: \
             run cargo xtask kube-bin --regenerate"
        );
        assert!(go_mod.contains(&format!("=> k8s.io/api {STAGING_VERSION}")));
    }
}
