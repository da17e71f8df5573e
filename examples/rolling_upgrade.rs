//! A rolling Talos upgrade of a five-node cluster, then a reset of one worker, driven from Rust
//! through talos-manager-core's `lifecycle` and the gRPC Talos API client, against the fake
//! Talos API server (one node per loopback address, mutual TLS from the cluster's secrets
//! bundle) and the fake Kubernetes API. The job log is printed as it is written.
//!
//! Run: `cargo run -p talos-manager-examples --example rolling_upgrade`

use anyhow::Context as _;
use std::net::Ipv4Addr;
use std::time::Duration;
use talos_manager_core::kubernetes::{ClientTimeouts, DrainOptions};
use talos_manager_core::lifecycle::{
    LifecycleContext, LifecycleTiming, MemoryCheckpoint, ResetProfile, RollingAction,
    RollingTarget, plan_rolling, reset_server, run_rolling,
};
use talos_manager_core::progress::ProgressLog;
use talos_manager_core::store::{EncryptionKey, Store};
use talos_manager_core::sync::ProviderFactory;
use talos_manager_core::testing::fleet::{FleetBuilder, pem, secrets_bundle};
use talos_manager_fake_kubernetes::FakeKubernetes;
use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};

const NODES: &[&str] = &[
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
    "worker-2",
];

/// Prints each line of the run, as a job's log would show it.
struct Print;

#[async_trait::async_trait]
impl ProgressLog for Print {
    async fn line(&self, line: String) {
        eprintln!("  {line}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let store = Store::connect(&url, &EncryptionKey::generate()).await?;
    store.migrate().await?;

    // A cluster whose Kubernetes API and nodes are the fakes, each trusting the bundle's CAs:
    // five configured servers at 127.0.0.71 to .75 (the fleet of core's `testing`), each a
    // node of the Talos fake running v1.10.4. Upgrades install the Image Factory installer of
    // each server's schematic (the settings' default).
    let bundle = secrets_bundle().await;
    let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key)).await?;
    let talos = FakeTalosCluster::start(&pem(&bundle.os.crt), &pem(&bundle.os.key), None).await?;
    talos.set_downtime(Duration::from_millis(200));
    let fleet = FleetBuilder::new(NODES, kubernetes.url(), &bundle)
        .cluster_name("example")
        .new_servers(Ipv4Addr::new(127, 0, 0, 71), 1, Some("example"))
        .private_ip(|index, name| {
            let subnet = u8::from(!name.starts_with("control-plane"));
            format!("10.0.{subnet}.{}", index + 1)
        })
        .record_config_request(false)
        .build(&store)
        .await?;
    for server in &fleet.servers {
        let spec = if server.control_plane {
            NodeSpec::control_plane(server.address, &server.name)
        } else {
            NodeSpec::worker(server.address, &server.name)
        };
        talos.add_node(spec.version("v1.10.4"))?;
        kubernetes.add_node(&server.name, serde_json::json!({}), serde_json::json!([]));
    }
    let worker = fleet.server("worker-2").id;

    let connector = talos_manager_talos_api::GrpcTalosConnector::new();
    let providers = ProviderFactory::new("http://127.0.0.1:9", "http://127.0.0.1:9");
    let never = || false;
    let context = LifecycleContext {
        store: &store,
        talos: &connector,
        talos_port: talos.port(),
        providers: &providers,
        ssh_private_key: None,
        kubernetes: ClientTimeouts::default(),
        timing: LifecycleTiming {
            poll_interval: Duration::from_millis(100),
            node_down: Duration::from_secs(30),
            node_back: Duration::from_secs(30),
            drain: DrainOptions {
                timeout: Duration::from_secs(30),
                retry_interval: Duration::from_millis(200),
            },
            wipe_grace: Duration::ZERO,
            etcd_rejoin: Duration::from_secs(30),
        },
        log: &Print,
        is_cancelled: &never,
    };

    let plan = plan_rolling(
        &store,
        &RollingTarget::Cluster(fleet.cluster),
        &RollingAction::Upgrade {
            talos_version: "v1.11.3".into(),
        },
        "https://factory.talos.dev",
    )
    .await?;
    eprintln!("{plan}");
    let report = run_rolling(&context, &plan, &MemoryCheckpoint::default()).await?;
    eprintln!("{}", report.summary());
    anyhow::ensure!(report.succeeded(), "the upgrade failed");
    for (i, _) in NODES.iter().enumerate() {
        let node = talos
            .node(Ipv4Addr::new(127, 0, 0, 71 + i as u8))
            .context("a fake node")?;
        anyhow::ensure!(node.version == "v1.11.3", "a node kept {}", node.version);
    }

    eprintln!("resetting worker-2 to maintenance mode:");
    let outcome = reset_server(&context, worker, ResetProfile::Maintenance, false).await?;
    eprintln!(
        "{} was reset (graceful: {}); it has no machine config any more: {}",
        outcome.node,
        outcome.graceful,
        store.machine_config_for_server(worker).await?.is_none()
    );
    store.close().await;
    Ok(())
}
