//! Label and taint reconciliation for one server's node, and the running Kubernetes version of
//! a cluster: the store and the Kubernetes client around the pure planning of
//! [`plan_node_patch`](crate::kubernetes::plan_node_patch).
//!
//! # Expected flow
//! 1. Read the server, its machine config and its cluster. The node's name is the one the node
//!    reported (`servers.node_name`, recorded by lifecycle operations and the label job when
//!    it can reach the Talos API), else the machine config's hostname (every generated config
//!    sets it); a mismatch is logged.
//! 2. Wait, bounded and with back-off, until the API server answers and knows the node.
//! 3. Record the version the API server runs on the cluster.
//! 4. Read the rules and what we applied before; patch the node (retrying on a conflict).
//! 5. Record what is now applied.
//!
//! # Guarantees
//! Safe to re-run at any step: the patch is planned from the node as it is and what was
//! recorded, and the record is written only after the patch succeeded. Only labels and taints
//! we applied are ever removed.

use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{ClusterId, ServerId};
use crate::kubernetes::{
    ClientTimeouts, KubernetesClient, KubernetesError, LabelsTaints, Node, plan_node_patch,
};
use crate::progress::ProgressLog;
use crate::random::SystemRandom;
use crate::store::{Cluster, Store, StoreError};
use crate::talos::{SecretsBundle, SecretsError};
use crate::{Secret, error_chain};

/// How long to wait and how often to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// How long to wait for the API server to answer and the node to appear.
    pub node_wait: Duration,
    /// Delay before asking again the first time; doubles up to `poll_max`.
    pub poll_min: Duration,
    /// Longest delay between two questions.
    pub poll_max: Duration,
    /// Patches retried after a conflict (the node changed between read and write).
    pub conflict_retries: u32,
    /// Timeouts of each request.
    pub timeouts: ClientTimeouts,
}

impl Default for ReconcileOptions {
    /// Up to 10 minutes for the node (a fresh node installs, reboots and joins first; the
    /// original waited 5 minutes for its kubeconfig and 5 for the node), asking every 2 s
    /// growing to 30 s; 5 conflict retries.
    fn default() -> Self {
        ReconcileOptions {
            node_wait: Duration::from_secs(600),
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(30),
            conflict_retries: 5,
            timeouts: ClientTimeouts::default(),
        }
    }
}

/// Why a server's labels and taints could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is in no cluster.
    #[error("server {server} is in no cluster")]
    NoCluster {
        /// The server's name.
        server: String,
    },
    /// The cluster's stored secrets bundle is unusable.
    #[error("the secrets bundle of cluster {cluster} is unusable")]
    Secrets {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// No client could be made for the cluster's API.
    #[error("failed to set up a kubernetes client for cluster {cluster}")]
    Client {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: KubernetesError,
    },
    /// The API server did not answer, or the node did not appear, in time.
    #[error("gave up waiting for node {node} after {waited_seconds} s")]
    NodeWait {
        /// The node's name.
        node: String,
        /// How long we waited.
        waited_seconds: u64,
        /// The last answer (or its absence).
        #[source]
        source: KubernetesError,
    },
    /// A call failed in a way waiting does not help (credentials refused, invalid patch).
    #[error("failed to apply labels and taints to node {node}")]
    Kubernetes {
        /// The node's name.
        node: String,
        /// Why.
        #[source]
        source: KubernetesError,
    },
}

/// What reconciliation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileOutcome {
    /// The server has no machine config: no node to label.
    NotConfigured,
    /// The node carries what the rules want.
    Reconciled {
        /// The node's name.
        node: String,
        /// One line per change; empty when the node was already as wanted.
        changes: Vec<String>,
    },
}

/// A client for the cluster's Kubernetes API with admin credentials issued from its secrets
/// bundle.
pub async fn cluster_client(
    store: &Store,
    cluster: &Cluster,
    timeouts: ClientTimeouts,
) -> Result<KubernetesClient, ReconcileError> {
    let text: Secret<String> = store.cluster_secrets(cluster.id).await?;
    let secrets =
        SecretsBundle::parse(text.expose()).map_err(|source| ReconcileError::Secrets {
            cluster: cluster.name.clone(),
            source,
        })?;
    KubernetesClient::for_cluster(
        &secrets,
        &cluster.endpoint,
        timeouts,
        time::OffsetDateTime::now_utc(),
        &mut SystemRandom,
    )
    .map_err(|source| ReconcileError::Client {
        cluster: cluster.name.clone(),
        source,
    })
}

