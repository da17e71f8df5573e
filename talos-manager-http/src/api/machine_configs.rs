//! `/machine-configs`: the binding of a server to a config, with its hostname, private IP and
//! disks. A server with a machine config is served its Talos config when it boots.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{CreateMachineConfig, MachineConfigView, MachineTypeName};
use talos_manager_core::ids::{ConfigId, MachineConfigId, ServerRef};
use talos_manager_core::node_config::{MachineConfigChoices, assign_machine_config};
use talos_manager_core::store::{Server, ServerMachineConfig};
use talos_manager_core::talos::MachineType;

use super::error::ApiResult;
use super::ids::parse_id;
use super::servers::load_server;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// The API view of `machine_config`, which configures `server`.
pub(crate) fn machine_config_view(
    machine_config: ServerMachineConfig,
    server: &Server,
) -> MachineConfigView {
    MachineConfigView {
        id: machine_config.id.to_string(),
        server_id: ServerRef::new(server.inventory.provider, &server.inventory.provider_id)
            .to_string(),
        config_id: machine_config.fields.config_id.to_string(),
        hostname: machine_config.fields.hostname,
        private_ip: machine_config.fields.private_ip,
        install_disk: machine_config.fields.install_disk,
        ephemeral_disk_identifier: machine_config.fields.ephemeral_disk_identifier,
        machine_type: machine_type_name(machine_config.machine_type),
        created_at: machine_config.created_at,
        updated_at: machine_config.updated_at,
    }
}

/// The wire form of `MachineType`.
fn machine_type_name(machine_type: MachineType) -> MachineTypeName {
    match machine_type {
        MachineType::ControlPlane => MachineTypeName::Controlplane,
        MachineType::Worker => MachineTypeName::Worker,
    }
}

/// `MachineType` as core takes it.
fn machine_type(name: MachineTypeName) -> MachineType {
    match name {
        MachineTypeName::Controlplane => MachineType::ControlPlane,
        MachineTypeName::Worker => MachineType::Worker,
    }
}

pub(crate) struct MachineConfigsApi;

#[OpenApi(tag = "Tag::MachineConfigs")]
impl MachineConfigsApi {
    /// List the machine configs, by hostname.
    #[oai(
        path = "/machine-configs",
        method = "get",
        operation_id = "list_machine_configs"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: super::auth::AdminAuth,
    ) -> ApiResult<Json<Vec<MachineConfigView>>> {
        let servers = state.store.list_servers().await?;
        let machine_configs = state.store.list_machine_configs().await?;
        let views = machine_configs
            .into_iter()
            .filter_map(|machine_config| {
                let server = servers.iter().find(|s| s.id == machine_config.server_id)?;
                Some(machine_config_view(machine_config, server))
            })
            .collect();
        Ok(Json(views))
    }

    /// Configure a server: bind it to a config with its hostname, private IP and disks.
    /// Replaces the server's previous machine config.
    ///
    /// When the server's node asked for its config within the last six hours and was not served
    /// one, a `push_config` job hands it the config through the Talos maintenance API at once,
    /// instead of leaving it to back off (up to hours) before it asks again.
    #[oai(
        path = "/machine-configs",
        method = "post",
        operation_id = "create_machine_config"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: super::auth::AdminAuth,
        body: Json<CreateMachineConfig>,
    ) -> ApiResult<Created<MachineConfigView>> {
        let body = body.0;
        let server = load_server(&state, &body.server_id).await?;
        let choices = MachineConfigChoices {
            config_id: parse_id("config", &body.config_id, ConfigId)?,
            hostname: body.hostname,
            private_ip: body.private_ip,
            install_disk: body.install_disk,
            ephemeral_disk_identifier: body.ephemeral_disk_identifier,
            machine_type: body.machine_type.map(machine_type),
            already_configured: body.already_configured,
        };
        let machine_config = assign_machine_config(&state.store, &server, choices).await?;
        if let Some(machine_type) = body.machine_type {
            tracing::info!(server = %server.inventory.name, machine_type = ?machine_type, by = ?auth.principal(), "machine type set");
        }
        if !body.already_configured
            && talos_manager_core::jobs::queue_push_if_waiting(&state.store, &state.jobs, &server)
                .await?
        {
            tracing::info!(server = %server.inventory.name, "its node waits for a config: push queued");
        }
        Ok(Created::Created(Json(machine_config_view(
            machine_config,
            &server,
        ))))
    }

    /// Get a machine config.
    #[oai(
        path = "/machine-configs/:id",
        method = "get",
        operation_id = "get_machine_config"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: super::auth::AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<MachineConfigView>> {
        let id = parse_id("machine config", &id, MachineConfigId)?;
        let machine_config = state.store.get_machine_config(id).await?;
        let server = state.store.get_server(machine_config.server_id).await?;
        Ok(Json(machine_config_view(machine_config, &server)))
    }

    /// Delete a machine config: the server gets no config at its next boot.
    #[oai(
        path = "/machine-configs/:id",
        method = "delete",
        operation_id = "delete_machine_config"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: super::auth::AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        let id = parse_id("machine config", &id, MachineConfigId)?;
        state.store.delete_machine_config(id).await?;
        Ok(Deleted::Deleted)
    }
}
