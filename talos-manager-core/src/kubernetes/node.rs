//! Kubernetes objects as far as we read them (a node's labels and taints, the API server's
//! version), and the pure planning of the patch that brings a node's labels and taints from
//! what we applied before to what the rules want now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::node_labels::{Label, Taint, TaintEffect, parse_labels, parse_taints};
use crate::store::LabelTaintRule;

/// `GET /version`'s answer, the field we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KubernetesVersion {
    /// `v1.33.1`.
    #[serde(rename = "gitVersion", default)]
    pub git_version: String,
}

impl KubernetesVersion {
    /// The version as config templates write it (`1.33.1`), when `gitVersion` is a plain
    /// `vMAJOR.MINOR.PATCH` (a build suffix such as `+k3s1` is dropped; a pre-release such as
    /// `-rc.1` is no release, so `None`).
    pub fn release(&self) -> Option<String> {
        let text = self.git_version.trim().trim_start_matches('v');
        let text = text.split('+').next().unwrap_or_default();
        let parts: Vec<&str> = text.split('.').collect();
        let numeric = parts.len() == 3
            && parts
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
        numeric.then(|| text.to_owned())
    }
}

/// A node, the parts we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Node {
    /// Name, resource version and labels.
    pub metadata: NodeMetadata,
    /// Taints and whether it is cordoned.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Its conditions.
    #[serde(default)]
    pub status: NodeStatus,
}

impl Node {
    /// Whether the node's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|condition| condition.kind == "Ready" && condition.status == "True")
    }
}

/// A node's status, the part we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeStatus {
    /// Its conditions (`Ready`, `MemoryPressure`, …).
    #[serde(default)]
    pub conditions: Vec<NodeCondition>,
    /// What the kubelet reports about the machine.
    #[serde(rename = "nodeInfo", default)]
    pub node_info: NodeSystemInfo,
}

/// `status.nodeInfo`, the part we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeSystemInfo {
    /// The kubelet's version (`v1.33.1`).
    #[serde(rename = "kubeletVersion", default)]
    pub kubelet_version: String,
    /// The OS image (`Talos (v1.11.3)`).
    #[serde(rename = "osImage", default)]
    pub os_image: String,
}

/// One condition of a node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeCondition {
    /// `Ready`, `MemoryPressure`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

/// A node's metadata, the parts we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeMetadata {
    /// The node's name.
    pub name: String,
    /// The version of the object, for conditional writes.
    #[serde(rename = "resourceVersion", default)]
    pub resource_version: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A node's spec, the part we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NodeSpec {
    /// Its taints, in order.
    #[serde(default)]
    pub taints: Vec<NodeTaint>,
    /// Whether it is cordoned (no new pods are scheduled on it).
    #[serde(default)]
    pub unschedulable: bool,
}

/// A taint as the API has it; written back unchanged when it is not ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTaint {
    /// Its key.
    pub key: String,
    /// Its value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// When the node controller added it (NoExecute taints).
    #[serde(rename = "timeAdded", default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

impl NodeTaint {
    fn value(&self) -> &str {
        self.value.as_deref().unwrap_or_default()
    }
}

/// A set of labels and taints: what the rules want for a server, or what was applied to its
/// node. Keys are unique (taints by key and effect, as kubectl identifies them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelsTaints {
    /// Labels, by key.
    pub labels: BTreeMap<String, String>,
    /// Taints, by (key, effect), with their value.
    pub taints: BTreeMap<(String, TaintEffectKey), String>,
}

/// A taint effect as a map key (ordered like the API's spelling).
pub type TaintEffectKey = &'static str;

impl LabelsTaints {
    /// The union of the labels and taints of every rule whose match string is part of
    /// `server_name`. Where two rules set the same label (or taint key and effect), the later
    /// rule wins. Items that the Kubernetes API would refuse (a rule saved before the check
    /// was as strict) are left out one by one; see [`LabelsTaints::from_rules_reporting`].
    pub fn from_rules(rules: &[LabelTaintRule], server_name: &str) -> LabelsTaints {
        LabelsTaints::from_rules_reporting(rules, server_name).0
    }

