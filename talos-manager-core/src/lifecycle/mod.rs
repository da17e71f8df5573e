//! Lifecycle of running Talos nodes: resets and rolling upgrades and reboots, driven through
//! the Talos machine API ([`crate::talos_api`]) and the cluster's Kubernetes API
//! ([`crate::kubernetes`]).
//!
//! # Map
//! - `etcd.rs`: the pure quorum rule ([`check_departure`]): may a control plane leave etcd?
//! - `bootstrap_guard.rs`: may a bootstrap erase a server (live nodes need `force`; a forced
//!   control plane still needs etcd's quorum rule)?
//! - `cluster_bootstrap.rs`: [`bootstrap_cluster`]: etcd's Bootstrap on the first control plane,
//!   at most once per cluster (claimed in the store, never on a cluster whose etcd runs).
//! - `reset.rs`: [`reset_server`], the three [`ResetProfile`]s, refusals that protect etcd.
//! - `rolling.rs`: [`plan_rolling`] (which nodes, in which order, with which installer) and
//!   [`run_rolling`] (forfeit, drain, upgrade or reboot, wait, uncordon; node after node).
//! - `checkpoint.rs`: where a rolling run records how far each node has come, so that a run
//!   started again after a crash continues ([`JobCheckpoint`] stores it on the job row).
//! - `wait.rs`: the bounded polls (node down, node back at a version and ready).
//!
//! # Calling it
//! Everything takes a [`LifecycleContext`]: the store, the Talos API connector, where nodes
//! listen, the provider factory (a reset to rescue), Kubernetes client timeouts, how long to
//! wait, a [`ProgressLog`] that receives one readable line per step (a job's log) and a
//! cancellation check.
//!
//! ```no_run
//! # async fn demo(ctx: &talos_manager_core::lifecycle::LifecycleContext<'_>,
//! #     server: talos_manager_core::ids::ServerId,
//! #     job: talos_manager_core::ids::JobId) -> Result<(), Box<dyn std::error::Error>> {
//! use talos_manager_core::lifecycle::{
//!     JobCheckpoint, ResetProfile, RollingAction, RollingTarget, plan_rolling, reset_server,
//!     run_rolling,
//! };
//! reset_server(ctx, server, ResetProfile::Maintenance, false).await?;
//! let plan = plan_rolling(
//!     ctx.store,
//!     &RollingTarget::Server(server),
//!     &RollingAction::Upgrade { talos_version: "v1.11.3".into() },
//!     "https://factory.talos.dev",
//! )
//! .await?;
//! let report = run_rolling(ctx, &plan, &JobCheckpoint::new(ctx.store.clone(), job)).await?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - Nodes are reached at `SocketAddr::new(server.ipv4, talos_port)` with an `os:admin` client
//!   certificate issued per run from the cluster's secrets bundle; the Kubernetes API with an
//!   admin certificate likewise. Nothing secret is logged.
//! - A reset that would leave etcd without a healthy majority, or remove its last member, is
//!   refused unless forced. A rolling run touches one node at a time, control planes first.

mod bootstrap_guard;
mod checkpoint;
mod cluster_bootstrap;
mod etcd;
mod quorum;
mod reset;
mod rolling;
mod wait;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use bootstrap_guard::{
    BootstrapClearance, BootstrapRefusal, LiveNode, Precheck, check_bootstrap, live_node,
    precheck_bootstrap,
};
pub use checkpoint::{Checkpoint, CheckpointError, JobCheckpoint, MemoryCheckpoint};
pub use cluster_bootstrap::{ClusterBootstrapError, ClusterBootstrapOutcome, bootstrap_cluster};
pub use etcd::{Departure, MemberRemoval, QuorumRefusal, check_departure, check_member_removal};
pub use reset::{ResetError, ResetOutcome, ResetProfile, reset_request, reset_server};
pub use rolling::{
    NodeOutcome, NodeReport, PlannedNode, RollingAction, RollingError, RollingPlan,
    RollingPlanError, RollingReport, RollingTarget, order_nodes, plan_rolling, run_rolling,
};

