//! `/clusters`: Talos clusters with their secrets bundle (made on create unless imported,
//! returned only when asked), and the talosconfig and admin kubeconfig generated from it.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};
use talos_manager_api_types::{ClusterBody, ClusterView};
use talos_manager_core::clusters::{cluster_kubeconfig, cluster_secrets, cluster_talosconfig};
use talos_manager_core::ids::{ClusterId, VswitchId};
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
    /// cluster runs already, so it is recorded as bootstrapped (`bootstrapped_at`).
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
        // An imported bundle is a running cluster's: it is never bootstrapped again.
        let cluster = state
            .store
            .create_cluster_bootstrapped(&fields, &secrets, imported)
            .await?;
        tracing::info!(cluster = %cluster.name, imported, by = ?auth.principal(), "cluster created");
        Ok(Created::Created(Json(view(cluster, None))))
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
