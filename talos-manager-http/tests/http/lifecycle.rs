//! Reset, rolling upgrade and rolling reboot through the admin API, run by the service's jobs
//! against real Talos API clients: the gRPC client over mutual TLS to the fake Talos API server
//! (`talos-manager-fake-talos`, one node per loopback address), and the fake Kubernetes API.
//! Also the push of a newly assigned config to a node waiting in maintenance mode.

use super::api_servers_jobs::add_server_at;
use super::server::{TestServer, api_test, test_bootstrap_settings};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use talos_manager_core::ProviderKind;
use talos_manager_core::Store;
use talos_manager_core::ids::{ClusterId, JobId, ServerId};
use talos_manager_core::jobs::{
    ConfigApplyJob, JobQueue, LifecycleSettings, PushConfigJob, ResetJob, RollingJob,
    TalosSettings, Worker, WorkerTiming,
};
use talos_manager_core::kubernetes::DrainOptions;
use talos_manager_core::lifecycle::LifecycleTiming;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::store::{MachineConfigFields, ProbeResult, SchematicFields};
use talos_manager_core::talos::SecretsBundle;
use talos_manager_core::testing::fleet::{DEFAULT_SCHEMATIC_ID, FleetBuilder, pem, secrets_bundle};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_kubernetes::{FakeKubernetes, NewPod};
use talos_manager_fake_talos::{FakeTalosCluster, Faults, NodeSpec};
use tokio::sync::watch;

const FROM: &str = "v1.10.4";
const TO: &str = "v1.11.3";
const SCHEMATIC: &str = DEFAULT_SCHEMATIC_ID;

/// A cluster `prod` of configured servers, each a node of the fake Talos API at its own
/// loopback address running `FROM`, and Ready in the fake Kubernetes API (the cluster's
/// endpoint). Names with `control-plane` are control planes.
pub(crate) struct Fleet {
    pub(crate) talos: FakeTalosCluster,
    pub(crate) kubernetes: FakeKubernetes,
    pub(crate) cluster: ClusterId,
    /// Server name → (server id, its API id, its address).
    pub(crate) nodes: HashMap<String, (ServerId, String, Ipv4Addr)>,
}

impl Fleet {
    /// `first_octet`: the last byte of the first node's address; tests use different ranges so
    /// they may share the machine.
    pub(crate) async fn new(server: &TestServer, names: &[&str], first_octet: u8) -> Fleet {
        Fleet::named(server, names, first_octet, |name| name.to_owned()).await
    }

    /// As [`Fleet::new`], but each node calls itself `node_name(server name)` in Talos
    /// (Nodename, etcd member) and Kubernetes, while its machine config expects the server's
    /// name; the config template's patch sets no hostname.
    async fn named(
        server: &TestServer,
        names: &[&str],
        first_octet: u8,
        node_name: impl Fn(&str) -> String,
    ) -> Fleet {
        Fleet::build(server, names, first_octet, node_name, FROM, |_, spec| spec).await
    }

    /// As [`Fleet::named`], at Talos `version` (settings, config template, nodes), each node as
    /// `customize(server name, spec)` makes it.
    async fn build(
        server: &TestServer,
        names: &[&str],
        first_octet: u8,
        node_name: impl Fn(&str) -> String,
        version: &str,
        customize: impl Fn(&str, NodeSpec) -> NodeSpec,
    ) -> Fleet {
        let bundle = secrets_bundle().await;
        let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
            .await
            .unwrap();
        let talos = FakeTalosCluster::start(&pem(&bundle.os.crt), &pem(&bundle.os.key), None)
            .await
            .unwrap();
        talos.set_downtime(Duration::from_millis(300));
        talos.set_boot_delay(Duration::from_millis(100));
        let stored = FleetBuilder::new(names, kubernetes.url(), &bundle)
            .talos_version(version)
            .install_image(&talos_manager_core::image_factory::installer_image(
                talos_manager_core::image_factory::DEFAULT_FACTORY_URL,
                None,
                version,
            ))
            .new_servers(Ipv4Addr::new(127, 0, 0, first_octet), 100, None)
            .build(server.store())
            .await
            .unwrap();
        let mut nodes = HashMap::new();
        for node in &stored.servers {
            let node_name = node_name(&node.name);
            let spec = if node.control_plane {
                NodeSpec::control_plane(node.address, &node_name)
            } else {
                NodeSpec::worker(node.address, &node_name)
            };
            talos
                .add_node(customize(&node.name, spec.version(version)))
                .unwrap();
            kubernetes.add_node(&node_name, json!({}), json!([]));
            nodes.insert(node.name.clone(), (node.id, node.api_id(), node.address));
        }
        Fleet {
            talos,
            kubernetes,
            cluster: stored.cluster,
            nodes,
        }
    }

    pub(crate) fn address(&self, name: &str) -> Ipv4Addr {
        self.nodes[name].2
    }

    /// The lifecycle settings of the service, with the fake's port and short waits.
    pub(crate) fn settings(&self, server: &TestServer) -> LifecycleSettings {
        lifecycle_settings(server, self.talos.port())
    }

    /// A worker running the lifecycle jobs until the returned sender is dropped or set, and
    /// its task (abort it to simulate a crash).
    fn start_worker(
        &self,
        server: &TestServer,
        name: &str,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        Fleet::start_worker_with(server, name, self.settings(server))
    }

