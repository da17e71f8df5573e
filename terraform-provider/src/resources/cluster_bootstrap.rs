//! `talosmanager_cluster_bootstrap`: etcd's bootstrap of a new cluster
//! (`POST /clusters/{id}/bootstrap`), waited for (`GET /jobs/{id}`, then `GET /clusters/{id}`
//! until `bootstrapped_at` is set, then `GET /clusters/{id}/health` until it is healthy).
//!
//! # Expected flow
//! 1. Create asks the service to bootstrap the cluster. The service answers with a
//!    `cluster_bootstrap` job, or 409: `cluster_bootstrapped` (done already, also for an
//!    imported cluster) or `bootstrap_running` (a job is queued or running, e.g. the one
//!    talos-manager queued by itself when the first control plane fetched its config).
//! 2. A job of its own is followed to its end, its progress in the provider's log; a failed
//!    or cancelled job is an error carrying the job's reason.
//! 3. While another job runs, it asks again after each pause: the answer becomes
//!    `cluster_bootstrapped` once that job succeeded, or a new job of its own when it failed.
//! 4. It then waits until the cluster's `bootstrapped_at` is set.
//! 5. Unless `wait_for_health = false`, it then checks the cluster's health after each pause
//!    until its status is `healthy`, logging the reasons whenever they change; when `timeout`
//!    runs out first, the error carries the last check's status and reasons.
//!
//! # Guarantees
//! The service bootstraps a cluster at most once; this resource never asks for more. A create
//! that does not end with the cluster bootstrapped leaves nothing in the state: the next apply
//! asks again. Destroy only forgets the resource: there is no un-bootstrap.

use std::time::Instant;

use async_trait::async_trait;
use talos_manager_api_types::{ClusterHealthView, ClusterView, HealthStatusName, JobView};
use talos_manager_api_types::{Issue, ValidationError};
use time::format_description::well_known::Rfc3339;

use super::Resource;
use super::job::{Pauses, Watch, parse_duration, timeout_issue, wait_for_job};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct ClusterBootstrap;

const TYPE_NAME: &str = "talosmanager_cluster_bootstrap";

/// `timeout` when the configuration leaves it out.
const DEFAULT_TIMEOUT: &str = "30m";

/// What a create that did not finish leaves.
const NEXT: &str = "Nothing is kept in the Terraform state: the next apply asks talos-manager to \
                    bootstrap the cluster again (it never bootstraps a cluster twice).";

fn schema() -> Schema {
    Schema {
        type_name: TYPE_NAME,
        kind: Kind::Resource,
        version: 0,
        description: "The etcd bootstrap of a new cluster, the step `talosctl bootstrap` does: \
                      talos-manager calls Talos's Bootstrap on exactly the first control plane \
                      that fetched its config (retrying while Talos is not ready yet), waits \
                      for etcd and the Kubernetes API, and records the cluster as \
                      bootstrapped. talos-manager also does this by itself once the first \
                      control plane fetched its config; this resource makes it explicit and \
                      makes apply wait for it. Apply asks for the bootstrap unless the cluster \
                      was bootstrapped already (or imported with its secrets), follows the \
                      job (or the one running already) to its end within `timeout` (its log \
                      lines go to Terraform's log: `TF_LOG_PROVIDER=DEBUG`), and waits \
                      until the cluster is recorded as bootstrapped (`bootstrapped_at`) and \
                      then, unless `wait_for_health = false`, until its health check \
                      (`talosmanager_cluster_health`) says `healthy`, logging why it is not \
                      yet; a failed job's reason, or the last health check's reasons when \
                      `timeout` runs out, is the error, and nothing is kept in the state, so \
                      the next apply asks again (or only waits again). A cluster is bootstrapped at most once. \
                      Destroying the resource only removes it from the Terraform state: there \
                      is no un-bootstrap (a warning says so).",
        attributes: vec![
            Attribute::computed("id", Type::String, "The cluster's id."),
            Attribute::required(
                "cluster_id",
                Type::String,
                "The cluster (a `talosmanager_cluster`'s id).",
            )
            .force_new(),
            Attribute::optional(
                "timeout",
                Type::String,
                "How long apply waits for the bootstrap and the cluster's health, e.g. `30m`, \
                 `1h`. Default: `30m`. \
                 When it runs out (or on Ctrl-C) the job goes on in talos-manager and the \
                 error names it. Changing it changes only the state.",
            ),
            Attribute::optional(
                "wait_for_health",
                Type::Bool,
                "Whether apply waits, after the bootstrap and within `timeout`, until the \
                 cluster's health check says `healthy` (etcd's members healthy with a leader, \
                 the Kubernetes API answering, every node Ready). Default: `true`. Changing \
                 it changes only the state.",
            ),
            Attribute::computed(
                "job_id",
                Type::String,
                "The bootstrap job apply followed: follow it at `/api/v1/jobs/{job_id}/log`. \
                 Null when the cluster was bootstrapped already, or by a job talos-manager \
                 queued by itself.",
            ),
            Attribute::computed(
                "bootstrapped_at",
                Type::String,
                "When the cluster was recorded as bootstrapped (RFC 3339).",
            ),
        ],
        import: Some(
            "By cluster id: `terraform import talosmanager_cluster_bootstrap.NAME 1`. \
             `timeout`, `wait_for_health` and `job_id` import as null. A cluster that was never bootstrapped has no \
             bootstrap to import: create the resource instead.",
        ),
        example: r#"
resource "talosmanager_cluster_bootstrap" "production" {
  cluster_id = talosmanager_cluster.production.id
  timeout    = "20m"

  # Bootstrap once the first control plane runs Talos with its machine config.
  depends_on = [talosmanager_server_bootstrap.control_plane_1]
}"#,
    }
}

