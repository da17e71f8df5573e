//! The `config_apply` job: the config talos-manager would serve now, rolled out over one
//! server, a cluster or a selection (see `crate::node_config::apply`). It holds the cluster's
//! lifecycle scope ([`cluster_scope`]): one config apply, upgrade, reboot or reset per cluster
//! at a time. A run interrupted by a restart continues after the last node done.

use async_trait::async_trait;

use crate::ids::ClusterId;
use crate::lifecycle::JobCheckpoint;
use crate::node_config::apply::{
    ApplyContext, ConfigApplyMode, ConfigApplyTarget, run_config_apply,
};
use crate::store::{Job, NewJob};
use crate::{Store, StoreError};

use super::{
    JobContext, JobError, JobHandler, JobKind, JobLog, JobQueue, LifecycleSettings, cluster_scope,
};

/// The arguments of a config apply job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigApplyArgs {
    /// The servers.
    pub target: ConfigApplyTarget,
    /// How the config takes effect.
    pub mode: ConfigApplyMode,
}

/// Rolls the rendered config out, node after node.
#[derive(Debug, Clone)]
pub struct ConfigApplyJob {
    settings: LifecycleSettings,
}

impl ConfigApplyJob {
    /// A handler with `settings` (the Talos API; `poll_interval` and `node_back` bound the wait
    /// for each node to be healthy again).
    pub fn new(settings: LifecycleSettings) -> ConfigApplyJob {
        ConfigApplyJob { settings }
    }
}

#[async_trait]
impl JobHandler for ConfigApplyJob {
    fn kind(&self) -> &'static str {
        JobKind::ConfigApply.as_str()
    }

    fn repeatable(&self) -> bool {
        // Its checkpoint makes a second run continue after the last node done.
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let args: ConfigApplyArgs =
            serde_json::from_value(context.job().args.clone()).map_err(JobError::Arguments)?;
        let log = JobLog(context);
        let apply = ApplyContext {
            store: context.store(),
            talos: &*self.settings.talos.connector,
            talos_port: self.settings.talos.port,
            poll_interval: self.settings.timing.poll_interval,
            node_back: self.settings.timing.node_back,
            log: &log,
        };
        let checkpoint =
            JobCheckpoint::new(context.store().clone(), context.job().id).held_by(context.worker());
        let report = run_config_apply(&apply, &args.target, args.mode, &checkpoint)
            .await
            .map_err(|error| JobError::ConfigApply(Box::new(error)))?;
        context
            .log(format!(
                "config applied to {} node(s); {} already in sync; {} done before a restart",
                report.applied.len(),
                report.in_sync.len(),
                report.resumed.len()
            ))
            .await;
        Ok(())
    }
}

/// Why a config apply was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueConfigApplyError {
    /// Another lifecycle job of the cluster (config apply, upgrade, reboot, reset) is queued
    /// or running.
    #[error("another job of cluster {cluster} is queued or running (job {job}): one at a time")]
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

/// Queues a config apply over `target` of `cluster_id`, refused while another lifecycle job of
/// the cluster is queued or running.
pub async fn queue_config_apply(
    queue: &JobQueue,
    store: &Store,
    cluster_id: ClusterId,
    args: &ConfigApplyArgs,
) -> Result<Job, QueueConfigApplyError> {
    let cluster = store.get_cluster(cluster_id).await?;
    let job = NewJob {
        kind: JobKind::ConfigApply.to_string(),
        server_id: None,
        args: serde_json::to_value(args).unwrap_or_default(),
    };
    let scope = cluster_scope(cluster_id);
    match queue.enqueue_exclusive(&job, &scope).await {
        Ok(job) => Ok(job),
        Err(StoreError::Conflict { .. }) => {
            let active = store.active_job_in_scope(&scope).await?;
            Err(QueueConfigApplyError::InProgress {
                cluster: cluster.name,
                job: active.map_or_else(|| "?".to_owned(), |job| job.id.to_string()),
            })
        }
        Err(error) => Err(error.into()),
    }
}
