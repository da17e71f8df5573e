//! The `label_and_taint` job: brings a server's Kubernetes node in line with the label and
//! taint rules (see `crate::kubernetes`), and when such jobs are queued.

use std::time::Duration;

use crate::Store;
use crate::StoreError;
use crate::ids::{LabelTaintRuleId, ServerId};
use crate::lifecycle::refresh_node_name;
use crate::node_labels::{
    ReconcileOptions, ReconcileOutcome, configured_servers_matching, reconcile_labels_and_taints,
};
use crate::store::{Job, JobStatus, LabelTaintRule, LabelTaintRuleFields, NewJob};
use async_trait::async_trait;

use super::{JobContext, JobError, JobHandler, JobKind, JobLog, JobQueue, TalosSettings};

/// After a config was served, no new job for the same server within this window: a node asks
/// for its config again and again while it boots.
pub const CONFIG_SERVED_GUARD: Duration = Duration::from_secs(600);

/// Applies the rules' labels and taints to one server's node (the job's `server_id`).
#[derive(Debug, Clone, Default)]
pub struct LabelAndTaintJob {
    options: ReconcileOptions,
    talos: Option<TalosSettings>,
}

impl LabelAndTaintJob {
    /// A handler waiting for nodes and calling the API as `options` says.
    pub fn new(options: ReconcileOptions) -> LabelAndTaintJob {
        LabelAndTaintJob {
            options,
            talos: None,
        }
    }

    /// Reads the node's name from the node through the Talos API first (recorded on the
    /// server), so that the node is labelled under the name it has; without it, or when the
    /// node does not answer, the recorded name or the machine config's hostname is used.
    pub fn with_talos(mut self, talos: TalosSettings) -> LabelAndTaintJob {
        self.talos = Some(talos);
        self
    }
}

#[async_trait]
impl JobHandler for LabelAndTaintJob {
    fn kind(&self) -> &'static str {
        JobKind::LabelAndTaint.as_str()
    }

    fn repeatable(&self) -> bool {
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let server_id = context.server_id()?;
        if let Some(talos) = &self.talos {
            match refresh_node_name(context.store(), talos.connector.as_ref(), talos.port, server_id)
                .await
            {
                Ok(name) => context.log(format!("the node calls itself {name}")).await,
                Err(error) => {
                    context
                        .log(format!(
                            "could not read the node's name from the node ({}); using the recorded name or the machine config's hostname",
                            crate::error_chain(&error)
                        ))
                        .await
                }
            }
        }
        let log = JobLog(context);
        let reconcile =
            reconcile_labels_and_taints(context.store(), server_id, &self.options, &log);
        tokio::select! {
            result = reconcile => match result {
                Ok(ReconcileOutcome::NotConfigured) | Ok(ReconcileOutcome::Reconciled { .. }) => Ok(()),
                Err(error) => Err(JobError::Labels(Box::new(error))),
            },
            () = context.cancelled() => Err(JobError::Cancelled),
        }
    }
}

/// Why a label and taint job is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelAndTaintTrigger {
    /// The server was served its config: its node is about to join. Skipped when a job for
    /// the server was queued within [`CONFIG_SERVED_GUARD`].
    ConfigServed,
    /// A rule was created, changed or deleted. Skipped when a job for the server is still
    /// queued (it reads the rules when it runs).
    RulesChanged,
}

/// What [`queue_label_and_taint`] did.
#[derive(Debug, Clone)]
pub enum LabelAndTaintQueued {
    /// A job was queued.
    Queued(Job),
    /// None was needed: this job, queued earlier, is within the trigger's guard.
    Skipped(Job),
}

/// Queues a label and taint job for the server unless `trigger`'s guard says one is on its
/// way.
pub async fn queue_label_and_taint(
    queue: &JobQueue,
    store: &Store,
    server_id: ServerId,
    trigger: LabelAndTaintTrigger,
) -> Result<LabelAndTaintQueued, StoreError> {
    let latest = store
        .latest_server_job(JobKind::LabelAndTaint.as_str(), server_id)
        .await?;
    if let Some(job) = latest {
        let skip = match trigger {
            LabelAndTaintTrigger::ConfigServed => {
                time::OffsetDateTime::now_utc() - job.created_at < CONFIG_SERVED_GUARD
            }
            LabelAndTaintTrigger::RulesChanged => job.status == JobStatus::Queued,
        };
        if skip {
            return Ok(LabelAndTaintQueued::Skipped(job));
        }
    }
    let job = NewJob {
        kind: JobKind::LabelAndTaint.to_string(),
        server_id: Some(server_id),
        args: serde_json::json!({}),
    };
    queue.enqueue(&job).await.map(LabelAndTaintQueued::Queued)
}

