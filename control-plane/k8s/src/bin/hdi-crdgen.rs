//! `hdi-crdgen DIR`: writes the CRDs as the chart's templates into DIR (`cargo xtask codegen`
//! passes `charts/hdi/templates/crds`), removing generated files no CRD produces any more.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: hdi-crdgen DIR (e.g. charts/hdi/templates/crds)")?,
    );
    std::fs::create_dir_all(&dir)?;
    let manifests = hdi_k8s::crd_manifests()?;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".yaml") && !manifests.iter().any(|(m, _)| m == n));
        if stale {
            std::fs::remove_file(&path)?;
        }
    }
    for (name, text) in manifests {
        std::fs::write(dir.join(&name), text)?;
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}
