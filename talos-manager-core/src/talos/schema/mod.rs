//! The machine-configuration schema: field order, field types, and the emission rules of Talos.
//!
//! `schema.txt` is distilled from Talos's published JSON schemas (v1.10 … v1.14, MPL-2.0; see
//! `talos-manager-core/tools/distill-schema.py` and `tests/data/talos/PROVENANCE.md`). Each
//! `def` lists a document or struct's fields in the order Talos declares — and so emits — them.
//! Talos behaviour the JSON schema does not carry (which fields are always written, which lists
//! merge by key) is kept in the tables below.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::yaml::{Value, natural_less};

/// The type of a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Str,
    Bool,
    Int,
    Num,
    /// An integer or a string (port ranges).
    IntStr,
    /// A free-form value (`map[string]any`, `any`).
    Any,
    List(Box<Ty>),
    /// A map with free string keys.
    Map(Box<Ty>),
    /// A struct, by its definition name.
    Ref(&'static str),
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
}

#[derive(Debug)]
pub(crate) struct Def {
    pub(crate) name: &'static str,
    pub(crate) fields: Vec<Field>,
}

impl Def {
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

pub(crate) struct Schema {
    defs: HashMap<&'static str, Def>,
    kinds: HashMap<&'static str, &'static str>,
}

/// The definition name of the legacy (kind-less) v1alpha1 document.
pub(crate) const LEGACY_DEF: &str = "v1alpha1.Config";

impl Schema {
    pub(crate) fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(include_str!("schema.txt")))
    }

    fn parse(text: &'static str) -> Schema {
        let mut defs = HashMap::new();
        let mut kinds = HashMap::new();
        let mut current: Option<Def> = None;
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            if let Some(header) = line.strip_prefix("def ") {
                if let Some(def) = current.take() {
                    defs.insert(def.name, def);
                }
                let mut words = header.split(' ');
                let name = words.next().unwrap_or_default();
                if let Some(kind) = words.next() {
                    kinds.insert(kind, name);
                }
                current = Some(Def {
                    name,
                    fields: Vec::new(),
                });
            } else if let (Some(def), Some((name, ty))) =
                (current.as_mut(), line.trim().split_once(' '))
            {
                def.fields.push(Field {
                    name,
                    ty: parse_ty(ty),
                });
            }
        }
        if let Some(def) = current.take() {
            defs.insert(def.name, def);
        }
        Schema { defs, kinds }
    }

    pub(crate) fn def(&self, name: &str) -> Option<&Def> {
        self.defs.get(name)
    }

    /// The definition of a document `kind` (`VolumeConfig`, `HostnameConfig`, …).
    pub(crate) fn def_for_kind(&self, kind: &str) -> Option<&Def> {
        self.kinds.get(kind).and_then(|name| self.defs.get(name))
    }
}

fn parse_ty(text: &'static str) -> Ty {
    if let Some(inner) = text.strip_prefix("list:") {
        return Ty::List(Box::new(parse_ty(inner)));
    }
    if let Some(inner) = text.strip_prefix("map:") {
        return Ty::Map(Box::new(parse_ty(inner)));
    }
    if let Some(name) = text.strip_prefix("ref:") {
        return Ty::Ref(name);
    }
    match text {
        "str" => Ty::Str,
        "bool" => Ty::Bool,
        "int" => Ty::Int,
        "num" => Ty::Num,
        "intstr" => Ty::IntStr,
        _ => Ty::Any,
    }
}

/// What an always-written field prints when it has no value.
#[derive(Clone, Copy)]
enum Zero {
    Null,
    EmptyStr,
    EmptyList,
    EmptyMap,
    Int,
}

