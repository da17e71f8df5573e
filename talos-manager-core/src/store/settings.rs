//! Settings: the one row of defaults for bootstrapping (Talos version, default schematic).

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool};
use crate::ids::SchematicId;
use crate::talos::TalosVersion;

/// The Talos version new configs (`…/installer:<this>`) and bootstraps default to: the release
/// of the newest version contract ([`TalosVersion::LATEST`]`.release()`), so that it moves with
/// the engine. With [`DEFAULT_KUBERNETES_VERSION`] the one place every default version comes
/// from (API, dashboard, Terraform).
pub const DEFAULT_TALOS_VERSION: &str = TalosVersion::LATEST.release();

/// The Kubernetes version of new configs when nothing else was chosen: the default Kubernetes
/// of the newest contract ([`TalosVersion::LATEST`]`.default_kubernetes_version()`, talosctl's
/// own default for that release; see [`DEFAULT_TALOS_VERSION`]).
pub const DEFAULT_KUBERNETES_VERSION: &str = TalosVersion::LATEST.default_kubernetes_version();

/// The installer image of new configs: the one talosctl of [`DEFAULT_TALOS_VERSION`] writes,
/// [`crate::image_factory::installer_image`] without a schematic on the public Image Factory
/// (`ghcr.io/siderolabs/installer:<release>` up to Talos 1.13, which 1.14 no longer publishes;
/// the factory's `metal-installer/<empty schematic>:<release>` from 1.14 on).
pub fn default_install_image() -> String {
    crate::image_factory::installer_image(
        crate::image_factory::DEFAULT_FACTORY_URL,
        None,
        DEFAULT_TALOS_VERSION,
    )
}

// The API documents the defaults of a config template (`talos_manager_api_types::ConfigBody`),
// a crate that cannot see the version contracts: it must write the ones derived here. The
// whole installer image is compared by a test below.
const _: () = {
    use talos_manager_api_types::ConfigBody;
    assert!(
        same_text(
            ConfigBody::DEFAULT_KUBERNETES_VERSION,
            DEFAULT_KUBERNETES_VERSION
        ),
        "ConfigBody::DEFAULT_KUBERNETES_VERSION (talos-manager-api-types) must be \
         store::DEFAULT_KUBERNETES_VERSION, the newest contract's"
    );
    assert!(
        tagged(ConfigBody::DEFAULT_INSTALL_IMAGE, DEFAULT_TALOS_VERSION),
        "ConfigBody::DEFAULT_INSTALL_IMAGE (talos-manager-api-types) must be the installer of \
         store::DEFAULT_TALOS_VERSION, the newest contract's release"
    );
};

/// `a == b`, at compile time.
const fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `image` ends with `:<tag>`, at compile time.
const fn tagged(image: &str, tag: &str) -> bool {
    let (image, tag) = (image.as_bytes(), tag.as_bytes());
    if image.len() <= tag.len() || image[image.len() - tag.len() - 1] != b':' {
        return false;
    }
    let start = image.len() - tag.len();
    let mut i = 0;
    while i < tag.len() {
        if image[start + i] != tag[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The bootstrap defaults.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Settings {
    /// The default Talos version, `vX.Y.Z`.
    pub talos_version: String,
    /// The schematic used when a server has none of its own.
    pub default_schematic_id: Option<SchematicId>,
    /// When the settings last changed; `None` while they are the built-in defaults.
    pub updated_at: Option<OffsetDateTime>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            talos_version: DEFAULT_TALOS_VERSION.to_owned(),
            default_schematic_id: None,
            updated_at: None,
        }
    }
}

impl Store {
    /// The settings, or the built-in defaults when none were saved.
    pub async fn settings(&self) -> Result<Settings, StoreError> {
        let sql =
            "SELECT talos_version, default_schematic_id, updated_at FROM settings WHERE id = 1";
        let settings: Option<Settings> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_optional(pool).await)
                .map_err(StoreError::query("get settings"))?;
        Ok(settings.unwrap_or_default())
    }

    /// Saves the settings.
    pub async fn update_settings(
        &self,
        talos_version: &str,
        default_schematic_id: Option<SchematicId>,
    ) -> Result<Settings, StoreError> {
        let sql = "INSERT INTO settings (id, talos_version, default_schematic_id, updated_at) \
                   VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET talos_version = $1, \
                   default_schematic_id = $2, updated_at = $3 \
                   RETURNING talos_version, default_schematic_id, updated_at";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(talos_version)
            .bind(default_schematic_id)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("settings", "update settings", e))
    }
}

#[cfg(test)]
mod tests {
    use talos_manager_api_types::ConfigBody;

    use super::*;

    #[test]
    fn the_api_documents_the_derived_defaults() {
        assert_eq!(ConfigBody::DEFAULT_INSTALL_IMAGE, default_install_image());
        assert_eq!(
            ConfigBody::DEFAULT_KUBERNETES_VERSION,
            DEFAULT_KUBERNETES_VERSION
        );
        // A body that names neither gets them.
        let body: ConfigBody = serde_json::from_str(r#"{"name": "default"}"#).unwrap();
        assert_eq!(body.install_image, default_install_image());
        assert_eq!(body.kubernetes_version, DEFAULT_KUBERNETES_VERSION);
    }
}
