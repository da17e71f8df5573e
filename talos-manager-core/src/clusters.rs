//! Clusters beyond storage: what makes a valid cluster, its secrets bundle (made or imported),
//! and the client configs (talosconfig, admin kubeconfig) generated from it, without
//! contacting the cluster.

use std::time::Duration;

use crate::Secret;
use crate::ids::ClusterId;
use crate::kubernetes::ClientTimeouts;
use crate::node_labels::learn_running_kubernetes_version;
use crate::random::SystemRandom;
use crate::store::{Cluster, ClusterFields, Store, StoreError};
use crate::talos::{
    ClientConfigError, MachineType, SecretsBundle, SecretsError, admin_kubeconfig, endpoint_host,
    talosconfig,
};
use crate::{Issue, ValidationError};

/// Why a client config could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClusterAccessError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored secrets bundle is unusable.
    #[error("the secrets bundle of cluster {cluster} is unusable")]
    Secrets {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// Issuing the client certificate failed.
    #[error("failed to issue a client certificate for cluster {cluster}")]
    Certificate {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: ClientConfigError,
    },
}

impl ClusterFields {
    /// Checks the name (`[a-z0-9-]+`) and the endpoint (`https://host:port`, as talosctl
    /// accepts it). Returns every issue.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut issues = Vec::new();
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            issues.push(Issue::new(
                "name",
                "must contain only lowercase letters, digits and dashes",
            ));
        }
        match endpoint_host(&self.endpoint) {
            Err(error) => issues.push(Issue::new(
                "endpoint",
                error.to_string().replace('\n', "; "),
            )),
            Ok(_) if !has_port(&self.endpoint) => issues.push(Issue::new(
                "endpoint",
                "must name a port, e.g. https://cluster.example.com:6443",
            )),
            Ok(_) => {}
        }
        ValidationError::check("cluster", issues)
    }
}

fn has_port(endpoint: &str) -> bool {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':')
    })
}

/// The secrets bundle a new cluster gets: `given` (an imported `talosctl gen secrets` bundle)
/// after checking it, else a newly made one. Making one takes a moment (an RSA-4096 key):
/// call this off the async runtime.
pub fn cluster_secrets(given: Option<&str>) -> Result<Secret<String>, ClusterSecretsError> {
    match given {
        Some(text) => {
            let bundle = SecretsBundle::parse(text).map_err(|error| match error {
                SecretsError::Invalid { issues } => ClusterSecretsError::Invalid(ValidationError {
                    what: "secrets bundle",
                    issues: issues
                        .into_iter()
                        .map(|issue| Issue::new(format!("secrets.{}", issue.path), issue.message))
                        .collect(),
                }),
                other => ClusterSecretsError::Invalid(ValidationError {
                    what: "secrets bundle",
                    issues: vec![Issue::new("secrets", other.to_string())],
                }),
            })?;
            Ok(Secret::new(bundle.to_yaml()))
        }
        None => {
            let bundle =
                SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)
                    .map_err(ClusterSecretsError::Generate)?;
            Ok(Secret::new(bundle.to_yaml()))
        }
    }
}

/// How long creating an imported cluster waits for its Kubernetes API's version: 3 s to
/// connect, 5 s for the answer.
pub const LEARN_VERSION_TIMEOUTS: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_secs(3),
    request: Duration::from_secs(5),
};

/// Creates a cluster with its secrets bundle. An imported bundle is a running cluster's: the
/// cluster is recorded as bootstrapped (it is never bootstrapped again) and its API server is
/// asked for the Kubernetes version it runs (within `timeouts`, normally
/// [`LEARN_VERSION_TIMEOUTS`]; no answer leaves it unknown and fails nothing), so that the
/// first node that joins it is served that version rather than the config template's.
pub async fn create_cluster(
    store: &Store,
    fields: &ClusterFields,
    secrets: &Secret<String>,
    imported: bool,
    timeouts: ClientTimeouts,
) -> Result<Cluster, StoreError> {
    let cluster = store
        .create_cluster_bootstrapped(fields, secrets, imported)
        .await?;
    // Under test (the dial guard active), an endpoint outside loopback is not asked.
    if !imported || crate::dial_guard::check_url("Kubernetes API", &cluster.endpoint).is_err() {
        return Ok(cluster);
    }
    if let Err(error) = learn_running_kubernetes_version(store, cluster.id, timeouts).await {
        tracing::warn!(cluster = %cluster.name, error = %crate::error_chain(&error), "failed to learn the running kubernetes version");
    }
    store.get_cluster(cluster.id).await
}

