//! The Image Factory as the service uses it: the client, the public host name that goes into
//! `talos.config=`, and the Talos versions cached for an hour; and [`register_schematic`], a
//! schematic's body with `talos.config=` forced in, registered with the factory, then stored.

use std::time::{Duration, Instant};

use super::{
    ImageFactory, ImageFactoryError, SchematicBodyError, TalosRelease, force_talos_config,
};
use crate::ids::SchematicId;
use crate::store::{Schematic, SchematicFields, Store, StoreError};

/// How long the factory's version list is kept.
pub const VERSIONS_TTL: Duration = Duration::from_secs(3600);

/// The Image Factory client with this service's settings.
#[derive(Debug)]
pub struct FactoryService {
    client: ImageFactory,
    host: Option<String>,
    versions: tokio::sync::Mutex<Option<(Instant, Vec<TalosRelease>)>>,
}

impl FactoryService {
    /// The factory `client`; `host` is the service's public host name (`HOST`), if set.
    pub fn new(client: ImageFactory, host: Option<String>) -> FactoryService {
        FactoryService {
            client,
            host,
            versions: tokio::sync::Mutex::new(None),
        }
    }

    /// The client.
    pub fn client(&self) -> &ImageFactory {
        &self.client
    }

    /// The service's public host name (`HOST`), if set.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// `https://<HOST>/config?uuid=${uuid}`, what nodes booted from a schematic fetch their
    /// config from; `None` without `HOST`.
    pub fn config_url(&self) -> Option<String> {
        self.host
            .as_ref()
            .map(|host| format!("https://{host}/config?uuid=${{uuid}}"))
    }

    /// The factory's Talos versions (stable newest first), fetched at most once an hour.
    pub async fn versions(&self) -> Result<Vec<TalosRelease>, ImageFactoryError> {
        let mut cache = self.versions.lock().await;
        if let Some((fetched, versions)) = cache.as_ref()
            && fetched.elapsed() < VERSIONS_TTL
        {
            return Ok(versions.clone());
        }
        let versions = self.client.versions().await?;
        *cache = Some((Instant::now(), versions.clone()));
        Ok(versions)
    }
}

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
