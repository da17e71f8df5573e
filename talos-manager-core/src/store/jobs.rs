//! Background jobs and their log lines: durable, so they survive a restart, and claimable by one
//! replica at a time.

use time::OffsetDateTime;

use super::{Backend, Store, StoreError, now, on_pool, sql};
use crate::ids::{JobId, JobLogLineId, ServerId};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Done.
    Succeeded,
    /// Gave up; `last_error` says why.
    Failed,
}

impl JobStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "succeeded" => Ok(JobStatus::Succeeded),
            "failed" => Ok(JobStatus::Failed),
            _ => Err(StoreError::Corrupt {
                column: "jobs.status",
                value: value.to_owned(),
            }),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What to do (`sync`, `bootstrap`, `label_and_taint`, …).
    pub kind: String,
    /// The server it is about, if any.
    pub server_id: Option<ServerId>,
    /// Kind-specific arguments as JSON. Never put secrets here.
    pub args: serde_json::Value,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What to do.
    pub kind: String,
    /// The server it is about, if any.
    pub server_id: Option<ServerId>,
    /// Kind-specific arguments.
    pub args: serde_json::Value,
    /// Where it is in its life.
    pub status: JobStatus,
    /// How many times a worker claimed it.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not to be claimed before this time.
    pub run_after: OffsetDateTime,
    /// The worker holding it while running.
    pub locked_by: Option<String>,
    /// When it was enqueued.
    pub created_at: OffsetDateTime,
    /// When the last attempt started.
    pub started_at: Option<OffsetDateTime>,
    /// When it succeeded or failed.
    pub finished_at: Option<OffsetDateTime>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobLogLine {
    /// Its id; increasing within a job, so readers resume after the last id they saw.
    pub id: JobLogLineId,
    /// When it was written.
    pub at: OffsetDateTime,
    /// The text.
    pub line: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: JobId,
    kind: String,
    server_id: Option<ServerId>,
    args: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    run_after: OffsetDateTime,
    locked_by: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
}

impl TryFrom<Row> for Job {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        let args = serde_json::from_str(&row.args).map_err(|_| StoreError::Corrupt {
            column: "jobs.args",
            value: row.args.clone(),
        })?;
        Ok(Job {
            id: row.id,
            kind: row.kind,
            server_id: row.server_id,
            args,
            status: JobStatus::parse(&row.status)?,
            attempts: row.attempts,
            last_error: row.last_error,
            run_after: row.run_after,
            locked_by: row.locked_by,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

const COLUMNS: &str = "id, kind, server_id, args, status, attempts, last_error, run_after, \
                       locked_by, created_at, started_at, finished_at";

impl Store {
    /// Adds a job to the queue, runnable now.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<Job, StoreError> {
        let sql = sql!(
            "INSERT INTO jobs (kind, server_id, args, status, attempts, run_after, created_at) \
             VALUES ($1, $2, $3, 'queued', 0, $4, $4) RETURNING {COLUMNS}"
        );
        let row: Row = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&job.kind)
            .bind(job.server_id)
            .bind(job.args.to_string())
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("job", "enqueue job", e))?;
        row.try_into()
    }

    /// Claims the oldest runnable job for `worker`, if any. On PostgreSQL, concurrent workers
    /// (several replicas) never claim the same job: rows being claimed are skipped.
    pub async fn claim_job(&self, worker: &str) -> Result<Option<Job>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite runs one writer at a time, so the statement is atomic as it is.
            Backend::Sqlite => "",
        };
        let sql = sql!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
             started_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= $2 \
             ORDER BY run_after, id LIMIT 1 {lock}) AND status = 'queued' RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(worker)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("claim job"))?;
        row.map(TryInto::try_into).transpose()
    }

    /// Marks a running job done: succeeded, or failed with the reason.
    pub async fn finish_job(
        &self,
        id: JobId,
        outcome: Result<(), &str>,
    ) -> Result<Job, StoreError> {
        let (status, error) = match outcome {
            Ok(()) => (JobStatus::Succeeded, None),
            Err(error) => (JobStatus::Failed, Some(error)),
        };
        let sql = sql!(
            "UPDATE jobs SET status = $2, last_error = $3, finished_at = $4, locked_by = NULL \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("finish job"))?;
        row.ok_or_else(|| StoreError::not_found("job", id))?
            .try_into()
    }

    /// Puts jobs left `running` by `worker` back in the queue (after a crash or restart).
    /// Returns how many were requeued.
    pub async fn requeue_jobs_of(&self, worker: &str) -> Result<u64, StoreError> {
        let sql = "UPDATE jobs SET status = 'queued', locked_by = NULL \
                   WHERE status = 'running' AND locked_by = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("requeue jobs"))
    }

    /// One job.
    pub async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        let row: Row = self.get_row("jobs", COLUMNS, "job", id.0).await?;
        row.try_into()
    }

    /// Every job, newest first.
    pub async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<Row> = self.list_rows("jobs", COLUMNS, "id DESC").await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Appends a line to a job's log.
    pub async fn append_job_log(&self, id: JobId, line: &str) -> Result<JobLogLine, StoreError> {
        let sql = "INSERT INTO job_log_lines (job_id, at, line) VALUES ($1, $2, $3) \
                   RETURNING id, at, line";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(now())
            .bind(line)
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("job log line", "append job log", e))
    }

    /// The lines of a job's log after `after` (all when `None`), oldest first.
    pub async fn job_log(
        &self,
        id: JobId,
        after: Option<JobLogLineId>,
    ) -> Result<Vec<JobLogLine>, StoreError> {
        let sql = "SELECT id, at, line FROM job_log_lines WHERE job_id = $1 AND id > $2 \
                   ORDER BY id";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(after.map_or(0, |line| line.0))
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("read job log"))
    }
}
