//! `/configs`: config templates (installer image, Kubernetes version, patches).

use time::OffsetDateTime;

use crate::IssueBody;

/// A config template.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigView {
    /// Its id.
    pub id: String,
    /// Its fields.
    #[cfg_attr(feature = "openapi", oai(flatten))]
    #[serde(flatten)]
    pub fields: ConfigBody,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// What to know that did not stop it from being saved, each with its field: an installer
    /// of a Talos minor newer than every version talos-manager knows (its configs are
    /// generated for the newest one); and, answered by create and update, Talos's warnings
    /// about the configs this template generates (deprecated fields such as
    /// `machine.install.extensions`, with their paths, as `talosctl validate` prints them apart
    /// from errors: a template with warnings is saved, errors answer 422 `invalid`).
    // `default`: an older service answers none.
    #[serde(default)]
    pub warnings: Vec<IssueBody>,
}

/// What a config template is made of.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigBody {
    /// Its name, unique.
    pub name: String,
    /// The Talos installer image; its tag picks the config format (`…/installer:v1.13.9` →
    /// Talos 1.13). Default: the installer of the service's default Talos version.
    #[cfg_attr(feature = "openapi", oai(default = "default_install_image"))]
    #[serde(default = "default_install_image")]
    pub install_image: String,
    /// The Kubernetes version for new clusters, e.g. `1.36.3`. Default: the service's default
    /// Kubernetes version.
    #[cfg_attr(feature = "openapi", oai(default = "default_kubernetes_version"))]
    #[serde(default = "default_kubernetes_version")]
    pub kubernetes_version: String,
    /// Whether KubeSpan (WireGuard mesh between nodes) is enabled.
    #[cfg_attr(feature = "openapi", oai(default = "default_kubespan"))]
    #[serde(default = "default_kubespan")]
    pub kubespan: bool,
    /// A patch for every node (strategic merge YAML or JSON patch). May use `${hostname}`,
    /// `${private_ip}`, `${public_ip}`, `${vlan}` and `${bootstrap_disk_wwid}`.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub patch: String,
    /// A patch for control-plane nodes only, applied after `patch`.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub patch_control_plane: String,
    /// A patch for worker nodes only, applied after `patch`.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub patch_worker: String,
}

impl ConfigBody {
    /// The installer image of a config template that names none, as the API documents it:
    /// the service's default, `talos_manager_core::store::default_install_image()` (Talos's own
    /// installer of the newest version contract's release, the Image Factory's
    /// `metal-installer/<empty schematic>` from Talos 1.14 on).
    ///
    /// The version contracts live in `talos-manager-core`, which this crate cannot depend on,
    /// so the value is written here; core checks that it is its own (at compile time for the
    /// release, in a test for the whole image) and the OpenAPI snapshot shows it.
    pub const DEFAULT_INSTALL_IMAGE: &str = "factory.talos.dev/metal-installer/\
         376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1";

    /// The Kubernetes version of a config template that names none, as the API documents it:
    /// the service's default, `talos_manager_core::store::DEFAULT_KUBERNETES_VERSION` (that of
    /// the newest version contract), checked by core at compile time as
    /// [`ConfigBody::DEFAULT_INSTALL_IMAGE`] is.
    pub const DEFAULT_KUBERNETES_VERSION: &str = "1.37.0";
}

fn default_install_image() -> String {
    ConfigBody::DEFAULT_INSTALL_IMAGE.to_owned()
}

fn default_kubernetes_version() -> String {
    ConfigBody::DEFAULT_KUBERNETES_VERSION.to_owned()
}

fn default_kubespan() -> bool {
    true
}
