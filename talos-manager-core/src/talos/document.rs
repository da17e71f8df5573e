//! Machine configurations as lists of documents: strict loading, identities, and emission.

use super::schema::{self, DecodeProblem, LEGACY_DEF, Schema, Ty};
use super::yaml::{self, Value};

/// A machine configuration: the v1alpha1 document (when present) first, then the other
/// documents (`VolumeConfig`, `HostnameConfig`, …) in order.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    pub(crate) documents: Vec<Value>,
}

/// A configuration text that does not fit Talos's schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The text is not valid YAML.
    #[error("decode error: {message}")]
    Syntax {
        /// The YAML parser's message.
        message: String,
    },
    /// A document is not a mapping.
    #[error("document {document_idx} is not a mapping")]
    NotAMapping {
        /// Index of the document (0-based).
        document_idx: usize,
    },
    /// Keys or values that do not fit the schema.
    #[error(
        "error decoding {kind} to *{def}: yaml: unmarshal errors:{}",
        format_problems(problems)
    )]
    Decode {
        /// The document's kind (empty for the v1alpha1 document, as talosctl prints it).
        kind: String,
        /// The Go-style name of the document type.
        def: String,
        /// Every problem, each with its path.
        problems: Vec<DecodeIssue>,
    },
    /// Keys the schema does not know (and nothing worse).
    #[error("unknown keys found during decoding:\n{unknown}")]
    UnknownKeys {
        /// The unknown keys with their values, as YAML (talosctl prints them so).
        unknown: String,
        /// Every unknown key, with its path.
        problems: Vec<DecodeIssue>,
    },
    /// A document without `kind` that is not the v1alpha1 document.
    #[error("missing kind")]
    MissingKind,
    /// A document kind Talos does not know.
    #[error("\"{kind}\" \"{api_version}\": not registered")]
    UnknownKind {
        /// The `kind` of the document.
        kind: String,
        /// Its `apiVersion`.
        api_version: String,
    },
    /// The same document appears twice.
    #[error("duplicate document {identity} is not allowed")]
    DuplicateDocument {
        /// `apiVersion/kind[/name]` of the document.
        identity: String,
    },
    /// The text holds no document.
    #[error("config not found")]
    Empty,
}

/// One decoding problem: where (`machine.network.nameservers`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeIssue {
    /// The dotted path of the offending key.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// The type errors, as go-yaml lists them (unknown keys are only reported once types fit).
fn format_problems(problems: &[DecodeIssue]) -> String {
    problems
        .iter()
        .filter(|p| p.message != UNKNOWN_KEY)
        .map(|p| format!("\n  {}: {}", p.path, p.message))
        .collect()
}

const UNKNOWN_KEY: &str = "unknown key";

/// The keys that mark a kind-less document as the legacy v1alpha1 document.
const LEGACY_KEYS: &[&str] = &["version", "machine", "cluster", "debug", "persist"];

/// Finds the schema definition a document is decoded with.
pub(crate) fn document_def(doc: &Value) -> Result<&'static str, LoadError> {
    let schema = Schema::get();
    match doc.get("kind") {
        Some(kind) => {
            let kind = kind.to_string();
            match schema.def_for_kind(&kind) {
                Some(def) => Ok(def.name),
                None => Err(LoadError::UnknownKind {
                    kind,
                    api_version: doc
                        .get("apiVersion")
                        .map(Value::to_string)
                        .unwrap_or_default(),
                }),
            }
        }
        None if doc
            .get("apiVersion")
            .is_some_and(|v| v.as_str() == Some("v1alpha1"))
            || doc
                .as_map()
                .is_some_and(|m| m.iter().any(|(k, _)| LEGACY_KEYS.contains(&k.as_str()))) =>
        {
            Ok(LEGACY_DEF)
        }
        None => Err(LoadError::MissingKind),
    }
}

