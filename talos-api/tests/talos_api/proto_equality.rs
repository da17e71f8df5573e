//! Our `.proto` files (`proto/`, written from the wire format) are equal on the wire to Talos's
//! own for everything they declare, compared with the descriptors Talos's generated Go code
//! registers (`github.com/siderolabs/talos/pkg/machinery` v1.14.1, and COSI's runtime for
//! `cosi.resource`), which the v1.14 oracle of `tests/talos-oracle` prints.
//!
//! For every message we declare: Talos has it, and each of our fields has Talos's number, name,
//! type (the same message or enum for those), label (`repeated`, proto3 `optional`) and oneof.
//! For every enum: each of our values has Talos's number and name. For every RPC: Talos's
//! service has it with the same request and response types and streaming. Leaving fields,
//! values and RPCs out is allowed (protobuf decoders skip unknown fields; prost keeps an unknown
//! enum number as it is), and names must match too: ours are Talos's, deliberately.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde::Deserialize;

/// Packages of other projects our files import; not ours to compare.
const WELL_KNOWN: &str = "google.protobuf";

/// A field as it matters on the wire (and for the generated code's names).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    /// `optional` (proto3's implicit presence included) or `repeated`.
    label: String,
    /// `string`, `uint64`, …, or the full name of a message or enum (`.common.Metadata`).
    ty: String,
    /// The oneof it is part of, if any (synthetic ones of proto3 `optional` excluded).
    oneof: Option<String>,
    /// proto3 `optional` (explicit presence).
    proto3_optional: bool,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match (self.label.as_str(), self.proto3_optional) {
            ("repeated", _) => "repeated ",
            (_, true) => "optional ",
            _ => "",
        };
        write!(f, "{label}{} {}", self.ty, self.name)?;
        if let Some(oneof) = &self.oneof {
            write!(f, " (in oneof {oneof})")?;
        }
        Ok(())
    }
}

/// An RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Method {
    input: String,
    output: String,
    client_streaming: bool,
    server_streaming: bool,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = |yes: bool| if yes { "stream " } else { "" };
        write!(
            f,
            "({}{}) returns ({}{})",
            stream(self.client_streaming),
            self.input,
            stream(self.server_streaming),
            self.output
        )
    }
}

/// The declarations of a set of files, by full name (`.machine.EtcdMember`,
/// `.machine.MachineService/Bootstrap`).
#[derive(Debug, Default)]
struct Declarations {
    messages: BTreeMap<String, BTreeMap<i32, Field>>,
    enums: BTreeMap<String, BTreeMap<i32, String>>,
    methods: BTreeMap<String, Method>,
}

// Talos's descriptors as protojson prints a `FileDescriptorSet` with the .proto field names.

#[derive(Deserialize)]
struct JsonSet {
    file: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    #[serde(default)]
    package: String,
    #[serde(default)]
    message_type: Vec<JsonMessage>,
    #[serde(default)]
    enum_type: Vec<JsonEnum>,
    #[serde(default)]
    service: Vec<JsonService>,
}

#[derive(Deserialize)]
struct JsonMessage {
    name: String,
    #[serde(default)]
    field: Vec<JsonField>,
    #[serde(default)]
    nested_type: Vec<JsonMessage>,
    #[serde(default)]
    enum_type: Vec<JsonEnum>,
    #[serde(default)]
    oneof_decl: Vec<JsonOneof>,
}

#[derive(Deserialize)]
struct JsonField {
    name: String,
    number: i32,
    label: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    type_name: Option<String>,
    #[serde(default)]
    oneof_index: Option<i32>,
    #[serde(default)]
    proto3_optional: bool,
}

#[derive(Deserialize)]
struct JsonOneof {
    name: String,
}

#[derive(Deserialize)]
struct JsonEnum {
    name: String,
    #[serde(default)]
    value: Vec<JsonEnumValue>,
}

#[derive(Deserialize)]
struct JsonEnumValue {
    name: String,
    #[serde(default)]
    number: i32,
}

#[derive(Deserialize)]
struct JsonService {
    name: String,
    #[serde(default)]
    method: Vec<JsonMethod>,
}

#[derive(Deserialize)]
struct JsonMethod {
    name: String,
    input_type: String,
    output_type: String,
    #[serde(default)]
    client_streaming: bool,
    #[serde(default)]
    server_streaming: bool,
}

/// `TYPE_UINT64` → `uint64`; messages and enums are named by their type name.
fn type_text(ty: &str, type_name: Option<&str>) -> String {
    match ty {
        "TYPE_MESSAGE" | "TYPE_ENUM" | "TYPE_GROUP" => type_name.unwrap_or("?").to_owned(),
        other => other.trim_start_matches("TYPE_").to_lowercase(),
    }
}

