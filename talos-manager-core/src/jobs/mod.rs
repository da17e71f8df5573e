//! Background jobs: durable rows in the database, run by workers in every service replica.
//!
//! The runtime ([`JobQueue`], [`Worker`], [`JobHandler`], [`JobContext`]) and every job
//! talos-manager runs, one file per kind ([`JobKind`]): [`SyncJob`], [`BootstrapJob`],
//! [`LabelAndTaintJob`], [`ResetJob`], [`RollingJob`] (upgrade, reboot), [`PushConfigJob`] and
//! [`ClusterBootstrapJob`].
//! A program embedding the core builds a [`JobQueue`] on its [`Store`], registers the handlers
//! it wants on a [`Worker`] with their settings ([`BootstrapSettings`], [`TalosSettings`],
//! [`LifecycleSettings`]), runs the worker, and enqueues jobs; what a job logs is in the store
//! ([`Store::job_log`]) as it runs. A [`JobObserver`] hears of every finished job (the service
//! counts them in `/metrics`).
//!
//! ```no_run
//! use talos_manager_core::Store;
//! use talos_manager_core::jobs::{JobKind, JobQueue, SyncJob, Worker};
//! use talos_manager_core::store::NewJob;
//! use talos_manager_core::sync::ProviderFactory;
//!
//! # async fn example(store: Store, providers: ProviderFactory) -> Result<(), Box<dyn std::error::Error>> {
//! let queue = JobQueue::new(store.clone());
//! let worker = Worker::new(queue.clone(), Worker::unique_id()?).register(SyncJob::new(providers));
//! let (stop, mut stopped) = tokio::sync::watch::channel(false);
//! let running = tokio::spawn(worker.run(async move {
//!     let _ = stopped.wait_for(|stop| *stop).await;
//! }));
//! let job = queue
//!     .enqueue(&NewJob {
//!         kind: JobKind::Sync.to_string(),
//!         server_id: None,
//!         args: serde_json::json!({}),
//!     })
//!     .await?;
//! # let _ = (job, stop, running);
//! # Ok(())
//! # }
//! ```
//!
//! # Expected flow
//! Something enqueues a job ([`JobQueue::enqueue`]). A worker claims it (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so replicas sharing a database never run a job twice), runs the
//! [`JobHandler`] registered for its kind, appends log lines as it goes (the API streams them
//! live), and records how it ended.
//!
//! # Guarantees
//! - While a job runs, its worker sends a heartbeat every few seconds. A running job whose
//!   heartbeat stopped (its worker crashed or was killed) is recovered by any replica: put back
//!   in the queue when its kind is [`JobHandler::repeatable`], failed with a reason otherwise.
//!   No job stays `running` forever.
//! - A cancel request reaches the handler at the next heartbeat through
//!   [`JobContext::cancelled`]; a handler that stops then ends the job as `cancelled`.
//! - A handler that panics fails its job; the worker goes on.
//! - A job runs on one worker at a time. A worker that cannot renew its lease (the heartbeat)
//!   stops the job's handler one heartbeat before `abandoned_after` runs out, before any
//!   other replica may recover it; and finishing a job, its progress and its checkpoints are
//!   written only while the worker still holds it (`locked_by`), so a worker that lost a job
//!   changes nothing about the run that took it over.
//!
//! # Assumptions
//! Clocks of replicas sharing a database agree within a few seconds (heartbeats are compared
//! with the reader's clock).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Job, JobOutcome, JobStatus, NewJob};
use crate::{Store, StoreError, error_chain};
use tokio::sync::{Notify, Semaphore, watch};

mod bootstrap;
mod cluster_bootstrap;
mod config_apply;
mod error;
mod kind;
mod label_and_taint;
mod lifecycle;
mod push_config;
mod sync;

pub use bootstrap::{BOOTSTRAP_ABANDONED, BootstrapArgs, BootstrapJob, BootstrapSettings};
pub use cluster_bootstrap::{
    ClusterBootstrapArgs, ClusterBootstrapJob, QueueClusterBootstrapError, bootstrap_scope,
    queue_bootstrap_after_config_served, queue_cluster_bootstrap,
};
pub use config_apply::{
    ConfigApplyArgs, ConfigApplyJob, QueueConfigApplyError, queue_config_apply,
};
pub use error::JobError;
pub use kind::{JobKind, UnknownJobKind};
pub use label_and_taint::{
    CONFIG_SERVED_GUARD, LabelAndTaintJob, LabelAndTaintQueued, LabelAndTaintTrigger,
    LabelTaintRuleError, create_label_taint_rule, delete_label_taint_rule, queue_label_and_taint,
    update_label_taint_rule,
};
pub use lifecycle::{
    LifecycleSettings, ResetArgs, ResetJob, RollingArgs, RollingJob, cluster_scope,
};
pub use push_config::{PushConfigJob, TalosSettings, queue_push_if_waiting};
pub use sync::SyncJob;

