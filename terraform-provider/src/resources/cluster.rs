//! `talosmanager_cluster`: a Talos cluster with its secrets bundle, and the talosconfig and
//! admin kubeconfig issued for it (`/clusters`).

use async_trait::async_trait;
use talos_manager_api_types::{ClusterBody, ClusterView, Issue};

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct Cluster;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_cluster",
        kind: Kind::Resource,
        version: 0,
        description: "A Talos cluster: its name, Kubernetes API endpoint and secrets bundle. The \
                      service makes the secrets bundle unless one is imported. A talosconfig \
                      and an admin kubeconfig are issued when the cluster is created (or \
                      imported, or its endpoint changes); `terraform apply -replace=ADDRESS` \
                      issues new ones. A new `name` is an in-place update (same secrets \
                      bundle, new client configs); only new `secrets` replace the cluster. \
                      A cluster that servers still belong to cannot be destroyed (the service \
                      answers 409 `in_use`): detach or delete its servers first.",
        attributes: vec![
            Attribute::computed("id", Type::String, "The cluster's id."),
            Attribute::required(
                "name",
                Type::String,
                "Its name: lowercase letters, digits and dashes. Changing it renames the \
                 cluster in place: the secrets bundle (its CAs and keys) stays.",
            ),
            Attribute::required(
                "endpoint",
                Type::String,
                "The Kubernetes API endpoint, `https://host:port`.",
            ),
            Attribute::optional(
                "vswitch_id",
                Type::String,
                "The Robot vSwitch whose VLAN fills `${vlan}` in patches.",
            ),
            Attribute::optional_computed(
                "secrets",
                Type::String,
                "The secrets bundle (`talosctl gen secrets` YAML). Set it to manage an \
                 existing cluster; else the service makes one. Stored in the state: keep the \
                 state secret.",
            )
            .sensitive()
            .force_new(),
            Attribute::optional(
                "secrets_in_state",
                Type::Bool,
                "Whether the secrets bundle the service made is read into `secrets` in the \
                 state. Default: true. Set it to false to keep the cluster's CA keys out of \
                 the state (they stay in talos-manager); `secrets` is then null and must not \
                 be set (a value set in the configuration is always stored by the CLI).",
            ),
            Attribute::optional(
                "client_configs_in_state",
                Type::Bool,
                "Whether `talosconfig` and `kubeconfig` are issued into the state. Default: \
                 true (Terraform 1.0–1.9 have no other way). On Terraform 1.10+ or OpenTofu \
                 1.11+ set it to false and use the ephemeral resources \
                 `talosmanager_talosconfig` and `talosmanager_kubeconfig`: then neither config \
                 is ever written to the state or the plan file.",
            ),
            Attribute::computed(
                "talosconfig",
                Type::String,
                "A talosconfig with an `os:admin` client certificate; null when \
                 `client_configs_in_state` is false.",
            )
            .sensitive(),
            Attribute::computed(
                "kubeconfig",
                Type::String,
                "An admin kubeconfig (`system:masters`); null when `client_configs_in_state` \
                 is false.",
            )
            .sensitive(),
        ],
        import: Some(
            "By id: `terraform import talosmanager_cluster.NAME 1`. The secrets bundle is read \
             from the service, and a talosconfig and kubeconfig are issued.",
        ),
        example: r#"
resource "talosmanager_cluster" "production" {
  name     = "production"
  endpoint = "https://10.0.0.1:6443"
}

output "kubeconfig" {
  value     = talosmanager_cluster.production.kubeconfig
  sensitive = true
}"#,
    }
}

fn body(planned: &Object, with_secrets: bool) -> ClusterBody {
    ClusterBody {
        name: planned.owned_string("name").unwrap_or_default(),
        endpoint: planned.owned_string("endpoint").unwrap_or_default(),
        vswitch_id: planned.owned_string("vswitch_id"),
        secrets: planned.owned_string("secrets").filter(|_| with_secrets),
    }
}

/// Whether the secrets bundle goes into the state (`secrets_in_state`, default true).
fn secrets_in_state(object: &Object) -> bool {
    *object.get_value("secrets_in_state") != Value::Bool(false)
}

/// Whether the client configs go into the state (`client_configs_in_state`, default true).
fn client_configs_in_state(object: &Object) -> bool {
    *object.get_value("client_configs_in_state") != Value::Bool(false)
}

