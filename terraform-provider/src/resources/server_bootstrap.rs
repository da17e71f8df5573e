//! `talosmanager_server_bootstrap`: installs Talos on a server through a bootstrap job
//! (`POST /servers/{id}/bootstrap`) and waits for it (`GET /jobs/{id}`, then
//! `GET /servers/{id}` until the node fetched its machine config).
//!
//! # Expected flow
//! 1. Create queues the job; the service enters rescue, checks the server, wipes the disk, writes
//!    the image and reboots.
//! 2. It polls the job until it ended; a failed or cancelled job is an error.
//! 3. With `wait_for = "config_fetched"` it then polls the server until it was served its
//!    machine config after the job started (the new Talos booted and fetched it).
//!
//! # Guarantees
//! A job that failed, was cancelled or did not get far enough within `timeout` (or while
//! Terraform let the provider run: Ctrl-C stops the wait) leaves the resource in the state,
//! tainted, with its job id: the next apply bootstraps again, and the
//! diagnostic says which job to follow. Destroying it never touches the node.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use talos_manager_core::{Issue, ValidationError};
use talos_manager_http::api::wire::{BootstrapBody, JobView, ServerView};

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct ServerBootstrap;

const TYPE_NAME: &str = "talosmanager_server_bootstrap";

/// `wait_for` when the configuration leaves it out.
const DEFAULT_WAIT_FOR: WaitFor = WaitFor::ConfigFetched;

/// `timeout` when the configuration leaves it out.
const DEFAULT_TIMEOUT: &str = "30m";

/// The first pause between two polls; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest pause between two polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

fn schema() -> Schema {
    Schema {
        type_name: TYPE_NAME,
        kind: Kind::Resource,
        version: 0,
        description: "A bootstrap of a server: talos-manager puts it into its provider's rescue \
                      system, checks it, **erases the target disk**, writes the Talos image of \
                      the chosen version and schematic, and reboots it into Talos, which \
                      fetches its machine config from talos-manager. Apply waits until the \
                      node fetched its config (or only until the image is written), within \
                      `timeout`; a failed job's message is the error, and the resource is then \
                      tainted so that the next apply bootstraps again. Changing `server_id`, \
                      `talos_version`, `schematic_id` or `disk` bootstraps the server again \
                      (erasing the disk). Destroying the resource changes nothing on the node \
                      (a warning says so).",
        attributes: vec![
            Attribute::computed("id", Type::String, "The bootstrap job's id."),
            Attribute::required(
                "server_id",
                Type::String,
                "The server, `robot-<server number>` or `cloud-<id>`.",
            )
            .force_new(),
            Attribute::optional(
                "talos_version",
                Type::String,
                "The Talos version, `vX.Y.Z`. Default: the settings' version.",
            )
            .force_new(),
            Attribute::optional(
                "schematic_id",
                Type::String,
                "The Image Factory schematic (a `talosmanager_schematic`'s id). Default: the \
                 server's, else the settings' default.",
            )
            .force_new(),
            Attribute::optional(
                "disk",
                Type::String,
                "The disk to install to, erased: a WWID (`eui.…`, `naa.…`) or a device \
                 (`/dev/nvme0n1`). Default: the first disk outside a RAID.",
            )
            .force_new(),
            Attribute::optional(
                "wait_for",
                Type::String,
                "How far apply waits: `config_fetched` (default), until the new Talos fetched \
                 its machine config from talos-manager (so the server needs a \
                 `talosmanager_machine_config`); or `image_written`, until the job wrote the \
                 image and rebooted the server. Changing it changes only the state.",
            ),
            Attribute::optional(
                "timeout",
                Type::String,
                "How long apply waits, e.g. `45m`, `1h30m`, `90s`. Default: `30m`. When it \
                 runs out (or on Ctrl-C) the job goes on in talos-manager, the error names \
                 it, and the resource is tainted. Changing it changes only the state.",
            ),
            Attribute::computed(
                "job_id",
                Type::String,
                "The bootstrap job's id: follow it at `/api/v1/jobs/{job_id}/log`.",
            ),
            Attribute::computed(
                "status",
                Type::String,
                "The job's status: `queued`, `running`, `succeeded`, `failed` or `cancelled` \
                 (as of the last refresh).",
            ),
        ],
        import: Some(
            "By job id: `terraform import talosmanager_server_bootstrap.NAME 12`. The API does \
             not return a job's choices, so `talos_version`, `schematic_id` and `disk` import \
             as null: leave them out of the configuration, or add `lifecycle { ignore_changes = \
             [talos_version, schematic_id, disk] }`, or the next plan bootstraps the server \
             again.",
        ),
        example: r#"
resource "talosmanager_server_bootstrap" "worker_1" {
  server_id     = talosmanager_server.worker_1.id
  talos_version = "v1.10.4"
  disk          = "/dev/nvme0n1"
  timeout       = "45m"

  # The node fetches its config at boot: configure it first.
  depends_on = [talosmanager_machine_config.worker_1]
}"#,
    }
}

