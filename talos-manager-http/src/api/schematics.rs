//! `/schematics` and `/talos-versions`: Image Factory schematics, registered with the factory
//! on every save, the Talos versions the factory builds, and (`/talos-versions/supported`) the
//! ones talos-manager generates configs for, from the engine's version contracts.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use talos_manager_core::ValidationError;
use talos_manager_core::ids::SchematicId;
use talos_manager_core::image_factory::force_talos_config;
use talos_manager_core::store::{Schematic, SchematicFields};
use talos_manager_core::talos::TalosVersion;
use time::OffsetDateTime;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// An Image Factory schematic.
#[derive(Debug, Object)]
pub struct SchematicView {
    /// Its id here.
    pub id: String,
    /// Its name, unique.
    pub name: String,
    /// The schematic YAML as registered with the Image Factory, with the
    /// `talos.config=https://<HOST>/config?uuid=${uuid}` kernel argument forced in.
    pub body: String,
    /// The id the Image Factory gave it (64 hex characters).
    pub factory_id: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl From<Schematic> for SchematicView {
    fn from(schematic: Schematic) -> SchematicView {
        SchematicView {
            id: schematic.id.to_string(),
            name: schematic.fields.name,
            body: schematic.fields.body,
            factory_id: schematic.fields.factory_id,
            created_at: schematic.created_at,
            updated_at: schematic.updated_at,
        }
    }
}

/// A schematic to create or replace.
#[derive(Debug, Object)]
pub struct SchematicBody {
    /// Its name, unique.
    pub name: String,
    /// The schematic, YAML or JSON (e.g. `customization: {systemExtensions: {officialExtensions:
    /// [siderolabs/amd-ucode]}}`). `customization.extraKernelArgs` gets the `talos.config=`
    /// argument of this service, replacing any other.
    #[oai(default)]
    pub body: String,
}

/// The Talos versions the Image Factory builds images for.
#[derive(Debug, Object)]
pub struct TalosVersionsView {
    /// Stable versions newest first, then pre-releases newest first (`v1.10.4`, …).
    pub versions: Vec<String>,
}

/// A Talos version talos-manager generates configs for: one per version contract.
#[derive(Debug, Object)]
pub struct SupportedTalosVersion {
    /// The newest release of its minor that talos-manager knows (`vX.Y.Z`), the tag of its
    /// installer.
    pub release: String,
    /// Its default Kubernetes version (talosctl's for that release).
    pub kubernetes_version: String,
    /// The installer image talosctl of that release writes when given none (ghcr's installer
    /// up to 1.13, the Image Factory's `metal-installer/<empty schematic>` from 1.14 on).
    pub install_image: String,
}

/// The Talos versions talos-manager generates configs for, and the defaults of new configs.
#[derive(Debug, Object)]
pub struct SupportedTalosVersionsView {
    /// Newest first; the first one is the default of new configs and bootstraps.
    pub versions: Vec<SupportedTalosVersion>,
    /// The installer image of a new config that names none.
    pub default_install_image: String,
    /// The Kubernetes version of a new config that names none.
    pub default_kubernetes_version: String,
}

impl SupportedTalosVersionsView {
    /// From the engine's version contracts.
    pub(crate) fn current() -> SupportedTalosVersionsView {
        SupportedTalosVersionsView {
            versions: TalosVersion::ALL
                .iter()
                .rev()
                .map(|version| SupportedTalosVersion {
                    release: version.release().to_owned(),
                    kubernetes_version: version.default_kubernetes_version().to_owned(),
                    install_image: talos_manager_core::image_factory::installer_image(
                        talos_manager_core::image_factory::DEFAULT_FACTORY_URL,
                        None,
                        version.release(),
                    ),
                })
                .collect(),
            default_install_image: talos_manager_core::store::default_install_image(),
            default_kubernetes_version: talos_manager_core::store::DEFAULT_KUBERNETES_VERSION
                .to_owned(),
        }
    }
}

fn schematic_id(text: &str) -> Result<SchematicId, ApiError> {
    parse_id("schematic", text, SchematicId)
}

/// The body with this service's config URL forced in, registered with the factory.
async fn register(state: &AppState, body: SchematicBody) -> ApiResult<SchematicFields> {
    let factory = &state.image_factory;
    let Some(url) = factory.config_url() else {
        return Err(ApiError::invalid(
            "schematic",
            vec![super::error::IssueBody {
                path: "body".into(),
                message: "HOST is not set: the service needs its public host name to put \
                          talos.config=https://<HOST>/config into the schematic"
                    .into(),
            }],
        ));
    };
    let normalised = force_talos_config(&body.body, &url).map_err(|error| ValidationError {
        what: "schematic",
        issues: vec![error.issue()],
    })?;
    let factory_id = factory.client().create_schematic(&normalised).await?;
    Ok(SchematicFields {
        name: body.name,
        body: normalised,
        factory_id: Some(factory_id),
    })
}

pub(crate) struct SchematicsApi;

#[OpenApi(tag = "Tag::Schematics")]
impl SchematicsApi {
    /// List the schematics.
    #[oai(path = "/schematics", method = "get", operation_id = "list_schematics")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<SchematicView>>> {
        let schematics = state.store.list_schematics().await?;
        Ok(Json(schematics.into_iter().map(Into::into).collect()))
    }

