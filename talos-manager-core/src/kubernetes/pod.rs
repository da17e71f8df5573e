//! Pods as far as a drain reads them: who owns them, whether they are mirror pods, and
//! whether they are already being deleted.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The annotation the kubelet puts on mirror pods (static pods shown in the API): they cannot
/// be evicted, they go with the node.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `GET /api/v1/pods`'s answer, the part we read.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PodList {
    #[serde(default)]
    pub(crate) items: Vec<Pod>,
}

/// A pod, the parts we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pod {
    /// Name, namespace, owners and annotations.
    pub metadata: PodMetadata,
}

/// A pod's metadata, the parts we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PodMetadata {
    /// Its name.
    pub name: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: String,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The objects that own it (a ReplicaSet, a DaemonSet, …).
    #[serde(rename = "ownerReferences", default)]
    pub owner_references: Vec<OwnerReference>,
    /// Set once the pod is being deleted.
    #[serde(rename = "deletionTimestamp", default)]
    pub deletion_timestamp: Option<String>,
}

/// An owner of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OwnerReference {
    /// Its kind (`ReplicaSet`, `DaemonSet`, `StatefulSet`, `Node`, …).
    pub kind: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
}

impl Pod {
    /// `namespace/name`, as logs and errors show a pod.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Whether a DaemonSet owns it: it would be recreated on the node at once, so a drain
    /// leaves it (as `kubectl drain --ignore-daemonsets`).
    pub fn is_daemon_set_pod(&self) -> bool {
        self.metadata
            .owner_references
            .iter()
            .any(|owner| owner.kind == "DaemonSet")
    }

    /// Whether it is a mirror pod (a static pod of the kubelet): it cannot be evicted.
    pub fn is_mirror_pod(&self) -> bool {
        self.metadata
            .annotations
            .contains_key(MIRROR_POD_ANNOTATION)
    }

    /// Whether a drain must evict it.
    pub fn needs_eviction(&self) -> bool {
        !self.is_daemon_set_pod() && !self.is_mirror_pod()
    }

    /// Whether it is already being deleted.
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn daemon_set_and_mirror_pods_stay() {
        let web = pod(json!({"metadata": {"name": "web-1", "namespace": "shop",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web"}]}}));
        let agent = pod(
            json!({"metadata": {"name": "agent-x", "namespace": "kube-system",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent"}]}}),
        );
        let apiserver = pod(json!({"metadata": {"name": "kube-apiserver-cp-1",
            "namespace": "kube-system",
            "annotations": {"kubernetes.io/config.mirror": "abc"}}}));
        assert!(web.needs_eviction());
        assert!(!agent.needs_eviction());
        assert!(!apiserver.needs_eviction());
        assert_eq!(web.full_name(), "shop/web-1");
        assert!(!web.is_terminating());
    }
}
