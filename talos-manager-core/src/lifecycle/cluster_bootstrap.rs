//! etcd bootstrap of a cluster, at most once: [`bootstrap_cluster`].
//!
//! A new Talos cluster has no etcd until `MachineService.Bootstrap` is called on exactly one
//! control plane; calling it on a second one (or on a cluster whose etcd runs) splits etcd in
//! two. So:
//! - a cluster recorded as bootstrapped ([`Cluster::bootstrapped_at`], also set when a cluster
//!   is imported with its secrets bundle) is refused;
//! - the caller first claims the bootstrap in the store ([`Store::claim_cluster_bootstrap`],
//!   one atomic `UPDATE … WHERE bootstrapped_at IS NULL AND claimed by nobody or by us`): a
//!   second caller at the same time (another replica) is refused, the same job run again after
//!   a crash goes on;
//! - every configured control plane is asked for etcd's members first: when one lists members,
//!   Bootstrap is never called (the cluster runs: it is only waited for and recorded);
//! - Bootstrap goes to exactly the first control plane that fetched its config (the earliest
//!   `last_configured_at`, then by name), retried with backoff while Talos says it is not ready
//!   (`FailedPrecondition`, `Unavailable`, no answer) for at most
//!   [`LifecycleTiming::node_back`](super::LifecycleTiming::node_back); `AlreadyExists` ("etcd
//!   data directory is not empty") counts as done;
//! - then etcd's member list and the Kubernetes API (`/version`) must answer (again within
//!   `node_back`), and the cluster is recorded as bootstrapped. A failure gives the claim up.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{ClusterApisError, LifecycleContext, NodeRef, NodeRole, cluster_access};
use crate::error_chain;
use crate::ids::ClusterId;
#[cfg(doc)]
use crate::store::Store;
use crate::store::{BootstrapClaim, Cluster, StoreError};
use crate::talos_api::{TalosApi, TalosApiError, TalosStatusCode};

/// How a bootstrap ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBootstrapOutcome {
    /// The cluster's name.
    pub cluster: String,
    /// The control plane Bootstrap was called on; `None` when etcd had members already and
    /// Bootstrap was not called.
    pub bootstrapped_node: Option<String>,
    /// etcd's members when it answered, by name.
    pub etcd_members: Vec<String>,
    /// The Kubernetes version the API server answered with (`v1.33.1`).
    pub kubernetes_version: String,
    /// When the cluster is recorded as bootstrapped.
    pub bootstrapped_at: OffsetDateTime,
}

/// Why a cluster was not bootstrapped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterBootstrapError {
    /// The cluster is recorded as bootstrapped: it is never bootstrapped again.
    #[error("cluster {cluster} was bootstrapped already (at {at}); it is never bootstrapped twice")]
    AlreadyBootstrapped {
        /// The cluster's name.
        cluster: String,
        /// When.
        at: OffsetDateTime,
    },
    /// Someone else is bootstrapping it now.
    #[error("cluster {cluster} is being bootstrapped already (by {holder})")]
    InProgress {
        /// The cluster's name.
        cluster: String,
        /// Who holds the claim (`job:<id>`).
        holder: String,
    },
    /// No control plane of the cluster has fetched its config yet.
    #[error(
        "cluster {cluster} has no configured control plane yet: bootstrap runs once a control plane has fetched its config"
    )]
    NoControlPlane {
        /// The cluster's name.
        cluster: String,
    },
    /// The control plane kept saying it is not ready (or did not answer) until the timeout.
    #[error("{node} did not accept Bootstrap within {} s", waited.as_secs())]
    NotReady {
        /// The node's server name.
        node: String,
        /// How long it was tried.
        waited: Duration,
        /// Its last answer.
        #[source]
        source: TalosApiError,
    },
    /// The control plane refused Bootstrap.
    #[error("{node} refused Bootstrap")]
    Refused {
        /// The node's server name.
        node: String,
        /// Its answer.
        #[source]
        source: TalosApiError,
    },
    /// etcd or the Kubernetes API did not answer in time after Bootstrap.
    #[error("cluster {cluster}: {what} did not answer within {} s: {last}", waited.as_secs())]
    NotHealthy {
        /// The cluster's name.
        cluster: String,
        /// `etcd` or `the Kubernetes API`.
        what: &'static str,
        /// How long it was waited for.
        waited: Duration,
        /// The last answer.
        last: String,
    },
    /// Stopped on request.
    #[error("the bootstrap of cluster {cluster} was cancelled")]
    Cancelled {
        /// The cluster's name.
        cluster: String,
    },
    /// The cluster's APIs could not be set up.
    #[error(transparent)]
    Access(Box<ClusterApisError>),
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The configured control planes of a cluster that fetched their config, the first one
/// (earliest `last_configured_at`, then by server name) first.
async fn configured_control_planes(
    ctx: &LifecycleContext<'_>,
    cluster_id: ClusterId,
) -> Result<Vec<NodeRef>, StoreError> {
    let configs = ctx.store.list_machine_configs().await?;
    let mut planes: Vec<(OffsetDateTime, NodeRef)> = ctx
        .store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| server.cluster_id == Some(cluster_id))
        .filter_map(|server| {
            let fetched = server.last_configured_at?;
            let config = configs.iter().find(|config| config.server_id == server.id);
            let node = NodeRef::new(&server, config, ctx.talos_port).ok()?;
            (node.role == NodeRole::ControlPlane).then_some((fetched, node))
        })
        .collect();
    planes.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.server_name.cmp(&y.server_name)));
    Ok(planes.into_iter().map(|(_, node)| node).collect())
}

