//! `/schematics` and `/talos-versions`: Image Factory schematics, the Talos versions it builds
//! and the ones talos-manager generates configs for.

use time::OffsetDateTime;

/// An Image Factory schematic.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
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
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A schematic to create or replace.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SchematicBody {
    /// Its name, unique.
    pub name: String,
    /// The schematic, YAML or JSON (e.g. `customization: {systemExtensions: {officialExtensions:
    /// [siderolabs/amd-ucode]}}`). `customization.extraKernelArgs` gets the `talos.config=`
    /// argument of this service, replacing any other.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub body: String,
}

/// The Talos versions the Image Factory builds images for.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TalosVersionsView {
    /// Stable versions newest first, then pre-releases newest first (`v1.10.4`, …).
    pub versions: Vec<String>,
}

/// A Talos version talos-manager generates configs for: one per version contract.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SupportedTalosVersionsView {
    /// Newest first; the first one is the default of new configs and bootstraps.
    pub versions: Vec<SupportedTalosVersion>,
    /// The installer image of a new config that names none.
    pub default_install_image: String,
    /// The Kubernetes version of a new config that names none.
    pub default_kubernetes_version: String,
}
