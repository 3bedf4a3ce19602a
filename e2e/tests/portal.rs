//! The web portal in a real browser: Debian's Chromium driven by Playwright (the specs in
//! `portal/e2e/`, run with `playwright test`; Playwright's own browsers are never downloaded)
//! against a real control plane, three node agents and the brokers and executors they run.
//!
//! The test prepares what the specs take as given (users `alice`, admin of workspace `test`, and
//! `victor`, its viewer; a Spark cluster `etl`), exports the URL and credentials, runs the specs
//! in file order (sign-in; a Kafka cluster created in the browser and watched to Running, a topic,
//! a refused scale-in; the live tail of a kcat burst; a job's SQL error and moving charts; a
//! viewer's view and a server 403; consumer-group lag against `hdictl group describe`; the first
//! load under 1 s, session expiry and the unreachable banner; a group's offsets reset and its
//! deletion, a tail seeking by time; a replication link created, paused, resumed, promoted and
//! deleted between two one-broker clusters this test makes; Kafka users), then checks through
//! the API that what the browser did happened. Screenshots land in `target/portal-shots/`, the
//! first-load figures in `target/portal-results/first-load.json`.
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
    // The replication pair of the links spec (the browser creates the link): two secured
    // one-broker Kafka clusters in two fault domains, the source's topic `orders` holding 100
    // records. The source's Kafka users page is the Kafka users spec's.
    let (east, _) = fleet.create_cluster("east", &["--kind", "kafka", "--brokers", "1"]);
    let (west, _) = fleet.create_cluster("west", &["--kind", "kafka", "--brokers", "1"]);
    let domain = |c: &serde_json::Value| c["status"]["workloads"][0]["fault_domain"].as_u64();
    assert_ne!(
        domain(&east),
        domain(&west),
        "the pair is in two fault domains"
    );
    fleet.hdictl_ok(&["topic", "create", "east", "orders", "-p", "1", "-r", "1"]);
    let orders = fleet.dir.path().join("orders.txt");
    let lines: Vec<String> = (0..100).map(|i| format!("order-{i:04}")).collect();
    std::fs::write(&orders, lines.join("\n") + "\n").unwrap();
    fleet.hdictl_ok(&[
        "topic",
        "produce",
        "east",
        "orders",
        "--file",
        orders.to_str().unwrap(),
    ]);

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
        .env("HDI_PORTAL_LINK_SOURCE", "east")
        .env("HDI_PORTAL_LINK_TARGET", "west")
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
    assert!(stdout.contains("15 passed"), "every spec ran: {stdout}");
    // The first-load figures the session spec measured (and asserted under 1 s).
    let first_load = target_subdir("portal-results").join("first-load.json");
    let measured = std::fs::read_to_string(&first_load)
        .unwrap_or_else(|e| panic!("{}: {e}", first_load.display()));
    println!("portal first load: {measured}");

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
