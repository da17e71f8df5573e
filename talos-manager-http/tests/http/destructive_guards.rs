//! Destructive operations, as an unlucky operator would try them on running nodes. A bootstrap
//! erases the server: a live node is refused without `force`; a forced one holds its cluster; a
//! forced control plane that etcd cannot lose is refused by the job before anything touches the
//! server. A cluster that servers belong to is not deleted (its PKI is what they trust).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::jobs::{BootstrapJob, JobQueue, Worker, WorkerTiming};
use talos_manager_rescue_host::KeyPair;

use super::api_servers_jobs::add_server_at;
use super::lifecycle::{Fleet, finished, log};
use super::server::{TestServer, test_bootstrap_settings};

/// The service with an SSH key (bootstrap needs one), its key's directory.
async fn service(backend: Backend) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "talos-manager", "-t ed25519");
    // Rescue SSH on a port nothing listens on: no test here may get that far unnoticed.
    let settings = test_bootstrap_settings(Some(key.private), 9, "http://127.0.0.1:9");
    (
        TestServer::start_with_bootstrap(backend, settings).await,
        dir,
    )
}

macro_rules! both_backends {
    ($name:ident, $run:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$run(talos_manager_core::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$run(talos_manager_core::Backend::Postgres).await
            }
        }
    };
}

both_backends!(a_live_node_is_bootstrapped_only_with_force, live_node);
both_backends!(
    a_forced_bootstrap_of_the_last_control_plane_is_refused,
    last_control_plane
);
both_backends!(a_cluster_in_use_is_not_deleted, cluster_in_use);

/// A worker that runs bootstrap jobs with `fleet`'s Talos and Kubernetes settings; its rescue
/// SSH port and image server are port 9 on loopback, where nothing answers, so a bootstrap that
/// got past the guard would fail before any disk. It stops when `true` is sent on the returned
/// channel.
fn bootstrap_worker(
    server: &TestServer,
    dir: &tempfile::TempDir,
    fleet: &Fleet,
    name: &str,
) -> tokio::sync::watch::Sender<bool> {
    let settings = test_bootstrap_settings(
        Some(KeyPair::generate(dir.path(), "other", "-t ed25519").private),
        9,
        "http://127.0.0.1:9",
    );
    let worker = Worker::new(JobQueue::new(server.store().clone()), name)
        .timing(WorkerTiming {
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(100),
            abandoned_after: Duration::from_secs(30),
        })
        .register(
            BootstrapJob::new(server.providers(), settings).with_lifecycle(fleet.settings(server)),
        );
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    stop
}

async fn cluster_in_use(backend: Backend) {
    let (server, _dir) = service(backend).await;
    let fleet = Fleet::new(&server, &["worker-1"], 171).await;
    let cluster = fleet.cluster.to_string();
    let refused = server
        .expect(
            Method::DELETE,
            &format!("/api/v1/clusters/{cluster}"),
            None,
            409,
        )
        .await;
    assert_eq!(refused["code"], "in_use", "{refused}");
    assert_eq!(
        refused["message"],
        format!("cluster {cluster} is still in use")
    );
    // Still there, with its secrets; the server still belongs to it.
    server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{cluster}/talosconfig"),
            None,
            200,
        )
        .await;
    let worker = &fleet.nodes["worker-1"].1;
    assert_eq!(
        server.server_json(worker).await["cluster_id"],
        cluster.as_str()
    );

    // Detached, it can go.
    server
        .expect(
            Method::PATCH,
            &format!("/api/v1/servers/{worker}"),
            Some(json!({"cluster_id": null})),
            200,
        )
        .await;
    server
        .expect(
            Method::DELETE,
            &format!("/api/v1/clusters/{cluster}"),
            None,
            204,
        )
        .await;
}

async fn live_node(backend: Backend) {
    let (server, _dir) = service(backend).await;
    let fleet = Fleet::new(&server, &["control-plane-1", "worker-1"], 151).await;
    let worker = &fleet.nodes["worker-1"].1;
    let control_plane = &fleet.nodes["control-plane-1"].1;

    // The review's scenario: a configured node, an empty body.
    let refused = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{worker}/bootstrap"),
            Some(json!({})),
            409,
        )
        .await;
    assert_eq!(refused["code"], "live_node", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("worker-1")
            && message.contains("configured node")
            && message.contains("reset it first or pass force"),
        "{message}"
    );
    let jobs = server.expect(Method::GET, "/api/v1/jobs", None, 200).await;
    assert!(
        !jobs.to_string().contains("\"bootstrap\""),
        "a refused bootstrap queues no job: {jobs}"
    );

    // A server that was never served a config is no live node.
    add_server_at(
        server.store(),
        ProviderKind::HetznerRobot,
        "199",
        "worker-9",
        "127.0.0.199",
    )
    .await;
    server
        .expect(
            Method::POST,
            "/api/v1/servers/robot-199/bootstrap",
            Some(json!({})),
            202,
        )
        .await;

    // With force it is queued, and it holds the cluster like a reset.
    let job = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{worker}/bootstrap"),
            Some(json!({"force": true})),
            202,
        )
        .await;
    assert_eq!(job["kind"], "bootstrap");
    let busy = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{control_plane}/bootstrap"),
            Some(json!({"force": true})),
            409,
        )
        .await;
    assert_eq!(busy["code"], "cluster_busy", "{busy}");
    let busy = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{control_plane}/reset"),
            Some(json!({})),
            409,
        )
        .await;
    assert_eq!(busy["code"], "cluster_busy", "{busy}");
}

