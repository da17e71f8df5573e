//! `talosmanager_settings`: the service's bootstrap defaults (`/settings`), a singleton. Create
//! and update save them; destroy leaves them as they are.

use async_trait::async_trait;
use talos_manager_api_types::{SettingsView, UpdateSettings};

use super::Resource;
use crate::client::Client;
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct Settings;

/// The id of the one settings object.
const ID: &str = "settings";

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_settings",
        kind: Kind::Resource,
        version: 0,
        description: "The bootstrap defaults of talos-manager. There is one set of settings per \
                      service: declare this resource at most once. Destroying it leaves the \
                      settings as they are.",
        attributes: vec![
            Attribute::computed("id", Type::String, "Always `settings`."),
            Attribute::required(
                "talos_version",
                Type::String,
                "The Talos version installed when a bootstrap names none, `vX.Y.Z`.",
            ),
            Attribute::optional(
                "default_schematic_id",
                Type::String,
                "The Image Factory schematic used when a server has none of its own.",
            ),
        ],
        import: Some(
            "With the id `settings`: `terraform import talosmanager_settings.NAME settings`.",
        ),
        example: r#"
resource "talosmanager_settings" "this" {
  talos_version = "v1.13.9"
}"#,
    }
}

fn object(view: SettingsView) -> Object {
    schema().object([
        ("id", Value::String(ID.into())),
        ("talos_version", Value::String(view.talos_version)),
        (
            "default_schematic_id",
            Value::opt_string(view.default_schematic_id),
        ),
    ])
}

async fn save(client: &Client, planned: &Object) -> Result<Object, Error> {
    let body = UpdateSettings {
        talos_version: planned.owned_string("talos_version").unwrap_or_default(),
        default_schematic_id: planned.owned_string("default_schematic_id"),
    };
    let view: SettingsView = client.put("/settings", &body).await?;
    Ok(object(view))
}

#[async_trait]
impl Resource for Settings {
    fn schema(&self) -> Schema {
        schema()
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        save(client, planned).await
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<Object>, Error> {
        if id != ID {
            return Ok(None);
        }
        let view: SettingsView = client.get_existing("/settings").await?;
        Ok(Some(object(view)))
    }

    async fn update(
        &self,
        client: &Client,
        _id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        save(client, planned).await
    }

    async fn delete(
        &self,
        _client: &Client,
        _id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        Ok(Some(
            "talos-manager settings cannot be deleted: they were removed from the Terraform \
             state and stay as they are in the service"
                .into(),
        ))
    }
}
