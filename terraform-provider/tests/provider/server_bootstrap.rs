//! `talosmanager_server_bootstrap` with the real Terraform CLI and a real bootstrap: the fake
//! Robot webservice, a real sshd on loopback as the rescue system (stub `hostname`,
//! `dmidecode`, `lsblk`, `reboot`), a loop device as its disk and a loopback HTTP server as the
//! Image Factory, with the service's bootstrap worker running.

use super::harness::{HOST, Service, Terraform, flat, plans_to_replace_tainted};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use talos_manager_core::ProviderKind;
use talos_manager_core::Secret;
use talos_manager_core::jobs::{
    BootstrapJob, BootstrapSettings, JobQueue, LifecycleSettings, TalosSettings, Worker,
    WorkerTiming,
};
use talos_manager_core::store::{JobStatus, SchematicFields};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_hetzner::{FakeRobot, RobotServer};
use talos_manager_rescue_host::{HttpServer, KeyPair, LoopDisk, Sshd, TestImage};

const ADDRESS: &str = "talosmanager_server_bootstrap.worker";

/// The Robot server number of the server under test.
const NUMBER: u64 = 321;
/// The Image Factory schematic id the test image is served under.
const FACTORY_ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
const IMAGE_MIB: u64 = 16;

fn image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| TestImage::build(IMAGE_MIB))
}

fn image_path() -> String {
    format!("/image/{FACTORY_ID}/v1.10.4/metal-amd64.raw.zst")
}

/// The service with a bootstrap worker, the Robot server `worker-1` answering SSH on
/// loopback (where the rescue host listens), its disk and the image server.
struct Bench {
    service: Service,
    sshd: Sshd,
    disk: LoopDisk,
    http: HttpServer,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate(dir.path(), "talos-manager", "-t ed25519");
        let sshd = Sshd::start(&[&key]);
        let disk = LoopDisk::new(32 << 20);
        sshd.stubs.set_lsblk(&disk.lsblk_json());
        let http = HttpServer::start();
        http.put(&image_path(), image().zst.clone());
        let settings = BootstrapSettings {
            ssh_private_key: Some(key.private.clone()),
            rescue_ssh_port: sshd.port,
            rescue_timeout: Duration::from_secs(20),
            rescue_poll: Duration::from_millis(100),
            environment: talos_manager_core::bootstrap::BootstrapEnvironment {
                host: Some(HOST.to_owned()),
                image_factory_url: http.base_url.clone(),
                amd64_image_url: None,
                arm64_image_url: None,
            },
        };
        let service = Service::start_with(settings.clone()).await;
        service.robot.add_server(RobotServer {
            ip: Some("127.0.0.1".into()),
            ..RobotServer::new(NUMBER, "worker-1")
        });
        let store = service.store();
        store
            .create_provider_account(
                ProviderKind::HetznerRobot,
                FakeRobot::USER,
                &Secret::new(FakeRobot::PASSWORD.into()),
            )
            .await
            .unwrap();
        service.sync().await;
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
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = Worker::new(JobQueue::new(store.clone()), "terraform-test")
            .timing(WorkerTiming {
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(100),
                abandoned_after: Duration::from_secs(30),
            })
            .register(
                BootstrapJob::new(service.providers().clone(), settings.clone()).with_lifecycle(
                    // The guard of a forced bootstrap; these servers are in no cluster, so it
                    // never reaches a Talos API.
                    LifecycleSettings {
                        talos: TalosSettings {
                            connector: std::sync::Arc::new(
                                talos_manager_talos_api::GrpcTalosConnector::new(),
                            ),
                            port: talos_manager_core::talos_api::DEFAULT_PORT,
                        },
                        providers: service.providers().clone(),
                        timing: Default::default(),
                        bootstrap: settings,
                    },
                ),
            );
        tokio::spawn(worker.run(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Bench {
            service,
            sshd,
            disk,
            http,
            stop,
            _dir: dir,
        }
    }

    /// The server's bootstrap jobs, oldest first.
    async fn jobs(&self) -> Vec<talos_manager_core::store::Job> {
        let mut jobs: Vec<_> = self
            .service
            .store()
            .list_jobs()
            .await
            .unwrap()
            .into_iter()
            .filter(|job| job.kind == "bootstrap")
            .collect();
        jobs.sort_by_key(|job| job.id);
        jobs
    }

    /// Waits until the newest bootstrap job ended; returns it.
    async fn finished_job(&self) -> talos_manager_core::store::Job {
        wait_for(
            "a bootstrap job to end",
            Duration::from_secs(120),
            Duration::from_millis(100),
            || async {
                match self.jobs().await.pop() {
                    Some(job) if !matches!(job.status, JobStatus::Queued | JobStatus::Running) => {
                        Ok(job)
                    }
                    newest => Err(newest),
                }
            },
        )
        .await
    }

    /// Waits (20 s) until the image server has no download in flight.
    async fn downloads_stopped(&self) {
        wait_for(
            "the download to stop",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                match self.http.active_transfers() {
                    0 => Ok(()),
                    active => Err(active),
                }
            },
        )
        .await;
    }

