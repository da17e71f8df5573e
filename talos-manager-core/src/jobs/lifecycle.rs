//! The lifecycle jobs of running nodes (see `crate::lifecycle`): `reset` (one
//! server, to maintenance mode, wiped, or wiped and into rescue), and the rolling `upgrade` and
//! `reboot` of a cluster or a selection of its servers, node after node.
//!
//! Only one of them runs per cluster at a time: they are enqueued in the scope
//! [`cluster_scope`], and a second one is refused while one is queued or running.
//!
//! A rolling job interrupted by a crash or restart is queued again and continues where it
//! stopped (its per-node progress is stored on the job row). A reset is not repeated: the node
//! may already be wiped, so the job fails and says what to check.

use std::fmt;

use crate::ids::{ClusterId, ServerId};
use crate::kubernetes::{ClientTimeouts, PodPolicy};
use crate::lifecycle::{
    JobCheckpoint, LifecycleContext, LifecycleTiming, NodeOutcome, ResetProfile, RollingAction,
    RollingTarget, plan_rolling, reset_server, run_rolling,
};
use crate::sync::ProviderFactory;
use async_trait::async_trait;

use super::{BootstrapSettings, JobContext, JobError, JobHandler, JobKind, JobLog, TalosSettings};

/// The exclusive scope of a cluster's lifecycle jobs: one at a time per cluster.
pub fn cluster_scope(cluster: ClusterId) -> String {
    format!("cluster:{cluster}")
}

/// What lifecycle jobs run with.
#[derive(Clone)]
pub struct LifecycleSettings {
    /// The Talos API client and port.
    pub talos: TalosSettings,
    /// Builds provider clients (a reset to rescue).
    pub providers: ProviderFactory,
    /// How long to wait and how often to ask.
    pub timing: LifecycleTiming,
    /// The bootstrap settings, for what lifecycle jobs share with bootstraps: `SSH_PRIVATE_KEY`,
    /// authorised for the rescue system of a reset to rescue, and the Image Factory installer
    /// images come from (`TALOS_IMAGE_FACTORY_URL`, the environment's `image_factory_url`).
    pub bootstrap: BootstrapSettings,
}

impl fmt::Debug for LifecycleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleSettings")
            .field("talos", &self.talos)
            .field("timing", &self.timing)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl LifecycleSettings {
    pub(super) async fn run<T>(
        &self,
        context: &JobContext,
        operation: impl AsyncFnOnce(&LifecycleContext<'_>) -> T,
    ) -> T {
        let log = JobLog(context);
        let is_cancelled = || context.is_cancelled();
        let lifecycle = LifecycleContext {
            store: context.store(),
            talos: self.talos.connector.as_ref(),
            talos_port: self.talos.port,
            providers: &self.providers,
            ssh_private_key: self.bootstrap.ssh_private_key.as_ref(),
            kubernetes: ClientTimeouts::default(),
            timing: self.timing,
            log: &log,
            is_cancelled: &is_cancelled,
        };
        operation(&lifecycle).await
    }
}

/// The arguments of a reset job (its server is the job's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResetArgs {
    /// What to wipe and where the server ends up.
    pub profile: ResetProfile,
    /// Reset even when etcd would lose its last member or its majority.
    pub force: bool,
}

/// Resets one server's node.
#[derive(Debug, Clone)]
pub struct ResetJob {
    settings: LifecycleSettings,
}

impl ResetJob {
    /// A handler with `settings`.
    pub fn new(settings: LifecycleSettings) -> ResetJob {
        ResetJob { settings }
    }
}

