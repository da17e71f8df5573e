//! `talosmanager_label_taint_rule`: labels and taints applied to every node whose name contains
//! a string (`/label-taint-rules`, full CRUD).

use async_trait::async_trait;
use talos_manager_api_types::{Issue, ValidationError};
use talos_manager_api_types::{RuleFields, RuleView};
use talos_manager_api_types::{parse_labels, parse_taints};

use super::{Resource, empty_as_prior};
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct LabelTaintRule;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_label_taint_rule",
        kind: Kind::Resource,
        version: 0,
        description: "Labels and taints that talos-manager applies to every Kubernetes node whose \
                      name contains `match`, once the node has joined its cluster. Labels and \
                      taints already applied stay on the nodes when the rule changes or is \
                      deleted.",
        attributes: vec![
            Attribute::computed("id", Type::String, "The rule's id."),
            Attribute::required(
                "match",
                Type::String,
                "The rule applies to servers whose name contains this string.",
            ),
            Attribute::optional(
                "labels",
                Type::String,
                "Labels, `key=value,key=value` (Kubernetes syntax). At least one label or \
                 taint is required.",
            ),
            Attribute::optional(
                "taints",
                Type::String,
                "Taints, `key=value:Effect,…` with Effect one of `NoSchedule`, \
                 `PreferNoSchedule`, `NoExecute`.",
            ),
        ],
        import: Some("By id: `terraform import talosmanager_label_taint_rule.NAME 3`."),
        example: r#"
resource "talosmanager_label_taint_rule" "databases" {
  match  = "database"
  labels = "node-role.kubernetes.io/database=,tier=storage"
  taints = "dedicated=database:NoSchedule"
}"#,
    }
}

fn fields(planned: &Object) -> RuleFields {
    RuleFields {
        name_match: planned.owned_string("match").unwrap_or_default(),
        labels: planned.owned_string("labels").unwrap_or_default(),
        taints: planned.owned_string("taints").unwrap_or_default(),
    }
}

fn object(view: RuleView, prior: &Object) -> Object {
    schema().object([
        ("id", Value::String(view.id)),
        ("match", Value::String(view.fields.name_match)),
        (
            "labels",
            empty_as_prior(view.fields.labels, prior, "labels"),
        ),
        (
            "taints",
            empty_as_prior(view.fields.taints, prior, "taints"),
        ),
    ])
}

#[async_trait]
impl Resource for LabelTaintRule {
    fn schema(&self) -> Schema {
        schema()
    }

    /// The service's own checks, at plan time, for the values already known.
    fn validate(&self, config: &Object) -> Result<(), Error> {
        let mut issues = Vec::new();
        if let Some(Err(problems)) = config.string("labels").map(parse_labels) {
            issues.extend(problems.into_iter().map(|p| Issue::new("labels", p)));
        }
        if let Some(Err(problems)) = config.string("taints").map(parse_taints) {
            issues.extend(problems.into_iter().map(|p| Issue::new("taints", p)));
        }
        if config
            .string("match")
            .is_some_and(|text| text.trim().is_empty())
        {
            issues.push(Issue::new("match", "can't be blank"));
        }
        let blank = |name| config.get_value(name) == &Value::Null;
        if blank("labels") && blank("taints") {
            issues.push(Issue::new(
                "labels",
                "must have at least one label or taint",
            ));
        }
        ValidationError::check("label and taint rule", issues).map_err(|error| Error::Invalid {
            what: error.what,
            issues: error.issues,
        })
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let view: RuleView = client.post("/label-taint-rules", &fields(planned)).await?;
        Ok(object(view, planned))
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<RuleView> = client
            .get(&format!("/label-taint-rules/{}", segment(id)))
            .await?;
        Ok(view.map(|view| object(view, prior)))
    }

    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        _prior: &Object,
    ) -> Result<Object, Error> {
        let view: RuleView = client
            .put(
                &format!("/label-taint-rules/{}", segment(id)),
                &fields(planned),
            )
            .await?;
        Ok(object(view, planned))
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client
            .delete(&format!("/label-taint-rules/{}", segment(id)))
            .await?;
        Ok(None)
    }
}