/// Brings the labels and taints of the server's node in line with the rules: adds and
/// overwrites what the matching rules want, removes what we applied before that no rule wants
/// any more, and leaves everything else alone. See the module documentation for the flow.
pub async fn reconcile_labels_and_taints(
    store: &Store,
    server_id: ServerId,
    options: &ReconcileOptions,
    log: &dyn ProgressLog,
) -> Result<ReconcileOutcome, ReconcileError> {
    let server = store.get_server(server_id).await?;
    let Some(machine_config) = store.machine_config_for_server(server_id).await? else {
        log.line(format!(
            "server {} has no machine config: no node to label",
            server.inventory.name
        ))
        .await;
        return Ok(ReconcileOutcome::NotConfigured);
    };
    let cluster_id = server.cluster_id.ok_or_else(|| ReconcileError::NoCluster {
        server: server.inventory.name.clone(),
    })?;
    let cluster = store.get_cluster(cluster_id).await?;
    // The node's own name when a lifecycle operation read it from the node, else the
    // hostname its machine config sets.
    let node_name = match server.node_name.clone() {
        Some(name) if name != machine_config.fields.hostname => {
            log.line(format!(
                "name mismatch: the node of {} calls itself {name}, its machine config expects {}; labelling {name}",
                server.inventory.name, machine_config.fields.hostname
            ))
            .await;
            name
        }
        Some(name) => name,
        None => machine_config.fields.hostname,
    };
    let client = cluster_client(store, &cluster, options.timeouts).await?;

    let mut node = wait_for_node(&client, &node_name, options, log).await?;
    match client.version().await {
        Ok(version) => {
            let release = version.release();
            store
                .record_running_kubernetes_version(
                    cluster.id,
                    release.as_deref(),
                    crate::store::now(),
                )
                .await?;
            if let Some(release) = release {
                log.line(format!(
                    "cluster {} runs Kubernetes {release}",
                    cluster.name
                ))
                .await;
            }
        }
        Err(error) => {
            log.line(format!(
                "could not read the Kubernetes version: {}",
                error_chain(&error)
            ))
            .await;
        }
    }

    let rules = store.list_label_taint_rules().await?;
    let (desired, skipped) = LabelsTaints::from_rules_reporting(&rules, &server.inventory.name);
    for line in skipped {
        log.line(format!("node {node_name}: {line}")).await;
    }
    let applied = match store.applied_labels_taints(server_id).await? {
        // What we applied to another node (the hostname changed) is not on this one.
        Some(applied) if applied.node_name == node_name => {
            LabelsTaints::parse(&applied.labels, &applied.taints)
        }
        _ => LabelsTaints::default(),
    };
    let kubernetes = |source| ReconcileError::Kubernetes {
        node: node_name.clone(),
        source,
    };
    let mut conflicts = 0;
    let changes = loop {
        let plan = plan_node_patch(&node, &desired, &applied);
        let Some(patch) = plan.patch else {
            break plan.changes;
        };
        match client.patch_node(&node_name, &patch).await {
            Ok(_) => break plan.changes,
            Err(KubernetesError::Conflict { .. }) if conflicts < options.conflict_retries => {
                conflicts += 1;
                log.line(format!(
                    "node {node_name} changed while we patched it; reading it again"
                ))
                .await;
                node = client.get_node(&node_name).await.map_err(kubernetes)?;
            }
            Err(error) => return Err(kubernetes(error)),
        }
    };
    store
        .record_applied_labels_taints(
            server_id,
            &node_name,
            &desired.labels_text(),
            &desired.taints_text(),
        )
        .await?;
    if changes.is_empty() {
        log.line(format!(
            "node {node_name}: labels and taints already up to date"
        ))
        .await;
    }
    for change in &changes {
        log.line(format!("node {node_name}: {change}")).await;
    }
    Ok(ReconcileOutcome::Reconciled {
        node: node_name,
        changes,
    })
}

