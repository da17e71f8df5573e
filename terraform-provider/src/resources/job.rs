//! Waiting for a job of the service: the polls shared by the resources whose apply or destroy
//! runs a job (a bootstrap, an upgrade, a reset), their `timeout` argument, and Terraform's
//! stop (Ctrl-C) ending a wait early.

use std::time::{Duration, Instant};

use talos_manager_api_types::JobView;

use crate::client::{Client, segment};
use crate::error::Error;

/// The first pause between two polls; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest pause between two polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A Go-style duration (`30m`, `1h30m`, `90s`, `500ms`): whole numbers, each with a unit,
/// at least one.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "h" => Duration::from_secs(3600),
            "m" => Duration::from_secs(60),
            "s" => Duration::from_secs(1),
            "ms" => Duration::from_millis(1),
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(number).ok()?)?)?;
    }
    Some(total)
}

/// The issue of a `timeout` argument that is not a positive duration, if it is one.
pub(super) fn timeout_issue(timeout: Option<&str>) -> Option<talos_manager_api_types::Issue> {
    let timeout = timeout?;
    parse_duration(timeout)
        .is_none_or(|duration| duration.is_zero())
        .then(|| {
            talos_manager_api_types::Issue::new(
                "timeout",
                format!(
                    "{timeout:?} is not a duration such as \"30m\", \"1h30m\" or \"90s\" \
                     (units h, m, s, ms)"
                ),
            )
        })
}

/// The API path of a job.
pub(super) fn job_path(job_id: &str) -> String {
    format!("/jobs/{}", segment(job_id))
}

/// A poll loop's pauses: from [`FIRST_POLL_INTERVAL`], doubling up to [`MAX_POLL_INTERVAL`],
/// never past the deadline.
pub(super) struct Pauses {
    interval: Duration,
    deadline: Instant,
}

impl Pauses {
    /// Pauses until `deadline`.
    pub(super) fn until(deadline: Instant) -> Pauses {
        Pauses {
            interval: FIRST_POLL_INTERVAL,
            deadline,
        }
    }

    /// When the pauses end.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline passed.
    pub(super) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Sleeps for the next interval. `false` when Terraform asked the provider to stop
    /// meanwhile.
    pub(super) async fn pause(&mut self, client: &Client) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let slept = tokio::select! {
            () = tokio::time::sleep(self.interval.min(left)) => true,
            () = client.stopped() => false,
        };
        self.interval = (self.interval * 2).min(MAX_POLL_INTERVAL);
        slept
    }
}

/// What a wait is about, for its errors.
pub(super) struct Watch<'a> {
    /// The operation's name for a summary: `Upgrade`, `Reset`.
    pub(super) kind: &'static str,
    /// What the job does, e.g. "the upgrade of cluster 1 to v1.11.2".
    pub(super) operation: String,
    /// The `timeout` as configured.
    pub(super) timeout: &'a str,
    /// What Terraform does with the resource when the job does not succeed, and what to do.
    pub(super) next: &'static str,
}

/// Polls `job` until it ended or the deadline of `pauses`; the job once it succeeded. A job
/// that failed or was cancelled, the time running out and Terraform's stop are errors naming
/// the job.
pub(super) async fn wait_for_job(
    client: &Client,
    mut job: JobView,
    watch: &Watch<'_>,
    mut pauses: Pauses,
) -> Result<JobView, Error> {
    let mut log = follow_log(client, &job.id, pauses.deadline());
    let mut last_status = String::new();
    loop {
        if job.status != last_status {
            // Progress in the provider's log (`TF_LOG_PROVIDER=DEBUG`).
            tracing::info!(job = %job.id, status = %job.status, "{}", watch.operation);
            last_status.clone_from(&job.status);
        }
        match job.status.as_str() {
            "succeeded" => {
                log.finish().await;
                return Ok(job);
            }
            "failed" | "cancelled" => {
                log.finish().await;
                return Err(Error::JobFailed {
                    kind: watch.kind,
                    operation: watch.operation.clone(),
                    job_id: job.id,
                    cancelled: job.status == "cancelled",
                    reason: job.last_error,
                    next: watch.next,
                });
            }
            _ => {}
        }
        if pauses.expired() {
            return Err(Error::JobTimeout {
                kind: watch.kind,
                operation: watch.operation.clone(),
                job_id: job.id,
                timeout: watch.timeout.to_owned(),
                next: watch.next,
            });
        }
        if !pauses.pause(client).await {
            return Err(Error::JobInterrupted {
                operation: watch.operation.clone(),
                job_id: job.id,
                next: watch.next,
            });
        }
        job = client
            .get::<JobView>(&job_path(&job.id))
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "job",
                id: job.id.clone(),
            })?;
    }
}

/// How long a job that ended leaves its log follower to print the last lines.
const LOG_TAIL: Duration = Duration::from_secs(2);

/// Stops the task it holds when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits a little for the task to end by itself (a job's log ends with its final status).
    async fn finish(&mut self) {
        let _ = tokio::time::timeout(LOG_TAIL, &mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies the job's log lines to the provider's log while the job is waited for (Terraform
/// shows a provider's output with `TF_LOG_PROVIDER=DEBUG`, or `TF_LOG=DEBUG`); best effort: a log that cannot be followed only loses the progress lines.
fn follow_log(client: &Client, job_id: &str, until: Instant) -> AbortOnDrop {
    let client = client.clone();
    let job_id = job_id.to_owned();
    AbortOnDrop(tokio::spawn(async move {
        let followed = client
            .follow_job_log(&job_id, until, |line| {
                tracing::info!(job = %job_id, "job log: {line}");
            })
            .await;
        if let Err(error) = followed {
            tracing::debug!(job = %job_id, %error, "the job's log could not be followed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_go_style() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "30", "m", "1d", "1.5h", "-1s", "1 h", "99999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_timeout_must_be_a_positive_duration() {
        assert!(timeout_issue(None).is_none());
        assert!(timeout_issue(Some("45m")).is_none());
        for bad in ["0s", "soon", ""] {
            let issue = timeout_issue(Some(bad)).unwrap();
            assert_eq!(issue.path, "timeout");
        }
    }
}
