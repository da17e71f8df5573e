//! `/schematics`: Image Factory schematics and the Talos versions it builds.

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
