//! `/machine-configs`: a server bound to a config, with its hostname, private IP and disks.

use time::OffsetDateTime;

/// A machine config.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct MachineConfigView {
    /// Its id.
    pub id: String,
    /// The server it configures (`robot-…` or `cloud-…`).
    pub server_id: String,
    /// The config template.
    pub config_id: String,
    /// The node's hostname.
    pub hostname: String,
    /// The node's private IP.
    pub private_ip: String,
    /// The disk Talos installs to.
    pub install_disk: String,
    /// The disk for the EPHEMERAL volume, `wwid:…` or `uuid:…`.
    pub ephemeral_disk_identifier: Option<String>,
    /// Control plane or worker, as recorded when the machine config was created (or last set
    /// explicitly): what `/config` serves and lifecycle operations treat the node as. Renaming
    /// the server does not change it.
    pub machine_type: MachineTypeName,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A machine config to create (or replace: a server has at most one).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CreateMachineConfig {
    /// The server, `robot-…` or `cloud-…`.
    pub server_id: String,
    /// The config template.
    pub config_id: String,
    /// `[a-z-]+-N`; default: the server's name.
    pub hostname: Option<String>,
    /// `10.0.x.N`, N matching the hostname's number; default from the name: control-plane →
    /// 10.0.0.N, database → 10.0.2.N, standby → 10.0.7.N, others 10.0.1.N.
    pub private_ip: Option<String>,
    /// The disk Talos installs to; default: the disk it was bootstrapped on, else /dev/sda.
    pub install_disk: Option<String>,
    /// A disk for the EPHEMERAL volume: `wwid:<wwid>` or `uuid:<md array uuid>`.
    pub ephemeral_disk_identifier: Option<String>,
    /// Control plane or worker: the explicit way to set or change a node's machine type.
    /// Default: a new machine config takes the type of the server's name now (containing
    /// `control-plane`: a control plane), a replaced one keeps the type it has. A control
    /// plane is served the cluster's CA keys.
    pub machine_type: Option<MachineTypeName>,
    /// The node was configured outside talos-manager: mark it configured now.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub already_configured: bool,
}

/// A machine type, as `machine.type` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum MachineTypeName {
    /// A control plane: runs etcd and the Kubernetes control plane, gets the cluster's CA keys.
    Controlplane,
    /// A worker.
    Worker,
}
