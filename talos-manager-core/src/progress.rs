//! [`ProgressLog`]: where a long operation reports progress, one readable line at a time (a
//! job's log). Lifecycle operations, drains, config pushes and label reconciliation write to it.

/// Where an operation reports progress, one line at a time (a job's log).
#[async_trait::async_trait]
pub trait ProgressLog: Send + Sync {
    /// Records one line.
    async fn line(&self, line: String);
}
