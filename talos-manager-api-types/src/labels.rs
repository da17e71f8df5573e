//! Kubernetes node labels and taints as label and taint rules write them: `key=value,…` and
//! `key=value:Effect,…`, checked with Kubernetes's own rules (`IsQualifiedName` for keys,
//! `IsValidLabelValue` for values, the three taint effects), so a rule the API server would
//! answer 422 is refused when it is saved. Prefixes under `kubernetes.io` and `k8s.io` are
//! allowed: the rules are applied with the cluster's admin credentials, which the
//! NodeRestriction admission plugin (kubelets only) does not limit. A client checks a rule with
//! them before it sends it; `talos_manager_core::node_labels` re-exports them and checks whole
//! rules.

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

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn parse_taint(text: &str) -> Result<Taint, String> {
    let (label, effect) = text.split_once(':').ok_or(TAINT_FORMAT)?;
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => return Err(EFFECTS.into()),
    };
    Ok(Taint {
        label: parse_label(label)?,
        effect,
    })
}

fn parse_label(text: &str) -> Result<Label, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or("must include an equals sign to separate key and value")?;
    check_key(key)?;
    check_value(value)?;
    Ok(Label {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// The longest name part of a key, and the longest value (Kubernetes's `IsQualifiedName` and
/// `IsValidLabelValue`).
const MAX_NAME_LENGTH: usize = 63;
/// The longest key prefix (a DNS subdomain, RFC 1123).
const MAX_PREFIX_LENGTH: usize = 253;

const NAME_CHARSET: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must \
                            start and end with an alphanumeric character";

/// A qualified name as Kubernetes checks it (`IsQualifiedName`): an optional prefix, a
/// lowercase DNS subdomain of at most 253 characters, and `/`; then a name of 1 to 63
/// alphanumeric characters, `-`, `_` or `.`, alphanumeric at both ends.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("key's prefix part must be non-empty".into());
        }
        if prefix.len() > MAX_PREFIX_LENGTH {
            return Err(format!(
                "key's prefix part must be no more than {MAX_PREFIX_LENGTH} characters"
            ));
        }
        if !is_dns_subdomain(prefix) {
            return Err(
                "key's prefix part must be a lowercase DNS subdomain: lowercase alphanumeric \
                 characters, '-' or '.', starting and ending with an alphanumeric character"
                    .into(),
            );
        }
    }
    if name.is_empty() {
        return Err("key's name part must be non-empty".into());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "key's name part must be no more than {MAX_NAME_LENGTH} characters"
        ));
    }
    if !is_label_word(name) {
        return Err(format!(
            "key's name part {NAME_CHARSET} (a key is [prefix/]name, with one '/' at most)"
        ));
    }
    Ok(())
}

/// A label value as Kubernetes checks it (`IsValidLabelValue`): empty, or at most 63
/// alphanumeric characters, `-`, `_` or `.`, alphanumeric at both ends.
fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "values must be no more than {MAX_NAME_LENGTH} characters"
        ));
    }
    if !value.is_empty() && !is_label_word(value) {
        return Err(format!("values {NAME_CHARSET}"));
    }
    Ok(())
}

/// Alphanumeric at both ends, `-`, `_`, `.` between.
fn is_label_word(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// A lowercase RFC 1123 subdomain: labels of lowercase alphanumerics and `-`, alphanumeric at
/// both ends, joined by `.`.
fn is_dns_subdomain(text: &str) -> bool {
    text.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                is_lower_alphanumeric(*first)
                    && is_lower_alphanumeric(*last)
                    && bytes
                        .iter()
                        .all(|&byte| is_lower_alphanumeric(byte) || byte == b'-')
            }
            _ => false,
        }
    })
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases `factory-k8s-fidelity.md` D2 checked against Kubernetes's own
    /// `IsQualifiedName` / `IsValidLabelValue`: each is refused by Kubernetes.
    #[test]
    fn kubernetes_refuses_what_we_refuse() {
        let long = "a".repeat(64);
        for bad in [
            format!("team={long}"),
            format!("{long}=x"),
            "Example.com/role=db".to_owned(),
            "my_corp.io/role=db".to_owned(),
            "a/b/c=x".to_owned(),
            "a//b=x".to_owned(),
            "/role=x".to_owned(),
            "example.com/=x".to_owned(),
            format!("{}/role=x", "a".repeat(254)),
            "-bad=x".to_owned(),
            "ok=-v-".to_owned(),
        ] {
            assert!(parse_labels(&bad).is_err(), "{bad} was accepted");
            assert!(
                parse_taints(&format!("{bad}:NoSchedule")).is_err(),
                "taint {bad} was accepted"
            );
        }
    }

    #[test]
    fn kubernetes_accepts_what_we_accept() {
        let name = "a".repeat(63);
        let prefix = format!("{}.example.com", "b".repeat(60));
        for good in [
            format!("{name}={name}"),
            format!("{prefix}/{name}=x"),
            "node-role.kubernetes.io/worker=".to_owned(),
            "node.kubernetes.io/disk=nvme".to_owned(),
            "topology.kubernetes.io/zone=fsn1-dc14".to_owned(),
            "Team_A.x=Value_1".to_owned(),
        ] {
            assert!(parse_labels(&good).is_ok(), "{good} was refused");
        }
    }

    #[test]
    fn messages_name_the_part() {
        assert_eq!(
            parse_labels(&format!("team={}", "a".repeat(64))).unwrap_err(),
            [format!(
                "\"team={}\" values must be no more than 63 characters",
                "a".repeat(64)
            )]
        );
        assert_eq!(
            parse_labels("Example.com/role=db").unwrap_err(),
            [
                "\"Example.com/role=db\" key's prefix part must be a lowercase DNS subdomain: \
              lowercase alphanumeric characters, '-' or '.', starting and ending with an \
              alphanumeric character"
            ]
        );
    }
}
