//! The notebook objective end to end: `examples/notebooks/card-transactions.ipynb` executed
//! headless with papermill, in the test venv's own Jupyter kernel (ipykernel's kernelspec inside
//! the venv: nothing installed at run time), against a real platform built like the demo of
//! `cargo xtask up`: a control plane, two node agents, a secured Kafka cluster (SASL_SSL,
//! SCRAM and OAUTHBEARER) with the topics `transactions` and `alerts`, and a Spark cluster running
//! `examples/card-generator.sql` and `examples/card-alerts.sql`. The `hdi` package (`python/`) is
//! installed into the venv first. The run fails on any error output; it must produce a PNG per
//! chart, which are written to `target/notebook-shots/` to be looked at. Also: the notebook is
//! committed without outputs, and the package's pure logic passes its unit checks
//! (`python/tests`, standard-library unittest).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdi_e2e::{Fleet, bin, client_command, eventually, test_python};
use serde_json::Value;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The notebook under test.
fn notebook_path() -> PathBuf {
    repo().join("examples/notebooks/card-transactions.ipynb")
}

/// The target directory the binaries were built into (`<target>/debug/hdictl`).
fn target_dir() -> PathBuf {
    bin("hdictl")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned()
}

#[test]
fn notebook_is_committed_without_outputs() {
    let text = std::fs::read_to_string(notebook_path()).unwrap();
    let notebook: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(notebook["nbformat"], 4);
    let cells = notebook["cells"].as_array().unwrap();
    let mut parameters = 0;
    for cell in cells {
        if cell["cell_type"] != "code" {
            continue;
        }
        let id = &cell["id"];
        assert_eq!(
            cell["outputs"],
            serde_json::json!([]),
            "cell {id} has outputs: strip them before committing"
        );
        assert!(
            cell["execution_count"].is_null(),
            "cell {id} has an execution count: strip outputs before committing"
        );
        let tags = cell["metadata"]["tags"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if tags.iter().any(|t| t == "parameters") {
            parameters += 1;
        }
    }
    assert_eq!(parameters, 1, "one cell tagged `parameters` (papermill)");
}

#[test]
fn python_package_unit_checks() {
    let out = client_command(test_python())
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo().join("python/tests"))
        .env("PYTHONPATH", repo().join("python"))
        .env("MPLCONFIGDIR", target_dir().join("notebook/matplotlib"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python -m unittest:\n{stderr}");
    assert!(stderr.contains("\nOK"), "{stderr}");
}

/// Runs hdictl with the fleet's config until it succeeds or fails for good: a new secured
/// cluster's Kafka user for jobs may not be ready at first (`cluster_not_ready`), nor the driver
/// (`driver_unavailable`), as `cargo xtask up` waits for.
async fn hdictl_retrying(fleet: &Fleet, args: &[&str]) -> String {
    let (out, _) = eventually(
        &format!("hdictl {args:?}"),
        Duration::from_secs(90),
        || async {
            let (ok, out, err) = fleet.hdictl(args);
            if ok {
                return Some(out);
            }
            assert!(
                err.contains("cluster_not_ready") || err.contains("driver_unavailable"),
                "hdictl {args:?}: {err}"
            );
            tokio::time::sleep(Duration::from_millis(900)).await;
            None
        },
    )
    .await
    .unwrap();
    out
}

/// Copies the package's sources (not what a build left beside them) to `to`.
fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(name.as_ref(), "build" | "__pycache__" | "tests") || name.ends_with(".egg-info")
        {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_package(&entry.path(), &to.join(&*name));
        } else {
            std::fs::copy(entry.path(), to.join(&*name)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notebook_streams_the_demo_into_pandas() {
    let fleet = Fleet::start_with_workspace("notebook", 2).await;
    // The demo's clusters, smaller: one broker (secured, as every new Kafka cluster), one executor.
    fleet.create_cluster("kafka", &["--kind", "kafka", "--brokers", "1"]);
    let kafka = fleet.hdictl_json(&["cluster", "show", "kafka", "-o", "json"]);
    assert_eq!(
        kafka["status"]["endpoints"]["security_protocol"], "SASL_SSL",
        "{kafka:#}"
    );
    fleet.create_cluster("spark", &["--kind", "spark", "--executors", "1"]);
    for topic in ["transactions", "alerts"] {
        fleet.hdictl_ok(&["topic", "create", "kafka", topic, "--partitions", "3"]);
    }
    for sql in ["card-generator.sql", "card-alerts.sql"] {
        let file = repo().join("examples").join(sql);
        hdictl_retrying(
            &fleet,
            &[
                "job",
                "submit",
                "spark",
                "--file",
                file.to_str().unwrap(),
                "--kafka-cluster",
                "kafka",
            ],
        )
        .await;
    }
    // Both jobs commit batches before the notebook starts.
    eventually(
        "the demo jobs to commit batches",
        Duration::from_secs(90),
        || async {
            let jobs = fleet.hdictl_json(&["-o", "json", "job", "list", "spark"]);
            let committed = |name: &str| {
                jobs.as_array().unwrap().iter().any(|j| {
                    j["name"] == name
                        && j["status"]["state"] == "Running"
                        && j["status"]["batches_committed"].as_u64().unwrap_or(0) > 0
                })
            };
            (committed("card-generator") && committed("card-alerts")).then_some(())
        },
    )
    .await
    .unwrap();

    // The package, from a copy of its sources (so that the build leaves nothing in the checkout).
    let python = test_python();
    let work = fleet.dir.path().join("notebook");
    copy_package(&repo().join("python"), &work.join("python"));
    let started = Instant::now();
    let out = client_command(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--force-reinstall",
        ])
        .arg(work.join("python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install ./python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "pip install ./python: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Jupyter's and IPython's directories under target/, so that nothing lands in $HOME.
    let target = target_dir();
    let jupyter = target.join("notebook");
    let executed = work.join("card-transactions.out.ipynb");
    let started = Instant::now();
    let out = client_command(&python)
        .args(["-m", "papermill", "--kernel", "python3", "--cwd"])
        .arg(repo().join("examples/notebooks"))
        .args(["--execution-timeout", "240", "--log-output"])
        .arg(notebook_path())
        .arg(&executed)
        .args(["-p", "api_url", &fleet.control_plane.url])
        .args(["-p", "token", &fleet.secrets.admin_token])
        .args(["-p", "workspace", "test"])
        .args(["-p", "kafka", "kafka"])
        .args(["-p", "spark", "spark"])
        .args(["-p", "seconds", "25"])
        .env("JUPYTER_DATA_DIR", jupyter.join("data"))
        .env("JUPYTER_RUNTIME_DIR", jupyter.join("runtime"))
        .env("JUPYTER_CONFIG_DIR", jupyter.join("config"))
        .env("IPYTHONDIR", jupyter.join("ipython"))
        .env("MPLCONFIGDIR", jupyter.join("matplotlib"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("papermill: {:.1}s", took.as_secs_f64());
    let notebook: Value = std::fs::read(&executed)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("papermill wrote no notebook:\n{log}"));
    let errors = error_outputs(&notebook);
    assert!(
        out.status.success() && errors.is_empty(),
        "the notebook failed:\n{}\n{log}",
        errors.join("\n")
    );

    // Every chart rendered: write the PNGs where people can look at them.
    let shots = target.join("notebook-shots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let images = png_outputs(&notebook);
    for (name, png) in &images {
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
        std::fs::write(shots.join(name), png).unwrap();
    }
    eprintln!("{} charts written to {}", images.len(), shots.display());
    let cells: Vec<&str> = images.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        cells.iter().any(|n| n.starts_with("live-")) && cells.iter().any(|n| n.starts_with("job-")),
        "a chart of the transactions and one of the job's progress: {cells:?}"
    );
    let text = stream_text(&notebook);
    assert!(
        text.contains("match the pandas recomputation"),
        "the alerts check ran:\n{text}"
    );
    eprintln!("{text}");
}

/// `ename: evalue` and the traceback of every error output.
fn error_outputs(notebook: &Value) -> Vec<String> {
    outputs(notebook)
        .filter(|(_, o)| o["output_type"] == "error")
        .map(|(id, o)| {
            let traceback: Vec<&str> = o["traceback"]
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "cell {id}: {}: {}\n{}",
                o["ename"],
                o["evalue"],
                traceback.join("\n")
            )
        })
        .collect()
}

/// Every `image/png` output, decoded, named `<cell id>-<n>.png`.
fn png_outputs(notebook: &Value) -> Vec<(String, Vec<u8>)> {
    let mut images = Vec::new();
    for (id, output) in outputs(notebook) {
        let png = &output["data"]["image/png"];
        let base64 = match png {
            Value::String(s) => s.clone(),
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let n = images
            .iter()
            .filter(|(name, _): &&(String, Vec<u8>)| name.starts_with(&format!("{id}-")))
            .count();
        images.push((format!("{id}-{n}.png"), decode_base64(&base64)));
    }
    images
}

/// The text every cell printed.
fn stream_text(notebook: &Value) -> String {
    outputs(notebook)
        .filter(|(_, o)| o["output_type"] == "stream")
        .map(|(_, o)| match &o["text"] {
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect::<String>(),
            other => other.as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// (cell id, output) of every code cell's outputs.
fn outputs(notebook: &Value) -> impl Iterator<Item = (String, &Value)> {
    notebook["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|cell| {
            let id = cell["id"].as_str().unwrap_or("cell").to_owned();
            cell["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |o| (id.clone(), o))
        })
}

/// Standard base64 (Jupyter's encoding of images; line breaks ignored).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut buffer = 0u32;
        for (i, digit) in chunk.iter().enumerate() {
            buffer |= digit << (18 - 6 * i);
        }
        let bytes = buffer.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_as_jupyter_encodes() {
    assert_eq!(decode_base64("aGRp"), b"hdi");
    assert_eq!(decode_base64("aGRpIQ=="), b"hdi!");
    assert_eq!(decode_base64("aGRpIT8=\n"), b"hdi!?");
}
