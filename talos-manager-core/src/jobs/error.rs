//! [`JobError`]: why a job failed.

use crate::StoreError;
use crate::bootstrap::BootstrapPlanError;
use crate::installer::{ImageUnavailable, InstallError, InvalidUuid};
use crate::lifecycle::{
    BootstrapRefusal, ClusterBootstrapError, ResetError, RollingError, RollingPlanError,
};
use crate::node_config::PushError;
use crate::node_labels::ReconcileError;
use crate::rescue::RescueError;

/// Why a job failed. The worker records [`error_chain`](crate::error_chain) of it as the job's
/// error and last log line (`failed: …`); a variant wrapping another error adds no words of its
/// own, so that text is the cause's.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job names no server: it was deleted since the job was queued.
    #[error("the job names no server (it was deleted?)")]
    NoServer,
    /// The job's stored arguments do not parse.
    #[error("the job's arguments cannot be read")]
    Arguments(#[source] serde_json::Error),
    /// The cluster's etcd bootstrap failed or was refused.
    #[error(transparent)]
    ClusterBootstrap(Box<ClusterBootstrapError>),
    /// Someone asked to stop the job (the worker records it as cancelled).
    #[error("stopped on request")]
    Cancelled,
    /// A bootstrap may not erase the server: a live node without `force`, or a control plane
    /// etcd cannot lose.
    #[error(transparent)]
    BootstrapGuard(Box<BootstrapRefusal>),
    /// A forced bootstrap of a live node, on a worker that cannot ask etcd.
    #[error(
        "a forced bootstrap of a live node needs the Talos API to check etcd, and this worker \
         has no Talos API settings"
    )]
    NoTalosApi,
    /// Entering the provider's rescue system failed.
    #[error(transparent)]
    Rescue(Box<RescueError>),
    /// The server has no IPv4 address to reach its rescue system at.
    #[error("server {server} has no IPv4 address to reach its rescue system at")]
    NoAddress {
        /// The server's name.
        server: String,
    },
    /// The server did not answer as a rescue system in time.
    #[error(
        "server {server} did not come up in rescue within {seconds}s (last attempt: \
         {last_attempt}); check it in the provider's console, then bootstrap again"
    )]
    RescueTimeout {
        /// The server's name.
        server: String,
        /// How long the job waited (`RESCUE_TIMEOUT`).
        seconds: u64,
        /// Why the last attempt to reach it failed.
        last_attempt: String,
    },
    /// The server's SMBIOS UUID cannot identify its node (with the support request).
    #[error(transparent)]
    Uuid(Box<InvalidUuid>),
    /// No bootstrap could be planned for the server.
    #[error(transparent)]
    BootstrapPlan(Box<BootstrapPlanError>),
    /// The image server refused the image the bootstrap would write (its own message), found
    /// before anything touched the server.
    #[error(transparent)]
    Image(Box<ImageUnavailable>),
    /// The HTTP client that checks the image could not be built.
    #[error(transparent)]
    ImageClient(Box<crate::provider::ProviderError>),
    /// Wiping the disk or writing the image failed.
    #[error(transparent)]
    Install(Box<InstallError>),
    /// Some provider accounts failed to sync (each one is in the job's log).
    #[error("{accounts} provider account(s) failed to sync")]
    Sync {
        /// How many failed.
        accounts: usize,
    },
    /// Resetting the node failed or was refused.
    #[error(transparent)]
    Reset(Box<ResetError>),
    /// No rolling upgrade or reboot could be planned.
    #[error(transparent)]
    RollingPlan(Box<RollingPlanError>),
    /// A rolling upgrade or reboot could not run.
    #[error(transparent)]
    Rolling(Box<RollingError>),
    /// A rolling upgrade or reboot ran and a node failed or was cancelled.
    #[error("{summary}")]
    RollingNodes {
        /// The run's summary (how many nodes were done, skipped, failed).
        summary: String,
    },
    /// Pushing the config to a node waiting in maintenance mode failed.
    #[error(transparent)]
    Push(Box<PushError>),
    /// Bringing the node's labels and taints in line failed.
    #[error(transparent)]
    Labels(Box<ReconcileError>),
    /// A config apply could not run, or a node failed.
    #[error(transparent)]
    ConfigApply(Box<crate::node_config::apply::ConfigApplyError>),
    /// A failure a job handler outside talos-manager describes itself.
    #[error("{0}")]
    Other(String),
}

impl JobError {
    /// A failure described by `message` (job handlers of programs embedding the core).
    pub fn new(message: impl Into<String>) -> JobError {
        JobError::Other(message.into())
    }
}
