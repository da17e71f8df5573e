//! `ephemeral "talosmanager_talosconfig"` and `ephemeral "talosmanager_kubeconfig"`: a
//! cluster's client configs (`/clusters/{id}/talosconfig`, `/clusters/{id}/kubeconfig`) issued
//! for one run, never stored in the state or the plan file.

use async_trait::async_trait;
use talos_manager_api_types::Issue;

use super::EphemeralResource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// Which client config.
pub(super) enum ClientConfig {
    /// `talosmanager_talosconfig`.
    Talosconfig,
    /// `talosmanager_kubeconfig`.
    Kubeconfig,
}

impl ClientConfig {
    /// The attribute holding the config, and the API path's last segment.
    fn name(&self) -> &'static str {
        match self {
            ClientConfig::Talosconfig => "talosconfig",
            ClientConfig::Kubeconfig => "kubeconfig",
        }
    }
}

#[async_trait]
impl EphemeralResource for ClientConfig {
    fn schema(&self) -> Schema {
        let (type_name, description, config_description, example) = match self {
            ClientConfig::Talosconfig => (
                "talosmanager_talosconfig",
                "A talosconfig for a cluster (an `os:admin` client certificate), issued for \
                 this run and never written to the state or the plan file (an ephemeral \
                 resource: Terraform 1.10+ or OpenTofu 1.11+). Use it where an ephemeral value \
                 is accepted: another provider's configuration, a provisioner, a module's \
                 ephemeral input. On older CLIs use `talosmanager_cluster`'s `talosconfig` \
                 (kept in the state).",
                "The talosconfig (YAML).",
                r#"
ephemeral "talosmanager_talosconfig" "production" {
  cluster_id = talosmanager_cluster.production.id
}

# Ephemeral values go where the CLI accepts them: provider blocks, provisioners, write-only
# arguments, a module's ephemeral variables and outputs.
resource "terraform_data" "health" {
  provisioner "local-exec" {
    command     = "printf '%s' \"$TALOSCONFIG_YAML\" > talosconfig && talosctl --talosconfig talosconfig health"
    environment = { TALOSCONFIG_YAML = ephemeral.talosmanager_talosconfig.production.talosconfig }
  }
}"#,
            ),
            ClientConfig::Kubeconfig => (
                "talosmanager_kubeconfig",
                "An admin kubeconfig for a cluster (`system:masters`), issued for this run and \
                 never written to the state or the plan file (an ephemeral resource: \
                 Terraform 1.10+ or OpenTofu 1.11+). Use it where an ephemeral value is \
                 accepted, e.g. to configure the kubernetes provider. On older CLIs use \
                 `talosmanager_cluster`'s `kubeconfig` (kept in the state).",
                "The kubeconfig (YAML).",
                r#"
ephemeral "talosmanager_kubeconfig" "production" {
  cluster_id = talosmanager_cluster.production.id
}

locals {
  kubeconfig = yamldecode(ephemeral.talosmanager_kubeconfig.production.kubeconfig)
}

provider "kubernetes" {
  host                   = local.kubeconfig.clusters[0].cluster.server
  cluster_ca_certificate = base64decode(local.kubeconfig.clusters[0].cluster["certificate-authority-data"])
  client_certificate     = base64decode(local.kubeconfig.users[0].user["client-certificate-data"])
  client_key             = base64decode(local.kubeconfig.users[0].user["client-key-data"])
}"#,
            ),
        };
        Schema {
            type_name,
            kind: Kind::EphemeralResource,
            version: 0,
            description,
            attributes: vec![
                Attribute::required(
                    "cluster_id",
                    Type::String,
                    "The cluster's id (`talosmanager_cluster.NAME.id`).",
                ),
                Attribute::computed(self.name(), Type::String, config_description).sensitive(),
            ],
            import: None,
            example,
        }
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        if config.string("cluster_id").is_some_and(str::is_empty) {
            return Err(Error::Invalid {
                what: "client config",
                issues: vec![Issue::new("cluster_id", "must not be empty")],
            });
        }
        Ok(())
    }

    async fn open(&self, client: &Client, config: &Object) -> Result<Object, Error> {
        let cluster_id = config.owned_string("cluster_id").unwrap_or_default();
        let text = client
            .get_text(&format!(
                "/clusters/{}/{}",
                segment(&cluster_id),
                self.name()
            ))
            .await?;
        Ok(self.schema().object([
            ("cluster_id", Value::String(cluster_id)),
            (self.name(), Value::String(text)),
        ]))
    }
}