/// `apiVersion/kind[/name]`, or `/v1alpha1` for the legacy document.
pub(crate) fn document_identity(doc: &Value) -> String {
    match doc.get("kind") {
        None => "/v1alpha1".to_owned(),
        Some(kind) => {
            let api_version = doc
                .get("apiVersion")
                .map(Value::to_string)
                .unwrap_or_default();
            match doc.get("name") {
                Some(name) => format!("{api_version}/{kind}/{name}"),
                None => format!("{api_version}/{kind}"),
            }
        }
    }
}

/// Decodes one document strictly; returns the normalised document.
pub(crate) fn decode_document(doc: Value) -> Result<Value, LoadError> {
    let def = document_def(&doc)?;
    let kind = doc.get("kind").map(Value::to_string).unwrap_or_default();
    let mut problems = Vec::new();
    let decoded = schema::decode(doc, &Ty::Ref(def), "", &mut problems);
    if problems.is_empty() {
        Ok(decoded)
    } else if problems
        .iter()
        .all(|p| matches!(p, DecodeProblem::UnknownKey { .. }))
    {
        let mut tree = Value::Map(Vec::new());
        for problem in &problems {
            if let DecodeProblem::UnknownKey { path, value } = problem {
                insert_at_path(&mut tree, path, value.clone());
            }
        }
        Err(LoadError::UnknownKeys {
            unknown: yaml::emit_document(&tree),
            problems: problems.iter().map(to_issue).collect(),
        })
    } else {
        Err(LoadError::Decode {
            kind,
            def: def.replace("V1Alpha1", ""),
            problems: problems.iter().map(to_issue).collect(),
        })
    }
}

/// Puts `value` into `tree` at a dotted path whose segments may carry list indexes
/// (`machine.network.interfaces[0].foo`), building maps and lists on the way.
fn insert_at_path(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    let segments: Vec<&str> = path.split('.').collect();
    for (segment_idx, segment) in segments.iter().enumerate() {
        let last = segment_idx + 1 == segments.len();
        let (key, index) = match segment.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        if !matches!(node, Value::Map(_)) {
            *node = Value::Map(Vec::new());
        }
        if node.get(key).is_none() {
            let fresh = if index.is_some() {
                Value::Seq(Vec::new())
            } else {
                Value::Map(Vec::new())
            };
            node.insert(key, fresh);
        }
        let Some(child) = node.get_mut(key) else {
            return;
        };
        node = child;
        if let Some(index) = index {
            let Value::Seq(items) = node else { return };
            // Items are kept in order of first appearance; the index only groups keys.
            let position = index.min(items.len());
            if position == items.len() {
                items.push(Value::Map(Vec::new()));
            }
            node = &mut items[position];
        }
        if last {
            *node = value;
            return;
        }
    }
}

fn to_issue(problem: &DecodeProblem) -> DecodeIssue {
    DecodeIssue {
        path: problem.path().to_owned(),
        message: problem.message(),
    }
}

/// Emptiness as the loader sees it: nothing but identity scalars, and no `kind` (Talos loads
/// a typed document without fields, e.g. a `HostnameConfig` whose `auto` a patch deleted).
fn is_empty_document(doc: &Value) -> bool {
    if doc.get("kind").is_some() {
        return false;
    }
    doc.as_map().is_none_or(|m| {
        m.iter().all(|(k, v)| {
            matches!(k.as_str(), "version" | "kind" | "apiVersion" | "name")
                && !matches!(v, Value::Map(_) | Value::Seq(_))
        })
    })
}

impl MachineConfig {
    /// Loads a (multi-document) machine configuration strictly: unknown keys, values of the
    /// wrong type, unknown kinds and duplicate documents are errors.
    pub fn parse(text: &str) -> Result<MachineConfig, LoadError> {
        let raw = yaml::parse_documents(text).map_err(|e| LoadError::Syntax {
            message: crate::error_chain(&e).to_string(),
        })?;
        let mut documents: Vec<Value> = Vec::with_capacity(raw.len());
        for (document_idx, doc) in raw.into_iter().enumerate() {
            if !matches!(doc, Value::Map(_)) {
                return Err(LoadError::NotAMapping { document_idx });
            }
            if is_empty_document(&doc) {
                continue;
            }
            let doc = decode_document(doc)?;
            let identity = document_identity(&doc);
            if documents.iter().any(|d| document_identity(d) == identity) {
                return Err(LoadError::DuplicateDocument { identity });
            }
            documents.push(doc);
        }
        if documents.is_empty() {
            return Err(LoadError::Empty);
        }
        Ok(MachineConfig::from_documents(documents))
    }

