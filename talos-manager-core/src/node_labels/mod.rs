//! Kubernetes node labels and taints as label and taint rules write them: `key=value,…` and
//! `key=value:Effect,…`, checked with Kubernetes's own rules before they are saved; and, in `reconcile.rs`, the use case that applies the rules to a
//! server's node through the cluster's Kubernetes API ([`reconcile_labels_and_taints`]), finds
//! the servers a rule change affects ([`configured_servers_matching`]) and records the
//! Kubernetes version a cluster runs ([`running_kubernetes_version`]).

mod reconcile;

use crate::store::LabelTaintRuleFields;
use crate::{Issue, ValidationError};

pub use reconcile::{
    ReconcileError, ReconcileOptions, ReconcileOutcome, cluster_client,
    configured_servers_matching, learn_running_kubernetes_version, reconcile_labels_and_taints,
    running_kubernetes_version,
};
pub use talos_manager_api_types::{Label, Taint, TaintEffect, parse_labels, parse_taints};

impl LabelTaintRuleFields {
    /// Checks a rule: a match string, at least one label or taint, and valid syntax. Returns
    /// every issue.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut issues = Vec::new();
        if self.name_match.trim().is_empty() {
            issues.push(Issue::new("match", "can't be blank"));
        }
        if self.labels.trim().is_empty() && self.taints.trim().is_empty() {
            issues.push(Issue::new(
                "labels",
                "must have at least one label or taint",
            ));
            issues.push(Issue::new(
                "taints",
                "must have at least one label or taint",
            ));
        }
        if let Err(problems) = parse_labels(&self.labels) {
            issues.extend(problems.into_iter().map(|p| Issue::new("labels", p)));
        }
        if let Err(problems) = parse_taints(&self.taints) {
            issues.extend(problems.into_iter().map(|p| Issue::new("taints", p)));
        }
        ValidationError::check("label and taint rule", issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_rule(name_match: &str, labels: &str, taints: &str, expect: &[&str]) {
        let fields = LabelTaintRuleFields {
            name_match: name_match.into(),
            labels: labels.into(),
            taints: taints.into(),
        };
        let issues: Vec<String> = match fields.validate() {
            Ok(()) => Vec::new(),
            Err(error) => error.issues.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(issues, expect);
    }

    #[test]
    fn valid_rules() {
        check_rule(
            "database",
            "role=database,node.kubernetes.io/disk=nvme",
            "",
            &[],
        );
        check_rule(
            "worker",
            "",
            "dedicated=db:NoSchedule, spot=:PreferNoSchedule",
            &[],
        );
        check_rule("x", "empty-value=", "", &[]);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        check_rule(
            "",
            "",
            "",
            &[
                "match: can't be blank",
                "labels: must have at least one label or taint",
                "taints: must have at least one label or taint",
            ],
        );
        check_rule(
            "db",
            "role,=x,-bad=x,ok=-v-",
            "a=b,a=b:Sometimes",
            &[
                "labels: \"role\" must include an equals sign to separate key and value",
                "labels: \"=x\" key's name part must be non-empty",
                "labels: \"-bad=x\" key's name part must consist of alphanumeric characters, '-', \
                 '_' or '.', and must start and end with an alphanumeric character (a key is \
                 [prefix/]name, with one '/' at most)",
                "labels: \"ok=-v-\" values must consist of alphanumeric characters, '-', '_' or \
                 '.', and must start and end with an alphanumeric character",
                "taints: \"a=b\" must be in the format of key=value:Effect",
                "taints: \"a=b:Sometimes\" effect must be one of: NoSchedule, PreferNoSchedule, \
                 NoExecute",
            ],
        );
    }

    /// What the Kubernetes API would answer 422 to is refused when saved, at its field.
    #[test]
    fn kubernetes_rules_are_checked_at_save() {
        let long = "a".repeat(64);
        check_rule(
            "db",
            &format!("team={long},Example.com/role=db,a/b/c=x"),
            &format!("{long}=x:NoSchedule"),
            &[
                &format!("labels: \"team={long}\" values must be no more than 63 characters"),
                "labels: \"Example.com/role=db\" key's prefix part must be a lowercase DNS \
                 subdomain: lowercase alphanumeric characters, '-' or '.', starting and ending \
                 with an alphanumeric character",
                "labels: \"a/b/c=x\" key's name part must consist of alphanumeric characters, \
                 '-', '_' or '.', and must start and end with an alphanumeric character (a key \
                 is [prefix/]name, with one '/' at most)",
                &format!(
                    "taints: \"{long}=x:NoSchedule\" key's name part must be no more than 63 \
                     characters"
                ),
            ],
        );
    }

    #[test]
    fn parsed_taints_keep_key_value_and_effect() {
        let taints = parse_taints("dedicated=database:NoExecute").unwrap();
        assert_eq!(taints[0].label.key, "dedicated");
        assert_eq!(taints[0].label.value, "database");
        assert_eq!(taints[0].effect.as_str(), "NoExecute");
    }
}
