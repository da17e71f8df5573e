//! `/clusters`: Talos clusters with their secrets bundle (made on create unless imported,
//! returned only when asked), and the talosconfig and admin kubeconfig generated from it.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};
use talos_manager_api_types::{
    CertificateExpiryView, ClusterBody, ClusterHealthView, ClusterView, EtcdMemberHealthView,
    HealthStatusName, MachineTypeName, MissingServerView, NodeHealthView,
};
use talos_manager_core::cluster_health::{ClusterHealth, HealthStatus};
use talos_manager_core::clusters::{
    LEARN_VERSION_TIMEOUTS, cluster_kubeconfig, cluster_secrets, cluster_talosconfig,
    create_cluster,
};
use talos_manager_core::ids::{ClusterId, VswitchId};
use talos_manager_core::lifecycle::NodeRole;
use talos_manager_core::store::{Cluster, ClusterFields};
use talos_manager_core::{Secret, Store};

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// A client config as YAML.
#[derive(Debug, ApiResponse)]
pub(crate) enum YamlFile {
    /// The file.
    #[oai(status = 200, content_type = "application/yaml")]
    Ok(PlainText<String>),
}

fn view(cluster: Cluster, secrets: Option<Secret<String>>) -> ClusterView {
    ClusterView {
        id: cluster.id.to_string(),
        name: cluster.name,
        endpoint: cluster.endpoint,
        vswitch_id: cluster.vswitch_id.map(|id| id.to_string()),
        secrets: secrets.map(Secret::into_inner),
        running_kubernetes_version: cluster.running_kubernetes_version,
        bootstrapped_at: cluster.bootstrapped_at,
        created_at: cluster.created_at,
        updated_at: cluster.updated_at,
    }
}

