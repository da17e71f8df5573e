//! `talosmanager_cluster_upgrade`, `talosmanager_cluster_bootstrap` and `reset_on_destroy` of
//! `talosmanager_server_bootstrap` with the real Terraform CLI: the service's reset, upgrade and
//! cluster bootstrap jobs run in its worker, reach
//! fake Talos nodes (`talos-manager-fake-talos`, on 127.0.0.N) with the real gRPC client, and
//! the cluster's fake Kubernetes API (`talos-manager-fake-kubernetes`) over mutual TLS.

use super::harness::{Service, Terraform, flat, plans_to_replace_tainted};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use talos_manager_core::Store;
use talos_manager_core::ids::{ClusterId, JobId, ServerId};
use talos_manager_core::jobs::{
    ClusterBootstrapJob, JobQueue, LifecycleSettings, ResetJob, RollingJob, TalosSettings, Worker,
    WorkerTiming, queue_cluster_bootstrap,
};
use talos_manager_core::kubernetes::DrainOptions;
use talos_manager_core::lifecycle::LifecycleTiming;
use talos_manager_core::store::{JobOutcome, JobStatus, NewJob};
use talos_manager_core::testing::fleet::{FleetBuilder, pem, secrets_bundle};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_kubernetes::FakeKubernetes;
use talos_manager_fake_talos::{FakeTalosCluster, Faults, NodeSpec};
use talos_manager_talos_api::GrpcTalosConnector;

/// The version the nodes run at first.
const FROM: &str = "v1.11.0";

const UPGRADE: &str = "talosmanager_cluster_upgrade.production";

/// A configured node of the bench.
struct Node {
    /// `robot-<n>`.
    api_id: String,
    id: ServerId,
    address: Ipv4Addr,
    /// The bootstrap job that installed it (succeeded).
    bootstrap_job: JobId,
}

