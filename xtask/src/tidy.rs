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
