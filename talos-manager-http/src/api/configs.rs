//! `/configs`: config templates (installer image, Kubernetes version, KubeSpan, patches). A
//! config is checked on save by generating and validating it for stand-in servers.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{ConfigBody, ConfigView, IssueBody};
use talos_manager_core::ids::ConfigId;
use talos_manager_core::node_config::{
    check_config_template_warnings, config_template_warnings, validation_secrets,
};
use talos_manager_core::store::{Config, ConfigFields};

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// `ConfigFields` as core takes it.
fn config_fields(body: ConfigBody) -> ConfigFields {
    ConfigFields {
        name: body.name,
        install_image: body.install_image,
        kubernetes_version: body.kubernetes_version,
        kubespan: body.kubespan,
        patch: body.patch,
        patch_control_plane: body.patch_control_plane,
        patch_worker: body.patch_worker,
    }
}

/// The wire form of `Config`, with the stored config's own warnings.
fn config_view(config: Config) -> ConfigView {
    let fields = config.fields;
    let warnings = config_template_warnings(&fields)
        .into_iter()
        .map(|issue| IssueBody {
            path: issue.path,
            message: issue.message,
        })
        .collect();
    ConfigView {
        id: config.id.to_string(),
        fields: ConfigBody {
            name: fields.name,
            install_image: fields.install_image,
            kubernetes_version: fields.kubernetes_version,
            kubespan: fields.kubespan,
            patch: fields.patch,
            patch_control_plane: fields.patch_control_plane,
            patch_worker: fields.patch_worker,
        },
        created_at: config.created_at,
        updated_at: config.updated_at,
        warnings,
    }
}

/// The wire form of `Config` as a save answers it: Talos's warnings of the save after the
/// stored config's own.
fn saved_config_view(config: Config, talos_warnings: Vec<IssueBody>) -> ConfigView {
    let mut view = config_view(config);
    view.warnings.extend(talos_warnings);
    view
}

/// Checks a config off the async runtime (the first check makes a stand-in secrets bundle):
/// the fields and Talos's warnings about them, or 422 with every error.
async fn check(fields: ConfigFields) -> ApiResult<(ConfigFields, Vec<IssueBody>)> {
    let checked = tokio::task::spawn_blocking(move || {
        let secrets = validation_secrets()?;
        Ok::<_, talos_manager_core::talos::SecretsError>(
            check_config_template_warnings(&fields, secrets).map(|warnings| {
                let warnings = warnings
                    .into_iter()
                    .map(|issue| IssueBody {
                        path: issue.path,
                        message: issue.message,
                    })
                    .collect();
                (fields, warnings)
            }),
        )
    })
    .await
    .map_err(|error| ApiError::internal(&error))?
    .map_err(|error| ApiError::internal(&error))?;
    Ok(checked?)
}

pub(crate) struct ConfigsApi;

#[OpenApi(tag = "Tag::Configs")]
impl ConfigsApi {
    /// List the config templates.
    #[oai(path = "/configs", method = "get", operation_id = "list_configs")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<ConfigView>>> {
        let configs = state.store.list_configs().await?;
        Ok(Json(configs.into_iter().map(config_view).collect()))
    }

    /// Create a config template. It is generated and validated for a stand-in control plane
    /// and worker first; a config that does not work answers 422 with every issue, one with
    /// only warnings is saved and answered with its `warnings`.
    #[oai(path = "/configs", method = "post", operation_id = "create_config")]
    async fn create(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        body: Json<ConfigBody>,
    ) -> ApiResult<Created<ConfigView>> {
        let (fields, talos_warnings) = check(config_fields(body.0)).await?;
        let config = state.store.create_config(&fields).await?;
        Ok(Created::Created(Json(saved_config_view(
            config,
            talos_warnings,
        ))))
    }

    /// Get a config template.
    #[oai(path = "/configs/:id", method = "get", operation_id = "get_config")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ConfigView>> {
        let config = state
            .store
            .get_config(parse_id("config", &id, ConfigId)?)
            .await?;
        Ok(Json(config_view(config)))
    }

    /// Replace a config template (checked as on create). Servers using it get the new config
    /// at their next boot.
    #[oai(path = "/configs/:id", method = "put", operation_id = "update_config")]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<ConfigBody>,
    ) -> ApiResult<Json<ConfigView>> {
        let id = parse_id("config", &id, ConfigId)?;
        state.store.get_config(id).await?;
        let (fields, talos_warnings) = check(config_fields(body.0)).await?;
        Ok(Json(saved_config_view(
            state.store.update_config(id, &fields).await?,
            talos_warnings,
        )))
    }

    /// Delete a config template; refused (409 `in_use`) while a server uses it.
    #[oai(
        path = "/configs/:id",
        method = "delete",
        operation_id = "delete_config"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        state
            .store
            .delete_config(parse_id("config", &id, ConfigId)?)
            .await?;
        Ok(Deleted::Deleted)
    }
}
