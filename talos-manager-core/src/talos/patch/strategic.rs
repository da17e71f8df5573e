//! Strategic merge as Talos does it: documents matched by identity, structs merged field by
//! field, most lists appended, a few merged by key or replaced, and `$patch: delete` directives.

use super::super::document::{MachineConfig, document_def, document_identity};
use super::super::schema::{Schema, Ty};
use super::super::yaml::Value;
use super::{PatchApplyError, PatchStep, StrategicPatch};

/// A `$patch: delete` directive, taken out of a patch document when it is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteSelector {
    /// Identity of the document it applies to (`/v1alpha1`, `v1alpha1/VolumeConfig/EPHEMERAL`).
    pub document: String,
    /// What to delete.
    pub target: DeleteTarget,
}

/// What a `$patch: delete` directive removes.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteTarget {
    /// The whole document.
    Document,
    /// A field or map key, by its chain of keys.
    Path(Vec<String>),
    /// The first item of the list at `path` whose `key` equals `value`.
    ListItem {
        /// Chain of keys to the list.
        path: Vec<String>,
        /// The item field compared.
        key: String,
        /// The value it must have.
        value: String,
    },
}

/// A `$patch: delete` directive in a place Talos does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteDirectiveError {
    /// A directive inside a list item that is itself inside a list, or mixed with other keys.
    #[error("cannot delete an inner key in '{path}'")]
    InnerKey {
        /// Dotted path of the offending mapping.
        path: String,
    },
    /// A whole-document delete without `apiVersion`.
    #[error("missing apiVersion in document for which $patch: delete is used")]
    MissingApiVersion,
    /// A whole-document delete of the v1alpha1 document.
    #[error("can't delete the root of the legacy document")]
    LegacyRoot,
}

/// A merge that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Free-form values of different kinds under the same key.
    #[error("merge type mismatch at {path}: left {left} right {right}")]
    TypeMismatch {
        /// Dotted path of the value.
        path: String,
        /// Kind of the config's value.
        left: &'static str,
        /// Kind of the patch's value.
        right: &'static str,
    },
}

fn is_delete_directive(value: &Value) -> bool {
    value.get("$patch").and_then(Value::as_str) == Some("delete")
}

/// Takes the `$patch: delete` directives out of a patch document. Returns what is left of the
/// document (`None` when nothing is) and the directives in order of appearance.
pub(crate) fn extract_deletes(
    mut doc: Value,
) -> Result<(Option<Value>, Vec<DeleteSelector>), DeleteDirectiveError> {
    let identity = document_identity(&doc);
    if is_delete_directive(&doc) {
        if doc.get("kind").is_none() {
            return Err(DeleteDirectiveError::LegacyRoot);
        }
        if doc.get("apiVersion").is_none() {
            return Err(DeleteDirectiveError::MissingApiVersion);
        }
        let selector = DeleteSelector {
            document: identity,
            target: DeleteTarget::Document,
        };
        return Ok((None, vec![selector]));
    }
    let mut selectors = Vec::new();
    walk(&mut doc, &mut Vec::new(), false, &identity, &mut selectors)?;
    Ok((Some(doc), selectors))
}

fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    inside_list: bool,
    identity: &str,
    selectors: &mut Vec<DeleteSelector>,
) -> Result<(), DeleteDirectiveError> {
    match value {
        Value::Map(map) => {
            let mut idx = 0;
            while idx < map.len() {
                let (key, child) = &mut map[idx];
                path.push(key.clone());
                if is_delete_directive(child) {
                    if inside_list || child.as_map().is_some_and(|m| m.len() > 1) {
                        return Err(DeleteDirectiveError::InnerKey {
                            path: path.join("."),
                        });
                    }
                    selectors.push(DeleteSelector {
                        document: identity.to_owned(),
                        target: DeleteTarget::Path(path.clone()),
                    });
                    path.pop();
                    map.remove(idx);
                    continue;
                }
                let was_empty = child.is_empty_value();
                walk(child, path, inside_list, identity, selectors)?;
                path.pop();
                if !was_empty && matches!(child, Value::Map(m) if m.is_empty()) {
                    map.remove(idx);
                    continue;
                }
                idx += 1;
            }
        }
        Value::Seq(items) => {
            let mut idx = 0;
            while idx < items.len() {
                if is_delete_directive(&items[idx]) {
                    if inside_list {
                        return Err(DeleteDirectiveError::InnerKey {
                            path: path.join("."),
                        });
                    }
                    let item = items.remove(idx);
                    let matcher = item
                        .as_map()
                        .and_then(|m| m.iter().find(|(k, _)| k != "$patch"))
                        .map(|(k, v)| (k.clone(), v.to_string()));
                    let Some((key, value)) = matcher else {
                        return Err(DeleteDirectiveError::InnerKey {
                            path: path.join("."),
                        });
                    };
                    selectors.push(DeleteSelector {
                        document: identity.to_owned(),
                        target: DeleteTarget::ListItem {
                            path: path.clone(),
                            key,
                            value,
                        },
                    });
                    continue;
                }
                walk(&mut items[idx], path, true, identity, selectors)?;
                idx += 1;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies a strategic patch as Talos does: each step in order; a document merges into the
/// config document of the same identity (`apiVersion/kind[/name]`) that the config held before
/// this patch, or is added; a delete applies only to such a document.
pub(crate) fn apply(
    config: &mut MachineConfig,
    patch: &StrategicPatch,
) -> Result<(), PatchApplyError> {
    let mut before: Vec<String> = config.documents.iter().map(document_identity).collect();
    for step in &patch.steps {
        match step {
            PatchStep::Delete(selector) => {
                if !before.contains(&selector.document) {
                    // Talos 1.14 skips a delete whose document is not in the config.
                    if config.has_typed_kubernetes_documents() {
                        continue;
                    }
                    return Err(PatchApplyError::DeleteDocumentMissing {
                        document: selector.document.clone(),
                    });
                }
                if apply_delete(config, selector)? {
                    before.retain(|identity| *identity != selector.document);
                }
            }
            PatchStep::Merge(patch_doc) => {
                let identity = document_identity(patch_doc);
                let existing = config
                    .documents
                    .iter_mut()
                    .find(|d| document_identity(d) == identity)
                    .filter(|_| before.contains(&identity));
                match existing {
                    Some(doc) => {
                        let def = document_def(doc).unwrap_or(super::super::schema::LEGACY_DEF);
                        merge(doc, patch_doc, &Ty::Ref(def), "").map_err(PatchApplyError::Merge)?;
                    }
                    None => config.documents.push(patch_doc.clone()),
                }
            }
        }
    }
    *config = MachineConfig::from_documents(std::mem::take(&mut config.documents));
    Ok(())
}

/// Applies one delete to a document the config holds; returns whether the whole document went.
fn apply_delete(
    config: &mut MachineConfig,
    selector: &DeleteSelector,
) -> Result<bool, PatchApplyError> {
    let missing = |path: &[String]| match selector.document.splitn(3, '/').collect::<Vec<_>>()[..] {
        [api_version, kind, _name] => PatchApplyError::NamedDeleteTargetMissing {
            path: path.join("."),
            document: format!("{api_version}/{kind}"),
        },
        _ => PatchApplyError::DeleteTargetMissing {
            path: path.join("."),
            document: selector.document.clone(),
        },
    };
    let doc_idx = config
        .documents
        .iter()
        .position(|d| document_identity(d) == selector.document);
    let Some(doc_idx) = doc_idx else {
        // Talos 1.14 skips a delete whose document is not in the config.
        if config.has_typed_kubernetes_documents() {
            return Ok(false);
        }
        return Err(PatchApplyError::DeleteDocumentMissing {
            document: selector.document.clone(),
        });
    };
    match &selector.target {
        DeleteTarget::Document => {
            config.documents.remove(doc_idx);
            return Ok(true);
        }
        DeleteTarget::Path(path) => {
            let (last, parents) = path.split_last().ok_or_else(|| missing(path))?;
            let struct_field = is_struct_field(&config.documents[doc_idx], parents, last);
            if unset_value_struct(&config.documents[doc_idx], parents, last) {
                return Ok(false);
            }
            let parent =
                lookup_mut(&mut config.documents[doc_idx], parents).ok_or_else(|| missing(path))?;
            // Talos zeroes a field of a typed struct whether or not it is set; only a key of
            // a free-form map must exist (the differential test found a second delete of
            // `cluster.discovery` succeeding).
            if parent.remove(last).is_none() && !struct_field {
                return Err(missing(path));
            }
        }
        DeleteTarget::ListItem { path, key, value } => {
            let list =
                lookup_mut(&mut config.documents[doc_idx], path).ok_or_else(|| missing(path))?;
            let Value::Seq(items) = list else {
                return Err(missing(path));
            };
            let idx = items
                .iter()
                .position(|item| item.get(key).is_some_and(|v| v.to_string() == *value))
                .ok_or_else(|| missing(path))?;
            items.remove(idx);
        }
    }
    Ok(false)
}

/// Whether `parents.last` names a field of a typed struct (not a free-form map key) in `doc`.
fn is_struct_field(doc: &Value, parents: &[String], last: &str) -> bool {
    let schema = Schema::get();
    let mut ty = Ty::Ref(document_def(doc).unwrap_or(super::super::schema::LEGACY_DEF));
    for key in parents {
        ty = match ty {
            Ty::Ref(name) => match schema.def(name).and_then(|def| def.field(key)) {
                Some(field) => field.ty.clone(),
                None => return false,
            },
            Ty::Map(inner) => *inner,
            _ => return false,
        };
    }
    matches!(ty, Ty::Ref(name) if schema.def(name).is_some_and(|def| def.field(last).is_some()))
}

/// Whether `parents` leads through a struct-valued (not pointer) field that `doc` leaves unset
/// to a struct field `last`: Talos zeroes the field inside the zero struct, so the delete
/// succeeds and changes nothing (the differential test found it:
/// `provisioning.maxSize` of a `UserVolumeConfig` without `provisioning`).
fn unset_value_struct(doc: &Value, parents: &[String], last: &str) -> bool {
    let schema = Schema::get();
    let mut def = document_def(doc).unwrap_or(super::super::schema::LEGACY_DEF);
    let mut value = Some(doc);
    let mut crossed_unset = false;
    for key in parents {
        let Some(Ty::Ref(next)) = schema.def(def).and_then(|d| d.field(key)).map(|f| &f.ty) else {
            return false;
        };
        value = value.and_then(|v| v.get(key));
        if value.is_none() {
            if !value_struct_field(def, key) {
                return false;
            }
            crossed_unset = true;
        }
        def = next;
    }
    crossed_unset && schema.def(def).is_some_and(|d| d.field(last).is_some())
}

/// Struct-valued (not pointer) fields of the block documents, whose unset value is a zero
/// struct rather than nothing (Talos's `block` package: provisioning, filesystem, encryption,
/// mount, discovery and their selectors).
fn value_struct_field(def: &str, field: &str) -> bool {
    value_struct(def, field)
        || matches!(
            (def, field),
            (
                "block.UserVolumeConfigV1Alpha1",
                "filesystem" | "encryption" | "mount"
            ) | (
                "block.VolumeConfigV1Alpha1"
                    | "block.RawVolumeConfigV1Alpha1"
                    | "block.SwapVolumeConfigV1Alpha1",
                "encryption"
            ) | ("block.VolumeConfigV1Alpha1", "mount")
                | ("block.ExistingVolumeConfigV1Alpha1", "mount")
        )
}

fn lookup_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, key| value.get_mut(key))
}

/// How a list field merges.
enum ListRule {
    Append,
    Replace,
    /// Items with equal values of this field merge; others are appended.
    ByKey(&'static str),
    /// `machine.network.interfaces`: by `interface`, else by an equal `deviceSelector`.
    Interfaces,
}

fn list_rule(def: &str, field: &str) -> ListRule {
    match (def, field) {
        ("v1alpha1.NetworkConfig", "interfaces") => ListRule::Interfaces,
        ("v1alpha1.Device", "vlans") => ListRule::ByKey("vlanId"),
        ("v1alpha1.APIServerConfig", "admissionControl") => ListRule::ByKey("name"),
        ("extensions.ServiceConfigV1Alpha1", "configFiles") => ListRule::ByKey("mountPath"),
        ("v1alpha1.ClusterNetworkConfig", "podSubnets" | "serviceSubnets")
        | ("network.RuleConfigV1Alpha1", "ingress")
        | ("network.RulePortSelector", "ports") => ListRule::Replace,
        _ => ListRule::Append,
    }
}

/// Fields replaced wholesale instead of merged.
fn replaced_field(def: &str, field: &str) -> bool {
    matches!(
        (def, field),
        ("v1alpha1.APIServerConfig", "auditPolicy")
            | ("block.ProvisioningSpec", "minSize" | "maxSize")
    )
}

/// Fields whose Go type merges by replacing itself with the patch's value, even an absent
/// (zero) one: CEL expressions and `ByteSize`. Talos merges every struct field of a document
/// it merges, so a patch of the document that leaves them out clears them (the differential
/// test found it: a `VolumeConfig` patch without `diskSelector` drops the selector).
fn always_replaced(def: &str, field: &str) -> bool {
    matches!(
        (def, field),
        (
            "block.DiskSelector"
                | "block.VolumeSelector"
                | "network.LinkSelector"
                | "runtime.DiskSelectorSpec",
            "match"
        ) | ("block.ProvisioningSpec", "minSize")
            | (
                "runtime.OOMV1Alpha1",
                "triggerExpression" | "cgroupRankingExpression"
            )
    )
}

/// Struct-valued (not pointer) fields on the way to an [`always_replaced`] field: Talos
/// merges them even when the patch leaves them out.
fn value_struct(def: &str, field: &str) -> bool {
    matches!(
        (def, field),
        (
            "block.VolumeConfigV1Alpha1"
                | "block.UserVolumeConfigV1Alpha1"
                | "block.RawVolumeConfigV1Alpha1"
                | "block.SwapVolumeConfigV1Alpha1",
            "provisioning"
        ) | (
            "block.ProvisioningSpec" | "runtime.ProvisioningSpec",
            "diskSelector"
        ) | ("runtime.UnattendedInstallConfigV1Alpha1", "provisioning")
            | ("block.ExistingVolumeConfigV1Alpha1", "discovery")
            | ("block.VolumeDiscoverySpec", "volumeSelector")
            | ("network.LinkAliasConfigV1Alpha1", "selector")
    )
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges `right` (the patch) into `left` (the config), both decoded as `ty`.
pub(crate) fn merge(
    left: &mut Value,
    right: &Value,
    ty: &Ty,
    path: &str,
) -> Result<(), MergeError> {
    if matches!(right, Value::Null) {
        return Ok(());
    }
    if matches!(left, Value::Null) {
        *left = right.clone();
        return Ok(());
    }
    match ty {
        Ty::Ref(name) => {
            let Some(def) = Schema::get().def(name) else {
                return merge_free(left, right, path);
            };
            let Some(entries) = right.as_map() else {
                return Ok(());
            };
            for (key, right_value) in entries {
                let Some(field) = def.field(key) else {
                    continue;
                };
                let field_path = join(path, key);
                let Some(left_value) = left.get_mut(key) else {
                    left.insert(key, right_value.clone());
                    continue;
                };
                if (def.name, key.as_str()) == ("v1alpha1.ControlPlaneConfig", "endpoint")
                    && let (Some(l), Some(r)) = (left_value.as_str(), right_value.as_str())
                {
                    *left_value = Value::Str(merge_url(l, r));
                    continue;
                }
                if replaced_field(def.name, key) {
                    if !right_value.is_empty_value() {
                        *left_value = right_value.clone();
                    }
                    continue;
                }
                match (&field.ty, list_rule(def.name, key)) {
                    (Ty::List(inner), rule) if !matches!(rule, ListRule::Append) => {
                        merge_list(left_value, right_value, inner, &rule, &field_path)?;
                    }
                    (ty, _) => merge(left_value, right_value, ty, &field_path)?,
                }
            }
            for field in &def.fields {
                if right.get(field.name).is_some() {
                    continue;
                }
                if always_replaced(def.name, field.name) {
                    left.remove(field.name);
                } else if value_struct(def.name, field.name)
                    && let Some(left_value) = left.get_mut(field.name)
                {
                    let empty = Value::Map(Vec::new());
                    merge(left_value, &empty, &field.ty, &join(path, field.name))?;
                    if left_value.is_empty_value() {
                        left.remove(field.name);
                    }
                }
            }
            Ok(())
        }
        Ty::List(_) => {
            if let (Value::Seq(left_items), Value::Seq(right_items)) = (left, right) {
                left_items.extend(right_items.iter().cloned());
            }
            Ok(())
        }
        Ty::Map(inner) => {
            let Some(entries) = right.as_map() else {
                return Ok(());
            };
            for (key, right_value) in entries {
                match left.get_mut(key) {
                    Some(left_value) => merge(left_value, right_value, inner, &join(path, key))?,
                    None => left.insert(key, right_value.clone()),
                }
            }
            Ok(())
        }
        Ty::Any => merge_free(left, right, path),
        Ty::Bool => {
            *left = right.clone();
            Ok(())
        }
        Ty::Str | Ty::Int | Ty::Num | Ty::IntStr => {
            // A zero value in a patch never clears a scalar.
            if !right.is_empty_value() {
                *left = right.clone();
            }
            Ok(())
        }
    }
}

fn merge_list(
    left: &mut Value,
    right: &Value,
    inner: &Ty,
    rule: &ListRule,
    path: &str,
) -> Result<(), MergeError> {
    let Some(right_items) = right.as_seq() else {
        return Ok(());
    };
    if right_items.is_empty() {
        return Ok(());
    }
    let Value::Seq(left_items) = left else {
        *left = right.clone();
        return Ok(());
    };
    match rule {
        ListRule::Replace => *left_items = right_items.to_vec(),
        ListRule::Append => left_items.extend(right_items.iter().cloned()),
        ListRule::ByKey(key) => {
            for item in right_items {
                let found = item
                    .get(key)
                    .filter(|v| !v.is_empty_value())
                    .and_then(|wanted| left_items.iter_mut().find(|l| l.get(key) == Some(wanted)));
                match found {
                    Some(target) => merge(target, item, inner, path)?,
                    None => left_items.push(item.clone()),
                }
            }
        }
        ListRule::Interfaces => {
            for item in right_items {
                let by_name = item.get("interface").filter(|v| !v.is_empty_value());
                let selector = item
                    .get("deviceSelector")
                    .filter(|s| s.get("physical").is_none());
                let found = left_items.iter_mut().find(|l| match (by_name, selector) {
                    (Some(name), _) => l.get("interface") == Some(name),
                    (None, Some(selector)) => l.get("deviceSelector") == Some(selector),
                    (None, None) => false,
                });
                match found {
                    Some(target) => merge(target, item, inner, path)?,
                    None => left_items.push(item.clone()),
                }
            }
        }
    }
    Ok(())
}

/// Merges free-form values: maps key-wise, lists appended, scalars replaced.
fn merge_free(left: &mut Value, right: &Value, path: &str) -> Result<(), MergeError> {
    match (&mut *left, right) {
        (Value::Map(_), Value::Map(entries)) => {
            for (key, right_value) in entries {
                match left.get_mut(key) {
                    Some(left_value) if !matches!(left_value, Value::Null) => {
                        merge_free(left_value, right_value, &join(path, key))?;
                    }
                    _ => left.insert(key, right_value.clone()),
                }
            }
            Ok(())
        }
        (Value::Seq(left_items), Value::Seq(right_items)) => {
            left_items.extend(right_items.iter().cloned());
            Ok(())
        }
        (Value::Map(_) | Value::Seq(_), _) | (_, Value::Map(_) | Value::Seq(_)) => {
            Err(MergeError::TypeMismatch {
                path: path.to_owned(),
                left: left.yaml_tag(),
                right: right.yaml_tag(),
            })
        }
        (_, scalar) => {
            *left = scalar.clone();
            Ok(())
        }
    }
}

/// Talos merges the endpoint as a parsed URL, field by field: a patch URL without a path
/// keeps the config URL's path (`https://a:1/` + `https://b` gives `https://b/`).
fn merge_url(left: &str, right: &str) -> String {
    let split = |url: &str| -> (usize, bool) {
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        match url[after_scheme..].find(['/', '?', '#']) {
            Some(i) => (after_scheme + i, true),
            None => (url.len(), false),
        }
    };
    let (right_base_end, right_has_rest) = split(right);
    if right_has_rest {
        return right.to_owned();
    }
    let (left_base_end, _) = split(left);
    format!("{}{}", &right[..right_base_end], &left[left_base_end..])
}

#[cfg(test)]
mod tests {
    use super::super::super::yaml::{self, Value};
    use super::*;

    /// Equality of parsed YAML regardless of mapping key order (the expected files of these
    /// cases are compared as structs by Talos's tests).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
            }
            (Value::Seq(x), Value::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
            }
            (x, y) => x == y,
        }
    }

    #[test]
    fn strategic_merge_cases_match_talos() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/talos/strategic-merge");
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        assert!(cases.len() >= 6);
        for case in cases {
            let read = |name: &str| {
                yaml::parse(&std::fs::read_to_string(case.join(name)).unwrap()).unwrap()
            };
            let (mut left, right, expected) =
                (read("left.yaml"), read("right.yaml"), read("expected.yaml"));
            merge(
                &mut left,
                &right,
                &Ty::Ref(super::super::super::schema::LEGACY_DEF),
                "",
            )
            .unwrap();
            assert!(
                same(&left, &expected),
                "{}: got\n{}",
                case.display(),
                yaml::emit_document(&left)
            );
        }
    }

    #[test]
    fn endpoint_merges_like_a_url() {
        assert_eq!(
            merge_url("https://127.0.0.1:6643/", "https://10.0.0.1"),
            "https://10.0.0.1/"
        );
        assert_eq!(merge_url("https://a:1/x", "https://b:2/y"), "https://b:2/y");
        assert_eq!(merge_url("https://a:1", "https://b:2"), "https://b:2");
    }
}