use crate::Secret;
use crate::kubernetes::{ClientTimeouts, DrainOptions, KubernetesClient, KubernetesError};
use crate::node_identity::machine_type_for;
use crate::progress::ProgressLog;
use crate::provider::ProviderFactory;
use crate::random::SystemRandom;
use crate::store::{Cluster, Server, ServerMachineConfig, Store, StoreError};
use crate::talos::{ClientConfigError, MachineType};
use crate::talos_api::{TalosApi, TalosApiError, TalosConnector, TalosCredentials};

/// How long lifecycle operations wait, and how often they ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleTiming {
    /// Delay between two questions to a node or the Kubernetes API.
    pub poll_interval: Duration,
    /// How long a node may take to go down after a reset or reboot was accepted (a graceful
    /// reset drains the node first).
    pub node_down: Duration,
    /// How long a node may take to come back (running, ready, at the target version) after
    /// it was asked to upgrade or reboot, or to reach maintenance mode after a reset.
    pub node_back: Duration,
    /// The drain before an upgrade or reboot.
    pub drain: DrainOptions,
    /// After a full wipe, how long to let the node finish wiping once its API went down,
    /// before the provider power-cycles it into rescue.
    pub wipe_grace: Duration,
    /// How long a control plane that is back may take to rejoin etcd as a healthy member
    /// before a rolling run stops.
    pub etcd_rejoin: Duration,
}

impl Default for LifecycleTiming {
    /// Ask every 5 s; 15 minutes to go down, 20 to come back (an upgrade pulls its installer
    /// and a bare-metal server takes minutes to POST); drain as [`DrainOptions::default`];
    /// 60 s of grace after a wipe; 5 minutes to rejoin etcd.
    fn default() -> Self {
        LifecycleTiming {
            poll_interval: Duration::from_secs(5),
            node_down: Duration::from_secs(15 * 60),
            node_back: Duration::from_secs(20 * 60),
            drain: DrainOptions::default(),
            wipe_grace: Duration::from_secs(60),
            etcd_rejoin: Duration::from_secs(5 * 60),
        }
    }
}

/// What lifecycle operations run with. Cheap to build per job.
pub struct LifecycleContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// Makes Talos API clients (the gRPC client in production, a fake in tests).
    pub talos: &'a dyn TalosConnector,
    /// The port nodes' Talos API listens on ([`crate::talos_api::DEFAULT_PORT`]).
    pub talos_port: u16,
    /// Builds provider clients (only a reset to rescue uses it).
    pub providers: &'a ProviderFactory,
    /// `SSH_PRIVATE_KEY`, whose public half a reset to rescue authorises.
    pub ssh_private_key: Option<&'a Secret<String>>,
    /// Timeouts of each Kubernetes request.
    pub kubernetes: ClientTimeouts,
    /// How long to wait for what.
    pub timing: LifecycleTiming,
    /// Receives one line per step.
    pub log: &'a dyn ProgressLog,
    /// Asked between steps and while waiting: `true` stops the operation.
    pub is_cancelled: &'a (dyn Fn() -> bool + Send + Sync),
}

impl LifecycleContext<'_> {
    async fn line(&self, line: impl Into<String>) {
        self.log.line(line.into()).await;
    }
}

/// A control plane (an etcd member) or a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Runs etcd and the Kubernetes control plane.
    ControlPlane,
    /// Runs workloads.
    Worker,
}

impl NodeRole {
    /// The role of a machine type (as a machine config records it).
    pub fn of(machine_type: MachineType) -> NodeRole {
        match machine_type {
            MachineType::ControlPlane => NodeRole::ControlPlane,
            MachineType::Worker => NodeRole::Worker,
        }
    }

    /// The role the naming convention gives a server name ([`machine_type_for`]): what a new
    /// machine config records unless told otherwise. A configured node's role is its machine
    /// config's ([`NodeRef::new`]), never its current name's.
    pub fn of_server(server_name: &str) -> NodeRole {
        NodeRole::of(machine_type_for(server_name))
    }

    /// `control plane` or `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control plane",
            NodeRole::Worker => "worker",
        }
    }
}

