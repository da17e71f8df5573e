//! `/servers`: Hetzner servers, their bootstrap and its dry run.

use crate::MaybeUndefined;
use time::OffsetDateTime;

/// A server.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ServerView {
    /// `robot-<server number>` or `cloud-<id>`.
    pub id: String,
    /// `hetzner_robot` or `hetzner_cloud`.
    pub provider: String,
    /// The provider account it was synced from.
    pub provider_account_id: String,
    /// Its name at the provider.
    pub name: String,
    /// Public IPv4 address.
    pub ipv4: Option<String>,
    /// Public IPv6 network.
    pub ipv6: Option<String>,
    /// Product or server type.
    pub product: String,
    /// Data center or location.
    pub data_center: String,
    /// The provider's status.
    pub status: String,
    /// Cancelled at the provider.
    pub cancelled: bool,
    /// `amd64` or `arm64`.
    pub architecture: String,
    /// The Robot vSwitch it is attached to.
    pub vswitch_id: Option<String>,
    /// The cluster it belongs to.
    pub cluster_id: Option<String>,
    /// In rescue and reachable over SSH at the last probe.
    pub accessible: bool,
    /// SMBIOS UUID, recorded in rescue.
    pub uuid: Option<String>,
    /// The disk Talos was written to.
    pub bootstrap_disk: Option<String>,
    /// That disk's WWID.
    pub bootstrap_disk_wwid: Option<String>,
    /// The Image Factory schematic chosen for it.
    pub schematic_id: Option<String>,
    /// When it last asked for its machine config.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_request_for_configuration_at: Option<OffsetDateTime>,
    /// When it was last served a machine config.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_configured_at: Option<OffsetDateTime>,
    /// When its labels and taints were last applied.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub label_and_taint_job_completed_at: Option<OffsetDateTime>,
    /// When rescue was last activated through the provider.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub rescue_activated_at: Option<OffsetDateTime>,
    /// When its provider account first stopped listing it; absent while it is listed. A
    /// missing server keeps its machine config until sync has missed it long enough
    /// (`SYNC_MISSING_SYNCS`, `SYNC_MISSING_GRACE`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub missing_since: Option<OffsetDateTime>,
    /// How many syncs in a row did not find it at its provider (0 while listed).
    pub missing_syncs: u32,
    /// Where it is on its way to the cluster: `unknown`, `entering rescue`, `in rescue`,
    /// `bootstrap queued`, `bootstrapping`, `installing 42 %`, `booting Talos`,
    /// `waiting for config`, `config served`, `in cluster`, `failed: <reason>`,
    /// `bootstrap cancelled`.
    pub state: String,
    /// Its disks as the last probe in rescue saw them (empty before one), to choose where
    /// Talos goes.
    pub disks: Vec<DiskView>,
    /// The name its node reported through the Talos API (Talos's Nodename: its Kubernetes
    /// node and etcd member name), read before a reset, upgrade or reboot acts on it; absent
    /// until then and after a reset.
    pub node_name: Option<String>,
    /// Set when `node_name` differs from the hostname its machine config sets: lifecycle
    /// operations and the label job act on `node_name`.
    pub node_name_mismatch: Option<String>,
}

/// A disk of a server, as `lsblk` in rescue listed it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct DiskView {
    /// `/dev/<name>`.
    pub path: String,
    /// Its WWID in Talos's form (`naa.…`, `eui.…`), when it has one: the stable way to name it.
    pub wwid: Option<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// The model, for people.
    pub model: Option<String>,
    /// How many partitions it holds: writing Talos erases them.
    pub partitions: u32,
    /// The md arrays it is a member of (`md0`); a RAID member is never a bootstrap target.
    pub raid_arrays: Vec<String>,
}

/// Changes to a server; an absent field stays as it is.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct UpdateServer {
    /// A new name, pushed to the provider before it is stored.
    pub name: Option<String>,
    /// The cluster it belongs to, `null` for none (local to talos-manager).
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub cluster_id: MaybeUndefined<String>,
    /// The Robot vSwitch it is attached to, `null` for none: Robot removes the server from its
    /// vSwitch and adds it to this one. Cloud servers have no vSwitch.
    #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
    pub vswitch_id: MaybeUndefined<String>,
}

/// What a bootstrap may choose; everything is optional.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BootstrapBody {
    /// The Talos version, `vX.Y.Z` [default: the settings' version].
    pub talos_version: Option<String>,
    /// The schematic's id [default: the server's, else the settings' default].
    pub schematic: Option<String>,
    /// The target disk (WWID or device) [default: the first disk outside a RAID].
    pub disk: Option<String>,
    /// Bootstrap even a live node (served its machine config or labelled in its cluster since
    /// its last bootstrap): its disk is erased and it leaves its cluster without draining.
    /// A control plane is still refused when etcd would lose its last member or its majority.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub force: bool,
}

/// The dry run of a bootstrap.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BootstrapPlanView {
    /// The plan as text: each step and its command (what `talos-manager bootstrap-plan` prints).
    pub text: String,
    /// The disk Talos would be written to.
    pub disk: String,
    /// That disk's WWID, when it has one.
    pub disk_wwid: Option<String>,
    /// The image downloaded onto the disk.
    pub image_url: String,
    /// The Image Factory schematic id (absent for a custom image).
    pub schematic: Option<String>,
    /// The Talos version (absent for a custom image).
    pub talos_version: Option<String>,
    /// The URL the node will fetch its config from.
    pub talos_config_url: String,
    /// The step names, in order.
    pub steps: Vec<String>,
}
