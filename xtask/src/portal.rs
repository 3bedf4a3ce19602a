//! `cargo xtask portal`: build the web portal (`portal/`) and check that what is checked in is
//! what the sources make.
//!
//! The portal is a TypeScript app (React + Vite); its built files (`portal/dist/`) and its API
//! types (`portal/src/api/hdi.d.ts`, generated from `openapi/hdi.json` by openapi-typescript) are
//! checked in, so `cargo build` (which embeds `dist/` in the control plane) never needs Node.
//! `cargo xtask portal` runs `npm ci` (when `package-lock.json` changed since the last one),
//! openapi-typescript, `tsc` (of `src/`, and of the Playwright specs in `e2e/`), `vite build`
//! and the Vitest unit tests. The test below rebuilds both into a temporary directory and fails
//! on any difference, as `control-plane/tests/openapi.rs` does for the OpenAPI document. Node's
//! major version is pinned (`engines` in `package.json`, enforced by `engine-strict` in
//! `portal/.npmrc`): another major may build other bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::tools::{apt_install, which};
use crate::util::{output, repo_root, run};

/// The Node.js major version the portal builds with (`engines.node` in `portal/package.json`).
pub const NODE_MAJOR: u32 = 20;

/// The portal's directory.
pub fn dir() -> PathBuf {
    repo_root().join("portal")
}

/// `cargo xtask portal`: install, generate the API types, type-check, build, unit-test.
pub fn run_portal() -> anyhow::Result<()> {
    let portal = dir();
    ensure_node_modules()?;
    generate_types(&portal.join("src/api/hdi.d.ts"))?;
    npx("tsc", &["tsc", "--noEmit", "-p", "."])?;
    npx("tsc", &["tsc", "--noEmit", "-p", "e2e"])
        .context("the Playwright specs do not type-check")?;
    build_dist(&portal.join("dist"))?;
    npx("vitest", &["vitest", "run"])?;
    println!(
        "built {} ({} bytes of JavaScript gzipped)",
        portal.join("dist").display(),
        gzipped_js(&portal.join("dist"))?
    );
    Ok(())
}

/// For `cargo xtask codegen`: the API types from `openapi/hdi.json`, a type check of the portal
/// against them, and `dist/`.
pub fn regenerate() -> anyhow::Result<()> {
    let portal = dir();
    ensure_node_modules()?;
    generate_types(&portal.join("src/api/hdi.d.ts"))?;
    npx("tsc", &["tsc", "--noEmit", "-p", "."])
        .context("the portal does not type-check against the new API types: adapt portal/src")?;
    npx("tsc", &["tsc", "--noEmit", "-p", "e2e"]).context(
        "the Playwright specs do not type-check against the new API types: adapt portal/e2e",
    )?;
    build_dist(&portal.join("dist"))?;
    println!(
        "wrote {} and {}",
        portal.join("src/api/hdi.d.ts").display(),
        portal.join("dist").display()
    );
    Ok(())
}

/// Checks that Node.js of [`NODE_MAJOR`] is installed (installing Debian's when there is none).
pub fn ensure_node() -> anyhow::Result<()> {
    if which("node").is_none() || which("npm").is_none() {
        eprintln!("xtask: installing nodejs and npm (Debian)");
        apt_install(&["nodejs", "npm"])?;
    }
    let version = output("node --version", Command::new("node").arg("--version"))?;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major != Some(NODE_MAJOR) {
        bail!(
            "the portal builds with Node.js {NODE_MAJOR} (portal/package.json engines), this machine has {}",
            version.trim()
        );
    }
    Ok(())
}

/// `npm ci` in `portal/` unless `node_modules` was installed from this very `package-lock.json`
/// (a stamp inside `node_modules` holds the lock file's contents).
pub fn ensure_node_modules() -> anyhow::Result<()> {
    ensure_node()?;
    let portal = dir();
    let lock = std::fs::read_to_string(portal.join("package-lock.json"))
        .context("cannot read portal/package-lock.json")?;
    let stamp = portal.join("node_modules/.hdi-package-lock.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(());
    }
    eprintln!("xtask: npm ci (portal)");
    run(
        "npm ci",
        Command::new("npm").current_dir(&portal).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
    )?;
    std::fs::write(&stamp, &lock).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(())
}