/// How far a create waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitFor {
    /// Until the job succeeded: the image is written and the server rebooted.
    ImageWritten,
    /// Then until the server was served its machine config.
    ConfigFetched,
}

impl WaitFor {
    fn parse(text: &str) -> Option<WaitFor> {
        match text {
            "image_written" => Some(WaitFor::ImageWritten),
            "config_fetched" => Some(WaitFor::ConfigFetched),
            _ => None,
        }
    }

    fn description(self) -> &'static str {
        match self {
            WaitFor::ImageWritten => "the image is written",
            WaitFor::ConfigFetched => "the node fetched its machine config",
        }
    }
}

/// A Go-style duration (`30m`, `1h30m`, `90s`, `500ms`): whole numbers, each with a unit,
/// at least one.
fn parse_duration(text: &str) -> Option<Duration> {
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

fn path(server_id: &str) -> String {
    format!("/servers/{}", segment(server_id))
}

fn job_path(job_id: &str) -> String {
    format!("/jobs/{}", segment(job_id))
}

/// The state: `known`'s arguments, the job's id and status.
fn object(job: &JobView, known: &Object) -> Object {
    let argument = |name: &'static str| (name, known.get_value(name).clone());
    let server_id = job
        .server_id
        .clone()
        .map_or_else(|| known.get_value("server_id").clone(), Value::String);
    schema().object([
        ("id", Value::String(job.id.clone())),
        ("server_id", server_id),
        argument("talos_version"),
        argument("schematic_id"),
        argument("disk"),
        argument("wait_for"),
        argument("timeout"),
        ("job_id", Value::String(job.id.clone())),
        ("status", Value::String(job.status.clone())),
    ])
}

/// Polls until the job got as far as `wait_for` asks, or `deadline`. Returns the job as last
/// read, and the error when it did not get that far.
async fn wait(
    client: &Client,
    server_id: &str,
    mut job: JobView,
    wait_for: WaitFor,
    timeout: &str,
    deadline: Instant,
) -> (JobView, Result<(), Error>) {
    let mut interval = FIRST_POLL_INTERVAL;
    let timed_out = |job_id: &str, server_state: Option<String>| Error::BootstrapTimeout {
        server_id: server_id.to_owned(),
        job_id: job_id.to_owned(),
        timeout: timeout.to_owned(),
        waiting_for: wait_for.description(),
        server_state,
    };
    let interrupted = |job_id: &str| Error::BootstrapInterrupted {
        server_id: server_id.to_owned(),
        job_id: job_id.to_owned(),
    };
    // The job first.
    loop {
        match job.status.as_str() {
            "succeeded" => break,
            "failed" | "cancelled" => {
                let error = Error::BootstrapFailed {
                    server_id: server_id.to_owned(),
                    job_id: job.id.clone(),
                    status: job.status.clone(),
                    reason: job.last_error.clone(),
                };
                return (job, Err(error));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let state = server_state(client, server_id).await;
            let error = timed_out(&job.id, state);
            return (job, Err(error));
        }
        if !pause(client, &mut interval, deadline).await {
            let error = interrupted(&job.id);
            return (job, Err(error));
        }
        match client.get::<JobView>(&job_path(&job.id)).await {
            Ok(Some(read)) => job = read,
            Ok(None) => {
                let error = Error::NotFound {
                    what: "bootstrap job",
                    id: job.id.clone(),
                };
                return (job, Err(error));
            }
            Err(error) => return (job, Err(error)),
        }
    }
    if wait_for == WaitFor::ImageWritten {
        return (job, Ok(()));
    }
    // Then the node: served its config after the job started.
    let since = job.started_at.unwrap_or(job.created_at);
    loop {
        let server: ServerView = match client.get(&path(server_id)).await {
            Ok(Some(server)) => server,
            Ok(None) => {
                let error = Error::NotFound {
                    what: "server",
                    id: server_id.to_owned(),
                };
                return (job, Err(error));
            }
            Err(error) => return (job, Err(error)),
        };
        if server.last_configured_at.is_some_and(|at| at >= since) {
            return (job, Ok(()));
        }
        if Instant::now() >= deadline {
            let error = timed_out(&job.id, Some(server.state));
            return (job, Err(error));
        }
        if !pause(client, &mut interval, deadline).await {
            let error = interrupted(&job.id);
            return (job, Err(error));
        }
    }
}

/// The server's state for a message; `None` when it cannot be read.
async fn server_state(client: &Client, server_id: &str) -> Option<String> {
    match client.get::<ServerView>(&path(server_id)).await {
        Ok(Some(server)) => Some(server.state),
        _ => None,
    }
}

/// Sleeps for `interval` (never past `deadline`), then doubles it up to the maximum. `false`
/// when Terraform asked the provider to stop meanwhile.
async fn pause(client: &Client, interval: &mut Duration, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let slept = tokio::select! {
        () = tokio::time::sleep((*interval).min(left)) => true,
        () = client.stopped() => false,
    };
    *interval = (*interval * 2).min(MAX_POLL_INTERVAL);
    slept
}

fn invalid(issues: Vec<Issue>) -> Result<(), Error> {
    ValidationError::check("server bootstrap", issues).map_err(|error| Error::Invalid {
        what: error.what,
        issues: error.issues,
    })
}

#[async_trait]
impl Resource for ServerBootstrap {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        let mut issues = Vec::new();
        if let Some(wait_for) = config.string("wait_for")
            && WaitFor::parse(wait_for).is_none()
        {
            issues.push(Issue::new(
                "wait_for",
                format!("{wait_for:?} is neither \"config_fetched\" nor \"image_written\""),
            ));
        }
        if let Some(timeout) = config.string("timeout")
            && parse_duration(timeout).is_none_or(|duration| duration.is_zero())
        {
            issues.push(Issue::new(
                "timeout",
                format!(
                    "{timeout:?} is not a duration such as \"30m\", \"1h30m\" or \"90s\" \
                     (units h, m, s, ms)"
                ),
            ));
        }
        invalid(issues)
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let server_id = planned.string("server_id").unwrap_or_default();
        let wait_for = planned
            .string("wait_for")
            .and_then(WaitFor::parse)
            .unwrap_or(DEFAULT_WAIT_FOR);
        let timeout = planned.string("timeout").unwrap_or(DEFAULT_TIMEOUT);
        let deadline = Instant::now() + parse_duration(timeout).unwrap_or_default();
        let body = BootstrapBody {
            talos_version: planned.owned_string("talos_version"),
            schematic: planned.owned_string("schematic_id"),
            disk: planned.owned_string("disk"),
        };
        let job: JobView = client
            .post(&format!("{}/bootstrap", path(server_id)), &body)
            .await?;
        tracing::info!(server = server_id, job = %job.id, "bootstrap queued");
        let (job, outcome) = wait(client, server_id, job, wait_for, timeout, deadline).await;
        match outcome {
            Ok(()) => Ok(object(&job, planned)),
            Err(error) => Err(Error::Incomplete {
                type_name: TYPE_NAME,
                state: object(&job, planned),
                error: Box::new(error),
            }),
        }
    }

    /// Refreshes the job's status. A job the service no longer has keeps the state: the node
    /// was bootstrapped all the same.
    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        match client.get::<JobView>(&job_path(id)).await? {
            Some(job) if job.kind == "bootstrap" => Ok(Some(object(&job, prior))),
            _ if prior.string("server_id").is_some() => Ok(Some(prior.clone())),
            _ => Ok(None),
        }
    }

    /// Only `wait_for` and `timeout` change in place, and they act only at creation.
    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        Ok(self
            .read(client, id, planned)
            .await?
            .unwrap_or_else(|| planned.clone()))
    }

    async fn delete(&self, client: &Client, id: &str) -> Result<Option<String>, Error> {
        let job = client.get::<JobView>(&job_path(id)).await?;
        let server = job
            .as_ref()
            .and_then(|job| job.server_id.clone())
            .unwrap_or_else(|| "the server".to_owned());
        let still_going = match job {
            Some(job) if matches!(job.status.as_str(), "queued" | "running") => format!(
                " The job is still {}: cancel it with POST /api/v1/jobs/{id}/cancel (or in \
                 the dashboard) to stop it.",
                job.status
            ),
            _ => String::new(),
        };
        Ok(Some(format!(
            "The bootstrap of {server} (job {id}) is only removed from the Terraform state: the \
             node keeps running what was installed. To reinstall it, bootstrap it again \
             (`terraform apply -replace=ADDRESS`) or reset it with talosctl.{still_going}"
        )))
    }
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
    fn wait_for_and_timeout_are_checked_before_planning() {
        let config = schema().object([
            ("server_id", Value::String("robot-1".into())),
            ("wait_for", Value::String("booted".into())),
            ("timeout", Value::String("soon".into())),
        ]);
        let Err(Error::Invalid { issues, .. }) = ServerBootstrap.validate(&config) else {
            panic!("accepted")
        };
        let paths: Vec<&str> = issues.iter().map(|issue| issue.path.as_str()).collect();
        assert_eq!(paths, ["wait_for", "timeout"]);
        let unknown = schema().object([
            ("wait_for", Value::Unknown),
            ("timeout", Value::String("0s".into())),
        ]);
        assert!(ServerBootstrap.validate(&unknown).is_err());
        let fine = schema().object([
            ("wait_for", Value::String("image_written".into())),
            ("timeout", Value::String("45m".into())),
        ]);
        assert!(ServerBootstrap.validate(&fine).is_ok());
    }
}