/// `LABEL_REPEATED` → `repeated`.
fn label_text(label: &str) -> String {
    label.trim_start_matches("LABEL_").to_lowercase()
}

impl Declarations {
    fn add_json_message(&mut self, scope: &str, message: &JsonMessage) {
        let name = format!("{scope}.{}", message.name);
        let fields = message
            .field
            .iter()
            .map(|field| {
                let oneof = field
                    .oneof_index
                    .filter(|_| !field.proto3_optional)
                    .and_then(|index| usize::try_from(index).ok())
                    .and_then(|index| message.oneof_decl.get(index))
                    .map(|oneof| oneof.name.clone());
                let declared = Field {
                    name: field.name.clone(),
                    label: label_text(&field.label),
                    ty: type_text(&field.ty, field.type_name.as_deref()),
                    oneof,
                    proto3_optional: field.proto3_optional,
                };
                (field.number, declared)
            })
            .collect();
        self.messages.insert(name.clone(), fields);
        for nested in &message.nested_type {
            self.add_json_message(&name, nested);
        }
        for nested in &message.enum_type {
            self.add_json_enum(&name, nested);
        }
    }

    fn add_json_enum(&mut self, scope: &str, declared: &JsonEnum) {
        let values = declared
            .value
            .iter()
            .map(|value| (value.number, value.name.clone()))
            .collect();
        self.enums
            .insert(format!("{scope}.{}", declared.name), values);
    }

    /// Talos's, from the oracle's JSON.
    fn from_json(json: &str) -> Declarations {
        let set: JsonSet = serde_json::from_str(json).expect("the oracle's descriptors");
        let mut declarations = Declarations::default();
        for file in &set.file {
            let scope = format!(".{}", file.package);
            for message in &file.message_type {
                declarations.add_json_message(&scope, message);
            }
            for declared in &file.enum_type {
                declarations.add_json_enum(&scope, declared);
            }
            for service in &file.service {
                for method in &service.method {
                    declarations.methods.insert(
                        format!("{scope}.{}/{}", service.name, method.name),
                        Method {
                            input: method.input_type.clone(),
                            output: method.output_type.clone(),
                            client_streaming: method.client_streaming,
                            server_streaming: method.server_streaming,
                        },
                    );
                }
            }
        }
        declarations
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        let fields = message
            .field
            .iter()
            .map(|field| {
                let oneof = field
                    .oneof_index
                    .filter(|_| !field.proto3_optional())
                    .and_then(|index| usize::try_from(index).ok())
                    .and_then(|index| message.oneof_decl.get(index))
                    .map(|oneof| oneof.name().to_owned());
                let declared = Field {
                    name: field.name().to_owned(),
                    label: label_text(
                        Label::try_from(field.label.unwrap_or(1))
                            .map_or("LABEL_?", |label| label.as_str_name()),
                    ),
                    ty: type_text(
                        Type::try_from(field.r#type.unwrap_or(0))
                            .map_or("TYPE_?", |ty| ty.as_str_name()),
                        field.type_name.as_deref(),
                    ),
                    oneof,
                    proto3_optional: field.proto3_optional(),
                };
                (field.number(), declared)
            })
            .collect();
        self.messages.insert(name.clone(), fields);
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for nested in &message.enum_type {
            self.add_enum(&name, nested);
        }
    }

    fn add_enum(&mut self, scope: &str, declared: &EnumDescriptorProto) {
        let values = declared
            .value
            .iter()
            .map(|value| (value.number(), value.name().to_owned()))
            .collect();
        self.enums
            .insert(format!("{scope}.{}", declared.name()), values);
    }

    /// Ours, compiled by protox (the files our imports name from elsewhere left out).
    fn from_descriptors(set: &FileDescriptorSet) -> Declarations {
        let mut declarations = Declarations::default();
        for file in set.file.iter().filter(|file| file.package() != WELL_KNOWN) {
            let scope = format!(".{}", file.package());
            for message in &file.message_type {
                declarations.add_message(&scope, message);
            }
            for declared in &file.enum_type {
                declarations.add_enum(&scope, declared);
            }
            for service in &file.service {
                for method in &service.method {
                    declarations.methods.insert(
                        format!("{scope}.{}/{}", service.name(), method.name()),
                        Method {
                            input: method.input_type().to_owned(),
                            output: method.output_type().to_owned(),
                            client_streaming: method.client_streaming(),
                            server_streaming: method.server_streaming(),
                        },
                    );
                }
            }
        }
        declarations
    }

    /// Where `self` (ours) differs from `talos` on the wire: one readable line each.
    fn differences(&self, talos: &Declarations) -> Vec<String> {
        let mut found = Vec::new();
        for (name, fields) in &self.messages {
            let Some(theirs) = talos.messages.get(name) else {
                found.push(format!("message {name}: Talos has no such message"));
                continue;
            };
            for (number, field) in fields {
                match theirs.get(number) {
                    None => found.push(format!(
                        "message {name}: our field {number} (`{field}`) is not a field of Talos's"
                    )),
                    Some(their) if their != field => found.push(format!(
                        "message {name}: field {number} is `{field}` here, `{their}` in Talos"
                    )),
                    Some(_) => {}
                }
            }
        }
        for (name, values) in &self.enums {
            let Some(theirs) = talos.enums.get(name) else {
                found.push(format!("enum {name}: Talos has no such enum"));
                continue;
            };
            for (number, value) in values {
                match theirs.get(number) {
                    None => found.push(format!(
                        "enum {name}: our value {value} = {number} is not a value of Talos's"
                    )),
                    Some(their) if their != value => found.push(format!(
                        "enum {name}: {number} is {value} here, {their} in Talos"
                    )),
                    Some(_) => {}
                }
            }
        }
        for (name, method) in &self.methods {
            match talos.methods.get(name) {
                None => found.push(format!("rpc {name}: Talos has no such RPC")),
                Some(their) if their != method => {
                    found.push(format!("rpc {name}: `{method}` here, `{their}` in Talos"))
                }
                Some(_) => {}
            }
        }
        found
    }
}

/// Every `.proto` file under `dir`, relative to it.
fn proto_files(dir: &Path, under: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir.join(under)).expect("reading proto/") {
        let path = under.join(entry.expect("a directory entry").file_name());
        if dir.join(&path).is_dir() {
            proto_files(dir, &path, found);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            found.push(path);
        }
    }
}

