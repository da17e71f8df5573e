//! `talosmanager_machine_config`: binds a server to a config with its hostname, private IP and
//! disks (`/machine-configs`). The API has no update, so every argument that the service stores
//! replaces it; `already_configured` acts only at creation and changes in place (in the state).

use async_trait::async_trait;
use talos_manager_api_types::{CreateMachineConfig, MachineConfigView, MachineTypeName};

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct MachineConfig;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_machine_config",
        kind: Kind::Resource,
        version: 0,
        description: "The machine config of one server: which config template it boots with, \
                      its hostname, private IP and disks. A server has at most one; creating \
                      another for the same server replaces the first. The service cannot \
                      change a machine config in place, so changing any argument but \
                      `already_configured` replaces it.",
        attributes: vec![
            Attribute::computed("id", Type::String, "The machine config's id."),
            Attribute::required(
                "server_id",
                Type::String,
                "The server, `robot-<server number>` or `cloud-<id>`.",
            )
            .force_new(),
            Attribute::required("config_id", Type::String, "The config template's id.").force_new(),
            Attribute::optional_computed(
                "hostname",
                Type::String,
                "The node's hostname, `[a-z-]+-N`. Default: the server's name.",
            )
            .force_new(),
            Attribute::optional_computed(
                "private_ip",
                Type::String,
                "The node's private IP, `10.0.x.N` with N the hostname's number. Default from \
                 the hostname: control-plane → 10.0.0.N, database → 10.0.2.N, standby → \
                 10.0.7.N, others 10.0.1.N.",
            )
            .force_new(),
            Attribute::optional_computed(
                "install_disk",
                Type::String,
                "The disk Talos installs to. Default: the disk the server was bootstrapped on, \
                 else `/dev/sda`.",
            )
            .force_new(),
            Attribute::optional(
                "ephemeral_disk_identifier",
                Type::String,
                "A disk for the EPHEMERAL volume: `wwid:<wwid>` or `uuid:<md array uuid>`.",
            )
            .force_new(),
            Attribute::optional_computed(
                "machine_type",
                Type::String,
                "`controlplane` or `worker`: what the node is served and treated as. Default: \
                 from the server's name when the machine config is created (containing \
                 `control-plane`: a control plane); renaming the server later does not change \
                 it. A control plane is served the cluster's CA keys.",
            )
            .force_new(),
            Attribute::optional(
                "already_configured",
                Type::Bool,
                "The node was configured outside talos-manager: mark it configured when the \
                 machine config is created. Used only at creation: changing it later changes \
                 nothing in the service.",
            ),
        ],
        import: Some(
            "By id: `terraform import talosmanager_machine_config.NAME 12`. \
             `already_configured` is not stored by the service: it imports as null, and setting \
             it afterwards changes only the state.",
        ),
        example: r#"
resource "talosmanager_machine_config" "worker_1" {
  server_id = "robot-1234567"
  config_id = "1"
  hostname  = "worker-1"
}"#,
    }
}

fn object(view: MachineConfigView, prior: &Object) -> Object {
    schema().object([
        ("id", Value::String(view.id)),
        ("server_id", Value::String(view.server_id)),
        ("config_id", Value::String(view.config_id)),
        ("hostname", Value::String(view.hostname)),
        ("private_ip", Value::String(view.private_ip)),
        ("install_disk", Value::String(view.install_disk)),
        (
            "ephemeral_disk_identifier",
            Value::opt_string(view.ephemeral_disk_identifier),
        ),
        (
            "machine_type",
            Value::String(
                match view.machine_type {
                    MachineTypeName::Controlplane => "controlplane",
                    MachineTypeName::Worker => "worker",
                }
                .to_owned(),
            ),
        ),
        // Not stored by the service: what Terraform had.
        (
            "already_configured",
            prior.get_value("already_configured").clone(),
        ),
    ])
}

/// The API's name of `controlplane` or `worker`.
fn machine_type_name(text: &str) -> Option<MachineTypeName> {
    match text {
        "controlplane" => Some(MachineTypeName::Controlplane),
        "worker" => Some(MachineTypeName::Worker),
        _ => None,
    }
}

#[async_trait]
impl Resource for MachineConfig {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        let mut issues = Vec::new();
        if let Some(machine_type) = config.string("machine_type")
            && machine_type_name(machine_type).is_none()
        {
            issues.push(talos_manager_api_types::Issue::new(
                "machine_type",
                format!("{machine_type:?} is neither \"controlplane\" nor \"worker\""),
            ));
        }
        talos_manager_api_types::ValidationError::check("machine config", issues).map_err(|error| {
            Error::Invalid {
                what: error.what,
                issues: error.issues,
            }
        })
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let body = CreateMachineConfig {
            server_id: planned.owned_string("server_id").unwrap_or_default(),
            config_id: planned.owned_string("config_id").unwrap_or_default(),
            hostname: planned.owned_string("hostname"),
            private_ip: planned.owned_string("private_ip"),
            install_disk: planned.owned_string("install_disk"),
            ephemeral_disk_identifier: planned.owned_string("ephemeral_disk_identifier"),
            machine_type: planned.string("machine_type").and_then(machine_type_name),
            already_configured: planned.bool("already_configured").unwrap_or(false),
        };
        let view: MachineConfigView = client.post("/machine-configs", &body).await?;
        Ok(object(view, planned))
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<MachineConfigView> = client
            .get(&format!("/machine-configs/{}", segment(id)))
            .await?;
        Ok(view.map(|view| object(view, prior)))
    }

    /// Only `already_configured` can change in place (every other argument is force-new), and
    /// it acts only at creation: the object is read back with the new value.
    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        self.read(client, id, planned)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "machine config",
                id: id.to_owned(),
            })
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client
            .delete(&format!("/machine-configs/{}", segment(id)))
            .await?;
        Ok(None)
    }
}