    /// Create a schematic: the `talos.config=` argument is forced in, the body registered with
    /// the Image Factory, and its id stored. Nothing is stored when the factory refuses it or
    /// cannot be reached (502).
    #[oai(
        path = "/schematics",
        method = "post",
        operation_id = "create_schematic"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        body: Json<SchematicBody>,
    ) -> ApiResult<Created<SchematicView>> {
        let fields = register(&state, body.0).await?;
        let schematic = state.store.create_schematic(&fields).await?;
        Ok(Created::Created(Json(schematic.into())))
    }

    /// Get a schematic.
    #[oai(
        path = "/schematics/:id",
        method = "get",
        operation_id = "get_schematic"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<SchematicView>> {
        let schematic = state.store.get_schematic(schematic_id(&id)?).await?;
        Ok(Json(schematic.into()))
    }

    /// Replace a schematic, registering the new body with the Image Factory.
    #[oai(
        path = "/schematics/:id",
        method = "put",
        operation_id = "update_schematic"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<SchematicBody>,
    ) -> ApiResult<Json<SchematicView>> {
        let id = schematic_id(&id)?;
        state.store.get_schematic(id).await?;
        let fields = register(&state, body.0).await?;
        let schematic = state.store.update_schematic(id, &fields).await?;
        Ok(Json(schematic.into()))
    }

    /// Delete a schematic (servers and settings that chose it fall back to the default).
    #[oai(
        path = "/schematics/:id",
        method = "delete",
        operation_id = "delete_schematic"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        state.store.delete_schematic(schematic_id(&id)?).await?;
        Ok(Deleted::Deleted)
    }

    /// The Talos versions the Image Factory builds, stable newest first, then pre-releases
    /// (cached for an hour).
    #[oai(
        path = "/talos-versions",
        method = "get",
        operation_id = "list_talos_versions"
    )]
    async fn talos_versions(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<TalosVersionsView>> {
        let versions = state.image_factory.versions().await?;
        Ok(Json(TalosVersionsView {
            versions: versions.iter().map(ToString::to_string).collect(),
        }))
    }

    /// List the Talos versions talos-manager generates configs for (one release per version
    /// contract, newest first, each with its default Kubernetes version) and the defaults of
    /// new configs. Needs no Image Factory.
    #[oai(
        path = "/talos-versions/supported",
        method = "get",
        operation_id = "list_supported_talos_versions"
    )]
    async fn supported_talos_versions(
        &self,
        _auth: AdminAuth,
    ) -> ApiResult<Json<SupportedTalosVersionsView>> {
        Ok(Json(SupportedTalosVersionsView::current()))
    }
}