/// Runs a tool of `portal/node_modules/.bin` in `portal/`.
fn npx(what: &str, args: &[&str]) -> anyhow::Result<()> {
    run(what, &mut npx_command(args))
}

fn npx_command(args: &[&str]) -> Command {
    let portal = dir();
    let (tool, rest) = args.split_first().map_or(("", &[][..]), |(t, r)| (*t, r));
    let mut command = Command::new(portal.join("node_modules/.bin").join(tool));
    command.current_dir(portal).args(rest);
    command
}

/// openapi-typescript over `openapi/hdi.json`, written to `out`.
pub fn generate_types(out: &Path) -> anyhow::Result<()> {
    let spec = repo_root().join("openapi/hdi.json");
    let mut command = npx_command(&["openapi-typescript", "--empty-objects-unknown", "--output"]);
    command.arg(out).arg(&spec).env("NO_COLOR", "1");
    let result = command
        .output()
        .context("cannot start openapi-typescript")?;
    if !result.status.success() {
        bail!(
            "openapi-typescript failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Ok(())
}

/// `vite build` into `out` (emptied first).
pub fn build_dist(out: &Path) -> anyhow::Result<()> {
    let mut command = npx_command(&[
        "vite",
        "build",
        "--logLevel",
        "warn",
        "--emptyOutDir",
        "--outDir",
    ]);
    command.arg(out);
    run("vite build", &mut command)
}

/// The gzipped size (`gzip -9`) of the JavaScript in `dist/assets`.
fn gzipped_js(dist: &Path) -> anyhow::Result<usize> {
    let mut total = 0;
    for entry in std::fs::read_dir(dist.join("assets"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "js") {
            let out = Command::new("gzip")
                .arg("-9c")
                .arg(&path)
                .output()
                .context("cannot run gzip")?;
            total += out.stdout.len();
        }
    }
    Ok(total)
}

/// Every file under `dir`, by path relative to it, with its bytes.
#[cfg(test)]
fn files(dir: &Path) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in
            std::fs::read_dir(&current).with_context(|| format!("{}", current.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}

/// What differs between the checked-in portal and one built now into `scratch`: one line per
/// file (empty when fresh).
#[cfg(test)]
pub fn stale_files(scratch: &Path) -> anyhow::Result<Vec<String>> {
    ensure_node_modules()?;
    let portal = dir();
    let types = scratch.join("hdi.d.ts");
    generate_types(&types)?;
    let mut problems = Vec::new();
    if std::fs::read(&types)? != std::fs::read(portal.join("src/api/hdi.d.ts")).unwrap_or_default()
    {
        problems.push("changed src/api/hdi.d.ts".to_owned());
    }
    let dist = scratch.join("dist");
    build_dist(&dist)?;
    let built = files(&dist)?;
    let checked_in = files(&portal.join("dist")).unwrap_or_default();
    for (name, bytes) in &built {
        match checked_in.get(name) {
            None => problems.push(format!("missing dist/{name}")),
            Some(old) if old != bytes => problems.push(format!("changed dist/{name}")),
            Some(_) => {}
        }
    }
    for name in checked_in.keys() {
        if !built.contains_key(name) {
            problems.push(format!("unused dist/{name}"));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// `portal/src/api/hdi.d.ts` and `portal/dist/` are what `openapi/hdi.json` and the portal's
    /// sources make today.
    #[test]
    fn portal_build_is_fresh() {
        let scratch = tempfile::tempdir().unwrap();
        let problems = stale_files(scratch.path()).unwrap();
        assert!(
            problems.is_empty(),
            "the portal's checked-in build is stale: run `cargo xtask portal` and commit the result\n{}",
            problems.join("\n")
        );
    }
}
