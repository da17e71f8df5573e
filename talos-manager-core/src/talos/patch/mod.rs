//! Config patches as talosctl applies them: loading and kind detection, strategic merge
//! (`strategic.rs`, with `$patch: delete`) and RFC 6902 JSON patches (`json6902.rs`).
//!
//! An empty patch (empty, whitespace-only or comment-only text) is no patch at all. talosctl
//! 1.10 treats it as an empty JSON patch, which is a no-op there but fails on multi-document
//! configs (1.12); skipping it gives the 1.10 result everywhere.

mod json6902;
mod strategic;

pub use json6902::{JsonPatchError, JsonPatchOp};
pub use strategic::{DeleteSelector, MergeError};

use super::document::{self, LoadError, MachineConfig, document_identity};
use super::yaml::{self, Value};

/// A loaded patch.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// An empty patch: applying it changes nothing.
    Empty,
    /// A strategic merge patch: documents merged into the matching config documents.
    Strategic(StrategicPatch),
    /// An RFC 6902 JSON patch (only for single-document configs).
    Json(Vec<JsonPatchOp>),
}

/// The documents of a strategic merge patch and the `$patch: delete` directives found in them,
/// in the order Talos applies them: the v1alpha1 document's deletes, the v1alpha1 document,
/// then every other delete and document in the order the patch writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategicPatch {
    pub(crate) steps: Vec<PatchStep>,
}

/// One step of a strategic patch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatchStep {
    /// A `$patch: delete` directive.
    Delete(DeleteSelector),
    /// A document merged into the config document of the same identity, or added.
    Merge(Value),
}

/// A patch text that cannot be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchLoadError {
    /// The text is not a valid strategic patch (and not a JSON patch either).
    #[error("invalid strategic merge patch")]
    Strategic(#[source] LoadError),
    /// The text looks like a JSON patch but is not a valid one.
    #[error("invalid json patch")]
    Json(#[source] JsonPatchError),
    /// A `$patch: delete` directive used where Talos does not allow it.
    #[error("invalid delete directive")]
    Delete(#[source] strategic::DeleteDirectiveError),
}

/// Applying a patch to a config failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchApplyError {
    /// A strategic merge failed (e.g. mismatched free-form types).
    #[error("strategic merge failed")]
    Merge(#[source] MergeError),
    /// A `$patch: delete` target does not exist.
    #[error(
        "patch delete: path '{path}' in document '{document}': failed to delete path '{path}': lookup failed"
    )]
    DeleteTargetMissing {
        /// The dotted path that was to be deleted.
        path: String,
        /// The identity of the document.
        document: String,
    },
    /// A `$patch: delete` target inside a named document does not exist.
    #[error(
        "named patch delete: document {document}: failed to delete path '{path}': lookup failed"
    )]
    NamedDeleteTargetMissing {
        /// The dotted path that was to be deleted.
        path: String,
        /// `apiVersion/kind` of the document (Talos leaves the name out).
        document: String,
    },
    /// A `$patch: delete` names a document the config does not hold (before this patch).
    /// talosctl writes an empty `{}` document (or crashes) there; we refuse.
    #[error("patch delete: document '{document}' is not in the machine config")]
    DeleteDocumentMissing {
        /// `apiVersion/kind[/name]` of the document.
        document: String,
    },
    /// A JSON patch on a multi-document config.
    #[error("JSON6902 patches are not supported for multi-document machine configuration")]
    JsonOnMultiDocument,
    /// An RFC 6902 operation failed.
    #[error("failure applying rfc6902 patches to talos machine config")]
    Json(#[source] JsonPatchError),
    /// The JSON patch produced a config that does not fit the schema.
    #[error("patched config does not fit the schema")]
    Reload(#[source] LoadError),
}

/// Whether a text holds nothing but whitespace and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
}

impl Patch {
    /// Loads a patch, detecting its kind as talosctl does: a (multi-document) strategic merge
    /// patch first, then an RFC 6902 patch written as a JSON array or a YAML list of operations.
    pub fn parse(text: &str) -> Result<Patch, PatchLoadError> {
        if is_blank(text) {
            return Ok(Patch::Empty);
        }
        let strategic_error = match load_strategic(text) {
            Ok(patch) => return Ok(Patch::Strategic(patch)),
            Err(err) => err,
        };
        if let Ok(Value::Seq(items)) = yaml::parse(text) {
            return json6902::parse_ops(&items)
                .map(Patch::Json)
                .map_err(PatchLoadError::Json);
        }
        Err(strategic_error)
    }
}

