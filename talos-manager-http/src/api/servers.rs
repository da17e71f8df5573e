//! `/servers`: the fleet, as synced from the providers and probed in rescue.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{Object, OpenApi};
use talos_manager_core::error_chain;
use talos_manager_core::node_config::{NodeConfigError, render_node_config};
use talos_manager_core::store::Server;
use time::OffsetDateTime;

use super::Tag;
use super::auth::AdminAuth;
use super::clusters::YamlFile;
use super::error::{ApiError, ApiResult, IssueBody};
use super::ids::{parse_server_api_id, server_api_id};
use crate::AppState;

/// A server.
#[derive(Debug, Object)]
pub struct ServerView {
    /// `robot-<server number>` or `cloud-<id>`.
    pub id: String,
    /// `hetzner_robot` or `hetzner_cloud`.
    pub provider: String,
    /// The provider account it was synced from.
    pub provider_account_id: String,
    /// Its name at the provider.
    pub name: String,
    /// Public IPv4 address.
    pub ipv4: Option<String>,
    /// Public IPv6 network.
    pub ipv6: Option<String>,
    /// Product or server type.
    pub product: String,
    /// Data center or location.
    pub data_center: String,
    /// The provider's status.
    pub status: String,
    /// Cancelled at the provider.
    pub cancelled: bool,
    /// `amd64` or `arm64`.
    pub architecture: String,
    /// The Robot vSwitch it is attached to.
    pub vswitch_id: Option<String>,
    /// The cluster it belongs to.
    pub cluster_id: Option<String>,
    /// In rescue and reachable over SSH at the last probe.
    pub accessible: bool,
    /// SMBIOS UUID, recorded in rescue.
    pub uuid: Option<String>,
    /// The disk Talos was written to.
    pub bootstrap_disk: Option<String>,
    /// That disk's WWID.
    pub bootstrap_disk_wwid: Option<String>,
    /// The Image Factory schematic chosen for it.
    pub schematic_id: Option<String>,
    /// When it last asked for its machine config.
    pub last_request_for_configuration_at: Option<OffsetDateTime>,
    /// When it was last served a machine config.
    pub last_configured_at: Option<OffsetDateTime>,
    /// When its labels and taints were last applied.
    pub label_and_taint_job_completed_at: Option<OffsetDateTime>,
}

impl From<Server> for ServerView {
    fn from(server: Server) -> ServerView {
        let inventory = server.inventory;
        ServerView {
            id: server_api_id(inventory.provider, &inventory.provider_id),
            provider: inventory.provider.as_str().to_owned(),
            provider_account_id: server.provider_account_id.to_string(),
            name: inventory.name,
            ipv4: inventory.ipv4,
            ipv6: inventory.ipv6,
            product: inventory.product,
            data_center: inventory.data_center,
            status: inventory.status,
            cancelled: inventory.cancelled,
            architecture: inventory.architecture.as_str().to_owned(),
            vswitch_id: inventory.vswitch_id.map(|id| id.to_string()),
            cluster_id: server.cluster_id.map(|id| id.to_string()),
            accessible: server.accessible,
            uuid: server.uuid,
            bootstrap_disk: server.bootstrap_disk,
            bootstrap_disk_wwid: server.bootstrap_disk_wwid,
            schematic_id: server.schematic_id.map(|id| id.to_string()),
            last_request_for_configuration_at: server.last_request_for_configuration_at,
            last_configured_at: server.last_configured_at,
            label_and_taint_job_completed_at: server.label_and_taint_job_completed_at,
        }
    }
}

/// Loads a server by its API id.
pub(crate) async fn load_server(state: &AppState, api_id: &str) -> ApiResult<Server> {
    let (provider, provider_id) = parse_server_api_id(api_id)?;
    Ok(state
        .store
        .get_server_by_provider_id(provider, provider_id)
        .await?)
}

pub(crate) struct ServersApi;

#[OpenApi(tag = "Tag::Servers")]
impl ServersApi {
    /// List the servers, by cluster then name.
    #[oai(path = "/servers", method = "get", operation_id = "list_servers")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        /// Only the servers of this cluster.
        cluster_id: Query<Option<String>>,
        /// Only `hetzner_robot` or `hetzner_cloud` servers.
        provider: Query<Option<String>>,
        /// Only servers in rescue and reachable (true) or not (false).
        accessible: Query<Option<bool>>,
    ) -> ApiResult<Json<Vec<ServerView>>> {
        let servers = state.store.list_servers().await?;
        let views = servers
            .into_iter()
            .filter(|server| {
                cluster_id.as_ref().is_none_or(|cluster| {
                    server.cluster_id.map(|id| id.to_string()).as_ref() == Some(cluster)
                }) && provider
                    .as_deref()
                    .is_none_or(|provider| server.inventory.provider.as_str() == provider)
                    && accessible.is_none_or(|accessible| server.accessible == accessible)
            })
            .map(Into::into)
            .collect();
        Ok(Json(views))
    }

    /// The machine config the server is served when it boots (YAML, with secrets: treat it
    /// as one).
    #[oai(
        path = "/servers/:id/machine-config.yaml",
        method = "get",
        operation_id = "get_server_machine_config"
    )]
    async fn machine_config(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<YamlFile> {
        let server = load_server(&state, &id).await?;
        let node_config = render_node_config(&state.store, server.id)
            .await
            .map_err(|error| match error {
                NodeConfigError::NotConfigured { .. } => ApiError::not_found(error.to_string()),
                NodeConfigError::NoCluster { .. } => ApiError::conflict(error.to_string()),
                NodeConfigError::Store(error) => error.into(),
                NodeConfigError::Generate { .. } => ApiError::invalid(
                    "machine config",
                    vec![IssueBody {
                        path: "config".into(),
                        message: error_chain(&error).to_string(),
                    }],
                ),
                other => ApiError::internal(&other),
            })?;
        tracing::info!(server = %server.inventory.name, by = ?auth.principal(), "machine config downloaded");
        Ok(YamlFile::Ok(PlainText(node_config.yaml.into_inner())))
    }

    /// Get a server.
    #[oai(path = "/servers/:id", method = "get", operation_id = "get_server")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ServerView>> {
        Ok(Json(load_server(&state, &id).await?.into()))
    }
}