/// Why a job that is not [`JobHandler::repeatable`] failed when its worker stopped mid-run,
/// unless its handler says better.
pub const ABANDONED: &str = "abandoned: the worker running it stopped (crash or restart)";

/// Hears of every job a [`Worker`] finishes (the service counts them in `/metrics`).
pub trait JobObserver: Send + Sync + 'static {
    /// A job of `kind` ended as `outcome` (`Succeeded`, `Failed` or `Cancelled`), and that was
    /// recorded. Called on the worker's task: return quickly.
    fn job_finished(&self, kind: &str, outcome: JobStatus);
}

/// Runs the jobs of one kind.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The kind of job it runs: a [`JobKind`]'s [`as_str`](JobKind::as_str) for talos-manager's
    /// own jobs (`sync`, `bootstrap`, `label_and_taint`, …), any other name for a program's own.
    fn kind(&self) -> &'static str;

    /// Whether a job of this kind that a crash interrupted may simply run again from the start.
    fn repeatable(&self) -> bool;

    /// Why a job of this kind failed when its worker stopped mid-run (kinds that are not
    /// repeatable); say what state that leaves things in.
    fn abandoned_reason(&self) -> &'static str {
        ABANDONED
    }

    /// Runs one job. Log progress with [`JobContext::log`]; stop early when
    /// [`JobContext::cancelled`] resolves.
    async fn run(&self, context: &JobContext) -> Result<(), JobError>;
}

/// What a running job can reach.
pub struct JobContext {
    store: Store,
    job: Job,
    worker: String,
    cancelled: watch::Receiver<bool>,
}

impl JobContext {
    /// The id of the worker running the job: writes about the job (progress, checkpoints) are
    /// fenced with it, so a worker that lost the job changes nothing.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The job, as claimed.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server the job is about; a failure when it names none (its server was deleted).
    pub fn server_id(&self) -> Result<crate::ids::ServerId, JobError> {
        self.job.server_id.ok_or(JobError::NoServer)
    }

    /// Appends a line to the job's log (streamed live by the API). A line that cannot be
    /// stored is logged by the service instead; the job goes on.
    pub async fn log(&self, line: impl AsRef<str>) {
        if let Err(error) = self.store.append_job_log(self.job.id, line.as_ref()).await {
            tracing::warn!(job = %self.job.id, error = %error_chain(&error), "failed to store a job log line");
        }
    }

    /// Whether someone asked to stop the job.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Resolves when someone asks to stop the job (never, otherwise).
    pub async fn cancelled(&self) {
        let mut cancelled = self.cancelled.clone();
        if cancelled.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A job's log as a [`ProgressLog`](crate::progress::ProgressLog):
/// each line the core reports is appended to the job's log.
pub(crate) struct JobLog<'a>(pub(crate) &'a JobContext);

#[async_trait::async_trait]
impl crate::progress::ProgressLog for JobLog<'_> {
    async fn line(&self, line: String) {
        self.0.log(line).await;
    }
}

/// Enqueues jobs and wakes this replica's worker at once.
#[derive(Clone, Debug)]
pub struct JobQueue {
    store: Store,
    wake: Arc<Notify>,
}