/// `/config`'s label-job trigger: serving a node its config queues the node's label and taint
/// job ([`LabelAndTaintTrigger::ConfigServed`]) and, for a control plane of a cluster never
/// bootstrapped, the cluster's bootstrap job (`cluster_bootstrap`), so a [`JobQueue`] is what a
/// [`ConfigService`](crate::node_config::ConfigService) is handed by the service and by an
/// embedder that runs the jobs.
#[async_trait]
impl crate::node_config::ConfigServedHook for JobQueue {
    async fn config_served(
        &self,
        store: &Store,
        server: ServerId,
    ) -> Result<time::OffsetDateTime, StoreError> {
        let queued =
            queue_label_and_taint(self, store, server, LabelAndTaintTrigger::ConfigServed).await?;
        let job = match queued {
            LabelAndTaintQueued::Queued(job) => {
                // At most once per guard window per server, like the label job: a control
                // plane of a cluster never bootstrapped gets its cluster bootstrapped.
                super::queue_bootstrap_after_config_served(self, store, server).await?;
                job
            }
            LabelAndTaintQueued::Skipped(job) => job,
        };
        Ok(job.created_at + CONFIG_SERVED_GUARD)
    }
}

/// Why a label and taint rule was not saved.
#[derive(Debug, thiserror::Error)]
pub enum LabelTaintRuleError {
    /// The rule is not valid (every problem, with its field).
    #[error(transparent)]
    Invalid(#[from] crate::ValidationError),
    /// The rule does not exist, or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a label and taint rule and queues the label and taint job of every configured
/// server it concerns.
pub async fn create_label_taint_rule(
    queue: &JobQueue,
    store: &Store,
    fields: &LabelTaintRuleFields,
) -> Result<LabelTaintRule, LabelTaintRuleError> {
    fields.validate()?;
    let rule = store.create_label_taint_rule(fields).await?;
    queue_for_rule_change(queue, store, &[&rule.fields.name_match]).await;
    Ok(rule)
}

/// Replaces rule `id` and queues the label and taint job of every configured server the old
/// or the new rule concerns (what the old one applied is removed).
pub async fn update_label_taint_rule(
    queue: &JobQueue,
    store: &Store,
    id: LabelTaintRuleId,
    fields: &LabelTaintRuleFields,
) -> Result<LabelTaintRule, LabelTaintRuleError> {
    fields.validate()?;
    let before = store.get_label_taint_rule(id).await?;
    let rule = store.update_label_taint_rule(id, fields).await?;
    queue_for_rule_change(
        queue,
        store,
        &[&before.fields.name_match, &rule.fields.name_match],
    )
    .await;
    Ok(rule)
}

/// Deletes rule `id` and queues the label and taint job of every configured server it
/// concerned, so that what it applied is removed from the nodes.
pub async fn delete_label_taint_rule(
    queue: &JobQueue,
    store: &Store,
    id: LabelTaintRuleId,
) -> Result<(), StoreError> {
    let rule = store.get_label_taint_rule(id).await?;
    store.delete_label_taint_rule(id).await?;
    queue_for_rule_change(queue, store, &[&rule.fields.name_match]).await;
    Ok(())
}

/// Queues the label and taint job of every configured server whose name contains one of
/// `name_matches`: a rule change reaches the nodes it concerns, additions and removals alike.
/// The rule is saved by then, so a failure here is logged rather than returned: the next
/// config request or rule change queues the jobs again.
async fn queue_for_rule_change(queue: &JobQueue, store: &Store, name_matches: &[&str]) {
    let queued = async {
        for server_id in configured_servers_matching(store, name_matches).await? {
            queue_label_and_taint(queue, store, server_id, LabelAndTaintTrigger::RulesChanged)
                .await?;
        }
        Ok::<(), StoreError>(())
    };
    if let Err(error) = queued.await {
        tracing::warn!(error = %crate::error_chain(&error), "failed to queue label and taint jobs after a rule change");
    }
}