/// Ours: every file of `proto/`, compiled as `build.rs` compiles them.
fn ours() -> Declarations {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let mut files = Vec::new();
    proto_files(&dir, Path::new(""), &mut files);
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    let set = protox::compile(&files, [&dir]).expect("our .proto files compile");
    Declarations::from_descriptors(&set)
}

/// Talos's, from the v1.14 oracle.
fn talos() -> Declarations {
    let request = serde_json::json!({"op": "descriptors"});
    let response = talos_manager_e2e::talos_oracle::ask("v1.14", &[request]).remove(0);
    let Some(json) = response["output"].as_str() else {
        panic!("the oracle answered no descriptors: {response}")
    };
    Declarations::from_json(json)
}

#[test]
fn our_protos_are_talos_s_on_the_wire() {
    let ours = ours();
    let talos = talos();
    // What is compared: every service, message and enum our files declare.
    for name in [
        ".machine.MachineService/Bootstrap",
        ".machine.MachineService/EtcdMemberList",
        ".machine.ImageService/Pull",
        ".machine.LifecycleService/Upgrade",
        ".cosi.resource.State/List",
    ] {
        assert!(ours.methods.contains_key(name), "{name} not among ours");
    }
    for name in [
        ".machine.ApplyConfigurationRequest",
        ".common.Metadata",
        ".google.rpc.Status",
        ".cosi.resource.Resource",
    ] {
        assert!(ours.messages.contains_key(name), "{name} not among ours");
    }
    assert!(
        ours.enums
            .contains_key(".machine.ApplyConfigurationRequest.Mode")
    );

    let differences = ours.differences(&talos);
    assert!(
        differences.is_empty(),
        "our .proto files (talos-api/proto/) differ from Talos's:\n  {}",
        differences.join("\n  ")
    );
}

#[test]
fn a_difference_is_named() {
    let talos = ours();
    let mut changed = ours();
    let member = changed.messages.get_mut(".machine.EtcdMember").unwrap();
    let id = member.remove(&2).unwrap();
    member.insert(7, id);
    member.get_mut(&4).unwrap().label = "optional".into();
    changed
        .enums
        .get_mut(".machine.RebootRequest.Mode")
        .unwrap()
        .insert(1, "POWER_CYCLE".into());
    changed
        .methods
        .get_mut(".machine.MachineService/Kubeconfig")
        .unwrap()
        .server_streaming = false;
    assert_eq!(
        changed.differences(&talos),
        [
            "message .machine.EtcdMember: field 4 is `string peer_urls` here, `repeated string \
             peer_urls` in Talos",
            "message .machine.EtcdMember: our field 7 (`uint64 id`) is not a field of Talos's",
            "enum .machine.RebootRequest.Mode: 1 is POWER_CYCLE here, POWERCYCLE in Talos",
            "rpc .machine.MachineService/Kubeconfig: `(.google.protobuf.Empty) returns \
             (.common.Data)` here, `(.google.protobuf.Empty) returns (stream .common.Data)` in \
             Talos",
        ]
    );
}