    /// Whether the disk holds the test image.
    fn disk_has_the_image(&self) -> bool {
        let raw = &image().raw;
        self.disk.contents()[..raw.len()] == raw[..]
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn bootstrap(arguments: &str) -> String {
    format!(
        "resource \"talosmanager_server_bootstrap\" \"worker\" {{\n  server_id = \"robot-{NUMBER}\"\n{arguments}}}\n"
    )
}

/// Runs `terraform apply` on a thread, so the test can act as the node meanwhile.
fn apply_in_background(terraform: Terraform) -> std::thread::JoinHandle<(Terraform, String)> {
    std::thread::spawn(move || {
        let output = flat(&terraform.ok(&["apply", "-auto-approve"]));
        (terraform, output)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_written_applies_imports_and_destroys_without_touching_the_node() {
    let bench = Bench::start().await;
    let terraform = Terraform::new(&bench.service);
    let arguments = "  wait_for  = \"image_written\"\n  timeout   = \"2m\"\n";
    terraform.write(&bootstrap(arguments));
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.lines()
            .any(|line| line.contains("+ job_id") && line.contains("(known after apply)")),
        "{plan}"
    );

    let started = Instant::now();
    let run = terraform.run(&["apply", "-auto-approve"]);
    assert_eq!(
        run.code,
        0,
        "{}\nsshd log:\n{}",
        run.output,
        bench.sshd.log()
    );
    eprintln!("bootstrap through terraform took {:?}", started.elapsed());
    let values = terraform.resource(ADDRESS).unwrap();
    let jobs = bench.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Succeeded);
    let job_id = jobs[0].id.to_string();
    assert_eq!(values["id"], job_id.as_str());
    assert_eq!(values["job_id"], job_id.as_str());
    assert_eq!(values["status"], "succeeded");
    assert!(values["talos_version"].is_null());
    assert!(bench.disk_has_the_image());
    assert!(bench.sshd.stubs.rebooted());
    terraform.assert_no_changes();

    // How long apply waits is no reason to bootstrap again.
    terraform.write(&bootstrap(&arguments.replace("2m", "3m")));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(!plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(terraform.resource(ADDRESS).unwrap()["timeout"], "3m");
    terraform.assert_no_changes();

    // Import by job id: the choices the configuration leaves out import as they are.
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &job_id]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["server_id"], "robot-321");
    assert_eq!(values["status"], "succeeded");
    let plan = terraform.ok(&["plan"]);
    assert!(!plan.contains("must be replaced"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.assert_no_changes();

    // A new Talos version or schematic never erases the node: an in-place change of the
    // state, with a warning pointing to the upgrade resource; no bootstrap job.
    terraform.write(&bootstrap(&format!(
        "{arguments}  talos_version = \"v1.10.5\"\n  schematic_id  = \"1\"\n"
    )));
    let plan = flat(&terraform.ok(&["plan"]));
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(!plan.contains("forces replacement"), "{plan}");
    assert!(!plan.contains("must be replaced"), "{plan}");
    assert!(
        plan.contains("Warning: The node is not reinstalled"),
        "{plan}"
    );
    assert!(
        plan.contains("`talos_version` from null to \"v1.10.5\"")
            && plan.contains("talosmanager_cluster_upgrade")
            && plan.contains("-replace=ADDRESS"),
        "{plan}"
    );
    let output = flat(&terraform.ok(&["apply", "-auto-approve"]));
    assert!(
        output.contains("0 added, 1 changed, 0 destroyed"),
        "{output}"
    );
    assert!(
        output.contains("Warning: The node is not reinstalled"),
        "{output}"
    );
    assert_eq!(bench.jobs().await.len(), 1, "no bootstrap was queued");
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["talos_version"], "v1.10.5");
    assert_eq!(values["job_id"], job_id.as_str());
    terraform.assert_no_changes();

    // Destroy leaves the node as it is.
    terraform.write(&bootstrap(arguments));
    let output = flat(&terraform.ok(&["destroy", "-auto-approve"]));
    assert!(
        output.contains("Warning: Not deleted in talos-manager"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "The bootstrap of robot-321 (job {job_id}) is only removed from the Terraform state"
        )),
        "{output}"
    );
    assert!(output.contains("the node keeps running"), "{output}");
    assert!(terraform.resource(ADDRESS).is_none());
    assert_eq!(bench.jobs().await.len(), 1);
    assert!(bench.disk_has_the_image());

    // Once the node runs with its config, bootstrapping it again (a new resource, or
    // `-replace`) is refused without `force` or a reset: nothing is queued, nothing erased.
    let store = bench.service.store();
    let server = store
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find(|server| server.inventory.provider_id == NUMBER.to_string())
        .unwrap();
    store
        .record_config_request(server.id, time::OffsetDateTime::now_utc(), true)
        .await
        .unwrap();
    terraform.write(&bootstrap(arguments));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(
        output.contains("refused to bootstrap worker-1: it is a configured node")
            && output.contains("reset it first or pass force"),
        "{output}"
    );
    assert_eq!(bench.jobs().await.len(), 1);
    assert!(bench.disk_has_the_image());

    // `force = true` erases it on purpose: a second bootstrap job, which succeeds.
    terraform.write(&bootstrap(&format!("{arguments}  force     = true\n")));
    terraform.ok(&["apply", "-auto-approve"]);
    let jobs = bench.jobs().await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs[1].status,
        JobStatus::Succeeded,
        "{:?}",
        jobs[1].last_error
    );
    assert_eq!(terraform.resource(ADDRESS).unwrap()["force"], true);
    terraform.assert_no_changes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_fetched_waits_until_the_node_fetched_its_machine_config() {
    let bench = Bench::start().await;
    let terraform = Terraform::new(&bench.service);
    // The cluster's API endpoint is on loopback: serving a config asks it for its version.
    terraform.write(&format!(
        "resource \"talosmanager_cluster\" \"prod\" {{\n  name     = \"prod\"\n  endpoint = \"https://127.0.0.1:6443\"\n}}\n\n\
         resource \"talosmanager_config\" \"default\" {{\n  name = \"default\"\n}}\n\n\
         resource \"talosmanager_server\" \"worker\" {{\n  server_id  = \"robot-{NUMBER}\"\n  cluster_id = talosmanager_cluster.prod.id\n}}\n\n\
         resource \"talosmanager_machine_config\" \"worker\" {{\n  server_id = talosmanager_server.worker.id\n  config_id = talosmanager_config.default.id\n}}\n\n\
         resource \"talosmanager_server_bootstrap\" \"worker\" {{\n  server_id  = talosmanager_server.worker.id\n  timeout    = \"2m\"\n  depends_on = [talosmanager_machine_config.worker]\n}}\n"
    ));
    let apply = apply_in_background(terraform);

    // The job writes the image and reboots the server; Terraform goes on waiting.
    let job = bench.finished_job().await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.last_error);
    assert!(bench.disk_has_the_image());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !apply.is_finished(),
        "apply returned before the node fetched its config"
    );

