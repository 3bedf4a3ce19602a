//! Tidy tests over the whole repository: rules no compiler checks.

use std::path::{Path, PathBuf};

use crate::util::repo_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | ".hdi" | "node_modules" | "fuzz-target" | "third_party"
            ) {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Every crate and module says what it owns in a `//!` comment at its top.
#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&repo_root(), &mut files);
    assert!(
        files.len() > 20,
        "found only {} Rust files; is the walk broken?",
        files.len()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(repo_root())
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "files without a leading //! doc comment: {offenders:#?}"
    );
}

/// README.md keeps exactly the two set-up commands, and CI runs the test one.
#[test]
fn readme_commands_are_what_ci_runs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("cargo xtask "))
        .collect();
    assert_eq!(
        commands,
        ["cargo xtask up", "cargo xtask test"],
        "README.md set-up commands"
    );
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|line| line.trim_start().starts_with("cargo xtask test")),
        ".ci/run must call cargo xtask test"
    );
}

/// ARCHITECTURE.md names every workspace member.
#[test]
fn architecture_names_every_crate() {
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .lines()
        .skip_while(|line| !line.starts_with("members"))
        .skip(1)
        .take_while(|line| !line.starts_with(']'))
        .filter_map(|line| {
            line.trim()
                .trim_end_matches(',')
                .strip_prefix('"')?
                .strip_suffix('"')
        })
        .collect();
    assert!(members.len() >= 9, "{members:?}");
    for member in members {
        assert!(
            architecture.contains(&format!("`{member}/`")),
            "ARCHITECTURE.md does not mention `{member}/`"
        );
    }
}

/// The code lines of a Rust file: comment lines dropped, so that a doc naming a crate is not taken
/// for a use of it.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
}

/// Whether a code line names the crate `name` as a path (`name::…`, `use name`, `name!`).
fn names_crate(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = &line[at + name.len()..];
        let starts_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts_word
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// The Rust files under `dir` (relative to the repository) that name one of `crates`, with the
/// first offending line.
fn files_naming(dir: &str, crates: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&repo_root().join(dir), &mut files);
    assert!(
        !files.is_empty(),
        "no Rust files under {dir}: is the path stale?"
    );
    let mut offenders = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in code_lines(&text) {
            if let Some(name) = crates.iter().find(|name| names_crate(line, name)) {
                let shown = path.strip_prefix(repo_root()).unwrap_or(&path).display();
                offenders.push(format!("{shown}: names {name}: {}", line.trim()));
                break;
            }
        }
    }
    offenders
}

/// The control plane's layers (ARCHITECTURE.md, "Architecture invariants"): only `store/` talks
/// to PostgreSQL and only `http/` knows axum; the layers below HTTP never see the wire types'
/// HTTP side, and the store never sees axum.
#[test]
fn control_plane_layers_name_only_what_they_may() {
    let rules: &[(&str, &[&str])] = &[
        ("control-plane/src/service", &["sqlx", "axum"]),
        ("control-plane/src/reconcile", &["sqlx", "axum"]),
        ("control-plane/src/provision", &["sqlx", "axum"]),
        ("control-plane/src/model", &["sqlx", "axum"]),
        ("control-plane/src/auth", &["sqlx", "axum"]),
        ("control-plane/src/kafka_admin", &["sqlx", "axum"]),
        ("control-plane/src/store", &["axum"]),
        ("control-plane/src/http", &["sqlx"]),
    ];
    let offenders: Vec<String> = rules
        .iter()
        .flat_map(|(dir, crates)| files_naming(dir, crates))
        .collect();
    assert!(
        offenders.is_empty(),
        "layering broken:\n{}",
        offenders.join("\n")
    );
}

/// The `[dependencies]`-style tables of a manifest: every `name = …` or `name.workspace = …` key.
fn dependency_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.contains("dependencies");
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            names.push(key.strip_suffix(".workspace").unwrap_or(key).to_owned());
        }
    }
    names
}

/// Every `Cargo.toml` under `dir`, skipping `target/` and fuzz directories.
fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(
                name.to_str(),
                Some("target" | "fuzz-target" | "node_modules")
            ) {
                manifests(&path, out);
            }
        } else if name == "Cargo.toml" {
            out.push(path);
        }
    }
}

/// The data plane knows nothing of the control plane; the node agent runs data-plane binaries
/// as processes and never links them.
#[test]
fn crate_dependencies_point_the_right_way() {
    let mut checks: Vec<(PathBuf, &[&str])> = Vec::new();
    let mut data_plane = Vec::new();
    manifests(&repo_root().join("data-plane"), &mut data_plane);
    assert!(data_plane.len() >= 3, "{data_plane:?}");
    for manifest in data_plane {
        checks.push((
            manifest,
            &["hdi-api", "hdi-control-plane", "hdi-node-agent", "hdictl"],
        ));
    }
    checks.push((
        repo_root().join("node-agent/Cargo.toml"),
        &["hdi-broker", "hdi-executor", "hdi-log"],
    ));
    let mut offenders = Vec::new();
    for (manifest, forbidden) in checks {
        let text = std::fs::read_to_string(&manifest).unwrap();
        for name in dependency_names(&text) {
            if forbidden.contains(&name.as_str()) {
                offenders.push(format!("{} depends on {name}", manifest.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Every local edit of a vendored crate is marked `hdi patch`, and `third_party/README.md` says
/// how many there are, so a silent extra edit shows up here.
#[test]
fn vendored_patches_are_all_declared() {
    fn count(dir: &Path, total: &mut usize) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                count(&path, total);
            } else if path.file_name().is_some_and(|name| name != "README.md") {
                let text = std::fs::read(&path).unwrap_or_default();
                *total += String::from_utf8_lossy(&text).matches("hdi patch").count();
            }
        }
    }
    let mut markers = 0;
    count(&repo_root().join("third_party"), &mut markers);
    let readme = std::fs::read_to_string(repo_root().join("third_party/README.md")).unwrap();
    let declared = readme
        .lines()
        .find_map(|line| {
            let rest = line.split("hdi patch markers: ").nth(1)?;
            rest.trim_end_matches('.').trim().parse::<usize>().ok()
        })
        .expect("third_party/README.md says 'hdi patch markers: N.'");
    assert_eq!(
        markers, declared,
        "third_party holds {markers} `hdi patch` markers; README.md declares {declared}"
    );
}

#[test]
fn names_crate_sees_paths_not_words() {
    assert!(names_crate("use sqlx::PgPool;", "sqlx"));
    assert!(names_crate("let e: sqlx::Error = x;", "sqlx"));
    assert!(names_crate("use sqlx;", "sqlx"));
    assert!(!names_crate("let my_sqlx = 1;", "sqlx"));
    assert!(!names_crate("let s = \"sqlx\";", "sqlx"));
    assert!(names_crate("axum::Router::new()", "axum"));
}
