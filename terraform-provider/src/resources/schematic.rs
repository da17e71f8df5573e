//! `talosmanager_schematic`: an Image Factory schematic (`/schematics`). The service forces its
//! own `talos.config=` kernel argument into every body, so the state keeps the body the user
//! wrote and the service's version is a computed attribute; the two are compared as schematics
//! (see [`same_schematic`]), never as text, so the forced argument causes no diff.

use async_trait::async_trait;
use talos_manager_api_types::force_talos_config;
use talos_manager_api_types::{SchematicBody, SchematicView};

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct Schematic;

/// A config URL to force into both sides of a comparison: any fixed value works, since the
/// service's own URL is replaced by it too.
const COMPARISON_CONFIG_URL: &str = "https://talos-manager.invalid/config";

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_schematic",
        kind: Kind::Resource,
        version: 0,
        description: "An Image Factory schematic: system extensions, kernel arguments and \
                      overlays of the Talos images servers are bootstrapped with. On every save \
                      the service puts its own `talos.config=https://<HOST>/config` kernel \
                      argument into `customization.extraKernelArgs` (replacing any other \
                      `talos.config=`) and registers the result with the Image Factory. The \
                      state keeps `body` as written; `effective_body` is what the service \
                      registered, and a body only differs from the service's when it is a \
                      different schematic once that argument is forced in.",
        attributes: vec![
            Attribute::computed("id", Type::String, "The schematic's id in talos-manager."),
            Attribute::required("name", Type::String, "Its name, unique."),
            Attribute::optional(
                "body",
                Type::String,
                "The schematic, YAML or JSON, e.g. `customization: {systemExtensions: \
                 {officialExtensions: [siderolabs/amd-ucode]}}`. Default: empty (only the \
                 `talos.config=` argument).",
            ),
            Attribute::computed(
                "effective_body",
                Type::String,
                "The schematic as the service registered it, with its `talos.config=` \
                 argument (YAML).",
            ),
            Attribute::computed(
                "factory_id",
                Type::String,
                "The id the Image Factory gave it (64 hex characters), as in installer image \
                 names `factory.talos.dev/installer/<factory_id>:v1.13.9`.",
            ),
        ],
        import: Some(
            "By id: `terraform import talosmanager_schematic.NAME 1`. `body` is imported as the \
             service's effective body (null when that is only the `talos.config=` argument); a \
             configured `body` that is the same schematic plans no change.",
        ),
        example: r#"
resource "talosmanager_schematic" "amd" {
  name = "amd"
  body = <<-YAML
    customization:
      systemExtensions:
        officialExtensions:
          - siderolabs/amd-ucode
  YAML
}"#,
    }
}

/// Whether two bodies are the same schematic once the `talos.config=` argument is forced into
/// both (a body that is not a schematic is the same only as an equal text).
fn same_schematic(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        force_talos_config(a, COMPARISON_CONFIG_URL),
        force_talos_config(b, COMPARISON_CONFIG_URL),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The schematic as the service has it. `body` is the one Terraform knows when it is the same
/// schematic as the service's; else (changed outside Terraform, or imported) the service's.
fn object(view: SchematicView, known: &Object) -> Object {
    let body = match known.string("body") {
        Some(body) if same_schematic(body, &view.body) => Value::String(body.to_owned()),
        None if same_schematic("", &view.body) => Value::Null,
        _ => Value::String(view.body.clone()),
    };
    schema().object([
        ("id", Value::String(view.id)),
        ("name", Value::String(view.name)),
        ("body", body),
        ("effective_body", Value::String(view.body)),
        ("factory_id", Value::opt_string(view.factory_id)),
    ])
}

fn body(planned: &Object) -> SchematicBody {
    SchematicBody {
        name: planned.owned_string("name").unwrap_or_default(),
        body: planned.owned_string("body").unwrap_or_default(),
    }
}

#[async_trait]
impl Resource for Schematic {
    fn schema(&self) -> Schema {
        schema()
    }

    /// A body that is the same schematic as the registered one keeps the state's text (no
    /// diff); a different one is registered anew, with a new effective body and factory id.
    fn plan_update(&self, prior: &Object, planned: &mut Object) {
        let registered = prior.string("effective_body").unwrap_or_default();
        let same = match planned.get_value("body") {
            Value::Null => same_schematic("", registered),
            Value::String(body) => same_schematic(body, registered),
            _ => false,
        };
        if same {
            // Terraform accepts the prior value for an argument it considers equal.
            if let Value::String(_) = prior.get_value("body") {
                planned.insert("body".into(), prior.get_value("body").clone());
            }
        } else {
            planned.insert("effective_body".into(), Value::Unknown);
            planned.insert("factory_id".into(), Value::Unknown);
        }
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let view: SchematicView = client.post("/schematics", &body(planned)).await?;
        Ok(object(view, planned))
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<SchematicView> =
            client.get(&format!("/schematics/{}", segment(id))).await?;
        Ok(view.map(|view| object(view, prior)))
    }

    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        let view: SchematicView = client
            .put(&format!("/schematics/{}", segment(id)), &body(planned))
            .await?;
        Ok(object(view, planned))
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client
            .delete(&format!("/schematics/{}", segment(id)))
            .await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_URL: &str = "https://tm.example.com/config";

    #[test]
    fn the_forced_argument_makes_no_difference() {
        let body = "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/amd-ucode\n";
        let registered = force_talos_config(body, SERVICE_URL).unwrap();
        assert_ne!(body, registered);
        assert!(same_schematic(body, &registered));
        let json = r#"{"customization":{"systemExtensions":{"officialExtensions":["siderolabs/amd-ucode"]}}}"#;
        assert!(same_schematic(json, &registered));
        assert!(same_schematic(
            "",
            &force_talos_config("", SERVICE_URL).unwrap()
        ));
    }

    #[test]
    fn a_different_schematic_is_a_difference() {
        let registered =
            force_talos_config("customization:\n  extraKernelArgs: [noapic]\n", SERVICE_URL)
                .unwrap();
        assert!(!same_schematic("", &registered));
        assert!(!same_schematic(
            "customization:\n  extraKernelArgs: [nolapic]\n",
            &registered
        ));
        assert!(!same_schematic("customization: [", &registered));
    }
}
