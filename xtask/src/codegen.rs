//! `cargo xtask codegen`: the generated files that are checked in, and the test that they are fresh.
//!
//! - `openapi/hdi.json`, from `hdi-control-plane openapi` (`control-plane/tests/openapi.rs` checks
//!   it).
//! - `.sqlx/`: the offline data of the compile-checked queries (`sqlx::query!`, `query_as!`,
//!   `query_scalar!` in `control-plane/src/store/`), one `query-<SHA-256 of the SQL>.json` per
//!   query with the types and nullability of its parameters and columns. Builds read it
//!   (`SQLX_OFFLINE=true` in `.cargo/config.toml`) and need no database. The sqlx macros write it
//!   themselves, as `cargo sqlx prepare` has them do: a scratch PostgreSQL gets the migrations
//!   (`psql` on each file of `migrations/` in order), then `cargo check -p hdi-control-plane
//!   --all-targets` recompiles the crate with `DATABASE_URL` pointing at it, `SQLX_OFFLINE=false`
//!   and `SQLX_OFFLINE_DIR` set to an empty directory. That directory then replaces `.sqlx/`
//!   (stale files removed). The test below regenerates it the same way and compares.
//! - `charts/hdi/templates/crds/`, the CRDs from the Rust types of `control-plane/k8s/src/crd.rs`
//!   (`hdi-crdgen`; `control-plane/k8s/tests/crds_fresh.rs` checks them).
//! - `python/hdi/models.py`, the Python package's typed models and operations, from
//!   `openapi/hdi.json` by `python/gen_models.py` (standard library only; the test below runs it
//!   and compares).
//! - `portal/src/api/hdi.d.ts` and `portal/dist/`, the web portal's API types from
//!   `openapi/hdi.json` and its build (`crate::portal::regenerate`, which also type-checks the
//!   portal against the new types; `portal_build_is_fresh` checks them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::postgres::{Durability, ScratchPostgres};
use crate::util::{cargo, output, repo_root, run};

/// The database the migrations are applied to.
const DATABASE: &str = "hdi_codegen";

