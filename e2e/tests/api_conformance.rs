//! The REST API against its own OpenAPI document: schemathesis (from the test venv) generates
//! valid and invalid requests for every operation of the served `/openapi.json` and checks that
//! no answer is a 5xx and that every answer's status, content type, headers and body are the
//! ones the document declares.
//!
//! A control plane with one node agent, a workspace `test` and a one-broker Kafka cluster `kafka`
//! in it, so that workspace-, cluster- and topic-scoped operations reach their handlers (and the
//! Kafka admin protocol behind topics), not only the 404 of an unknown name.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use hdi_e2e::{Fleet, test_python};

/// Generated cases per operation and phase: about a minute on two cores for both runs.
const MAX_EXAMPLES: &str = "100";
/// Fixed, so that a failure reproduces.
const SEED: &str = "20240601";

/// Runs schemathesis against the fleet's served document with `token` as the bearer; fails the
/// test with its whole report unless it exits 0.
fn schemathesis(fleet: &Fleet, config: &Path, token: &str, extra: &[&str]) {
    let started = Instant::now();
    let out = Command::new(test_python().with_file_name("schemathesis"))
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("{}/openapi.json", fleet.control_plane.url))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        // The document has no links, so there is no stateful phase to run.
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "2", "--request-timeout", "30"])
        .args(["--generation-database", "none", "--no-color"])
        .arg("--report-dir")
        .arg(fleet.dir.path().join("schemathesis-report"))
        .args(extra)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(fleet.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("schemathesis {extra:?} took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "schemathesis {extra:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_conforms_to_its_openapi_document() {
    let fleet = Fleet::start_ready("api-conformance", 1).await;
    let api = fleet.api();
    api.workspace_create("test").await.unwrap();
    // Waits until the cluster is Running.
    let (created, out, err) = fleet.hdictl(&[
        "cluster",
        "create",
        "kafka",
        "--kind",
        "kafka",
        "--brokers",
        "1",
    ]);
    assert!(created, "cluster create failed:\n{err}\n{out}");

    // Names it makes up are unknown (a 404 is all those calls test), so `ws` and `cluster` are
    // the existing ones in most cases and arbitrary strings in the others. Cluster operations
    // take `name`, left arbitrary so that `kafka` is not deleted or resized under the topics.
    let config = fleet.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[dictionaries.workspaces]\nvalues = [\"test\"]\n\n\
         [dictionaries.clusters]\nvalues = [\"kafka\"]\n\n\
         [parameters]\n\
         \"path.ws\" = { dictionary = \"workspaces\", probability = 0.8 }\n\
         \"path.cluster\" = { dictionary = \"clusters\", probability = 0.8 }\n",
    )
    .unwrap();

    // Every operation, with the platform admin's token. Nothing is excluded: the agent endpoints
    // answer it 401, as documented, and deletions hit made-up names.
    schemathesis(&fleet, &config, &fleet.secrets.admin_token, &[]);
    // The agent endpoints again with the agent token, so that they get past authentication.
    let agent_token = std::fs::read_to_string(&fleet.secrets.agent_token_file).unwrap();
    schemathesis(
        &fleet,
        &config,
        agent_token.trim(),
        &["--include-path-regex", "^/v1/agent/"],
    );
}
