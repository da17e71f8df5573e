//! A whole flow through the real binary (provider accounts, sync, a cluster with generated
//! secrets, a machine config, a node fetching its config, an API token), after which neither the
//! database files nor the log (at debug level) hold any of those secrets in plaintext.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};

use super::process::{Service, talos_manager};

/// Every string leaf of a YAML document that is long enough to be a key or a token, under a key
/// whose name says it is one (`key`, `secret`, `token`).
fn secret_leaves(yaml: &Value, under_secret_key: bool, found: &mut BTreeSet<String>) {
    match yaml {
        Value::String(text) if under_secret_key && text.len() >= 16 => {
            found.insert(text.clone());
        }
        Value::Object(map) => {
            for (name, value) in map {
                let name = name.to_ascii_lowercase();
                let secret = name == "key"
                    || name.ends_with("secret")
                    || name.ends_with("token")
                    || name.ends_with("encryptionsecret");
                secret_leaves(value, under_secret_key || secret, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                secret_leaves(item, under_secret_key, found);
            }
        }
        _ => {}
    }
}

fn ssh_private_key(dir: &std::path::Path) -> String {
    let path = dir.join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "scan", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) makes the test's SSH key");
    assert!(status.success());
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_or_logged_in_plaintext() {
    const PASSWORD: &str = "basic-auth-password-f3a9c1d7e5";
    let robot = FakeRobot::start_empty().await.unwrap();
    robot.generate_servers(2);
    let cloud = FakeCloud::start_empty().await.unwrap();
    cloud.generate_servers(1);
    let dir = tempfile::tempdir().unwrap();
    let ssh_key = ssh_private_key(dir.path());
    let data = dir.path().join("data");
    let mut command = talos_manager(dir.path());
    command
        .env("TALOS_MANAGER_DATA_DIR", &data)
        .env("RUST_LOG", "debug")
        .env("BASIC_AUTH_PASSWORD", PASSWORD)
        .env("SSH_PRIVATE_KEY", &ssh_key)
        .env("HETZNER_ROBOT_API_URL", robot.url())
        .env("HETZNER_CLOUD_API_URL", cloud.url())
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("HOST", "talos-manager.example.com")
        .env("SYNC_INTERVAL", "0");
    let mut service = Service::start(command);
    let client = super::server::client();
    let call = |method: Method, path: &str, body: Option<Value>| {
        let request = client
            .request(method, service.url(&format!("/api/v1{path}")))
            .basic_auth("admin", Some(PASSWORD));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{status}: {text}");
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
        }
    };

    // Provider accounts, a sync, a cluster with generated secrets, a config, a machine config.
    call(
        Method::POST,
        "/provider-accounts",
        Some(json!({"provider": "hetzner_robot", "name": FakeRobot::USER, "secret": FakeRobot::PASSWORD})),
    )
    .await;
    call(
        Method::POST,
        "/provider-accounts",
        Some(json!({"provider": "hetzner_cloud", "name": "project", "secret": FakeCloud::TOKEN})),
    )
    .await;
    let sync = call(Method::POST, "/servers/sync", None).await;
    let sync_path = format!("/jobs/{}", sync["id"].as_str().unwrap());
    wait_for(
        "the sync to succeed",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let job = call(Method::GET, &sync_path, None).await;
            if job["status"] == "succeeded" {
                Ok(())
            } else {
                Err(job)
            }
        },
    )
    .await;
    let servers = call(Method::GET, "/servers", None).await;
    let robot_server = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|server| server["id"].as_str().unwrap().starts_with("robot-"))
        .unwrap()
        .clone();
    let cluster = call(
        Method::POST,
        "/clusters",
        // On loopback: the label and taint job that the node's fetch queues tries to reach it.
        Some(json!({"name": "prod", "endpoint": "https://127.0.0.1:6443"})),
    )
    .await;
    let cluster_id = cluster["id"].as_str().unwrap();
    let with_secrets = call(
        Method::GET,
        &format!("/clusters/{cluster_id}?include_secrets=true"),
        None,
    )
    .await;
    let bundle: Value = serde_norway::from_str(
        with_secrets["secrets"]
            .as_str()
            .expect("secrets on request"),
    )
    .unwrap();
    let mut secrets = BTreeSet::new();
    secret_leaves(&bundle, false, &mut secrets);
    assert!(
        secrets.len() >= 6,
        "the bundle's keys and tokens were found: {}",
        secrets.len()
    );
    let server_id = robot_server["id"].as_str().unwrap();
    call(
        Method::PATCH,
        &format!("/servers/{server_id}"),
        Some(json!({"cluster_id": cluster_id})),
    )
    .await;
    let config = call(Method::POST, "/configs", Some(json!({"name": "default"}))).await;
    call(
        Method::POST,
        "/machine-configs",
        Some(json!({"server_id": server_id, "config_id": config["id"], "hostname": "worker-1"})),
    )
    .await;
    let talosconfig = call(
        Method::GET,
        &format!("/clusters/{cluster_id}/talosconfig"),
        None,
    )
    .await;
    assert!(
        talosconfig
            .as_str()
            .is_some_and(|text| text.contains("key:"))
    );
    let token = call(Method::POST, "/tokens", Some(json!({"name": "ci"}))).await;
    let token = token["secret"].as_str().unwrap().to_owned();

    // The node fetches its config: the served YAML holds the cluster's secrets.
    let node = client
        .get(service.url("/config"))
        .header("x-forwarded-for", robot_server["ipv4"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(node.status(), 200);
    let served = node.text().await.unwrap();
    assert!(
        secrets
            .iter()
            .any(|secret| served.contains(secret.as_str())),
        "the served config carries the cluster's secrets, so the scan below means something"
    );
    // The label and taint job still waits for the node: shutdown gives it its grace period.
    let status = service.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");

    // Nothing of it in the database files or in the log.
    let mut needles: Vec<(&str, String)> = vec![
        ("the Robot password", FakeRobot::PASSWORD.to_owned()),
        ("the Cloud token", FakeCloud::TOKEN.to_owned()),
        ("the basic-auth password", PASSWORD.to_owned()),
        ("the API token", token),
    ];
    let key_body: String = ssh_key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    needles.push(("the SSH private key", key_body[..48].to_owned()));
    for secret in &secrets {
        needles.push(("a cluster secret", secret.clone()));
    }
    let log = service.log.join("\n");
    assert!(
        log.contains("request"),
        "the log was captured: {} lines",
        service.log.len()
    );
    let mut scanned = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        // The key file is where the encryption key belongs.
        if path
            .file_name()
            .is_some_and(|name| name == "encryption.key")
        {
            continue;
        }
        scanned.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    assert!(
        scanned.iter().any(|(name, _)| name.ends_with(".db")),
        "the SQLite database was scanned: {:?}",
        scanned.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    scanned.push(("the log".to_owned(), log.into_bytes()));
    for (what, needle) in &needles {
        for (name, bytes) in &scanned {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes()),
                "{what} is in plaintext in {name}"
            );
        }
    }
}
