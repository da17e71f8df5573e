//! `/settings`: the defaults for bootstrapping (Talos version, Image Factory schematic).

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::Json;
use talos_manager_api_types::{SettingsView, UpdateSettings};
use talos_manager_core::Issue;
use talos_manager_core::ValidationError;
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

/// Whether `version` is `vX.Y.Z`, optionally with a pre-release suffix (`v1.11.0-beta.1`).
pub(crate) fn is_talos_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let core = rest.split_once('-').map_or(rest, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
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
        if !is_talos_version(&body.talos_version) {
            return Err(ValidationError {
                what: "settings",
                issues: vec![Issue::new(
                    "talos_version",
                    format!(
                        "{:?} is not a Talos version like v1.10.4",
                        body.talos_version
                    ),
                )],
            }
            .into());
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn talos_versions() {
        for good in ["v1.10.4", "v1.11.0-beta.1", "v2.0.10"] {
            assert!(super::is_talos_version(good), "{good}");
        }
        for bad in ["1.10.4", "v1.10", "v1.x.4", "latest", "v1.10.4.1"] {
            assert!(!super::is_talos_version(bad), "{bad}");
        }
    }
}
