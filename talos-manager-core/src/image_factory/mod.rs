//! The Talos Image Factory: schematics (`POST /schematics`), the Talos versions it builds
//! (`GET /versions`), and the URLs of its disk images and installer images.
//!
//! The pure part ([`force_talos_config`], [`image_url`], [`installer_image`], [`parse_versions`])
//! needs no network; [`ImageFactory`] is the HTTP client; [`FactoryService`] the client with
//! the service's host name and a versions cache (storing a registered schematic is the
//! operation [`crate::schematics::register_schematic`]). Wire shapes follow the research note `factory-talosapi-k8s.md`, part A.

// Schematic bodies and Talos versions are pure rules a client of the API applies too: they
// live in `talos-manager-api-types`.
pub use talos_manager_api_types::{
    InvalidTalosRelease, SchematicBodyError, TALOS_CONFIG_ARG_PREFIX, TalosRelease,
    force_talos_config, order_for_display, parse_versions, talos_config_arg,
};

use crate::provider::{Architecture, ProviderError, RetryPolicy, http_client};

mod service;

pub use service::{FactoryService, VERSIONS_TTL};

/// The public Image Factory, the default of `TALOS_IMAGE_FACTORY_URL`.
pub const DEFAULT_FACTORY_URL: &str = "https://factory.talos.dev";

/// The id of the empty schematic (no extensions, no kernel arguments): Talos 1.14's own default
/// installer is `factory.talos.dev/metal-installer/<this>:<tag>`.
pub const EMPTY_SCHEMATIC_ID: &str =
    "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

/// The stock installer repository of Talos up to 1.13 (no longer published from 1.14 on).
pub const LEGACY_INSTALLER_REPOSITORY: &str = "ghcr.io/siderolabs/installer";

/// How much of an error answer's body is kept in an error message.
const MAX_ERROR_BODY: usize = 500;

/// Something went wrong talking to the Image Factory.
#[derive(Debug, thiserror::Error)]
pub enum ImageFactoryError {
    /// The configured factory URL is not an absolute http(s) URL.
    #[error("image factory url {url:?} is not an absolute http or https url")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("could not build the http client for the image factory")]
    HttpClient {
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The factory could not be reached, or the connection broke.
    #[error("image factory at {url} could not be reached")]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The factory answered with an error status, e.g. 400 for a schematic it refuses.
    #[error("image factory answered {status} to {url}: {message}")]
    Status {
        /// The URL that was requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body (the factory answers errors in plain text).
        message: String,
    },
    /// The factory answered 2xx with a body that is not what it should send.
    #[error("image factory answered {url} with an unexpected body")]
    UnexpectedAnswer {
        /// The URL that was requested.
        url: String,
        /// Why the body could not be read.
        #[source]
        source: serde_json::Error,
    },
    /// The schematic id the factory returned is not 64 hex characters.
    #[error("image factory returned an invalid schematic id {id:?}")]
    InvalidSchematicId {
        /// The id as returned.
        id: String,
    },
}

/// A client of one Image Factory.
#[derive(Debug, Clone)]
pub struct ImageFactory {
    base_url: String,
    client: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct CreatedSchematic {
    id: String,
}

impl ImageFactory {
    /// A client of the factory at `base_url` (e.g. [`DEFAULT_FACTORY_URL`]; a trailing `/` is
    /// ignored), with the default timeouts of [`RetryPolicy`].
    pub fn new(base_url: &str) -> Result<ImageFactory, ImageFactoryError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let valid = reqwest::Url::parse(&base_url)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        if !valid {
            return Err(ImageFactoryError::InvalidUrl { url: base_url });
        }
        let client = http_client(&RetryPolicy::default())
            .map_err(|source| ImageFactoryError::HttpClient { source })?;
        Ok(ImageFactory { base_url, client })
    }

    /// The factory's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Registers a schematic (YAML or JSON text) and returns its id. Creation is idempotent:
    /// the same content always gives the same id.
    pub async fn create_schematic(&self, body: &str) -> Result<String, ImageFactoryError> {
        let url = format!("{}/schematics", self.base_url);
        let request = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(body.to_owned());
        let bytes = self.send(&url, request).await?;
        let created: CreatedSchematic = serde_json::from_slice(&bytes)
            .map_err(|source| ImageFactoryError::UnexpectedAnswer { url, source })?;
        if created.id.len() != 64 || !created.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageFactoryError::InvalidSchematicId { id: created.id });
        }
        Ok(created.id)
    }

    /// The Talos versions the factory builds images for: stable newest first, then
    /// pre-releases newest first.
    pub async fn versions(&self) -> Result<Vec<TalosRelease>, ImageFactoryError> {
        let url = format!("{}/versions", self.base_url);
        let bytes = self.send(&url, self.client.get(&url)).await?;
        parse_versions(&bytes).map_err(|source| ImageFactoryError::UnexpectedAnswer { url, source })
    }

    /// The disk image of a schematic: `<factory>/image/<id>/<version>/metal-<arch>.raw.zst`.
    pub fn image_url(&self, schematic_id: &str, version: &str, arch: Architecture) -> String {
        image_url(&self.base_url, schematic_id, version, arch)
    }

    /// The installer image of a server on this factory's registry; see [`installer_image`].
    pub fn installer_image(&self, schematic_id: Option<&str>, version: &str) -> String {
        installer_image(&self.base_url, schematic_id, version)
    }

    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ImageFactoryError> {
        let unreachable = |source| ImageFactoryError::Unreachable {
            url: url.to_owned(),
            source,
        };
        crate::dial_guard::enforce_url("Image Factory", url);
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let mut message = text.trim().to_owned();
            if message.len() > MAX_ERROR_BODY {
                let mut end = MAX_ERROR_BODY;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                message.push('…');
            }
            return Err(ImageFactoryError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(bytes.to_vec())
    }
}