    /// As [`LabelsTaints::from_rules`], with a line for each item left out, naming its rule
    /// and why: one bad item never keeps the others from the node.
    pub fn from_rules_reporting(
        rules: &[LabelTaintRule],
        server_name: &str,
    ) -> (LabelsTaints, Vec<String>) {
        let mut set = LabelsTaints::default();
        let mut skipped = Vec::new();
        for rule in rules {
            let name_match = rule.fields.name_match.trim();
            if name_match.is_empty() || !server_name.contains(name_match) {
                continue;
            }
            for item in rule.fields.labels.split(',') {
                match parse_labels(item) {
                    Ok(labels) => set.add(&labels, &[]),
                    Err(problems) => {
                        skipped.extend(problems.into_iter().map(|problem| {
                            format!("rule {name_match:?}: label {problem}; left out")
                        }))
                    }
                }
            }
            for item in rule.fields.taints.split(',') {
                match parse_taints(item) {
                    Ok(taints) => set.add(&[], &taints),
                    Err(problems) => {
                        skipped.extend(problems.into_iter().map(|problem| {
                            format!("rule {name_match:?}: taint {problem}; left out")
                        }))
                    }
                }
            }
        }
        (set, skipped)
    }

    /// Reads a set back from the rules' syntax (`key=value,…`, `key=value:Effect,…`), item
    /// by item: one item that does not parse is left out, not the whole set.
    pub fn parse(labels: &str, taints: &str) -> LabelsTaints {
        let mut set = LabelsTaints::default();
        for item in labels.split(',') {
            set.add(&parse_labels(item).unwrap_or_default(), &[]);
        }
        for item in taints.split(',') {
            set.add(&[], &parse_taints(item).unwrap_or_default());
        }
        set
    }

    fn add(&mut self, labels: &[Label], taints: &[Taint]) {
        for label in labels {
            self.labels.insert(label.key.clone(), label.value.clone());
        }
        for taint in taints {
            self.taints.insert(
                (taint.label.key.clone(), taint.effect.as_str()),
                taint.label.value.clone(),
            );
        }
    }

    /// The labels in the rules' syntax.
    pub fn labels_text(&self) -> String {
        let items: Vec<String> = self
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        items.join(",")
    }

    /// The taints in the rules' syntax.
    pub fn taints_text(&self) -> String {
        let items: Vec<String> = self
            .taints
            .iter()
            .map(|((key, effect), value)| format!("{key}={value}:{effect}"))
            .collect();
        items.join(",")
    }

    /// Whether there is nothing in the set.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.taints.is_empty()
    }
}

/// What a patch does to a node, and the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePatchPlan {
    /// A JSON merge patch, or `None` when the node is already as wanted.
    pub patch: Option<Value>,
    /// One line per change, for the job's log (`label role=db added`).
    pub changes: Vec<String>,
}

