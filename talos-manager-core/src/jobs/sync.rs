//! The `sync` job: brings the stored servers in line with every provider account, probes them
//! over SSH, and logs each failing account and the report.

use std::sync::Arc;

use crate::error_chain;
use crate::sync::{ProviderFactory, ServerProber, SyncPolicy, sync_all_with};
use async_trait::async_trait;

use super::{JobContext, JobError, JobHandler, JobKind};

/// Runs fleet sync with the service's provider factory, then probes every server with its
/// prober (none without `SSH_PRIVATE_KEY`: probing is then skipped).
#[derive(Clone)]
pub struct SyncJob {
    providers: ProviderFactory,
    prober: Option<Arc<dyn ServerProber>>,
    policy: SyncPolicy,
}

impl std::fmt::Debug for SyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncJob")
            .field("providers", &self.providers)
            .field("probes", &self.prober.is_some())
            .field("policy", &self.policy)
            .finish()
    }
}

impl SyncJob {
    /// A sync handler building clients with `providers`, without probing.
    pub fn new(providers: ProviderFactory) -> SyncJob {
        SyncJob {
            providers,
            prober: None,
            policy: SyncPolicy::default(),
        }
    }

    /// The same handler, deleting what accounts no longer list under `policy`
    /// (`SYNC_MISSING_SYNCS`, `SYNC_MISSING_GRACE`, `SYNC_MAX_MISSING_PERCENT`).
    pub fn with_policy(mut self, policy: SyncPolicy) -> SyncJob {
        self.policy = policy;
        self
    }

    /// The same handler, probing every server with `prober` after each sync.
    pub fn with_prober(mut self, prober: Arc<dyn ServerProber>) -> SyncJob {
        self.prober = Some(prober);
        self
    }
}

#[async_trait]
impl JobHandler for SyncJob {
    fn kind(&self) -> &'static str {
        JobKind::Sync.as_str()
    }

    fn repeatable(&self) -> bool {
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        context.log("syncing every provider account").await;
        // Stopping mid-sync loses nothing: each server is written in one statement, servers
        // that vanished are marked (and deleted once missing long enough) one statement each
        // after every listing succeeded, and the next sync picks up where this one stopped.
        let sync = sync_all_with(
            context.store(),
            &self.providers,
            self.prober.clone(),
            &self.policy,
        );
        let report = tokio::select! {
            report = sync => report?,
            () = context.cancelled() => return Err(JobError::Cancelled),
        };
        for failure in &report.failures {
            context
                .log(format!(
                    "{} account {:?}: {}",
                    failure.provider,
                    failure.name,
                    error_chain(&failure.error)
                ))
                .await;
        }
        for (account_id, why) in &report.held_back {
            context
                .log(format!("provider account {account_id}: {why}"))
                .await;
        }
        context.log(format!("sync done: {report}")).await;
        if report.failures.is_empty() {
            Ok(())
        } else {
            Err(JobError::Sync {
                accounts: report.failures.len(),
            })
        }
    }
}
