//! `talosmanager_server`: adopts a server talos-manager synced from Hetzner (`/servers/{id}`)
//! and manages its name (pushed to Hetzner), cluster and vSwitch through `PATCH`. The server
//! itself is never created or deleted: creating the resource adopts it, destroying it only
//! takes it out of its cluster.

use async_trait::async_trait;
use talos_manager_api_types::MaybeUndefined;
use talos_manager_api_types::{ServerView, UpdateServer};
use time::format_description::well_known::Rfc3339;

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct Server;

fn schema() -> Schema {
    let text = |name, description| Attribute::computed(name, Type::String, description);
    Schema {
        type_name: "talosmanager_server",
        kind: Kind::Resource,
        version: 0,
        description: "A server talos-manager synced from a Hetzner Robot account or Cloud \
                      project, adopted by Terraform: its name (pushed to Hetzner), its cluster \
                      and its Robot vSwitch. Creating the resource orders nothing: the server \
                      must already be listed by talos-manager (sync the provider account \
                      first). Arguments left out are left as they are. Destroying the resource \
                      never deletes or cancels the server: it only takes it out of its cluster \
                      in talos-manager (with a warning), and the server keeps its name and \
                      vSwitch at Hetzner.",
        attributes: vec![
            Attribute::computed(
                "id",
                Type::String,
                "The server's id, the same as `server_id`.",
            ),
            Attribute::required(
                "server_id",
                Type::String,
                "The server to adopt, `robot-<server number>` or `cloud-<id>` (e.g. from the \
                 `talosmanager_servers` data source).",
            )
            .force_new(),
            Attribute::optional_computed(
                "name",
                Type::String,
                "Its name, set at Hetzner (Robot server name, Cloud server name) before \
                 talos-manager stores it. Default: the name it has.",
            ),
            Attribute::optional_computed(
                "cluster_id",
                Type::String,
                "The cluster it belongs to (a `talosmanager_cluster`'s id); `\"\"` for none. \
                 Default: the cluster it is in.",
            ),
            Attribute::optional_computed(
                "vswitch_id",
                Type::String,
                "The Robot vSwitch it is attached to; `\"\"` for none. Robot removes the server \
                 from its vSwitch and adds it to this one (Robot locks a vSwitch while a change \
                 is processed: the service makes one change per vSwitch at a time and waits the \
                 lock out, up to 5 minutes). Cloud servers have no vSwitch. Default: the vSwitch it is on.",
            ),
            text(
                "provider_kind",
                "`hetzner_robot` or `hetzner_cloud` (`provider` in the API; the name is \
                 reserved in Terraform).",
            ),
            text(
                "provider_account_id",
                "The provider account it was synced from.",
            ),
            text("ipv4", "Public IPv4 address."),
            text("ipv6", "Public IPv6 network."),
            text("product", "Product or server type."),
            text("data_center", "Data center or location."),
            text("architecture", "`amd64` or `arm64`."),
            text("status", "The provider's status."),
            text(
                "state",
                "Where it is on its way to the cluster, as the dashboard shows it: `unknown`, \
                 `in rescue`, `bootstrapping`, `installing 42 %`, `booting Talos`, `waiting for \
                 config`, `config served`, `in cluster`, `failed: <reason>`, … (as of the last \
                 refresh).",
            ),
            text("bootstrap_disk", "The disk Talos was written to."),
            text(
                "last_configured_at",
                "When it was last served a machine config (RFC 3339).",
            ),
        ],
        import: Some(
            "By server id: `terraform import talosmanager_server.NAME robot-1234567`. Nothing \
             changes at import; the next apply sets the arguments the configuration has.",
        ),
        example: r#"
resource "talosmanager_server" "worker_1" {
  server_id  = "robot-1234567"
  name       = "worker-1"
  cluster_id = talosmanager_cluster.production.id
}"#,
    }
}

fn path(id: &str) -> String {
    format!("/servers/{}", segment(id))
}

/// A wanted reference: `None` for the configuration's `""` (none), `Some` otherwise. The
/// outer `None` when the configuration leaves it as it is (null or unknown).
fn wanted_reference(planned: &Object, name: &str) -> Option<Option<String>> {
    planned
        .string(name)
        .map(|id| (!id.is_empty()).then(|| id.to_owned()))
}

fn reference_change(
    wanted: Option<Option<String>>,
    current: Option<&String>,
) -> MaybeUndefined<String> {
    match wanted {
        Some(wanted) if wanted.as_ref() != current => match wanted {
            Some(id) => MaybeUndefined::Value(id),
            None => MaybeUndefined::Null,
        },
        _ => MaybeUndefined::Undefined,
    }
}

/// The `PATCH` that makes `current` what `planned` asks for, `None` when nothing differs.
fn changes(planned: &Object, current: &ServerView) -> Option<UpdateServer> {
    let name = planned
        .string("name")
        .filter(|name| *name != current.name)
        .map(str::to_owned);
    let cluster_id = reference_change(
        wanted_reference(planned, "cluster_id"),
        current.cluster_id.as_ref(),
    );
    let vswitch_id = reference_change(
        wanted_reference(planned, "vswitch_id"),
        current.vswitch_id.as_ref(),
    );
    let unchanged = name.is_none() && cluster_id.is_undefined() && vswitch_id.is_undefined();
    (!unchanged).then_some(UpdateServer {
        name,
        cluster_id,
        vswitch_id,
    })
}

/// A reference as the state keeps it: the service's id, or for none, `""` when that is what
/// Terraform knows (the configuration said `""`), else null.
fn reference(id: Option<String>, known: &Object, name: &str) -> Value {
    match id {
        Some(id) => Value::String(id),
        None if known.string(name) == Some("") => Value::String(String::new()),
        None => Value::Null,
    }
}

