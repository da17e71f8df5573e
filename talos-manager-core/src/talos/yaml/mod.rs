//! An ordered YAML value tree, its parser (on top of `serde_norway`) and go-yaml-style emitter.
//!
//! Talos configs are handled as [`Value`] trees rather than typed structs: the schema
//! (`super::schema`) supplies field order, types and merge rules, so one small tree type serves
//! every document kind Talos knows.

mod emit;

pub use emit::{emit_document, emit_documents, emit_documents_v4, emit_scalar, natural_less};

use std::fmt;

/// A YAML value whose mappings keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Value>),
    /// A mapping with string keys, in insertion order.
    Map(Mapping),
}

/// A mapping with string keys that keeps insertion order.
pub type Mapping = Vec<(String, Value)>;

impl Value {
    /// Builds a string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Looks a key up when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(map) => map.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Looks a key up mutably when this is a mapping.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Map(map) => map.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted path of mapping keys (`machine.network.hostname`).
    pub fn path(&self, path: &str) -> Option<&Value> {
        path.split('.').try_fold(self, |value, key| value.get(key))
    }

    /// The string content, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping, when this is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence, when this is one.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Sets `key` in a mapping, replacing an existing entry in place or appending a new one.
    /// Does nothing when this is not a mapping.
    pub fn insert(&mut self, key: &str, value: Value) {
        if let Value::Map(map) = self {
            match map.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => map.push((key.to_owned(), value)),
            }
        }
    }

    /// Removes `key` from a mapping and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Map(map) => {
                let idx = map.iter().position(|(k, _)| k == key)?;
                Some(map.remove(idx).1)
            }
            _ => None,
        }
    }

    /// go-yaml's tag name for this value's kind (`!!map`, `!!str`, …), used in error messages.
    pub fn yaml_tag(&self) -> &'static str {
        match self {
            Value::Null => "!!null",
            Value::Bool(_) => "!!bool",
            Value::Int(_) => "!!int",
            Value::Float(_) => "!!float",
            Value::Str(_) => "!!str",
            Value::Seq(_) => "!!seq",
            Value::Map(_) => "!!map",
        }
    }

    /// Whether this value is "empty" in go-yaml's `omitempty` sense.
    pub fn is_empty_value(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(_) => false,
            Value::Int(i) => *i == 0,
            Value::Float(f) => *f == 0.0,
            Value::Str(s) => s.is_empty(),
            Value::Seq(s) => s.is_empty(),
            Value::Map(m) => m.is_empty(),
        }
    }
}

impl fmt::Display for Value {
    /// Prints a scalar as its plain text; collections print as their go-yaml emission.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Seq(_) | Value::Map(_) => f.write_str(emit_document(self).trim_end()),
        }
    }
}

/// A YAML text that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid yaml")]
pub struct YamlError {
    #[source]
    source: serde_norway::Error,
}

/// Parses every document of a (possibly multi-document) YAML text.
///
/// Documents that are empty (only comments or whitespace) are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    use serde::Deserialize;
    super::limits::check_yaml(text).map_err(|source| YamlError { source })?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value =
            serde_norway::Value::deserialize(document).map_err(|source| YamlError { source })?;
        let value = from_norway(value);
        if value != Value::Null {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Parses a single-document YAML text (an empty text gives [`Value::Null`]).
pub fn parse(text: &str) -> Result<Value, YamlError> {
    super::limits::check_yaml(text).map_err(|source| YamlError { source })?;
    serde_norway::from_str::<serde_norway::Value>(text)
        .map(from_norway)
        .map_err(|source| YamlError { source })
}

fn from_norway(value: serde_norway::Value) -> Value {
    use serde_norway::Value as N;
    match value {
        N::Null => Value::Null,
        N::Bool(b) => Value::Bool(b),
        N::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        N::String(s) => Value::Str(s),
        N::Sequence(seq) => Value::Seq(seq.into_iter().map(from_norway).collect()),
        N::Mapping(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (key_string(from_norway(k)), from_norway(v)))
                .collect(),
        ),
        N::Tagged(tagged) => from_norway(tagged.value),
    }
}

fn key_string(key: Value) -> String {
    match key {
        Value::Str(s) => s,
        other => other.to_string(),
    }
}
