//! A cluster's health (`cluster_health::cluster_health`) against the in-memory Talos fake and
//! the fake Kubernetes API over mutual TLS, on both backends.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use talos_manager_core::Store;
use talos_manager_core::cluster_health::{
    ClusterHealth, HealthProbe, HealthStatus, cluster_health,
};
use talos_manager_core::ids::ClusterId;
use talos_manager_core::kubernetes::ClientTimeouts;
use talos_manager_core::talos::SecretsBundle;
use talos_manager_core::testing::fake_talos::FakeTalos;
use talos_manager_core::testing::fleet::{FleetBuilder, StoredFleet, pem, secrets_bundle};
use talos_manager_fake_kubernetes::FakeKubernetes;

const PORT: u16 = 50000;

struct Setup {
    talos: FakeTalos,
    kubernetes: FakeKubernetes,
    fleet: StoredFleet,
    bundle: SecretsBundle,
}

impl Setup {
    /// `names` configured in cluster `prod` (names with `control-plane` are control planes),
    /// running Talos v1.11.3; the ones in `kube_nodes` are Kubernetes nodes.
    async fn new(store: &Store, names: &[&str], kube_nodes: &[&str], bootstrapped: bool) -> Setup {
        let bundle = secrets_bundle().await;
        let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
            .await
            .unwrap();
        let fleet = FleetBuilder::new(names, kubernetes.url(), &bundle)
            .new_servers(Ipv4Addr::new(127, 0, 0, 2), 1, None)
            .bootstrapped(bootstrapped)
            .build(store)
            .await
            .unwrap();
        let talos = FakeTalos::new();
        for server in &fleet.servers {
            let address = SocketAddr::new(server.address.into(), PORT);
            if bootstrapped || !server.control_plane {
                talos.add_node(address, &server.name, server.control_plane, "v1.11.3");
            } else {
                talos.add_unbootstrapped_node(address, &server.name, "v1.11.3");
            }
        }
        for name in kube_nodes {
            kubernetes.add_node(name, serde_json::json!({}), serde_json::json!([]));
        }
        Setup {
            talos,
            kubernetes,
            fleet,
            bundle,
        }
    }

    fn address(&self, name: &str) -> SocketAddr {
        SocketAddr::new(self.fleet.server(name).address.into(), PORT)
    }

    async fn health(&self, store: &Store) -> ClusterHealth {
        check(store, &self.talos, self.fleet.cluster).await
    }
}

async fn check(store: &Store, talos: &FakeTalos, cluster: ClusterId) -> ClusterHealth {
    let probe = HealthProbe {
        store,
        talos,
        talos_port: PORT,
        kubernetes: ClientTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        },
        call_timeout: Duration::from_secs(2),
    };
    cluster_health(&probe, cluster, time::OffsetDateTime::now_utc())
        .await
        .unwrap()
}

const THREE: [&str; 4] = [
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
];

/// The `notAfter` of a certificate in Talos's base64-of-PEM, read here on its own.
fn not_after(b64: &str) -> time::OffsetDateTime {
    let text = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let block = pem::parse(text).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).unwrap();
    time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).unwrap()
}