/// The server as the service has it.
fn object(server: ServerView, known: &Object) -> Object {
    let time = |at: Option<time::OffsetDateTime>| {
        Value::opt_string(at.and_then(|at| at.format(&Rfc3339).ok()))
    };
    schema().object([
        ("id", Value::String(server.id.clone())),
        ("server_id", Value::String(server.id)),
        ("name", Value::String(server.name)),
        (
            "cluster_id",
            reference(server.cluster_id, known, "cluster_id"),
        ),
        (
            "vswitch_id",
            reference(server.vswitch_id, known, "vswitch_id"),
        ),
        ("provider_kind", Value::String(server.provider)),
        (
            "provider_account_id",
            Value::String(server.provider_account_id),
        ),
        ("ipv4", Value::opt_string(server.ipv4)),
        ("ipv6", Value::opt_string(server.ipv6)),
        ("product", Value::String(server.product)),
        ("data_center", Value::String(server.data_center)),
        ("architecture", Value::String(server.architecture)),
        ("status", Value::String(server.status)),
        ("state", Value::String(server.state)),
        ("bootstrap_disk", Value::opt_string(server.bootstrap_disk)),
        ("last_configured_at", time(server.last_configured_at)),
    ])
}

/// Reads the server and patches what `planned` changes; the server as it is then.
async fn converge(client: &Client, id: &str, planned: &Object) -> Result<Object, Error> {
    let current: ServerView = client
        .get(&path(id))
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "server",
            id: id.to_owned(),
        })?;
    let server = match changes(planned, &current) {
        Some(update) => client.patch(&path(id), &update).await?,
        None => current,
    };
    Ok(object(server, planned))
}

#[async_trait]
impl Resource for Server {
    fn schema(&self) -> Schema {
        schema()
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let id = planned.string("server_id").unwrap_or_default();
        converge(client, id, planned).await
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let server: Option<ServerView> = client.get(&path(id)).await?;
        Ok(server.map(|server| object(server, prior)))
    }

    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        converge(client, id, planned).await
    }

    /// Takes the server out of its cluster; it stays at Hetzner and in talos-manager.
    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        let Some(server) = client.get::<ServerView>(&path(id)).await? else {
            return Ok(None);
        };
        let left_cluster = match &server.cluster_id {
            Some(cluster_id) => {
                let update = UpdateServer {
                    name: None,
                    cluster_id: MaybeUndefined::Null,
                    vswitch_id: MaybeUndefined::Undefined,
                };
                let _: ServerView = client.patch(&path(id), &update).await?;
                format!("It left cluster {cluster_id}; it")
            }
            None => "It".to_owned(),
        };
        Ok(Some(format!(
            "Server {} ({id}) is only removed from the Terraform state: it is not deleted or \
             cancelled at Hetzner, and talos-manager still lists it. {left_cluster} keeps its \
             name and vSwitch.",
            server.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cluster_id: Option<&str>, vswitch_id: Option<&str>) -> ServerView {
        ServerView {
            id: "robot-1".into(),
            provider: "hetzner_robot".into(),
            provider_account_id: "1".into(),
            name: "worker-1".into(),
            ipv4: None,
            ipv6: None,
            product: "AX41".into(),
            data_center: "FSN1".into(),
            status: "ready".into(),
            cancelled: false,
            architecture: "amd64".into(),
            vswitch_id: vswitch_id.map(str::to_owned),
            cluster_id: cluster_id.map(str::to_owned),
            accessible: false,
            uuid: None,
            bootstrap_disk: None,
            bootstrap_disk_wwid: None,
            schematic_id: None,
            last_request_for_configuration_at: None,
            last_configured_at: None,
            label_and_taint_job_completed_at: None,
            rescue_activated_at: None,
            missing_since: None,
            missing_syncs: 0,
            state: "unknown".into(),
            disks: Vec::new(),
            node_name: None,
            node_name_mismatch: None,
        }
    }

    fn planned(pairs: &[(&'static str, Value)]) -> Object {
        schema().object(pairs.iter().cloned())
    }

    fn text(value: &str) -> Value {
        Value::String(value.into())
    }

    #[test]
    fn only_what_differs_is_patched() {
        let current = view(Some("2"), None);
        assert!(changes(&planned(&[("server_id", text("robot-1"))]), &current).is_none());
        let same = planned(&[("name", text("worker-1")), ("cluster_id", text("2"))]);
        assert!(changes(&same, &current).is_none());
        let unknown = planned(&[("name", Value::Unknown), ("cluster_id", Value::Unknown)]);
        assert!(changes(&unknown, &current).is_none());

        let update = changes(
            &planned(&[("name", text("worker-2")), ("cluster_id", text("3"))]),
            &current,
        )
        .unwrap();
        assert_eq!(update.name.as_deref(), Some("worker-2"));
        assert_eq!(update.cluster_id, MaybeUndefined::Value("3".into()));
        assert!(update.vswitch_id.is_undefined());
    }

    #[test]
    fn an_empty_reference_clears_and_stays_empty_in_the_state() {
        let current = view(Some("2"), Some("4321"));
        let clear = planned(&[("cluster_id", text("")), ("vswitch_id", text(""))]);
        let update = changes(&clear, &current).unwrap();
        assert_eq!(update.cluster_id, MaybeUndefined::Null);
        assert_eq!(update.vswitch_id, MaybeUndefined::Null);
        assert!(changes(&clear, &view(None, None)).is_none());

        let state = object(view(None, None), &clear);
        assert_eq!(state["cluster_id"], text(""));
        let imported = object(view(None, None), &schema().object([]));
        assert_eq!(imported["cluster_id"], Value::Null);
    }
}
