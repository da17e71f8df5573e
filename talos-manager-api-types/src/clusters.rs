//! `/clusters`: Talos clusters and their secrets bundle.

use time::OffsetDateTime;

/// A cluster.
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ClusterView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The Kubernetes API endpoint, `https://host:port`.
    pub endpoint: String,
    /// The Robot vSwitch whose VLAN fills `${vlan}`.
    pub vswitch_id: Option<String>,
    /// The secrets bundle (`talosctl gen secrets` YAML): only with `?include_secrets=true`.
    pub secrets: Option<String>,
    /// The Kubernetes version the cluster's API server last reported (`1.33.1`); new nodes'
    /// configs use it instead of the config template's. Null until the API server answered.
    pub running_kubernetes_version: Option<String>,
    /// When its etcd was bootstrapped (or it was imported with its secrets bundle); null
    /// while it never was. A cluster is bootstrapped at most once.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub bootstrapped_at: Option<OffsetDateTime>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A cluster to create or replace.
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ClusterBody {
    /// Its name: lowercase letters, digits and dashes.
    pub name: String,
    /// The Kubernetes API endpoint, `https://host:port`.
    pub endpoint: String,
    /// The Robot vSwitch whose VLAN fills `${vlan}`.
    pub vswitch_id: Option<String>,
    /// A secrets bundle to import (`talosctl gen secrets` YAML), to manage an existing
    /// cluster. On create, a new bundle is made when absent; on replace, absent keeps it.
    pub secrets: Option<String>,
}

/// Prints `secrets` as `<redacted>`: a secrets bundle holds the cluster's CA keys.
impl std::fmt::Debug for ClusterView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterView")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("vswitch_id", &self.vswitch_id)
            .field("secrets", &crate::redacted(&self.secrets))
            .finish_non_exhaustive()
    }
}

/// Prints `secrets` as `<redacted>`.
impl std::fmt::Debug for ClusterBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBody")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("vswitch_id", &self.vswitch_id)
            .field("secrets", &crate::redacted(&self.secrets))
            .finish_non_exhaustive()
    }
}
