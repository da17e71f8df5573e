//! etcd bootstrap of a new cluster through the service: the first control plane fetching its
//! config queues the `cluster_bootstrap` job, which calls Bootstrap over the gRPC client on
//! the fake Talos API exactly once; `POST /clusters/{id}/bootstrap` and its refusals.

use super::lifecycle::{Fleet, finished, log};
use super::server::{TestServer, api_test};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use talos_manager_core::jobs::{ClusterBootstrapJob, JobKind, JobQueue, Worker, WorkerTiming};
use talos_manager_core::store::ProbeResult;
use talos_manager_core::testing::fleet::{FleetBuilder, pem, secrets_bundle};
use talos_manager_core::testing::wait_for;
use talos_manager_fake_kubernetes::FakeKubernetes;
use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};
use tokio::sync::watch;

/// A new cluster `prod` (never bootstrapped) of configured, running nodes whose etcd waits for
/// a bootstrap, from `127.0.0.<first_octet>` on.
pub(super) async fn new_cluster(server: &TestServer, names: &[&str], first_octet: u8) -> Fleet {
    let bundle = secrets_bundle().await;
    let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
        .await
        .unwrap();
    let talos = FakeTalosCluster::start(&pem(&bundle.os.crt), &pem(&bundle.os.key), None)
        .await
        .unwrap();
    talos.require_bootstrap();
    let stored = FleetBuilder::new(names, kubernetes.url(), &bundle)
        .new_servers(Ipv4Addr::new(127, 0, 0, first_octet), 300, None)
        .record_config_request(false)
        .bootstrapped(false)
        .build(server.store())
        .await
        .unwrap();
    let mut nodes = HashMap::new();
    for node in &stored.servers {
        let spec = if node.control_plane {
            NodeSpec::control_plane(node.address, &node.name)
        } else {
            NodeSpec::worker(node.address, &node.name)
        };
        talos.add_node(spec).unwrap();
        kubernetes.add_node(&node.name, json!({}), json!([]));
        nodes.insert(node.name.clone(), (node.id, node.api_id(), node.address));
    }
    Fleet {
        talos,
        kubernetes,
        cluster: stored.cluster,
        nodes,
    }
}

/// A worker running cluster bootstrap jobs until the sender is dropped.
pub(super) fn start_worker(server: &TestServer, fleet: &Fleet) -> watch::Sender<bool> {
    let worker = Worker::new(JobQueue::new(server.store().clone()), "bootstrapper")
        .register(ClusterBootstrapJob::new(fleet.settings(server)))
        .timing(WorkerTiming {
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(100),
            abandoned_after: Duration::from_secs(1),
        });
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    stop
}

