//! Rescue and bootstrap through the admin API: the fake Robot webservice activates rescue, a real
//! sshd on loopback is the rescue system (stub `hostname`, `dmidecode`, `lsblk`, `reboot`), a
//! loop device is its disk, and a loopback HTTP server is the Image Factory (the strict fake
//! Image Factory, or a custom image URL, where a test says so).

use super::server::{TestServer, test_bootstrap_settings};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use talos_manager_core::Architecture;
use talos_manager_core::ProviderKind;
use talos_manager_core::Secret;
use talos_manager_core::jobs::{
    BootstrapJob, JobQueue, LabelAndTaintJob, SyncJob, Worker, WorkerTiming,
};
use talos_manager_core::store::{SchematicFields, ServerInventory};
use talos_manager_core::sync::SshProber;
use talos_manager_core::testing::wait_for;
use talos_manager_fake_hetzner::{FakeImageFactory, FakeRobot, RobotServer};
use talos_manager_rescue_host::{HttpServer, KeyPair, LoopDisk, Sshd, TestImage};

/// The Robot server number of the server under test.
const NUMBER: u64 = 321;
/// The Image Factory schematic id the test image is served under.
const FACTORY_ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const IMAGE_MIB: u64 = 24;

pub(crate) fn image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| TestImage::build(IMAGE_MIB))
}

/// Where the bench's bootstrap job downloads the image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Images {
    /// The rescue host's HTTP server, as the factory (image at [`image_path`] only).
    Http,
    /// The strict fake Image Factory: the default schematic posted to it, the default Talos
    /// version listed, the test image served.
    Factory,
    /// `TALOS_AMD64_IMAGE_URL` at [`CUSTOM_IMAGE_PATH`] on the rescue host's HTTP server (where
    /// the test puts nothing, unless it does).
    Custom,
}

/// The path of the custom image URL of [`Images::Custom`].
const CUSTOM_IMAGE_PATH: &str = "/custom/talos-amd64.raw.zst";

/// The service with a worker (bootstrap, sync with the SSH probe, label and taint jobs), a
/// rescue host, its disk and an image server; also used by the dashboard's browser test.
pub(crate) struct Bench {
    pub(crate) server: TestServer,
    pub(crate) sshd: Sshd,
    pub(crate) disk: LoopDisk,
    pub(crate) http: HttpServer,
    /// The fake Image Factory of [`Images::Factory`].
    pub(crate) factory: Option<FakeImageFactory>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// `with_key`: whether the service has an SSH key (`SSH_PRIVATE_KEY`). The Robot account
    /// and the server `robot-321` (worker-1, on 127.0.0.1) are stored already.
    pub(crate) async fn start(backend: talos_manager_core::Backend, with_key: bool) -> Bench {
        Bench::start_full(backend, with_key, true, Images::Http).await
    }

    /// A bench (with a key and the server stored) whose images come from `images`.
    pub(crate) async fn start_with_images(
        backend: talos_manager_core::Backend,
        images: Images,
    ) -> Bench {
        Bench::start_full(backend, true, true, images).await
    }

    /// A bench whose server is known only to the fake Robot (with the Robot account stored):
    /// a sync adds it, and probes it in rescue.
    pub(crate) async fn start_before_sync(backend: talos_manager_core::Backend) -> Bench {
        Bench::start_full(backend, true, false, Images::Http).await
    }

