//! Resets, rolling upgrades and reboots of running nodes.

/// What a reset wipes and where the server ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum ResetProfileName {
    /// Wipe STATE and EPHEMERAL (from Talos 1.14 also the ETCD, CRI, KUBELET and LOG volumes)
    /// and reboot (the original's reset): Talos stays installed and comes back in maintenance
    /// mode, asking for a config again.
    Maintenance,
    /// Wipe the whole system disk and power off: nothing bootable is left.
    Wipe,
    /// Wipe the whole system disk, then boot the provider's rescue system with our key, ready
    /// for a new bootstrap (needs `SSH_PRIVATE_KEY`).
    WipeToRescue,
}

/// How to reset a server's node.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ResetBody {
    /// What to wipe [default: `maintenance`].
    pub profile: Option<ResetProfileName>,
    /// Reset even when it removes etcd's last member or leaves etcd without a healthy majority:
    /// that destroys the cluster's state [default: false].
    pub force: Option<bool>,
}

/// Which servers a rolling upgrade or reboot covers: a whole cluster or a selection.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RollingSelection {
    /// Every configured server of this cluster.
    pub cluster_id: Option<String>,
    /// These servers (`robot-<n>`, `cloud-<id>`), all of one cluster.
    pub server_ids: Option<Vec<String>>,
    /// Let the drain evict pods no controller manages (`kubectl drain --force`): nothing
    /// recreates them [default: false, such a pod fails the drain naming it].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Let the drain evict pods with `emptyDir` volumes, whose data is lost
    /// (`kubectl drain --delete-emptydir-data`) [default: false, such a pod fails the drain
    /// naming it].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_emptydir_data: Option<bool>,
}

/// A rolling upgrade.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct UpgradeBody {
    /// The servers.
    #[cfg_attr(feature = "openapi", oai(flatten))]
    #[serde(flatten)]
    pub selection: RollingSelection,
    /// The Talos version to install, `vX.Y.Z`; each node gets the Image Factory installer of its
    /// server's schematic.
    pub talos_version: String,
}
