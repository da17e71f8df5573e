//! Limits on the YAML and patches the engine accepts, so that a config save or a render
//! cannot exhaust memory (security review #16): a YAML text is refused when it is longer than
//! [`MAX_YAML_BYTES`], nests deeper than [`MAX_DEPTH`], or expands (every use of an alias
//! counting again) to more than [`MAX_NODES`] values or [`MAX_EXPANDED_BYTES`] of text; a
//! JSON6902 patch stops at the first operation whose result is larger than that.
//!
//! The YAML check is a pass over the parser's events that counts and keeps nothing, run before
//! the real parse, so an alias bomb costs at most the budget, never its expansion.

use std::cell::Cell;

use serde::de::{DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};

use super::yaml::Value;

/// The longest YAML text accepted (a config with large inline manifests fits).
pub const MAX_YAML_BYTES: usize = 4 << 20;
/// The most values (scalars, sequences and mappings, keys included) a YAML text or a patched
/// document may hold, aliases expanded.
pub const MAX_NODES: usize = 500_000;
/// The most text (strings, keys and other scalars) a YAML text or patched document may hold,
/// aliases expanded.
pub const MAX_EXPANDED_BYTES: usize = 16 << 20;
/// The deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;

/// Why a YAML text or a document is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The text is too long.
    #[error("the YAML is longer than {MAX_YAML_BYTES} bytes")]
    TextTooLong,
    /// Too many values (in a YAML text, each use of an alias counts).
    #[error("the document holds more than {MAX_NODES} values")]
    TooManyNodes,
    /// Too much text (in a YAML text, each use of an alias counts).
    #[error(
        "the document holds more than {MAX_EXPANDED_BYTES} bytes of text (each use of an alias counts)"
    )]
    TooMuchText,
    /// Nested too deeply.
    #[error("the document nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// What is left of the limits while a text or document is measured.
#[derive(Debug)]
struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            nodes: Cell::new(MAX_NODES),
            bytes: Cell::new(MAX_EXPANDED_BYTES),
        }
    }

    fn take(&self, bytes: usize, depth: usize) -> Result<(), LimitExceeded> {
        if depth > MAX_DEPTH {
            return Err(LimitExceeded::TooDeep);
        }
        let nodes = self
            .nodes
            .get()
            .checked_sub(1)
            .ok_or(LimitExceeded::TooManyNodes)?;
        let left = self
            .bytes
            .get()
            .checked_sub(bytes)
            .ok_or(LimitExceeded::TooMuchText)?;
        self.nodes.set(nodes);
        self.bytes.set(left);
        Ok(())
    }
}

/// Checks a YAML text (every document of it) against the limits without building it.
///
/// # Errors
/// The parser's own error when the text is not YAML, or one saying which limit it exceeds.
pub(crate) fn check_yaml(text: &str) -> Result<(), serde_norway::Error> {
    use serde::de::Error as _;
    if text.len() > MAX_YAML_BYTES {
        return Err(serde_norway::Error::custom(LimitExceeded::TextTooLong));
    }
    let budget = Budget::new();
    for document in serde_norway::Deserializer::from_str(text) {
        Counter {
            budget: &budget,
            depth: 0,
        }
        .deserialize(document)?;
    }
    Ok(())
}

/// How large a document is: its values, its text and its depth. Measuring stops early once
/// past a limit, so it costs at most the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Size {
    nodes: usize,
    bytes: usize,
    depth: usize,
}

impl Size {
    /// The size of `value`, or a size past the limits when it is larger.
    pub(crate) fn of(value: &Value) -> Size {
        fn walk(value: &Value, size: &mut Size, depth: usize) {
            if size.exceeded().is_some() {
                return;
            }
            size.nodes += 1;
            size.depth = size.depth.max(depth);
            match value {
                Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => size.bytes += 8,
                Value::Str(text) => size.bytes += text.len(),
                Value::Seq(items) => {
                    for item in items {
                        walk(item, size, depth + 1);
                    }
                }
                Value::Map(entries) => {
                    for (key, item) in entries {
                        size.nodes += 1;
                        size.bytes += key.len();
                        walk(item, size, depth + 1);
                    }
                }
            }
        }
        let mut size = Size::default();
        walk(value, &mut size, 0);
        size
    }