    async fn start_full(
        backend: talos_manager_core::Backend,
        with_key: bool,
        with_server: bool,
        images: Images,
    ) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate(dir.path(), "talos-manager", "-t ed25519");
        let sshd = Sshd::start(&[&key]);
        let disk = LoopDisk::new(64 << 20);
        sshd.stubs.set_lsblk(&disk.lsblk_json());
        let http = HttpServer::start();
        http.put(&image_path(), image().zst.clone());
        let private_key = with_key.then(|| key.private.clone());
        let (factory, factory_id) = match images {
            Images::Factory => {
                let factory = FakeImageFactory::start().await.unwrap();
                factory
                    .set_versions(&["v1.10.5", talos_manager_core::store::DEFAULT_TALOS_VERSION]);
                factory.set_image(image().zst.clone());
                let id = factory.add_schematic("customization: {}\n");
                (Some(factory), id)
            }
            Images::Http | Images::Custom => (None, FACTORY_ID.to_owned()),
        };
        let factory_url = factory.as_ref().map_or(http.base_url.as_str(), |f| f.url());
        let mut settings = test_bootstrap_settings(private_key, sshd.port, factory_url);
        if images == Images::Custom {
            settings.environment.amd64_image_url =
                Some(format!("{}{CUSTOM_IMAGE_PATH}", http.base_url));
        }
        let server = TestServer::start_with_bootstrap(backend, settings.clone()).await;
        // The Robot server answers SSH on loopback, where the test's sshd listens.
        server.robot.add_server(RobotServer {
            ip: Some("127.0.0.1".into()),
            ..RobotServer::new(NUMBER, "worker-1")
        });
        let store = server.store();
        let account = store
            .create_provider_account(
                ProviderKind::HetznerRobot,
                FakeRobot::USER,
                &Secret::new(FakeRobot::PASSWORD.into()),
            )
            .await
            .unwrap();
        if with_server {
            store
                .upsert_server(
                    account.id,
                    &ServerInventory {
                        provider: ProviderKind::HetznerRobot,
                        provider_id: NUMBER.to_string(),
                        name: "worker-1".into(),
                        ipv4: Some("127.0.0.1".into()),
                        ipv6: None,
                        product: "AX52".into(),
                        data_center: "FSN1-DC16".into(),
                        status: "ready".into(),
                        cancelled: false,
                        architecture: Architecture::Amd64,
                        vswitch_id: None,
                    },
                )
                .await
                .unwrap();
        }
        let schematic = store
            .create_schematic(&SchematicFields {
                name: "default".into(),
                body: "customization: {}\n".into(),
                factory_id: Some(factory_id),
            })
            .await
            .unwrap();
        // The default Talos version (the newest contract's release), with a default schematic.
        store
            .update_settings(
                talos_manager_core::store::DEFAULT_TALOS_VERSION,
                Some(schematic.id),
            )
            .await
            .unwrap();
        let providers =
            talos_manager_core::sync::ProviderFactory::new(server.robot.url(), server.cloud.url())
                .with_retry_policy(talos_manager_core::RetryPolicy::for_fakes());
        let prober = SshProber::new(key.private.clone(), sshd.port).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = Worker::new(JobQueue::new(store.clone()), "bootstrap-test")
            .timing(WorkerTiming {
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(100),
                abandoned_after: Duration::from_secs(30),
            })
            .register(BootstrapJob::new(providers.clone(), settings))
            .register(SyncJob::new(providers).with_prober(Arc::new(prober)))
            // Label and taint jobs too: a node that fetched its config gets its labels.
            .register(LabelAndTaintJob::new(crate::http::labels_taints::options(
                Duration::from_secs(20),
            )));
        tokio::spawn(worker.run(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Bench {
            server,
            sshd,
            disk,
            http,
            factory,
            stop,
            _dir: dir,
        }
    }

    pub(crate) async fn bootstrap(&self, body: Value) -> Value {
        self.server
            .expect(
                Method::POST,
                "/api/v1/servers/robot-321/bootstrap",
                Some(body),
                202,
            )
            .await
    }

    /// Waits until the job is finished; returns it.
    pub(crate) async fn finished(&self, job_id: &str) -> Value {
        self.server
            .job_ended(job_id, Duration::from_secs(120))
            .await
    }

    /// Waits (60 s) until the provider booted the server into rescue; the failure shows the
    /// job's log.
    async fn rescue_activated(&self, job_id: &str) {
        wait_for(
            "rescue to be activated",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || async {
                match self.server.robot.server(NUMBER).unwrap().booted_rescue {
                    Some(_) => Ok(()),
                    None => Err(self.log(job_id).await),
                }
            },
        )
        .await;
    }

    /// The job's log lines.
    pub(crate) async fn log(&self, job_id: &str) -> Vec<String> {
        let lines = self
            .server
            .store()
            .job_log(
                talos_manager_core::ids::JobId(job_id.parse().unwrap()),
                None,
            )
            .await
            .unwrap();
        lines.into_iter().map(|line| line.line).collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn image_path() -> String {
    format!(
        "/image/{FACTORY_ID}/{}/metal-amd64.raw.zst",
        talos_manager_core::store::DEFAULT_TALOS_VERSION
    )
}

/// Runs `body` with a bench on both backends.
macro_rules! bench_test {
    ($name:ident, $with_key:expr, |$bench:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let $bench = Bench::start(talos_manager_core::Backend::Sqlite, $with_key).await;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let $bench = Bench::start(talos_manager_core::Backend::Postgres, $with_key).await;
                $body
            }
        }
    };
}

bench_test!(
    a_bootstrap_enters_rescue_writes_talos_and_moves_the_state_on,
    true,
    |bench| {
        let before = bench.server.server_json("robot-321").await;
        assert_eq!(before["state"], "unknown");

        let plan_error = bench
            .server
            .expect(
                Method::GET,
                "/api/v1/servers/robot-321/bootstrap-plan",
                None,
                409,
            )
            .await;
        assert_eq!(plan_error["code"], "not_in_rescue_yet", "{plan_error:#}");

        // The server runs another system until the provider boots it into rescue.
        bench.sshd.stubs.set_hostname("talos-node");
        let job = bench.bootstrap(json!({})).await;
        assert_eq!(job["kind"], "bootstrap");
        assert_eq!(job["server_id"], "robot-321");
        let job_id = job["id"].as_str().unwrap();
        let again = bench
            .server
            .expect(
                Method::POST,
                "/api/v1/servers/robot-321/bootstrap",
                Some(json!({})),
                409,
            )
            .await;
        assert_eq!(again["code"], "bootstrap_running", "{again:#}");
        bench.rescue_activated(job_id).await;
        let waiting = bench.server.server_json("robot-321").await;
        assert_eq!(waiting["state"], "bootstrapping", "{waiting:#}");
        bench.sshd.stubs.set_hostname("rescue");

        let finished = bench.finished(job_id).await;
        let log = bench.log(job_id).await;
        assert_eq!(
            finished["status"],
            "succeeded",
            "{finished:#}\n{}",
            log.join("\n")
        );
        let text = log.join("\n");

        // Not in rescue at first (the server had no probe): rescue was activated at Robot.
        let robot = bench.server.robot.server(NUMBER).unwrap();
        assert!(robot.booted_rescue.is_some(), "{robot:?}");
        assert!(
            text.contains("activating rescue through the provider"),
            "{text}"
        );
        // Progress in percent up to 100, and the disk holds the image.
        assert!(text.contains("step 3/5: write the Talos image"), "{text}");
        assert!(text.contains("written 100 % ("), "{text}");
        let raw = &image().raw;
        assert_eq!(&bench.disk.contents()[..raw.len()], raw.as_slice());
        assert!(bench.sshd.stubs.rebooted());
        assert!(!text.contains("PRIVATE KEY"), "{text}");

        let server = bench.server.server_json("robot-321").await;
        assert_eq!(server["state"], "booting Talos", "{server:#}");
        assert_eq!(server["accessible"], false);
        assert_eq!(server["uuid"], "4c4c4544-0042-3510-8057-b4c04f4e3432");
        let device = bench.disk.path().to_owned();
        assert_eq!(server["bootstrap_disk"], device.as_str());
        // A rolling upgrade knows which schematic the node was installed with.
        let row = bench
            .server
            .store()
            .list_servers()
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.inventory.name == server["name"])
            .unwrap();
        assert_eq!(row.installed_schematic.as_deref(), Some(FACTORY_ID));

        // The dry run now knows the disks.
        let plan = bench
            .server
            .expect(
                Method::GET,
                "/api/v1/servers/robot-321/bootstrap-plan?talos_version=v1.11.0",
                None,
                200,
            )
            .await;
        assert_eq!(plan["disk"], device.as_str());
        assert_eq!(plan["talos_version"], "v1.11.0");
        assert_eq!(plan["schematic"], FACTORY_ID);
        assert!(
            plan["text"].as_str().unwrap().starts_with(&format!(
                "Bootstrap plan for worker-1: write {}",
                plan["image_url"].as_str().unwrap()
            )),
            "{plan:#}"
        );
        let invalid = bench
            .server
            .expect(
                Method::GET,
                "/api/v1/servers/robot-321/bootstrap-plan?disk=/dev/sdz",
                None,
                422,
            )
            .await;
        assert_eq!(invalid["issues"][0]["path"], "disk", "{invalid:#}");
        let invalid = bench
            .server
            .expect(
                Method::POST,
                "/api/v1/servers/robot-321/bootstrap",
                Some(json!({"disk": "/dev/sdz"})),
                422,
            )
            .await;
        assert_eq!(
            invalid["issues"][0]["message"],
            "server worker-1 has no disk /dev/sdz"
        );

        // The node boots Talos and asks for its config.
        let at = time::OffsetDateTime::now_utc();
        let server_id = bench
            .server
            .store()
            .get_server_by_provider_id(ProviderKind::HetznerRobot, "321")
            .await
            .unwrap()
            .id;
        bench
            .server
            .store()
            .record_config_request(server_id, at, false)
            .await
            .unwrap();
        let server = bench.server.server_json("robot-321").await;
        assert_eq!(server["state"], "waiting for config");
    }
);