    /// As [`Fleet::start_worker`], with these settings.
    pub(crate) fn start_worker_with(
        server: &TestServer,
        name: &str,
        settings: LifecycleSettings,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let worker = Worker::new(JobQueue::new(server.store().clone()), name)
            .register(ResetJob::new(settings.clone()))
            .register(RollingJob::upgrade(settings.clone()))
            .register(RollingJob::reboot(settings.clone()))
            .register(PushConfigJob::new(settings.talos.clone()))
            .register(ConfigApplyJob::new(settings.clone()))
            .timing(WorkerTiming {
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(100),
                abandoned_after: Duration::from_secs(1),
            });
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        (stop, task)
    }
}

/// The lifecycle settings of the service reaching the fake Talos API on `talos_port`, with
/// short waits.
pub(crate) fn lifecycle_settings(server: &TestServer, talos_port: u16) -> LifecycleSettings {
    LifecycleSettings {
        talos: TalosSettings {
            connector: Arc::new(talos_manager_talos_api::GrpcTalosConnector::new()),
            port: talos_port,
        },
        providers: server.providers(),
        timing: LifecycleTiming {
            poll_interval: Duration::from_millis(50),
            node_down: Duration::from_secs(10),
            node_back: Duration::from_secs(10),
            drain: DrainOptions {
                timeout: Duration::from_secs(5),
                retry_interval: Duration::from_millis(50),
            },
            wipe_grace: Duration::ZERO,
            etcd_rejoin: Duration::from_secs(5),
        },
        bootstrap: test_bootstrap_settings(None, 22, "https://factory.talos.dev"),
    }
}

/// Waits for a job to end; returns it as the API shows it.
pub(crate) async fn finished(server: &TestServer, job_id: &str) -> Value {
    server.job_ended(job_id, Duration::from_secs(90)).await
}

/// The first config applied to the node at `address` (through the maintenance API or after
/// its own `/config` fetch), within 30 s; the failure lists the node's config fetches.
async fn first_applied_config(fleet: &Fleet, address: Ipv4Addr) -> String {
    wait_for(
        format!("a config applied to {address}"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match fleet.talos.applied_configs(address).into_iter().next() {
                Some(config) => Ok(config),
                None => Err(fleet.talos.config_fetches(address)),
            }
        },
    )
    .await
}

/// Waits (10 s) until the server is recorded as configured (`last_configured_at`).
async fn configured(server: &TestServer, id: ServerId) {
    wait_for(
        format!("server {id} to be recorded as configured"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let stored = server.store().get_server(id).await.unwrap();
            stored
                .last_configured_at
                .ok_or(stored.last_request_for_configuration_at)
        },
    )
    .await;
}

pub(crate) async fn log(store: &Store, job_id: &str) -> Vec<String> {
    store
        .job_log(JobId(job_id.parse().unwrap()), None)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.line)
        .collect()
}

/// The index of the first log line containing all of `parts`, after line `from`.
#[track_caller]
fn line_after(lines: &[String], from: usize, parts: &[&str]) -> usize {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, line)| parts.iter().all(|part| line.contains(part)))
        .map(|(i, _)| i)
        .unwrap_or_else(|| {
            panic!(
                "no line with {parts:?} after line {from}:\n{}",
                lines.join("\n")
            )
        })
}

const FIVE: &[&str] = &[
    "worker-1",
    "control-plane-1",
    "worker-2",
    "control-plane-2",
    "control-plane-3",
];

api_test!(
    a_cluster_of_five_is_upgraded_node_by_node_with_one_call,
    |server| {
        let fleet = Fleet::new(&server, FIVE, 11).await;
        let (_stop, _worker) = fleet.start_worker(&server, "upgrade-test");

        let job = server
            .expect(
                Method::POST,
                "/api/v1/upgrades",
                Some(json!({"cluster_id": fleet.cluster.to_string(), "talos_version": TO})),
                202,
            )
            .await;
        assert_eq!(job["kind"], "upgrade");
        // One operation per cluster at a time.
        let busy = server
            .expect(
                Method::POST,
                "/api/v1/reboots",
                Some(json!({"cluster_id": fleet.cluster.to_string()})),
                409,
            )
            .await;
        assert_eq!(busy["code"], "cluster_busy");
        let holder = format!("(job {}, upgrade)", job["id"].as_str().unwrap());
        assert!(
            busy["message"].as_str().unwrap().contains(&holder),
            "the refusal names the job holding the cluster: {busy}"
        );

        let job = finished(&server, job["id"].as_str().unwrap()).await;
        let lines = log(server.store(), job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));

        // Control planes first, then workers; for each node the steps in order, and the next node
        // only after the previous one was uncordoned.
        let order = [
            "control-plane-1",
            "control-plane-2",
            "control-plane-3",
            "worker-1",
            "worker-2",
        ];
        let mut at = 0;
        for node in order {
            if node.starts_with("control-plane") {
                at = line_after(&lines, at, &[node, "etcd leader"]);
            }
            at = line_after(&lines, at, &[node, "drain"]);
            at = line_after(&lines, at, &[node, TO]);
            at = line_after(&lines, at, &[node, "uncordon"]);
        }
        for node in order {
            let snapshot = fleet.talos.node(fleet.address(node)).unwrap();
            assert_eq!(
                (snapshot.version.as_str(), snapshot.ready),
                (TO, true),
                "{node}"
            );
            assert_eq!(
                fleet.kubernetes.node(node).unwrap()["spec"]["unschedulable"],
                Value::Null,
                "{node} is left cordoned"
            );
        }
        // Never two nodes going down at once: each upgrade call comes after the previous node
        // answered again.
        let upgrades: Vec<_> = fleet
            .talos
            .calls()
            .into_iter()
            .filter(|call| call.method.ends_with("Upgrade"))
            .map(|call| call.node)
            .collect();
        let expected: Vec<_> = order.iter().map(|node| fleet.address(node)).collect();
        assert_eq!(upgrades, expected);

        // Again: every node is at the version and schematic already.
        let again = server
            .expect(
                Method::POST,
                "/api/v1/upgrades",
                Some(json!({"cluster_id": fleet.cluster.to_string(), "talos_version": TO})),
                202,
            )
            .await;
        let again = finished(&server, again["id"].as_str().unwrap()).await;
        assert_eq!(again["status"], "succeeded");
        let lines = log(server.store(), again["id"].as_str().unwrap()).await;
        assert!(
            lines.iter().any(|line| line.contains("0 done, 5 skipped")),
            "{}",
            lines.join("\n")
        );
    }
);

