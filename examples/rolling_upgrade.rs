//! A rolling Talos upgrade of a five-node cluster, then a reset of one worker, driven from Rust
//! through talos-manager-core's `lifecycle` and the gRPC Talos API client, against the fake
//! Talos API server (one node per loopback address, mutual TLS from the cluster's secrets
//! bundle) and the fake Kubernetes API. The job log is printed as it is written.
//!
//! Run: `cargo run -p talos-manager-examples --example rolling_upgrade`

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use talos_manager_core::Architecture;
use talos_manager_core::ProviderKind;
use talos_manager_core::Secret;
use talos_manager_core::kubernetes::{ClientTimeouts, DrainOptions};
use talos_manager_core::lifecycle::{
    LifecycleContext, LifecycleTiming, MemoryCheckpoint, ResetProfile, RollingAction,
    RollingTarget, plan_rolling, reset_server, run_rolling,
};
use talos_manager_core::progress::ProgressLog;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::store::{
    ClusterFields, ConfigFields, EncryptionKey, MachineConfigFields, SchematicFields,
    ServerInventory, Store,
};
use talos_manager_core::sync::ProviderFactory;
use talos_manager_core::talos::SecretsBundle;
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

fn pem(b64: &str) -> anyhow::Result<String> {
    Ok(String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(b64)?,
    )?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("example.db").display());
    let store = Store::connect(&url, &EncryptionKey::generate()).await?;
    store.migrate().await?;

    // A cluster whose Kubernetes API and nodes are the fakes, each trusting the bundle's CAs.
    let bundle = SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)?;
    let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt)?, &pem(&bundle.k8s.key)?).await?;
    let talos = FakeTalosCluster::start(&pem(&bundle.os.crt)?, &pem(&bundle.os.key)?, None).await?;
    talos.set_downtime(Duration::from_millis(200));
    let cluster = store
        .create_cluster(
            &ClusterFields {
                name: "example".into(),
                endpoint: kubernetes.url().to_owned(),
                vswitch_id: None,
            },
            &Secret::new(bundle.to_yaml()),
        )
        .await?;
    let config = store
        .create_config(&ConfigFields {
            name: "default".into(),
            install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
            kubernetes_version: "1.33.1".into(),
            kubespan: false,
            patch: String::new(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        })
        .await?;
    // Upgrades install the Image Factory installer of each server's schematic.
    let schematic = store
        .create_schematic(&SchematicFields {
            name: "default".into(),
            body: "customization: {}\n".into(),
            factory_id: Some(
                "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
            ),
        })
        .await?;
    store.update_settings("v1.10.4", Some(schematic.id)).await?;
    let account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "example",
            &Secret::new("unused".into()),
        )
        .await?;
    let mut worker = None;
    for (i, name) in NODES.iter().enumerate() {
        let address = Ipv4Addr::new(127, 0, 0, 71 + i as u8);
        let (server, _) = store
            .upsert_server(
                account.id,
                &ServerInventory {
                    provider: ProviderKind::HetznerRobot,
                    provider_id: (i + 1).to_string(),
                    name: (*name).into(),
                    ipv4: Some(address.to_string()),
                    ipv6: None,
                    product: "AX41".into(),
                    data_center: "FSN1-DC1".into(),
                    status: "ready".into(),
                    cancelled: false,
                    architecture: Architecture::Amd64,
                    vswitch_id: None,
                },
            )
            .await?;
        store
            .update_server_assignment(server.id, name, Some(cluster.id), None, None)
            .await?;
        let control_plane = name.starts_with("control-plane");
        store
            .put_machine_config(
                server.id,
                &MachineConfigFields {
                    config_id: config.id,
                    hostname: (*name).into(),
                    private_ip: format!("10.0.{}.{}", u8::from(!control_plane), i + 1),
                    install_disk: "/dev/nvme0n1".into(),
                    ephemeral_disk_identifier: None,
                },
            )
            .await?;
        let spec = if control_plane {
            NodeSpec::control_plane(address, name)
        } else {
            worker = Some(server.id);
            NodeSpec::worker(address, name)
        };
        talos.add_node(spec.version("v1.10.4"))?;
        kubernetes.add_node(name, serde_json::json!({}), serde_json::json!([]));
    }

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
        &RollingTarget::Cluster(cluster.id),
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
    let worker = worker.context("a worker")?;
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
