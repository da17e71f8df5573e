//! The Image Factory as the service uses it: the client, the public host name that goes into
//! `talos.config=`, and the Talos versions cached for an hour.

use std::time::{Duration, Instant};

use super::{ImageFactory, ImageFactoryError, TalosRelease};

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