bench_test!(rescue_and_bootstrap_need_an_ssh_key, false, |bench| {
    for (method, path, body) in [
        (Method::POST, "/api/v1/servers/robot-321/rescue", None),
        (
            Method::POST,
            "/api/v1/servers/robot-321/bootstrap",
            Some(json!({})),
        ),
    ] {
        let error = bench.server.expect(method, path, body, 409).await;
        assert_eq!(error["code"], "ssh_key_missing", "{error:#}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("SSH_PRIVATE_KEY is not set"),
            "{error:#}"
        );
    }
    assert!(bench.server.robot.server(NUMBER).unwrap().resets.is_empty());
});

bench_test!(
    entering_rescue_activates_it_at_the_provider_and_records_it,
    true,
    |bench| {
        let server = bench
            .server
            .expect(Method::POST, "/api/v1/servers/robot-321/rescue", None, 200)
            .await;
        assert_eq!(server["state"], "entering rescue", "{server:#}");
        assert!(server["rescue_activated_at"].is_string());
        let robot = bench.server.robot.server(NUMBER).unwrap();
        assert!(robot.booted_rescue.is_some(), "{robot:?}");
        assert_eq!(robot.resets.len(), 1);
        // Our key was uploaded, under our name.
        let keys = bench.server.robot.keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "talos-manager");

        let missing = bench
            .server
            .expect(Method::POST, "/api/v1/servers/robot-9/rescue", None, 404)
            .await;
        assert_eq!(missing["code"], "not_found");
    }
);