/// A configured server as a node: its name in Kubernetes and etcd, and where its Talos API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The server.
    pub server_id: crate::ids::ServerId,
    /// The server's name.
    pub server_name: String,
    /// The machine config's hostname: the name the node is expected to have.
    pub hostname: String,
    /// The name the node has: its Kubernetes node name and etcd member name, as it last
    /// reported it ([`crate::store::Server::node_name`]), else the expected `hostname`.
    /// Lifecycle operations read it from the node before they act (`resolve_node_name`).
    pub node_name: String,
    /// Its Talos API.
    pub address: SocketAddr,
    /// Control plane or worker.
    pub role: NodeRole,
}

/// Why a server is not a node lifecycle operations can reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeRefError {
    /// No cluster.
    #[error("server {server} is in no cluster")]
    NoCluster {
        /// The server's name.
        server: String,
    },
    /// No machine config: it was never configured by talos-manager (or was reset).
    #[error("server {server} has no machine config: it is not a configured node")]
    NotConfigured {
        /// The server's name.
        server: String,
    },
    /// No usable public IPv4 address.
    #[error("server {server} has no public IPv4 address to reach its Talos API at")]
    NoAddress {
        /// The server's name.
        server: String,
    },
}

impl NodeRef {
    /// The node of a stored server with its machine config.
    pub fn new(
        server: &Server,
        machine_config: Option<&ServerMachineConfig>,
        talos_port: u16,
    ) -> Result<NodeRef, NodeRefError> {
        let name = || server.inventory.name.clone();
        if server.cluster_id.is_none() {
            return Err(NodeRefError::NoCluster { server: name() });
        }
        let machine_config =
            machine_config.ok_or_else(|| NodeRefError::NotConfigured { server: name() })?;
        let ip: IpAddr = server
            .inventory
            .ipv4
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| NodeRefError::NoAddress { server: name() })?;
        Ok(NodeRef {
            server_id: server.id,
            server_name: name(),
            hostname: machine_config.fields.hostname.clone(),
            node_name: server
                .node_name
                .clone()
                .unwrap_or_else(|| machine_config.fields.hostname.clone()),
            address: SocketAddr::new(ip, talos_port),
            role: NodeRole::of(machine_config.machine_type),
        })
    }
}

/// Why a cluster's APIs could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterApisError {
    /// The cluster or its secrets bundle could not be read.
    #[error(transparent)]
    Bundle(#[from] crate::clusters::ClusterAccessError),
    /// No `os:admin` client certificate could be issued.
    #[error("failed to issue Talos API credentials for cluster {cluster}")]
    TalosCredentials {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: ClientConfigError,
    },
    /// No Talos API client could be made.
    #[error("failed to set up the Talos API client for cluster {cluster}")]
    TalosClient {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: TalosApiError,
    },
    /// No Kubernetes client could be made.
    #[error("failed to set up a kubernetes client for cluster {cluster}")]
    Kubernetes {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: KubernetesError,
    },
}

/// A cluster's APIs, with credentials issued for this run.
struct ClusterAccess {
    cluster: Cluster,
    talos: Arc<dyn TalosApi>,
    kubernetes: KubernetesClient,
}

async fn cluster_access(
    ctx: &LifecycleContext<'_>,
    cluster_id: crate::ids::ClusterId,
) -> Result<ClusterAccess, ClusterApisError> {
    let cluster = ctx.store.get_cluster(cluster_id).await.map_err(|error| {
        ClusterApisError::Bundle(crate::clusters::ClusterAccessError::Store(error))
    })?;
    let (_, secrets) = crate::clusters::load_bundle(ctx.store, cluster_id).await?;
    let now = time::OffsetDateTime::now_utc();
    let credentials =
        TalosCredentials::for_cluster(&secrets, now, &mut SystemRandom).map_err(|source| {
            ClusterApisError::TalosCredentials {
                cluster: cluster.name.clone(),
                source,
            }
        })?;
    let talos =
        ctx.talos
            .cluster(&credentials)
            .map_err(|source| ClusterApisError::TalosClient {
                cluster: cluster.name.clone(),
                source,
            })?;
    let kubernetes = KubernetesClient::for_cluster(
        &secrets,
        &cluster.endpoint,
        ctx.kubernetes,
        now,
        &mut SystemRandom,
    )
    .map_err(|source| ClusterApisError::Kubernetes {
        cluster: cluster.name.clone(),
        source,
    })?;
    Ok(ClusterAccess {
        cluster,
        talos,
        kubernetes,
    })
}

