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
    /// Stopped on request before it finished.
    Cancelled,
}

impl JobStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "succeeded" => Ok(JobStatus::Succeeded),
            "failed" => Ok(JobStatus::Failed),
            "cancelled" => Ok(JobStatus::Cancelled),
            _ => Err(StoreError::Corrupt {
                column: "jobs.status",
                value: value.to_owned(),
            }),
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome<'a> {
    /// It did what it should.
    Succeeded,
    /// It gave up, for this reason.
    Failed(&'a str),
    /// It stopped on request.
    Cancelled,
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
    /// When that worker last said it is alive.
    pub heartbeat_at: Option<OffsetDateTime>,
    /// Whether someone asked to stop it.
    pub cancel_requested: bool,
    /// When it was enqueued.
    pub created_at: OffsetDateTime,
    /// When the last attempt started.
    pub started_at: Option<OffsetDateTime>,
    /// When it succeeded or failed.
    pub finished_at: Option<OffsetDateTime>,
    /// How far its current long step has come, 0 to 100, when the handler reports it.
    pub progress: Option<i32>,
    /// What the handler recorded to resume after a restart (see [`Store::set_job_state`]).
    pub state: Option<serde_json::Value>,
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
    heartbeat_at: Option<OffsetDateTime>,
    cancel_requested: bool,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    progress: Option<i32>,
    state: Option<String>,
}

fn parse_state(state: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    state
        .map(|text| {
            serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
                column: "jobs.state",
                value: text.clone(),
            })
        })
        .transpose()
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
            heartbeat_at: row.heartbeat_at,
            cancel_requested: row.cancel_requested,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            progress: row.progress,
            state: parse_state(row.state)?,
        })
    }
}

const COLUMNS: &str = "id, kind, server_id, args, status, attempts, last_error, run_after, \
                       locked_by, heartbeat_at, cancel_requested, created_at, started_at, \
                       finished_at, progress, state";