/// Whether Talos's answer means "not ready yet, ask again".
fn not_ready(error: &TalosApiError) -> bool {
    error.is_transient()
        || matches!(
            error.status_code(),
            Some(TalosStatusCode::FailedPrecondition | TalosStatusCode::Unavailable)
        )
}

/// The members a control plane's etcd lists, by name, when it answers with any.
async fn members_of(api: &dyn TalosApi, node: &NodeRef) -> Option<Vec<String>> {
    let members = api.etcd_members(node.address).await.ok()?;
    (!members.is_empty()).then(|| members.into_iter().map(|m| m.hostname).collect())
}

/// Bootstraps etcd on the cluster's first control plane, at most once (see the module), as
/// `owner` (`job:<id>`: the same owner run again after a crash goes on). Logs one line per step.
pub async fn bootstrap_cluster(
    ctx: &LifecycleContext<'_>,
    cluster_id: ClusterId,
    owner: &str,
) -> Result<ClusterBootstrapOutcome, ClusterBootstrapError> {
    let cluster = ctx.store.get_cluster(cluster_id).await?;
    if let Some(at) = cluster.bootstrapped_at {
        return Err(ClusterBootstrapError::AlreadyBootstrapped {
            cluster: cluster.name,
            at,
        });
    }
    let resumed = cluster.bootstrap_claimed_by.as_deref() == Some(owner);
    match ctx.store.claim_cluster_bootstrap(cluster_id, owner).await? {
        BootstrapClaim::Claimed => {}
        BootstrapClaim::Bootstrapped(at) => {
            return Err(ClusterBootstrapError::AlreadyBootstrapped {
                cluster: cluster.name,
                at,
            });
        }
        BootstrapClaim::HeldBy(holder) => {
            return Err(ClusterBootstrapError::InProgress {
                cluster: cluster.name,
                holder,
            });
        }
    }
    if resumed {
        ctx.line(format!(
            "cluster {}: going on with the bootstrap this job started before it was interrupted",
            cluster.name
        ))
        .await;
    } else {
        ctx.line(format!("cluster {}: claimed its bootstrap", cluster.name))
            .await;
    }
    let result = claimed(ctx, &cluster).await;
    if result.is_err() {
        // Someone may try again; a failed release leaves the claim to this owner's next run.
        let _ = ctx.store.release_cluster_bootstrap(cluster_id, owner).await;
    }
    result
}

