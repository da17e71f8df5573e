//! The service is SIGKILLed while a bootstrap writes the disk: after a restart on the same
//! database the job is `failed` with a reason saying the service stopped mid-install (never left
//! `running`), and a new bootstrap succeeds.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use talos_manager_core::Store;
use talos_manager_core::store::{EncryptionKey, SchematicFields};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_hetzner::{FakeRobot, RobotServer};
use talos_manager_rescue_host::{HttpServer, KeyPair, LoopDisk, Sshd, TestImage};

use super::service::Service;

const PASSWORD: &str = "e2e-password";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const FACTORY_ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const IMAGE_MIB: u64 = 24;

struct Api {
    client: reqwest::Client,
}

impl Api {
    fn new() -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    async fn call(
        &self,
        service: &Service,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, service.url(&format!("/api/v1{path}")))
            .basic_auth("admin", Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Waits until the job is no longer queued or running; returns it.
    async fn finished(&self, service: &Service, job_id: &str, within: Duration) -> Value {
        wait_for(
            format!("job {job_id} to finish"),
            within,
            Duration::from_millis(250),
            || async {
                let (status, job) = self
                    .call(
                        service,
                        reqwest::Method::GET,
                        &format!("/jobs/{job_id}"),
                        None,
                    )
                    .await;
                assert_eq!(status, 200, "{job:#}");
                if matches!(job["status"].as_str(), Some("queued" | "running")) {
                    Err(job)
                } else {
                    Ok(job)
                }
            },
        )
        .await
    }

    /// Reads the job's live log until a line contains `needle`.
    async fn wait_for_log(&self, service: &Service, job_id: &str, needle: &str) {
        let mut response = self
            .client
            .get(service.url(&format!("/api/v1/jobs/{job_id}/log")))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, response.chunk()).await {
                Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("no {needle:?} in the job log ({other:?}):\n{seen}"),
            }
        }
    }
}

#[tokio::test]
async fn a_bootstrap_killed_mid_install_fails_with_a_reason_and_a_new_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "talos-manager", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    let disk = LoopDisk::new(64 << 20);
    sshd.stubs.set_lsblk(&disk.lsblk_json());
    let image = TestImage::build(IMAGE_MIB);
    let http = HttpServer::start();
    let image_path = format!("/image/{FACTORY_ID}/v1.10.4/metal-amd64.raw.zst");
    // Slow, so that dd runs for several seconds: about 2 MiB/s.
    http.put_slow(&image_path, image.zst.clone(), 2 << 20);
    let robot = FakeRobot::start_empty().await.unwrap();
    robot.add_server(RobotServer {
        ip: Some("127.0.0.1".into()),
        ..RobotServer::new(321, "worker-1")
    });

    // The database, prepared before the first start: a schematic the image is served under.
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let database = format!("sqlite://{}/talos-manager.db", data_dir.display());
    let store = Store::connect(&database, &EncryptionKey::from_base64(KEY).unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let schematic = store
        .create_schematic(&SchematicFields {
            name: "default".into(),
            body: "customization: {}\n".into(),
            factory_id: Some(FACTORY_ID.into()),
        })
        .await
        .unwrap();
    store
        .update_settings("v1.10.4", Some(schematic.id))
        .await
        .unwrap();
    store.close().await;

    let env = vec![
        ("DATABASE_URL", database.clone()),
        ("TALOS_MANAGER_ENCRYPTION_KEY", KEY.to_owned()),
        ("BASIC_AUTH_PASSWORD", PASSWORD.to_owned()),
        ("HOST", "tm.example.com".to_owned()),
        ("SYNC_INTERVAL", "0".to_owned()),
        ("HETZNER_ROBOT_API_URL", robot.url().to_owned()),
        ("HETZNER_WEBSERVICE_USER", FakeRobot::USER.to_owned()),
        (
            "HETZNER_WEBSERVICE_PASSWORD",
            FakeRobot::PASSWORD.to_owned(),
        ),
        ("SSH_PRIVATE_KEY", key.private.expose().clone()),
        ("RESCUE_SSH_PORT", sshd.port.to_string()),
        ("RESCUE_TIMEOUT", "30".to_owned()),
        ("TALOS_IMAGE_FACTORY_URL", http.base_url.clone()),
    ];
    let api = Api::new();
    let mut service = Service::start(&env);
    let (status, sync) = api
        .call(&service, reqwest::Method::POST, "/servers/sync", None)
        .await;
    assert_eq!(status, 202, "{sync:#}");
    let sync = api
        .finished(
            &service,
            sync["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(sync["status"], "succeeded", "{sync:#}");

    let (status, job) = api
        .call(
            &service,
            reqwest::Method::POST,
            "/servers/robot-321/bootstrap",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{job:#}");
    let killed_job = job["id"].as_str().unwrap().to_owned();
    api.wait_for_log(&service, &killed_job, "written ").await;
    service.kill();

    // Restarted on the same database: the killed job is failed once its heartbeat is stale
    // (a minute), with a reason; it is never left running.
    let service = Service::start(&env);
    let failed = api
        .finished(&service, &killed_job, Duration::from_secs(150))
        .await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let reason = failed["last_error"].as_str().unwrap();
    assert!(reason.contains("stopped mid-install"), "{reason}");
    let (_, server) = api
        .call(&service, reqwest::Method::GET, "/servers/robot-321", None)
        .await;
    assert!(
        server["state"]
            .as_str()
            .unwrap()
            .starts_with("failed: talos-manager stopped mid-install"),
        "{server:#}"
    );

    // A new bootstrap, at full speed, succeeds and the disk holds the image.
    http.put(&image_path, image.zst.clone());
    let (status, job) = api
        .call(
            &service,
            reqwest::Method::POST,
            "/servers/robot-321/bootstrap",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{job:#}");
    let done = api
        .finished(
            &service,
            job["id"].as_str().unwrap(),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(&disk.contents()[..image.raw.len()], image.raw.as_slice());
    assert!(sshd.stubs.rebooted());
    let (_, server) = api
        .call(&service, reqwest::Method::GET, "/servers/robot-321", None)
        .await;
    assert_eq!(server["state"], "booting Talos", "{server:#}");
}
