//! The service's work without the service: a Rust program that embeds `talos-manager-core`
//! alone syncs a Hetzner Robot account, bootstraps a server onto a disk through its rescue
//! system, and answers the server's `/config`, with core's job queue and worker.
//!
//! What stands in for the outside world, all on 127.0.0.1: the fake Hetzner Robot API
//! (`talos-manager-fake-hetzner`); the rescue system, Debian's sshd with stub `hostname`,
//! `dmidecode`, `lsblk` and `reboot`, whose disk is a loop device; and an HTTP server playing the
//! Image Factory (`talos-manager-rescue-host`). It needs what the rescue host's tests need
//! (`sshd`, `ssh-keygen`, `losetup` and root for the loop device, `zstd`, `sgdisk`).
//!
//! Run: `cargo run -p talos-manager-examples --example embed_service`

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use talos_manager_core::bootstrap::BootstrapEnvironment;
use talos_manager_core::ids::ServerId;
use talos_manager_core::jobs::{
    BootstrapJob, BootstrapSettings, JobKind, JobQueue, SyncJob, Worker,
};
use talos_manager_core::node_config::{
    ConfigAnswer, ConfigRequestParts, ConfigService, TrustedProxies,
};
use talos_manager_core::provider::ProviderFactory;
use talos_manager_core::store::{
    ClusterFields, ConfigFields, DEFAULT_KUBERNETES_VERSION, DEFAULT_TALOS_VERSION, EncryptionKey,
    JobStatus, MachineConfigFields, NewJob, SchematicFields,
};
use talos_manager_core::sync::SshProber;
use talos_manager_core::{ProviderKind, RetryPolicy, Secret, Store, clusters};
use talos_manager_fake_hetzner::{FakeRobot, RobotServer};
use talos_manager_rescue_host::{HttpServer, KeyPair, LoopDisk, Sshd, TestImage};

