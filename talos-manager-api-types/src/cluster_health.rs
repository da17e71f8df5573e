//! `/clusters/{id}/health`: a cluster's health at one moment.

use time::OffsetDateTime;

/// The overall verdict of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Enum))]
#[cfg_attr(feature = "openapi", oai(rename_all = "snake_case"))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatusName {
    /// Everything answered and is well.
    Healthy,
    /// The cluster runs, but something is wrong: see `reasons`.
    Degraded,
    /// Neither the Kubernetes API nor any node's Talos API answered.
    Unreachable,
    /// etcd was never bootstrapped.
    NotBootstrapped,
}

/// A cluster's health.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ClusterHealthView {
    /// The cluster's id.
    pub cluster_id: String,
    /// The cluster's name.
    pub cluster: String,
    /// When it was checked.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// The verdict.
    pub status: HealthStatusName,
    /// Why it is not healthy, one readable line each; empty when healthy.
    pub reasons: Vec<String>,
    /// etcd's members (as a control plane lists them) and their health.
    pub etcd_members: Vec<EtcdMemberHealthView>,
    /// The etcd leader's name; null when no control plane reported one.
    pub etcd_leader: Option<String>,
    /// How many etcd members are healthy.
    pub etcd_members_healthy: u32,
    /// Whether the Kubernetes API answered.
    pub kubernetes_reachable: bool,
    /// The Kubernetes version the API server runs (`v1.33.1`).
    pub kubernetes_version: Option<String>,
    /// Why the Kubernetes API did not answer.
    pub kubernetes_error: Option<String>,
    /// Every configured node, then every Kubernetes node no configured server carries.
    pub nodes: Vec<NodeHealthView>,
    /// How many Kubernetes nodes are Ready.
    pub nodes_ready: u32,
    /// How many Kubernetes nodes there are.
    pub nodes_total: u32,
    /// Configured servers of the cluster that are not Kubernetes nodes or not etcd members.
    pub missing: Vec<MissingServerView>,
    /// The cluster's CAs and the client certificates talos-manager issues, earliest expiry
    /// first.
    pub certificates: Vec<CertificateExpiryView>,
    /// The earliest certificate expiry.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub earliest_expiry: Option<OffsetDateTime>,
}

/// One etcd member.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct EtcdMemberHealthView {
    /// Its member id (hex).
    pub id: String,
    /// Its name (its node's hostname).
    pub name: String,
    /// Whether it is a learner (not yet voting).
    pub learner: bool,
    /// Whether it leads.
    pub leader: bool,
    /// Whether its node's etcd answered as this member without errors.
    pub healthy: bool,
    /// Why it is not healthy.
    pub problem: Option<String>,
}

/// One node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct NodeHealthView {
    /// Its Kubernetes node name.
    pub name: String,
    /// The configured server that carries it (its API id), if any.
    pub server_id: Option<String>,
    /// That server's name.
    pub server: Option<String>,
    /// `controlplane` or `worker`, for a configured server.
    pub machine_type: Option<crate::MachineTypeName>,
    /// Whether its Talos API answered (null: not a configured server, not asked).
    pub talos_reachable: Option<bool>,
    /// The Talos version it runs (`v1.11.3`).
    pub talos_version: Option<String>,
    /// Why its Talos API did not answer.
    pub talos_error: Option<String>,
    /// For a control plane: its etcd member id (hex), when its etcd answered.
    pub etcd_member_id: Option<String>,
    /// For a control plane: the etcd errors it reports, or why its etcd did not answer.
    pub etcd_errors: Vec<String>,
    /// Whether its Kubernetes node is Ready (null: no such node, or the API did not answer).
    pub ready: Option<bool>,
    /// Its kubelet's version (`v1.33.1`).
    pub kubelet_version: Option<String>,
}

/// A configured server that is not part of its cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct MissingServerView {
    /// The server's API id.
    pub server_id: String,
    /// Its name.
    pub server: String,
    /// `kubernetes` (not a node) or `etcd` (a control plane that is not a member).
    pub missing_from: String,
}

/// When a certificate expires.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CertificateExpiryView {
    /// `os_ca`, `kubernetes_ca`, `etcd_ca`, `aggregator_ca`, `talosconfig_client` or
    /// `kubeconfig_client` (the last two: a talosconfig or kubeconfig downloaded now).
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its `notAfter`.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}