/// Why a cluster's secrets bundle could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ClusterSecretsError {
    /// The imported bundle is not usable.
    #[error(transparent)]
    Invalid(ValidationError),
    /// Making a new bundle failed.
    #[error("failed to generate a secrets bundle")]
    Generate(#[source] SecretsError),
}

/// The name and parsed secrets bundle of a cluster.
pub(crate) async fn load_bundle(
    store: &Store,
    id: ClusterId,
) -> Result<(String, SecretsBundle), ClusterAccessError> {
    let cluster = store.get_cluster(id).await?;
    let text = store.cluster_secrets(id).await?;
    let bundle =
        SecretsBundle::parse(text.expose()).map_err(|source| ClusterAccessError::Secrets {
            cluster: cluster.name.clone(),
            source,
        })?;
    Ok((cluster.name, bundle))
}

/// A talosconfig for the cluster whose endpoints and nodes are its control planes' public
/// addresses (servers of the cluster with a machine config and `control-plane` in their
/// name), or the endpoint's host while it has none.
pub async fn cluster_talosconfig(
    store: &Store,
    id: ClusterId,
) -> Result<Secret<String>, ClusterAccessError> {
    let cluster = store.get_cluster(id).await?;
    // Servers with a machine config recorded as a control plane.
    let control_plane_ids: Vec<_> = store
        .list_machine_configs()
        .await?
        .into_iter()
        .filter(|machine_config| machine_config.machine_type == MachineType::ControlPlane)
        .map(|machine_config| machine_config.server_id)
        .collect();
    let mut control_planes: Vec<String> = store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| server.cluster_id == Some(id) && control_plane_ids.contains(&server.id))
        .filter_map(|server| server.inventory.ipv4)
        .collect();
    if control_planes.is_empty() {
        control_planes.extend(endpoint_host(&cluster.endpoint).ok());
    }
    let (name, bundle) = load_bundle(store, id).await?;
    talosconfig(
        &bundle,
        &name,
        &control_planes,
        &control_planes,
        time::OffsetDateTime::now_utc(),
        &mut SystemRandom,
    )
    .map(Secret::new)
    .map_err(|source| ClusterAccessError::Certificate {
        cluster: name,
        source,
    })
}

/// An admin kubeconfig for the cluster (`system:masters`), pointing at its endpoint.
pub async fn cluster_kubeconfig(
    store: &Store,
    id: ClusterId,
) -> Result<Secret<String>, ClusterAccessError> {
    let cluster = store.get_cluster(id).await?;
    let (name, bundle) = load_bundle(store, id).await?;
    admin_kubeconfig(
        &bundle,
        &name,
        &cluster.endpoint,
        time::OffsetDateTime::now_utc(),
        &mut SystemRandom,
    )
    .map(Secret::new)
    .map_err(|source| ClusterAccessError::Certificate {
        cluster: name,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_cluster(name: &str, endpoint: &str, expect: &[&str]) {
        let fields = ClusterFields {
            name: name.into(),
            endpoint: endpoint.into(),
            vswitch_id: None,
        };
        let issues: Vec<String> = fields
            .validate()
            .err()
            .map(|e| e.issues.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(issues, expect);
    }

    #[test]
    fn cluster_names_and_endpoints() {
        check_cluster("prod-1", "https://prod.example.com:6443", &[]);
        check_cluster("prod", "https://[2001:db8::1]:6443", &[]);
        check_cluster(
            "Prod_1",
            "prod.example.com",
            &[
                "name: must contain only lowercase letters, digits and dashes",
                "endpoint: no scheme and port specified for the cluster endpoint URL; try: \"https://prod.example.com:6443\"",
            ],
        );
        check_cluster(
            "prod",
            "https://prod.example.com",
            &["endpoint: must name a port, e.g. https://cluster.example.com:6443"],
        );
        check_cluster(
            "prod",
            "http://prod.example.com:6443",
            &[
                "endpoint: the control plane endpoint URL should have scheme https://; try: \"https://prod.example.com:6443\"",
            ],
        );
    }
}