    // The new Talos fetches its machine config, as the node (127.0.0.1) would: with the
    // SMBIOS UUID the bootstrap recorded, which `/config` requires of a server we installed.
    let uuid = bench
        .service
        .store()
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .find_map(|server| server.uuid)
        .expect("the bootstrap recorded the node's UUID");
    let served = reqwest::get(format!("{}/config?uuid={uuid}", bench.service.base))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let yaml = served.text().await.unwrap();
    assert!(yaml.contains("type: worker"), "{yaml}");

    let (terraform, _output) = tokio::task::spawn_blocking(move || apply.join().unwrap())
        .await
        .unwrap();
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["status"], "succeeded");
    assert_eq!(values["job_id"], job.id.to_string().as_str());
    terraform.ok(&["refresh"]);
    assert_eq!(
        terraform.resource("talosmanager_server.worker").unwrap()["state"],
        "config served"
    );
    terraform.assert_no_changes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_the_diagnostic_and_the_next_apply_bootstraps_again() {
    let bench = Bench::start().await;
    // The server reports an SMBIOS UUID Talos cannot use: the job refuses to install.
    bench
        .sshd
        .stubs
        .set_uuid("4c4c4544-0042-3510-8057-000000000000");
    let terraform = Terraform::new(&bench.service);
    terraform.write(&bootstrap("  wait_for = \"image_written\"\n"));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    let job = bench.finished_job().await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(output.contains("Error: Bootstrap failed"), "{output}");
    assert!(
        output.contains(&format!(
            "The bootstrap of server robot-321 failed (job {}):",
            job.id
        )),
        "{output}"
    );
    assert!(output.contains("ends in 000000000000"), "{output}");
    assert!(
        output.contains(&format!("GET /api/v1/jobs/{}/log", job.id)),
        "{output}"
    );
    assert!(!bench.disk_has_the_image());

    // Terraform kept it, tainted, with the failed job.
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["status"], "failed");
    assert_eq!(values["job_id"], job.id.to_string().as_str());
    let plan = terraform.ok(&["plan"]);
    assert!(plans_to_replace_tainted(&plan), "{plan}");

    // Once the server is fixed, the next apply bootstraps again.
    bench
        .sshd
        .stubs
        .set_uuid("4c4c4544-0042-3510-8057-b4c04f4e3432");
    terraform.ok(&["apply", "-auto-approve"]);
    let jobs = bench.jobs().await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].status, JobStatus::Succeeded);
    assert_eq!(
        terraform.resource(ADDRESS).unwrap()["job_id"],
        jobs[1].id.to_string().as_str()
    );
    assert!(bench.disk_has_the_image());
    terraform.assert_no_changes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_the_job_to_follow() {
    let bench = Bench::start().await;
    // About 1 MiB/s: the write takes far longer than the timeout.
    bench
        .http
        .put_slow(&image_path(), image().zst.clone(), 1 << 20);
    let terraform = Terraform::new(&bench.service);
    terraform.write(&bootstrap(
        "  wait_for = \"image_written\"\n  timeout  = \"3s\"\n",
    ));
    let started = Instant::now();
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "apply waited {:?}",
        started.elapsed()
    );
    let jobs = bench.jobs().await;
    assert_eq!(jobs.len(), 1);
    let job_id = jobs[0].id.to_string();
    assert!(output.contains("Error: Bootstrap timed out"), "{output}");
    assert!(
        output.contains(&format!(
            "The bootstrap of server robot-321 (job {job_id}) did not finish within 3s"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!("GET /api/v1/jobs/{job_id}")),
        "{output}"
    );
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["job_id"], job_id.as_str());

    // The job goes on; stop it so the test leaves nothing running.
    bench.service.store().cancel_job(jobs[0].id).await.unwrap();
    let job = bench.finished_job().await;
    assert_eq!(job.status, JobStatus::Cancelled, "{:?}", job.last_error);
    bench.downloads_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_wait_and_keeps_the_job() {
    let bench = Bench::start().await;
    // About 1 MiB/s: the write goes on while Terraform waits.
    bench
        .http
        .put_slow(&image_path(), image().zst.clone(), 1 << 20);
    let terraform = Terraform::new(&bench.service);
    terraform.write(&bootstrap(
        "  wait_for = \"image_written\"\n  timeout  = \"10m\"\n",
    ));
    let apply = terraform.spawn(&["apply", "-auto-approve"]);
    let job_id = wait_for(
        "the bootstrap to start",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            match bench.jobs().await.pop() {
                Some(job) if job.status == JobStatus::Running => Ok(job.id),
                newest => Err(newest),
            }
        },
    )
    .await;

    // Ctrl-C in the terminal: SIGINT to Terraform and to the provider it started.
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", apply.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let interrupted = Instant::now();
    let result = tokio::task::spawn_blocking(move || apply.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        interrupted.elapsed() < Duration::from_secs(30),
        "apply went on for {:?} after Ctrl-C",
        interrupted.elapsed()
    );
    let output = flat(&format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    ));
    assert!(!result.status.success(), "{output}");
    assert!(output.contains("Error: Interrupted"), "{output}");
    assert!(
        output.contains(&format!(
            "Stopped by Terraform while waiting for the bootstrap of server robot-321 (job \
             {job_id})"
        )),
        "{output}"
    );

    // The state keeps the job, which goes on in talos-manager.
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["job_id"], job_id.to_string().as_str());
    let plan = terraform.ok(&["plan"]);
    assert!(plans_to_replace_tainted(&plan), "{plan}");
    let job = bench.jobs().await.pop().unwrap();
    assert_eq!(job.status, JobStatus::Running);

    bench.service.store().cancel_job(job_id).await.unwrap();
    let job = bench.finished_job().await;
    assert_eq!(job.status, JobStatus::Cancelled, "{:?}", job.last_error);
    bench.downloads_stopped().await;
}