async fn claimed(
    ctx: &LifecycleContext<'_>,
    cluster: &Cluster,
) -> Result<ClusterBootstrapOutcome, ClusterBootstrapError> {
    let name = cluster.name.clone();
    let access = cluster_access(ctx, cluster.id)
        .await
        .map_err(|error| ClusterBootstrapError::Access(Box::new(error)))?;
    let api = &*access.talos;
    let planes = configured_control_planes(ctx, cluster.id).await?;
    let Some(first) = planes.first() else {
        return Err(ClusterBootstrapError::NoControlPlane { cluster: name });
    };

    // Never a second etcd: ask every control plane (a restart after a crash asks again).
    let mut running = None;
    for node in &planes {
        if let Some(members) = members_of(api, node).await {
            running = Some((node.server_name.clone(), members));
            break;
        }
    }
    let bootstrapped_node = match running {
        Some((node, members)) => {
            ctx.line(format!(
                "etcd runs already ({node} lists members {}): Bootstrap is not called",
                members.join(", ")
            ))
            .await;
            None
        }
        None => {
            ctx.line(format!(
                "no control plane lists etcd members: bootstrapping {} ({}), the first control plane that fetched its config",
                first.server_name, first.address
            ))
            .await;
            call_bootstrap(ctx, api, first, &name).await?;
            Some(first.server_name.clone())
        }
    };

    ctx.line("waiting for etcd to answer").await;
    let started = Instant::now();
    let etcd_members = loop {
        let mut last = String::from("no control plane answered");
        let mut found = None;
        for node in &planes {
            match api.etcd_members(node.address).await {
                Ok(members) if !members.is_empty() => {
                    found = Some(members.into_iter().map(|m| m.hostname).collect::<Vec<_>>());
                    break;
                }
                Ok(_) => last = format!("{} lists no member", node.server_name),
                Err(error) => last = error_chain(&error).to_string(),
            }
        }
        if let Some(members) = found {
            break members;
        }
        keep_waiting(ctx, &name, "etcd", started, last).await?;
    };
    ctx.line(format!("etcd answers: members {}", etcd_members.join(", ")))
        .await;

    ctx.line("waiting for the Kubernetes API to answer").await;
    let started = Instant::now();
    let version = loop {
        match access.kubernetes.version().await {
            Ok(version) => break version,
            Err(error) => {
                let last = error_chain(&error).to_string();
                keep_waiting(ctx, &name, "the Kubernetes API", started, last).await?;
            }
        }
    };
    let release = version.release();
    ctx.store
        .record_running_kubernetes_version(cluster.id, release.as_deref(), crate::store::now())
        .await?;
    ctx.line(format!(
        "the Kubernetes API answers: {}",
        version.git_version
    ))
    .await;

    let at = ctx
        .store
        .record_cluster_bootstrapped(cluster.id, crate::store::now())
        .await?;
    ctx.line(format!("cluster {name} is recorded as bootstrapped"))
        .await;
    Ok(ClusterBootstrapOutcome {
        cluster: name,
        bootstrapped_node,
        etcd_members,
        kubernetes_version: version.git_version,
        bootstrapped_at: at,
    })
}

/// Calls Bootstrap on `node` until it is accepted (or answered "already bootstrapped"),
/// backing off from the poll interval up to 8 times it while the node is not ready.
async fn call_bootstrap(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    node: &NodeRef,
    cluster: &str,
) -> Result<(), ClusterBootstrapError> {
    let started = Instant::now();
    let limit = ctx.timing.node_back;
    let mut delay = ctx.timing.poll_interval;
    loop {
        if (ctx.is_cancelled)() {
            return Err(ClusterBootstrapError::Cancelled {
                cluster: cluster.to_owned(),
            });
        }
        match api.bootstrap(node.address).await {
            Ok(()) => {
                ctx.line(format!("{}: Bootstrap accepted", node.server_name))
                    .await;
                return Ok(());
            }
            Err(error) if error.status_code() == Some(TalosStatusCode::AlreadyExists) => {
                ctx.line(format!(
                    "{}: already bootstrapped ({}): done",
                    node.server_name,
                    error_chain(&error)
                ))
                .await;
                return Ok(());
            }
            Err(error) if not_ready(&error) => {
                if started.elapsed() + delay > limit {
                    return Err(ClusterBootstrapError::NotReady {
                        node: node.server_name.clone(),
                        waited: started.elapsed(),
                        source: error,
                    });
                }
                ctx.line(format!(
                    "{}: not ready for Bootstrap yet ({}); trying again in {} ms",
                    node.server_name,
                    error_chain(&error),
                    delay.as_millis()
                ))
                .await;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(ctx.timing.poll_interval * 8);
            }
            Err(error) => {
                return Err(ClusterBootstrapError::Refused {
                    node: node.server_name.clone(),
                    source: error,
                });
            }
        }
    }
}

/// After an unanswered question: fails past `node_back` (or when cancelled), else sleeps a
/// poll interval.
async fn keep_waiting(
    ctx: &LifecycleContext<'_>,
    cluster: &str,
    what: &'static str,
    started: Instant,
    last: String,
) -> Result<(), ClusterBootstrapError> {
    if (ctx.is_cancelled)() {
        return Err(ClusterBootstrapError::Cancelled {
            cluster: cluster.to_owned(),
        });
    }
    if started.elapsed() >= ctx.timing.node_back {
        return Err(ClusterBootstrapError::NotHealthy {
            cluster: cluster.to_owned(),
            what,
            waited: started.elapsed(),
            last,
        });
    }
    tokio::time::sleep(ctx.timing.poll_interval).await;
    Ok(())
}
