//! How the fake keeps a machine config: as Talos re-encodes it (comments dropped, keys in
//! another order, empty values left out, the v1alpha1 document first), and the dry-run
//! answer's diff. Written for the fake, not shared with talos-manager's own comparison.

use serde_norway::Value;

/// `config` as the fake's `MachineConfig` resource shows it; unparsable text as it is.
pub(crate) fn talos_encoded(config: &str) -> String {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(config) {
        match <Value as serde::Deserialize>::deserialize(document) {
            Ok(value) => documents.extend(reencode(value)),
            Err(_) => return config.to_owned(),
        }
    }
    // The v1alpha1 document (no `kind`) first, the others in their order.
    documents.sort_by_key(|document| document.get("kind").is_some());
    documents
        .iter()
        .map(|document| serde_norway::to_string(document).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Keys in reverse alphabetical order (Talos orders them by its struct fields), empty values
/// dropped.
fn reencode(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Sequence(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(reencode).collect();
            (!items.is_empty()).then_some(Value::Sequence(items))
        }
        Value::Mapping(mapping) => {
            let mut entries: Vec<(Value, Value)> = mapping
                .into_iter()
                .filter_map(|(key, value)| reencode(value).map(|value| (key, value)))
                .collect();
            entries.sort_by(|(a, _), (b, _)| b.as_str().cmp(&a.as_str()));
            (!entries.is_empty()).then(|| Value::Mapping(entries.into_iter().collect()))
        }
        other => Some(other),
    }
}

/// Whether changing from `old` to `new` needs a reboot, by the fake's rule: a change of
/// `machine.kernel` (its modules) does; everything else applies live.
pub(crate) fn needs_reboot(old: &str, new: &str) -> bool {
    let kernel = |config: &str| {
        serde_norway::Deserializer::from_str(config)
            .filter_map(|document| <Value as serde::Deserialize>::deserialize(document).ok())
            .find(|document| document.get("kind").is_none())
            .and_then(|document| document.get("machine")?.get("kernel").cloned())
    };
    kernel(old) != kernel(new)
}

/// The lines removed (`-`) and added (`+`) from `old` to `new`, in order (a longest common
/// subsequence diff without context).
pub(crate) fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}
