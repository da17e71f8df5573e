//! Image Factory schematics as talos-manager keeps them: a body with this service's
//! `talos.config=` forced in, registered with the factory, then stored
//! ([`register_schematic`]).

use crate::ids::SchematicId;
use crate::image_factory::{
    FactoryService, ImageFactoryError, SchematicBodyError, force_talos_config,
};
use crate::store::{Schematic, SchematicFields, Store, StoreError};

/// Why a schematic was not registered; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RegisterSchematicError {
    /// `HOST` is unset, so there is no `talos.config=` URL to force into the body.
    #[error(
        "HOST is not set: the service needs its public host name to put \
         talos.config=https://<HOST>/config into the schematic"
    )]
    NoHost,
    /// The body is not a schematic.
    #[error(transparent)]
    Body(#[from] SchematicBodyError),
    /// The factory refused the body or could not be reached.
    #[error(transparent)]
    Factory(#[from] ImageFactoryError),
    /// The schematic to replace does not exist, or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers a schematic named `name`: `body` with this service's `talos.config=` URL forced
/// in ([`force_talos_config`]) is registered with the factory, then stored with the factory's
/// id, as a new schematic (`id` `None`) or replacing schematic `id`. Nothing is stored when
/// the factory refuses the body or cannot be reached.
pub async fn register_schematic(
    store: &Store,
    factory: &FactoryService,
    id: Option<SchematicId>,
    name: String,
    body: &str,
) -> Result<Schematic, RegisterSchematicError> {
    if let Some(id) = id {
        store.get_schematic(id).await?;
    }
    let url = factory.config_url().ok_or(RegisterSchematicError::NoHost)?;
    let normalised = force_talos_config(body, &url)?;
    let factory_id = factory.client().create_schematic(&normalised).await?;
    let fields = SchematicFields {
        name,
        body: normalised,
        factory_id: Some(factory_id),
    };
    Ok(match id {
        Some(id) => store.update_schematic(id, &fields).await?,
        None => store.create_schematic(&fields).await?,
    })
}
