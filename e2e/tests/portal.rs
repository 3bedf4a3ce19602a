//! The web portal in a real browser: Debian's Chromium driven by Playwright (the specs in
//! `portal/e2e/`, run with `playwright test`; Playwright's own browsers are never downloaded)
//! against a real control plane, three node agents and the brokers and executors they run.
//!
//! The test prepares what the specs take as given (users `alice`, admin of workspace `test`, and
//! `victor`, its viewer; a Spark cluster `etl`), exports the URL and credentials, runs the specs
//! in file order (sign-in; a Kafka cluster created in the browser and watched to Running, a topic,
//! a refused scale-in; the live tail of a kcat burst; a job's SQL error and moving charts; a
//! viewer's view and a server 403; consumer-group lag against `hdictl group describe`), then checks through the API that what the browser did
//! happened. Screenshots land in `target/portal-shots/`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;

use hdi_api::Role;
use hdi_e2e::{Fleet, bin, kcat_consume_all};

const PASSWORD: &str = "portal-password-0123456789";

/// The repository's `portal/` directory.
fn portal_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../portal")
}

/// `<target>/<name>` (test executables live in `<target>/debug/deps/`).
fn target_subdir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_chromium() {
    let playwright = portal_dir().join("node_modules/.bin/playwright");
    assert!(
        playwright.exists(),
        "{} is missing: run the tests with `cargo xtask test` (it runs npm ci in portal/)",
        playwright.display()
    );
    let chromium =
        std::env::var("HDI_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run the tests with `cargo xtask test` (it installs Debian's chromium)"
    );

    let fleet = Fleet::start_with_workspace("portal", 3).await;
    let admin = fleet.api();
    for (user, role) in [("alice", Role::Admin), ("victor", Role::Viewer)] {
        admin.user_create(user, PASSWORD).await.unwrap();
        admin.role_binding_put("test", user, role).await.unwrap();
    }
    // The Spark cluster of the job spec (the browser creates and watches a Kafka cluster itself).
    fleet.create_cluster("etl", &["--kind", "spark", "--executors", "1"]);

    let shots = target_subdir("portal-shots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new(&playwright)
        .current_dir(portal_dir())
        .args(["test", "-c", "e2e/playwright.config.ts"])
        .env("HDI_URL", &fleet.control_plane.url)
        .env("HDI_PORTAL_ADMIN", "alice")
        .env("HDI_PORTAL_ADMIN_TOKEN", &fleet.secrets.admin_token)
        .env("HDI_PORTAL_VIEWER", "victor")
        .env("HDI_PORTAL_PASSWORD", PASSWORD)
        .env("HDI_PORTAL_WORKSPACE", "test")
        .env("HDI_PORTAL_SPARK", "etl")
        .env("HDI_HDICTL", bin("hdictl"))
        .env("HDI_HDICTL_CONFIG", &fleet.hdictl_config)
        .env("HDI_PORTAL_SHOTS", &shots)
        .env("HDI_PORTAL_RESULTS", target_subdir("portal-results"))
        .env("HDI_TEST_CHROMIUM", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "playwright test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("8 passed"), "every spec ran: {stdout}");

    // What the browser did, seen through the API and Kafka.
    let web = fleet.hdictl_json(&["cluster", "show", "web", "-o", "json"]);
    assert_eq!(web["status"]["state"], "Running", "{web:#}");
    assert_eq!(
        web["spec"]["node_pools"][0]["replicas"], 4,
        "the scale-in was refused: {web:#}"
    );
    let bootstrap = hdi_e2e::bootstrap_servers(&web);
    let records = kcat_consume_all(&bootstrap, "events");
    let burst = records.iter().filter(|r| r.starts_with("burst-")).count();
    assert_eq!(burst, 200, "the spec's kcat burst is in the topic");
    assert!(
        records.iter().any(|r| r == "from-the-portal"),
        "the record produced in the page"
    );
    let audit = admin.audit_list(None).await.unwrap();
    let by_alice: Vec<(&str, &str)> = audit
        .items
        .iter()
        .filter(|e| e.actor == "alice")
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    for expected in [
        ("cluster.create", "accepted"),
        ("cluster.resize", "brokers_hold_partitions"),
        ("job.create", "accepted"),
    ] {
        assert!(by_alice.contains(&expected), "{expected:?} in {by_alice:?}");
    }
    let shots_taken = std::fs::read_dir(&shots).unwrap().count();
    assert!(
        shots_taken >= 12,
        "{shots_taken} screenshots in {}",
        shots.display()
    );
}
