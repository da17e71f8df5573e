//! Where a long operation records how far it has come, so that a run started again after a
//! crash continues there: [`JobCheckpoint`] on the job's row (`jobs.state`), or
//! [`MemoryCheckpoint`] for a run outside a job.

use std::sync::Mutex;

use serde_json::Value;

use crate::ids::JobId;
use crate::store::Store;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation} the checkpoint")]
pub struct CheckpointError {
    /// `read` or `save`.
    pub operation: &'static str,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// A place for one run's state (JSON, never secrets).
#[async_trait::async_trait]
pub trait Checkpoint: Send + Sync {
    /// What was saved last, `None` on a first run.
    async fn load(&self) -> Result<Option<Value>, CheckpointError>;
    /// Replaces what was saved.
    async fn save(&self, state: &Value) -> Result<(), CheckpointError>;
}

/// A job's `state` column ([`Store::job_state`], [`Store::set_job_state`]).
#[derive(Debug, Clone)]
pub struct JobCheckpoint {
    store: Store,
    job: JobId,
    worker: Option<String>,
}

impl JobCheckpoint {
    /// The checkpoint of job `job`, saved whoever holds the job (a run outside a worker).
    pub fn new(store: Store, job: JobId) -> JobCheckpoint {
        JobCheckpoint {
            store,
            job,
            worker: None,
        }
    }

    /// The same checkpoint, saved only while `worker` holds the job: a worker that lost the
    /// job to another replica gets [`crate::StoreError::LeaseLost`] and stops.
    pub fn held_by(mut self, worker: impl Into<String>) -> JobCheckpoint {
        self.worker = Some(worker.into());
        self
    }
}

#[async_trait::async_trait]
impl Checkpoint for JobCheckpoint {
    async fn load(&self) -> Result<Option<Value>, CheckpointError> {
        self.store
            .job_state(self.job)
            .await
            .map_err(|source| CheckpointError {
                operation: "read",
                source: Box::new(source),
            })
    }

    async fn save(&self, state: &Value) -> Result<(), CheckpointError> {
        self.store
            .set_job_state(self.job, self.worker.as_deref(), state)
            .await
            .map_err(|source| CheckpointError {
                operation: "save",
                source: Box::new(source),
            })
    }
}

/// A checkpoint in memory: survives nothing, but lets a caller without a job (or a test) run
/// and inspect the state.
#[derive(Debug, Default)]
pub struct MemoryCheckpoint {
    state: Mutex<Option<Value>>,
}

impl MemoryCheckpoint {
    /// What was saved last.
    pub fn state(&self) -> Option<Value> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

#[async_trait::async_trait]
impl Checkpoint for MemoryCheckpoint {
    async fn load(&self) -> Result<Option<Value>, CheckpointError> {
        Ok(self.state())
    }

    async fn save(&self, state: &Value) -> Result<(), CheckpointError> {
        *self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(state.clone());
        Ok(())
    }
}