/// The configured nodes of a cluster (servers with a machine config and an address), by name.
async fn cluster_nodes(
    store: &Store,
    cluster_id: crate::ids::ClusterId,
    talos_port: u16,
) -> Result<Vec<NodeRef>, StoreError> {
    let configs = store.list_machine_configs().await?;
    Ok(store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| server.cluster_id == Some(cluster_id))
        .filter_map(|server| {
            let config = configs.iter().find(|config| config.server_id == server.id);
            NodeRef::new(&server, config, talos_port).ok()
        })
        .collect())
}

/// Reads the node's name from the node (Talos's Nodename), records it on the server and says
/// in the log when it differs from the expected hostname; `node.node_name` becomes it. When
/// the node does not answer, the recorded (or expected) name stays and the error is returned.
pub(crate) async fn resolve_node_name(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    node: &mut NodeRef,
) -> Result<(), TalosApiError> {
    let name = api.node_name(node.address).await?;
    if let Err(error) = ctx.store.record_node_name(node.server_id, &name).await {
        ctx.line(format!(
            "{}: could not record its node name {name}: {}",
            node.server_name,
            crate::error_chain(&error)
        ))
        .await;
    }
    if name != node.hostname {
        ctx.line(format!(
            "{}: name mismatch: the node calls itself {name}, its machine config expects {}; acting on {name}",
            node.server_name, node.hostname
        ))
        .await;
    }
    node.node_name = name;
    Ok(())
}

/// Why [`refresh_node_name`] could not read a node's name.
#[derive(Debug, thiserror::Error)]
pub enum NodeNameError {
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is not a configured node with an address.
    #[error(transparent)]
    Node(#[from] NodeRefError),
    /// No Talos API client could be made for its cluster.
    #[error(transparent)]
    Access(#[from] ClusterApisError),
    /// The node did not answer.
    #[error("failed to read the node name of {server} from its node")]
    Talos {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: TalosApiError,
    },
}

/// Reads a configured server's node name from its node through the Talos API (Talos's
/// Nodename) and records it ([`crate::store::Server::node_name`]); for callers without a
/// [`LifecycleContext`], such as the label and taint job. Returns the name.
pub async fn refresh_node_name(
    store: &Store,
    talos: &dyn TalosConnector,
    talos_port: u16,
    server_id: crate::ids::ServerId,
) -> Result<String, NodeNameError> {
    let server = store.get_server(server_id).await?;
    let machine_config = store.machine_config_for_server(server_id).await?;
    let node = NodeRef::new(&server, machine_config.as_ref(), talos_port)?;
    let cluster_id = server.cluster_id.ok_or_else(|| NodeRefError::NoCluster {
        server: node.server_name.clone(),
    })?;
    let cluster = store.get_cluster(cluster_id).await?;
    let (_, secrets) = crate::clusters::load_bundle(store, cluster_id)
        .await
        .map_err(ClusterApisError::Bundle)?;
    let credentials =
        TalosCredentials::for_cluster(&secrets, time::OffsetDateTime::now_utc(), &mut SystemRandom)
            .map_err(|source| ClusterApisError::TalosCredentials {
                cluster: cluster.name.clone(),
                source,
            })?;
    let api = talos
        .cluster(&credentials)
        .map_err(|source| ClusterApisError::TalosClient {
            cluster: cluster.name.clone(),
            source,
        })?;
    let name = api
        .node_name(node.address)
        .await
        .map_err(|source| NodeNameError::Talos {
            server: node.server_name.clone(),
            source,
        })?;
    store.record_node_name(server_id, &name).await?;
    Ok(name)
}
