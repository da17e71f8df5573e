//! Config drift: whether the machine config a node runs (read from the node through the Talos
//! API) is the config talos-manager would serve it now (rendered from the stored template,
//! patches and machine config), and a readable diff when it is not.
//!
//! The two are compared as YAML documents, not as text, ignoring what Talos changes itself when
//! it keeps a config ([`IGNORED`]). Every value under a key that names a secret (keys, tokens,
//! secrets, certificates, passwords) is masked before the diff is made, on both sides: the diff
//! says that a secret changed, never what it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_norway::Value;

use super::{NodeConfigError, render_node_config};
use crate::ids::{ClusterId, ServerId, ServerRef};
use crate::lifecycle::{NodeRef, NodeRole};
use crate::random::SystemRandom;
use crate::store::{Store, StoreError};
use crate::talos_api::{TalosApi, TalosApiError, TalosConnector, TalosCredentials};

/// A difference between what was applied and what a node reports that Talos makes itself, so
/// the comparison ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredDifference {
    /// What differs.
    pub what: &'static str,
    /// Where in Talos's code (`pkg/machinery`, v1.14) it comes from.
    pub source: &'static str,
}

/// What the comparison ignores: Talos re-encodes a config it changed or loaded into a
/// container (`MachineConfigs.config.talos.dev/v1alpha1` shows that encoding).
pub const IGNORED: &[IgnoredDifference] = &[
    IgnoredDifference {
        what: "comments, quoting, indentation and the order of keys",
        source: "config/encoder/encoder.go (Encoder.Encode re-encodes each document)",
    },
    IgnoredDifference {
        what: "the order of documents (the v1alpha1 document first, then the others)",
        source: "config/container/container.go (Container.encodeToBuf)",
    },
    IgnoredDifference {
        what: "empty values (null, empty lists and maps) left out",
        source: "config/encoder/encoder.go (isEmpty and the omitempty fields)",
    },
];

/// What a masked secret reads as in a diff.
pub const REDACTED: &str = "<redacted>";
/// What a masked secret that differs reads as on the new side of a diff.
pub const REDACTED_CHANGED: &str = "<redacted, changed>";

/// The outcome of comparing two configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The same, up to [`IGNORED`].
    InSync,
    /// Different: a unified diff from the running config to the desired one, secrets masked.
    Drifted {
        /// The diff.
        diff: String,
    },
}

/// Compares the config a node runs with the one it should run (see the module).
///
/// # Errors
/// When either is not YAML (the message says which).
pub fn compare(running: &str, desired: &str) -> Result<Comparison, String> {
    let running_docs =
        normalize(running).map_err(|error| format!("the running config: {error}"))?;
    let desired_docs =
        normalize(desired).map_err(|error| format!("the rendered config: {error}"))?;
    if running_docs == desired_docs {
        return Ok(Comparison::InSync);
    }
    let masked_desired = mask_documents(&desired_docs, Some(&running_docs));
    let masked_running = mask_documents(&running_docs, None);
    let body = unified_diff(&render(&masked_running), &render(&masked_desired), 3);
    Ok(Comparison::Drifted {
        diff: format!("--- running on the node\n+++ rendered by talos-manager\n{body}"),
    })
}

/// The documents of a multi-document YAML config, normalized: empty values dropped, keys
/// sorted, the v1alpha1 document (no `kind`) first and the others by kind and name.
///
/// # Errors
/// When it is not YAML.
pub fn normalize(yaml: &str) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(yaml) {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|error| error.to_string())?;
        if let Some(value) = prune(value) {
            documents.push(value);
        }
    }
    documents.sort_by_key(document_order);
    Ok(documents)
}

fn document_order(document: &Value) -> (bool, String, String) {
    let text = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = text("kind");
    (!kind.is_empty(), kind, text("name"))
}

/// Drops nulls and empty collections (recursively) and sorts mapping keys.
fn prune(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Tagged(tagged) => prune(tagged.value),
        Value::Sequence(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(prune).collect();
            (!items.is_empty()).then_some(Value::Sequence(items))
        }
        Value::Mapping(mapping) => {
            let mut entries: Vec<(Value, Value)> = mapping
                .into_iter()
                .filter_map(|(key, value)| prune(value).map(|value| (key, value)))
                .collect();
            entries.sort_by_key(|(key, _)| key_text(key));
            (!entries.is_empty()).then(|| Value::Mapping(entries.into_iter().collect()))
        }
        other => Some(other),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_norway::to_string(other).unwrap_or_default(),
    }
}

