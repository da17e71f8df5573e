//! Resets, rolling upgrades and rolling reboots of running nodes: each answers 202 with the job
//! doing it (follow it at `/jobs/{id}/log`). One of these runs per cluster at a time.

use std::collections::HashMap;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{
    IssueBody, JobView, ResetBody, ResetProfileName, RollingSelection, UpgradeBody,
};
use talos_manager_core::StoreError;
use talos_manager_core::ids::{ClusterId, ServerId, ServerRef};
use talos_manager_core::lifecycle::{
    NodeRef, ResetProfile, RollingPlan, RollingTarget, plan_rolling,
};
use talos_manager_core::rescue::our_public_key;
use talos_manager_core::store::NewJob;

use super::Tag;
use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::jobs::job_view;
use super::servers::load_server;
use crate::AppState;
use talos_manager_core::jobs::{
    JobKind, ResetArgs, RollingArgs, cluster_scope, queue_cluster_bootstrap,
};
use talos_manager_core::kubernetes::PodPolicy;

/// `ResetProfile` as core takes it.
fn reset_profile(name: ResetProfileName) -> ResetProfile {
    match name {
        ResetProfileName::Maintenance => ResetProfile::Maintenance,
        ResetProfileName::Wipe => ResetProfile::Wipe,
        ResetProfileName::WipeToRescue => ResetProfile::WipeToRescue,
    }
}

/// The queued job.
#[derive(Debug, poem_openapi::ApiResponse)]
enum JobAccepted {
    /// The job, queued.
    #[oai(status = 202)]
    Accepted(Json<JobView>),
}

pub(crate) struct LifecycleApi;

