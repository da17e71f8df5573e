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
//! 4. Destroy changes nothing on the node, unless `reset_on_destroy` names a reset profile:
//!    then it queues a reset (`POST /servers/{id}/reset`) and waits for it within `timeout`.
//!
//! # Guarantees
//! A job that failed, was cancelled or did not get far enough within `timeout` (or while
//! Terraform let the provider run: Ctrl-C stops the wait) leaves the resource in the state,
//! tainted, with its job id: the next apply bootstraps again, and the
//! diagnostic says which job to follow. A reset on destroy that does not succeed leaves the
//! resource in the state, and the diagnostic names the reset job.

use std::time::Instant;

use async_trait::async_trait;
use talos_manager_api_types::{
    BootstrapBody, JobView, MachineConfigView, ResetBody, ResetProfileName, ServerView,
};
use talos_manager_api_types::{Issue, ValidationError};

use super::Resource;
use super::job::{Pauses, Watch, job_path, parse_duration, timeout_issue, wait_for_job};
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
                      tainted so that the next apply bootstraps again. A new \
                      `talos_version` or `schematic_id` changes only the state (a warning \
                      says so): it never erases a running node; upgrade nodes with \
                      `talosmanager_cluster_upgrade`. Erasing and reinstalling a server is \
                      always explicit: `terraform apply -replace=ADDRESS` (or a new \
                      `server_id` or `disk`), and the service refuses to erase a live node \
                      (one that runs Talos with its machine config) unless \
                      `reset_on_destroy` resets it first or `force` is set. Destroying the \
                      resource changes nothing on the node (a warning says so), unless \
                      `reset_on_destroy` asks for a reset.",
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
                "The Talos version, `vX.Y.Z`, installed by the bootstrap. Default: the \
                 settings' version. Changing it changes only the state and warns: it does not \
                 reinstall or upgrade the node (use `talosmanager_cluster_upgrade`).",
            ),
            Attribute::optional(
                "schematic_id",
                Type::String,
                "The Image Factory schematic (a `talosmanager_schematic`'s id). Default: the \
                 server's, else the settings' default. Changing it changes only the state and \
                 warns, as for `talos_version`.",
            ),
            Attribute::optional(
                "disk",
                Type::String,
                "The disk to install to, erased: a WWID (`eui.…`, `naa.…`) or a device \
                 (`/dev/nvme0n1`). Default: the first disk outside a RAID.",
            )
            .force_new(),
            Attribute::optional(
                "force",
                Type::Bool,
                "Erase the server even when it is a live node: it was served its machine \
                 config, or is in its cluster, since its last bootstrap. Without it the \
                 service refuses such a bootstrap (409 `live_node`: reset it first). A \
                 control plane is still refused when etcd would lose its last member or its \
                 majority. Changing it changes only the state.",
            ),
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
                 it, and the resource is tainted. Destroy waits as long for a reset \
                 (`reset_on_destroy`). Changing it changes only the state.",
            ),
            Attribute::optional(
                "reset_on_destroy",
                Type::String,
                "What destroying the resource does to the node. Null (default): nothing, the \
                 node keeps running. `maintenance`: a reset that wipes STATE and EPHEMERAL \
                 (from Talos 1.14 also the ETCD, CRI, KUBELET and LOG volumes), so Talos \
                 comes back in maintenance mode asking for a config; `wipe`: a reset \
                 that wipes the whole system disk and powers the server off; \
                 `wipe_to_rescue`: the same, then the provider's rescue system, ready for a \
                 new bootstrap (the service needs `SSH_PRIVATE_KEY`). A reset leaves etcd \
                 and deletes the Kubernetes node, clears the server's machine config in \
                 talos-manager, and refuses to remove etcd's last member or its majority. \
                 Destroy waits for the reset job within `timeout`; a failed reset is an \
                 error naming the job, and the resource stays. A server that is no longer \
                 configured in talos-manager (reset already) is not reset (a warning says \
                 so). Replacing the resource (`terraform apply -replace=ADDRESS`, a new \
                 `disk`) resets the node before bootstrapping it again. \
                 Changing it changes only the state: apply it before a destroy that relies \
                 on it.",
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
             as null: the next apply sets `talos_version` and `schematic_id` in place (with a \
             warning); leave `disk` out of the configuration, or add `lifecycle { \
             ignore_changes = [disk] }`, or the next plan bootstraps the server again. \
             `reset_on_destroy` and `force` import as null: the next apply sets them in \
             place.",
        ),
        example: r#"