/// Asks for the node until it exists, while the answers are ones waiting may change.
async fn wait_for_node(
    client: &KubernetesClient,
    node_name: &str,
    options: &ReconcileOptions,
    log: &dyn ProgressLog,
) -> Result<Node, ReconcileError> {
    let started = Instant::now();
    let mut delay = options.poll_min;
    let mut last_reported: Option<String> = None;
    loop {
        let error = match client.get_node(node_name).await {
            Ok(node) => return Ok(node),
            Err(error) if error.is_transient() => error,
            Err(source) => {
                return Err(ReconcileError::Kubernetes {
                    node: node_name.to_owned(),
                    source,
                });
            }
        };
        // One line per kind of answer, not one per question.
        let what = match &error {
            KubernetesError::NotFound { .. } => format!(
                "waiting for node {node_name} to appear in the kubernetes API at {}",
                client.endpoint()
            ),
            _ => format!(
                "waiting for the kubernetes API at {}: {}",
                client.endpoint(),
                error_chain(&error)
            ),
        };
        if last_reported.as_deref() != Some(what.as_str()) {
            log.line(what.clone()).await;
            last_reported = Some(what);
        }
        let elapsed = started.elapsed();
        if elapsed + delay > options.node_wait {
            return Err(ReconcileError::NodeWait {
                node: node_name.to_owned(),
                waited_seconds: elapsed.as_secs(),
                source: error,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(options.poll_max);
    }
}

/// The Kubernetes version to generate the cluster's node configs with: the version its API
/// server runs, asked again when the last answer is older than `max_age`, but only for a
/// cluster that answered before (a cluster still being built has no API server to ask, and
/// `GET /config` must not wait for one). No answer within `timeouts` keeps the version last
/// seen. `None` when the cluster never answered: use the config template's version.
pub async fn running_kubernetes_version(
    store: &Store,
    cluster_id: ClusterId,
    max_age: Duration,
    timeouts: ClientTimeouts,
) -> Result<Option<String>, ReconcileError> {
    let cluster = store.get_cluster(cluster_id).await?;
    let Some(known) = cluster.running_kubernetes_version.clone() else {
        return Ok(None);
    };
    let now = crate::store::now();
    let fresh = cluster
        .running_kubernetes_version_checked_at
        .is_some_and(|checked_at| now - checked_at < max_age);
    if fresh {
        return Ok(Some(known));
    }
    let client = cluster_client(store, &cluster, timeouts).await?;
    let release = match client.version().await {
        Ok(version) => version.release(),
        Err(error) => {
            tracing::info!(cluster = %cluster.name, error = %error_chain(&error), "kubernetes version unknown; using the last one seen");
            None
        }
    };
    store
        .record_running_kubernetes_version(cluster.id, release.as_deref(), now)
        .await?;
    Ok(Some(release.unwrap_or(known)))
}

/// Asks the cluster's API server for the Kubernetes version it runs now, whether or not it
/// answered before, and records the answer (no answer records only when it was asked).
/// Returns the version (`1.33.1`), `None` when the API server did not answer in `timeouts`.
/// Creating an imported cluster calls it, so that the first node that joins an adopted
/// cluster is served the version the cluster runs, not the config template's.
pub async fn learn_running_kubernetes_version(
    store: &Store,
    cluster_id: ClusterId,
    timeouts: ClientTimeouts,
) -> Result<Option<String>, ReconcileError> {
    let cluster = store.get_cluster(cluster_id).await?;
    let client = cluster_client(store, &cluster, timeouts).await?;
    let release = match client.version().await {
        Ok(version) => version.release(),
        Err(error) => {
            tracing::info!(cluster = %cluster.name, error = %error_chain(&error), "the kubernetes API does not answer; its version stays unknown");
            None
        }
    };
    store
        .record_running_kubernetes_version(cluster.id, release.as_deref(), crate::store::now())
        .await?;
    Ok(release)
}

/// The servers with a machine config whose name contains one of `name_matches`: those whose
/// labels and taints a rule change may affect.
pub async fn configured_servers_matching(
    store: &Store,
    name_matches: &[&str],
) -> Result<Vec<ServerId>, StoreError> {
    let configured: Vec<ServerId> = store
        .list_machine_configs()
        .await?
        .into_iter()
        .map(|machine_config| machine_config.server_id)
        .collect();
    Ok(store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| {
            configured.contains(&server.id)
                && name_matches.iter().any(|name_match| {
                    let name_match = name_match.trim();
                    !name_match.is_empty() && server.inventory.name.contains(name_match)
                })
        })
        .map(|server| server.id)
        .collect())
}