api_test!(
    a_failing_node_stops_the_upgrade_and_leaves_the_rest_untouched,
    |server| {
        let fleet = Fleet::new(&server, FIVE, 21).await;
        fleet.talos.set_faults(
            fleet.address("worker-1"),
            Faults {
                fail_upgrade: true,
                ..Faults::default()
            },
        );
        let (_stop, _worker) = fleet.start_worker(&server, "failing-upgrade-test");
        let job = server
            .expect(
                Method::POST,
                "/api/v1/upgrades",
                Some(json!({"cluster_id": fleet.cluster.to_string(), "talos_version": TO})),
                202,
            )
            .await;
        let job = finished(&server, job["id"].as_str().unwrap()).await;
        let lines = log(server.store(), job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "failed", "{}", lines.join("\n"));
        let error = job["last_error"].as_str().unwrap();
        assert!(
            error.contains("3 done") && error.contains("worker-1"),
            "the summary names the failing node: {error}"
        );
        for node in ["control-plane-1", "control-plane-2", "control-plane-3"] {
            assert_eq!(fleet.talos.node(fleet.address(node)).unwrap().version, TO);
        }
        // worker-1 failed and is back in service; worker-2 was never touched.
        assert_eq!(
            fleet.talos.node(fleet.address("worker-1")).unwrap().version,
            FROM
        );
        assert_eq!(
            fleet.kubernetes.node("worker-1").unwrap()["spec"]["unschedulable"],
            Value::Null
        );
        assert_eq!(
            fleet.talos.node(fleet.address("worker-2")).unwrap().version,
            FROM
        );
        assert!(
            !fleet
                .talos
                .methods(fleet.address("worker-2"))
                .iter()
                .any(|method| method.ends_with("Upgrade")),
            "worker-2 was asked to upgrade"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains("worker-2") && line.contains("untouched"))
        );
    }
);

#[tokio::test]
async fn an_upgrade_interrupted_by_a_crash_resumes_without_upgrading_a_node_twice() {
    let server = TestServer::start(talos_manager_core::Backend::Sqlite).await;
    let fleet = Fleet::new(&server, FIVE, 31).await;
    fleet.talos.set_downtime(Duration::from_millis(800));
    let (_stop, worker) = fleet.start_worker(&server, "crashing-worker");
    let job = server
        .expect(
            Method::POST,
            "/api/v1/upgrades",
            Some(json!({"cluster_id": fleet.cluster.to_string(), "talos_version": TO})),
            202,
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    // Crash while the second control plane is down for its upgrade.
    let second = fleet.address("control-plane-2");
    wait_for(
        "control-plane-2 to be upgraded",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async {
            let methods = fleet.talos.methods(second);
            match methods.iter().any(|method| method.ends_with("Upgrade")) {
                true => Ok(()),
                false => Err(methods),
            }
        },
    )
    .await;
    worker.abort();
    let _ = worker.await;
    let crashed = server
        .expect(Method::GET, &format!("/api/v1/jobs/{job_id}"), None, 200)
        .await;
    assert_eq!(crashed["status"], "running", "the crash left it running");

    // Another replica notices the stale heartbeat, queues the job again and finishes it.
    let (_stop, _worker) = fleet.start_worker(&server, "second-worker");
    let job = finished(&server, &job_id).await;
    let lines = log(server.store(), &job_id).await;
    assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
    for node in FIVE {
        let address = fleet.address(node);
        let upgrades = fleet
            .talos
            .methods(address)
            .iter()
            .filter(|method| method.ends_with("Upgrade"))
            .count();
        assert_eq!(upgrades, 1, "{node} was asked to upgrade {upgrades} times");
        assert_eq!(fleet.talos.node(address).unwrap().version, TO, "{node}");
    }
}

api_test!(a_worker_is_reset_to_maintenance_mode, |server| {
    let fleet = Fleet::new(&server, &["control-plane-1", "worker-1"], 41).await;
    let (_stop, _worker) = fleet.start_worker(&server, "reset-test");
    let (server_id, api_id, address) = fleet.nodes["worker-1"].clone();
    let job = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{api_id}/reset"),
            Some(json!({"profile": "maintenance"})),
            202,
        )
        .await;
    assert_eq!(
        (job["kind"].as_str(), job["server_id"].as_str()),
        (Some("reset"), Some(api_id.as_str()))
    );
    let job = finished(&server, job["id"].as_str().unwrap()).await;
    let lines = log(server.store(), job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));

    let node = fleet.talos.node(address).unwrap();
    assert!(
        node.maintenance,
        "the node is not in maintenance mode: {node:?}"
    );
    assert!(
        fleet.kubernetes.node("worker-1").is_none(),
        "the Kubernetes node is left"
    );
    assert!(
        server
            .store()
            .machine_config_for_server(server_id)
            .await
            .unwrap()
            .is_none(),
        "the machine config is left"
    );
    // Not a configured node any more.
    server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{api_id}/reset"),
            Some(json!({})),
            422,
        )
        .await;
});