/// `cargo xtask codegen`: rewrites `openapi/hdi.json`, `.sqlx/` and the chart's CRDs from the code.
pub fn run_codegen() -> anyhow::Result<()> {
    let generated = sqlx_offline_data()?;
    let dir = repo_root().join(".sqlx");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for name in read_offline_data(&dir)?.keys() {
        if !generated.contains_key(name) {
            let path = dir.join(name);
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    for (name, text) in &generated {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("wrote {} ({} queries)", dir.display(), generated.len());
    // After `.sqlx/`: building the control plane needs it.
    let spec = output(
        "hdi-control-plane openapi",
        cargo().args(["run", "--quiet", "-p", "hdi-control-plane", "--", "openapi"]),
    )?;
    let path = repo_root().join("openapi/hdi.json");
    std::fs::write(&path, spec).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    let models = python_models()?;
    let path = repo_root().join(PYTHON_MODELS);
    std::fs::write(&path, models).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    crate::portal::regenerate()?;
    let crds = repo_root().join("charts/hdi/templates/crds");
    run(
        "hdi-crdgen",
        cargo()
            .args([
                "run",
                "--quiet",
                "-p",
                "hdi-k8s",
                "--bin",
                "hdi-crdgen",
                "--",
            ])
            .arg(&crds),
    )?;
    Ok(())
}

/// The Python package's generated module, from `openapi/hdi.json`.
const PYTHON_MODELS: &str = "python/hdi/models.py";

/// `python/hdi/models.py` as `python/gen_models.py` makes it from the checked-in
/// `openapi/hdi.json` (with the test venv's interpreter when `HDI_TEST_PYTHON` is set, else
/// `python3`).
pub fn python_models() -> anyhow::Result<String> {
    let python = std::env::var_os("HDI_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    output(
        "python/gen_models.py",
        std::process::Command::new(python)
            .arg(repo_root().join("python/gen_models.py"))
            .arg(repo_root().join("openapi/hdi.json"))
            .arg("-"),
    )
}

/// The offline data of every compile-checked query as the code and migrations make it today:
/// file name → contents.
pub fn sqlx_offline_data() -> anyhow::Result<BTreeMap<String, String>> {
    let scratch =
        ScratchPostgres::start(&crate::postgres::find_or_install()?, Durability::Scratch)?;
    scratch.server.ensure_database(DATABASE)?;
    for migration in migrations()? {
        scratch.server.run_file(DATABASE, &migration)?;
    }
    let out = std::env::temp_dir().join(format!(
        "hdi-sqlx-{}-{:x}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let result =
        check_online(&scratch.server.url(DATABASE), &out).and_then(|()| read_offline_data(&out));
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// Recompiles `hdi-control-plane` with its query macros online, writing their data into `out`.
fn check_online(database_url: &str, out: &Path) -> anyhow::Result<()> {
    // The macros run only when the crate is recompiled, and cargo does not see the environment
    // change: touch the crate root. Another build of the crate (offline) may slip in between the
    // touch and our check and leave nothing to recompile, hence the retries.
    for _ in 0..3 {
        let root = repo_root().join("control-plane/src/lib.rs");
        std::fs::File::options()
            .write(true)
            .open(&root)
            .and_then(|file| file.set_modified(SystemTime::now()))
            .with_context(|| format!("cannot touch {}", root.display()))?;
        run(
            "cargo check -p hdi-control-plane (sqlx macros online)",
            cargo()
                .args([
                    "check",
                    "-p",
                    "hdi-control-plane",
                    "--all-targets",
                    "--locked",
                    "--quiet",
                ])
                .env("DATABASE_URL", database_url)
                .env("SQLX_OFFLINE", "false")
                .env("SQLX_OFFLINE_DIR", out),
        )?;
        if std::fs::read_dir(out)?.next().is_some() {
            return Ok(());
        }
    }
    bail!(
        "cargo check of hdi-control-plane wrote no sqlx offline data into {} (the crate was not \
         recompiled, or it has no compile-checked queries)",
        out.display()
    )
}

/// The files of `migrations/` in the order sqlx applies them (by version, the name's prefix).
fn migrations() -> anyhow::Result<Vec<PathBuf>> {
    let dir = repo_root().join("migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no migrations in {}", dir.display());
    }
    Ok(files)
}

/// The `query-*.json` files of a directory (none when it does not exist): name → contents.
fn read_offline_data(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(files);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("query-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            files.insert(name, text);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `python/hdi/models.py` is what `python/gen_models.py` makes of `openapi/hdi.json`.
    #[test]
    fn python_models_are_fresh() {
        let generated = python_models().unwrap();
        assert!(generated.contains("OPERATIONS"), "{generated}");
        let checked_in = std::fs::read_to_string(repo_root().join(PYTHON_MODELS)).unwrap();
        assert!(
            generated == checked_in,
            "{PYTHON_MODELS} is stale: run `cargo xtask codegen` and commit the result"
        );
    }

    /// `.sqlx/` holds exactly the data the queries and migrations make today. (A query without
    /// data already fails to compile offline; this also catches unused files and data that a
    /// changed migration made wrong.)
    #[test]
    fn sqlx_offline_data_is_fresh() {
        let generated = sqlx_offline_data().unwrap();
        assert!(!generated.is_empty());
        let checked_in = read_offline_data(&repo_root().join(".sqlx")).unwrap();
        let mut problems = Vec::new();
        for (name, text) in &generated {
            match checked_in.get(name) {
                None => problems.push(format!("missing {name}")),
                Some(old) if old != text => problems.push(format!("changed {name}")),
                Some(_) => {}
            }
        }
        for name in checked_in.keys() {
            if !generated.contains_key(name) {
                problems.push(format!("unused {name}"));
            }
        }
        assert!(
            problems.is_empty(),
            ".sqlx/ is stale: run `cargo xtask codegen` and commit the result\n{}",
            problems.join("\n")
        );
    }
}
