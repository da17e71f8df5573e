//! The `sync` job: brings the stored servers in line with every provider account, logging each
//! account's progress and the report.

use async_trait::async_trait;
use talos_manager_core::error_chain;
use talos_manager_core::sync::{ProviderFactory, sync_all};

use super::{JobContext, JobError, JobHandler};

/// The kind of the sync job.
pub const SYNC_JOB: &str = "sync";

/// Runs fleet sync with the service's provider factory.
#[derive(Debug, Clone)]
pub struct SyncJob {
    providers: ProviderFactory,
}

impl SyncJob {
    /// A sync handler building clients with `providers`.
    pub fn new(providers: ProviderFactory) -> SyncJob {
        SyncJob { providers }
    }
}

#[async_trait]
impl JobHandler for SyncJob {
    fn kind(&self) -> &'static str {
        SYNC_JOB
    }

    fn repeatable(&self) -> bool {
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        context.log("syncing every provider account").await;
        let report = sync_all(context.store(), &self.providers).await?;
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
        context.log(format!("sync done: {report}")).await;
        if report.failures.is_empty() {
            Ok(())
        } else {
            Err(JobError::new(format!(
                "{} provider account(s) failed to sync",
                report.failures.len()
            )))
        }
    }
}