api_test!(the_last_control_plane_is_reset_only_when_forced, |server| {
    let fleet = Fleet::new(&server, &["control-plane-1"], 51).await;
    let (_stop, _worker) = fleet.start_worker(&server, "refusal-test");
    let (_, api_id, address) = fleet.nodes["control-plane-1"].clone();
    let path = format!("/api/v1/servers/{api_id}/reset");
    let job = server
        .expect(
            Method::POST,
            &path,
            Some(json!({"profile": "maintenance"})),
            202,
        )
        .await;
    let job = finished(&server, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed");
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("last") && error.contains("force"),
        "the refusal explains itself: {error}"
    );
    assert!(
        !fleet.talos.node(address).unwrap().maintenance,
        "refused, yet reset"
    );
    assert!(
        !fleet
            .talos
            .methods(address)
            .iter()
            .any(|m| m.ends_with("Reset")),
        "refused, yet Reset was called"
    );

    let job = server
        .expect(
            Method::POST,
            &path,
            Some(json!({"profile": "maintenance", "force": true})),
            202,
        )
        .await;
    let job = finished(&server, job["id"].as_str().unwrap()).await;
    let lines = log(server.store(), job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
    assert!(fleet.talos.node(address).unwrap().maintenance);
});

api_test!(
    a_config_assigned_to_a_waiting_node_is_pushed_to_it,
    |server| {
        let fleet = Fleet::new(&server, &["control-plane-1"], 61).await;
        // A new server whose node booted Talos and keeps asking for a config.
        let address = Ipv4Addr::new(127, 0, 0, 62);
        let row = add_server_at(
            server.store(),
            ProviderKind::HetznerRobot,
            "200",
            "worker-5",
            &address.to_string(),
        )
        .await;
        server
            .store()
            .update_server_assignment(row.id, "worker-5", Some(fleet.cluster), None, None)
            .await
            .unwrap();
        fleet
            .talos
            .add_node(
                NodeSpec::worker(address, "worker-5")
                    .version(FROM)
                    .in_maintenance(),
            )
            .unwrap();
        server
            .store()
            .record_config_request(row.id, time::OffsetDateTime::now_utc(), false)
            .await
            .unwrap();
        let (_stop, _worker) = fleet.start_worker(&server, "push-test");

        let config = server.store().list_configs().await.unwrap().remove(0);
        server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": "robot-200", "config_id": config.id.to_string(), "install_disk": "/dev/nvme0n1"})),
            201,
        )
        .await;
        let applied = first_applied_config(&fleet, address).await;
        let served = talos_manager_core::node_config::render_node_config(server.store(), row.id)
            .await
            .unwrap();
        assert_eq!(
            &applied,
            served.yaml.expose(),
            "the pushed config is what /config serves"
        );
        configured(&server, row.id).await;
    }
);

/// Starts a rolling job for the whole cluster through the API and waits for it to end.
async fn roll(server: &TestServer, fleet: &Fleet, path: &str, body: Value) -> (Value, Vec<String>) {
    let mut body = body;
    body["cluster_id"] = json!(fleet.cluster.to_string());
    let job = server.expect(Method::POST, path, Some(body), 202).await;
    let job = finished(server, job["id"].as_str().unwrap()).await;
    let lines = log(server.store(), job["id"].as_str().unwrap()).await;
    (job, lines)
}

