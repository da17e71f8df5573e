//! `data.talosmanager_servers`: the servers talos-manager knows, filtered.

use async_trait::async_trait;
use talos_manager_api_types::ServerView;

use super::{DataSource, server_attributes, server_values};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The data source.
pub(super) struct Servers;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_servers",
        kind: Kind::DataSource,
        version: 0,
        description: "The servers talos-manager knows (synced from every Hetzner account), by \
                      cluster then name, optionally filtered. Filters combine with AND.",
        attributes: vec![
            Attribute::computed("id", Type::String, "Always `servers`."),
            Attribute::optional(
                "provider_kind",
                Type::String,
                "Only `hetzner_robot` or only `hetzner_cloud` servers.",
            ),
            Attribute::optional(
                "provider_account_id",
                Type::String,
                "Only the servers synced from this provider account.",
            ),
            Attribute::optional(
                "cluster_id",
                Type::String,
                "Only the servers of this cluster.",
            ),
            Attribute::optional(
                "accessible",
                Type::Bool,
                "Only servers in rescue and reachable over SSH (true), or only the others \
                 (false).",
            ),
            Attribute::optional(
                "name_contains",
                Type::String,
                "Only servers whose name contains this string.",
            ),
            Attribute::computed_list_of("servers", server_attributes(), "The matching servers."),
        ],
        import: None,
        example: r#"
data "talosmanager_servers" "workers" {
  provider_kind = "hetzner_robot"
  name_contains = "worker"
}"#,
    }
}

#[async_trait]
impl DataSource for Servers {
    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, client: &Client, config: &Object) -> Result<Object, Error> {
        let mut query = Vec::new();
        if let Some(provider) = config.string("provider_kind") {
            query.push(format!("provider={}", segment(provider)));
        }
        if let Some(cluster_id) = config.string("cluster_id") {
            query.push(format!("cluster_id={}", segment(cluster_id)));
        }
        if let Some(accessible) = config.bool("accessible") {
            query.push(format!("accessible={accessible}"));
        }
        let path = if query.is_empty() {
            "/servers".to_owned()
        } else {
            format!("/servers?{}", query.join("&"))
        };
        let name_contains = config.string("name_contains").unwrap_or_default();
        let account_id = config.string("provider_account_id");
        let element = schema_element();
        let servers: Vec<Value> = client
            .get_existing::<Vec<ServerView>>(&path)
            .await?
            .into_iter()
            .filter(|server| {
                server.name.contains(name_contains)
                    && account_id.is_none_or(|id| server.provider_account_id == id)
            })
            .map(|server| Value::Map(element.object(server_values(server))))
            .collect();
        let mut state = config.clone();
        state.insert("id".into(), Value::String("servers".into()));
        state.insert("servers".into(), Value::List(servers));
        Ok(state)
    }
}

/// A schema whose attributes are a server's, to build complete element objects.
fn schema_element() -> Schema {
    Schema {
        attributes: server_attributes(),
        ..schema()
    }
}