/// The service with a worker running the reset and upgrade jobs, and a cluster of configured
/// Robot servers (names with `control-plane` are control planes) running Talos `FROM` on the
/// Talos fake and Ready in the Kubernetes fake, each with the succeeded bootstrap job that
/// installed it.
struct Bench {
    service: Service,
    talos: FakeTalosCluster,
    kubernetes: FakeKubernetes,
    cluster_id: String,
    nodes: Vec<Node>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Bench {
    async fn start(names: &[&str]) -> Bench {
        Bench::start_with(names, false).await
    }

    /// The bench with `new_cluster`: a cluster never bootstrapped whose etcd waits for
    /// Bootstrap, and whose servers have not fetched their config yet.
    async fn start_with(names: &[&str], new_cluster: bool) -> Bench {
        let secrets = secrets_bundle().await;
        let kubernetes = FakeKubernetes::start(&pem(&secrets.k8s.crt), &pem(&secrets.k8s.key))
            .await
            .unwrap();
        let talos = FakeTalosCluster::start(&pem(&secrets.os.crt), &pem(&secrets.os.key), None)
            .await
            .unwrap();
        // The service's health checks reach the fake Talos API too.
        let service = Service::start_with_talos(TalosSettings {
            connector: Arc::new(GrpcTalosConnector::new()),
            port: talos.port(),
        })
        .await;
        let store = service.store().clone();
        talos.set_downtime(Duration::from_millis(300));
        talos.set_boot_delay(Duration::from_millis(100));
        if new_cluster {
            talos.require_bootstrap();
        }

        let fleet = FleetBuilder::new(names, kubernetes.url(), &secrets)
            .cluster_name("production")
            .talos_version(FROM)
            .new_servers(Ipv4Addr::new(127, 0, 0, 2), 1, Some("robot"))
            .private_ip(|index, _| format!("10.0.0.{}", index + 1))
            .bootstrapped(!new_cluster)
            .record_config_request(!new_cluster)
            .build(&store)
            .await
            .unwrap();
        let cluster_id = fleet.cluster;

        let mut nodes = Vec::new();
        for server in &fleet.servers {
            let (name, address) = (server.name.as_str(), server.address);
            let spec = if server.control_plane {
                NodeSpec::control_plane(address, name)
            } else {
                NodeSpec::worker(address, name)
            };
            talos.add_node(spec.version(FROM)).unwrap();
            kubernetes.add_node(name, serde_json::json!({}), serde_json::json!([]));
            // Claimed and finished here, before the worker starts.
            let job = store
                .enqueue_job(&NewJob {
                    kind: "bootstrap".into(),
                    server_id: Some(server.id),
                    args: serde_json::json!({}),
                })
                .await
                .unwrap();
            let claimed = store.claim_job("setup").await.unwrap().unwrap();
            assert_eq!(claimed.id, job.id);
            store
                .finish_job(job.id, "setup", JobOutcome::Succeeded)
                .await
                .unwrap();
            nodes.push(Node {
                api_id: server.api_id(),
                id: server.id,
                address,
                bootstrap_job: job.id,
            });
        }

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let settings = LifecycleSettings {
            talos: TalosSettings {
                connector: Arc::new(GrpcTalosConnector::new()),
                port: talos.port(),
            },
            providers: service.providers().clone(),
            timing: LifecycleTiming {
                poll_interval: Duration::from_millis(100),
                node_down: Duration::from_secs(5),
                node_back: Duration::from_secs(10),
                drain: DrainOptions {
                    timeout: Duration::from_secs(5),
                    retry_interval: Duration::from_millis(100),
                },
                wipe_grace: Duration::ZERO,
                etcd_rejoin: Duration::from_secs(10),
            },
            bootstrap: {
                let mut bootstrap = Service::default_bootstrap_settings();
                bootstrap.environment.image_factory_url = service.factory.url().to_owned();
                bootstrap
            },
        };
        let worker = Worker::new(JobQueue::new(store.clone()), "terraform-test")
            .timing(WorkerTiming {
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(100),
                abandoned_after: Duration::from_secs(30),
            })
            .register(ResetJob::new(settings.clone()))
            .register(ClusterBootstrapJob::new(settings.clone()))
            .register(RollingJob::upgrade(settings));
        tokio::spawn(worker.run(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Bench {
            service,
            talos,
            kubernetes,
            cluster_id: cluster_id.to_string(),
            nodes,
            stop,
        }
    }

    fn store(&self) -> &Store {
        self.service.store()
    }

    /// Waits until the job ended; panics after 30 s.
    async fn job_ended(&self, id: JobId) {
        wait_for(
            format!("job {id} to end"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let job = self.store().get_job(id).await.unwrap();
                match job.status {
                    JobStatus::Queued | JobStatus::Running => Err(job),
                    _ => Ok(()),
                }
            },
        )
        .await;
    }

    /// The Talos version the node runs, as the fake has it.
    fn version(&self, node: usize) -> String {
        self.talos.node(self.nodes[node].address).unwrap().version
    }

    /// `main.tf` with one upgrade resource of the whole cluster to `version`.
    fn upgrade_config(&self, version: &str) -> String {
        format!(
            "resource \"talosmanager_cluster_upgrade\" \"production\" {{\n  cluster_id    = \
             \"{}\"\n  talos_version = \"{version}\"\n  timeout       = \"2m\"\n}}\n",
            self.cluster_id
        )
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_roll_in_place_and_a_failing_node_is_named() {
    let bench = Bench::start(&["control-plane-1", "worker-1"]).await;
    let terraform = Terraform::new(&bench.service);

    // Create: both nodes upgraded, control plane first; nothing left to plan.
    terraform.write(&bench.upgrade_config("v1.11.2"));
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(bench.version(0), "v1.11.2");
    assert_eq!(bench.version(1), "v1.11.2");
    let state = terraform.resource(UPGRADE).unwrap();
    assert_eq!(state["id"], bench.cluster_id.as_str());
    assert_eq!(state["talos_version"], "v1.11.2");
    let first_job = state["job_id"].as_str().unwrap().to_owned();
    let job = bench
        .store()
        .get_job(JobId(first_job.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(job.kind, "upgrade");
    terraform.assert_no_changes();

    // A new version upgrades again, in place, with a new job.
    terraform.write(&bench.upgrade_config("v1.11.3"));
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.contains("1 to change, 0 to destroy"),
        "not an in-place update:\n{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(bench.version(0), "v1.11.3");
    assert_eq!(bench.version(1), "v1.11.3");
    let state = terraform.resource(UPGRADE).unwrap();
    assert_ne!(state["job_id"], first_job.as_str());
    terraform.assert_no_changes();

    // The worker's installer fails: the control plane is upgraded, the worker stays, the error
    // names the node and the job, and the state keeps the version the nodes had.
    bench.talos.set_faults(
        bench.nodes[1].address,
        Faults {
            fail_upgrade: true,
            ..Faults::default()
        },
    );
    terraform.write(&bench.upgrade_config("v1.11.4"));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("Error: Upgrade failed"), "{output}");
    assert!(
        output.contains(&format!(
            "The upgrade of cluster {} to v1.11.4 failed (job",
            bench.cluster_id
        )),
        "{output}"
    );
    assert!(output.contains("worker-1"), "{output}");
    assert!(output.contains("/log"), "{output}");
    assert_eq!(bench.version(0), "v1.11.4");
    assert_eq!(bench.version(1), "v1.11.3");
    let state = terraform.resource(UPGRADE).unwrap();
    assert_eq!(state["talos_version"], "v1.11.3");

    // Once the node is fixed, the same apply finishes the upgrade (the control plane is
    // skipped).
    bench
        .talos
        .set_faults(bench.nodes[1].address, Faults::default());
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(bench.version(1), "v1.11.4");

    // Import by cluster id: the version comes back null, so the next plan upgrades in place.
    terraform.ok(&["state", "rm", UPGRADE]);
    terraform.ok(&["import", UPGRADE, &bench.cluster_id]);
    let state = terraform.resource(UPGRADE).unwrap();
    assert_eq!(state["cluster_id"], bench.cluster_id.as_str());
    assert!(state["talos_version"].is_null(), "{state}");
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("1 to change, 0 to destroy"), "{plan}");

    // Checked before planning: an empty selection, a bad timeout.
    let other = Terraform::new(&bench.service);
    other.write(
        "resource \"talosmanager_cluster_upgrade\" \"other\" {\n  cluster_id    = \"999\"\n  \
         talos_version = \"v1.11.2\"\n  server_ids    = []\n  timeout       = \"soon\"\n}\n",
    );
    let output = flat(&other.fails(&["plan"]));
    assert!(output.contains("server_ids"), "{output}");
    assert!(output.contains("\"soon\" is not a duration"), "{output}");
    // A cluster that does not exist: refused before anything runs, nothing is created.
    other.write(
        "resource \"talosmanager_cluster_upgrade\" \"other\" {\n  cluster_id    = \"999\"\n  \
         talos_version = \"v1.11.2\"\n}\n",
    );
    let output = flat(&other.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("999"), "{output}");
    assert!(
        other
            .resource("talosmanager_cluster_upgrade.other")
            .is_none()
    );
    // A selection: only the worker.
    other.write(&format!(
        "resource \"talosmanager_cluster_upgrade\" \"other\" {{\n  cluster_id    = \"{}\"\n  \
         server_ids    = [\"{}\"]\n  talos_version = \"v1.11.5\"\n}}\n",
        bench.cluster_id, bench.nodes[1].api_id
    ));
    other.ok(&["apply", "-auto-approve"]);
    assert_eq!(bench.version(0), "v1.11.4");
    assert_eq!(bench.version(1), "v1.11.5");
    other.assert_no_changes();

    // Destroy leaves the nodes as they are, and says so.
    let output = flat(&terraform.ok(&["destroy", "-auto-approve"]));
    assert!(
        output.contains("the nodes keep the Talos version they run"),
        "{output}"
    );
    assert_eq!(bench.version(0), "v1.11.4");
    assert_eq!(bench.version(1), "v1.11.5");

    // A create that runs out of time: the error names the job, which goes on; the resource is
    // kept tainted, so the next apply (with time enough) upgrades again: a new job, which
    // skips the nodes the first one upgraded.
    let third = Terraform::new(&bench.service);
    third.write(
        &bench
            .upgrade_config("v1.11.6")
            .replace("\"2m\"", "\"100ms\""),
    );
    let output = flat(&third.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("Error: Upgrade timed out"), "{output}");
    assert!(output.contains("did not finish within 100ms"), "{output}");
    let resource = third.show()["values"]["root_module"]["resources"][0].clone();
    assert_eq!(resource["tainted"], true, "{resource}");
    let timed_out = JobId(
        resource["values"]["job_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    bench.job_ended(timed_out).await;
    assert_eq!(bench.version(0), "v1.11.6");
    assert_eq!(bench.version(1), "v1.11.6");
    third.write(&bench.upgrade_config("v1.11.6"));
    let output = third.ok(&["apply", "-auto-approve"]);
    assert!(
        output.contains("1 added, 0 changed, 1 destroyed"),
        "{output}"
    );
    let state = third.resource(UPGRADE).unwrap();
    assert_ne!(state["job_id"], timed_out.to_string().as_str());
    third.assert_no_changes();
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_on_destroy_resets_the_node_a_refused_reset_keeps_it_and_ctrl_c_stops_an_upgrade() {
    let bench = Bench::start(&["control-plane-1", "worker-1"]).await;
    let terraform = Terraform::new(&bench.service);
    // The bootstrap resources of the first `count` nodes, with `reset`.
    let config = |count: usize, reset: &str| {
        let mut text = String::new();
        let names = ["control_plane_1", "worker_1"];
        for (name, node) in names.iter().zip(&bench.nodes).take(count) {
            text.push_str(&format!(
                "resource \"talosmanager_server_bootstrap\" \"{name}\" {{\n  server_id        = \
                 \"{}\"\n  timeout          = \"1m\"\n{reset}}}\n\n",
                node.api_id
            ));
        }
        text
    };
    terraform.write(&config(2, ""));
    terraform.ok(&[
        "import",
        "talosmanager_server_bootstrap.control_plane_1",
        &bench.nodes[0].bootstrap_job.to_string(),
    ]);
    terraform.ok(&[
        "import",
        "talosmanager_server_bootstrap.worker_1",
        &bench.nodes[1].bootstrap_job.to_string(),
    ]);
    terraform.ok(&["apply", "-auto-approve"]);

    // Setting reset_on_destroy changes the state only, in place.
    terraform.write(&config(2, "  reset_on_destroy = \"maintenance\"\n"));
    let output = terraform.ok(&["apply", "-auto-approve"]);
    assert!(
        output.contains("0 added, 2 changed, 0 destroyed"),
        "{output}"
    );
    terraform.assert_no_changes();
    assert_eq!(
        bench.talos.node(bench.nodes[1].address).unwrap().version,
        FROM
    );

    // Destroying the worker's bootstrap resets its node back to maintenance mode: it leaves
    // Kubernetes and the server loses its machine config.
    terraform.ok(&[
        "destroy",
        "-auto-approve",
        "-target=talosmanager_server_bootstrap.worker_1",
    ]);
    let worker = bench.talos.node(bench.nodes[1].address).unwrap();
    assert!(worker.maintenance, "the worker is not in maintenance mode");
    assert!(
        bench
            .store()
            .machine_config_for_server(bench.nodes[1].id)
            .await
            .unwrap()
            .is_none(),
        "the worker kept its machine config"
    );
    assert!(bench.kubernetes.node("worker-1").is_none());
    assert!(
        bench.talos.calls().iter().any(
            |call| call.node == bench.nodes[1].address && call.method == "MachineService/Reset"
        )
    );

    // Once reset, the server is no longer a configured node: a second bootstrap resource of it
    // (imported) is destroyed with a warning, without a reset.
    terraform.write(&format!(
        "{}resource \"talosmanager_server_bootstrap\" \"again\" {{\n  server_id        = \
         \"{}\"\n  reset_on_destroy = \"maintenance\"\n}}\n",
        config(1, "  reset_on_destroy = \"maintenance\"\n"),
        bench.nodes[1].api_id
    ));
    terraform.ok(&[
        "import",
        "talosmanager_server_bootstrap.again",
        &bench.nodes[1].bootstrap_job.to_string(),
    ]);
    terraform.ok(&["apply", "-auto-approve"]);
    let resets = bench.store().list_jobs().await.unwrap();
    let output = flat(&terraform.ok(&[
        "destroy",
        "-auto-approve",
        "-target=talosmanager_server_bootstrap.again",
    ]));
    assert!(
        output.contains("Server robot-2 was not reset: it has no machine config"),
        "{output}"
    );
    assert_eq!(
        bench.store().list_jobs().await.unwrap(),
        resets,
        "a job was queued"
    );
    terraform.write(&config(1, "  reset_on_destroy = \"maintenance\"\n"));

    // The control plane is etcd's last member: its reset is refused, the error names the job,
    // the resource stays and the node is untouched.
    let output = flat(&terraform.fails(&["destroy", "-auto-approve"]));
    assert!(output.contains("Error: Reset failed"), "{output}");
    assert!(
        output.contains("The reset of server robot-1 to maintenance mode failed (job"),
        "{output}"
    );
    assert!(
        output.contains("the next destroy resets the server again"),
        "{output}"
    );
    assert!(
        terraform
            .resource("talosmanager_server_bootstrap.control_plane_1")
            .is_some()
    );
    let control_plane = bench.talos.node(bench.nodes[0].address).unwrap();
    assert!(!control_plane.maintenance);
    assert!(
        bench
            .store()
            .machine_config_for_server(bench.nodes[0].id)
            .await
            .unwrap()
            .is_some()
    );

    // Without reset_on_destroy, destroy only forgets it.
    terraform.write(&config(1, ""));
    terraform.ok(&["apply", "-auto-approve"]);
    let output = flat(&terraform.ok(&["destroy", "-auto-approve"]));
    assert!(
        output.contains("only removed from the Terraform state"),
        "{output}"
    );
    assert!(
        !bench
            .talos
            .node(bench.nodes[0].address)
            .unwrap()
            .maintenance
    );

    // Ctrl-C while an upgrade is waited for (of the control plane, the only configured node
    // left, slow to come back): the wait stops, the error names the job, which goes on, and
    // the resource is kept tainted.
    bench.talos.set_downtime(Duration::from_secs(3));
    terraform.write(&bench.upgrade_config("v1.11.2"));
    let apply = terraform.spawn(&["apply", "-auto-approve"]);
    let job_id = wait_for(
        "the upgrade to start",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let jobs = bench.store().list_jobs().await.unwrap();
            jobs.iter()
                .find(|job| job.kind == "upgrade" && job.status == JobStatus::Running)
                .map(|job| job.id)
                .ok_or(jobs)
        },
    )
    .await;
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", apply.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let result = tokio::task::spawn_blocking(move || apply.wait_with_output().unwrap())
        .await
        .unwrap();
    let output = flat(&format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    ));
    assert!(!result.status.success(), "{output}");
    assert!(output.contains("Error: Interrupted"), "{output}");
    assert!(
        output.contains(&format!(
            "Stopped by Terraform while waiting for the upgrade of cluster {} to v1.11.2 (job \
             {job_id})",
            bench.cluster_id
        )),
        "{output}"
    );
    assert_eq!(
        bench.store().get_job(job_id).await.unwrap().status,
        JobStatus::Running
    );
    let plan = terraform.ok(&["plan"]);
    assert!(plans_to_replace_tainted(&plan), "{plan}");
    bench.job_ended(job_id).await;
    assert_eq!(bench.version(0), "v1.11.2");
}

const BOOTSTRAP: &str = "talosmanager_cluster_bootstrap.production";

#[tokio::test(flavor = "multi_thread")]
async fn a_new_cluster_is_bootstrapped_once_and_a_failed_bootstrap_fails_the_apply() {
    let bench = Bench::start_with(&["control-plane-1", "worker-1"], true).await;
    let mut terraform = Terraform::new(&bench.service);
    let config = format!(
        "resource \"talosmanager_cluster_bootstrap\" \"production\" {{\n  cluster_id = \"{}\"\n  \
         timeout    = \"2m\"\n}}\n",
        bench.cluster_id
    );
    terraform.write(&config);

    // No control plane fetched its config yet: the job fails, its reason is the error, and
    // nothing is kept in the state.
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(
        output.contains("Error: Cluster bootstrap failed"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "The bootstrap of cluster {} failed (job",
            bench.cluster_id
        )),
        "{output}"
    );
    assert!(
        output.contains("has no configured control plane yet"),
        "{output}"
    );
    assert!(output.contains("/log"), "{output}");
    assert!(terraform.resource(BOOTSTRAP).is_none());
    assert!(!bench.talos.bootstrapped());
    // A cluster never bootstrapped has no bootstrap to import.
    let output = flat(&terraform.fails(&["import", BOOTSTRAP, &bench.cluster_id]));
    assert!(
        output.contains(&format!(
            "no talosmanager_cluster_bootstrap \"{}\" exists",
            bench.cluster_id
        )),
        "{output}"
    );

    // Once the control plane fetched its config, apply bootstraps it, exactly once, on it
    // (Talos answers "not ready" once first), and waits until the cluster is recorded as
    // bootstrapped.
    bench.talos.set_bootstrap_not_ready(1);
    bench
        .store()
        .record_config_request(bench.nodes[0].id, time::OffsetDateTime::now_utc(), true)
        .await
        .unwrap();
    // The job's progress goes to Terraform's log.
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("terraform.log");
    terraform.env("TF_LOG_PROVIDER", "DEBUG");
    terraform.env("TF_LOG_PATH", &log_path.display().to_string());
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.env("TF_LOG_PROVIDER", "");
    let log = std::fs::read_to_string(&log_path).unwrap();
    for line in [
        "job log: no control plane lists etcd members: bootstrapping control-plane-1",
        "job log: control-plane-1: Bootstrap accepted",
        "job log: cluster production is recorded as bootstrapped",
    ] {
        assert!(
            log.contains(line),
            "{line:?} not in Terraform's log:\n{log}"
        );
    }
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert_eq!(state["id"], bench.cluster_id.as_str());
    let at = state["bootstrapped_at"].as_str().unwrap();
    let cluster = bench
        .store()
        .get_cluster(ClusterId(bench.cluster_id.parse().unwrap()))
        .await
        .unwrap();
    let recorded = cluster.bootstrapped_at.expect("recorded as bootstrapped");
    assert_eq!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap(),
        recorded
    );
    let job = bench
        .store()
        .get_job(JobId(state["job_id"].as_str().unwrap().parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(job.kind, "cluster_bootstrap");
    assert!(bench.talos.bootstrapped());
    let accepted = bootstraps(&bench);
    assert_eq!(
        accepted, [bench.nodes[0].address; 2],
        "not ready, then accepted"
    );
    terraform.assert_no_changes();

    // Destroyed and created again: the cluster is not bootstrapped a second time.
    let output = flat(&terraform.ok(&["destroy", "-auto-approve"]));
    assert!(output.contains("there is no un-bootstrap"), "{output}");
    terraform.ok(&["apply", "-auto-approve"]);
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert_eq!(state["bootstrapped_at"], at);
    assert!(state["job_id"].is_null(), "{state}");
    assert_eq!(bootstraps(&bench).len(), 2, "no further Bootstrap call");

    // Imported by cluster id.
    terraform.ok(&["state", "rm", BOOTSTRAP]);
    terraform.ok(&["import", BOOTSTRAP, &bench.cluster_id]);
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert_eq!(state["bootstrapped_at"], at);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_waits_for_the_bootstrap_talos_manager_started_itself() {
    let bench = Bench::start_with(&["control-plane-1"], true).await;
    let store = bench.store();
    // The control plane fetched its config and talos-manager queued the bootstrap itself; Talos
    // says "not ready" a few times, so it is still running when Terraform asks.
    bench.talos.set_bootstrap_not_ready(5);
    store
        .record_config_request(bench.nodes[0].id, time::OffsetDateTime::now_utc(), true)
        .await
        .unwrap();
    let cluster = ClusterId(bench.cluster_id.parse().unwrap());
    let queued = queue_cluster_bootstrap(&JobQueue::new(store.clone()), store, cluster)
        .await
        .unwrap();
    let terraform = Terraform::new(&bench.service);
    terraform.write(&format!(
        "resource \"talosmanager_cluster_bootstrap\" \"production\" {{\n  cluster_id = \"{}\"\n}}\n",
        bench.cluster_id
    ));

    // Apply waits for that job (409 bootstrap_running, asked again until the cluster is
    // recorded as bootstrapped) and queues none of its own.
    terraform.ok(&["apply", "-auto-approve"]);
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert!(state["bootstrapped_at"].is_string(), "{state}");
    assert!(state["job_id"].is_null(), "not a job of its own: {state}");
    let jobs: Vec<JobId> = store
        .list_jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|job| job.kind == "cluster_bootstrap")
        .map(|job| job.id)
        .collect();
    assert_eq!(jobs, [queued.id]);
    assert_eq!(bootstraps(&bench), [bench.nodes[0].address; 6]);
    terraform.assert_no_changes();
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_apply_waits_until_the_cluster_is_healthy() {
    let bench = Bench::start_with(&["control-plane-1", "worker-1"], true).await;
    bench
        .store()
        .record_config_request(bench.nodes[0].id, time::OffsetDateTime::now_utc(), true)
        .await
        .unwrap();
    // The worker's Kubernetes node is not Ready: the cluster is degraded once bootstrapped.
    bench.kubernetes.set_ready("worker-1", false);
    let mut terraform = Terraform::new(&bench.service);
    let config = |extra: &str| {
        format!(
            "resource \"talosmanager_cluster_bootstrap\" \"production\" {{\n  cluster_id = \"{}\"\n{extra}}}\n",
            bench.cluster_id
        )
    };

    // `wait_for_health = false`: apply returns once the cluster is bootstrapped.
    terraform.write(&config("  wait_for_health = false\n"));
    terraform.ok(&["apply", "-auto-approve"]);
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert!(state["bootstrapped_at"].is_string(), "{state}");
    assert_eq!(state["wait_for_health"], false);
    terraform.ok(&["destroy", "-auto-approve"]);

    // Waiting, and the time runs out: the error carries the last check's reasons, and nothing
    // is kept in the state.
    terraform.write(&config("  timeout = \"2s\"\n"));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("Error: Cluster not healthy"), "{output}");
    assert!(
        output.contains(&format!(
            "Cluster {} did not become healthy within 2s: the last check said degraded: node \
             worker-1 is not Ready",
            bench.cluster_id
        )),
        "{output}"
    );
    assert!(terraform.resource(BOOTSTRAP).is_none());

    // The node becomes Ready a few seconds into the apply: apply returns only after that, and
    // Terraform's log has why it waited.
    terraform.write(&config(""));
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("terraform.log");
    terraform.env("TF_LOG_PROVIDER", "DEBUG");
    terraform.env("TF_LOG_PATH", &log_path.display().to_string());
    let (became_ready, returned) = std::thread::scope(|scope| {
        let ready = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            bench.kubernetes.set_ready("worker-1", true);
            std::time::Instant::now()
        });
        terraform.ok(&["apply", "-auto-approve"]);
        let returned = std::time::Instant::now();
        (ready.join().unwrap(), returned)
    });
    terraform.env("TF_LOG_PROVIDER", "");
    assert!(
        returned > became_ready,
        "apply returned before the node was Ready"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    for line in [
        "waiting until the cluster is healthy: node worker-1 is not Ready",
        "cluster is healthy",
    ] {
        assert!(
            log.contains(line),
            "{line:?} not in Terraform's log:\n{log}"
        );
    }
    let state = terraform.resource(BOOTSTRAP).unwrap();
    assert!(state["wait_for_health"].is_null(), "{state}");
    terraform.assert_no_changes();
}

/// The nodes Bootstrap was sent to, in order.
fn bootstraps(bench: &Bench) -> Vec<Ipv4Addr> {
    bench
        .talos
        .calls()
        .into_iter()
        .filter(|call| call.method == "MachineService/Bootstrap")
        .map(|call| call.node)
        .collect()
}