store_test!(a_running_cluster_is_healthy, |store| {
    let setup = Setup::new(store, &THREE, &THREE, true).await;
    let health = setup.health(store).await;
    assert_eq!(
        health.status,
        HealthStatus::Healthy,
        "{:#?}",
        health.reasons
    );
    assert!(health.reasons.is_empty());
    assert_eq!(health.etcd.members.len(), 3);
    assert_eq!(health.etcd.healthy_members(), 3);
    assert_eq!(health.etcd.leader.as_deref(), Some("control-plane-1"));
    assert!(health.kubernetes.reachable);
    assert_eq!(health.kubernetes.version.as_deref(), Some("v1.33.1"));
    assert_eq!(health.nodes_ready(), (4, 4));
    for node in &health.nodes {
        assert_eq!(node.talos_version.as_deref(), Some("v1.11.3"), "{node:?}");
        assert_eq!(node.kubelet_version.as_deref(), Some("v1.33.1"), "{node:?}");
    }
    assert!(health.missing.is_empty());

    // The expiry dates are the certificates' own.
    let expiry = |name: &str| {
        health
            .certificates
            .iter()
            .find(|cert| cert.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .not_after
    };
    assert_eq!(expiry("os_ca"), not_after(&setup.bundle.os.crt));
    assert_eq!(expiry("kubernetes_ca"), not_after(&setup.bundle.k8s.crt));
    assert_eq!(expiry("etcd_ca"), not_after(&setup.bundle.etcd.crt));
    assert_eq!(
        expiry("aggregator_ca"),
        not_after(&setup.bundle.k8s_aggregator.crt)
    );
    let year = health.checked_at + time::Duration::hours(8_760);
    assert_eq!(expiry("talosconfig_client"), year);
    assert_eq!(expiry("kubeconfig_client"), year);
    assert_eq!(health.earliest_expiry(), Some(year));

    // The running Kubernetes version is learned on the way.
    let cluster = store.get_cluster(setup.fleet.cluster).await.unwrap();
    assert_eq!(
        cluster.running_kubernetes_version.as_deref(),
        Some("1.33.1")
    );
});

store_test!(a_control_plane_down_makes_the_cluster_degraded, |store| {
    let setup = Setup::new(store, &THREE, &THREE, true).await;
    setup
        .talos
        .set_reachable(setup.address("control-plane-2"), false);
    setup.kubernetes.set_ready("control-plane-2", false);
    let started = std::time::Instant::now();
    let health = setup.health(store).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(health.status, HealthStatus::Degraded);
    let reasons = health.reasons.join("\n");
    for expected in [
        "control-plane-2: its Talos API does not answer",
        "etcd member control-plane-2 is not healthy: its etcd does not answer",
        "node control-plane-2 is not Ready",
    ] {
        assert!(reasons.contains(expected), "{expected:?} not in\n{reasons}");
    }
    assert!(!reasons.contains("control-plane-1"), "{reasons}");
    assert!(!reasons.contains("quorum"), "{reasons}");
    assert_eq!(health.etcd.healthy_members(), 2);
    assert_eq!(health.etcd.leader.as_deref(), Some("control-plane-1"));
    assert_eq!(health.nodes_ready(), (3, 4));
    let down = health
        .nodes
        .iter()
        .find(|node| node.name == "control-plane-2")
        .unwrap();
    assert_eq!(down.talos_reachable, Some(false));
    assert_eq!(down.talos_version, None);
});

store_test!(a_cluster_never_bootstrapped_says_so, |store| {
    let setup = Setup::new(store, &THREE, &[], false).await;
    let health = setup.health(store).await;
    assert_eq!(health.status, HealthStatus::NotBootstrapped);
    assert_eq!(
        health.reasons,
        ["cluster prod was never bootstrapped: etcd and Kubernetes do not run yet"]
    );
    assert!(health.etcd.members.is_empty());
    assert_eq!(health.certificates.len(), 6);
});

store_test!(configured_servers_that_are_no_nodes_are_missing, |store| {
    let names = [
        "control-plane-1",
        "control-plane-2",
        "control-plane-3",
        "worker-1",
        "worker-2",
    ];
    let setup = Setup::new(store, &names, &names[..4], true).await;
    let health = setup.health(store).await;
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(health.reasons, ["worker-2 is not a Kubernetes node"]);
    assert_eq!(health.missing.len(), 1);
    assert_eq!(health.missing[0].server, "worker-2");
    assert_eq!(health.missing[0].missing_from, "kubernetes");
});

store_test!(nothing_answering_is_unreachable, |store| {
    let setup = Setup::new(store, &THREE, &THREE, true).await;
    for name in THREE {
        setup.talos.set_reachable(setup.address(name), false);
    }
    let kubernetes_url = setup.kubernetes.url().to_owned();
    drop(setup.kubernetes);
    let health = check(store, &setup.talos, setup.fleet.cluster).await;
    assert_eq!(health.status, HealthStatus::Unreachable, "{kubernetes_url}");
    assert!(!health.kubernetes.reachable);
    assert!(
        health
            .reasons
            .iter()
            .any(|reason| reason == "no node's Talos API answers"),
        "{:?}",
        health.reasons
    );
});

store_test!(targets_outside_loopback_are_not_asked_under_test, |store| {
    // The dial guard is on in test builds: the check reports the targets as not answering
    // instead of aborting the test process.
    let bundle = secrets_bundle().await;
    let fleet = FleetBuilder::new(&THREE, "https://prod.example.com:6443", &bundle)
        .new_servers(Ipv4Addr::new(192, 0, 2, 10), 1, None)
        .build(store)
        .await
        .unwrap();
    let health = check(store, &FakeTalos::new(), fleet.cluster).await;
    assert_eq!(health.status, HealthStatus::Unreachable);
    assert!(
        health
            .kubernetes
            .error
            .as_deref()
            .is_some_and(|error| error.contains("not a loopback address")),
        "{:?}",
        health.kubernetes
    );
    assert!(
        health.nodes[0]
            .talos_error
            .as_deref()
            .is_some_and(|error| error.contains("not a loopback address")),
        "{:?}",
        health.nodes[0]
    );
});
