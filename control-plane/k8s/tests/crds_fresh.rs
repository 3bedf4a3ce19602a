//! The chart's CRD templates are what the Rust types generate: run `cargo xtask codegen` after
//! changing `src/crd.rs`.

use std::path::Path;

#[test]
fn chart_crds_are_fresh() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/hdi/templates/crds");
    let manifests = hdi_k8s::crd_manifests()?;
    for (name, text) in &manifests {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == *text,
            "charts/hdi/templates/crds/{name} is stale: run `cargo xtask codegen`"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut expected: Vec<String> = manifests.into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(
        files, expected,
        "charts/hdi/templates/crds has files no CRD generates"
    );
    Ok(())
}
