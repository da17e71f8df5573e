//! `/schematics` and `/talos-versions`: Image Factory schematics, registered with the factory
//! on every save, the Talos versions the factory builds, and (`/talos-versions/supported`) the
//! ones talos-manager generates configs for, from the engine's version contracts.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{
    SchematicBody, SchematicView, SupportedTalosVersion, SupportedTalosVersionsView,
    TalosVersionsView,
};
use talos_manager_core::ids::SchematicId;
use talos_manager_core::schematics::register_schematic;
use talos_manager_core::store::Schematic;
use talos_manager_core::talos::TalosVersion;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// The wire form of `Schematic`.
fn schematic_view(schematic: Schematic) -> SchematicView {
    SchematicView {
        id: schematic.id.to_string(),
        name: schematic.fields.name,
        body: schematic.fields.body,
        factory_id: schematic.fields.factory_id,
        created_at: schematic.created_at,
        updated_at: schematic.updated_at,
    }
}

/// The Talos versions talos-manager generates configs for, from the engine's version
/// contracts, and the defaults of new configs.
pub(crate) fn supported_talos_versions() -> SupportedTalosVersionsView {
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

fn schematic_id(text: &str) -> Result<SchematicId, ApiError> {
    parse_id("schematic", text, SchematicId)
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
        Ok(Json(schematics.into_iter().map(schematic_view).collect()))
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
        let body = body.0;
        let schematic = register_schematic(
            &state.store,
            &state.image_factory,
            None,
            body.name,
            &body.body,
        )
        .await?;
        Ok(Created::Created(Json(schematic_view(schematic))))
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
        Ok(Json(schematic_view(schematic)))
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
        let body = body.0;
        let schematic = register_schematic(
            &state.store,
            &state.image_factory,
            Some(id),
            body.name,
            &body.body,
        )
        .await?;
        Ok(Json(schematic_view(schematic)))
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
        Ok(Json(supported_talos_versions()))
    }
}
