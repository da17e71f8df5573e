//! A wire-level fake of the Talos Image Factory (research note `factory-talosapi-k8s.md`, part A):
//! `POST /schematics` and `GET /versions`; anything else answers 501.

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
/// * `POST /schematics`: the body is parsed as YAML (JSON too); top-level keys other than
///   `customization` and `overlay` get 400 in plain text (`owner` with the community edition's
///   message). The id is the lowercase hex SHA-256 of a canonical form (keys sorted, lists in
///   order), so equal content gives equal ids, like the real factory's content hashes (not
///   byte-equal to them). Answers 201 `{"id", "schematic"}`.
/// * `GET /versions`: a JSON array of strings, ascending ([`FakeImageFactory::set_versions`]).
/// * `GET /schematics/{id}`: the stored canonical form, or 404 `schematic not found`.
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
    let Value::Object(top) = &value else {
        return Err("yaml: cannot unmarshal into type schematic.Schematic".to_owned());
    };
    for key in top.keys() {
        match key.as_str() {
            "customization" | "overlay" => {}
            "owner" => return Err("owner field is only supported in Enterprise edition".into()),
            other => {
                return Err(format!(
                    "yaml: construct errors: line 1: field {other} not found in type schematic.Schematic"
                ));
            }
        }
    }
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let id = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok((id, canonical))
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
}
