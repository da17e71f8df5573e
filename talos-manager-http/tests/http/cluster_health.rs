//! `GET /clusters/{id}/health` and the health gauges of `/metrics`, over the gRPC client
//! against the fake Talos API (three control planes and a worker) and the fake Kubernetes API.

use super::server::TestServer;
use reqwest::Method;
use serde_json::json;
use std::net::Ipv4Addr;
use std::sync::Arc;
use talos_manager_core::Backend;
use talos_manager_core::jobs::TalosSettings;
use talos_manager_core::testing::fleet::{FleetBuilder, StoredFleet, pem, secrets_bundle};
use talos_manager_fake_kubernetes::FakeKubernetes;
use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};

const NAMES: [&str; 4] = [
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
];

pub(crate) struct Setup {
    pub(crate) server: TestServer,
    pub(crate) talos: FakeTalosCluster,
    pub(crate) kubernetes: FakeKubernetes,
    pub(crate) fleet: StoredFleet,
    /// A node's address that accepts connections and never answers.
    _black_hole: Option<std::net::TcpListener>,
}

/// The service reaching the fake Talos API's port; cluster `prod` of [`NAMES`] from
/// `127.0.0.<first_octet>` on, all running, Ready, etcd members (control planes).
pub(crate) async fn setup(backend: Backend, first_octet: u8, bootstrapped: bool) -> Setup {
    setup_hanging(backend, first_octet, bootstrapped, None).await
}

/// As [`setup`], but the node `hanging` is no fake Talos node: its address accepts
/// connections on the Talos port and never answers.
async fn setup_hanging(
    backend: Backend,
    first_octet: u8,
    bootstrapped: bool,
    hanging: Option<&str>,
) -> Setup {
    let bundle = secrets_bundle().await;
    let talos = FakeTalosCluster::start(&pem(&bundle.os.crt), &pem(&bundle.os.key), None)
        .await
        .unwrap();
    if !bootstrapped {
        talos.require_bootstrap();
    }
    let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
        .await
        .unwrap();
    let server = TestServer::start_with_talos(
        backend,
        TalosSettings {
            connector: Arc::new(talos_manager_talos_api::GrpcTalosConnector::new()),
            port: talos.port(),
        },
    )
    .await;
    let fleet = FleetBuilder::new(&NAMES, kubernetes.url(), &bundle)
        .new_servers(Ipv4Addr::new(127, 0, 0, first_octet), 400, None)
        .bootstrapped(bootstrapped)
        .build(server.store())
        .await
        .unwrap();
    let mut black_hole = None;
    for node in &fleet.servers {
        if Some(node.name.as_str()) == hanging {
            black_hole = Some(std::net::TcpListener::bind((node.address, talos.port())).unwrap());
            kubernetes.add_node(&node.name, json!({}), json!([]));
            continue;
        }
        let spec = if node.control_plane {
            NodeSpec::control_plane(node.address, &node.name)
        } else {
            NodeSpec::worker(node.address, &node.name)
        };
        talos.add_node(spec).unwrap();
        if bootstrapped {
            kubernetes.add_node(&node.name, json!({}), json!([]));
        }
    }
    Setup {
        server,
        talos,
        kubernetes,
        fleet,
        _black_hole: black_hole,
    }
}

async fn health(setup: &Setup) -> serde_json::Value {
    setup
        .server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{}/health", setup.fleet.cluster),
            None,
            200,
        )
        .await
}