api_test!(
    with_a_control_plane_down_no_upgrade_or_reboot_takes_another_down,
    |server| {
        let fleet = Fleet::new(&server, FIVE, 71).await;
        fleet.talos.take_down(fleet.address("control-plane-3"));
        let (_stop, _worker) = fleet.start_worker(&server, "quorum-test");
        for (path, body) in [
            ("/api/v1/upgrades", json!({"talos_version": TO})),
            ("/api/v1/reboots", json!({})),
        ] {
            let (job, lines) = roll(&server, &fleet, path, body).await;
            assert_eq!(job["status"], "failed", "{}", lines.join("\n"));
            let error = job["last_error"].as_str().unwrap();
            assert!(
                error.contains("0 done") && error.contains("4 untouched"),
                "{error}"
            );
            line_after(
                &lines,
                0,
                &[
                    "control-plane-1: refused to take it down",
                    "not healthy: control-plane-3",
                    "nothing was sent to the node",
                ],
            );
            line_after(&lines, 0, &["etcd member control-plane-3 is not healthy"]);
        }
        // No node was asked to upgrade, reboot or hand over leadership, none was cordoned.
        let changes: Vec<_> = fleet
            .talos
            .calls()
            .into_iter()
            .filter(|call| {
                ["Upgrade", "Reboot", "EtcdForfeitLeadership", "Reset"]
                    .iter()
                    .any(|method| call.method.ends_with(method))
            })
            .collect();
        assert!(changes.is_empty(), "{changes:?}");
        assert!(fleet.kubernetes.patches().is_empty());
        for node in FIVE {
            assert_eq!(fleet.talos.node(fleet.address(node)).unwrap().version, FROM);
        }
    }
);

api_test!(
    a_control_plane_that_does_not_rejoin_etcd_stops_the_reboot,
    |server| {
        let fleet = Fleet::new(&server, FIVE, 81).await;
        fleet.talos.set_faults(
            fleet.address("control-plane-1"),
            Faults {
                never_rejoin_etcd: true,
                ..Faults::default()
            },
        );
        let (_stop, _worker) = fleet.start_worker(&server, "rejoin-test");
        let (job, lines) = roll(&server, &fleet, "/api/v1/reboots", json!({})).await;
        assert_eq!(job["status"], "failed", "{}", lines.join("\n"));
        let error = job["last_error"].as_str().unwrap();
        assert!(
            error.contains("control-plane-1 is back but had not rejoined etcd as a healthy member"),
            "{error}"
        );
        for node in ["control-plane-2", "control-plane-3", "worker-1", "worker-2"] {
            assert!(
                !fleet
                    .talos
                    .methods(fleet.address(node))
                    .iter()
                    .any(|method| method.ends_with("Reboot")),
                "{node} was rebooted"
            );
        }
        // Running and ready, but its etcd is not: it stays cordoned.
        assert!(
            fleet
                .talos
                .node(fleet.address("control-plane-1"))
                .unwrap()
                .ready
        );
        assert_eq!(
            fleet.kubernetes.node("control-plane-1").unwrap()["spec"]["unschedulable"],
            true
        );
    }
);

