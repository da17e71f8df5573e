//! schemathesis (PyPI) against the real `talos-manager serve` on SQLite, through its served
//! OpenAPI document and with an admin token, for a bounded time and a fixed seed: no answer may
//! be a 5xx, and every answer must match the document (`docs/testing.md`).
//!
//! The Hetzner APIs and the Image Factory are the fakes on loopback, seeded with a Robot account
//! and its two servers (addresses on loopback), synced, so that operations on a server find real
//! ones. schemathesis is installed
//! by `scripts/test` into `.cache/schemathesis`; without it this test fails, saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use talos_manager_fake_hetzner::{FakeCloud, FakeImageFactory, FakeRobot, RobotServer};

use super::service::{Service, binary};

/// The whole run's time budget, in seconds (schemathesis's `--max-time`).
const MAX_TIME_SECONDS: u32 = 60;
/// The seed of schemathesis's data generation, for a reproducible run.
const SEED: u32 = 18;

/// The schemathesis executable: `$SCHEMATHESIS`, else the one `scripts/test` installs.
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the e2e crate is inside the workspace")
                .join(".cache/schemathesis/bin/schemathesis")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: scripts/test installs schemathesis (PyPI) there",
        path.display()
    );
    path
}

/// Makes an admin token the way an operator does, before the service starts.
fn create_token(data_dir: &Path) -> String {
    let output = Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TALOS_MANAGER_DATA_DIR", data_dir)
        .args(["token", "create", "schemathesis"])
        .stdin(Stdio::null())
        .output()
        .expect("run talos-manager token create");
    assert!(
        output.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.trim().lines().last().unwrap().trim().to_owned()
}

/// Adds the fake Robot account and waits for its first sync.
async fn seed(service: &Service, token: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let call = |method: reqwest::Method, path: &str| {
        client
            .request(method, service.url(&format!("/api/v1{path}")))
            .bearer_auth(token)
    };
    let response = call(reqwest::Method::POST, "/provider-accounts")
        .json(&json!({
            "provider": "hetzner_robot",
            "name": FakeRobot::USER,
            "secret": FakeRobot::PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let job: Value = call(reqwest::Method::POST, "/servers/sync")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = job["id"].as_str().expect("a job id").to_owned();
    talos_manager_core::testing::wait_for(
        "the seeding sync to succeed",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let job: Value = call(reqwest::Method::GET, &format!("/jobs/{job_id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match job["status"].as_str() {
                Some("succeeded") => Ok(()),
                Some("queued" | "running") => Err(job),
                _ => panic!("the seeding sync did not succeed: {job:#}"),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = schemathesis();
    // Servers on loopback only: the jobs the run queues (resets, upgrades, reboots) connect to
    // their addresses, and nothing may leave 127.0.0.0/8.
    let robot = FakeRobot::start_empty().await.unwrap();
    // Schemathesis sends thousands of made-up account passwords: after three, the real Robot
    // blocks the address and the service rightly answers 503 "retry later" to every account
    // call. That answer is tested by the sync tests; here it would hide the API's own answers.
    // Its thousands of requests would spend Robot's hourly limits the same way.
    robot.never_block();
    robot.without_hourly_limits();
    for (number, name, ip) in [
        (321, "control-plane-1", "127.0.0.2"),
        (322, "worker-1", "127.0.0.3"),
    ] {
        robot.add_server(RobotServer {
            ip: Some(ip.into()),
            ipv6_net: None,
            ..RobotServer::new(number, name)
        });
    }
    let cloud = FakeCloud::start_empty().await.unwrap();
    let factory = FakeImageFactory::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let token = create_token(&data_dir);
    let service = Service::start(&[
        ("TALOS_MANAGER_DATA_DIR", data_dir.display().to_string()),
        ("HETZNER_ROBOT_API_URL", robot.url().to_owned()),
        ("HETZNER_CLOUD_API_URL", cloud.url().to_owned()),
        ("TALOS_IMAGE_FACTORY_URL", factory.url().to_owned()),
        ("SYNC_INTERVAL", "0".to_owned()),
        // Jobs the run queues give up quickly: every server address is on loopback, where no
        // rescue system or Talos node answers (and without SSH_PRIVATE_KEY, bootstraps and
        // the sync's SSH probe do not start).
        ("RESCUE_TIMEOUT", "5".to_owned()),
        ("NODE_READY_TIMEOUT", "5".to_owned()),
        ("DRAIN_TIMEOUT", "5".to_owned()),
    ]);
    seed(&service, &token).await;

    let report = dir.path().join("junit.xml");
    let mut command = Command::new(schemathesis);
    command
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .arg("run")
        .arg(service.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--seed", &SEED.to_string()])
        .args(["--max-time", &MAX_TIME_SECONDS.to_string()])
        .args(["--workers", "2", "--request-timeout", "30"])
        // A live stream: it answers for as long as the client listens, so every request would
        // run into the timeout.
        .args(["--exclude-operation-id", "follow_server_events"])
        // Revoking tokens: the run could revoke its own and spend the rest of its time on 401s.
        .args(["--exclude-operation-id", "delete_token"])
        // Rolling upgrades, reboots and resets drain nodes through the Kubernetes API at the
        // cluster's `endpoint`, which a generated cluster sets to any host name: they could
        // reach outside loopback (and wait minutes for nodes). Their refusals are tested in
        // tests/http/lifecycle.rs.
        .args(["--exclude-operation-id", "upgrade_nodes"])
        .args(["--exclude-operation-id", "reboot_nodes"])
        .args(["--exclude-operation-id", "reset_server"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .stdin(Stdio::null());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures ({elapsed:?}):\n{stdout}\n{stderr}"
    );
    // It did test: the summary lists the operations and the cases it generated.
    assert!(stdout.contains("Test cases:"), "{stdout}\n{stderr}");
    assert!(
        elapsed < Duration::from_secs(u64::from(MAX_TIME_SECONDS) + 60),
        "the run took {elapsed:?}"
    );
    // The summary goes to the test's output (`--nocapture`), for docs/testing.md's numbers.
    let summary = stdout
        .lines()
        .skip_while(|line| !line.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    #[allow(clippy::print_stdout)]
    {
        println!("schemathesis in {elapsed:?}:\n{summary}");
    }
}