impl JobQueue {
    /// A queue on `store`.
    pub fn new(store: Store) -> JobQueue {
        JobQueue {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Adds a job to the queue.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Job, StoreError> {
        let job = self.store.enqueue_job(job).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Enqueues a job that must not run beside another active job of `scope`
    /// ([`StoreError::Conflict`] while one is queued or running).
    pub async fn enqueue_exclusive(&self, job: &NewJob, scope: &str) -> Result<Job, StoreError> {
        let job = self.store.enqueue_exclusive_job(job, scope).await?;
        self.wake.notify_one();
        Ok(job)
    }
}

/// How a worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerTiming {
    /// How often to look for queued jobs when nothing woke the worker.
    pub poll: Duration,
    /// How often a running job's heartbeat is sent.
    pub heartbeat: Duration,
    /// How old a heartbeat may be before its job counts as abandoned.
    pub abandoned_after: Duration,
}

impl Default for WorkerTiming {
    fn default() -> Self {
        WorkerTiming {
            poll: Duration::from_secs(2),
            heartbeat: Duration::from_secs(5),
            abandoned_after: Duration::from_secs(60),
        }
    }
}

/// Claims and runs jobs until shut down.
pub struct Worker {
    queue: JobQueue,
    id: String,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    concurrency: usize,
    timing: WorkerTiming,
    observer: Option<Arc<dyn JobObserver>>,
}

impl Worker {
    /// A worker named `id` (unique among replicas) taking jobs from `queue`.
    pub fn new(queue: JobQueue, id: impl Into<String>) -> Worker {
        Worker {
            queue,
            id: id.into(),
            handlers: HashMap::new(),
            concurrency: 8,
            timing: WorkerTiming::default(),
            observer: None,
        }
    }

    /// A worker id unique to this process: host name, process id and a random suffix.
    ///
    /// # Errors
    ///
    /// [`RandomError`](crate::random::RandomError) when the random generator fails.
    pub fn unique_id() -> Result<String, crate::random::RandomError> {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "talos-manager".to_owned());
        let random = crate::random::random_bytes::<4>(&mut crate::random::SystemRandom)?;
        Ok(format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            u32::from_be_bytes(random)
        ))
    }

    /// Runs jobs of `handler`'s kind.
    pub fn register(mut self, handler: impl JobHandler) -> Worker {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    /// Runs at most `concurrency` jobs at once (default 8).
    pub fn concurrency(mut self, concurrency: usize) -> Worker {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Paces the worker (tests use short intervals).
    pub fn timing(mut self, timing: WorkerTiming) -> Worker {
        self.timing = timing;
        self
    }

    /// Tells `observer` of every job this worker finishes.
    pub fn observer(mut self, observer: Arc<dyn JobObserver>) -> Worker {
        self.observer = Some(observer);
        self
    }

    /// Claims and runs jobs until `shutdown` resolves, then waits for the jobs in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let worker = Arc::new(self);
        let slots = Arc::new(Semaphore::new(worker.concurrency));
        let repeatable: Vec<&'static str> = worker
            .handlers
            .values()
            .filter(|handler| handler.repeatable())
            .map(|handler| handler.kind())
            .collect();
        tracing::info!(worker = %worker.id, kinds = ?worker.handlers.keys().collect::<Vec<_>>(), "job worker started");
        tokio::pin!(shutdown);
        loop {
            worker.recover_abandoned(&repeatable).await;
            worker.claim_and_spawn(&slots).await;
            tokio::select! {
                () = &mut shutdown => break,
                () = worker.queue.wake.notified() => {}
                () = tokio::time::sleep(worker.timing.poll) => {}
            }
        }
        // Wait for the jobs in flight: each holds a slot.
        let all = u32::try_from(worker.concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        tracing::info!(worker = %worker.id, "job worker stopped");
    }

    async fn recover_abandoned(&self, repeatable: &[&str]) {
        let stale_before = time::OffsetDateTime::now_utc() - self.timing.abandoned_after;
        match self
            .queue
            .store
            .recover_abandoned_jobs(stale_before, repeatable)
            .await
        {
            Ok(jobs) => {
                for job in jobs {
                    tracing::warn!(job = %job.id, kind = %job.kind, status = job.status.as_str(), "recovered an abandoned job");
                    if job.status == JobStatus::Failed {
                        self.explain_abandoned(&job).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to recover abandoned jobs")
            }
        }
    }

    /// Gives a job failed as abandoned its handler's reason, also as the last log line.
    async fn explain_abandoned(&self, job: &Job) {
        let reason = self
            .handlers
            .get(job.kind.as_str())
            .map_or(ABANDONED, |handler| handler.abandoned_reason());
        let store = &self.queue.store;
        if let Err(error) = store
            .append_job_log(job.id, &format!("failed: {reason}"))
            .await
        {
            tracing::warn!(job = %job.id, error = %error_chain(&error), "failed to store a job log line");
        }
        if reason != ABANDONED
            && let Err(error) = store.set_abandoned_reason(job.id, reason).await
        {
            tracing::warn!(job = %job.id, error = %error_chain(&error), "failed to record why a job was abandoned");
        }
    }

    async fn claim_and_spawn(self: &Arc<Self>, slots: &Arc<Semaphore>) {
        loop {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                return;
            };
            let job = match self.queue.store.claim_job(&self.id).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "failed to claim a job");
                    return;
                }
            };
            let worker = self.clone();
            tokio::spawn(async move {
                worker.run_job(job).await;
                drop(slot);
            });
        }
    }

