//! `talosmanager_cluster_upgrade`: a rolling Talos upgrade of a cluster's nodes
//! (`POST /upgrades`), waited for (`GET /jobs/{id}`).
//!
//! # Expected flow
//! 1. Create queues an upgrade job for the cluster (or the selected servers) to
//!    `talos_version`; the service upgrades the nodes one at a time, control planes first,
//!    skipping nodes already at that version and schematic.
//! 2. It polls the job until it ended; a failed or cancelled job is an error naming the job
//!    and carrying its summary (which node failed and why).
//! 3. A new `talos_version` or selection updates in place: a new upgrade job, waited for the
//!    same way. A new `timeout` changes only the state.
//!
//! # Guarantees
//! A create whose job does not succeed leaves the resource in the state, tainted, with its job
//! id: the next apply upgrades again. An update whose job does not succeed keeps the previous
//! state, so the next plan shows the change again. Read does not look at the nodes (the job
//! recorded the upgrade); only a deleted cluster removes the resource. Destroy changes
//! nothing on the nodes.

use std::time::Instant;

use async_trait::async_trait;
use talos_manager_api_types::{ClusterView, JobView, RollingSelection, ServerView, UpgradeBody};
use talos_manager_api_types::{Issue, ValidationError};

use super::Resource;
use super::job::{Pauses, Watch, parse_duration, timeout_issue, wait_for_job};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct ClusterUpgrade;

const TYPE_NAME: &str = "talosmanager_cluster_upgrade";

/// `timeout` when the configuration leaves it out.
const DEFAULT_TIMEOUT: &str = "60m";

/// What a failed create leaves: the resource tainted.
const NEXT_AFTER_CREATE: &str = "Terraform marks the resource tainted: the next apply runs the \
                                 upgrade again (nodes already at the version are skipped).";

/// What a failed update leaves: the previous state.
const NEXT_AFTER_UPDATE: &str = "The state keeps the previous version: the next apply runs the \
                                 upgrade again (nodes already at the version are skipped).";

fn schema() -> Schema {
    Schema {
        type_name: TYPE_NAME,
        kind: Kind::Resource,
        version: 0,
        description: "A rolling Talos upgrade of a cluster's nodes: talos-manager upgrades them \
                      one at a time, control planes first. Each node forfeits etcd leadership \
                      (control planes), is cordoned and drained, upgraded to the Image Factory \
                      installer of its server's schematic at `talos_version`, waited for until \
                      it runs that version and is Ready, and uncordoned; nodes already at the \
                      version and schematic are skipped, and the first failure stops the job, \
                      leaving the remaining nodes untouched. Apply waits for the job within \
                      `timeout`; a failed job's summary (which node failed and why) is the \
                      error. Changing `talos_version` (or `server_ids`) upgrades again, in \
                      place. Read does not check the nodes' versions: it keeps the state until \
                      the cluster is deleted. Destroying the resource changes nothing on the \
                      nodes: they keep the version they run (a warning says so).",
        attributes: vec![
            Attribute::computed("id", Type::String, "The cluster's id."),
            Attribute::required(
                "cluster_id",
                Type::String,
                "The cluster (a `talosmanager_cluster`'s id).",
            )
            .force_new(),
            Attribute::optional(
                "server_ids",
                Type::Set(Box::new(Type::String)),
                "Only these servers of the cluster (`robot-<n>`, `cloud-<id>`). Default: every \
                 configured server of the cluster. Changing it upgrades the new selection, in \
                 place.",
            ),
            Attribute::required(
                "talos_version",
                Type::String,
                "The Talos version the nodes run, `vX.Y.Z`. Changing it runs a new rolling \
                 upgrade, in place.",
            ),
            Attribute::optional(
                "timeout",
                Type::String,
                "How long apply waits for the upgrade job, e.g. `90m`, `2h`. Default: `60m`. \
                 When it runs out (or on Ctrl-C) the job goes on in talos-manager and the \
                 error names it. Changing it changes only the state.",
            ),
            Attribute::computed(
                "job_id",
                Type::String,
                "The last upgrade job's id: follow it at `/api/v1/jobs/{job_id}/log`.",
            ),
        ],
        import: Some(
            "By cluster id: `terraform import talosmanager_cluster_upgrade.NAME 1`. \
             `talos_version`, `server_ids`, `timeout` and `job_id` import as null (the service \
             keeps no desired version), so the next apply runs an upgrade to the configured \
             `talos_version`; nodes already at that version are skipped.",
        ),
        example: r#"
variable "talos_version" {
  type    = string
  default = "v1.11.2"
}

resource "talosmanager_cluster_upgrade" "production" {
  cluster_id    = talosmanager_cluster.production.id
  talos_version = var.talos_version
  timeout       = "90m"

  # Upgrade the nodes once they are installed.
  depends_on = [talosmanager_server_bootstrap.control_plane_1]
}"#,
    }
}

