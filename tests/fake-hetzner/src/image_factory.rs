//! A wire-level fake of the Talos Image Factory (research notes `factory-talosapi-k8s.md`, part A,
//! and `factory-k8s-fidelity.md`, section 4): `POST /schematics` validated as strictly as the real
//! factory, `GET /versions`, `GET /schematics/{id}` and the disk images under `/image/…`;
//! anything else answers 501.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::{Request, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{LoopbackServer, lock};

/// The `/versions` answer the fake starts with: a real one, ascending.
const VERSIONS_FIXTURE: &str = include_str!("../data/image-factory/versions.json");

/// A fake Image Factory on `127.0.0.1:0`, stopped when dropped.
///
/// * `POST /schematics`: the body is parsed as YAML (JSON too) and checked at every level as the
///   real factory's strict decoder does: an unknown key anywhere (`customization.systemExtension`)
///   or a value of the wrong type (`officialExtensions: x`, `meta[].key: 300`) gets 400 in plain
///   text naming the field and the schematic type; `owner` gets the community edition's message.
///   Extensions are not checked here (the real factory checks them when it builds). The id is the lowercase hex SHA-256 of a canonical form (keys sorted, lists in
///   order), so equal content gives equal ids, like the real factory's content hashes (not
///   byte-equal to them). Answers 201 `{"id", "schematic"}`.
/// * `GET /versions`: a JSON array of strings, ascending ([`FakeImageFactory::set_versions`]).
/// * `GET /schematics/{id}`: the stored canonical form, or 404 `schematic not found`.
/// * `GET`/`HEAD /image/{id}/{version}/{file}`: 404 `schematic ID "<id>" not found` for a
///   schematic never posted, 404 `version <v> is not available` for a version not in
///   `/versions` (the leading `v` is optional), 400 for a file other than
///   `metal-{amd64,arm64}.raw.{zst,xz}`; else 200 with the bytes of [`FakeImageFactory::set_image`]
///   (206 and the asked bytes for a `Range: bytes=a-b`; `HEAD` without a body).
/// * Anything else: 501 naming the call.
///
/// Every request is logged as `"METHOD /path"` ([`FakeImageFactory::requests`]).
#[derive(Debug)]
pub struct FakeImageFactory {
    server: LoopbackServer,
    state: Arc<Mutex<FactoryState>>,
}

#[derive(Debug)]
struct FactoryState {
    versions: Vec<String>,
    schematics: BTreeMap<String, String>,
    image: Vec<u8>,
    requests: Vec<String>,
}

impl FakeImageFactory {
    /// Starts the fake with the real `/versions` fixture and no schematics.
    pub async fn start() -> io::Result<Self> {
        let versions: Vec<String> =
            serde_json::from_str(VERSIONS_FIXTURE).expect("the versions fixture is a string array");
        let state = Arc::new(Mutex::new(FactoryState {
            versions,
            schematics: BTreeMap::new(),
            image: Vec::new(),
            requests: Vec::new(),
        }));
        let handler_state = state.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = handler_state.clone();
            async move { handle(state, request).await }
        });
        let server = LoopbackServer::start(endpoint, "").await?;
        Ok(FakeImageFactory { server, state })
    }

    /// Base URL, e.g. `http://127.0.0.1:41235`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Replaces the `/versions` answer (give it ascending, as the real factory does).
    pub fn set_versions(&self, versions: &[&str]) {
        lock(&self.state).versions = versions.iter().map(|v| (*v).to_owned()).collect();
    }

    /// Sets the bytes served for every image of a known schematic and version (empty at start).
    pub fn set_image(&self, bytes: Vec<u8>) {
        lock(&self.state).image = bytes;
    }

    /// Stores a schematic as `POST /schematics` would; returns its id.
    ///
    /// # Panics
    /// When the body is not a valid schematic.
    pub fn add_schematic(&self, body: &str) -> String {
        let (id, canonical) = parse_schematic(body.as_bytes())
            .unwrap_or_else(|message| panic!("not a valid schematic ({message}): {body}"));
        lock(&self.state).schematics.insert(id.clone(), canonical);
        id
    }

    /// Stored schematics: id → canonical form.
    pub fn schematics(&self) -> BTreeMap<String, String> {
        lock(&self.state).schematics.clone()
    }

    /// Every request so far, as `"METHOD /path"`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// The id the fake gives to a schematic body, without sending it.
    pub fn schematic_id(body: &str) -> Option<String> {
        parse_schematic(body.as_bytes()).ok().map(|(id, _)| id)
    }
}