#[OpenApi(tag = "Tag::Servers")]
impl LifecycleApi {
    /// Reset a server's Talos node.
    ///
    /// Queues a `reset` job and answers 202 with it. The job reads the node's name from the
    /// node, and refuses to remove etcd's last member, or a control plane while another etcd
    /// member is not healthy or whose removal leaves etcd without a healthy majority, unless
    /// `force`; otherwise it resets gracefully when other members remain (Talos drains the node
    /// and leaves etcd), removes the etcd member if it is still listed, deletes the Kubernetes
    /// node, and clears the server's machine config and status. 409 when a reset, upgrade or
    /// reboot of the server's cluster is queued or running; 422 when the server is not a
    /// configured node.
    #[oai(
        path = "/servers/:id/reset",
        method = "post",
        operation_id = "reset_server"
    )]
    async fn reset(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
        body: Json<ResetBody>,
    ) -> ApiResult<JobAccepted> {
        let server = load_server(&state, &id).await?;
        let profile = body.profile.unwrap_or(ResetProfileName::Maintenance);
        if profile == ResetProfileName::WipeToRescue {
            our_public_key(state.bootstrap.ssh_private_key.as_ref())?;
        }
        let machine_config = state.store.machine_config_for_server(server.id).await?;
        let not_a_node = |message: String| {
            ApiError::invalid(
                "reset",
                vec![IssueBody {
                    path: String::new(),
                    message,
                }],
            )
        };
        NodeRef::new(&server, machine_config.as_ref(), 0)
            .map_err(|error| not_a_node(error.to_string()))?;
        let cluster_id = server.cluster_id.ok_or_else(|| {
            not_a_node(format!("server {} is in no cluster", server.inventory.name))
        })?;
        let args = ResetArgs {
            profile: reset_profile(profile),
            force: body.force.unwrap_or(false),
        };
        let job = enqueue(
            &state,
            JobKind::Reset,
            Some(server.id),
            serde_json::to_value(&args).map_err(|error| ApiError::internal(&error))?,
            cluster_id,
        )
        .await?;
        tracing::info!(server = %server.inventory.name, profile = ?args.profile, force = args.force, job = %job.id, by = ?auth.principal(), "reset queued");
        let api_id =
            ServerRef::new(server.inventory.provider, &server.inventory.provider_id).to_string();
        let servers = HashMap::from([(server.id, api_id)]);
        Ok(JobAccepted::Accepted(Json(job_view(job, &servers))))
    }

    /// Bootstrap a cluster's etcd.
    ///
    /// Queues a `cluster_bootstrap` job and answers 202 with it. The job calls Talos's
    /// Bootstrap on exactly the first control plane that fetched its config (retrying while
    /// Talos says it is not ready), never when a control plane lists etcd members, then waits
    /// for etcd and the Kubernetes API and records the cluster as bootstrapped. The same job is
    /// queued by itself when a control plane of a cluster never bootstrapped fetched its
    /// config. 409 `cluster_bootstrapped` when the cluster is recorded as bootstrapped (also
    /// imported clusters), `bootstrap_running` when its bootstrap job is queued or running.
    #[oai(
        path = "/clusters/:id/bootstrap",
        method = "post",
        operation_id = "bootstrap_cluster",
        tag = "Tag::Clusters"
    )]
    async fn bootstrap_cluster(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<JobAccepted> {
        let id = parse_id("cluster", &id, ClusterId)?;
        let job = queue_cluster_bootstrap(&state.jobs, &state.store, id).await?;
        tracing::info!(cluster = %id, job = %job.id, by = ?auth.principal(), "cluster bootstrap queued");
        Ok(JobAccepted::Accepted(Json(job_view(job, &HashMap::new()))))
    }

    /// Upgrade Talos on a cluster's nodes, one at a time.
    ///
    /// Queues an `upgrade` job and answers 202 with it. Control planes go first, one at a time,
    /// then workers. Each node: read its name from the node; control planes: check etcd through
    /// every control plane (every other member healthy, a healthy majority left while it is
    /// down; otherwise stop before the node is touched, naming the members that are not
    /// healthy) and forfeit etcd leadership; cordon and drain (PodDisruptionBudgets respected,
    /// `DRAIN_TIMEOUT`), upgrade to the installer of its server's schematic and `talos_version`,
    /// wait until it runs that version and is ready in Talos and Kubernetes
    /// (`NODE_READY_TIMEOUT`) and, control planes, has rejoined etcd (`ETCD_REJOIN_TIMEOUT`),
    /// uncordon. The drain follows `kubectl drain --ignore-daemonsets`: DaemonSet, mirror and
    /// finished pods stay; a pod no controller manages or with an `emptyDir` volume fails the
    /// node naming it (nothing evicted, the node uncordoned) unless `force` /
    /// `delete_emptydir_data`. Nodes already at the version and
    /// schematic are skipped. The first failure stops the job and leaves the remaining nodes
    /// untouched; a job interrupted by a restart continues where it stopped. 409 while another
    /// reset, upgrade or reboot of the cluster is queued or running; 422 for a selection that
    /// cannot be upgraded (servers of several clusters, not configured, no schematic, a bad
    /// version).
    #[oai(path = "/upgrades", method = "post", operation_id = "upgrade_nodes")]
    async fn upgrade(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        body: Json<UpgradeBody>,
    ) -> ApiResult<JobAccepted> {
        let body = body.0;
        let mut args = selection_args(&state, &body.selection).await?;
        args.talos_version = Some(body.talos_version.trim().to_owned());
        rolling(&state, &auth, JobKind::Upgrade, args).await
    }

    /// Reboot a cluster's nodes, one at a time.
    ///
    /// Queues a `reboot` job and answers 202 with it; each node is drained and rebooted as an
    /// upgrade would be (see `upgrade_nodes`), control planes first. 409 while another reset,
    /// upgrade or reboot of the cluster is queued or running; 422 for a selection that cannot
    /// be rebooted.
    #[oai(path = "/reboots", method = "post", operation_id = "reboot_nodes")]
    async fn reboot(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        body: Json<RollingSelection>,
    ) -> ApiResult<JobAccepted> {
        let args = selection_args(&state, &body.0).await?;
        rolling(&state, &auth, JobKind::Reboot, args).await
    }
}

