//! `/settings`: the bootstrap defaults.

use time::OffsetDateTime;

/// The bootstrap defaults.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SettingsView {
    /// The Talos version installed when a bootstrap names none, `vX.Y.Z`.
    pub talos_version: String,
    /// The Image Factory schematic used when a server has none of its own.
    pub default_schematic_id: Option<String>,
    /// When they were last saved; absent while they are the built-in defaults.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// New bootstrap defaults.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct UpdateSettings {
    /// The Talos version, `vX.Y.Z` (e.g. `v1.10.4`).
    pub talos_version: String,
    /// The default schematic's id, or absent for none.
    pub default_schematic_id: Option<String>,
}
