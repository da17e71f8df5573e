//! `talosmanager_config`: a config template (installer image, Kubernetes version, KubeSpan,
//! patches), checked by the service on save (`/configs`, full CRUD).

use async_trait::async_trait;
use talos_manager_api_types::{
    ConfigBody, ConfigView, SupportedTalosVersionsView, newer_talos_minor_of,
};

use super::{Resource, empty_as_prior, without_unknown};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct Config;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_config",
        kind: Kind::Resource,
        version: 0,
        description: "A config template: the installer image, Kubernetes version, KubeSpan and \
                      patches that servers bound to it boot with. The service generates and \
                      validates a control-plane and a worker config from it on every save; \
                      each problem is reported on the argument it comes from.",
        attributes: vec![
            Attribute::computed("id", Type::String, "The config's id."),
            Attribute::required("name", Type::String, "Its name, unique."),
            Attribute::optional_computed(
                "install_image",
                Type::String,
                "The Talos installer image; its tag picks the config format \
                 (`…/metal-installer/<schematic>:v1.14.1` → Talos 1.14, \
                 `ghcr.io/siderolabs/installer:v1.13.9` → Talos 1.13). Default: the \
                 installer of the service's default Talos version (the newest it knows). The \
                 service sets each node's hostname (`machine.network.hostname` up to Talos \
                 1.11, a `HostnameConfig` document from 1.12 on): leave it out of the patches.",
            ),
            Attribute::optional_computed(
                "kubernetes_version",
                Type::String,
                "The Kubernetes version for new clusters, e.g. `1.36.3`. Default: the \
                 service's default Kubernetes version (that of its default Talos).",
            ),
            Attribute::optional_computed(
                "kubespan",
                Type::Bool,
                "Whether KubeSpan (WireGuard mesh between nodes) is enabled. Default: true.",
            ),
            Attribute::optional(
                "patch",
                Type::String,
                "A patch for every node (strategic merge YAML or JSON patch). May use \
                 `${hostname}`, `${private_ip}`, `${public_ip}`, `${vlan}` and \
                 `${bootstrap_disk_wwid}` (write `$${…}` in HCL).",
            ),
            Attribute::optional(
                "patch_control_plane",
                Type::String,
                "A patch for control-plane nodes only, applied after `patch`.",
            ),
            Attribute::optional(
                "patch_worker",
                Type::String,
                "A patch for worker nodes only, applied after `patch`.",
            ),
        ],
        import: Some("By id: `terraform import talosmanager_config.NAME 1`."),
        example: r#"
resource "talosmanager_config" "default" {
  name               = "default"
  install_image      = "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1"
  kubernetes_version = "1.37.0"
  # Talos 1.14 writes node labels as a KubeNodeConfig document.
  patch              = <<-YAML
    apiVersion: v1alpha1
    kind: KubeNodeConfig
    labels:
      example.com/node: $${hostname}
  YAML
}"#,
    }
}

/// The request body; arguments left to the service (unknown in the plan) are left out.
fn body(planned: &Object) -> serde_json::Value {
    let body = ConfigBody {
        name: planned.owned_string("name").unwrap_or_default(),
        install_image: planned.owned_string("install_image").unwrap_or_default(),
        kubernetes_version: planned
            .owned_string("kubernetes_version")
            .unwrap_or_default(),
        kubespan: planned.bool("kubespan").unwrap_or(true),
        patch: planned.owned_string("patch").unwrap_or_default(),
        patch_control_plane: planned
            .owned_string("patch_control_plane")
            .unwrap_or_default(),
        patch_worker: planned.owned_string("patch_worker").unwrap_or_default(),
    };
    without_unknown(&body, planned)
}

/// The service's warnings about a saved template, as Terraform warnings: its installer's Talos
/// minor newer than every version it knows (`install_image`, the plan's
/// [`NEWER_TALOS_VERSION`] warning again) as is, and one per warning of Talos about the configs
/// the template generates (deprecated fields), its detail the path and Talos's text.
fn talos_warnings(view: &mut ConfigView) -> Vec<(String, String)> {
    std::mem::take(&mut view.warnings)
        .into_iter()
        .map(|warning| {
            if warning.path == "install_image" {
                (NEWER_TALOS_VERSION.to_owned(), warning.message)
            } else {
                (
                    "Talos warns about this config template".to_owned(),
                    format!("{}: {}", warning.path, warning.message),
                )
            }
        })
        .collect()
}

fn object(view: ConfigView, prior: &Object) -> Object {
    let fields = view.fields;
    schema().object([
        ("id", Value::String(view.id)),
        ("name", Value::String(fields.name)),
        ("install_image", Value::String(fields.install_image)),
        (
            "kubernetes_version",
            Value::String(fields.kubernetes_version),
        ),
        ("kubespan", Value::Bool(fields.kubespan)),
        ("patch", empty_as_prior(fields.patch, prior, "patch")),
        (
            "patch_control_plane",
            empty_as_prior(fields.patch_control_plane, prior, "patch_control_plane"),
        ),
        (
            "patch_worker",
            empty_as_prior(fields.patch_worker, prior, "patch_worker"),
        ),
    ])
}

/// The summary of the warning about an installer of a Talos minor newer than every version
/// talos-manager knows.
const NEWER_TALOS_VERSION: &str = "Newer Talos version";

/// The warning of a planned config whose installer is a Talos minor newer than every version
/// talos-manager knows, before the service is asked to save it (the API's `warnings` after):
/// the newest one is the first the service lists at `/talos-versions/supported`. None when the
/// image is not known yet or the service does not say (an older service, an error: the save
/// answers the warning anyway).
async fn newer_talos_warning(client: &Client, planned: &Object) -> Option<(&'static str, String)> {
    let install_image = planned.string("install_image")?;
    let supported: SupportedTalosVersionsView =
        match client.get_existing("/talos-versions/supported").await {
            Ok(supported) => supported,
            Err(error) => {
                tracing::debug!(error = %error, "no supported Talos versions to plan with");
                return None;
            }
        };
    let newest = supported.versions.first()?;
    newer_talos_minor_of(install_image, &newest.release)
        .map(|newer| (NEWER_TALOS_VERSION, newer.to_string()))
}

#[async_trait]
impl Resource for Config {
    fn schema(&self) -> Schema {
        schema()
    }

    async fn service_plan_warning(
        &self,
        client: &Client,
        planned: &Object,
    ) -> Option<(&'static str, String)> {
        newer_talos_warning(client, planned).await
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        Ok(self.create_with_warnings(client, planned).await?.0)
    }

    async fn create_with_warnings(
        &self,
        client: &Client,
        planned: &Object,
    ) -> Result<(Object, Vec<(String, String)>), Error> {
        let mut view: ConfigView = client.post("/configs", &body(planned)).await?;
        let warnings = talos_warnings(&mut view);
        Ok((object(view, planned), warnings))
    }

    async fn update_with_warnings(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<(Object, Vec<(String, String)>), Error> {
        let mut view: ConfigView = client
            .put(&format!("/configs/{}", segment(id)), &body(planned))
            .await?;
        let warnings = talos_warnings(&mut view);
        Ok((object(view, planned), warnings))
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<ConfigView> = client.get(&format!("/configs/{}", segment(id))).await?;
        Ok(view.map(|view| object(view, prior)))
    }

    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        prior: &Object,
    ) -> Result<Object, Error> {
        Ok(self
            .update_with_warnings(client, id, planned, prior)
            .await?
            .0)
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client.delete(&format!("/configs/{}", segment(id))).await?;
        Ok(None)
    }
}