api_test!(
    without_a_hostname_patch_upgrade_and_reset_use_the_names_the_nodes_have,
    |server| {
        let fleet = Fleet::named(
            &server,
            &[
                "control-plane-1",
                "control-plane-2",
                "control-plane-3",
                "worker-1",
            ],
            91,
            |name| format!("talos-{name}"),
        )
        .await;
        let (server_id, api_id, _) = fleet.nodes["worker-1"].clone();
        // The served config names the node as talos-manager expects, with no `${hostname}` in
        // the template's patch.
        let config = talos_manager_core::node_config::render_node_config(server.store(), server_id)
            .await
            .unwrap();
        let yaml = config.yaml.expose();
        assert!(
            yaml.contains("network:\n        hostname: worker-1\n"),
            "{yaml}"
        );

        let (_stop, _worker) = fleet.start_worker(&server, "names-test");
        let (job, lines) = roll(
            &server,
            &fleet,
            "/api/v1/upgrades",
            json!({"talos_version": TO}),
        )
        .await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
        line_after(
            &lines,
            0,
            &[
                "worker-1: name mismatch: the node calls itself talos-worker-1, its machine config expects worker-1",
            ],
        );
        for node in [
            "control-plane-1",
            "control-plane-2",
            "control-plane-3",
            "worker-1",
        ] {
            assert_eq!(fleet.talos.node(fleet.address(node)).unwrap().version, TO);
            let name = format!("talos-{node}");
            let patches: Vec<_> = fleet
                .kubernetes
                .patches()
                .into_iter()
                .filter(|patch| patch.node == name)
                .collect();
            assert_eq!(patches.len(), 2, "cordon and uncordon of {name}");
        }
        let view = server
            .expect(Method::GET, &format!("/api/v1/servers/{api_id}"), None, 200)
            .await;
        assert_eq!(view["node_name"], "talos-worker-1");
        assert_eq!(
            view["node_name_mismatch"],
            "the node calls itself talos-worker-1, its machine config expects worker-1"
        );

        let (_, cp3, _) = fleet.nodes["control-plane-3"].clone();
        let job = server
            .expect(
                Method::POST,
                &format!("/api/v1/servers/{cp3}/reset"),
                Some(json!({"profile": "wipe"})),
                202,
            )
            .await;
        let job = finished(&server, job["id"].as_str().unwrap()).await;
        let lines = log(server.store(), job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
        let members: Vec<_> = fleet
            .talos
            .etcd_members()
            .into_iter()
            .map(|member| member.hostname)
            .collect();
        assert_eq!(members, ["talos-control-plane-1", "talos-control-plane-2"]);
        assert!(fleet.kubernetes.node("talos-control-plane-3").is_none());
        assert!(fleet.kubernetes.node("talos-control-plane-1").is_some());
    }
);

api_test!(
    rolling_upgrades_install_the_factory_installer_of_the_schematic_on_every_version,
    |server| {
        // TALOS_IMAGE_FACTORY_URL names a factory of its own.
        const FACTORY: &str = "https://factory.internal.example:8443";
        let fleet = Fleet::build(
            &server,
            &["control-plane-1", "worker-1"],
            101,
            str::to_owned,
            "v1.12.0",
            |_, spec| spec,
        )
        .await;
        let mut settings = fleet.settings(&server);
        settings.bootstrap.environment.image_factory_url = FACTORY.into();
        let (_stop, _worker) = Fleet::start_worker_with(&server, "factory-test", settings);
        // 1.12 nodes take the legacy upgrade call, 1.13 ones pull and install; to 1.13 and to
        // 1.14 (whose installer only the factory publishes) alike, the factory's installer of the
        // schematic, which carries its kernel arguments.
        for (version, method) in [
            ("v1.13.9", "MachineService/Upgrade"),
            ("v1.14.1", "LifecycleService/Upgrade"),
        ] {
            let (job, lines) = roll(
                &server,
                &fleet,
                "/api/v1/upgrades",
                json!({"talos_version": version}),
            )
            .await;
            assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
            let image =
                format!("factory.internal.example:8443/metal-installer/{SCHEMATIC}:{version}");
            line_after(&lines, 0, &["1. control-plane-1", &format!("with {image}")]);
            // The fleet's schematic was not saved through talos-manager: the plan says what
            // that costs.
            line_after(
                &lines,
                0,
                &[
                    "warning: schematic default has no talos.config= kernel argument",
                    "control-plane-1, worker-1 will not fetch a config after a reset",
                ],
            );
            for node in ["control-plane-1", "worker-1"] {
                let address = fleet.address(node);
                assert_eq!(fleet.talos.node(address).unwrap().version, version);
                let sent: Vec<_> = fleet
                    .talos
                    .calls()
                    .into_iter()
                    .filter(|call| call.node == address && call.method == method)
                    .map(|call| call.summary)
                    .collect();
                assert!(
                    sent.last()
                        .is_some_and(|summary| summary.starts_with(&format!("image {image}"))),
                    "{node} was sent {sent:?}"
                );
            }
        }
        let stock: Vec<_> = fleet
            .talos
            .calls()
            .into_iter()
            .filter(|call| call.summary.contains("ghcr.io"))
            .collect();
        assert!(stock.is_empty(), "{stock:?}");
    }
);

api_test!(
    a_reset_wipes_the_volumes_the_talos_version_of_the_node_defines,
    |server| {
        let names = [
            "control-plane-1",
            "control-plane-2",
            "control-plane-3",
            "worker-1",
            "worker-2",
        ];
        // 1.14 nodes with etcd (control planes), containerd, the kubelet's data and the logs on
        // partitions of their own, as a VolumeConfig puts them; one worker still at 1.13.
        let fleet = Fleet::build(
            &server,
            &names,
            111,
            str::to_owned,
            "v1.14.1",
            |name, spec| match name {
                "worker-1" => spec.version("v1.13.9"),
                "worker-2" => spec.dedicated_volumes(&["KUBELET", "LOG"]),
                _ => spec.dedicated_volumes(&["ETCD", "CRI", "KUBELET", "LOG"]),
            },
        )
        .await;
        let (_stop, _worker) = fleet.start_worker(&server, "volumes-test");
        let all = ["STATE", "EPHEMERAL", "ETCD", "CRI", "KUBELET", "LOG"];
        for (node, version, wiped, phrase) in [
            (
                "worker-1",
                "v1.13.9",
                &all[..2],
                "wiping STATE and EPHEMERAL,",
            ),
            (
                "worker-2",
                "v1.14.1",
                &all[..],
                "wiping STATE, EPHEMERAL, ETCD, CRI, KUBELET and LOG,",
            ),
            (
                "control-plane-3",
                "v1.14.1",
                &all[..],
                "wiping STATE, EPHEMERAL, ETCD, CRI, KUBELET and LOG,",
            ),
        ] {
            let (_, api_id, address) = fleet.nodes[node].clone();
            let job = server
                .expect(
                    Method::POST,
                    &format!("/api/v1/servers/{api_id}/reset"),
                    Some(json!({"profile": "maintenance"})),
                    202,
                )
                .await;
            let job = finished(&server, job["id"].as_str().unwrap()).await;
            let lines = log(server.store(), job["id"].as_str().unwrap()).await;
            assert_eq!(job["status"], "succeeded", "{node}: {}", lines.join("\n"));
            line_after(
                &lines,
                0,
                &[&format!("asking {node} (Talos {version}) to reset"), phrase],
            );
            // The fake node checked the labels as its version does and recorded them.
            let expected: Vec<Vec<String>> =
                vec![wiped.iter().map(|label| (*label).to_owned()).collect()];
            assert_eq!(fleet.talos.wipes(address), expected, "{node}");
            let snapshot = fleet.talos.node(address).unwrap();
            assert!(snapshot.maintenance, "{node}: {snapshot:?}");
            assert!(
                snapshot.kept_volumes.is_empty(),
                "{node}: data survived the reset in {:?}",
                snapshot.kept_volumes
            );
        }
        let members: Vec<_> = fleet
            .talos
            .etcd_members()
            .into_iter()
            .map(|member| member.hostname)
            .collect();
        assert_eq!(members, ["control-plane-1", "control-plane-2"]);
    }
);

api_test!(
    a_node_upgraded_to_1_14_still_fetches_its_config_after_a_reset,
    |server| {
        const UUID: &str = "4c4c4544-0042-3510-8051-b4c04f564433";
        // The kernel argument talos-manager writes (bootstrap image, schematic).
        let talos_config = format!("talos.config={}?uuid=${{uuid}}", server.url("/config"));
        let fleet = Fleet::build(
            &server,
            &["control-plane-1", "worker-1"],
            121,
            str::to_owned,
            "v1.13.9",
            |name, spec| {
                if name == "worker-1" {
                    spec.kernel_args(&[&talos_config]).smbios_uuid(UUID)
                } else {
                    spec
                }
            },
        )
        .await;
        let (server_id, api_id, address) = fleet.nodes["worker-1"].clone();
        server
            .store()
            .record_probe(
                server_id,
                &ProbeResult {
                    accessible: false,
                    uuid: Some(UUID.into()),
                    lsblk: None,
                },
            )
            .await
            .unwrap();
        // talos-manager forces its talos.config= into every schematic it saves, and the factory
        // bakes a schematic's kernel arguments into its installers' UKI.
        let schematic = server.store().list_schematics().await.unwrap().remove(0);
        server
            .store()
            .update_schematic(
                schematic.id,
                &SchematicFields {
                    body: format!("customization:\n  extraKernelArgs:\n    - {talos_config}\n"),
                    ..schematic.fields
                },
            )
            .await
            .unwrap();
        fleet.talos.register_installer(
            &format!("factory.talos.dev/metal-installer/{SCHEMATIC}"),
            &[&talos_config],
        );
        let (_stop, _worker) = fleet.start_worker(&server, "cmdline-test");

        // 1.13 → 1.14: the node's boot entry takes the installer's command line from now on.
        let (job, lines) = roll(
            &server,
            &fleet,
            "/api/v1/upgrades",
            json!({"talos_version": "v1.14.1"}),
        )
        .await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
        assert!(
            !lines.iter().any(|line| line.starts_with("warning:")),
            "{}",
            lines.join("\n")
        );
        let node = fleet.talos.node(address).unwrap();
        assert_eq!(node.version, "v1.14.1");
        assert_eq!(node.kernel_args, std::slice::from_ref(&talos_config));

        // Reset to maintenance mode: STATE is gone, the node asks its talos.config= URL.
        let job = server
            .expect(
                Method::POST,
                &format!("/api/v1/servers/{api_id}/reset"),
                Some(json!({"profile": "maintenance"})),
                202,
            )
            .await;
        let job = finished(&server, job["id"].as_str().unwrap()).await;
        let lines = log(server.store(), job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
        // Talos asks its talos.config= URL instead of entering maintenance mode; the job
        // takes that request as the node being back.
        line_after(
            &lines,
            0,
            &["worker-1 booted and asks /config for a machine config"],
        );
        let url = format!("{}?uuid={UUID}", server.url("/config"));
        let first = wait_for(
            "the node to ask for its config",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                fleet
                    .talos
                    .config_fetches(address)
                    .into_iter()
                    .next()
                    .ok_or("no fetch")
            },
        )
        .await;
        assert_eq!(first.url, url);
        assert_ne!(first.status, 200, "the reset left a config assigned");

        // A config is assigned again (through the store: no push job races the node's fetch).
        let config = server.store().list_configs().await.unwrap().remove(0);
        server
            .store()
            .put_machine_config(
                server_id,
                &MachineConfigFields {
                    config_id: config.id,
                    hostname: "worker-1".into(),
                    private_ip: "10.0.1.1".into(),
                    install_disk: "/dev/nvme0n1".into(),
                    ephemeral_disk_identifier: None,
                },
            )
            .await
            .unwrap();
        first_applied_config(&fleet, address).await;
        let fetches = fleet.talos.config_fetches(address);
        let last = fetches.last().unwrap();
        assert_eq!((last.url.as_str(), last.status), (url.as_str(), 200));
        let served = talos_manager_core::node_config::render_node_config(server.store(), server_id)
            .await
            .unwrap();
        assert_eq!(
            fleet.talos.applied_configs(address)[0],
            *served.yaml.expose(),
            "the node runs what /config serves"
        );
        configured(&server, server_id).await;
    }
);

api_test!(
    the_fake_node_keeps_talos_config_across_an_upgrade_as_its_config_says,
    |server| {
        use talos_manager_core::talos_api::{
            RebootMode, TalosConnector, TalosCredentials, UpgradeRequest,
        };
        let talos_config = format!("talos.config={}?uuid=${{uuid}}", server.url("/config"));
        // worker-1 runs a 1.11 config (legacy GRUB command line), worker-2 a 1.12 one
        // (grubUseUKICmdline: true).
        let fleet = Fleet::build(
            &server,
            &["control-plane-1", "worker-1", "worker-2"],
            131,
            str::to_owned,
            "v1.11.3",
            |name, spec| match name {
                "worker-1" => spec.kernel_args(&[&talos_config]),
                "worker-2" => spec.version("v1.12.0").kernel_args(&[&talos_config]),
                _ => spec,
            },
        )
        .await;
        // A stock installer, which the fake registry knows no kernel arguments for, sent
        // directly (talos-manager itself never sends one).
        let secrets = server.store().cluster_secrets(fleet.cluster).await.unwrap();
        let bundle = SecretsBundle::parse(secrets.expose()).unwrap();
        let credentials = TalosCredentials::for_cluster(
            &bundle,
            time::OffsetDateTime::now_utc(),
            &mut SystemRandom,
        )
        .unwrap();
        let connector = talos_manager_talos_api::GrpcTalosConnector::new();
        let api = connector.cluster(&credentials).unwrap();
        for node in ["worker-1", "worker-2"] {
            let address = fleet.address(node);
            api.upgrade(
                std::net::SocketAddr::new(address.into(), fleet.talos.port()),
                &UpgradeRequest {
                    image: "ghcr.io/siderolabs/installer:v1.13.9".into(),
                    stage: false,
                    force: false,
                    reboot_mode: RebootMode::Default,
                },
            )
            .await
            .unwrap();
        }
        for node in ["worker-1", "worker-2"] {
            wait_for(
                format!("{node} to run v1.13.9"),
                Duration::from_secs(30),
                Duration::from_millis(50),
                || async {
                    let version = fleet.talos.node(fleet.address(node)).unwrap().version;
                    if version == "v1.13.9" {
                        Ok(())
                    } else {
                        Err(version)
                    }
                },
            )
            .await;
        }
        // The legacy installer copied talos.config= from the running command line; the UKI's
        // command line of a stock installer has none.
        let args = |node| fleet.talos.node(fleet.address(node)).unwrap().kernel_args;
        assert_eq!(args("worker-1"), std::slice::from_ref(&talos_config));
        assert!(args("worker-2").is_empty(), "{:?}", args("worker-2"));
    }
);

api_test!(a_reboot_refuses_an_unmanaged_pod_unless_forced, |server| {
    let fleet = Fleet::new(&server, &["control-plane-1", "worker-1"], 191).await;
    let mut bare = NewPod::new("default", "debug", "worker-1");
    bare.owner_kind = None;
    fleet.kubernetes.add_pod(bare);
    let (_stop, _worker) = fleet.start_worker(&server, "unmanaged-pod-test");
    let worker = fleet.nodes["worker-1"].1.clone();
    let reboot = |body: Value| {
        let server = &server;
        async move {
            let job = server
                .expect(Method::POST, "/api/v1/reboots", Some(body), 202)
                .await;
            let job = finished(server, job["id"].as_str().unwrap()).await;
            let lines = log(server.store(), job["id"].as_str().unwrap()).await;
            (job, lines)
        }
    };

    let (job, lines) = reboot(json!({"server_ids": [worker]})).await;
    assert_eq!(job["status"], "failed", "{}", lines.join("\n"));
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("0 done"), "{error}");
    line_after(
        &lines,
        0,
        &[
            "worker-1: refused to drain node worker-1: pod default/debug: no controller \
                 manages it, so nothing would recreate it (allow with force)",
            "the node was uncordoned",
        ],
    );
    assert!(fleet.kubernetes.evictions().is_empty());
    assert_eq!(fleet.kubernetes.pods("worker-1"), ["default/debug"]);
    assert!(
        !fleet
            .talos
            .methods(fleet.address("worker-1"))
            .iter()
            .any(|method| method.ends_with("Reboot")),
        "worker-1 was rebooted"
    );

    let (job, lines) = reboot(json!({"server_ids": [worker], "force": true})).await;
    assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
    line_after(&lines, 0, &["worker-1: evicted pod default/debug"]);
    assert!(fleet.kubernetes.pods("worker-1").is_empty());
});

