//! `data.talosmanager_cluster_health`: a cluster's health, checked at read time
//! (`GET /clusters/{id}/health`).

use async_trait::async_trait;
use talos_manager_api_types::{ClusterHealthView, HealthStatusName};
use time::format_description::well_known::Rfc3339;

use super::DataSource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The data source.
pub(super) struct ClusterHealth;

fn node_fields() -> Vec<Attribute> {
    vec![
        Attribute::computed("name", Type::String, "Its Kubernetes node name."),
        Attribute::computed(
            "server_id",
            Type::String,
            "The configured server that carries it, if any.",
        ),
        Attribute::computed(
            "ready",
            Type::Bool,
            "Whether its Kubernetes node is Ready (null: no such node, or the API did not \
             answer).",
        ),
        Attribute::computed(
            "talos_reachable",
            Type::Bool,
            "Whether its Talos API answered (null: not a configured server).",
        ),
        Attribute::computed("talos_version", Type::String, "The Talos version it runs."),
        Attribute::computed("kubelet_version", Type::String, "Its kubelet's version."),
    ]
}

fn member_fields() -> Vec<Attribute> {
    vec![
        Attribute::computed("name", Type::String, "Its name (its node's hostname)."),
        Attribute::computed("id", Type::String, "Its member id (hex)."),
        Attribute::computed(
            "healthy",
            Type::Bool,
            "Whether its node's etcd answered as this member without errors.",
        ),
        Attribute::computed("leader", Type::Bool, "Whether it leads."),
    ]
}

fn schema() -> Schema {
    let text = |name, description| Attribute::computed(name, Type::String, description);
    let number = |name, description| Attribute::computed(name, Type::Number, description);
    Schema {
        type_name: "talosmanager_cluster_health",
        kind: Kind::DataSource,
        version: 0,
        description: "A cluster's health, checked when Terraform reads it: etcd's members and \
                      leader, the Kubernetes API and nodes, configured servers that are not \
                      part of the cluster, and when its certificates expire. Use it in a \
                      `check` block or a precondition to stop on an unhealthy cluster.",
        attributes: vec![
            Attribute::required("cluster_id", Type::String, "The cluster to check."),
            text("id", "The cluster's id."),
            text(
                "status",
                "`healthy`, `degraded`, `unreachable` or `not_bootstrapped`.",
            ),
            Attribute::computed("healthy", Type::Bool, "Whether `status` is `healthy`."),
            Attribute::computed(
                "reasons",
                Type::List(Box::new(Type::String)),
                "Why it is not healthy, one readable line each; empty when healthy.",
            ),
            text("checked_at", "When it was checked (RFC 3339)."),
            text(
                "etcd_leader",
                "The etcd leader's name; null when no control plane reported one.",
            ),
            number("etcd_members_healthy", "How many etcd members are healthy."),
            Attribute::computed_list_of("etcd_members", member_fields(), "etcd's members."),
            Attribute::computed(
                "kubernetes_reachable",
                Type::Bool,
                "Whether the Kubernetes API answered.",
            ),
            text(
                "kubernetes_version",
                "The Kubernetes version the API server runs (`v1.33.1`).",
            ),
            number("nodes_ready", "How many Kubernetes nodes are Ready."),
            number("nodes_total", "How many Kubernetes nodes there are."),
            Attribute::computed_list_of(
                "nodes",
                node_fields(),
                "Every configured node, then every Kubernetes node no configured server \
                 carries.",
            ),
            Attribute::computed(
                "missing_servers",
                Type::List(Box::new(Type::String)),
                "Names of the configured servers that are not Kubernetes nodes or (control \
                 planes) not etcd members.",
            ),
            text(
                "earliest_expiry",
                "The earliest expiry of the cluster's CAs and of the client certificates \
                 talos-manager issues (RFC 3339).",
            ),
        ],
        import: None,
        example: r#"
data "talosmanager_cluster_health" "production" {
  cluster_id = talosmanager_cluster.production.id
}

check "production_is_healthy" {
  assert {
    condition     = data.talosmanager_cluster_health.production.healthy
    error_message = join("; ", data.talosmanager_cluster_health.production.reasons)
  }
}"#,
    }
}

fn element(fields: Vec<Attribute>) -> Schema {
    Schema {
        attributes: fields,
        ..schema()
    }
}

fn opt_bool(value: Option<bool>) -> Value {
    value.map_or(Value::Null, Value::Bool)
}

#[async_trait]
impl DataSource for ClusterHealth {
    fn schema(&self) -> Schema {
        schema()
    }

    async fn read(&self, client: &Client, config: &Object) -> Result<Object, Error> {
        let id = config.string("cluster_id").unwrap_or_default().to_owned();
        let health: ClusterHealthView = client
            .get(&format!("/clusters/{}/health", segment(&id)))
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "cluster",
                id: id.clone(),
            })?;
        let time = |at: time::OffsetDateTime| Value::opt_string(at.format(&Rfc3339).ok());
        let status = match health.status {
            HealthStatusName::Healthy => "healthy",
            HealthStatusName::Degraded => "degraded",
            HealthStatusName::Unreachable => "unreachable",
            HealthStatusName::NotBootstrapped => "not_bootstrapped",
        };
        let members = element(member_fields());
        let nodes = element(node_fields());
        let strings =
            |items: Vec<String>| Value::List(items.into_iter().map(Value::String).collect());
        Ok(schema().object([
            ("cluster_id", Value::String(id)),
            ("id", Value::String(health.cluster_id)),
            ("status", Value::String(status.to_owned())),
            (
                "healthy",
                Value::Bool(health.status == HealthStatusName::Healthy),
            ),
            ("reasons", strings(health.reasons)),
            ("checked_at", time(health.checked_at)),
            ("etcd_leader", Value::opt_string(health.etcd_leader)),
            (
                "etcd_members_healthy",
                Value::Number(f64::from(health.etcd_members_healthy)),
            ),
            (
                "etcd_members",
                Value::List(
                    health
                        .etcd_members
                        .into_iter()
                        .map(|member| {
                            Value::Map(members.object([
                                ("name", Value::String(member.name)),
                                ("id", Value::String(member.id)),
                                ("healthy", Value::Bool(member.healthy)),
                                ("leader", Value::Bool(member.leader)),
                            ]))
                        })
                        .collect(),
                ),
            ),
            (
                "kubernetes_reachable",
                Value::Bool(health.kubernetes_reachable),
            ),
            (
                "kubernetes_version",
                Value::opt_string(health.kubernetes_version),
            ),
            ("nodes_ready", Value::Number(f64::from(health.nodes_ready))),
            ("nodes_total", Value::Number(f64::from(health.nodes_total))),
            (
                "nodes",
                Value::List(
                    health
                        .nodes
                        .into_iter()
                        .map(|node| {
                            Value::Map(nodes.object([
                                ("name", Value::String(node.name)),
                                ("server_id", Value::opt_string(node.server_id)),
                                ("ready", opt_bool(node.ready)),
                                ("talos_reachable", opt_bool(node.talos_reachable)),
                                ("talos_version", Value::opt_string(node.talos_version)),
                                ("kubelet_version", Value::opt_string(node.kubelet_version)),
                            ]))
                        })
                        .collect(),
                ),
            ),
            (
                "missing_servers",
                strings(
                    health
                        .missing
                        .into_iter()
                        .map(|missing| missing.server)
                        .collect(),
                ),
            ),
            (
                "earliest_expiry",
                health.earliest_expiry.map_or(Value::Null, time),
            ),
        ]))
    }
}
