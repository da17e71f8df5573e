//! Resources: one file per resource type, each implementing [`Resource`] (its schema and the
//! admin API calls). The Terraform semantics common to all of them live here once: planning
//! (unknown computed values on create, prior state kept, `RequiresReplace` for force-new
//! attributes), merging the service's answer into the new state, drift and import.
//!
//! Adding a resource: write `resources/<name>.rs` with its [`Schema`] and a [`Resource`] impl,
//! then list it in [`all`]. Its docs page appears under `docs/terraform/resources/` at the next
//! `UPDATE_EXPECT=1 cargo test -p terraform-provider-talosmanager`.

mod cluster;
mod cluster_bootstrap;
mod cluster_upgrade;
mod config;
mod job;
mod label_taint_rule;
mod machine_config;
mod provider_account;
mod schematic;
mod server;
mod server_bootstrap;
mod settings;

use async_trait::async_trait;

use crate::client::Client;
use crate::error::Error;
use crate::schema::{ObjectExt as _, Schema};
use crate::tfplugin6::AttributePath;
use crate::value::{Object, Value};

/// A resource type: its schema and the API calls behind create, read, update and delete.
///
/// Objects passed in and returned are complete for the schema (absent attributes are null);
/// `id` is always the API id.
#[async_trait]
pub trait Resource: Send + Sync {
    /// The declaration of its attributes.
    fn schema(&self) -> Schema;

    /// Checks a configuration before planning (values may be null or unknown: check only the
    /// known ones). By default everything is left to the service.
    fn validate(&self, config: &Object) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// Adjusts the plan of an in-place update: marks unknown the computed attributes the
    /// change will alter. By default computed attributes keep their prior values.
    fn plan_update(&self, prior: &Object, planned: &mut Object) {
        let _ = (prior, planned);
    }

    /// Adjusts the plan of a create: by default every computed attribute the configuration
    /// leaves open is unknown until apply; a resource that knows one of them now (null, say)
    /// sets it here.
    fn plan_create(&self, planned: &mut Object) {
        let _ = planned;
    }

    /// A warning to show when an in-place update from `prior` to `planned` is planned and
    /// applied: its summary and detail. None by default.
    fn plan_warning(&self, prior: &Object, planned: &Object) -> Option<(&'static str, String)> {
        let _ = (prior, planned);
        None
    }

    /// A warning to show when the object is planned and created: its summary and detail. None
    /// by default.
    fn create_warning(&self, planned: &Object) -> Option<(&'static str, String)> {
        let _ = planned;
        None
    }

    /// A warning about a planned create or in-place update that takes the service to work out,
    /// when [`Resource::create_warning`] or [`Resource::plan_warning`] has none: its summary and
    /// detail. Asked at plan time only (the service answers it again when the change is
    /// applied, through [`Resource::create_with_warnings`] or
    /// [`Resource::update_with_warnings`]); None by default.
    async fn service_plan_warning(
        &self,
        client: &Client,
        planned: &Object,
    ) -> Option<(&'static str, String)> {
        let _ = (client, planned);
        None
    }

    /// Creates the object from the planned values (unknown ones are for the service to pick)
    /// and returns it as the service now has it.
    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error>;

    /// Creates the object as [`Resource::create`] does, with the warnings the service answered
    /// (summary, detail), each shown as a Terraform warning. By default there are none.
    async fn create_with_warnings(
        &self,
        client: &Client,
        planned: &Object,
    ) -> Result<(Object, Vec<(String, String)>), Error> {
        Ok((self.create(client, planned).await?, Vec::new()))
    }

    /// Changes the object as [`Resource::update`] does, with the warnings the service answered
    /// (summary, detail). By default there are none.
    async fn update_with_warnings(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        prior: &Object,
    ) -> Result<(Object, Vec<(String, String)>), Error> {
        Ok((self.update(client, id, planned, prior).await?, Vec::new()))
    }

    /// The object with this id as the service has it, `None` when it no longer exists.
    /// `prior` is the state Terraform has (empty on import), for values the API does not return.
    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error>;

    /// Changes the object in place. Only called when an attribute that is not force-new
    /// changed; resources whose attributes are all force-new keep the default.
    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        prior: &Object,
    ) -> Result<Object, Error> {
        let _ = (client, id, planned, prior);
        Err(Error::UpdateUnsupported {
            type_name: self.schema().type_name,
        })
    }

    /// Deletes the object (already gone is fine); `prior` is its state, for the arguments that
    /// say how. Returns a warning to show, if any.
    async fn delete(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<String>, Error>;
}

/// Every resource type of the provider.
pub fn all() -> Vec<Box<dyn Resource>> {
    vec![
        Box::new(cluster::Cluster),
        Box::new(cluster_bootstrap::ClusterBootstrap),
        Box::new(cluster_upgrade::ClusterUpgrade),
        Box::new(config::Config),
        Box::new(label_taint_rule::LabelTaintRule),
        Box::new(machine_config::MachineConfig),
        Box::new(provider_account::ProviderAccount),
        Box::new(schematic::Schematic),
        Box::new(server::Server),
        Box::new(server_bootstrap::ServerBootstrap),
        Box::new(settings::Settings),
    ]
}