/// The `server_ids` as a sorted list; `None` when null or unknown.
fn server_ids(object: &Object) -> Option<Vec<String>> {
    let Value::List(items) = object.get_value("server_ids") else {
        return None;
    };
    let mut ids: Vec<String> = items
        .iter()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    Some(ids)
}

/// Whether an update from `prior` to `planned` runs an upgrade.
fn upgrades(prior: &Object, planned: &Object) -> bool {
    prior.get_value("talos_version") != planned.get_value("talos_version")
        || server_ids(prior) != server_ids(planned)
}

/// Checks that the selected servers belong to the cluster (the service only checks that they
/// belong to one cluster).
async fn check_selection(client: &Client, cluster_id: &str, ids: &[String]) -> Result<(), Error> {
    let mut issues = Vec::new();
    for id in ids {
        let server: Option<ServerView> = client.get(&format!("/servers/{}", segment(id))).await?;
        match server {
            None => issues.push(Issue::new("server_ids", format!("no server {id:?} exists"))),
            Some(server) if server.cluster_id.as_deref() != Some(cluster_id) => {
                issues.push(Issue::new(
                    "server_ids",
                    format!(
                        "server {id} ({}) is not in cluster {cluster_id}",
                        server.name
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    invalid(issues)
}

/// Queues the upgrade `planned` describes, then waits for it. Returns the job once it
/// succeeded; on failure, the job when one was queued, and the error.
async fn upgrade(
    client: &Client,
    planned: &Object,
    next: &'static str,
) -> Result<JobView, (Option<String>, Error)> {
    let cluster_id = planned.string("cluster_id").unwrap_or_default();
    let talos_version = planned.string("talos_version").unwrap_or_default();
    let timeout = planned.string("timeout").unwrap_or(DEFAULT_TIMEOUT);
    let pauses = Pauses::until(Instant::now() + parse_duration(timeout).unwrap_or_default());
    let selection = match server_ids(planned) {
        Some(ids) => {
            check_selection(client, cluster_id, &ids)
                .await
                .map_err(|error| (None, error))?;
            RollingSelection {
                cluster_id: None,
                server_ids: Some(ids),
                force: None,
                delete_emptydir_data: None,
            }
        }
        None => RollingSelection {
            cluster_id: Some(cluster_id.to_owned()),
            server_ids: None,
            force: None,
            delete_emptydir_data: None,
        },
    };
    let body = UpgradeBody {
        selection,
        talos_version: talos_version.to_owned(),
    };
    let job: JobView = client
        .post("/upgrades", &body)
        .await
        .map_err(|error| (None, error))?;
    tracing::info!(cluster = cluster_id, job = %job.id, talos_version, "upgrade queued");
    let job_id = job.id.clone();
    let nodes = if body.selection.server_ids.is_some() {
        "selected nodes of cluster"
    } else {
        "cluster"
    };
    let watch = Watch {
        kind: "Upgrade",
        operation: format!("the upgrade of {nodes} {cluster_id} to {talos_version}"),
        timeout,
        next,
    };
    wait_for_job(client, job, &watch, pauses)
        .await
        .map_err(|error| (Some(job_id), error))
}

/// The state: `planned`'s arguments, the cluster's id and the job's.
fn object(planned: &Object, job_id: Option<String>) -> Object {
    let argument = |name: &'static str| (name, planned.get_value(name).clone());
    let cluster_id = planned.get_value("cluster_id").clone();
    schema().object([
        ("id", cluster_id.clone()),
        ("cluster_id", cluster_id),
        argument("server_ids"),
        argument("talos_version"),
        argument("timeout"),
        (
            "job_id",
            job_id.map_or_else(|| planned.get_value("job_id").clone(), Value::String),
        ),
    ])
}

fn invalid(issues: Vec<Issue>) -> Result<(), Error> {
    ValidationError::check("cluster upgrade", issues).map_err(|error| Error::Invalid {
        what: error.what,
        issues: error.issues,
    })
}

#[async_trait]
impl Resource for ClusterUpgrade {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        let mut issues = Vec::new();
        issues.extend(timeout_issue(config.string("timeout")));
        if let Value::List(items) = config.get_value("server_ids")
            && items.is_empty()
        {
            issues.push(Issue::new(
                "server_ids",
                "is empty: leave it out to upgrade the whole cluster",
            ));
        }
        invalid(issues)
    }

    /// A new version or selection is a new job.
    fn plan_update(&self, prior: &Object, planned: &mut Object) {
        if upgrades(prior, planned) {
            planned.insert("job_id".into(), Value::Unknown);
        }
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        match upgrade(client, planned, NEXT_AFTER_CREATE).await {
            Ok(job) => Ok(object(planned, Some(job.id))),
            // Nothing was queued: nothing to keep.
            Err((None, error)) => Err(error),
            Err((Some(job_id), error)) => Err(Error::Incomplete {
                type_name: TYPE_NAME,
                state: object(planned, Some(job_id)),
                error: Box::new(error),
            }),
        }
    }

    /// Keeps the state while the cluster exists.
    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let cluster: Option<ClusterView> =
            client.get(&format!("/clusters/{}", segment(id))).await?;
        Ok(cluster.map(|cluster| {
            let mut state = prior.clone();
            state.insert("cluster_id".into(), Value::String(cluster.id));
            object(&state, None)
        }))
    }

    /// A new `talos_version` or `server_ids` runs an upgrade; a new `timeout` only changes the
    /// state.
    async fn update(
        &self,
        client: &Client,
        _id: &str,
        planned: &Object,
        prior: &Object,
    ) -> Result<Object, Error> {
        if !upgrades(prior, planned) {
            return Ok(object(planned, None));
        }
        match upgrade(client, planned, NEXT_AFTER_UPDATE).await {
            Ok(job) => Ok(object(planned, Some(job.id))),
            Err((_, error)) => Err(error),
        }
    }

    async fn delete(
        &self,
        _client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<String>, Error> {
        let version = prior
            .string("talos_version")
            .map(|version| format!(" ({version})"))
            .unwrap_or_default();
        Ok(Some(format!(
            "The upgrade of cluster {id}{version} is only removed from the Terraform state: the \
             nodes keep the Talos version they run."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[&str]) -> Value {
        Value::List(values.iter().map(|v| Value::String((*v).into())).collect())
    }

    #[test]
    fn a_new_version_or_selection_is_a_new_job_a_new_timeout_is_not() {
        let prior = schema().object([
            ("id", Value::String("1".into())),
            ("cluster_id", Value::String("1".into())),
            ("server_ids", ids(&["robot-1", "robot-2"])),
            ("talos_version", Value::String("v1.11.2".into())),
            ("job_id", Value::String("7".into())),
        ]);
        let mut planned = prior.clone();
        planned.insert("timeout".into(), Value::String("2h".into()));
        planned.insert("server_ids".into(), ids(&["robot-2", "robot-1"]));
        ClusterUpgrade.plan_update(&prior, &mut planned);
        assert_eq!(planned["job_id"], Value::String("7".into()));

        for (name, value) in [
            ("talos_version", Value::String("v1.11.3".into())),
            ("server_ids", ids(&["robot-1"])),
            ("server_ids", Value::Null),
        ] {
            let mut planned = prior.clone();
            planned.insert(name.into(), value);
            ClusterUpgrade.plan_update(&prior, &mut planned);
            assert_eq!(planned["job_id"], Value::Unknown, "{name}");
        }
    }

    #[test]
    fn timeout_and_an_empty_selection_are_checked_before_planning() {
        let config = schema().object([
            ("cluster_id", Value::String("1".into())),
            ("talos_version", Value::String("v1.11.2".into())),
            ("server_ids", ids(&[])),
            ("timeout", Value::String("an hour".into())),
        ]);
        let Err(Error::Invalid { issues, .. }) = ClusterUpgrade.validate(&config) else {
            panic!("accepted")
        };
        let paths: Vec<&str> = issues.iter().map(|issue| issue.path.as_str()).collect();
        assert_eq!(paths, ["timeout", "server_ids"]);
    }
}