/// Plans the merge patch that makes `node` carry `desired`, removing what was `applied` before
/// and is no longer desired, and nothing else.
///
/// - A label or taint is set when missing or different (a taint is identified by key and
///   effect; its value is overwritten, as `kubectl taint --overwrite` does).
/// - A previously applied label or taint that no rule wants any more is removed, but only
///   while the node still carries it with the value we applied: a value someone else changed
///   since is theirs now.
/// - Foreign labels and taints are left alone. Labels merge per key; taints are an atomic list
///   in Kubernetes, so the patch carries the whole new list and the node's `resourceVersion`,
///   which makes it fail with a conflict if the node changed since it was read.
/// - A patch that removes a label carries the `resourceVersion` too: the "still holds our
///   value" check above was made on the node as read, and a value someone writes between that
///   read and the patch must not be deleted. The caller re-reads and plans again on a conflict.
pub fn plan_node_patch(
    node: &Node,
    desired: &LabelsTaints,
    applied: &LabelsTaints,
) -> NodePatchPlan {
    let mut changes = Vec::new();
    let mut labels = Map::new();
    for (key, value) in &desired.labels {
        match node.metadata.labels.get(key) {
            Some(current) if current == value => {}
            Some(current) => {
                changes.push(format!("label {key}={value} set (was {key}={current})"));
                labels.insert(key.clone(), json!(value));
            }
            None => {
                changes.push(format!("label {key}={value} added"));
                labels.insert(key.clone(), json!(value));
            }
        }
    }
    let mut label_removed = false;
    for (key, value) in &applied.labels {
        if desired.labels.contains_key(key) {
            continue;
        }
        match node.metadata.labels.get(key) {
            Some(current) if current == value => {
                changes.push(format!("label {key}={value} removed"));
                labels.insert(key.clone(), Value::Null);
                label_removed = true;
            }
            Some(current) => changes.push(format!(
                "label {key}={current} kept: no rule sets it any more, but its value changed since we set {key}={value}"
            )),
            None => {}
        }
    }

    let mut taints: Vec<NodeTaint> = Vec::new();
    let mut taints_changed = false;
    for taint in &node.spec.taints {
        let id = (taint.key.clone(), effect_key(&taint.effect));
        let ours_before = id.1.is_some_and(|effect| {
            applied.taints.get(&(taint.key.clone(), effect)) == Some(&taint.value().to_owned())
        });
        let wanted =
            id.1.is_some_and(|effect| desired.taints.contains_key(&(taint.key.clone(), effect)));
        if ours_before && !wanted {
            changes.push(format!(
                "taint {}={}:{} removed",
                taint.key,
                taint.value(),
                taint.effect
            ));
            taints_changed = true;
            continue;
        }
        taints.push(taint.clone());
    }
    for ((key, effect), value) in &desired.taints {
        let existing = taints
            .iter_mut()
            .find(|taint| &taint.key == key && taint.effect == *effect);
        match existing {
            Some(taint) if taint.value() == value => {}
            Some(taint) => {
                changes.push(format!(
                    "taint {key}={value}:{effect} set (was {key}={}:{effect})",
                    taint.value()
                ));
                taint.value = (!value.is_empty()).then(|| value.clone());
                taints_changed = true;
            }
            None => {
                changes.push(format!("taint {key}={value}:{effect} added"));
                taints.push(NodeTaint {
                    key: key.clone(),
                    value: (!value.is_empty()).then(|| value.clone()),
                    effect: (*effect).to_owned(),
                    time_added: None,
                });
                taints_changed = true;
            }
        }
    }

    let mut metadata = Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    let mut patch = Map::new();
    if taints_changed || label_removed {
        metadata.insert(
            "resourceVersion".into(),
            json!(node.metadata.resource_version),
        );
    }
    if taints_changed {
        patch.insert("spec".into(), json!({ "taints": taints }));
    }
    if !metadata.is_empty() {
        patch.insert("metadata".into(), Value::Object(metadata));
    }
    NodePatchPlan {
        patch: (!patch.is_empty()).then_some(Value::Object(patch)),
        changes,
    }
}