/// The job arguments of a selection: a cluster, or servers by their API ids.
async fn selection_args(state: &AppState, selection: &RollingSelection) -> ApiResult<RollingArgs> {
    let issue = |message: &str| {
        ApiError::invalid(
            "selection",
            vec![IssueBody {
                path: String::new(),
                message: message.to_owned(),
            }],
        )
    };
    let pod_policy = PodPolicy {
        force: selection.force.unwrap_or(false),
        delete_emptydir_data: selection.delete_emptydir_data.unwrap_or(false),
    };
    match (&selection.cluster_id, &selection.server_ids) {
        (Some(cluster), None) => Ok(RollingArgs {
            cluster_id: Some(parse_id("cluster", cluster, ClusterId)?),
            server_ids: Vec::new(),
            talos_version: None,
            pod_policy,
        }),
        (None, Some(servers)) => {
            let mut server_ids: Vec<ServerId> = Vec::new();
            for api_id in servers {
                let id = load_server(state, api_id).await?.id;
                if !server_ids.contains(&id) {
                    server_ids.push(id);
                }
            }
            Ok(RollingArgs {
                cluster_id: None,
                server_ids,
                talos_version: None,
                pod_policy,
            })
        }
        (Some(_), Some(_)) => Err(issue("give cluster_id or server_ids, not both")),
        (None, None) => Err(issue("give cluster_id or server_ids")),
    }
}

/// Checks a rolling job's plan now (it reads only the store) and queues the job.
async fn rolling(
    state: &AppState,
    auth: &AdminAuth,
    kind: JobKind,
    args: RollingArgs,
) -> ApiResult<JobAccepted> {
    let plan: RollingPlan = plan_rolling(
        &state.store,
        &args.target(),
        &args.action(),
        state.image_factory.client().base_url(),
    )
    .await?;
    let server_id = match args.target() {
        RollingTarget::Server(server) => Some(server),
        _ => None,
    };
    let job = enqueue(
        state,
        kind,
        server_id,
        serde_json::to_value(&args).map_err(|error| ApiError::internal(&error))?,
        plan.cluster_id,
    )
    .await?;
    tracing::info!(cluster = %plan.cluster_name, nodes = plan.nodes.len(), job = %job.id, by = ?auth.principal(), "{} queued", plan.action);
    let servers = state
        .store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| Some(server.id) == job.server_id)
        .map(|server| {
            let api_id = ServerRef::new(server.inventory.provider, &server.inventory.provider_id)
                .to_string();
            (server.id, api_id)
        })
        .collect();
    Ok(JobAccepted::Accepted(Json(job_view(job, &servers))))
}

/// Queues a lifecycle job in its cluster's exclusive scope.
async fn enqueue(
    state: &AppState,
    kind: JobKind,
    server_id: Option<ServerId>,
    args: serde_json::Value,
    cluster: ClusterId,
) -> ApiResult<talos_manager_core::store::Job> {
    let job = NewJob {
        kind: kind.to_string(),
        server_id,
        args,
    };
    let scope = cluster_scope(cluster);
    match state.jobs.enqueue_exclusive(&job, &scope).await {
        Ok(job) => Ok(job),
        Err(StoreError::Conflict { .. }) => {
            let holder = match state.store.active_job_in_scope(&scope).await? {
                Some(holder) => format!(" (job {}, {})", holder.id, holder.kind),
                // It ended between the two statements: the next request gets through.
                None => String::new(),
            };
            Err(ApiError::cluster_busy(format!(
                "a reset, upgrade or reboot of this cluster is already queued or \
                 running{holder}: follow or cancel it first"
            )))
        }
        Err(other) => Err(other.into()),
    }
}
