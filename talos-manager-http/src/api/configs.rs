//! `/configs`: config templates (installer image, Kubernetes version, KubeSpan, patches). A
//! config is checked on save by generating and validating it for stand-in servers.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use talos_manager_core::ids::ConfigId;
use talos_manager_core::node_config::{
    check_config_template_warnings, config_template_warnings, validation_secrets,
};
use talos_manager_core::store::{Config, ConfigFields};
use time::OffsetDateTime;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult, IssueBody};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// A config template.
#[derive(Debug, Object)]
pub struct ConfigView {
    /// Its id.
    pub id: String,
    /// Its fields.
    #[oai(flatten)]
    pub fields: ConfigBody,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// What to know that did not stop it from being saved, each with its field: an installer
    /// of a Talos minor newer than every version talos-manager knows (its configs are
    /// generated for the newest one); and, answered by create and update, Talos's warnings
    /// about the configs this template generates (deprecated fields such as
    /// `machine.install.extensions`, with their paths, as `talosctl validate` prints them apart
    /// from errors: a template with warnings is saved, errors answer 422 `invalid`).
    pub warnings: Vec<IssueBody>,
}

/// What a config template is made of.
#[derive(Debug, Clone, Object)]
pub struct ConfigBody {
    /// Its name, unique.
    pub name: String,
    /// The Talos installer image; its tag picks the config format (`…/installer:v1.13.9` →
    /// Talos 1.13). Default: the installer of the service's default Talos version.
    #[oai(default = "default_install_image")]
    pub install_image: String,
    /// The Kubernetes version for new clusters, e.g. `1.36.3`. Default: the service's default
    /// Kubernetes version.
    #[oai(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    /// Whether KubeSpan (WireGuard mesh between nodes) is enabled.
    #[oai(default = "default_kubespan")]
    pub kubespan: bool,
    /// A patch for every node (strategic merge YAML or JSON patch). May use `${hostname}`,
    /// `${private_ip}`, `${public_ip}`, `${vlan}` and `${bootstrap_disk_wwid}`.
    #[oai(default)]
    pub patch: String,
    /// A patch for control-plane nodes only, applied after `patch`.
    #[oai(default)]
    pub patch_control_plane: String,
    /// A patch for worker nodes only, applied after `patch`.
    #[oai(default)]
    pub patch_worker: String,
}

fn default_install_image() -> String {
    talos_manager_core::store::default_install_image()
}

fn default_kubernetes_version() -> String {
    talos_manager_core::store::DEFAULT_KUBERNETES_VERSION.to_owned()
}

fn default_kubespan() -> bool {
    true
}

impl From<ConfigBody> for ConfigFields {
    fn from(body: ConfigBody) -> ConfigFields {
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
}

impl From<Config> for ConfigView {
    fn from(config: Config) -> ConfigView {
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
}

impl ConfigView {
    /// Adds Talos's warnings of a save after the stored config's own.
    fn with_warnings(mut self, warnings: Vec<IssueBody>) -> ConfigView {
        self.warnings.extend(warnings);
        self
    }
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
        Ok(Json(configs.into_iter().map(Into::into).collect()))
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
        let (fields, talos_warnings) = check(body.0.into()).await?;
        let config = state.store.create_config(&fields).await?;
        Ok(Created::Created(Json(
            ConfigView::from(config).with_warnings(talos_warnings),
        )))
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
        Ok(Json(config.into()))
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
        let (fields, talos_warnings) = check(body.0.into()).await?;
        Ok(Json(
            ConfigView::from(state.store.update_config(id, &fields).await?)
                .with_warnings(talos_warnings),
        ))
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