/// Fields Talos writes even when they are empty (struct fields without `omitempty`).
const ALWAYS: &[(&str, &str, Zero)] = &[
    ("v1alpha1.Config", "version", Zero::EmptyStr),
    ("v1alpha1.Config", "machine", Zero::Null),
    ("v1alpha1.Config", "cluster", Zero::Null),
    ("v1alpha1.ClusterConfig", "controlPlane", Zero::Null),
    ("v1alpha1.MachineConfig", "type", Zero::EmptyStr),
    ("v1alpha1.MachineConfig", "token", Zero::EmptyStr),
    ("v1alpha1.MachineConfig", "certSANs", Zero::EmptyList),
    ("inline.crt_key", "crt", Zero::EmptyStr),
    ("inline.crt_key", "key", Zero::EmptyStr),
    ("inline.crt", "crt", Zero::EmptyStr),
    ("inline.key", "key", Zero::EmptyStr),
    // `*bool` without `omitempty`: an unset wipe is written as null.
    ("v1alpha1.InstallConfig", "wipe", Zero::Null),
    ("v1alpha1.ControlPlaneConfig", "endpoint", Zero::Null),
    ("v1alpha1.ClusterNetworkConfig", "dnsDomain", Zero::EmptyStr),
    (
        "v1alpha1.ClusterNetworkConfig",
        "podSubnets",
        Zero::EmptyList,
    ),
    (
        "v1alpha1.ClusterNetworkConfig",
        "serviceSubnets",
        Zero::EmptyList,
    ),
    ("v1alpha1.Route", "network", Zero::EmptyStr),
    ("v1alpha1.Route", "gateway", Zero::EmptyStr),
    ("v1alpha1.Vlan", "routes", Zero::EmptyList),
    ("v1alpha1.Vlan", "vlanId", Zero::Int),
    ("v1alpha1.DHCPOptions", "routeMetric", Zero::Int),
    ("v1alpha1.Bond", "interfaces", Zero::EmptyList),
    ("v1alpha1.Bond", "mode", Zero::EmptyStr),
    ("v1alpha1.Bridge", "interfaces", Zero::EmptyList),
    (
        "v1alpha1.RegistryMirrorConfig",
        "endpoints",
        Zero::EmptyList,
    ),
    ("v1alpha1.MachineFile", "content", Zero::EmptyStr),
    ("v1alpha1.MachineFile", "permissions", Zero::Int),
    ("v1alpha1.MachineFile", "path", Zero::EmptyStr),
    ("v1alpha1.MachineFile", "op", Zero::EmptyStr),
    (
        "v1alpha1.DiscoveryRegistriesConfig",
        "kubernetes",
        Zero::EmptyMap,
    ),
    (
        "v1alpha1.DiscoveryRegistriesConfig",
        "service",
        Zero::EmptyMap,
    ),
    ("v1alpha1.EtcdConfig", "ca", Zero::Null),
    ("v1alpha1.ExtraMount", "destination", Zero::EmptyStr),
    ("v1alpha1.VolumeMountConfig", "hostPath", Zero::EmptyStr),
    ("v1alpha1.VolumeMountConfig", "mountPath", Zero::EmptyStr),
    ("v1alpha1.AdmissionPluginConfig", "name", Zero::EmptyStr),
    (
        "v1alpha1.AdmissionPluginConfig",
        "configuration",
        Zero::Null,
    ),
    ("v1alpha1.ClusterInlineManifest", "name", Zero::EmptyStr),
    ("v1alpha1.ClusterInlineManifest", "contents", Zero::EmptyStr),
    ("v1alpha1.ExtraHost", "ip", Zero::EmptyStr),
    ("v1alpha1.ExtraHost", "aliases", Zero::EmptyList),
    // Talos 1.14's typed documents (fields without `omitempty`).
    ("k8s.KubeletConfigV1Alpha1", "image", Zero::EmptyStr),
    ("k8s.KubeletConfigV1Alpha1", "config", Zero::EmptyMap),
    ("k8s.KubeSchedulerConfigV1Alpha1", "image", Zero::EmptyStr),
    ("k8s.KubeSchedulerConfigV1Alpha1", "config", Zero::EmptyMap),
    ("k8s.KubeProxyConfigV1Alpha1", "config", Zero::EmptyMap),
    ("k8s.KubeAPIServerConfigV1Alpha1", "image", Zero::EmptyStr),
    (
        "k8s.KubeControllerManagerConfigV1Alpha1",
        "image",
        Zero::EmptyStr,
    ),
    ("k8s.KubeNodeConfigV1Alpha1", "nodeIP", Zero::EmptyMap),
    (
        "k8s.KubeClusterConfigV1Alpha1",
        "clusterName",
        Zero::EmptyStr,
    ),
    ("k8s.KubeNetworkConfigV1Alpha1", "dnsDomain", Zero::EmptyStr),
    ("k8s.KubePrismConfigV1Alpha1", "port", Zero::Int),
    (
        "k8s.KubeFlannelCNIConfigV1Alpha1",
        "backendType",
        Zero::EmptyStr,
    ),
    (
        "k8s.KubeEtcdEncryptionConfigV1Alpha1",
        "config",
        Zero::EmptyMap,
    ),
    (
        "k8s.KubeAdmissionControlConfigV1Alpha1",
        "name",
        Zero::EmptyStr,
    ),
    (
        "k8s.KubeAdmissionControlConfigV1Alpha1",
        "configuration",
        Zero::EmptyMap,
    ),
    (
        "k8s.KubeAuditPolicyConfigV1Alpha1",
        "configuration",
        Zero::EmptyMap,
    ),
    (
        "k8s.KubeAuthenticationConfigV1Alpha1",
        "configuration",
        Zero::EmptyMap,
    ),
    ("k8s.KubeAuthorizerConfigV1Alpha1", "name", Zero::EmptyStr),
    ("k8s.KubeAuthorizerConfigV1Alpha1", "type", Zero::EmptyStr),
    (
        "k8s.KubeServiceAccountConfigV1Alpha1",
        "issuer",
        Zero::EmptyMap,
    ),
    (
        "k8s.IssuerServiceAccountConfig",
        "privateKey",
        Zero::EmptyStr,
    ),
    (
        "k8s.KubeExternalManifestConfigV1Alpha1",
        "name",
        Zero::EmptyStr,
    ),
    (
        "k8s.KubeInlineManifestConfigV1Alpha1",
        "name",
        Zero::EmptyStr,
    ),
    (
        "k8s.KubeInlineManifestConfigV1Alpha1",
        "manifest",
        Zero::EmptyStr,
    ),
    (
        "runtime.UnattendedInstallConfigV1Alpha1",
        "installer",
        Zero::EmptyMap,
    ),
    (
        "runtime.UnattendedInstallConfigV1Alpha1",
        "provisioning",
        Zero::EmptyMap,
    ),
    (
        "cluster.DiscoveryIdentityConfigV1Alpha1",
        "clusterID",
        Zero::EmptyStr,
    ),
    (
        "cluster.DiscoveryIdentityConfigV1Alpha1",
        "clusterSecret",
        Zero::EmptyStr,
    ),
    (
        "cluster.DiscoveryServiceConfigV1Alpha1",
        "name",
        Zero::EmptyStr,
    ),
];

