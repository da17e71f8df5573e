//! `/settings`: the defaults for bootstrapping (Talos version, Image Factory schematic).

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::Json;
use talos_manager_api_types::{SettingsView, UpdateSettings};
use talos_manager_core::bootstrap::check_talos_version;
use talos_manager_core::ids::SchematicId;
use talos_manager_core::store::Settings;

use super::Tag;
use super::auth::AdminAuth;
use super::error::ApiResult;
use super::ids::parse_id;
use crate::AppState;

/// The wire form of `Settings`.
fn settings_view(settings: Settings) -> SettingsView {
    SettingsView {
        talos_version: settings.talos_version,
        default_schematic_id: settings.default_schematic_id.map(|id| id.to_string()),
        updated_at: settings.updated_at,
    }
}

pub(crate) struct SettingsApi;

#[OpenApi(tag = "Tag::Settings")]
impl SettingsApi {
    /// Get the bootstrap defaults.
    #[oai(path = "/settings", method = "get", operation_id = "get_settings")]
    async fn get(&self, state: Data<&AppState>, _auth: AdminAuth) -> ApiResult<Json<SettingsView>> {
        Ok(Json(settings_view(state.store.settings().await?)))
    }

    /// Save the bootstrap defaults.
    #[oai(path = "/settings", method = "put", operation_id = "update_settings")]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        body: Json<UpdateSettings>,
    ) -> ApiResult<Json<SettingsView>> {
        check_talos_version("settings", &body.talos_version)?;
        let schematic = match &body.default_schematic_id {
            Some(id) => {
                let id = parse_id("schematic", id, SchematicId)?;
                Some(state.store.get_schematic(id).await?.id)
            }
            None => None,
        };
        let settings = state
            .store
            .update_settings(&body.talos_version, schematic)
            .await?;
        Ok(Json(settings_view(settings)))
    }
}