fn effect_key(effect: &str) -> Option<TaintEffectKey> {
    [
        TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute,
    ]
    .into_iter()
    .map(TaintEffect::as_str)
    .find(|known| *known == effect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {
                "name": "worker-1",
                "resourceVersion": "42",
                "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
            },
            "spec": { "taints": taints },
        }))
        .unwrap()
    }

    #[track_caller]
    fn check(
        node: &Node,
        desired: (&str, &str),
        applied: (&str, &str),
        patch: Value,
        changes: &[&str],
    ) {
        let plan = plan_node_patch(
            node,
            &LabelsTaints::parse(desired.0, desired.1),
            &LabelsTaints::parse(applied.0, applied.1),
        );
        assert_eq!(plan.patch.unwrap_or(Value::Null), patch);
        assert_eq!(plan.changes, changes);
    }

    #[test]
    fn adds_what_is_missing_and_keeps_foreign_taints() {
        let node = node(
            &[("kubernetes.io/hostname", "worker-1")],
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}]),
        );
        check(
            &node,
            ("role=db", "dedicated=db:NoSchedule"),
            ("", ""),
            json!({
                "metadata": {"labels": {"role": "db"}, "resourceVersion": "42"},
                "spec": {"taints": [
                    {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
                    {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                ]},
            }),
            &["label role=db added", "taint dedicated=db:NoSchedule added"],
        );
    }

    #[test]
    fn nothing_to_do_is_no_patch() {
        let node = node(
            &[("role", "db")],
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        check(
            &node,
            ("role=db", "dedicated=db:NoSchedule"),
            ("role=db", "dedicated=db:NoSchedule"),
            Value::Null,
            &[],
        );
    }

    #[test]
    fn removes_only_what_we_applied_and_still_holds_our_value() {
        let node = node(
            &[
                ("role", "db"),
                ("tier", "changed-by-someone"),
                ("team", "x"),
            ],
            json!([
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": "foreign", "effect": "NoSchedule"},
            ]),
        );
        check(
            &node,
            ("", ""),
            ("role=db,tier=gold", "dedicated=db:NoSchedule"),
            json!({
                "metadata": {"labels": {"role": null}, "resourceVersion": "42"},
                "spec": {"taints": [{"key": "foreign", "effect": "NoSchedule"}]},
            }),
            &[
                "label role=db removed",
                "label tier=changed-by-someone kept: no rule sets it any more, but its value changed since we set tier=gold",
                "taint dedicated=db:NoSchedule removed",
            ],
        );
    }

    #[test]
    fn a_label_removal_alone_is_conditional_on_the_node_read() {
        let node = node(&[("role", "db"), ("team", "x")], json!([]));
        check(
            &node,
            ("team=x", ""),
            ("role=db,team=x", ""),
            json!({"metadata": {"labels": {"role": null}, "resourceVersion": "42"}}),
            &["label role=db removed"],
        );
        // Additions merge per key and need no precondition.
        check(
            &node,
            ("role=db,team=x,tier=gold", ""),
            ("role=db,team=x", ""),
            json!({"metadata": {"labels": {"tier": "gold"}}}),
            &["label tier=gold added"],
        );
    }

    #[test]
    fn changed_values_are_overwritten() {
        let node = node(
            &[("role", "web")],
            json!([{"key": "dedicated", "value": "web", "effect": "NoSchedule"}]),
        );
        check(
            &node,
            ("role=db", "dedicated=db:NoSchedule"),
            ("role=web", "dedicated=web:NoSchedule"),
            json!({
                "metadata": {"labels": {"role": "db"}, "resourceVersion": "42"},
                "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            }),
            &[
                "label role=db set (was role=web)",
                "taint dedicated=db:NoSchedule set (was dedicated=web:NoSchedule)",
            ],
        );
    }

    #[test]
    fn rules_match_by_substring_and_later_rules_win() {
        use crate::ids::LabelTaintRuleId;
        use crate::store::LabelTaintRuleFields;
        let rule = |id, name_match: &str, labels: &str, taints: &str| LabelTaintRule {
            id: LabelTaintRuleId(id),
            fields: LabelTaintRuleFields {
                name_match: name_match.into(),
                labels: labels.into(),
                taints: taints.into(),
            },
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let rules = [
            rule(1, "worker", "role=worker,zone=a", ""),
            rule(2, "db", "role=db", "dedicated=db:NoSchedule"),
            rule(3, "control-plane", "cp=yes", ""),
        ];
        let set = LabelsTaints::from_rules(&rules, "db-worker-1");
        assert_eq!(set.labels_text(), "role=db,zone=a");
        assert_eq!(set.taints_text(), "dedicated=db:NoSchedule");
        assert!(LabelsTaints::from_rules(&rules, "web-1").is_empty());
    }

    #[test]
    fn versions_as_config_templates_write_them() {
        let release = |git: &str| {
            KubernetesVersion {
                git_version: git.into(),
            }
            .release()
        };
        assert_eq!(release("v1.33.1").as_deref(), Some("1.33.1"));
        assert_eq!(release("v1.30.0+k3s1").as_deref(), Some("1.30.0"));
        assert_eq!(release("v1.34.0-rc.1"), None);
        assert_eq!(release("nonsense"), None);
        assert_eq!(release(""), None);
    }
}