async fn one_control_plane_down(backend: Backend, first_octet: u8) {
    let setup = setup(backend, first_octet, true).await;
    let body = health(&setup).await;
    assert_eq!(body["status"], "healthy", "{body:#}");
    assert_eq!(body["reasons"], json!([]));
    assert_eq!(body["etcd_members_healthy"], 3);
    assert_eq!(body["etcd_leader"], "control-plane-1");
    assert_eq!(body["nodes_ready"], 4);
    assert_eq!(body["nodes_total"], 4);
    assert_eq!(body["kubernetes_version"], "v1.33.1");
    assert_eq!(body["nodes"][0]["talos_version"], "v1.12.0", "{body:#}");
    assert_eq!(body["nodes"][0]["kubelet_version"], "v1.33.1");
    assert_eq!(body["nodes"][0]["machine_type"], "controlplane");
    assert_eq!(body["nodes"][0]["server_id"], "robot-400");
    assert_eq!(body["certificates"].as_array().unwrap().len(), 6);
    assert!(body["earliest_expiry"].is_string(), "{body:#}");
    assert!(!body.to_string().contains("PRIVATE KEY"));

    // The health gauges show the last check.
    let metrics = setup
        .server
        .client
        .get(setup.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "talos_manager_cluster_healthy{cluster=\"prod\"} 1",
        "talos_manager_cluster_etcd_members_healthy{cluster=\"prod\"} 3",
        "talos_manager_cluster_nodes_ready{cluster=\"prod\"} 4",
        "talos_manager_cluster_nodes{cluster=\"prod\"} 4",
    ] {
        assert!(metrics.contains(line), "{line:?} not in\n{metrics}");
    }
    let expiry: i64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("talos_manager_cluster_certificate_expiry_seconds{cluster=\"prod\"} ")
        })
        .unwrap_or_else(|| panic!("no expiry gauge in\n{metrics}"))
        .parse()
        .unwrap();
    // The earliest: a client certificate issued now, valid a year.
    assert!((364 * 86_400..=365 * 86_400).contains(&expiry), "{expiry}");

    // One control plane goes down.
    let down = setup.fleet.server("control-plane-2").address;
    setup.talos.take_down(down);
    setup.kubernetes.set_ready("control-plane-2", false);
    let body = health(&setup).await;
    assert_eq!(body["status"], "degraded", "{body:#}");
    let reasons: Vec<String> = body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason.as_str().unwrap().to_owned())
        .collect();
    let text = reasons.join("\n");
    for part in [
        "control-plane-2: its Talos API does not answer",
        "etcd member control-plane-2 is not healthy",
        "node control-plane-2 is not Ready",
    ] {
        assert!(text.contains(part), "{part:?} not in\n{text}");
    }
    assert_eq!(body["etcd_members_healthy"], 2);
    assert_eq!(body["etcd_leader"], "control-plane-1");
    assert_eq!(body["nodes_ready"], 3);
    assert_eq!(body["nodes"][1]["name"], "control-plane-2");
    assert_eq!(body["nodes"][1]["talos_reachable"], false);
    assert_eq!(body["nodes"][1]["ready"], false);
    let metrics = setup
        .server
        .client
        .get(setup.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("talos_manager_cluster_healthy{cluster=\"prod\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_control_plane_down_is_degraded_sqlite() {
    one_control_plane_down(Backend::Sqlite, 141).await;
}

#[tokio::test]
async fn one_control_plane_down_is_degraded_postgres() {
    one_control_plane_down(Backend::Postgres, 145).await;
}

#[tokio::test]
async fn a_cluster_never_bootstrapped_says_so() {
    let setup = setup(Backend::Sqlite, 115, false).await;
    let body = health(&setup).await;
    assert_eq!(body["status"], "not_bootstrapped", "{body:#}");
    assert_eq!(
        body["reasons"],
        json!(["cluster prod was never bootstrapped: etcd and Kubernetes do not run yet"])
    );
    // An unknown cluster is 404.
    setup
        .server
        .expect(Method::GET, "/api/v1/clusters/999/health", None, 404)
        .await;
}

#[tokio::test]
async fn a_node_that_never_answers_is_shown_within_the_timeout() {
    let setup = setup_hanging(Backend::Sqlite, 111, true, Some("worker-1")).await;
    let started = std::time::Instant::now();
    let body = health(&setup).await;
    let took = started.elapsed();
    // The test service's questions time out after 2 s; all are asked at once.
    assert!(took < std::time::Duration::from_secs(6), "{took:?}");
    assert_eq!(body["status"], "degraded", "{body:#}");
    let worker = &body["nodes"][3];
    assert_eq!(worker["name"], "worker-1");
    assert_eq!(worker["talos_reachable"], false);
    assert_eq!(worker["talos_error"], "no answer within 2 s", "{body:#}");
    assert_eq!(body["etcd_members_healthy"], 3);
    eprintln!("health check with one node never answering: {took:?}");
}
