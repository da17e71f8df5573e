//! The `cluster_bootstrap` job: etcd's Bootstrap on a cluster's first control plane, at most
//! once (the rule is `crate::lifecycle::cluster_bootstrap`), and when it is queued: explicitly
//! ([`queue_cluster_bootstrap`]), and when a control plane of a cluster never bootstrapped was
//! served its config ([`queue_bootstrap_after_config_served`], called by `/config`'s hook).
//!
//! One such job per cluster is queued or running at a time (the exclusive scope
//! [`bootstrap_scope`]); it does not hold the cluster's lifecycle scope. A run interrupted by a
//! crash runs again as the same claim owner (`job:<id>`) and asks etcd before calling again.

use crate::ids::{ClusterId, ServerId};
use crate::lifecycle::{ClusterBootstrapError, NodeRole, bootstrap_cluster};
use crate::store::{Job, NewJob};
use crate::{Store, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;

use super::{JobContext, JobError, JobHandler, JobKind, JobQueue, LifecycleSettings};

/// The exclusive scope of a cluster's bootstrap jobs.
pub fn bootstrap_scope(cluster: ClusterId) -> String {
    format!("cluster-bootstrap:{cluster}")
}

/// The arguments of a cluster bootstrap job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterBootstrapArgs {
    /// The cluster.
    pub cluster_id: ClusterId,
}

/// Bootstraps a cluster's etcd.
#[derive(Debug, Clone)]
pub struct ClusterBootstrapJob {
    settings: LifecycleSettings,
}

impl ClusterBootstrapJob {
    /// A handler with `settings` (its Talos API, and how long to wait: `node_back` bounds the
    /// retries of Bootstrap and the wait for etcd and Kubernetes).
    pub fn new(settings: LifecycleSettings) -> ClusterBootstrapJob {
        ClusterBootstrapJob { settings }
    }
}

#[async_trait]
impl JobHandler for ClusterBootstrapJob {
    fn kind(&self) -> &'static str {
        JobKind::ClusterBootstrap.as_str()
    }

    fn repeatable(&self) -> bool {
        // A second run holds the same claim and asks etcd before it calls Bootstrap again.
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let args: ClusterBootstrapArgs =
            serde_json::from_value(context.job().args.clone()).map_err(JobError::Arguments)?;
        let owner = format!("job:{}", context.job().id);
        let outcome = self
            .settings
            .run(context, async |lifecycle| {
                bootstrap_cluster(lifecycle, args.cluster_id, &owner).await
            })
            .await
            .map_err(|error| match error {
                ClusterBootstrapError::Cancelled { .. } => JobError::Cancelled,
                error => JobError::ClusterBootstrap(Box::new(error)),
            })?;
        context
            .log(match &outcome.bootstrapped_node {
                Some(node) => format!(
                    "cluster {} bootstrapped on {node}: etcd and Kubernetes {} answer",
                    outcome.cluster, outcome.kubernetes_version
                ),
                None => format!(
                    "cluster {} ran already: recorded as bootstrapped without calling Bootstrap",
                    outcome.cluster
                ),
            })
            .await;
        Ok(())
    }
}

/// Why a bootstrap job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueClusterBootstrapError {
    /// The cluster is recorded as bootstrapped.
    #[error("cluster {cluster} was bootstrapped already (at {at}); it is never bootstrapped twice")]
    AlreadyBootstrapped {
        /// The cluster's name.
        cluster: String,
        /// When.
        at: OffsetDateTime,
    },
    /// A bootstrap job of the cluster is queued or running.
    #[error("a bootstrap of cluster {cluster} is queued or running already (job {job})")]
    InProgress {
        /// The cluster's name.
        cluster: String,
        /// That job's id.
        job: String,
    },
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues the cluster's bootstrap job, refused when it is recorded as bootstrapped or one is
/// queued or running.
pub async fn queue_cluster_bootstrap(
    queue: &JobQueue,
    store: &Store,
    cluster_id: ClusterId,
) -> Result<Job, QueueClusterBootstrapError> {
    let cluster = store.get_cluster(cluster_id).await?;
    if let Some(at) = cluster.bootstrapped_at {
        return Err(QueueClusterBootstrapError::AlreadyBootstrapped {
            cluster: cluster.name,
            at,
        });
    }
    let job = NewJob {
        kind: JobKind::ClusterBootstrap.to_string(),
        server_id: None,
        args: serde_json::json!({ "cluster_id": cluster_id }),
    };
    let scope = bootstrap_scope(cluster_id);
    match queue.enqueue_exclusive(&job, &scope).await {
        Ok(job) => Ok(job),
        Err(StoreError::Conflict { .. }) => {
            let active = store.active_job_in_scope(&scope).await?;
            Err(QueueClusterBootstrapError::InProgress {
                cluster: cluster.name,
                job: active.map_or_else(|| "?".to_owned(), |job| job.id.to_string()),
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// After `/config` served `server` its config: queues its cluster's bootstrap job when the
/// server is a control plane of a cluster that was never bootstrapped (and none is queued).
/// `None` when no job was queued.
pub async fn queue_bootstrap_after_config_served(
    queue: &JobQueue,
    store: &Store,
    server: ServerId,
) -> Result<Option<Job>, StoreError> {
    let stored = store.get_server(server).await?;
    let Some(cluster_id) = stored.cluster_id else {
        return Ok(None);
    };
    let control_plane = store
        .machine_config_for_server(server)
        .await?
        .is_some_and(|config| NodeRole::of(config.machine_type) == NodeRole::ControlPlane);
    if !control_plane {
        return Ok(None);
    }
    match queue_cluster_bootstrap(queue, store, cluster_id).await {
        Ok(job) => Ok(Some(job)),
        Err(QueueClusterBootstrapError::Store(error)) => Err(error),
        Err(_) => Ok(None),
    }
}
