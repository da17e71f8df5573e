//! RFC 6902 JSON patches (`add`, `remove`, `replace`, `move`, `copy`, `test`) on a [`Value`].

use super::super::yaml::Value;
use crate::talos::limits::{LimitExceeded, Size};

/// One RFC 6902 operation.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonPatchOp {
    /// Adds a value (a map key, or a list item before an index or at the end with `-`).
    Add {
        /// JSON pointer.
        path: String,
        /// The value.
        value: Value,
    },
    /// Removes a value.
    Remove {
        /// JSON pointer.
        path: String,
    },
    /// Replaces an existing value.
    Replace {
        /// JSON pointer.
        path: String,
        /// The value.
        value: Value,
    },
    /// Moves a value.
    Move {
        /// Pointer to the value moved.
        from: String,
        /// Where it goes.
        path: String,
    },
    /// Copies a value.
    Copy {
        /// Pointer to the value copied.
        from: String,
        /// Where the copy goes.
        path: String,
    },
    /// Fails unless the value equals the given one.
    Test {
        /// JSON pointer.
        path: String,
        /// The expected value.
        value: Value,
    },
    /// An operation Talos loads but cannot apply (an unknown `op`, a missing field): as in
    /// talosctl it fails only when applied, after the multi-document check.
    Invalid(JsonPatchError),
}

/// A JSON patch that is malformed or does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// An operation is not a mapping.
    #[error("operation {op_idx} is not a mapping")]
    NotAnOperation {
        /// Index of the operation.
        op_idx: usize,
    },
    /// An operation lacks a field it needs.
    #[error("operation {op_idx} has no '{field}'")]
    MissingField {
        /// Index of the operation.
        op_idx: usize,
        /// The missing field.
        field: &'static str,
    },
    /// An unknown `op`.
    #[error("unexpected kind of operation: {op}")]
    UnknownOp {
        /// The `op` given.
        op: String,
    },
    /// A pointer that is not `""` or does not start with `/`.
    #[error("invalid json pointer: {pointer}")]
    InvalidPointer {
        /// The pointer.
        pointer: String,
    },
    /// The pointer leads nowhere.
    #[error("{op} operation does not apply: doc is missing path: \"{path}\": missing value")]
    MissingPath {
        /// The operation.
        op: &'static str,
        /// The pointer.
        path: String,
    },
    /// An operation made the document larger than the engine's limits
    /// ([`crate::talos::limits`]).
    #[error("operation {op_idx} makes the document too large: {limit}")]
    TooLarge {
        /// Index of the operation.
        op_idx: usize,
        /// The limit exceeded.
        limit: LimitExceeded,
    },
    /// A `test` operation failed.
    #[error("testing value {path} failed: test failed")]
    TestFailed {
        /// The pointer.
        path: String,
    },
}

/// Reads operations from a parsed JSON array or YAML list. Only an item that is not a mapping
/// fails here; an operation that cannot be applied becomes [`JsonPatchOp::Invalid`].
pub(crate) fn parse_ops(items: &[Value]) -> Result<Vec<JsonPatchOp>, JsonPatchError> {
    items
        .iter()
        .enumerate()
        .map(|(op_idx, item)| {
            if !matches!(item, Value::Map(_)) {
                return Err(JsonPatchError::NotAnOperation { op_idx });
            }
            Ok(parse_op(op_idx, item).unwrap_or_else(JsonPatchOp::Invalid))
        })
        .collect()
}

/// Reads one operation from a mapping.
fn parse_op(op_idx: usize, item: &Value) -> Result<JsonPatchOp, JsonPatchError> {
    let text = |field: &'static str| {
        item.get(field)
            .map(Value::to_string)
            .ok_or(JsonPatchError::MissingField { op_idx, field })
    };
    let value = || {
        item.get("value")
            .cloned()
            .ok_or(JsonPatchError::MissingField {
                op_idx,
                field: "value",
            })
    };
    let op = text("op")?;
    Ok(match op.as_str() {
        "add" => JsonPatchOp::Add {
            path: text("path")?,
            value: value()?,
        },
        "remove" => JsonPatchOp::Remove {
            path: text("path")?,
        },
        "replace" => JsonPatchOp::Replace {
            path: text("path")?,
            value: value()?,
        },
        "move" => JsonPatchOp::Move {
            from: text("from")?,
            path: text("path")?,
        },
        "copy" => JsonPatchOp::Copy {
            from: text("from")?,
            path: text("path")?,
        },
        "test" => JsonPatchOp::Test {
            path: text("path")?,
            value: value()?,
        },
        _ => return Err(JsonPatchError::UnknownOp { op }),
    })
}