    async fn run_job(self: Arc<Self>, job: Job) {
        let store = self.queue.store.clone();
        let (job_id, kind) = (job.id, job.kind.clone());
        let Some(handler) = self.handlers.get(kind.as_str()).cloned() else {
            let reason =
                format!("no handler for jobs of kind {kind:?} in this version of talos-manager");
            self.finish(job_id, JobOutcome::Failed(&reason)).await;
            return;
        };
        tracing::info!(job = %job_id, %kind, attempt = job.attempts, "job started");
        let (cancel_sender, cancelled) = watch::channel(job.cancel_requested);
        let context = Arc::new(JobContext {
            store: store.clone(),
            job,
            worker: self.id.clone(),
            cancelled,
        });
        let run = tokio::spawn({
            let context = context.clone();
            async move { handler.run(&context).await }
        });
        tokio::pin!(run);
        let mut heartbeat = tokio::time::interval(self.timing.heartbeat);
        heartbeat.tick().await;
        // The lease: another replica may recover the job once its heartbeat is older than
        // `abandoned_after`, so this worker stops it one heartbeat before that when it could
        // not renew it (the database is unreachable from here, or answers too slowly).
        let lease = self
            .timing
            .abandoned_after
            .saturating_sub(self.timing.heartbeat);
        let mut lease_ends = tokio::time::Instant::now() + lease;
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                () = tokio::time::sleep_until(lease_ends) => {
                    tracing::error!(job = %job_id, "could not renew the job's lease within {:?}; stopping it, another replica may take it over", self.timing.abandoned_after);
                    run.abort();
                    return;
                }
                _ = heartbeat.tick() => {
                    let renewed = tokio::time::timeout(
                        self.timing.heartbeat,
                        store.heartbeat_job(job_id, &self.id),
                    )
                    .await;
                    match renewed {
                        Ok(Ok(Some(cancel))) => {
                            lease_ends = tokio::time::Instant::now() + lease;
                            cancel_sender.send_replace(cancel);
                        }
                        Ok(Ok(None)) => {
                            // Another replica recovered it: stop, and leave its row alone.
                            tracing::warn!(job = %job_id, "lost a job to recovery; stopping it");
                            run.abort();
                            return;
                        }
                        Ok(Err(error)) => tracing::warn!(job = %job_id, error = %error_chain(&error), "heartbeat failed"),
                        Err(_) => tracing::warn!(job = %job_id, "heartbeat timed out"),
                    }
                }
            }
        };
        let reason = match &result {
            Ok(Err(error)) => error_chain(error).to_string(),
            _ => String::new(),
        };
        let outcome = match &result {
            Ok(Ok(())) => JobOutcome::Succeeded,
            Ok(Err(_)) if context.is_cancelled() => JobOutcome::Cancelled,
            Ok(Err(_)) => JobOutcome::Failed(&reason),
            Err(_) => JobOutcome::Failed("the job's handler panicked; the service log has details"),
        };
        match outcome {
            JobOutcome::Failed(reason) => context.log(format!("failed: {reason}")).await,
            JobOutcome::Cancelled => context.log("cancelled").await,
            JobOutcome::Succeeded => {}
        }
        self.finish(job_id, outcome).await;
    }

    async fn finish(&self, job: crate::ids::JobId, outcome: JobOutcome<'_>) {
        match self.queue.store.finish_job(job, &self.id, outcome).await {
            Ok(job) => {
                tracing::info!(job = %job.id, kind = %job.kind, status = job.status.as_str(), "job finished");
                if let Some(observer) = &self.observer {
                    observer.job_finished(&job.kind, job.status);
                }
            }
            Err(error @ StoreError::LeaseLost { .. }) => {
                tracing::error!(%job, error = %error_chain(&error), "the job was taken over by another replica; its outcome here is not recorded");
            }
            Err(error) => {
                tracing::error!(%job, error = %error_chain(&error), "failed to record how a job ended");
            }
        }
    }
}