fn cluster_path(cluster_id: &str) -> String {
    format!("/clusters/{}", segment(cluster_id))
}

/// The state: `known`'s arguments, the cluster's id and when it was bootstrapped.
fn object(known: &Object, cluster: &ClusterView, job_id: Value) -> Object {
    let bootstrapped_at = cluster
        .bootstrapped_at
        .and_then(|at| at.format(&Rfc3339).ok());
    schema().object([
        ("id", Value::String(cluster.id.clone())),
        ("cluster_id", Value::String(cluster.id.clone())),
        ("timeout", known.get_value("timeout").clone()),
        (
            "wait_for_health",
            known.get_value("wait_for_health").clone(),
        ),
        ("job_id", job_id),
        ("bootstrapped_at", Value::opt_string(bootstrapped_at)),
    ])
}

/// What a POST to the bootstrap endpoint answered.
enum Asked {
    /// A job of ours.
    Queued(JobView),
    /// The cluster is recorded as bootstrapped.
    Bootstrapped,
    /// Another bootstrap job is queued or running; the service's message names it.
    Running(String),
}

async fn ask(client: &Client, cluster_id: &str) -> Result<Asked, Error> {
    let path = format!("{}/bootstrap", cluster_path(cluster_id));
    match client
        .post::<_, JobView>(&path, &serde_json::json!({}))
        .await
    {
        Ok(job) => Ok(Asked::Queued(job)),
        Err(Error::Api {
            status: 409, code, ..
        }) if code == "cluster_bootstrapped" => Ok(Asked::Bootstrapped),
        Err(Error::Api {
            status: 409,
            code,
            message,
            ..
        }) if code == "bootstrap_running" => Ok(Asked::Running(message)),
        Err(error) => Err(error),
    }
}

/// Bootstraps the cluster (or waits for the bootstrap under way) within `timeout`. Returns
/// the cluster once it is recorded as bootstrapped, and the job followed to its end, if any.
async fn bootstrap(
    client: &Client,
    cluster_id: &str,
    timeout: &str,
    deadline: Instant,
) -> Result<(ClusterView, Option<String>), Error> {
    let mut pauses = Pauses::until(deadline);
    let operation = format!("the bootstrap of cluster {cluster_id}");
    let mut followed = None;
    let mut announced = false;
    loop {
        match ask(client, cluster_id).await? {
            Asked::Queued(job) => {
                tracing::info!(cluster = cluster_id, job = %job.id, "cluster bootstrap queued");
                let watch = Watch {
                    kind: "Cluster bootstrap",
                    operation: operation.clone(),
                    timeout,
                    next: NEXT,
                };
                let job = wait_for_job(client, job, &watch, pauses).await?;
                tracing::info!(cluster = cluster_id, job = %job.id, "cluster bootstrap succeeded");
                followed = Some(job.id);
                pauses = Pauses::until(deadline);
            }
            Asked::Bootstrapped => {}
            Asked::Running(message) => {
                if !announced {
                    tracing::info!(cluster = cluster_id, "{message}: waiting for it");
                    announced = true;
                }
                wait(client, &mut pauses, cluster_id, &operation, timeout).await?;
                continue;
            }
        }
        let cluster: ClusterView =
            client
                .get(&cluster_path(cluster_id))
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "cluster",
                    id: cluster_id.to_owned(),
                })?;
        if cluster.bootstrapped_at.is_some() {
            return Ok((cluster, followed));
        }
        wait(client, &mut pauses, cluster_id, &operation, timeout).await?;
    }
}