/// A planned change.
#[derive(Debug)]
pub struct Plan {
    /// The planned state.
    pub planned: Value,
    /// The attributes whose change replaces the object.
    pub requires_replace: Vec<AttributePath>,
    /// A warning about the in-place update ([`Resource::plan_warning`]) or the creation
    /// ([`Resource::create_warning`]): summary, detail.
    pub warning: Option<(&'static str, String)>,
}

/// Plans a change from `prior` to `proposed` (Terraform's merge of config and prior state).
pub fn plan(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> Plan {
    let (Value::Map(proposed_object), Value::Map(config_object)) = (proposed, config) else {
        // Destroy (proposed is null): nothing to plan.
        return Plan {
            planned: proposed.clone(),
            requires_replace: Vec::new(),
            warning: None,
        };
    };
    let mut planned = proposed_object.clone();
    let mut requires_replace = Vec::new();
    match prior {
        Value::Map(prior_object) => {
            for attribute in schema.attributes.iter().filter(|a| a.force_new) {
                let new = planned.get_value(attribute.name);
                if new.is_unknown() || new != prior_object.get_value(attribute.name) {
                    requires_replace.push(crate::diagnostics::attribute_path(attribute.name));
                }
            }
        }
        _ => {
            // Create: what the service picks is unknown until apply.
            for attribute in schema.attributes.iter().filter(|a| a.is_computed()) {
                if *config_object.get_value(attribute.name) == Value::Null {
                    planned.insert(attribute.name.to_owned(), Value::Unknown);
                }
            }
        }
    }
    Plan {
        planned: Value::Map(planned),
        requires_replace,
        warning: None,
    }
}

/// [`plan`], then the resource's own adjustments of an in-place update and the warning about a
/// create or an in-place update: the resource's own, else the one the service gives
/// ([`Resource::service_plan_warning`], when the provider is configured).
pub async fn plan_change(
    resource: &dyn Resource,
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
    client: Option<&Client>,
) -> Plan {
    let mut plan = plan(schema, prior, proposed, config);
    let mut changed = false;
    if let (Value::Map(prior), Value::Map(planned)) = (prior, &mut plan.planned)
        && plan.requires_replace.is_empty()
        && prior != planned
    {
        resource.plan_update(prior, planned);
        plan.warning = resource.plan_warning(prior, planned);
        changed = true;
    } else if let (Value::Null, Value::Map(planned)) = (prior, &mut plan.planned) {
        resource.plan_create(planned);
        plan.warning = resource.create_warning(planned);
        changed = true;
    }
    if changed
        && plan.warning.is_none()
        && let (Some(client), Value::Map(planned)) = (client, &plan.planned)
    {
        plan.warning = resource.service_plan_warning(client, planned).await;
    }
    plan
}

/// Applies a planned change; returns the new state (null after a delete) and the warnings
/// (summary, detail). A create that fails with [`Error::Incomplete`] carries the state to keep
/// (tainted).
pub async fn apply(
    resource: &dyn Resource,
    client: &Client,
    prior: &Value,
    planned: &Value,
) -> Result<(Value, Vec<(String, String)>), Error> {
    match (prior, planned) {
        (Value::Map(prior), Value::Null) => {
            let warning = match prior.string("id") {
                Some(id) => resource.delete(client, id, prior).await?,
                None => None,
            };
            Ok((
                Value::Null,
                warning
                    .map(|warning| ("Not deleted in talos-manager".to_owned(), warning))
                    .into_iter()
                    .collect(),
            ))
        }
        (Value::Null, Value::Map(planned)) => {
            match resource.create_with_warnings(client, planned).await {
                Ok((created, mut warnings)) => {
                    warnings.extend(
                        resource
                            .create_warning(planned)
                            .map(|(summary, detail)| (summary.to_owned(), detail)),
                    );
                    Ok((Value::Map(merge(planned, created)), warnings))
                }
                Err(Error::Incomplete {
                    type_name,
                    state,
                    error,
                }) => Err(Error::Incomplete {
                    type_name,
                    state: merge(planned, state),
                    error,
                }),
                Err(error) => Err(error),
            }
        }
        (Value::Map(prior), Value::Map(planned)) => {
            let id = prior.string("id").unwrap_or_default();
            let warning = resource.plan_warning(prior, planned);
            let (updated, mut warnings) = resource
                .update_with_warnings(client, id, planned, prior)
                .await?;
            if let Some((summary, detail)) = warning {
                warnings.insert(0, (summary.to_owned(), detail));
            }
            Ok((Value::Map(merge(planned, updated)), warnings))
        }
        _ => Ok((Value::Null, Vec::new())),
    }
}

/// The new state after create or update: the planned values where they were known (Terraform
/// requires exactly those), the service's answer for the rest.
fn merge(planned: &Object, answer: Object) -> Object {
    let mut state = answer;
    for (name, value) in planned {
        if !value.is_unknown() && *value != Value::Null {
            state.insert(name.clone(), value.clone());
        }
    }
    for value in state.values_mut() {
        if value.is_unknown() {
            *value = Value::Null;
        }
    }
    state
}

/// Refreshes `current`: the object as the service has it, or null when it was deleted outside
/// Terraform (Terraform then plans to create it again).
pub async fn read(
    resource: &dyn Resource,
    client: &Client,
    current: &Value,
) -> Result<Value, Error> {
    let Value::Map(current) = current else {
        return Ok(Value::Null);
    };
    let Some(id) = current.string("id") else {
        return Ok(Value::Null);
    };
    Ok(resource
        .read(client, id, current)
        .await?
        .map_or(Value::Null, Value::Map))
}

/// The state of the existing object `id`, for `terraform import`.
pub async fn import(resource: &dyn Resource, client: &Client, id: &str) -> Result<Value, Error> {
    let schema = resource.schema();
    let empty = schema.object([]);
    match resource.read(client, id, &empty).await? {
        Some(object) => Ok(Value::Map(object)),
        None => Err(Error::NotFound {
            what: schema.type_name,
            id: id.to_owned(),
        }),
    }
}

/// `body` as JSON without the fields whose attribute is unknown in `planned`, so that the
/// service picks their defaults.
fn without_unknown(body: &impl serde::Serialize, planned: &Object) -> serde_json::Value {
    let mut json = serde_json::to_value(body).unwrap_or_default();
    if let Some(fields) = json.as_object_mut() {
        fields.retain(|name, _| !planned.get_value(name).is_unknown());
    }
    json
}

/// `text` unless it is empty and the prior state had null (the service stores "no value" as
/// an empty string; the state keeps what the user wrote).
fn empty_as_prior(text: String, prior: &Object, name: &str) -> Value {
    if text.is_empty() && *prior.get_value(name) != Value::String(String::new()) {
        Value::Null
    } else {
        Value::String(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Attribute;
    use crate::value::Type;

    fn schema() -> Schema {
        Schema {
            type_name: "talosmanager_test",
            kind: crate::schema::Kind::Resource,
            version: 0,
            description: "",
            attributes: vec![
                Attribute::computed("id", Type::String, ""),
                Attribute::required("name", Type::String, "").force_new(),
                Attribute::optional("note", Type::String, ""),
                Attribute::optional_computed("disk", Type::String, ""),
            ],
            import: None,
            example: "",
        }
    }

    fn object(pairs: &[(&'static str, Value)]) -> Value {
        Value::Map(schema().object(pairs.iter().cloned()))
    }

    fn text(value: &str) -> Value {
        Value::String(value.into())
    }

    #[test]
    fn create_plans_unknown_computed_values_the_config_leaves_open() {
        let config = object(&[("name", text("a"))]);
        let plan = plan(&schema(), &Value::Null, &config, &config);
        let Value::Map(planned) = plan.planned else {
            panic!()
        };
        assert_eq!(planned["id"], Value::Unknown);
        assert_eq!(planned["disk"], Value::Unknown);
        assert_eq!(planned["note"], Value::Null);
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn update_keeps_prior_computed_values_and_replaces_on_force_new_changes() {
        let prior = object(&[
            ("id", text("1")),
            ("name", text("a")),
            ("disk", text("/dev/sda")),
        ]);
        let config = object(&[("name", text("b"))]);
        let proposed = object(&[
            ("id", text("1")),
            ("name", text("b")),
            ("disk", text("/dev/sda")),
        ]);
        let plan = plan(&schema(), &prior, &proposed, &config);
        assert_eq!(plan.planned, proposed);
        assert_eq!(
            plan.requires_replace,
            vec![crate::diagnostics::attribute_path("name")]
        );

        let same = object(&[
            ("id", text("1")),
            ("name", text("a")),
            ("disk", text("/dev/sda")),
        ]);
        let plan = super::plan(&schema(), &prior, &same, &object(&[("name", text("a"))]));
        assert!(plan.requires_replace.is_empty());
        assert_eq!(plan.planned, prior);
    }

    #[test]
    fn merge_keeps_known_planned_values_and_fills_the_rest() {
        let planned = schema().object([("id", Value::Unknown), ("name", text("a"))]);
        let answer = schema().object([
            ("id", text("9")),
            ("name", text("a")),
            ("disk", text("/dev/sda")),
        ]);
        let state = merge(&planned, answer);
        assert_eq!(state["id"], text("9"));
        assert_eq!(state["disk"], text("/dev/sda"));
    }
}