/// Whether a key names a secret: a private key, token, secret, password or certificate.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["key", "token", "crt", "password", "certificate"]
        .iter()
        .any(|suffix| key.ends_with(suffix))
        || key.contains("secret")
}

fn mask_documents(documents: &[Value], other: Option<&[Value]>) -> Vec<Value> {
    documents
        .iter()
        .map(|document| {
            let counterpart = other.and_then(|other| {
                other
                    .iter()
                    .find(|candidate| document_order(candidate) == document_order(document))
            });
            mask(document, counterpart, other.is_some())
        })
        .collect()
}

/// `value` with every secret masked; with `mark_changed`, a secret that differs from the one at
/// the same place in `other` reads [`REDACTED_CHANGED`].
fn mask(value: &Value, other: Option<&Value>, mark_changed: bool) -> Value {
    match value {
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .iter()
                .map(|(key, child)| {
                    let counterpart = other.and_then(|other| other.get(key));
                    let masked = if is_secret_key(&key_text(key)) {
                        let changed = mark_changed && counterpart != Some(child);
                        Value::String(if changed { REDACTED_CHANGED } else { REDACTED }.to_owned())
                    } else {
                        mask(child, counterpart, mark_changed)
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let counterpart = other.and_then(|other| other.get(index));
                    mask(item, counterpart, mark_changed)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn render(documents: &[Value]) -> String {
    documents
        .iter()
        .map(|document| serde_norway::to_string(document).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A unified diff of two texts, line by line, with `context` lines around each change
/// (`@@ -a,b +c,d @@` hunks); empty when they are equal.
pub fn unified_diff(old: &str, new: &str, context: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.0 != ' ')
        .map(|(index, _)| index)
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let first = changed[k];
        let mut last = first;
        k += 1;
        while k < changed.len() && changed[k] <= last + 2 * context + 1 {
            last = changed[k];
            k += 1;
        }
        let start = first.saturating_sub(context);
        let end = (last + context + 1).min(ops.len());
        let count =
            |range: &[(char, &str)], skip: char| range.iter().filter(|op| op.0 != skip).count();
        let _ = writeln!(
            out,
            "@@ -{},{} +{},{} @@",
            count(&ops[..start], '+') + 1,
            count(&ops[start..end], '+'),
            count(&ops[..start], '-') + 1,
            count(&ops[start..end], '-'),
        );
        for (sign, line) in &ops[start..end] {
            out.push(*sign);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether one node runs the config it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// It runs the config talos-manager would serve it now.
    InSync,
    /// It runs another config.
    Drifted,
    /// Its config could not be read (the node does not answer, or refused).
    Unreachable,
}

/// The drift of one configured server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDrift {
    /// The server.
    pub server_id: ServerId,
    /// Its provider and id there (`robot-400`).
    pub server_ref: ServerRef,
    /// Its name.
    pub server: String,
    /// Control plane or worker.
    pub role: NodeRole,
    /// Its Talos API.
    pub address: SocketAddr,
    /// In sync, drifted or unreachable.
    pub status: DriftStatus,
    /// The diff from its running config to the desired one (secrets masked), when drifted.
    pub diff: Option<String>,
    /// Why its config could not be read or compared, when unreachable.
    pub error: Option<String>,
}

/// The drift of a server or of every configured server of a cluster (control planes first,
/// then by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDrift {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// One per configured server.
    pub servers: Vec<ServerDrift>,
}

impl ConfigDrift {
    /// Whether every server is in sync.
    pub fn in_sync(&self) -> bool {
        self.servers
            .iter()
            .all(|server| server.status == DriftStatus::InSync)
    }
}

/// What a drift check is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftScope {
    /// One server.
    Server(ServerId),
    /// Every configured server of a cluster.
    Cluster(ClusterId),
}

/// How a drift check reaches the nodes.
pub struct DriftProbe<'a> {
    /// The store.
    pub store: &'a Store,
    /// Makes the cluster's Talos API client.
    pub talos: &'a dyn TalosConnector,
    /// The port of every node's Talos API.
    pub talos_port: u16,
    /// The most one question to a node may take (nodes are asked at the same time).
    pub call_timeout: Duration,
}

/// Why a drift check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriftError {
    /// Reading the database failed, or the server or cluster does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's secrets bundle could not be read.
    #[error(transparent)]
    Bundle(#[from] crate::clusters::ClusterAccessError),
    /// The server is not a configured node of a cluster.
    #[error(transparent)]
    NotANode(#[from] crate::lifecycle::NodeRefError),
    /// No client credentials could be issued.
    #[error("failed to issue Talos API credentials for cluster {cluster}")]
    Credentials {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: crate::talos::ClientConfigError,
    },
    /// No Talos API client could be made.
    #[error("failed to set up the Talos API client for cluster {cluster}")]
    TalosClient {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: TalosApiError,
    },
    /// The config talos-manager would serve could not be rendered.
    #[error("failed to render the machine config of server {server}")]
    Render {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: Box<NodeConfigError>,
    },
}

/// The configured nodes of `scope` (control planes first, then by name), its cluster, and a
/// Talos API client for them.
pub(crate) async fn nodes_of(
    store: &Store,
    talos: &dyn TalosConnector,
    talos_port: u16,
    scope: DriftScope,
) -> Result<(ClusterId, Vec<(NodeRef, ServerRef)>, Arc<dyn TalosApi>), ConfigDriftError> {
    let configs = store.list_machine_configs().await?;
    let (cluster_id, servers) = match scope {
        DriftScope::Server(server_id) => {
            let server = store.get_server(server_id).await?;
            let cluster_id =
                server
                    .cluster_id
                    .ok_or_else(|| crate::lifecycle::NodeRefError::NoCluster {
                        server: server.inventory.name.clone(),
                    })?;
            let config = configs.iter().find(|config| config.server_id == server_id);
            let server_ref =
                ServerRef::new(server.inventory.provider, &server.inventory.provider_id);
            (
                cluster_id,
                vec![(NodeRef::new(&server, config, talos_port)?, server_ref)],
            )
        }
        DriftScope::Cluster(cluster_id) => {
            store.get_cluster(cluster_id).await?;
            let nodes: Vec<(NodeRef, ServerRef)> = store
                .list_servers()
                .await?
                .into_iter()
                .filter(|server| server.cluster_id == Some(cluster_id))
                .filter_map(|server| {
                    let config = configs.iter().find(|config| config.server_id == server.id);
                    let server_ref =
                        ServerRef::new(server.inventory.provider, &server.inventory.provider_id);
                    NodeRef::new(&server, config, talos_port)
                        .ok()
                        .map(|node| (node, server_ref))
                })
                .collect();
            (cluster_id, nodes)
        }
    };
    let mut servers = servers;
    servers.sort_by(|(a, _), (b, _)| {
        (a.role != NodeRole::ControlPlane, &a.server_name)
            .cmp(&(b.role != NodeRole::ControlPlane, &b.server_name))
    });
    let cluster = store.get_cluster(cluster_id).await?;
    let (_, secrets) = crate::clusters::load_bundle(store, cluster_id).await?;
    let now = time::OffsetDateTime::now_utc();
    let credentials =
        TalosCredentials::for_cluster(&secrets, now, &mut SystemRandom).map_err(|source| {
            ConfigDriftError::Credentials {
                cluster: cluster.name.clone(),
                source,
            }
        })?;
    let api = talos
        .cluster(&credentials)
        .map_err(|source| ConfigDriftError::TalosClient {
            cluster: cluster.name.clone(),
            source,
        })?;
    Ok((cluster_id, servers, api))
}

/// Compares the config each node of `scope` runs with the config talos-manager would serve it
/// now (see the module). A node that does not answer is part of the answer (`unreachable`);
/// nodes are asked at the same time, each question bounded by the probe's timeout.
///
/// # Errors
/// When the server or cluster does not exist, the server is no configured node, or a config
/// cannot be rendered.
pub async fn config_drift(
    probe: &DriftProbe<'_>,
    scope: DriftScope,
) -> Result<ConfigDrift, ConfigDriftError> {
    let (cluster_id, nodes, api) =
        nodes_of(probe.store, probe.talos, probe.talos_port, scope).await?;
    let mut desired = Vec::new();
    for (node, _) in &nodes {
        let config = render_node_config(probe.store, node.server_id)
            .await
            .map_err(|source| ConfigDriftError::Render {
                server: node.server_name.clone(),
                source: Box::new(source),
            })?;
        desired.push(config.yaml);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, ((node, _), desired)) in nodes.iter().zip(desired).enumerate() {
        let api = api.clone();
        let address = node.address;
        let timeout = probe.call_timeout;
        tasks.spawn(async move {
            let running = read_running(&*api, address, timeout).await;
            let outcome = running.and_then(|running| compare(running.expose(), desired.expose()));
            (index, outcome)
        });
    }
    let mut outcomes = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, outcome)) = joined {
            outcomes.insert(index, outcome);
        }
    }
    let servers = nodes
        .iter()
        .enumerate()
        .map(|(index, (node, server_ref))| {
            let outcome = outcomes
                .remove(&index)
                .unwrap_or_else(|| Err("the check of this node failed".to_owned()));
            let (status, diff, error) = match outcome {
                Ok(Comparison::InSync) => (DriftStatus::InSync, None, None),
                Ok(Comparison::Drifted { diff }) => (DriftStatus::Drifted, Some(diff), None),
                Err(error) => (DriftStatus::Unreachable, None, Some(error)),
            };
            ServerDrift {
                server_id: node.server_id,
                server_ref: server_ref.clone(),
                server: node.server_name.clone(),
                role: node.role,
                address: node.address,
                status,
                diff,
                error,
            }
        })
        .collect();
    Ok(ConfigDrift {
        cluster_id,
        servers,
    })
}

/// The config a node runs, within `timeout`; an error as text for the answer.
async fn read_running(
    api: &dyn TalosApi,
    node: SocketAddr,
    timeout: Duration,
) -> Result<crate::Secret<String>, String> {
    if let Err(refused) = crate::dial_guard::check_host("Talos API", &node.ip().to_string()) {
        return Err(refused.to_string());
    }
    match tokio::time::timeout(timeout, api.machine_config(node)).await {
        Ok(Ok(config)) => Ok(config),
        Ok(Err(error)) => Err(crate::error_chain(&error).to_string()),
        Err(_) => Err(format!(
            "the Talos API of {node} did not answer within {} s",
            timeout.as_secs_f64()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reencoding_by_talos_is_no_drift() {
        let applied = "# a comment\nversion: v1alpha1\nmachine:\n  type: worker\n  token: abc\n  certSANs: []\n  network: {}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: w-1\n";
        let reported = "apiVersion: v1alpha1\nhostname: w-1\nkind: HostnameConfig\n---\nmachine:\n    token: abc\n    type: worker\nversion: v1alpha1\n";
        assert_eq!(compare(reported, applied).unwrap(), Comparison::InSync);
    }

    #[test]
    fn a_drift_shows_the_change_and_masks_secrets() {
        let running = "version: v1alpha1\nmachine:\n  type: worker\n  token: old-token-value\n  ca:\n    crt: LS0tLS1CRUdJTg==\n    key: c2VjcmV0LWtleQ==\n  kubelet:\n    extraArgs:\n      max-pods: \"110\"\n";
        let desired = running
            .replace("\"110\"", "\"250\"")
            .replace("old-token-value", "new-token-value");
        let Comparison::Drifted { diff } = compare(running, &desired).unwrap() else {
            panic!("no drift");
        };
        assert!(diff.contains("-      max-pods: '110'"), "{diff}");
        assert!(diff.contains("+      max-pods: '250'"), "{diff}");
        assert!(diff.contains("+  token: <redacted, changed>"), "{diff}");
        for secret in [
            "old-token-value",
            "new-token-value",
            "LS0tLS1CRUdJTg",
            "c2VjcmV0",
        ] {
            assert!(!diff.contains(secret), "{secret} in {diff}");
        }
    }

    #[test]
    fn unified_diff_hunks() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nB\nc\nd\ne\nf\ng\nh\ni\nJ\n";
        assert_eq!(
            unified_diff(old, new, 1),
            "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -9,2 +9,2 @@\n i\n-j\n+J\n"
        );
        assert_eq!(unified_diff(old, old, 3), "");
    }
}