async fn last_control_plane(backend: Backend) {
    let (server, dir) = service(backend).await;
    let fleet = Fleet::new(&server, &["control-plane-1"], 161).await;
    let node = &fleet.nodes["control-plane-1"].1;
    let stop = bootstrap_worker(&server, &dir, &fleet, "guard-test");

    let job = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{node}/bootstrap"),
            Some(json!({"force": true})),
            202,
        )
        .await;
    let id = job["id"].as_str().unwrap();
    let job = finished(&server, id).await;
    let lines = log(server.store(), id).await;
    assert_eq!(job["status"], "failed", "{}", lines.join("\n"));
    let error = job["last_error"].as_str().unwrap();
    assert!(
        error.contains("refused to bootstrap control plane control-plane-1 even with force")
            && error.contains("last etcd member"),
        "{error}"
    );
    // Nothing touched the server: no rescue, the node still runs and is configured.
    let view = server.server_json(node).await;
    assert_eq!(view["rescue_activated_at"], serde_json::Value::Null);
    assert!(view["last_configured_at"].is_string(), "{view}");
    let snapshot = fleet.talos.node(fleet.address("control-plane-1")).unwrap();
    assert!(snapshot.ready, "the node still runs");
    assert!(
        !lines.iter().any(|line| line.contains("rescue")),
        "{}",
        lines.join("\n")
    );
    // The refused bootstrap left the node live: without force it is still refused.
    let refused = server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{node}/bootstrap"),
            Some(json!({})),
            409,
        )
        .await;
    assert_eq!(refused["code"], "live_node", "{refused}");
    stop.send_replace(true);
}

both_backends!(
    a_forced_bootstrap_of_a_control_plane_needs_a_healthy_majority_without_it,
    majority
);

async fn majority(backend: Backend) {
    let (server, dir) = service(backend).await;
    let names = ["control-plane-1", "control-plane-2", "control-plane-3"];
    let fleet = Fleet::new(&server, &names, 181).await;
    let node = &fleet.nodes["control-plane-1"].1;
    let stop = bootstrap_worker(&server, &dir, &fleet, "majority-test");
    let forced = async || {
        let job = server
            .expect(
                Method::POST,
                &format!("/api/v1/servers/{node}/bootstrap"),
                Some(json!({"force": true})),
                202,
            )
            .await;
        let id = job["id"].as_str().unwrap().to_owned();
        let job = finished(&server, &id).await;
        (job, log(server.store(), &id).await)
    };

    // control-plane-3 does not answer: without control-plane-1, one of two would be healthy.
    fleet.talos.set_faults(
        fleet.address("control-plane-3"),
        talos_manager_fake_talos::Faults {
            unavailable_until: Some(std::time::Instant::now() + Duration::from_secs(600)),
            ..Default::default()
        },
    );
    let (job, lines) = forced().await;
    let error = job["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("even with force") && error.contains("etcd would lose quorum"),
        "{error}\n{}",
        lines.join("\n")
    );
    assert!(server.server_json(node).await["last_configured_at"].is_string());

    // All three answer: etcd keeps a majority without it, so force erases it (here the job
    // then fails at the fake provider, which knows no such server).
    fleet
        .talos
        .set_faults(fleet.address("control-plane-3"), Default::default());
    let (job, lines) = forced().await;
    assert_eq!(job["status"], "failed");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("etcd keeps a healthy majority without control-plane-1")),
        "{}",
        lines.join("\n")
    );
    assert!(
        !job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{job}"
    );
    // Handed to a bootstrap: no longer a live node, a retry needs no force.
    assert!(server.server_json(node).await["last_configured_at"].is_null());
    server
        .expect(
            Method::POST,
            &format!("/api/v1/servers/{node}/bootstrap"),
            Some(json!({})),
            202,
        )
        .await;
    stop.send_replace(true);
}
