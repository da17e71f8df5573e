//! Pods as far as a drain reads them: who controls them, whether they are mirror pods, whether
//! they have finished, keep data in an `emptyDir`, or are already being deleted; and how
//! `kubectl drain` would treat each ([`Pod::drain_verdict`]).

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
    /// Its volumes.
    #[serde(default)]
    pub spec: PodSpec,
    /// Its phase.
    #[serde(default)]
    pub status: PodStatus,
}

/// A pod's spec, the parts we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodSpec {
    /// Its volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// A pod volume, the parts we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Volume {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Set when it is an `emptyDir` (node-local data, lost when the pod goes).
    #[serde(rename = "emptyDir", default)]
    pub empty_dir: Option<serde_json::Value>,
}

/// A pod's status, the parts we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default)]
    pub phase: String,
}

/// What the operator allows a drain to delete beyond what `kubectl drain` deletes without
/// flags (`--force`, `--delete-emptydir-data`). Both default to false: such pods make the drain
/// fail naming them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodPolicy {
    /// Evict pods no controller manages (nothing recreates them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Evict pods with `emptyDir` volumes (their data is lost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_emptydir_data: bool,
}

/// How a drain treats one pod, by `kubectl drain`'s rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainVerdict {
    /// Evicted (or waited for, when already terminating).
    Evict,
    /// Left on the node: a DaemonSet's pod, a mirror pod or a finished pod.
    Skip,
    /// The drain refuses to go on while it is there, for the reason given.
    Refuse(&'static str),
}

/// Why a pod without a controller is refused.
pub const UNMANAGED_REASON: &str =
    "no controller manages it, so nothing would recreate it (allow with force)";
/// Why a pod with an `emptyDir` volume is refused.
pub const EMPTY_DIR_REASON: &str =
    "it keeps data in an emptyDir volume that would be lost (allow with delete_emptydir_data)";

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
    /// Whether it is the pod's managing controller.
    #[serde(default)]
    pub controller: Option<bool>,
}

impl Pod {
    /// `namespace/name`, as logs and errors show a pod.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// Its managing controller: the owner reference with `controller: true`.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.metadata
            .owner_references
            .iter()
            .find(|owner| owner.controller == Some(true))
    }

    /// Whether a DaemonSet controls it: it would be recreated on the node at once, so a drain
    /// leaves it (as `kubectl drain --ignore-daemonsets`).
    pub fn is_daemon_set_pod(&self) -> bool {
        self.controller()
            .is_some_and(|owner| owner.kind == "DaemonSet")
    }

    /// Whether it has finished (`Succeeded` or `Failed`): nothing runs to evict.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.phase.as_str(), "Succeeded" | "Failed")
    }

    /// Whether it has an `emptyDir` volume.
    pub fn has_empty_dir(&self) -> bool {
        self.spec
            .volumes
            .iter()
            .any(|volume| volume.empty_dir.is_some())
    }

    /// How a drain treats it under `policy`, in `kubectl drain`'s order: DaemonSet, mirror
    /// and finished pods are skipped; a pod with an `emptyDir` volume is refused unless
    /// [`PodPolicy::delete_emptydir_data`], one without a controller unless
    /// [`PodPolicy::force`].
    pub fn drain_verdict(&self, policy: PodPolicy) -> DrainVerdict {
        if self.is_daemon_set_pod() || self.is_mirror_pod() || self.is_finished() {
            DrainVerdict::Skip
        } else if self.has_empty_dir() && !policy.delete_emptydir_data {
            DrainVerdict::Refuse(EMPTY_DIR_REASON)
        } else if self.controller().is_none() && !policy.force {
            DrainVerdict::Refuse(UNMANAGED_REASON)
        } else {
            DrainVerdict::Evict
        }
    }

    /// Whether it is a mirror pod (a static pod of the kubelet): it cannot be evicted.
    pub fn is_mirror_pod(&self) -> bool {
        self.metadata
            .annotations
            .contains_key(MIRROR_POD_ANNOTATION)
    }

    /// Whether a drain must evict it (or wait for it): it is not skipped.
    pub fn needs_eviction(&self) -> bool {
        self.drain_verdict(PodPolicy {
            force: true,
            delete_emptydir_data: true,
        }) == DrainVerdict::Evict
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
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "controller": true}]}}));
        let agent = pod(
            json!({"metadata": {"name": "agent-x", "namespace": "kube-system",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": true}]}}),
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

    #[test]
    fn kubectl_drain_rules() {
        let managed = json!([{"kind": "ReplicaSet", "name": "web", "controller": true}]);
        let strict = PodPolicy::default();
        let forced = PodPolicy {
            force: true,
            delete_emptydir_data: true,
        };
        // A bare pod, or one whose only owner is not its controller.
        let bare = pod(json!({"metadata": {"name": "debug", "namespace": "default"}}));
        let not_controlled = pod(json!({"metadata": {"name": "x", "namespace": "default",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web"}]}}));
        assert_eq!(
            bare.drain_verdict(strict),
            DrainVerdict::Refuse(UNMANAGED_REASON)
        );
        assert_eq!(
            not_controlled.drain_verdict(strict),
            DrainVerdict::Refuse(UNMANAGED_REASON)
        );
        assert_eq!(bare.drain_verdict(forced), DrainVerdict::Evict);
        let scratch = pod(json!({"metadata": {"name": "cache", "namespace": "shop",
            "ownerReferences": managed},
            "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}));
        assert_eq!(
            scratch.drain_verdict(strict),
            DrainVerdict::Refuse(EMPTY_DIR_REASON)
        );
        assert_eq!(scratch.drain_verdict(forced), DrainVerdict::Evict);
        let done = pod(json!({"metadata": {"name": "job-1", "namespace": "batch"},
            "status": {"phase": "Succeeded"}}));
        let failed = pod(json!({"metadata": {"name": "job-2", "namespace": "batch"},
            "status": {"phase": "Failed"}}));
        assert_eq!(done.drain_verdict(strict), DrainVerdict::Skip);
        assert_eq!(failed.drain_verdict(strict), DrainVerdict::Skip);
        // A DaemonSet that owns without controlling does not make the pod a DaemonSet's.
        let adopted = pod(json!({"metadata": {"name": "y", "namespace": "default",
            "ownerReferences": [{"kind": "DaemonSet", "name": "a"}]}}));
        assert_eq!(
            adopted.drain_verdict(strict),
            DrainVerdict::Refuse(UNMANAGED_REASON)
        );
    }
}