bench_test!(
    a_bad_smbios_uuid_fails_the_job_with_the_support_request,
    true,
    |bench| {
        bench
            .sshd
            .stubs
            .set_uuid("4c4c4544-0042-3510-8057-000000000000");
        let job = bench.bootstrap(json!({})).await;
        let job_id = job["id"].as_str().unwrap();
        let finished = bench.finished(job_id).await;
        assert_eq!(finished["status"], "failed");
        let error = finished["last_error"].as_str().unwrap();
        assert!(error.contains("ends in 000000000000"), "{error}");
        assert!(
            error.contains("Subject: Invalid SMBIOS system UUID"),
            "{error}"
        );
        let server = bench.server.server_json("robot-321").await;
        assert!(
            server["state"]
                .as_str()
                .unwrap()
                .starts_with("failed: the server's SMBIOS UUID"),
            "{server:#}"
        );
        // Nothing was written.
        assert!(bench.disk.contents().iter().all(|byte| *byte == 0));
        assert!(!bench.sshd.stubs.rebooted());
    }
);

bench_test!(cancelling_a_bootstrap_stops_the_write, true, |bench| {
    // About 4 MiB/s: the write takes several seconds.
    bench
        .http
        .put_slow(&image_path(), image().zst.clone(), 1 << 20);
    let job = bench.bootstrap(json!({})).await;
    let job_id = job["id"].as_str().unwrap();
    wait_for(
        "the write to start",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let log = bench.log(job_id).await;
            match log.iter().any(|line| line.starts_with("written ")) {
                true => Ok(()),
                false => Err(log),
            }
        },
    )
    .await;
    bench
        .server
        .expect(
            Method::POST,
            &format!("/api/v1/jobs/{job_id}/cancel"),
            None,
            200,
        )
        .await;
    let finished = bench.finished(job_id).await;
    assert_eq!(finished["status"], "cancelled", "{finished:#}");
    wait_for(
        "the remote pipeline to stop downloading after the cancel",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            match bench.http.active_transfers() {
                0 => Ok(()),
                active => Err(active),
            }
        },
    )
    .await;
    assert!(!bench.sshd.stubs.rebooted());
    let server = bench.server.server_json("robot-321").await;
    assert_eq!(server["state"], "bootstrap cancelled", "{server:#}");
});