/// A body parsed and checked: its id and canonical form; or the 400 message.
fn parse_schematic(body: &[u8]) -> Result<(String, String), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("EOF".to_owned());
    }
    let value: Value = serde_norway::from_slice(body).map_err(|error| format!("yaml: {error}"))?;
    if let Value::Object(top) = &value
        && top.contains_key("owner")
    {
        return Err("owner field is only supported in Enterprise edition".into());
    }
    check(&value, &Shape::Struct(SCHEMATIC))?;
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let id = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok((id, canonical))
}

/// What a value of a schematic must look like, after the real factory's Go types.
enum Shape {
    /// A struct: its Go type name and its fields.
    Struct(&'static StructShape),
    /// A list of values of one shape.
    List(&'static Shape),
    /// A string.
    Str,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A boolean.
    Bool,
    /// An unsigned integer up to this maximum.
    Unsigned(u64),
    /// Anything (`overlay.options`).
    Any,
}

/// A Go struct: its type name and its fields' names and shapes.
struct StructShape {
    name: &'static str,
    fields: &'static [(&'static str, Shape)],
}

const SCHEMATIC: &StructShape = &StructShape {
    name: "schematic.Schematic",
    fields: &[
        ("customization", Shape::Struct(CUSTOMIZATION)),
        ("overlay", Shape::Struct(OVERLAY)),
    ],
};

const CUSTOMIZATION: &StructShape = &StructShape {
    name: "schematic.Customization",
    fields: &[
        ("extraKernelArgs", Shape::List(&Shape::Str)),
        ("meta", Shape::List(&Shape::Struct(META_VALUE))),
        ("systemExtensions", Shape::Struct(SYSTEM_EXTENSIONS)),
        ("embeddedMachineConfiguration", Shape::Str),
        (
            "bootloader",
            Shape::OneOf(&["auto", "dual-boot", "sd-boot", "grub"]),
        ),
        ("secureboot", Shape::Struct(SECURE_BOOT)),
        ("diskImage", Shape::Struct(DISK_IMAGE)),
    ],
};

const META_VALUE: &StructShape = &StructShape {
    name: "schematic.MetaValue",
    fields: &[("key", Shape::Unsigned(255)), ("value", Shape::Str)],
};

const SYSTEM_EXTENSIONS: &StructShape = &StructShape {
    name: "schematic.SystemExtensions",
    fields: &[("officialExtensions", Shape::List(&Shape::Str))],
};

const SECURE_BOOT: &StructShape = &StructShape {
    name: "schematic.SecureBootCustomization",
    fields: &[
        ("includeWellKnownCertificates", Shape::Bool),
        (
            "enrollKeys",
            Shape::OneOf(&["off", "manual", "if-safe", "force"]),
        ),
    ],
};

const DISK_IMAGE: &StructShape = &StructShape {
    name: "schematic.DiskImageCustomization",
    fields: &[("sectorSize", Shape::Unsigned(u64::MAX))],
};

const OVERLAY: &StructShape = &StructShape {
    name: "schematic.Overlay",
    fields: &[
        ("image", Shape::Str),
        ("name", Shape::Str),
        ("options", Shape::Any),
    ],
};

