//! The lifecycle jobs of running nodes (see `talos_manager_core::lifecycle`): `reset` (one
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
use std::time::Duration;

use async_trait::async_trait;
use talos_manager_core::Secret;
use talos_manager_core::ids::{ClusterId, ServerId};
use talos_manager_core::kubernetes::{ClientTimeouts, DrainOptions};
use talos_manager_core::lifecycle::{
    JobCheckpoint, LifecycleContext, LifecycleTiming, NodeOutcome, ResetProfile, RollingAction,
    RollingTarget, plan_rolling, reset_server, run_rolling,
};
use talos_manager_core::sync::ProviderFactory;

use super::{JobContext, JobError, JobHandler, JobLog, TalosSettings};

/// The kind of the reset job.
pub const RESET_JOB: &str = "reset";
/// The kind of the rolling upgrade job.
pub const UPGRADE_JOB: &str = "upgrade";
/// The kind of the rolling reboot job.
pub const REBOOT_JOB: &str = "reboot";

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
    /// `SSH_PRIVATE_KEY`, authorised for the rescue system of a reset to rescue.
    pub ssh_private_key: Option<Secret<String>>,
    /// How long to wait and how often to ask.
    pub timing: LifecycleTiming,
    /// The Image Factory installer images come from (`TALOS_IMAGE_FACTORY_URL`).
    pub image_factory_url: String,
}

impl fmt::Debug for LifecycleSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleSettings")
            .field("talos", &self.talos)
            .field("timing", &self.timing)
            .field("image_factory_url", &self.image_factory_url)
            .finish_non_exhaustive()
    }
}

impl LifecycleSettings {
    /// The settings of the service: `TALOS_API_PORT`, `DRAIN_TIMEOUT`, `NODE_READY_TIMEOUT`,
    /// `ETCD_REJOIN_TIMEOUT`,
    /// `SSH_PRIVATE_KEY`, `TALOS_IMAGE_FACTORY_URL`.
    pub fn from_config(
        config: &crate::config::ServiceConfig,
        providers: ProviderFactory,
    ) -> LifecycleSettings {
        let defaults = LifecycleTiming::default();
        LifecycleSettings {
            talos: TalosSettings::from_config(config),
            providers,
            ssh_private_key: config.ssh_private_key.clone(),
            timing: LifecycleTiming {
                node_back: Duration::from_secs(config.node_ready_timeout_seconds),
                etcd_rejoin: Duration::from_secs(config.etcd_rejoin_timeout_seconds),
                drain: DrainOptions {
                    timeout: Duration::from_secs(config.drain_timeout_seconds),
                    ..defaults.drain
                },
                ..defaults
            },
            image_factory_url: config.image_factory_url.clone(),
        }
    }

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
            ssh_private_key: self.ssh_private_key.as_ref(),
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
        RESET_JOB
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
        let args: ResetArgs = serde_json::from_value(context.job().args.clone())
            .map_err(|error| JobError::new(format!("unreadable job arguments: {error}")))?;
        let outcome = self
            .settings
            .run(context, async |lifecycle| {
                reset_server(lifecycle, server_id, args.profile, args.force).await
            })
            .await
            .map_err(|error| JobError::from_error(&error))?;
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
    kind: &'static str,
    settings: LifecycleSettings,
}

impl RollingJob {
    /// The rolling upgrade handler.
    pub fn upgrade(settings: LifecycleSettings) -> RollingJob {
        RollingJob {
            kind: UPGRADE_JOB,
            settings,
        }
    }

    /// The rolling reboot handler.
    pub fn reboot(settings: LifecycleSettings) -> RollingJob {
        RollingJob {
            kind: REBOOT_JOB,
            settings,
        }
    }
}

#[async_trait]
impl JobHandler for RollingJob {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn repeatable(&self) -> bool {
        // Its checkpoint makes a second run continue where the first stopped.
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let args: RollingArgs = serde_json::from_value(context.job().args.clone())
            .map_err(|error| JobError::new(format!("unreadable job arguments: {error}")))?;
        let plan = plan_rolling(
            context.store(),
            &args.target(),
            &args.action(),
            &self.settings.image_factory_url,
        )
        .await
        .map_err(|error| JobError::from_error(&error))?;
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
            .map_err(|error| JobError::from_error(&error))?;
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
            Err(JobError::new(report.summary()))
        }
    }
}