bench_test!(from_bootstrap_to_a_labelled_node, true, |bench| {
    // Issue #7's whole way: bootstrap → the image on the disk → the node fetches its config
    // → the label and taint job patches the node in the (fake) Kubernetes API.
    let (bundle, api) = crate::http::labels_taints::bundle_and_fake().await;
    api.add_node("worker-1", json!({"team": "web"}), json!([]));
    let server = &bench.server;
    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": api.url(), "secrets": bundle.to_yaml()})),
            201,
        )
        .await;
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "kubernetes_version": "1.30.1"})),
            201,
        )
        .await;
    server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"cluster_id": cluster["id"]})),
            200,
        )
        .await;
    server
            .expect(
                Method::POST,
                "/api/v1/label-taint-rules",
                Some(json!({"match": "worker", "labels": "role=worker", "taints": "dedicated=web:NoSchedule"})),
                201,
            )
            .await;

    let job = bench.bootstrap(json!({})).await;
    let job_id = job["id"].as_str().unwrap();
    let finished = bench.finished(job_id).await;
    let log = bench.log(job_id).await.join("\n");
    assert_eq!(finished["status"], "succeeded", "{finished:#}\n{log}");
    assert!(
        log.contains("written 100 % ("),
        "the log streamed the dd progress: {log}"
    );
    let raw = &image().raw;
    assert_eq!(&bench.disk.contents()[..raw.len()], raw.as_slice());

    // Configured after the bootstrap (the install disk is the one Talos went to).
    server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": "robot-321", "config_id": config["id"], "hostname": "worker-1"})),
                201,
            )
            .await;
    // Bootstrapped by us: the node sends its SMBIOS UUID, as the image's `talos.config=` says.
    let node_uuid = server
        .store()
        .list_servers()
        .await
        .unwrap()
        .remove(0)
        .uuid
        .expect("the bootstrap recorded the UUID");
    let served = crate::http::server::client()
        .get(server.url("/config"))
        .query(&[("uuid", node_uuid)])
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "the node (127.0.0.1) gets its config");
    let yaml = served.text().await.unwrap();
    assert_eq!(
        crate::http::server::node_install_disk(&yaml).as_deref(),
        Some(bench.disk.path()),
        "Talos installs to the bootstrapped disk: {yaml}"
    );
    let stored = server.store().list_servers().await.unwrap().remove(0);
    let (labels_job, labels_log) =
        crate::http::labels_taints::finished_job(server.store(), stored.id).await;
    assert_eq!(
        labels_job.status,
        talos_manager_core::store::JobStatus::Succeeded,
        "{labels_log}"
    );
    let node = api.node("worker-1").unwrap();
    assert_eq!(node["metadata"]["labels"]["role"], "worker", "{node:#}");
    assert_eq!(
        node["metadata"]["labels"]["team"], "web",
        "foreign labels stay: {node:#}"
    );
    assert_eq!(
        node["spec"]["taints"][0],
        json!({"key": "dedicated", "value": "web", "effect": "NoSchedule"}),
        "{node:#}"
    );
    let state = server.server_json("robot-321").await;
    assert_eq!(state["state"], "in cluster", "{state:#}");
});

/// Bootstraps worker-1 from another system while Robot announces `host_keys` for the rescue
/// activation; returns the finished job and its log.
async fn bootstrap_with_announced_host_keys(bench: &Bench, host_keys: &[&str]) -> (Value, String) {
    bench.server.robot.set_rescue_host_keys(host_keys);
    // The server runs another system until the provider boots it into rescue.
    bench.sshd.stubs.set_hostname("talos-node");
    let job = bench.bootstrap(json!({})).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    bench.rescue_activated(&job_id).await;
    bench.sshd.stubs.set_hostname("rescue");
    let finished = bench.finished(&job_id).await;
    (finished, bench.log(&job_id).await.join("\n"))
}

#[tokio::test]
async fn a_host_key_robot_announces_for_the_rescue_system_is_required() {
    let bench = Bench::start(talos_manager_core::Backend::Sqlite, true).await;
    let announced = bench.sshd.host_key_fingerprint.clone();
    let (finished, log) = bootstrap_with_announced_host_keys(&bench, &[&announced]).await;
    assert_eq!(finished["status"], "succeeded", "{finished:#}\n{log}");
    assert!(
        log.contains(&format!(
            "the provider announced the rescue system's host key(s) {announced}"
        )),
        "{log}"
    );
    assert!(log.contains("written 100 % ("), "{log}");
}