fn load_strategic(text: &str) -> Result<StrategicPatch, PatchLoadError> {
    let raw = yaml::parse_documents(text).map_err(|e| {
        PatchLoadError::Strategic(LoadError::Syntax {
            message: crate::error_chain(&e).to_string(),
        })
    })?;
    let mut documents: Vec<Value> = Vec::new();
    // Talos's config container hands the v1alpha1 document's deletes out first, then the
    // v1alpha1 document, then the other documents and their deletes in order.
    let mut legacy_deletes = Vec::new();
    let mut legacy = None;
    let mut rest = Vec::new();
    for (document_idx, doc) in raw.into_iter().enumerate() {
        if !matches!(doc, Value::Map(_)) {
            return Err(PatchLoadError::Strategic(LoadError::NotAMapping {
                document_idx,
            }));
        }
        let (doc, doc_deletes) = strategic::extract_deletes(doc).map_err(PatchLoadError::Delete)?;
        for selector in doc_deletes {
            if selector.document == LEGACY_IDENTITY {
                legacy_deletes.push(PatchStep::Delete(selector));
            } else {
                rest.push(PatchStep::Delete(selector));
            }
        }
        let Some(doc) = doc.filter(|d| !d.is_empty_value()) else {
            continue;
        };
        let doc = document::decode_document(doc).map_err(PatchLoadError::Strategic)?;
        let identity = document_identity(&doc);
        if documents.iter().any(|d| document_identity(d) == identity) {
            return Err(PatchLoadError::Strategic(LoadError::DuplicateDocument {
                identity,
            }));
        }
        documents.push(doc.clone());
        if identity == LEGACY_IDENTITY {
            legacy = Some(PatchStep::Merge(doc));
        } else {
            rest.push(PatchStep::Merge(doc));
        }
    }
    let mut steps = legacy_deletes;
    steps.extend(legacy);
    steps.extend(rest);
    if steps.is_empty() {
        return Err(PatchLoadError::Strategic(LoadError::Empty));
    }
    Ok(StrategicPatch { steps })
}

/// The identity of the v1alpha1 document.
const LEGACY_IDENTITY: &str = "/v1alpha1";

/// `talosctl machineconfig patch` failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MachineConfigPatchError {
    /// The machine config does not load.
    #[error("the machine config does not load")]
    Config(#[source] LoadError),
    /// A patch does not load.
    #[error("patch {number} does not load")]
    LoadPatch {
        /// The patch's position, from 1.
        number: usize,
        /// Why.
        #[source]
        source: PatchLoadError,
    },
    /// A patch does not apply.
    #[error("patch {number} does not apply")]
    ApplyPatch {
        /// The patch's position, from 1.
        number: usize,
        /// Why.
        #[source]
        source: PatchApplyError,
    },
}

/// `talosctl machineconfig patch FILE --patch … -o -`: the config text patched by each patch
/// text in order (strategic merge or JSON6902, detected as talosctl does), in the canonical
/// form. Without a patch that changes anything the text comes back as given, as talosctl
/// prints it. Patches are not substituted: `${…}` is left as written.
pub fn patch_machine_config(
    config: &str,
    patches: &[String],
) -> Result<String, MachineConfigPatchError> {
    let mut machine_config =
        MachineConfig::parse(config).map_err(MachineConfigPatchError::Config)?;
    let patches = patches
        .iter()
        .enumerate()
        .map(|(idx, text)| {
            Patch::parse(text).map_err(|source| MachineConfigPatchError::LoadPatch {
                number: idx + 1,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if patches.iter().all(|p| *p == Patch::Empty) {
        return Ok(config.to_owned());
    }
    for (idx, patch) in patches.iter().enumerate() {
        machine_config.apply_patch(patch).map_err(|source| {
            MachineConfigPatchError::ApplyPatch {
                number: idx + 1,
                source,
            }
        })?;
    }
    Ok(machine_config.to_yaml())
}

impl MachineConfig {
    /// Applies patches in order, as talosctl's `--config-patch` does.
    pub fn apply_patches(&mut self, patches: &[Patch]) -> Result<(), PatchApplyError> {
        for patch in patches {
            self.apply_patch(patch)?;
        }
        Ok(())
    }

    /// Applies one patch.
    pub fn apply_patch(&mut self, patch: &Patch) -> Result<(), PatchApplyError> {
        match patch {
            Patch::Empty => Ok(()),
            Patch::Strategic(patch) => strategic::apply(self, patch),
            Patch::Json(ops) => {
                if self.documents.len() != 1 {
                    return Err(PatchApplyError::JsonOnMultiDocument);
                }
                let mut doc = document::canonical_document(&self.documents[0]);
                json6902::apply(&mut doc, ops).map_err(PatchApplyError::Json)?;
                let text = yaml::emit_document(&doc);
                *self = MachineConfig::parse(&text).map_err(PatchApplyError::Reload)?;
                Ok(())
            }
        }
    }
}