    /// An upper bound of the size of a document of size `self` once `value` (of size
    /// `added`) is put `at_depth` levels down in it.
    pub(crate) fn plus(self, added: Size, at_depth: usize) -> Size {
        Size {
            nodes: self.nodes.saturating_add(added.nodes),
            bytes: self.bytes.saturating_add(added.bytes),
            depth: self.depth.max(added.depth.saturating_add(at_depth)),
        }
    }

    /// The first limit this size is past, if any.
    pub(crate) fn exceeded(self) -> Option<LimitExceeded> {
        if self.nodes > MAX_NODES {
            Some(LimitExceeded::TooManyNodes)
        } else if self.bytes > MAX_EXPANDED_BYTES {
            Some(LimitExceeded::TooMuchText)
        } else if self.depth > MAX_DEPTH {
            Some(LimitExceeded::TooDeep)
        } else {
            None
        }
    }
}

/// Counts the values of one YAML node and everything under it.
struct Counter<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl Counter<'_> {
    fn child(&self) -> Counter<'_> {
        Counter {
            budget: self.budget,
            depth: self.depth + 1,
        }
    }

    fn take<E: serde::de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.budget.take(bytes, self.depth).map_err(E::custom)
    }
}

impl<'de> DeserializeSeed<'de> for Counter<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Counter<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.take(8)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.take(8)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.take(8)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.take(8)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        self.take(text.len())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.take(8)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.take(8)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.take(0)?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.take(0)?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): the tag is dropped when parsing, the value counts.
        let (_, variant) = data.variant::<serde::de::IgnoredAny>()?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_yaml_passes() {
        check_yaml(
            "machine:\n  type: worker\n  network:\n    hostname: a\nlist: [1, 2.5, true, ~, x]\n",
        )
        .unwrap();
        check_yaml("a: &a [1, 2]\nb: *a\n---\nc: !!str 3\n").unwrap();
        check_yaml("").unwrap();
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_expands() {
        let items = vec!["1"; 10_000].join(",");
        let uses = vec!["*a"; 10_000].join(",");
        let bomb = format!("a: &a [{items}]\nb: [{uses}]\n");
        let started = std::time::Instant::now();
        let error = check_yaml(&bomb).unwrap_err().to_string();
        assert!(error.contains("more than 500000 values"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let text = vec!["x"; 100_000].concat();
        let strings = format!("a: &a \"{text}\"\nb: [{}]\n", vec!["*a"; 500].join(","));
        let error = check_yaml(&strings).unwrap_err().to_string();
        assert!(error.contains("bytes of text"), "{error}");
    }

    #[test]
    fn deep_and_long_texts_are_refused() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let error = check_yaml(&deep).unwrap_err().to_string();
        assert!(
            error.contains("deeper") || error.contains("recursion"),
            "{error}"
        );
        let long = format!("a: \"{}\"\n", "x".repeat(MAX_YAML_BYTES));
        assert!(check_yaml(&long).is_err());
    }

    #[test]
    fn documents_are_measured() {
        let big = Value::Seq(vec![Value::str("x".repeat(1 << 20)); 20]);
        assert_eq!(Size::of(&big).exceeded(), Some(LimitExceeded::TooMuchText));
        let many = Value::Seq(vec![Value::Int(1); MAX_NODES]);
        assert_eq!(
            Size::of(&many).exceeded(),
            Some(LimitExceeded::TooManyNodes)
        );
        let small = Size::of(&Value::Seq(vec![Value::Int(1); 1_000]));
        assert_eq!(small.exceeded(), None);
        assert_eq!(
            small.plus(small, MAX_DEPTH).exceeded(),
            Some(LimitExceeded::TooDeep)
        );
    }
}