#[tokio::test]
async fn a_rescue_system_with_another_host_key_than_robot_announced_is_refused() {
    let bench = Bench::start(talos_manager_core::Backend::Sqlite, true).await;
    let announced = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (finished, log) = bootstrap_with_announced_host_keys(&bench, &[announced]).await;
    assert_eq!(finished["status"], "failed", "{finished:#}\n{log}");
    let error = finished["last_error"].as_str().unwrap_or_default();
    let seen = &bench.sshd.host_key_fingerprint;
    assert!(
        error.contains("did not come up in rescue")
            && error.contains(&format!(
                "the host key {seen} is not one the provider announced for this rescue system"
            ))
            && error.contains(announced),
        "{error}\n{log}"
    );
    // Nothing ran on the impostor: no image written, no reboot.
    assert!(!log.contains("step 3/5"), "{log}");
    assert!(!bench.sshd.stubs.rebooted());
    let raw = &image().raw;
    assert_ne!(&bench.disk.contents()[..raw.len()], raw.as_slice());
}

/// Bootstraps worker-1 (running another system: not in rescue) with `body`; expects the job to
/// fail before the server is touched, with an error containing `message`: no rescue activated,
/// no step of the plan run, the disk still zero, no reboot.
async fn fails_untouched(bench: &Bench, body: Value, message: &str) {
    bench.sshd.stubs.set_hostname("talos-node");
    let job = bench.bootstrap(body).await;
    let job_id = job["id"].as_str().unwrap();
    let finished = bench.finished(job_id).await;
    let log = bench.log(job_id).await.join("\n");
    assert_eq!(finished["status"], "failed", "{finished:#}\n{log}");
    let error = finished["last_error"].as_str().unwrap();
    assert!(error.contains(message), "{error}\n{log}");
    assert!(log.contains(message), "{log}");
    assert!(!log.contains("step "), "no step of the plan ran: {log}");
    assert!(!log.contains("activating rescue"), "{log}");
    let robot = bench.server.robot.server(NUMBER).unwrap();
    assert!(robot.booted_rescue.is_none(), "no rescue: {robot:?}");
    assert!(robot.resets.is_empty(), "no reset: {robot:?}");
    assert!(bench.disk.contents().iter().all(|byte| *byte == 0));
    assert!(!bench.sshd.stubs.rebooted());
}

#[tokio::test]
async fn a_schematic_or_version_the_factory_does_not_know_fails_before_the_disk_is_touched() {
    let bench =
        Bench::start_with_images(talos_manager_core::Backend::Sqlite, Images::Factory).await;
    let factory = bench.factory.as_ref().unwrap();
    let known = factory.schematics().into_keys().next().unwrap();
    // One character off: a typo'd schematic id.
    let typo = format!("{}0", &known[..63]);
    assert_ne!(typo, known);
    let typoed = bench
        .server
        .store()
        .create_schematic(&SchematicFields {
            name: "typo".into(),
            body: "customization: {}\n".into(),
            factory_id: Some(typo.clone()),
        })
        .await
        .unwrap();
    fails_untouched(
        &bench,
        json!({"schematic": typoed.id.to_string()}),
        &format!("(HTTP 404): schematic ID \"{typo}\" not found"),
    )
    .await;
    fails_untouched(
        &bench,
        json!({"talos_version": "v1.99.0"}),
        "(HTTP 404): version v1.99.0 is not available",
    )
    .await;
    let calls = factory.requests();
    assert!(
        calls.contains(&format!(
            "GET /image/{typo}/{}/metal-amd64.raw.zst",
            talos_manager_core::store::DEFAULT_TALOS_VERSION
        )),
        "the exact URL the rescue system would download was asked for: {calls:?}"
    );

    // The valid combination: checked, then written, with the size the check learnt.
    bench.sshd.stubs.set_hostname("rescue");
    let job = bench.bootstrap(json!({})).await;
    let job_id = job["id"].as_str().unwrap();
    let finished = bench.finished(job_id).await;
    let log = bench.log(job_id).await.join("\n");
    assert_eq!(finished["status"], "succeeded", "{finished:#}\n{log}");
    assert!(log.contains("the image exists"), "{log}");
    assert!(log.contains("written 100 % ("), "{log}");
    let raw = &image().raw;
    assert_eq!(&bench.disk.contents()[..raw.len()], raw.as_slice());
}

#[tokio::test]
async fn a_custom_image_url_that_answers_404_fails_before_the_disk_is_touched() {
    let bench = Bench::start_with_images(talos_manager_core::Backend::Sqlite, Images::Custom).await;
    // The rescue host's server answers 404 `not found` for a path it does not serve.
    fails_untouched(
        &bench,
        json!({}),
        &format!("{CUSTOM_IMAGE_PATH} is not available (HTTP 404): not found"),
    )
    .await;
}