/// The Robot server number of the server bootstrapped.
const NUMBER: u64 = 321;
/// The Image Factory schematic the image is served under.
const SCHEMATIC: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;

    // The outside world: Hetzner Robot, the server's rescue system and its disk, the image.
    let robot = FakeRobot::start_empty().await?;
    robot.add_server(RobotServer {
        ip: Some("127.0.0.1".into()),
        ..RobotServer::new(NUMBER, "worker-1")
    });
    let key = KeyPair::generate(dir.path(), "talos-manager", "-t ed25519");
    let rescue = Sshd::start(&[&key]);
    let disk = LoopDisk::new(32 << 20);
    rescue.stubs.set_lsblk(&disk.lsblk_json());
    let factory = HttpServer::start();
    factory.put(
        &format!("/image/{SCHEMATIC}/{DEFAULT_TALOS_VERSION}/metal-amd64.raw.zst"),
        TestImage::build(16).zst,
    );

    // The store, the account and the bootstrap defaults.
    let url = format!("sqlite://{}", dir.path().join("talos-manager.db").display());
    let store = Store::connect(&url, &EncryptionKey::generate()).await?;
    store.migrate().await?;
    store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            FakeRobot::USER,
            &Secret::new(FakeRobot::PASSWORD.into()),
        )
        .await?;
    let schematic = store
        .create_schematic(&SchematicFields {
            name: "default".into(),
            body: "customization: {}\n".into(),
            factory_id: Some(SCHEMATIC.into()),
        })
        .await?;
    store
        .update_settings(DEFAULT_TALOS_VERSION, Some(schematic.id))
        .await?;

    // Core's job worker, with the sync (and its SSH probe) and the bootstrap.
    let providers = ProviderFactory::new(robot.url(), "http://127.0.0.1:9")
        .with_retry_policy(RetryPolicy::for_fakes());
    let settings = BootstrapSettings {
        ssh_private_key: Some(key.private.clone()),
        rescue_ssh_port: rescue.port,
        rescue_timeout: Duration::from_secs(30),
        rescue_poll: Duration::from_millis(200),
        environment: BootstrapEnvironment {
            host: Some("talos-manager.example.com".into()),
            image_factory_url: factory.base_url.clone(),
            amd64_image_url: None,
            arm64_image_url: None,
        },
    };
    let queue = JobQueue::new(store.clone());
    let worker = Worker::new(queue.clone(), Worker::unique_id()?)
        .register(
            SyncJob::new(providers.clone())
                .with_prober(Arc::new(SshProber::new(key.private.clone(), rescue.port)?)),
        )
        .register(BootstrapJob::new(providers, settings));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));

    // Sync: the server appears, probed in its rescue system (SMBIOS UUID, disks).
    run(&store, &queue, JobKind::Sync, None).await?;
    let server = store
        .list_servers()
        .await?
        .into_iter()
        .find(|server| server.inventory.provider_id == NUMBER.to_string())
        .context("the sync did not add the server")?;
    let uuid = server.uuid.clone().context("the probe recorded no UUID")?;

    // Bootstrap: the image written to the loop device, the server rebooted.
    run(&store, &queue, JobKind::Bootstrap, Some(server.id)).await?;
    stop.send_replace(true);
    worker.await?;

    // The cluster, the config template and the server's machine config, then what `/config`
    // answers the node when it boots and asks with its UUID.
    let bundle = tokio::task::spawn_blocking(|| clusters::cluster_secrets(None)).await??;
    let cluster = store
        .create_cluster(
            &ClusterFields {
                name: "example".into(),
                endpoint: "https://example.internal:6443".into(),
                vswitch_id: None,
            },
            &bundle,
        )
        .await?;
    let config = store
        .create_config(&ConfigFields {
            name: "workers".into(),
            install_image: format!("ghcr.io/siderolabs/installer:{DEFAULT_TALOS_VERSION}"),
            kubernetes_version: DEFAULT_KUBERNETES_VERSION.into(),
            kubespan: false,
            patch: String::new(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        })
        .await?;
    store
        .update_server_assignment(server.id, "worker-1", Some(cluster.id), None, None)
        .await?;
    store
        .put_machine_config(
            server.id,
            &MachineConfigFields {
                config_id: config.id,
                hostname: "worker-1".into(),
                private_ip: "10.0.1.1".into(),
                install_disk: disk.path().to_owned(),
                ephemeral_disk_identifier: None,
            },
        )
        .await?;
    // `/config` as the service answers it: the request's query and source address in, one
    // answer out (the queue is told the node was served, to queue its label job).
    let address: std::net::IpAddr = server
        .inventory
        .ipv4
        .as_deref()
        .context("the server has no IPv4 address")?
        .parse()?;
    let serving = ConfigService::new(true);
    let query = format!("uuid={uuid}");
    let answer = serving
        .answer(
            &store,
            ConfigRequestParts {
                query: &query,
                peer: Some(address),
                forwarded_for: &[],
                trusted_proxies: &TrustedProxies::default(),
            },
            &queue,
        )
        .await?;
    let ConfigAnswer::Config(config) = answer else {
        bail!("/config did not serve the node its config: {answer:?}");
    };
    eprintln!(
        "GET /config?uuid={uuid} from {address} ({}, Talos {}):",
        config.machine_type.as_str(),
        config.talos_version
    );
    // The answer itself on standard output (it holds the cluster's keys, as `/config`'s does).
    std::io::stdout().write_all(config.yaml.expose().as_bytes())?;
    store.close().await;
    Ok(())
}

/// Queues a job of `kind`, prints its log lines as they come, and fails unless it succeeds.
async fn run(
    store: &Store,
    queue: &JobQueue,
    kind: JobKind,
    server_id: Option<ServerId>,
) -> anyhow::Result<()> {
    let job = queue
        .enqueue(&NewJob {
            kind: kind.to_string(),
            server_id,
            args: serde_json::json!({}),
        })
        .await?;
    eprintln!("job {} ({kind}) queued", job.id);
    let mut last = None;
    loop {
        let status = store.get_job(job.id).await?.status;
        for line in store.job_log(job.id, last).await? {
            eprintln!("[{kind}] {}", line.line);
            last = Some(line.id);
        }
        match status {
            JobStatus::Queued | JobStatus::Running => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            JobStatus::Succeeded => return Ok(()),
            other => bail!("job {} ({kind}) ended {}", job.id, other.as_str()),
        }
    }
}