    /// Builds a config from already-decoded documents, moving the v1alpha1 document first.
    pub(crate) fn from_documents(mut documents: Vec<Value>) -> MachineConfig {
        if let Some(idx) = documents.iter().position(|d| d.get("kind").is_none()) {
            let legacy = documents.remove(idx);
            documents.insert(0, legacy);
        }
        MachineConfig { documents }
    }

    /// The v1alpha1 document, when there is one.
    pub fn v1alpha1(&self) -> Option<&Value> {
        self.documents.first().filter(|d| d.get("kind").is_none())
    }

    /// All documents, v1alpha1 first.
    pub fn documents(&self) -> &[Value] {
        &self.documents
    }

    /// Serialises the config as talosctl does: canonical field order, documents joined by `---`.
    pub fn to_yaml(&self) -> String {
        let mut canonical: Vec<Value> = self.documents.iter().map(canonical_document).collect();
        if self.has_typed_kubernetes_documents() {
            omit_typed_layout_nulls(&mut canonical);
            return yaml::emit_documents_v4(&canonical);
        }
        yaml::emit_documents(&canonical)
    }

    /// Whether the config has Talos 1.14's typed Kubernetes documents (`KubeClusterConfig`,
    /// …), which no earlier Talos loads: such a config is written as Talos 1.14 writes it.
    pub(crate) fn has_typed_kubernetes_documents(&self) -> bool {
        self.documents.iter().any(|doc| {
            doc.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind.starts_with("Kube") && kind != "KubeSpanConfig")
        })
    }
}

/// Talos 1.14 no longer writes an unset `cluster.controlPlane` of the v1alpha1 document (the
/// endpoint moved to `KubeClusterConfig`); earlier releases write it as `null`.
fn omit_typed_layout_nulls(documents: &mut [Value]) {
    let Some(Value::Map(root)) = documents.first_mut() else {
        return;
    };
    for (key, value) in root.iter_mut() {
        if let (true, Value::Map(cluster)) = (key == "cluster", value) {
            cluster.retain(|(k, v)| !(k == "controlPlane" && matches!(v, Value::Null)));
        }
    }
}

/// A document in Talos's canonical form (field order, omitted empties, sorted free maps).
pub(crate) fn canonical_document(doc: &Value) -> Value {
    match document_def(doc) {
        Ok(def) => schema::canonicalize(doc, &Ty::Ref(def)),
        Err(_) => doc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_load_error(yaml: &str, expect: &str) {
        let error = MachineConfig::parse(yaml).unwrap_err();
        assert_eq!(error.to_string(), expect);
    }

    #[test]
    fn load_errors_read_like_talosctl() {
        check_load_error(
            "machine:\n  foo: bar\n  network:\n    interfaces:\n      - interface: eth0\n        bar: 1\n",
            "unknown keys found during decoding:\nmachine:\n    foo: bar\n    network:\n        interfaces:\n            - bar: 1\n",
        );
        check_load_error(
            "machine:\n  foo: bar\n  certSANs: {a: b}\n  token: [x]\n",
            "error decoding  to *v1alpha1.Config: yaml: unmarshal errors:\n  machine.certSANs: cannot unmarshal !!map into []string\n  machine.token: cannot unmarshal !!seq into string",
        );
        check_load_error(
            "apiVersion: v1alpha1\nkind: Nope\nfoo: 1\n",
            "\"Nope\" \"v1alpha1\": not registered",
        );
        check_load_error("foo: bar\n", "missing kind");
        check_load_error(
            "version: v1alpha1\ndebug: true\n---\nmachine: {}\n",
            "duplicate document /v1alpha1 is not allowed",
        );
    }
}