/// The API's view of a health check.
pub(crate) fn health_view(health: ClusterHealth) -> ClusterHealthView {
    let (nodes_ready, nodes_total) = health.nodes_ready();
    let earliest_expiry = health.earliest_expiry();
    let etcd_members_healthy = count(health.etcd.healthy_members());
    ClusterHealthView {
        cluster_id: health.cluster_id.to_string(),
        cluster: health.cluster,
        checked_at: health.checked_at,
        status: match health.status {
            HealthStatus::Healthy => HealthStatusName::Healthy,
            HealthStatus::Degraded => HealthStatusName::Degraded,
            HealthStatus::Unreachable => HealthStatusName::Unreachable,
            HealthStatus::NotBootstrapped => HealthStatusName::NotBootstrapped,
        },
        reasons: health.reasons,
        etcd_leader: health.etcd.leader,
        etcd_members_healthy,
        etcd_members: health
            .etcd
            .members
            .into_iter()
            .map(|member| EtcdMemberHealthView {
                id: member.id,
                name: member.name,
                learner: member.learner,
                leader: member.leader,
                healthy: member.healthy,
                problem: member.problem,
            })
            .collect(),
        kubernetes_reachable: health.kubernetes.reachable,
        kubernetes_version: health.kubernetes.version,
        kubernetes_error: health.kubernetes.error,
        nodes: health
            .nodes
            .into_iter()
            .map(|node| NodeHealthView {
                name: node.name,
                server_id: node.server_ref.map(|server| server.to_string()),
                server: node.server,
                machine_type: node.role.map(|role| match role {
                    NodeRole::ControlPlane => MachineTypeName::Controlplane,
                    NodeRole::Worker => MachineTypeName::Worker,
                }),
                talos_reachable: node.talos_reachable,
                talos_version: node.talos_version,
                talos_error: node.talos_error,
                etcd_member_id: node.etcd.as_ref().and_then(|etcd| etcd.member_id.clone()),
                etcd_errors: node.etcd.map(|etcd| etcd.errors).unwrap_or_default(),
                ready: node.kubernetes_ready,
                kubelet_version: node.kubelet_version,
            })
            .collect(),
        nodes_ready: count(nodes_ready),
        nodes_total: count(nodes_total),
        missing: health
            .missing
            .into_iter()
            .map(|missing| MissingServerView {
                server_id: missing.server_ref.to_string(),
                server: missing.server,
                missing_from: missing.missing_from.to_owned(),
            })
            .collect(),
        certificates: health
            .certificates
            .into_iter()
            .map(|cert| CertificateExpiryView {
                name: cert.name.to_owned(),
                description: cert.description.to_owned(),
                not_after: cert.not_after,
            })
            .collect(),
        earliest_expiry,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

async fn fields(store: &Store, body: &ClusterBody) -> ApiResult<ClusterFields> {
    let vswitch_id = match &body.vswitch_id {
        Some(id) => Some(
            store
                .get_vswitch(parse_id("vswitch", id, VswitchId)?)
                .await?
                .id,
        ),
        None => None,
    };
    let fields = ClusterFields {
        name: body.name.clone(),
        endpoint: body.endpoint.clone(),
        vswitch_id,
    };
    fields.validate()?;
    Ok(fields)
}

/// The bundle to store: checked when imported, made otherwise (off the async runtime: an
/// RSA-4096 key takes a moment).
async fn secrets_for(given: Option<String>) -> ApiResult<Secret<String>> {
    tokio::task::spawn_blocking(move || cluster_secrets(given.as_deref()))
        .await
        .map_err(|error| ApiError::internal(&error))?
        .map_err(ApiError::from)
}

pub(crate) struct ClustersApi;

#[OpenApi(tag = "Tag::Clusters")]
impl ClustersApi {
    /// List the clusters (without their secrets).
    #[oai(path = "/clusters", method = "get", operation_id = "list_clusters")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<ClusterView>>> {
        let clusters = state.store.list_clusters().await?;
        Ok(Json(
            clusters
                .into_iter()
                .map(|cluster| view(cluster, None))
                .collect(),
        ))
    }

    /// Create a cluster. Its secrets bundle is made unless one is given to import; an imported
    /// cluster runs already, so it is recorded as bootstrapped (`bootstrapped_at`) and its
    /// Kubernetes API is asked for the version it runs (`running_kubernetes_version`, at most
    /// a few seconds; no answer leaves it unknown).
    #[oai(path = "/clusters", method = "post", operation_id = "create_cluster")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        body: Json<ClusterBody>,
    ) -> ApiResult<Created<ClusterView>> {
        let fields = fields(&state.store, &body).await?;
        let imported = body.0.secrets.is_some();
        let secrets = secrets_for(body.0.secrets).await?;
        // An imported bundle is a running cluster's: it is never bootstrapped again, and the
        // Kubernetes version it runs is asked for now.
        let cluster = create_cluster(
            &state.store,
            &fields,
            &secrets,
            imported,
            LEARN_VERSION_TIMEOUTS,
        )
        .await?;
        tracing::info!(cluster = %cluster.name, imported, by = ?auth.principal(), "cluster created");
        Ok(Created::Created(Json(view(cluster, None))))
    }

    /// Check a cluster's health now: etcd's members and leader (through every control
    /// plane's Talos API), the Kubernetes API and its nodes (Ready, kubelet version), every
    /// configured node's Talos version, the configured servers that are not nodes or not etcd
    /// members, and when the cluster's certificates expire; with a status (`healthy`,
    /// `degraded`, `unreachable`, `not_bootstrapped`) and its reasons. A node that does not
    /// answer is part of the answer; each question is bounded by a timeout (a few seconds).
    #[oai(
        path = "/clusters/:id/health",
        method = "get",
        operation_id = "get_cluster_health"
    )]
    async fn health(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ClusterHealthView>> {
        let id = parse_id("cluster", &id, ClusterId)?;
        let health = state.cluster_health.check(&state.store, id).await?;
        Ok(Json(health_view(health)))
    }

    /// Get a cluster; its secrets bundle only with `include_secrets=true`.
    #[oai(path = "/clusters/:id", method = "get", operation_id = "get_cluster")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
        /// Include the secrets bundle in the answer.
        #[oai(default)]
        include_secrets: Query<bool>,
    ) -> ApiResult<Json<ClusterView>> {
        let id = parse_id("cluster", &id, ClusterId)?;
        let cluster = state.store.get_cluster(id).await?;
        let secrets = if include_secrets.0 {
            tracing::info!(cluster = %cluster.name, by = ?auth.principal(), "cluster secrets read");
            Some(state.store.cluster_secrets(id).await?)
        } else {
            None
        };
        Ok(Json(view(cluster, secrets)))
    }

    /// Replace a cluster's name, endpoint and vSwitch, and its secrets bundle when one is given.
    #[oai(
        path = "/clusters/:id",
        method = "put",
        operation_id = "update_cluster"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<ClusterBody>,
    ) -> ApiResult<Json<ClusterView>> {
        let id = parse_id("cluster", &id, ClusterId)?;
        state.store.get_cluster(id).await?;
        let fields = fields(&state.store, &body).await?;
        let secrets = match body.0.secrets {
            Some(given) => Some(secrets_for(Some(given)).await?),
            None => None,
        };
        let cluster = state
            .store
            .update_cluster(id, &fields, secrets.as_ref())
            .await?;
        Ok(Json(view(cluster, None)))
    }

    /// Delete a cluster and its secrets bundle. 409 `in_use` while servers belong to it:
    /// their nodes trust its PKI; detach them (`PATCH /servers/{id}` with `cluster_id: null`)
    /// or reset them first.
    #[oai(
        path = "/clusters/:id",
        method = "delete",
        operation_id = "delete_cluster"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        state
            .store
            .delete_cluster(parse_id("cluster", &id, ClusterId)?)
            .await?;
        Ok(Deleted::Deleted)
    }

    /// A talosconfig for the cluster (an `os:admin` client certificate), with its control
    /// planes as endpoints and nodes.
    #[oai(
        path = "/clusters/:id/talosconfig",
        method = "get",
        operation_id = "get_talosconfig"
    )]
    async fn talosconfig(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<YamlFile> {
        let id = parse_id("cluster", &id, ClusterId)?;
        let talosconfig = cluster_talosconfig(&state.store, id).await?;
        tracing::info!(cluster = %id, by = ?auth.principal(), "talosconfig issued");
        Ok(YamlFile::Ok(PlainText(talosconfig.into_inner())))
    }

    /// An admin kubeconfig for the cluster (`system:masters`), generated from its Kubernetes CA.
    #[oai(
        path = "/clusters/:id/kubeconfig",
        method = "get",
        operation_id = "get_kubeconfig"
    )]
    async fn kubeconfig(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<YamlFile> {
        let id = parse_id("cluster", &id, ClusterId)?;
        let kubeconfig = cluster_kubeconfig(&state.store, id).await?;
        tracing::info!(cluster = %id, by = ?auth.principal(), "kubeconfig issued");
        Ok(YamlFile::Ok(PlainText(kubeconfig.into_inner())))
    }
}
