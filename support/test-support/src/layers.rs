//! Module layering as a test: each module of a crate names (`crate::<module>`) only modules
//! listed below it, so the modules form no cycle. The broker and the executor check theirs.

use std::path::Path;

/// The modules a file's code names as `crate::<module>` (comments and tests left out).
pub fn uses(source: &str) -> Vec<&str> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut used = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                used.push(&rest[..end]);
            } else if let Some(list) = rest.strip_prefix('{') {
                // `use crate::{a, b::c};` on one line.
                let list = list.split('}').next().unwrap_or_default();
                used.extend(list.split(',').filter_map(|item| {
                    let name = item.trim().split("::").next()?;
                    (!name.is_empty()).then_some(name)
                }));
            }
        }
    }
    used
}

/// Checks every file under `src` (a crate's `src/`; `lib.rs` and `main.rs` skipped): its
/// top-level module must be in `layers` (top down) and use only modules after it. Answers how
/// many files were checked.
///
/// # Panics
/// On a module missing from `layers`, a use of a module not below, or an unreadable file.
pub fn assert_layered(src: &Path, layers: &[&str]) -> usize {
    let mut files = vec![src.to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read src") {
                files.push(entry.expect("entry").path());
            }
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|m| m.trim_end_matches(".rs"))
            .expect("module name");
        if module == "lib" || module == "main" {
            continue;
        }
        let layer = layers
            .iter()
            .position(|l| *l == module)
            .unwrap_or_else(|| panic!("{module} is not in the layers"));
        let source = std::fs::read_to_string(&path).expect("read");
        for used in uses(&source) {
            if used == module {
                continue;
            }
            let below = layers.iter().position(|l| *l == used);
            assert!(
                below.is_some_and(|b| b > layer),
                "{} uses crate::{used}, which is not below {module}",
                relative.display()
            );
        }
        checked += 1;
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::uses;

    #[test]
    fn uses_reads_paths_and_lists_but_not_comments_or_tests() {
        let source = "use crate::a::X;\nuse crate::{b, c::D};\n// crate::e\nfn f() { crate::g::h(); }\n#[cfg(test)]\nuse crate::z;\n";
        assert_eq!(uses(source), ["a", "b", "c", "g"]);
    }
}