/// `GET /config?uuid=…` from the node's own address, as Talos asks; the status.
async fn fetch_config(server: &TestServer, fleet: &Fleet, name: &str) -> u16 {
    let (server_id, _, address) = fleet.nodes[name].clone();
    let uuid = format!("4c4c4544-0042-3510-8051-{:012x}", u32::from(address));
    server
        .store()
        .record_probe(
            server_id,
            &ProbeResult {
                accessible: false,
                uuid: Some(uuid.clone()),
                lsblk: None,
            },
        )
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    client
        .get(server.url(&format!("/config?uuid={uuid}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn bootstrap_jobs(server: &TestServer) -> Vec<String> {
    server
        .store()
        .list_jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|job| job.kind == JobKind::ClusterBootstrap.as_str())
        .map(|job| job.id.to_string())
        .collect()
}

api_test!(
    the_first_control_plane_fetching_its_config_bootstraps_the_cluster_once,
    |server| {
        let fleet = new_cluster(
            &server,
            &["control-plane-1", "control-plane-2", "worker-1"],
            231,
        )
        .await;
        // Services still starting: Talos answers "not ready" twice.
        fleet.talos.set_bootstrap_not_ready(2);
        let _worker = start_worker(&server, &fleet);
        // A worker's config queues nothing.
        assert_eq!(fetch_config(&server, &fleet, "worker-1").await, 200);
        assert!(bootstrap_jobs(&server).await.is_empty());

        assert_eq!(fetch_config(&server, &fleet, "control-plane-1").await, 200);
        let jobs = wait_for(
            "a cluster_bootstrap job",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                let jobs = bootstrap_jobs(&server).await;
                if jobs.is_empty() { Err(jobs) } else { Ok(jobs) }
            },
        )
        .await;
        assert_eq!(jobs.len(), 1);
        let job = finished(&server, &jobs[0]).await;
        let lines = log(server.store(), &jobs[0]).await;
        assert_eq!(job["status"], "succeeded", "{job}\n{}", lines.join("\n"));
        let text = lines.join("\n");
        for part in [
            "bootstrapping control-plane-1",
            "not ready for Bootstrap yet",
            "Bootstrap accepted",
            "etcd answers: members control-plane-1, control-plane-2",
            "the Kubernetes API answers",
            "recorded as bootstrapped",
        ] {
            assert!(text.contains(part), "{part:?} not in\n{text}");
        }
        let cp1 = fleet.address("control-plane-1");
        let bootstraps: Vec<Ipv4Addr> = fleet
            .talos
            .calls()
            .into_iter()
            .filter(|call| call.method == "MachineService/Bootstrap")
            .map(|call| call.node)
            .collect();
        assert_eq!(bootstraps, [cp1, cp1, cp1], "two not ready, then accepted");

        let cluster = server
            .expect(
                Method::GET,
                &format!("/api/v1/clusters/{}", fleet.cluster),
                None,
                200,
            )
            .await;
        assert!(cluster["bootstrapped_at"].is_string(), "{cluster}");

        // The second control plane's config queues nothing more; asking again is refused.
        assert_eq!(fetch_config(&server, &fleet, "control-plane-2").await, 200);
        assert_eq!(bootstrap_jobs(&server).await.len(), 1);
        let refused = server
            .expect(
                Method::POST,
                &format!("/api/v1/clusters/{}/bootstrap", fleet.cluster),
                None,
                409,
            )
            .await;
        assert_eq!(refused["code"], "cluster_bootstrapped", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("never bootstrapped twice"),
            "{refused}"
        );
    }
);

api_test!(
    bootstrap_is_queued_once_and_imported_clusters_are_bootstrapped,
    |server| {
        let fleet = new_cluster(&server, &["control-plane-1"], 241).await;
        let path = format!("/api/v1/clusters/{}/bootstrap", fleet.cluster);
        let job = server.expect(Method::POST, &path, None, 202).await;
        assert_eq!(job["kind"], "cluster_bootstrap", "{job}");
        // No worker runs it: a second one is refused while it is queued.
        let refused = server.expect(Method::POST, &path, None, 409).await;
        assert_eq!(refused["code"], "bootstrap_running", "{refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains(job["id"].as_str().unwrap()),
            "{refused}"
        );

        // An imported cluster runs already.
        let bundle = secrets_bundle().await;
        let imported: Value = server
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(json!({
                    "name": "imported",
                    "endpoint": "https://127.0.0.1:6443",
                    "secrets": bundle.to_yaml(),
                })),
                201,
            )
            .await;
        assert!(imported["bootstrapped_at"].is_string(), "{imported}");
        let created: Value = server
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(json!({"name": "fresh", "endpoint": "https://127.0.0.1:6443"})),
                201,
            )
            .await;
        assert!(created["bootstrapped_at"].is_null(), "{created}");
        let refused = server
            .expect(
                Method::POST,
                &format!(
                    "/api/v1/clusters/{}/bootstrap",
                    imported["id"].as_str().unwrap()
                ),
                None,
                409,
            )
            .await;
        assert_eq!(refused["code"], "cluster_bootstrapped", "{refused}");
    }
);
