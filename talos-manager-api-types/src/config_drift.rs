//! `/servers/{id}/config-drift` and `/clusters/{id}/config-drift`: whether nodes run the
//! config talos-manager would serve them now.

/// Whether one node runs the config it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum DriftStatusName {
    /// It runs the config talos-manager would serve it now (up to what Talos changes itself).
    InSync,
    /// It runs another config: see `diff`.
    Drifted,
    /// Its config could not be read: see `error`.
    Unreachable,
}

/// The drift of one configured server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ServerDriftView {
    /// The server's id (`robot-<number>`).
    pub server_id: String,
    /// The server's name.
    pub server: String,
    /// `controlplane` or `worker`.
    pub machine_type: crate::MachineTypeName,
    /// Its Talos API (`203.0.113.7:50000`).
    pub address: String,
    /// In sync, drifted or unreachable.
    pub status: DriftStatusName,
    /// When drifted: a unified diff from the config it runs to the config it would be served
    /// (`---` running, `+++` rendered), with every key, token, secret and certificate masked
    /// (`<redacted>`, `<redacted, changed>`).
    pub diff: Option<String>,
    /// When unreachable: why.
    pub error: Option<String>,
}

/// The drift of a server, or of every configured server of a cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigDriftView {
    /// The cluster's id.
    pub cluster_id: String,
    /// Whether every server is in sync.
    pub in_sync: bool,
    /// One per configured server, control planes first, then by name.
    pub servers: Vec<ServerDriftView>,
}

/// How a new config takes effect on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum ConfigApplyModeName {
    /// Without a reboot when Talos can, with one otherwise.
    #[default]
    Auto,
    /// Without a reboot, or the node refuses it.
    NoReboot,
    /// At the node's next reboot.
    Staged,
    /// Staged, then the node is rebooted into it.
    Reboot,
}

/// `POST /clusters/{id}/config-apply`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigApplyBody {
    /// How the config takes effect; default `auto`.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub mode: ConfigApplyModeName,
    /// Only plan: answer what each node would get (diff and Talos's dry-run summary), change
    /// nothing.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub dry_run: bool,
    /// Only these servers of the cluster (`robot-<number>`); default every configured server.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub server_ids: Vec<String>,
}

/// One node of a config apply plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PlannedApplyView {
    /// The server's id.
    pub server_id: String,
    /// The server's name.
    pub server: String,
    /// `controlplane` or `worker`.
    pub machine_type: crate::MachineTypeName,
    /// Whether it runs another config than the one it would get; null when unknown.
    pub drifted: Option<bool>,
    /// The diff from its running config (secrets masked), when drifted.
    pub diff: Option<String>,
    /// Talos's dry-run summary: how it would apply the config (with or without a reboot).
    pub talos_summary: Option<String>,
    /// Why the node could not be asked.
    pub error: Option<String>,
}

/// What a config apply would do, in the order it goes (control planes first).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ConfigApplyPlanView {
    /// The cluster's id.
    pub cluster_id: String,
    /// The mode.
    pub mode: ConfigApplyModeName,
    /// One per server.
    pub nodes: Vec<PlannedApplyView>,
}