/// Checks the cluster's health after each pause until it is healthy, logging the reasons
/// whenever they change; the time running out is an error with the last reasons.
async fn wait_for_health(
    client: &Client,
    mut pauses: Pauses,
    cluster_id: &str,
    timeout: &str,
) -> Result<(), Error> {
    let path = format!("{}/health", cluster_path(cluster_id));
    let mut logged: Option<Vec<String>> = None;
    loop {
        let health: ClusterHealthView =
            client.get(&path).await?.ok_or_else(|| Error::NotFound {
                what: "cluster",
                id: cluster_id.to_owned(),
            })?;
        let status = status_name(health.status);
        if health.status == HealthStatusName::Healthy {
            tracing::info!(cluster = cluster_id, "cluster is healthy");
            return Ok(());
        }
        if logged.as_ref() != Some(&health.reasons) {
            tracing::info!(
                cluster = cluster_id,
                status,
                "waiting until the cluster is healthy: {}",
                health.reasons.join("; ")
            );
            logged = Some(health.reasons.clone());
        }
        if pauses.expired() {
            return Err(Error::NotHealthy {
                cluster_id: cluster_id.to_owned(),
                timeout: timeout.to_owned(),
                status: status.to_owned(),
                reasons: health.reasons,
                next: HEALTH_NEXT,
            });
        }
        if !pauses.pause(client).await {
            return Err(Error::Stopped);
        }
    }
}

/// What a create that timed out waiting for the cluster's health leaves.
const HEALTH_NEXT: &str = "The cluster is bootstrapped, but nothing is kept in the Terraform \
                           state: the next apply only waits for its health again.";

/// The wire name of a health status.
fn status_name(status: HealthStatusName) -> &'static str {
    match status {
        HealthStatusName::Healthy => "healthy",
        HealthStatusName::Degraded => "degraded",
        HealthStatusName::Unreachable => "unreachable",
        HealthStatusName::NotBootstrapped => "not_bootstrapped",
    }
}

/// One pause; the time running out and Terraform's stop are errors.
async fn wait(
    client: &Client,
    pauses: &mut Pauses,
    cluster_id: &str,
    operation: &str,
    timeout: &str,
) -> Result<(), Error> {
    if pauses.expired() {
        return Err(Error::WaitTimeout {
            operation: operation.to_owned(),
            timeout: timeout.to_owned(),
            follow: format!("GET /api/v1/clusters/{cluster_id} (its `bootstrapped_at`)"),
            next: NEXT,
        });
    }
    if pauses.pause(client).await {
        Ok(())
    } else {
        Err(Error::Stopped)
    }
}

fn invalid(issues: Vec<Issue>) -> Result<(), Error> {
    ValidationError::check("cluster bootstrap", issues).map_err(|error| Error::Invalid {
        what: error.what,
        issues: error.issues,
    })
}

#[async_trait]
impl Resource for ClusterBootstrap {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        invalid(
            timeout_issue(config.string("timeout"))
                .into_iter()
                .collect(),
        )
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let cluster_id = planned.string("cluster_id").unwrap_or_default();
        let timeout = planned.string("timeout").unwrap_or(DEFAULT_TIMEOUT);
        let deadline = Instant::now() + parse_duration(timeout).unwrap_or_default();
        let (cluster, job_id) = bootstrap(client, cluster_id, timeout, deadline).await?;
        if planned.bool("wait_for_health").unwrap_or(true) {
            wait_for_health(client, Pauses::until(deadline), cluster_id, timeout).await?;
        }
        Ok(object(planned, &cluster, Value::opt_string(job_id)))
    }

    /// The cluster's `bootstrapped_at`; gone when the cluster is, or was never bootstrapped
    /// (then the next apply bootstraps it).
    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let cluster: Option<ClusterView> = client.get(&cluster_path(id)).await?;
        Ok(cluster
            .filter(|cluster| cluster.bootstrapped_at.is_some())
            .map(|cluster| object(prior, &cluster, prior.get_value("job_id").clone())))
    }

    /// Only `timeout` changes in place.
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
        _client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        Ok(Some(format!(
            "The bootstrap of cluster {id} is only removed from the Terraform state: there is \
             no un-bootstrap, and its etcd and Kubernetes keep running. Creating the resource \
             again does not bootstrap the cluster a second time."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_checked_before_planning() {
        let config = schema().object([
            ("cluster_id", Value::String("1".into())),
            ("timeout", Value::String("soon".into())),
        ]);
        let Err(Error::Invalid { issues, .. }) = ClusterBootstrap.validate(&config) else {
            panic!("accepted")
        };
        assert_eq!(issues[0].path, "timeout");
        let fine = schema().object([("timeout", Value::String("20m".into()))]);
        assert!(ClusterBootstrap.validate(&fine).is_ok());
    }
}