/// The disk image of a schematic: `<factory>/image/<id>/<version>/metal-<arch>.raw.zst`.
pub fn image_url(
    factory_url: &str,
    schematic_id: &str,
    version: &str,
    arch: Architecture,
) -> String {
    format!(
        "{}/image/{schematic_id}/{version}/metal-{arch}.raw.zst",
        factory_url.trim_end_matches('/')
    )
}

/// The installer image of a server for Talos `version` (`v1.14.1`): the one function every
/// upgrade (rolling jobs, the runbooks' manual commands) takes its image from.
///
/// - With a schematic: `<factory host>/metal-installer/<id>:<version>` (the factory is also an
///   OCI registry), on every version. Its UKI carries the schematic's kernel arguments, among
///   them the `talos.config=` talos-manager forces into every schematic, so a node upgraded with
///   it still fetches its config after a reset (docs/lifecycle.md).
/// - Without one, Talos's own default installer for that version: from 1.14 on the factory's
///   `metal-installer/` of the empty schematic ([`EMPTY_SCHEMATIC_ID`]), since
///   `ghcr.io/siderolabs/installer` is no longer published; before 1.14 that stock image
///   ([`LEGACY_INSTALLER_REPOSITORY`]). A version that does not parse is taken as a new one.
///
/// ```
/// use talos_manager_core::image_factory::installer_image;
///
/// let id = "4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b";
/// assert_eq!(
///     installer_image("https://factory.talos.dev", Some(id), "v1.13.9"),
///     format!("factory.talos.dev/metal-installer/{id}:v1.13.9")
/// );
/// assert_eq!(
///     installer_image("https://factory.talos.dev", None, "v1.13.9"),
///     "ghcr.io/siderolabs/installer:v1.13.9"
/// );
/// assert_eq!(
///     installer_image("http://127.0.0.1:8080", None, "v1.14.1"),
///     "127.0.0.1:8080/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1"
/// );
/// ```
pub fn installer_image(factory_url: &str, schematic_id: Option<&str>, version: &str) -> String {
    let factory_only = version
        .parse::<TalosRelease>()
        .map_or(true, |version| version.installer_only_from_factory());
    let schematic_id = match schematic_id {
        Some(id) => id,
        None if factory_only => EMPTY_SCHEMATIC_ID,
        None => return format!("{LEGACY_INSTALLER_REPOSITORY}:{version}"),
    };
    let host = factory_url
        .split_once("://")
        .map_or(factory_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    format!("{host}/metal-installer/{schematic_id}:{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

    #[test]
    fn image_and_installer_references() {
        assert_eq!(
            image_url(
                "https://factory.talos.dev/",
                ID,
                "v1.10.4",
                Architecture::Amd64
            ),
            format!("https://factory.talos.dev/image/{ID}/v1.10.4/metal-amd64.raw.zst")
        );
        assert_eq!(
            installer_image("https://factory.talos.dev", Some(ID), "v1.10.4"),
            format!("factory.talos.dev/metal-installer/{ID}:v1.10.4")
        );
        assert_eq!(
            installer_image("http://127.0.0.1:8080/", Some(ID), "v1.11.0"),
            format!("127.0.0.1:8080/metal-installer/{ID}:v1.11.0")
        );
    }

    #[test]
    fn without_a_schematic_each_version_gets_talos_own_default_installer() {
        let factory = "https://factory.example.com/";
        // ghcr's installer up to 1.13 (pre-releases included) ...
        for version in ["v1.7.6", "v1.12.0", "v1.13.9", "v1.13.0-rc.1"] {
            assert_eq!(
                installer_image(factory, None, version),
                format!("ghcr.io/siderolabs/installer:{version}")
            );
        }
        // ... the factory's empty schematic from 1.14 on, on the configured factory.
        for version in ["v1.14.0-alpha.1", "v1.14.1", "v1.15.0", "v2.0.0"] {
            assert_eq!(
                installer_image(factory, None, version),
                format!("factory.example.com/metal-installer/{EMPTY_SCHEMATIC_ID}:{version}")
            );
        }
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(ImageFactory::new("factory.talos.dev").is_err());
        assert!(ImageFactory::new("ftp://factory.talos.dev").is_err());
        let factory = ImageFactory::new("https://factory.talos.dev/").unwrap();
        assert_eq!(factory.base_url(), "https://factory.talos.dev");
        assert_eq!(
            factory.image_url(ID, "v1.9.0", Architecture::Arm64),
            format!("https://factory.talos.dev/image/{ID}/v1.9.0/metal-arm64.raw.zst")
        );
    }
}