resource "talosmanager_server_bootstrap" "worker_1" {
  server_id     = talosmanager_server.worker_1.id
  talos_version = "v1.13.9"
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

fn path(server_id: &str) -> String {
    format!("/servers/{}", segment(server_id))
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
        argument("force"),
        argument("wait_for"),
        argument("timeout"),
        argument("reset_on_destroy"),
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
    let mut pauses = Pauses::until(deadline);
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
        if pauses.expired() {
            let state = server_state(client, server_id).await;
            let error = timed_out(&job.id, state);
            return (job, Err(error));
        }
        if !pauses.pause(client).await {
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
        if pauses.expired() {
            let error = timed_out(&job.id, Some(server.state));
            return (job, Err(error));
        }
        if !pauses.pause(client).await {
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
        issues.extend(timeout_issue(config.string("timeout")));
        if let Some(profile) = config.string("reset_on_destroy")
            && reset_profile(profile).is_none()
        {
            issues.push(Issue::new(
                "reset_on_destroy",
                format!("{profile:?} is none of \"maintenance\", \"wipe\" and \"wipe_to_rescue\""),
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
            force: planned.bool("force").unwrap_or(false),
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

    /// A new `talos_version` or `schematic_id` never erases the node: it changes only the
    /// state, with a warning pointing to `talosmanager_cluster_upgrade` and `-replace`.
    fn plan_warning(&self, prior: &Object, planned: &Object) -> Option<(&'static str, String)> {
        let changed: Vec<String> = ["talos_version", "schematic_id"]
            .into_iter()
            .filter(|name| prior.get_value(name) != planned.get_value(name))
            .map(|name| {
                let shown = |object: &Object| match object.get_value(name) {
                    Value::String(text) => format!("{text:?}"),
                    Value::Unknown => "(known after apply)".to_owned(),
                    _ => "null".to_owned(),
                };
                format!("`{name}` from {} to {}", shown(prior), shown(planned))
            })
            .collect();
        if changed.is_empty() {
            return None;
        }
        let server = planned.string("server_id").unwrap_or("the server");
        Some((
            "The node is not reinstalled",
            format!(
                "Changing {} of the bootstrap of {server} only updates the Terraform state: \
                 the running node is neither erased nor upgraded. To upgrade running nodes, \
                 use `talosmanager_cluster_upgrade`. To erase and reinstall this server with \
                 the new choice, run `terraform apply -replace=ADDRESS` (talos-manager \
                 refuses to erase a live node unless `reset_on_destroy` resets it first or \
                 `force = true`).",
                changed.join(" and ")
            ),
        ))
    }

    /// Only `wait_for`, `timeout`, `reset_on_destroy`, `force`, `talos_version` and
    /// `schematic_id` change in place; none of them touches the node.
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

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<String>, Error> {
        if let Some(profile) = prior.string("reset_on_destroy").and_then(reset_profile) {
            let server_id = prior.string("server_id").unwrap_or_default();
            let timeout = prior.string("timeout").unwrap_or(DEFAULT_TIMEOUT);
            return reset(client, server_id, profile, timeout).await;
        }
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
             (`terraform apply -replace=ADDRESS`); to reset it, set `reset_on_destroy` (and \
             apply) before destroying, or POST /api/v1/servers/SERVER_ID/reset.{still_going}"
        )))
    }
}

/// The reset profile `reset_on_destroy` names.
fn reset_profile(name: &str) -> Option<ResetProfileName> {
    match name {
        "maintenance" => Some(ResetProfileName::Maintenance),
        "wipe" => Some(ResetProfileName::Wipe),
        "wipe_to_rescue" => Some(ResetProfileName::WipeToRescue),
        _ => None,
    }
}

/// Resets the server's node with `profile` and waits for the job within `timeout`. A server
/// that is gone, or no longer a configured node of a cluster (reset already), is not reset:
/// a warning says so.
async fn reset(
    client: &Client,
    server_id: &str,
    profile: ResetProfileName,
    timeout: &str,
) -> Result<Option<String>, Error> {
    let not_reset = |why: &str| {
        Some(format!(
            "Server {server_id} was not reset: {why}. The bootstrap is only removed from the \
             Terraform state."
        ))
    };
    let Some(server) = client.get::<ServerView>(&path(server_id)).await? else {
        return Ok(not_reset("talos-manager no longer has it"));
    };
    let configs: Vec<MachineConfigView> = client.get_existing("/machine-configs").await?;
    if server.cluster_id.is_none() || !configs.iter().any(|c| c.server_id == server_id) {
        return Ok(not_reset(
            "it has no machine config or cluster in talos-manager any more (reset already?)",
        ));
    }
    let pauses = Pauses::until(Instant::now() + parse_duration(timeout).unwrap_or_default());
    let body = ResetBody {
        profile: Some(profile),
        force: None,
    };
    let job: JobView = client
        .post(&format!("{}/reset", path(server_id)), &body)
        .await?;
    tracing::info!(server = server_id, job = %job.id, ?profile, "reset queued");
    let destination = match profile {
        ResetProfileName::Maintenance => "to maintenance mode",
        ResetProfileName::Wipe => "with a full wipe",
        ResetProfileName::WipeToRescue => "with a full wipe into rescue",
    };
    let watch = Watch {
        kind: "Reset",
        operation: format!("the reset of server {server_id} {destination}"),
        timeout,
        next: "The resource stays in the Terraform state: the next destroy resets the server \
               again. To destroy it without a reset, set `reset_on_destroy = null` and apply \
               first.",
    };
    wait_for_job(client, job, &watch, pauses).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_and_timeout_are_checked_before_planning() {
        let config = schema().object([
            ("server_id", Value::String("robot-1".into())),
            ("wait_for", Value::String("booted".into())),
            ("timeout", Value::String("soon".into())),
            ("reset_on_destroy", Value::String("erase".into())),
        ]);
        let Err(Error::Invalid { issues, .. }) = ServerBootstrap.validate(&config) else {
            panic!("accepted")
        };
        let paths: Vec<&str> = issues.iter().map(|issue| issue.path.as_str()).collect();
        assert_eq!(paths, ["wait_for", "timeout", "reset_on_destroy"]);
        let unknown = schema().object([
            ("wait_for", Value::Unknown),
            ("timeout", Value::String("0s".into())),
        ]);
        assert!(ServerBootstrap.validate(&unknown).is_err());
        let fine = schema().object([
            ("wait_for", Value::String("image_written".into())),
            ("timeout", Value::String("45m".into())),
            ("reset_on_destroy", Value::String("wipe_to_rescue".into())),
        ]);
        assert!(ServerBootstrap.validate(&fine).is_ok());
    }
}