api_test!(
    a_node_an_operator_cordoned_stays_cordoned_after_a_reboot,
    |server| {
        let fleet = Fleet::new(&server, &["control-plane-1", "worker-1", "worker-2"], 201).await;
        // An operator cordoned worker-1 (a failing disk) before the run.
        fleet
            .kubernetes
            .change_node("worker-1", json!({"spec": {"unschedulable": true}}));
        let (_stop, _worker) = fleet.start_worker(&server, "cordoned-test");
        let ids = [
            fleet.nodes["worker-1"].1.clone(),
            fleet.nodes["worker-2"].1.clone(),
        ];
        let job = server
            .expect(
                Method::POST,
                "/api/v1/reboots",
                Some(json!({"server_ids": ids})),
                202,
            )
            .await;
        let job = finished(&server, job["id"].as_str().unwrap()).await;
        let lines = log(server.store(), job["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{}", lines.join("\n"));
        let at = line_after(
            &lines,
            0,
            &["worker-1: already cordoned before the drain; it stays cordoned afterwards"],
        );
        line_after(
            &lines,
            at,
            &["worker-1: left cordoned, as it was before the drain; done"],
        );
        line_after(&lines, at, &["worker-2: uncordoned, done"]);
        assert_eq!(
            fleet.kubernetes.node("worker-1").unwrap()["spec"]["unschedulable"],
            true
        );
        assert!(
            fleet.kubernetes.node("worker-2").unwrap()["spec"]["unschedulable"].is_null(),
            "worker-2 is uncordoned"
        );
    }
);