fn split_pointer(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(JsonPatchError::InvalidPointer {
            pointer: pointer.to_owned(),
        });
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token == "-" {
        return allow_end.then_some(len);
    }
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    let idx: usize = token.parse().ok()?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (idx <= limit && (allow_end || len > 0)).then_some(idx)
}

fn get_mut<'a>(value: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(value, |value, token| match value {
        Value::Map(_) => value.get_mut(token),
        Value::Seq(items) => {
            let idx = index(token, items.len(), false)?;
            items.get_mut(idx)
        }
        _ => None,
    })
}

fn add(
    doc: &mut Value,
    pointer: &str,
    value: Value,
    op: &'static str,
) -> Result<(), JsonPatchError> {
    let tokens = split_pointer(pointer)?;
    let missing = || JsonPatchError::MissingPath {
        op,
        path: pointer.to_owned(),
    };
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parents).ok_or_else(missing)? {
        parent @ Value::Map(_) => parent.insert(last, value),
        Value::Seq(items) => {
            let idx = index(last, items.len(), true).ok_or_else(missing)?;
            items.insert(idx, value);
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(doc: &mut Value, pointer: &str, op: &'static str) -> Result<Value, JsonPatchError> {
    let tokens = split_pointer(pointer)?;
    let missing = || JsonPatchError::MissingPath {
        op,
        path: pointer.to_owned(),
    };
    let (last, parents) = tokens.split_last().ok_or_else(missing)?;
    match get_mut(doc, parents).ok_or_else(missing)? {
        parent @ Value::Map(_) => parent.remove(last).ok_or_else(missing),
        Value::Seq(items) => {
            let idx = index(last, items.len(), false).ok_or_else(missing)?;
            Ok(items.remove(idx))
        }
        _ => Err(missing()),
    }
}

/// Applies the operations in order; stops at the first that does not apply.
pub(crate) fn apply(doc: &mut Value, ops: &[JsonPatchOp]) -> Result<(), JsonPatchError> {
    // An upper bound of the document's size, made exact again when it passes a limit: the
    // result of each operation stays within the engine's limits (`copy` doubles a document).
    let mut size = Size::of(doc);
    for (op_idx, op) in ops.iter().enumerate() {
        match op {
            JsonPatchOp::Invalid(error) => return Err(error.clone()),
            JsonPatchOp::Add { path, value } => {
                size = size.plus(Size::of(value), path.matches('/').count());
                add(doc, path, value.clone(), "add")?;
            }
            JsonPatchOp::Remove { path } => {
                remove(doc, path, "remove")?;
            }
            JsonPatchOp::Replace { path, value } => {
                let tokens = split_pointer(path)?;
                let target = get_mut(doc, &tokens).ok_or_else(|| JsonPatchError::MissingPath {
                    op: "replace",
                    path: path.clone(),
                })?;
                size = size.plus(Size::of(value), tokens.len());
                *target = value.clone();
            }
            JsonPatchOp::Move { from, path } => {
                let value = remove(doc, from, "move")?;
                size = size.plus(Size::of(&value), path.matches('/').count());
                add(doc, path, value, "move")?;
            }
            JsonPatchOp::Copy { from, path } => {
                let tokens = split_pointer(from)?;
                let source = get_mut(doc, &tokens).ok_or_else(|| JsonPatchError::MissingPath {
                    op: "copy",
                    path: from.clone(),
                })?;
                size = size.plus(Size::of(source), path.matches('/').count());
                if size.exceeded().is_some() {
                    // Measure before cloning: the copy itself is what would not fit.
                    size = Size::of(doc)
                        .plus(Size::of(source_of(doc, &tokens)), path.matches('/').count());
                    if let Some(limit) = size.exceeded() {
                        return Err(JsonPatchError::TooLarge { op_idx, limit });
                    }
                }
                let value = source_of(doc, &tokens).clone();
                add(doc, path, value, "copy")?;
            }
            JsonPatchOp::Test { path, value } => {
                let tokens = split_pointer(path)?;
                if get_mut(doc, &tokens).map(|v| &*v) != Some(value) {
                    return Err(JsonPatchError::TestFailed { path: path.clone() });
                }
            }
        }
        if size.exceeded().is_some() {
            size = Size::of(doc);
            if let Some(limit) = size.exceeded() {
                return Err(JsonPatchError::TooLarge { op_idx, limit });
            }
        }
    }
    Ok(())
}

/// The value at `tokens`, which was found there just before.
fn source_of<'a>(doc: &'a mut Value, tokens: &[String]) -> &'a Value {
    get_mut(doc, tokens).map_or(&Value::Null, |value| &*value)
}