/// Checks `value` against `shape` as a strict YAML decoder into the factory's types does (a
/// null is the zero value, as in Go); the 400 message otherwise.
fn check(value: &Value, shape: &Shape) -> Result<(), String> {
    let refused = |into: &str| {
        let shown = match value {
            Value::String(text) => format!("!!str `{text}`"),
            Value::Number(number) => format!("!!int `{number}`"),
            Value::Bool(flag) => format!("!!bool `{flag}`"),
            Value::Array(_) => "!!seq".to_owned(),
            Value::Object(_) => "!!map".to_owned(),
            Value::Null => "!!null".to_owned(),
        };
        Err(format!(
            "yaml: construct errors: cannot construct {shown} into {into}"
        ))
    };
    if value.is_null() {
        return Ok(());
    }
    match shape {
        Shape::Any => Ok(()),
        Shape::Str => match value {
            Value::String(_) => Ok(()),
            _ => refused("string"),
        },
        Shape::OneOf(allowed) => match value {
            Value::String(text) if allowed.contains(&text.as_str()) => Ok(()),
            Value::String(text) => Err(format!(
                "yaml: construct errors: invalid value {text:?}: expected one of {}",
                allowed.join(", ")
            )),
            _ => refused("string"),
        },
        Shape::Bool => match value {
            Value::Bool(_) => Ok(()),
            _ => refused("bool"),
        },
        Shape::Unsigned(max) => match value.as_u64() {
            Some(number) if number <= *max => Ok(()),
            _ if *max == 255 => refused("uint8"),
            _ => refused("uint"),
        },
        Shape::List(item) => match value {
            Value::Array(items) => items.iter().try_for_each(|value| check(value, item)),
            _ => refused("[]"),
        },
        Shape::Struct(shape) => {
            let Value::Object(map) = value else {
                return refused(shape.name);
            };
            for (key, value) in map {
                let Some((_, field)) = shape.fields.iter().find(|(name, _)| name == key) else {
                    return Err(format!(
                        "yaml: construct errors: field {key} not found in type {}",
                        shape.name
                    ));
                };
                check(value, field)?;
            }
            Ok(())
        }
    }
}

/// The answer to `GET` or `HEAD /image/{id}/{version}/{file}` (`rest` is after `/image/`).
fn image(state: &Mutex<FactoryState>, head: bool, rest: &str, range: Option<&str>) -> Response {
    let mut parts = rest.splitn(3, '/');
    let (Some(id), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return text(StatusCode::NOT_FOUND, "404 page not found");
    };
    let state = lock(state);
    if !state.schematics.contains_key(id) {
        return text(
            StatusCode::NOT_FOUND,
            &format!("schematic ID {id:?} not found"),
        );
    }
    let wanted = format!("v{}", version.trim_start_matches('v'));
    if !state.versions.contains(&wanted) {
        return text(
            StatusCode::NOT_FOUND,
            &format!("version {version} is not available"),
        );
    }
    let known = ["amd64", "arm64"]
        .iter()
        .flat_map(|arch| ["zst", "xz"].map(move |ext| format!("metal-{arch}.raw.{ext}")))
        .any(|known| known == file);
    if !known {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("error parsing profile from path: unsupported image path {file:?}"),
        );
    }
    let image = &state.image;
    let total = image.len();
    let asked = range
        .and_then(|range| range.strip_prefix("bytes="))
        .and_then(|range| range.split_once('-'))
        .and_then(|(start, end)| {
            let start: usize = start.parse().ok()?;
            let end: usize = end.parse::<usize>().ok()?.min(total.checked_sub(1)?);
            (start <= end).then_some((start, end))
        });
    let content_type = match file.ends_with(".zst") {
        true => "application/zstd",
        false => "application/x-xz",
    };
    let builder = Response::builder().content_type(content_type);
    let (builder, body) = match asked {
        Some((start, end)) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header("Content-Range", format!("bytes {start}-{end}/{total}")),
            image[start..=end].to_vec(),
        ),
        None => (builder.status(StatusCode::OK), image.clone()),
    };
    match head {
        true => builder
            .header("Content-Length", body.len().to_string())
            .finish(),
        false => builder.body(body),
    }
}

/// JSON with object keys sorted, whatever order serde_json keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A plain-text answer with a trailing newline, as Go's `http.Error` writes it.
fn text(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}

