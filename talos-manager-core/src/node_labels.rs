//! Kubernetes node labels and taints as label and taint rules write them: `key=value,…` and
//! `key=value:Effect,…`, checked with the original app's rules and messages (a little stricter
//! than Kubernetes itself).

use crate::store::LabelTaintRuleFields;
use crate::validation::{Issue, ValidationError};

/// A node label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Its key, with an optional `prefix/`.
    pub key: String,
    /// Its value (may be empty).
    pub value: String,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// New pods are scheduled only when nothing else fits.
    PreferNoSchedule,
    /// Running pods are evicted too.
    NoExecute,
}

impl TaintEffect {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Its key and value.
    pub label: Label,
    /// Its effect.
    pub effect: TaintEffect,
}

const TAINT_FORMAT: &str = "must be in the format of key=value:Effect";
const EFFECTS: &str = "effect must be one of: NoSchedule, PreferNoSchedule, NoExecute";

/// Parses `key=value,key=value`; an empty string is no labels.
pub fn parse_labels(text: &str) -> Result<Vec<Label>, Vec<String>> {
    let mut labels = Vec::new();
    let mut problems = Vec::new();
    for item in split_list(text) {
        match parse_label(item) {
            Ok(label) => labels.push(label),
            Err(problem) => problems.push(format!("{item:?} {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(labels)
    } else {
        Err(problems)
    }
}

/// Parses `key=value:Effect,…`; an empty string is no taints.
pub fn parse_taints(text: &str) -> Result<Vec<Taint>, Vec<String>> {
    let mut taints = Vec::new();
    let mut problems = Vec::new();
    for item in split_list(text) {
        match parse_taint(item) {
            Ok(taint) => taints.push(taint),
            Err(problem) => problems.push(format!("{item:?} {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(taints)
    } else {
        Err(problems)
    }
}

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

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn parse_taint(text: &str) -> Result<Taint, &'static str> {
    let (label, effect) = text.split_once(':').ok_or(TAINT_FORMAT)?;
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => return Err(EFFECTS),
    };
    Ok(Taint {
        label: parse_label(label)?,
        effect,
    })
}

fn parse_label(text: &str) -> Result<Label, &'static str> {
    let (key, value) = text
        .split_once('=')
        .ok_or("must include an equals sign to separate key and value")?;
    if key.is_empty() || key.len() > 316 {
        return Err("keys must be between 1 and 316 characters long");
    }
    if !is_label_word(key, true) {
        return Err(
            "keys must consist of alphanumeric characters, '-', '_', '/' or '.', and must \
                    start and end with an alphanumeric character",
        );
    }
    if !value.is_empty() && !is_label_word(value, false) {
        return Err(
            "values must consist of alphanumeric characters, '-', '_' or '.', and must \
                    start and end with an alphanumeric character",
        );
    }
    Ok(Label {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// Alphanumeric at both ends, `-`, `_`, `.` (and `/` in keys) between.
fn is_label_word(text: &str, allow_slash: bool) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes.iter().all(|&byte| {
            byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'_' | b'.')
                || (allow_slash && byte == b'/')
        })
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
                "labels: \"=x\" keys must be between 1 and 316 characters long",
                "labels: \"-bad=x\" keys must consist of alphanumeric characters, '-', '_', '/' or \
                 '.', and must start and end with an alphanumeric character",
                "labels: \"ok=-v-\" values must consist of alphanumeric characters, '-', '_' or \
                 '.', and must start and end with an alphanumeric character",
                "taints: \"a=b\" must be in the format of key=value:Effect",
                "taints: \"a=b:Sometimes\" effect must be one of: NoSchedule, PreferNoSchedule, \
                 NoExecute",
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