impl Store {
    /// Adds a job to the queue, runnable now.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<Job, StoreError> {
        let sql = sql!(
            "INSERT INTO jobs (kind, server_id, args, status, attempts, run_after, \
             cancel_requested, created_at) \
             VALUES ($1, $2, $3, 'queued', 0, $4, FALSE, $4) RETURNING {COLUMNS}"
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

    /// Enqueues a job that must not run beside another active job of the same `scope` (the
    /// lifecycle jobs of one cluster use `cluster:<id>`): [`StoreError::Conflict`] while one is
    /// queued or running, on every backend and across replicas (a unique index decides).
    pub async fn enqueue_exclusive_job(
        &self,
        job: &NewJob,
        scope: &str,
    ) -> Result<Job, StoreError> {
        let sql = sql!(
            "INSERT INTO jobs (kind, server_id, args, status, attempts, run_after, \
             cancel_requested, created_at, exclusive_scope) \
             VALUES ($1, $2, $3, 'queued', 0, $4, FALSE, $4, $5) RETURNING {COLUMNS}"
        );
        let row: Row = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&job.kind)
            .bind(job.server_id)
            .bind(job.args.to_string())
            .bind(now())
            .bind(scope)
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("job", "enqueue job", e))?;
        row.try_into()
    }

    /// The queued or running job holding `scope` (see [`Store::enqueue_exclusive_job`]), if
    /// any.
    pub async fn active_job_in_scope(&self, scope: &str) -> Result<Option<Job>, StoreError> {
        let sql = sql!(
            "SELECT {COLUMNS} FROM jobs WHERE exclusive_scope = $1 \
             AND status IN ('queued', 'running') ORDER BY id LIMIT 1"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(scope)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("find the active job of a scope"))?;
        row.map(TryInto::try_into).transpose()
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
             started_at = $2, heartbeat_at = $2 \
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

    /// Marks a job that `worker` is running done: succeeded, failed with the reason, or
    /// cancelled. [`StoreError::LeaseLost`] when `worker` no longer holds it (another replica
    /// recovered it): nothing is written, the other replica's run counts.
    pub async fn finish_job(
        &self,
        id: JobId,
        worker: &str,
        outcome: JobOutcome<'_>,
    ) -> Result<Job, StoreError> {
        let (status, error) = match outcome {
            JobOutcome::Succeeded => (JobStatus::Succeeded, None),
            JobOutcome::Failed(error) => (JobStatus::Failed, Some(error)),
            JobOutcome::Cancelled => (JobStatus::Cancelled, None),
        };
        let sql = sql!(
            "UPDATE jobs SET status = $2, last_error = $3, finished_at = $4, locked_by = NULL \
             WHERE id = $1 AND locked_by = $5 AND status = 'running' RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .bind(worker)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("finish job"))?;
        match row {
            Some(row) => row.try_into(),
            None => Err(self.lease_lost(id, worker).await),
        }
    }

    /// Why a write fenced by `worker` changed no row: the job does not exist, or `worker` does
    /// not hold it.
    async fn lease_lost(&self, id: JobId, worker: &str) -> StoreError {
        match self.get_job(id).await {
            Ok(_) => StoreError::LeaseLost {
                job: id.to_string(),
                worker: worker.to_owned(),
            },
            Err(error) => error,
        }
    }

    /// Replaces the reason of a job that failed as abandoned with its handler's own.
    pub async fn set_abandoned_reason(&self, id: JobId, reason: &str) -> Result<(), StoreError> {
        let sql = "UPDATE jobs SET last_error = $2 WHERE id = $1 AND status = 'failed'";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(reason)
            .execute(pool)
            .await
            .map(|_| ()))
        .map_err(StoreError::query("record why a job was abandoned"))
    }

    /// Whether a job of `kind` is queued or running: one indexed lookup, whatever the size of
    /// the job history (the periodic sync asks it every interval).
    pub async fn has_active_job(&self, kind: &str) -> Result<bool, StoreError> {
        let sql = "SELECT id FROM jobs WHERE kind = $1 AND status IN ('queued', 'running') LIMIT 1";
        let found: Option<JobId> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(kind)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("look for an active job"))?;
        Ok(found.is_some())
    }

    /// Deletes the jobs that finished (succeeded, failed or cancelled) before `before`, with
    /// their log lines, at most `limit` at a time (oldest first), in one transaction. Returns how
    /// many jobs were deleted.
    pub async fn delete_jobs_finished_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let chosen = "SELECT id FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') \
                      AND finished_at < $1 ORDER BY finished_at, id LIMIT $2";
        let lines = sql!("DELETE FROM job_log_lines WHERE job_id IN ({chosen})");
        let jobs = sql!("DELETE FROM jobs WHERE id IN ({chosen})");
        let limit = i64::from(limit);
        on_pool!(self, |pool| async {
            let mut transaction = pool.begin().await?;
            sqlx::query(lines)
                .bind(before)
                .bind(limit)
                .execute(&mut *transaction)
                .await?;
            let deleted = sqlx::query(jobs)
                .bind(before)
                .bind(limit)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            transaction.commit().await?;
            Ok::<u64, sqlx::Error>(deleted)
        }
        .await)
        .map_err(StoreError::query("delete old jobs"))
    }

    /// One page of jobs, newest first: at most `limit` jobs with ids below `before` (the
    /// newest when `None`). The next page starts below the last id of this one.
    pub async fn list_jobs_page(
        &self,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(before.map_or(i64::MAX, |id| id.0))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("list jobs"))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Records that `worker` is still running job `id`. Returns whether someone asked to cancel
    /// it, or `None` when the job is no longer held by `worker` (it was recovered as abandoned).
    pub async fn heartbeat_job(&self, id: JobId, worker: &str) -> Result<Option<bool>, StoreError> {
        let sql = "UPDATE jobs SET heartbeat_at = $3 WHERE id = $1 AND locked_by = $2 \
                   AND status = 'running' RETURNING cancel_requested";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(worker)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("heartbeat job"))
    }

    /// Asks a job to stop: a queued job is cancelled at once, a running one at its worker's
    /// next heartbeat. Returns the job; a finished job is left as it is.
    pub async fn cancel_job(&self, id: JobId) -> Result<Job, StoreError> {
        let sql = sql!(
            "UPDATE jobs SET cancel_requested = TRUE, \
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status = 'queued' THEN $2 ELSE finished_at END \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("cancel job"))?;
        row.ok_or_else(|| StoreError::not_found("job", id))?
            .try_into()
    }

    /// Recovers jobs whose worker stopped sending heartbeats before `stale_before` (it crashed
    /// or was killed): jobs of a kind in `repeatable` go back to the queue, others fail with a
    /// reason. Returns the recovered jobs as they are now.
    pub async fn recover_abandoned_jobs(
        &self,
        stale_before: OffsetDateTime,
        repeatable: &[&str],
    ) -> Result<Vec<Job>, StoreError> {
        let sql = sql!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'running' AND heartbeat_at < $1 ORDER BY id"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(stale_before)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("find abandoned jobs"))?;
        let mut recovered = Vec::new();
        for row in rows {
            let job = Job::try_from(row)?;
            let requeue = repeatable.contains(&job.kind.as_str()) && !job.cancel_requested;
            let sql = sql!(
                "UPDATE jobs SET status = $3, locked_by = NULL, last_error = $4, \
                 finished_at = $5 \
                 WHERE id = $1 AND status = 'running' AND heartbeat_at < $2 RETURNING {COLUMNS}"
            );
            let (status, error, finished_at) = if requeue {
                ("queued", None, None)
            } else {
                (
                    "failed",
                    Some("abandoned: the worker running it stopped (crash or restart)"),
                    Some(now()),
                )
            };
            let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
                .bind(job.id)
                .bind(stale_before)
                .bind(status)
                .bind(error)
                .bind(finished_at)
                .fetch_optional(pool)
                .await)
            .map_err(StoreError::query("recover abandoned job"))?;
            if let Some(row) = row {
                recovered.push(Job::try_from(row)?);
            }
        }
        Ok(recovered)
    }

    /// One job.
    pub async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        let row: Row = self.get_row("jobs", COLUMNS, "job", id.0).await?;
        row.try_into()
    }

    /// The newest job of `kind` about `server_id`, if any (to avoid queueing the same work
    /// twice).
    pub async fn latest_server_job(
        &self,
        kind: &str,
        server_id: ServerId,
    ) -> Result<Option<Job>, StoreError> {
        let sql = sql!(
            "SELECT {COLUMNS} FROM jobs WHERE kind = $1 AND server_id = $2 \
             ORDER BY id DESC LIMIT 1"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(kind)
            .bind(server_id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("find latest server job"))?;
        row.map(TryInto::try_into).transpose()
    }

    /// Every job, newest first.
    pub async fn list_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<Row> = self.list_rows("jobs", COLUMNS, "id DESC").await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The newest job of `kind` about each server, by server.
    pub async fn latest_jobs_by_server(
        &self,
        kind: &str,
    ) -> Result<std::collections::HashMap<ServerId, Job>, StoreError> {
        let sql = sql!(
            "SELECT {COLUMNS} FROM jobs WHERE kind = $1 AND server_id IS NOT NULL \
             AND id IN (SELECT MAX(id) FROM jobs WHERE kind = $1 GROUP BY server_id)"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(kind)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::query("latest jobs by server"))?;
        let mut latest = std::collections::HashMap::new();
        for row in rows {
            let job = Job::try_from(row)?;
            if let Some(server_id) = job.server_id {
                latest.insert(server_id, job);
            }
        }
        Ok(latest)
    }

    /// Records how far a running job's current long step has come (0 to 100). With `worker`,
    /// only while that worker holds the job ([`StoreError::LeaseLost`] otherwise); `None`
    /// writes unconditionally (a job run outside a worker).
    pub async fn set_job_progress(
        &self,
        id: JobId,
        worker: Option<&str>,
        percent: i32,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE jobs SET progress = $2 WHERE id = $1 \
                   AND ($3 IS NULL OR (locked_by = $3 AND status = 'running'))";
        let n_rows = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(percent.clamp(0, 100))
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("set job progress"))?;
        if n_rows == 0 {
            return Err(match worker {
                Some(worker) => self.lease_lost(id, worker).await,
                None => StoreError::not_found("job", id),
            });
        }
        Ok(())
    }

    /// What a job's handler last recorded with [`Store::set_job_state`], `None` before.
    pub async fn job_state(&self, id: JobId) -> Result<Option<serde_json::Value>, StoreError> {
        let sql = "SELECT state FROM jobs WHERE id = $1";
        let state: Option<Option<String>> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("read job state"))?;
        parse_state(state.ok_or_else(|| StoreError::not_found("job", id))?)
    }

    /// Records where a running job stands (JSON, never secrets), replacing what was recorded
    /// before: a job resumed after a restart reads it back with [`Store::job_state`]. With
    /// `worker`, only while that worker holds the job ([`StoreError::LeaseLost`] otherwise: a
    /// worker that lost its job must not move another replica's run back); `None` writes
    /// unconditionally (a job run outside a worker).
    pub async fn set_job_state(
        &self,
        id: JobId,
        worker: Option<&str>,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE jobs SET state = $2 WHERE id = $1 \
                   AND ($3 IS NULL OR (locked_by = $3 AND status = 'running'))";
        let n_rows = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(state.to_string())
            .bind(worker)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::query("set job state"))?;
        if n_rows == 0 {
            return Err(match worker {
                Some(worker) => self.lease_lost(id, worker).await,
                None => StoreError::not_found("job", id),
            });
        }
        Ok(())
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