async fn handle(state: Arc<Mutex<FactoryState>>, mut request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let body = request.take_body().into_bytes().await.unwrap_or_default();
    lock(&state).requests.push(format!("{method} {path}"));
    match (method.as_str(), path.as_str()) {
        ("POST", "/schematics") => match parse_schematic(&body) {
            Ok((id, canonical)) => {
                lock(&state)
                    .schematics
                    .insert(id.clone(), canonical.clone());
                let answer = serde_json::json!({ "id": id, "schematic": canonical });
                Response::builder()
                    .status(StatusCode::CREATED)
                    .content_type("application/json")
                    .body(format!("{answer}\n"))
            }
            Err(message) => text(StatusCode::BAD_REQUEST, &message),
        },
        ("GET", "/versions") => {
            let versions = lock(&state).versions.clone();
            // No explicit content type on the real factory: Go sniffs text/plain.
            text(StatusCode::OK, &Value::from(versions).to_string())
        }
        ("GET" | "HEAD", _) if path.starts_with("/image/") => {
            let range = request
                .headers()
                .get("Range")
                .and_then(|value| value.to_str().ok());
            image(&state, method == "HEAD", &path["/image/".len()..], range)
        }
        ("GET", _) if path.starts_with("/schematics/") => {
            let id = &path["/schematics/".len()..];
            match lock(&state).schematics.get(id) {
                Some(canonical) => Response::builder()
                    .status(StatusCode::OK)
                    .content_type("application/yaml")
                    .body(canonical.clone()),
                None => text(StatusCode::NOT_FOUND, "schematic not found"),
            }
        }
        _ => text(
            StatusCode::NOT_IMPLEMENTED,
            &format!("not implemented in fake image factory: {method} {path}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_content_hashes() {
        let yaml = "customization:\n  extraKernelArgs:\n    - a\n    - b\n";
        let json = r#"{"customization":{"extraKernelArgs":["a","b"]}}"#;
        let id = FakeImageFactory::schematic_id(yaml).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(FakeImageFactory::schematic_id(json), Some(id.clone()));
        let swapped = r#"{"customization":{"extraKernelArgs":["b","a"]}}"#;
        assert_ne!(FakeImageFactory::schematic_id(swapped), Some(id));
        assert!(parse_schematic(b"owner: me").is_err());
        assert!(parse_schematic(b"something: 1").is_err());
        assert!(parse_schematic(b"").is_err());
    }

    #[test]
    fn schematics_are_checked_at_every_level() {
        let valid = "customization:\n  extraKernelArgs: [a]\n  meta:\n    - key: 0x0a\n      value: x\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode]\n  secureboot:\n    includeWellKnownCertificates: true\n  diskImage:\n    sectorSize: 4096\noverlay:\n  name: rpi\n  image: x\n  options: {any: [thing]}\n";
        assert!(parse_schematic(valid.as_bytes()).is_ok(), "{valid}");
        for (body, message) in [
            (
                "customization:\n  systemExtension: {}\n",
                "field systemExtension not found in type schematic.Customization",
            ),
            (
                "customization:\n  systemExtensions:\n    officialExtension: [a]\n",
                "field officialExtension not found in type schematic.SystemExtensions",
            ),
            (
                "customization:\n  systemExtensions:\n    officialExtensions: x\n",
                "cannot construct !!str `x` into []",
            ),
            (
                "customization:\n  meta:\n    - key: 300\n      value: x\n",
                "cannot construct !!int `300` into uint8",
            ),
            (
                "customization:\n  meta:\n    - key: 1\n      val: x\n",
                "field val not found in type schematic.MetaValue",
            ),
            (
                "customization:\n  extraKernelArgs: [[a]]\n",
                "cannot construct !!seq into string",
            ),
            (
                "overlay:\n  nmae: x\n",
                "field nmae not found in type schematic.Overlay",
            ),
            (
                "customization: [a]\n",
                "cannot construct !!seq into schematic.Customization",
            ),
        ] {
            let error = parse_schematic(body.as_bytes()).unwrap_err();
            assert!(error.contains(message), "{body}: {error}");
        }
    }
}
