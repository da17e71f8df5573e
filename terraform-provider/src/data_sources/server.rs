//! `data.talosmanager_server`: one server, by id or by name.

use async_trait::async_trait;
use talos_manager_api_types::Issue;
use talos_manager_api_types::ServerView;

use super::{DataSource, server_attributes, server_values};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Kind, ObjectExt as _, Presence, Schema};
use crate::value::{Object, Value};

/// The data source.
pub(super) struct Server;

fn schema() -> Schema {
    let mut attributes = server_attributes();
    for attribute in &mut attributes {
        if attribute.name == "id" {
            attribute.presence = Presence::OptionalComputed;
            attribute.description = "The server to look up, `robot-<server number>` or \
                                     `cloud-<id>`. Set `id` or `name`.";
        }
        if attribute.name == "name" {
            attribute.presence = Presence::OptionalComputed;
            attribute.description = "The server to look up by its name at the provider (it \
                                     must be unique). Set `id` or `name`.";
        }
    }
    Schema {
        type_name: "talosmanager_server",
        kind: Kind::DataSource,
        version: 0,
        description: "One server talos-manager knows (synced from a Hetzner account), by id or \
                      by name.",
        attributes,
        import: None,
        example: r#"
data "talosmanager_server" "worker_1" {
  name = "worker-1"
}"#,
    }
}

fn invalid(issue: Issue) -> Error {
    Error::Invalid {
        what: "server lookup",
        issues: vec![issue],
    }
}

#[async_trait]
impl DataSource for Server {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        let set = |name| config.get_value(name) != &Value::Null;
        match (set("id"), set("name")) {
            (true, true) => Err(invalid(Issue::new(
                "name",
                "set either id or name, not both",
            ))),
            (false, false) => Err(invalid(Issue::new("id", "set id or name"))),
            _ => Ok(()),
        }
    }

    async fn read(&self, client: &Client, config: &Object) -> Result<Object, Error> {
        let server = if let Some(id) = config.string("id") {
            client
                .get::<ServerView>(&format!("/servers/{}", segment(id)))
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "server",
                    id: id.to_owned(),
                })?
        } else {
            let name = config.string("name").unwrap_or_default();
            let mut matching: Vec<ServerView> = client
                .get_existing::<Vec<ServerView>>("/servers")
                .await?
                .into_iter()
                .filter(|server| server.name == name)
                .collect();
            match matching.len() {
                1 => matching.remove(0),
                0 => {
                    return Err(Error::NotFound {
                        what: "server named",
                        id: name.to_owned(),
                    });
                }
                n_servers => {
                    return Err(invalid(Issue::new(
                        "name",
                        format!("{n_servers} servers are named {name:?}; look it up by id"),
                    )));
                }
            }
        };
        Ok(schema().object(server_values(server)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_and_name_are_the_only_arguments() {
        let schema = super::schema();
        let arguments: Vec<&str> = schema
            .attributes
            .iter()
            .filter(|attribute| attribute.is_settable())
            .map(|attribute| attribute.name)
            .collect();
        assert_eq!(arguments, ["id", "name"]);
    }
}
