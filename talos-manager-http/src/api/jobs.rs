//! `/jobs`: background work (sync, bootstrap, labels and taints) with its log, live.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{EventStream, Json};
use talos_manager_api_types::{IssueBody, JobLogEvent, JobView};
use talos_manager_core::ids::{JobId, JobLogLineId, ServerId, ServerRef};
use talos_manager_core::store::{Job, JobLogLine, JobStatus};
use talos_manager_core::{Store, error_chain};

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Tag, until_shutdown, while_authorized};
use crate::AppState;

/// Jobs per page of `GET /jobs` unless `limit` says otherwise.
pub(crate) const DEFAULT_JOBS_PAGE: u32 = 100;
/// The largest page of `GET /jobs`.
pub(crate) const MAX_JOBS_PAGE: u32 = 1000;

/// One page of jobs.
#[derive(Debug, poem_openapi::ApiResponse)]
enum JobsPage {
    /// At most `limit` jobs, newest first. `X-Next-Cursor`, when present, is the `cursor` of
    /// the next (older) page.
    #[oai(status = 200)]
    Page(
        Json<Vec<JobView>>,
        #[oai(header = "X-Next-Cursor")] Option<String>,
    ),
}

/// How often a live log looks for new lines.
const LOG_POLL_INTERVAL: Duration = Duration::from_millis(250);

fn status_str(status: JobStatus) -> String {
    status.as_str().to_owned()
}

/// The API ids of the servers jobs refer to.
async fn server_api_ids(store: &Store) -> ApiResult<HashMap<ServerId, String>> {
    Ok(store
        .list_servers()
        .await?
        .into_iter()
        .map(|server| {
            let api_id = ServerRef::new(server.inventory.provider, &server.inventory.provider_id)
                .to_string();
            (server.id, api_id)
        })
        .collect())
}

pub(crate) fn job_view(job: Job, servers: &HashMap<ServerId, String>) -> JobView {
    JobView {
        id: job.id.to_string(),
        kind: job.kind,
        server_id: job.server_id.and_then(|id| servers.get(&id).cloned()),
        status: status_str(job.status),
        cancel_requested: job.cancel_requested,
        attempts: job.attempts,
        last_error: job.last_error,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    }
}

fn line_event(line: JobLogLine) -> JobLogEvent {
    JobLogEvent {
        line_id: Some(line.id.to_string()),
        at: Some(line.at),
        line: Some(line.line),
        job_status: None,
    }
}

/// Where a live log stands.
struct Follow {
    store: Store,
    job: JobId,
    after: Option<JobLogLineId>,
    pending: VecDeque<JobLogLine>,
    finished: bool,
}

/// The next event of a live log: buffered lines first, then new lines, then the final status
/// once the job is done and every line was sent.
async fn next_event(mut follow: Follow) -> Option<(JobLogEvent, Follow)> {
    loop {
        if let Some(line) = follow.pending.pop_front() {
            follow.after = Some(line.id);
            return Some((line_event(line), follow));
        }
        if follow.finished {
            return None;
        }
        // Read the status before the lines, so no line written before the end is missed.
        let job = match follow.store.get_job(follow.job).await {
            Ok(job) => job,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "live job log stopped");
                return None;
            }
        };
        match follow.store.job_log(follow.job, follow.after).await {
            Ok(lines) => follow.pending.extend(lines),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "live job log stopped");
                return None;
            }
        }
        if !follow.pending.is_empty() {
            continue;
        }
        if matches!(
            job.status,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        ) {
            follow.finished = true;
            let event = JobLogEvent {
                line_id: None,
                at: job.finished_at,
                line: None,
                job_status: Some(status_str(job.status)),
            };
            return Some((event, follow));
        }
        tokio::time::sleep(LOG_POLL_INTERVAL).await;
    }
}

pub(crate) struct JobsApi;

#[OpenApi(tag = "Tag::Jobs")]
impl JobsApi {
    /// List the jobs, newest first, one page at a time: `limit` jobs (100 unless given, at
    /// most 1000) older than `cursor` (a job id; the newest when absent). The answer's
    /// `X-Next-Cursor` header is the `cursor` of the next page, absent on the last one.
    #[oai(path = "/jobs", method = "get", operation_id = "list_jobs")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        /// Jobs per page (1 to 1000, default 100).
        limit: Query<Option<u32>>,
        /// Only jobs older than this job id (the `X-Next-Cursor` of the previous page).
        cursor: Query<Option<String>>,
    ) -> ApiResult<JobsPage> {
        let limit = match limit.0 {
            None => DEFAULT_JOBS_PAGE,
            Some(limit) if (1..=MAX_JOBS_PAGE).contains(&limit) => limit,
            Some(_) => {
                return Err(ApiError::invalid(
                    "jobs page",
                    vec![IssueBody {
                        path: "limit".into(),
                        message: format!("must be from 1 to {MAX_JOBS_PAGE}"),
                    }],
                ));
            }
        };
        let before = match cursor.0.as_deref() {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .map(JobId)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "jobs page",
                            vec![IssueBody {
                                path: "cursor".into(),
                                message: "must be a job id".into(),
                            }],
                        )
                    })?,
            ),
        };
        let servers = server_api_ids(&state.store).await?;
        let jobs = state.store.list_jobs_page(before, limit).await?;
        let next = (jobs.len() == limit as usize)
            .then(|| jobs.last().map(|job| job.id.to_string()))
            .flatten();
        Ok(JobsPage::Page(
            Json(
                jobs.into_iter()
                    .map(|job| job_view(job, &servers))
                    .collect(),
            ),
            next,
        ))
    }

    /// Get a job.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "get_job")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<JobView>> {
        let job = state.store.get_job(parse_id("job", &id, JobId)?).await?;
        let servers = server_api_ids(&state.store).await?;
        Ok(Json(job_view(job, &servers)))
    }

    /// Ask a job to stop: a queued job is cancelled at once, a running one stops at its next
    /// heartbeat (within seconds). A finished job is left as it is.
    #[oai(
        path = "/jobs/:id/cancel",
        method = "post",
        operation_id = "cancel_job"
    )]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<JobView>> {
        let job = state.store.cancel_job(parse_id("job", &id, JobId)?).await?;
        tracing::info!(job = %job.id, by = ?auth.principal(), "job cancel requested");
        let servers = server_api_ids(&state.store).await?;
        Ok(Json(job_view(job, &servers)))
    }

    /// Follow a job's log as server-sent events: every line logged so far, then new lines as
    /// they come, then one event with the job's final status.
    #[oai(
        path = "/jobs/:id/log",
        method = "get",
        operation_id = "follow_job_log"
    )]
    async fn log(
        &self,
        request: &poem::Request,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<EventStream<BoxStream<'static, JobLogEvent>>> {
        let job = state.store.get_job(parse_id("job", &id, JobId)?).await?;
        let follow = Follow {
            store: state.store.clone(),
            job: job.id,
            after: None,
            pending: VecDeque::new(),
            finished: false,
        };
        let events = until_shutdown(
            request,
            while_authorized(&state, &auth, stream::unfold(follow, next_event).boxed()),
        );
        Ok(EventStream::new(events).keep_alive(Duration::from_secs(15)))
    }
}