#[async_trait]
impl JobHandler for ResetJob {
    fn kind(&self) -> &'static str {
        JobKind::Reset.as_str()
    }

    fn repeatable(&self) -> bool {
        false
    }

    fn abandoned_reason(&self) -> &'static str {
        "abandoned: the service stopped during the reset; the node may be wiped already. \
         Check the server's state, then reset it again if it still runs"
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let server_id: ServerId = context.server_id()?;
        let args: ResetArgs =
            serde_json::from_value(context.job().args.clone()).map_err(JobError::Arguments)?;
        let outcome = self
            .settings
            .run(context, async |lifecycle| {
                reset_server(lifecycle, server_id, args.profile, args.force).await
            })
            .await
            .map_err(|error| JobError::Reset(Box::new(error)))?;
        for warning in &outcome.warnings {
            context.log(format!("warning: {warning}")).await;
        }
        context
            .log(format!(
                "reset of {} to {} done",
                outcome.server.inventory.name,
                outcome.profile.as_str()
            ))
            .await;
        Ok(())
    }
}

/// The arguments of a rolling job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollingArgs {
    /// The cluster, when the whole cluster is the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<ClusterId>,
    /// The servers, when a selection is the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_ids: Vec<ServerId>,
    /// The upgrade's target version (upgrade jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talos_version: Option<String>,
    /// Which pods the drain may evict beyond `kubectl drain`'s defaults.
    #[serde(default, flatten)]
    pub pod_policy: PodPolicy,
}

impl RollingArgs {
    /// The servers the job covers.
    pub fn target(&self) -> RollingTarget {
        match (self.cluster_id, self.server_ids.as_slice()) {
            (Some(cluster), _) => RollingTarget::Cluster(cluster),
            (None, [server]) => RollingTarget::Server(*server),
            (None, servers) => RollingTarget::Servers(servers.to_vec()),
        }
    }

    /// What the job does to each node.
    pub fn action(&self) -> RollingAction {
        match &self.talos_version {
            Some(version) => RollingAction::Upgrade {
                talos_version: version.clone(),
            },
            None => RollingAction::Reboot,
        }
    }
}

/// Upgrades or reboots nodes one after the other.
#[derive(Debug, Clone)]
pub struct RollingJob {
    kind: JobKind,
    settings: LifecycleSettings,
}

impl RollingJob {
    /// The rolling upgrade handler.
    pub fn upgrade(settings: LifecycleSettings) -> RollingJob {
        RollingJob {
            kind: JobKind::Upgrade,
            settings,
        }
    }

    /// The rolling reboot handler.
    pub fn reboot(settings: LifecycleSettings) -> RollingJob {
        RollingJob {
            kind: JobKind::Reboot,
            settings,
        }
    }
}

#[async_trait]
impl JobHandler for RollingJob {
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    fn repeatable(&self) -> bool {
        // Its checkpoint makes a second run continue where the first stopped.
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let args: RollingArgs =
            serde_json::from_value(context.job().args.clone()).map_err(JobError::Arguments)?;
        let plan = plan_rolling(
            context.store(),
            &args.target(),
            &args.action(),
            &self.settings.bootstrap.environment.image_factory_url,
        )
        .await
        .map_err(|error| JobError::RollingPlan(Box::new(error)))?
        .with_pod_policy(args.pod_policy);
        for line in plan.to_string().lines() {
            context.log(line).await;
        }
        let checkpoint =
            JobCheckpoint::new(context.store().clone(), context.job().id).held_by(context.worker());
        let report = self
            .settings
            .run(context, async |lifecycle| {
                run_rolling(lifecycle, &plan, &checkpoint).await
            })
            .await
            .map_err(|error| JobError::Rolling(Box::new(error)))?;
        for node in &report.nodes {
            let outcome = match &node.outcome {
                NodeOutcome::Done => "done".to_owned(),
                NodeOutcome::Skipped { reason } => format!("skipped: {reason}"),
                NodeOutcome::Failed { reason } => format!("failed: {reason}"),
                NodeOutcome::Cancelled { reason } => format!("cancelled: {reason}"),
                NodeOutcome::Untouched => "untouched".to_owned(),
            };
            context
                .log(format!(
                    "{} ({}): {outcome}",
                    node.hostname, node.server_name
                ))
                .await;
        }
        context.log(report.summary()).await;
        if report.succeeded() {
            Ok(())
        } else {
            Err(JobError::RollingNodes {
                summary: report.summary(),
            })
        }
    }
}