/// The cluster as the service has it. Secrets, talosconfig and kubeconfig are kept from
/// `known` when there; otherwise read or issued now (the configs only when they go into the
/// state).
async fn object(client: &Client, view: ClusterView, known: &Object) -> Result<Object, Error> {
    let in_state = client_configs_in_state(known);
    let path = format!("/clusters/{}", segment(&view.id));
    let secrets = match known.string("secrets") {
        _ if !secrets_in_state(known) => Value::Null,
        Some(secrets) => Value::String(secrets.to_owned()),
        None => Value::String(
            client
                .get_existing::<ClusterView>(&format!("{path}?include_secrets=true"))
                .await?
                .secrets
                .unwrap_or_default(),
        ),
    };
    let talosconfig = match known.string("talosconfig") {
        _ if !in_state => Value::Null,
        Some(talosconfig) => Value::String(talosconfig.to_owned()),
        None => Value::String(client.get_text(&format!("{path}/talosconfig")).await?),
    };
    let kubeconfig = match known.string("kubeconfig") {
        _ if !in_state => Value::Null,
        Some(kubeconfig) => Value::String(kubeconfig.to_owned()),
        None => Value::String(client.get_text(&format!("{path}/kubeconfig")).await?),
    };
    Ok(schema().object([
        ("id", Value::String(view.id)),
        ("name", Value::String(view.name)),
        ("endpoint", Value::String(view.endpoint)),
        ("vswitch_id", Value::opt_string(view.vswitch_id)),
        ("secrets", secrets),
        (
            "secrets_in_state",
            known.get_value("secrets_in_state").clone(),
        ),
        (
            "client_configs_in_state",
            known.get_value("client_configs_in_state").clone(),
        ),
        ("talosconfig", talosconfig),
        ("kubeconfig", kubeconfig),
    ]))
}

#[async_trait]
impl Resource for Cluster {
    fn schema(&self) -> Schema {
        schema()
    }

    /// Secrets set in the configuration are always in the state: refused with
    /// `secrets_in_state = false`.
    fn validate(&self, config: &Object) -> Result<(), Error> {
        if !secrets_in_state(config) && config.string("secrets").is_some() {
            return Err(Error::Invalid {
                what: "cluster",
                issues: vec![Issue::new(
                    "secrets",
                    "with secrets_in_state = false the service makes the secrets bundle: a \
                     bundle set here is stored in the state by the CLI",
                )],
            });
        }
        Ok(())
    }

    /// No client configs when they stay out of the state: the plan says null, not "known
    /// after apply".
    fn plan_create(&self, planned: &mut Object) {
        if !secrets_in_state(planned) {
            planned.insert("secrets".into(), Value::Null);
        }
        if !client_configs_in_state(planned) {
            planned.insert("talosconfig".into(), Value::Null);
            planned.insert("kubeconfig".into(), Value::Null);
        }
    }

    /// A new name, endpoint or vSwitch means new client configs (the secrets stay); none when
    /// they stay out of the state.
    fn plan_update(&self, prior: &Object, planned: &mut Object) {
        if !secrets_in_state(planned) {
            planned.insert("secrets".into(), Value::Null);
        } else if !secrets_in_state(prior) {
            planned.insert("secrets".into(), Value::Unknown);
        }
        let changed = |name| prior.get_value(name) != planned.get_value(name);
        if !client_configs_in_state(planned) {
            planned.insert("talosconfig".into(), Value::Null);
            planned.insert("kubeconfig".into(), Value::Null);
        } else if changed("name")
            || changed("endpoint")
            || changed("vswitch_id")
            || !client_configs_in_state(prior)
        {
            planned.insert("talosconfig".into(), Value::Unknown);
            planned.insert("kubeconfig".into(), Value::Unknown);
        }
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let view: ClusterView = client.post("/clusters", &body(planned, true)).await?;
        object(client, view, planned).await
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<ClusterView> = client.get(&format!("/clusters/{}", segment(id))).await?;
        match view {
            Some(view) => Ok(Some(object(client, view, prior).await?)),
            None => Ok(None),
        }
    }

    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        // The secrets are force-new: an update keeps them.
        let view: ClusterView = client
            .put(&format!("/clusters/{}", segment(id)), &body(planned, false))
            .await?;
        object(client, view, planned).await
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client.delete(&format!("/clusters/{}", segment(id))).await?;
        Ok(None)
    }
}
