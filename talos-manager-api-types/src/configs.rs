//! `/configs`: config templates (installer image, Kubernetes version, patches).

use time::OffsetDateTime;

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
}

/// What a config template is made of.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigBody {
    /// Its name, unique.
    pub name: String,
    /// The Talos installer image; its tag picks the config format (`…/installer:v1.10.4` →
    /// Talos 1.10). Default: the installer of the service's default Talos version.
    #[cfg_attr(feature = "openapi", oai(default = "default_install_image"))]
    #[serde(default = "default_install_image")]
    pub install_image: String,
    /// The Kubernetes version for new clusters, e.g. `1.30.1`. Default: the service's default
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

fn default_install_image() -> String {
    format!(
        "ghcr.io/siderolabs/installer:{}",
        crate::DEFAULT_TALOS_VERSION
    )
}

fn default_kubernetes_version() -> String {
    crate::DEFAULT_KUBERNETES_VERSION.to_owned()
}

fn default_kubespan() -> bool {
    true
}
