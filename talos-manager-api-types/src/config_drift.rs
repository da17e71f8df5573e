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
