//! Kubernetes node labels and taints as label and taint rules write them: `key=value,…` and
//! `key=value:Effect,…`, checked with the original app's rules and messages (a little stricter
//! than Kubernetes itself). A client checks a rule with them before it sends it;
//! `talos_manager_core::node_labels` re-exports them and checks whole rules.

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
