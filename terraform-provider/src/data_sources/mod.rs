//! Data sources: one file per data source type, each implementing [`DataSource`]. Adding one:
//! write `data_sources/<name>.rs` and list it in [`all`].

mod cluster_health;
mod server;
mod servers;
mod talos_versions;

use async_trait::async_trait;
use talos_manager_api_types::ServerView;
use time::format_description::well_known::Rfc3339;

use crate::client::Client;
use crate::error::Error;
use crate::schema::{Attribute, Schema};
use crate::value::{Object, Type, Value};

/// A data source type: its schema and how to read it.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// The declaration of its attributes.
    fn schema(&self) -> Schema;

    /// Checks a configuration (values may be null or unknown).
    fn validate(&self, config: &Object) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// Reads it: the configuration echoed back with the computed attributes filled in.
    async fn read(&self, client: &Client, config: &Object) -> Result<Object, Error>;
}

/// Every data source type of the provider.
pub fn all() -> Vec<Box<dyn DataSource>> {
    vec![
        Box::new(cluster_health::ClusterHealth),
        Box::new(server::Server),
        Box::new(servers::Servers),
        Box::new(talos_versions::TalosVersions),
    ]
}

/// The attributes of a server, shared by `talosmanager_server` (top-level) and
/// `talosmanager_servers` (each element of `servers`). `id` and `name` come first.
fn server_attributes() -> Vec<Attribute> {
    let text = |name, description| Attribute::computed(name, Type::String, description);
    let flag = |name, description| Attribute::computed(name, Type::Bool, description);
    vec![
        text("id", "`robot-<server number>` or `cloud-<id>`."),
        text("name", "Its name at the provider."),
        text(
            "provider_kind",
            "`hetzner_robot` or `hetzner_cloud` (`provider` in the API; the name is reserved \
             in Terraform).",
        ),
        text(
            "provider_account_id",
            "The provider account it was synced from.",
        ),
        text("ipv4", "Public IPv4 address."),
        text("ipv6", "Public IPv6 network."),
        text("product", "Product or server type."),
        text("data_center", "Data center or location."),
        text("status", "The provider's status."),
        flag("cancelled", "Cancelled at the provider."),
        text("architecture", "`amd64` or `arm64`."),
        text("vswitch_id", "The Robot vSwitch it is attached to."),
        text("cluster_id", "The cluster it belongs to."),
        flag(
            "accessible",
            "In rescue and reachable over SSH at the last probe.",
        ),
        text("uuid", "SMBIOS UUID, recorded in rescue."),
        text("bootstrap_disk", "The disk Talos was written to."),
        text("bootstrap_disk_wwid", "That disk's WWID."),
        text("schematic_id", "The Image Factory schematic chosen for it."),
        text(
            "last_request_for_configuration_at",
            "When it last asked for its machine config (RFC 3339).",
        ),
        text(
            "last_configured_at",
            "When it was last served a machine config (RFC 3339).",
        ),
        text(
            "label_and_taint_job_completed_at",
            "When its labels and taints were last applied (RFC 3339).",
        ),
    ]
}

/// A server's attributes as values, in [`server_attributes`]'s names.
fn server_values(server: ServerView) -> Vec<(&'static str, Value)> {
    let time = |at: Option<time::OffsetDateTime>| {
        Value::opt_string(at.and_then(|at| at.format(&Rfc3339).ok()))
    };
    vec![
        ("id", Value::String(server.id)),
        ("name", Value::String(server.name)),
        ("provider_kind", Value::String(server.provider)),
        (
            "provider_account_id",
            Value::String(server.provider_account_id),
        ),
        ("ipv4", Value::opt_string(server.ipv4)),
        ("ipv6", Value::opt_string(server.ipv6)),
        ("product", Value::String(server.product)),
        ("data_center", Value::String(server.data_center)),
        ("status", Value::String(server.status)),
        ("cancelled", Value::Bool(server.cancelled)),
        ("architecture", Value::String(server.architecture)),
        ("vswitch_id", Value::opt_string(server.vswitch_id)),
        ("cluster_id", Value::opt_string(server.cluster_id)),
        ("accessible", Value::Bool(server.accessible)),
        ("uuid", Value::opt_string(server.uuid)),
        ("bootstrap_disk", Value::opt_string(server.bootstrap_disk)),
        (
            "bootstrap_disk_wwid",
            Value::opt_string(server.bootstrap_disk_wwid),
        ),
        ("schematic_id", Value::opt_string(server.schematic_id)),
        (
            "last_request_for_configuration_at",
            time(server.last_request_for_configuration_at),
        ),
        ("last_configured_at", time(server.last_configured_at)),
        (
            "label_and_taint_job_completed_at",
            time(server.label_and_taint_job_completed_at),
        ),
    ]
}
