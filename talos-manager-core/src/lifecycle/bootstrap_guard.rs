//! Whether a bootstrap may erase a server: [`precheck_bootstrap`] (the store alone) and
//! [`check_bootstrap`] (plus etcd, for a forced control plane).
//!
//! A bootstrap writes Talos over the server's disk. On a server that runs Talos with its machine
//! config that is data loss, and on a control plane it can take etcd's quorum with it. So:
//! - a server that is a *live node* is refused unless `force`: it was served its machine config
//!   (`last_configured_at`) or its labels and taints were applied in Kubernetes
//!   (`label_and_taint_job_completed_at`). A reset clears both; so does a bootstrap once it
//!   passed this check, before it touches the server ([`Store::record_erase_started`]), so a
//!   bootstrap that failed or was cancelled after that leaves no live node (retrying is safe),
//!   while one refused here leaves the node as it was;
//! - a forced bootstrap of a live control plane is checked with reset's quorum rule
//!   ([`super::etcd::check_departure`]), and a refusal holds **even with `force`**: reset the node first
//!   (reset has its own `force`), then bootstrap it. When no control plane answers, etcd's
//!   membership cannot be checked and `force` goes on, as a forced reset does.

use time::OffsetDateTime;

use super::etcd::{Departure, QuorumRefusal};
use super::quorum::read_etcd;
use super::{ClusterApisError, LifecycleContext, NodeRef, NodeRole, cluster_access, cluster_nodes};
use crate::ids::ServerId;
#[cfg(doc)]
use crate::store::Store;
use crate::store::{Server, StoreError};

/// Why a server is a live node that a bootstrap would erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveNode {
    /// It was served its machine config at this time.
    Configured(OffsetDateTime),
    /// Its labels and taints were applied in its cluster's Kubernetes at this time.
    ClusterMember(OffsetDateTime),
}

impl std::fmt::Display for LiveNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |at: &OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| at.to_string())
        };
        match self {
            LiveNode::Configured(at) => write!(
                f,
                "it is a configured node (served its machine config at {})",
                when(at)
            ),
            LiveNode::ClusterMember(at) => write!(
                f,
                "it is a cluster member (labels and taints applied at {})",
                when(at)
            ),
        }
    }
}

/// Why a bootstrap is refused.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapRefusal {
    /// The server is a live node and `force` was not given.
    #[error(
        "refused to bootstrap {server}: {live}, and a bootstrap erases its disk: reset it first or pass force"
    )]
    LiveNode {
        /// The server's name.
        server: String,
        /// Why it counts as live.
        live: LiveNode,
    },
    /// A forced bootstrap of a control plane that etcd cannot lose.
    #[error(
        "refused to bootstrap control plane {server} even with force: etcd cannot lose it; reset it first (reset decides about etcd, with its own force)"
    )]
    Quorum {
        /// The server's name.
        server: String,
        /// The quorum rule's refusal.
        #[source]
        reason: QuorumRefusal,
    },
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's APIs could not be set up to ask etcd.
    #[error(transparent)]
    Access(Box<ClusterApisError>),
}

/// What the store says about erasing a server ([`precheck_bootstrap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precheck {
    /// No live node: bootstrapping erases nothing talos-manager serves.
    Free,
    /// A live node, erased because `force` was given.
    Forced(LiveNode),
}

/// Whether `server` is a live node: served its machine config, or labelled in its cluster,
/// since it was last reset or handed to a bootstrap.
pub fn live_node(server: &Server) -> Option<LiveNode> {
    server
        .last_configured_at
        .map(LiveNode::Configured)
        .or_else(|| {
            server
                .label_and_taint_job_completed_at
                .map(LiveNode::ClusterMember)
        })
}

/// The store-only part of the rule: a live node (see [`live_node`]) is refused unless `force`.
/// Does not ask etcd: [`check_bootstrap`] does, for a forced control plane.
pub fn precheck_bootstrap(server: &Server, force: bool) -> Result<Precheck, BootstrapRefusal> {
    match live_node(server) {
        None => Ok(Precheck::Free),
        Some(live) if force => Ok(Precheck::Forced(live)),
        Some(live) => Err(BootstrapRefusal::LiveNode {
            server: server.inventory.name.clone(),
            live,
        }),
    }
}

/// What [`check_bootstrap`] allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapClearance {
    /// The store's answer.
    pub precheck: Precheck,
    /// For a forced control plane: what etcd said (`None` when it was not asked).
    pub etcd: Option<String>,
}

/// The whole rule: [`precheck_bootstrap`], then, for a live control plane bootstrapped with
/// `force`, the etcd quorum rule of reset (refused even with `force`). Logs one line per step
/// to `ctx`'s log.
pub async fn check_bootstrap(
    ctx: &LifecycleContext<'_>,
    server_id: ServerId,
    force: bool,
) -> Result<BootstrapClearance, BootstrapRefusal> {
    let server = ctx.store.get_server(server_id).await?;
    let precheck = precheck_bootstrap(&server, force)?;
    let Precheck::Forced(live) = precheck else {
        return Ok(BootstrapClearance {
            precheck,
            etcd: None,
        });
    };
    ctx.line(format!(
        "forced: {live}; erasing it anyway (control planes are checked against etcd)"
    ))
    .await;
    let machine_config = ctx.store.machine_config_for_server(server_id).await?;
    let node = match NodeRef::new(&server, machine_config.as_ref(), ctx.talos_port) {
        Ok(node) if node.role == NodeRole::ControlPlane => node,
        Ok(_) => {
            return Ok(BootstrapClearance {
                precheck,
                etcd: None,
            });
        }
        Err(error) => {
            let note = format!("etcd not checked: {error}");
            ctx.line(note.clone()).await;
            return Ok(BootstrapClearance {
                precheck,
                etcd: Some(note),
            });
        }
    };
    let Some(cluster_id) = server.cluster_id else {
        return Ok(BootstrapClearance {
            precheck,
            etcd: None,
        });
    };
    let access = cluster_access(ctx, cluster_id)
        .await
        .map_err(|error| BootstrapRefusal::Access(Box::new(error)))?;
    let control_planes: Vec<NodeRef> = cluster_nodes(ctx.store, cluster_id, ctx.talos_port)
        .await?
        .into_iter()
        .filter(|other| other.role == NodeRole::ControlPlane)
        .collect();
    // The other control planes first (the node itself may be the one that is down): the same
    // reading of etcd as a reset or a rolling job makes.
    let Some(view) = read_etcd(ctx, &*access.talos, &control_planes, &node).await else {
        let note = format!(
            "no control plane of cluster {} answers: etcd's membership cannot be checked; forced",
            access.cluster.name
        );
        ctx.line(note.clone()).await;
        return Ok(BootstrapClearance {
            precheck,
            etcd: Some(note),
        });
    };
    match view.check(&node, Departure::Removal) {
        Ok(removal) => {
            let note = match removal.member {
                Some(_) => format!(
                    "etcd keeps a healthy majority without {}: it may be erased",
                    node.hostname
                ),
                None => format!("{} is no etcd member", node.hostname),
            };
            ctx.line(note.clone()).await;
            Ok(BootstrapClearance {
                precheck,
                etcd: Some(note),
            })
        }
        Err(reason) => {
            ctx.line(format!("refused: {reason}")).await;
            Err(BootstrapRefusal::Quorum {
                server: server.inventory.name,
                reason,
            })
        }
    }
}