fn always(def: &str, field: &str) -> Option<Zero> {
    ALWAYS
        .iter()
        .find(|(d, f, _)| *d == def && *f == field)
        .map(|(_, _, zero)| *zero)
}

/// Every document kind carries these identity fields, written even when empty.
fn is_identity_field(field: &str) -> bool {
    matches!(field, "apiVersion" | "kind")
}

/// A problem found while decoding a document strictly against the schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DecodeProblem {
    UnknownKey {
        path: String,
        value: Value,
    },
    WrongType {
        path: String,
        found: &'static str,
        expected: String,
        value: Option<String>,
    },
}

impl DecodeProblem {
    pub(crate) fn path(&self) -> &str {
        match self {
            DecodeProblem::UnknownKey { path, .. } | DecodeProblem::WrongType { path, .. } => path,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            DecodeProblem::UnknownKey { .. } => "unknown key".to_owned(),
            DecodeProblem::WrongType {
                found,
                expected,
                value,
                ..
            } => match value {
                Some(v) => format!("cannot unmarshal {found} `{v}` into {expected}"),
                None => format!("cannot unmarshal {found} into {expected}"),
            },
        }
    }
}

/// go's spelling of a type, for error messages that match talosctl's.
fn go_type(ty: &Ty) -> String {
    match ty {
        Ty::Str => "string".to_owned(),
        Ty::Bool => "bool".to_owned(),
        Ty::Int => "int".to_owned(),
        Ty::Num => "float64".to_owned(),
        Ty::IntStr => "intstr".to_owned(),
        Ty::Any => "interface {}".to_owned(),
        Ty::List(inner) => format!("[]{}", go_type(inner)),
        Ty::Map(inner) => format!("map[string]{}", go_type(inner)),
        Ty::Ref("inline.crt_key") => "x509.PEMEncodedCertificateAndKey".to_owned(),
        Ty::Ref("inline.crt") => "x509.PEMEncodedCertificate".to_owned(),
        Ty::Ref("inline.key") => "x509.PEMEncodedKey".to_owned(),
        Ty::Ref(name) if name.starts_with("inline.") => "struct".to_owned(),
        Ty::Ref(name) => name.replace("V1Alpha1", "").to_string(),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 10 {
        format!("{}...", text.chars().take(7).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Decodes `value` strictly as `ty`: unknown keys and values of the wrong kind are reported in
/// `problems` (and dropped); scalars are normalised to the field's type the way go-yaml does
/// (a number in a string field becomes its text).
pub(crate) fn decode(
    value: Value,
    ty: &Ty,
    path: &str,
    problems: &mut Vec<DecodeProblem>,
) -> Value {
    let schema = Schema::get();
    let wrong = |value: &Value, problems: &mut Vec<DecodeProblem>| {
        let shown = match value {
            Value::Map(_) | Value::Seq(_) => None,
            scalar => Some(shorten(&scalar.to_string())),
        };
        problems.push(DecodeProblem::WrongType {
            path: path.to_owned(),
            found: value.yaml_tag(),
            expected: go_type(ty),
            value: shown,
        });
        Value::Null
    };
    match (ty, value) {
        (_, Value::Null) => Value::Null,
        (Ty::Any, value) => value,
        (Ty::Str, Value::Str(s)) => Value::Str(s),
        (Ty::Str, scalar @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => {
            Value::Str(scalar.to_string())
        }
        (Ty::Bool, Value::Bool(b)) => Value::Bool(b),
        (Ty::Int, Value::Int(i)) => Value::Int(i),
        (Ty::Num, v @ (Value::Int(_) | Value::Float(_))) => v,
        (Ty::IntStr, v @ (Value::Int(_) | Value::Str(_))) => v,
        (Ty::List(inner), Value::Seq(items)) => Value::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(idx, item)| decode(item, inner, &format!("{path}[{idx}]"), problems))
                .collect(),
        ),
        (Ty::Map(inner), Value::Map(map)) => Value::Map(
            map.into_iter()
                .map(|(k, v)| {
                    let v = decode(v, inner, &join(path, &k), problems);
                    (k, v)
                })
                .collect(),
        ),
        (Ty::Ref(name), Value::Map(map)) => {
            let Some(def) = schema.def(name) else {
                return Value::Map(map);
            };
            let mut decoded = Vec::with_capacity(map.len());
            for (key, value) in map {
                let field_path = join(path, &key);
                match def.field(&key) {
                    Some(field) => {
                        let mut value = decode(value, &field.ty, &field_path, problems);
                        // Talos drops the leading blank lines of inline manifests.
                        if let ("v1alpha1.ClusterInlineManifest", "contents", Value::Str(s)) =
                            (def.name, key.as_str(), &mut value)
                        {
                            *s = s.trim_start_matches('\n').to_owned();
                        }
                        decoded.push((key, value));
                    }
                    None => problems.push(DecodeProblem::UnknownKey {
                        path: field_path,
                        value,
                    }),
                }
            }
            Value::Map(decoded)
        }
        (_, value) => wrong(&value, problems),
    }
}

/// Rewrites a decoded value the way Talos re-serialises its typed config: fields in declaration
/// order, empty optional fields dropped, always-written fields filled in, free-form maps sorted.
pub(crate) fn canonicalize(value: &Value, ty: &Ty) -> Value {
    match (ty, value) {
        (Ty::Ref(name), Value::Map(map)) => match Schema::get().def(name) {
            Some(def) => canonical_struct(def, map),
            None => sorted(value),
        },
        (Ty::List(inner), Value::Seq(items)) => {
            Value::Seq(items.iter().map(|item| canonicalize(item, inner)).collect())
        }
        (Ty::Map(inner), Value::Map(map)) => {
            let mut entries: Vec<(String, Value)> = map
                .iter()
                .map(|(k, v)| (k.clone(), canonicalize(v, inner)))
                .collect();
            entries.sort_by(|a, b| natural_cmp(&a.0, &b.0));
            Value::Map(entries)
        }
        (Ty::Any, value) => sorted(value),
        (_, value) => value.clone(),
    }
}

fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if natural_less(a, b) {
        std::cmp::Ordering::Less
    } else if natural_less(b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Map(map) => {
            let mut entries: Vec<(String, Value)> =
                map.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            entries.sort_by(|a, b| natural_cmp(&a.0, &b.0));
            Value::Map(entries)
        }
        Value::Seq(items) => Value::Seq(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn canonical_struct(def: &Def, map: &[(String, Value)]) -> Value {
    let mut out = Vec::with_capacity(map.len());
    for field in &def.fields {
        let present = map.iter().find(|(k, _)| k == field.name).map(|(_, v)| v);
        let zero = always(def.name, field.name);
        match present {
            Some(value) if keep(value, &field.ty) => {
                out.push((field.name.to_owned(), canonicalize(value, &field.ty)));
            }
            _ => {
                if let Some(zero) = zero {
                    let value = match (zero, present) {
                        (Zero::Null, _) => Value::Null,
                        (Zero::EmptyStr, _) => Value::str(""),
                        (Zero::EmptyList, _) => Value::Seq(Vec::new()),
                        (Zero::EmptyMap, _) => Value::Map(Vec::new()),
                        (Zero::Int, _) => Value::Int(0),
                    };
                    out.push((field.name.to_owned(), value));
                } else if is_identity_field(field.name) {
                    out.push((
                        field.name.to_owned(),
                        present.cloned().unwrap_or(Value::str("")),
                    ));
                }
            }
        }
    }
    Value::Map(out)
}

/// Whether an optional field holding `value` is written (go-yaml `omitempty`; a struct behind a
/// pointer is written even when empty, as `{}`).
fn keep(value: &Value, ty: &Ty) -> bool {
    match (value, ty) {
        (Value::Null, _) => false,
        (Value::Map(_), Ty::Ref(_)) => true,
        (value, _) => !value.is_empty_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_knows_documents_and_field_order() {
        let schema = Schema::get();
        let machine = schema.def("v1alpha1.MachineConfig").unwrap();
        let names: Vec<&str> = machine.fields.iter().take(5).map(|f| f.name).collect();
        assert_eq!(names, ["type", "token", "ca", "acceptedCAs", "certSANs"]);
        assert_eq!(
            schema.def_for_kind("VolumeConfig").unwrap().name,
            "block.VolumeConfigV1Alpha1"
        );
    }
}
