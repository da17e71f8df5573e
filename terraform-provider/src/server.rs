//! The tfplugin6 `Provider` service and the go-plugin controller: decode the request, dispatch
//! to the provider block, a resource or a data source, encode the answer. Errors become
//! diagnostics through [`crate::diagnostics`]; gRPC errors are never used for user problems.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::client::Client;
use crate::data_sources::{self, DataSource};
use crate::diagnostics;
use crate::ephemeral_resources::{self, EphemeralResource};
use crate::error::Error;
use crate::goplugin;
use crate::resources::{self, Resource};
use crate::schema::{Kind, Schema};
use crate::tfplugin6::{self as tf, Diagnostic, DynamicValue};
use crate::value::{self, Object, Value};

/// The provider: its schemas, its resources and data sources, and once configured, its
/// admin API client.
pub struct ProviderService {
    inner: Arc<Inner>,
}

struct Inner {
    provider_schema: Schema,
    resources: HashMap<&'static str, (Schema, Box<dyn Resource>)>,
    data_sources: HashMap<&'static str, (Schema, Box<dyn DataSource>)>,
    ephemeral_resources: HashMap<&'static str, (Schema, Box<dyn EphemeralResource>)>,
    client: RwLock<Option<Client>>,
    /// Set when Terraform calls StopProvider (Ctrl-C): calls in flight are abandoned.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Default for ProviderService {
    fn default() -> Self {
        ProviderService::new()
    }
}

impl ProviderService {
    /// The provider with every resource and data source, not configured yet.
    pub fn new() -> ProviderService {
        let resources = resources::all()
            .into_iter()
            .map(|resource| {
                let schema = resource.schema();
                (schema.type_name, (schema, resource))
            })
            .collect();
        let data_sources = data_sources::all()
            .into_iter()
            .map(|data_source| {
                let schema = data_source.schema();
                (schema.type_name, (schema, data_source))
            })
            .collect();
        let ephemeral_resources = ephemeral_resources::all()
            .into_iter()
            .map(|ephemeral| {
                let schema = ephemeral.schema();
                (schema.type_name, (schema, ephemeral))
            })
            .collect();
        ProviderService {
            inner: Arc::new(Inner {
                provider_schema: crate::provider::schema(),
                resources,
                data_sources,
                ephemeral_resources,
                client: RwLock::new(None),
                stopped: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Every schema: the provider block's, then the resources', the data sources', and the
    /// ephemeral resources', each group by name.
    pub fn schemas(&self) -> Vec<Schema> {
        let mut resources: Vec<Schema> = self
            .inner
            .resources
            .values()
            .map(|(schema, _)| schema.clone())
            .collect();
        resources.sort_by_key(|schema| schema.type_name);
        let mut data_sources: Vec<Schema> = self
            .inner
            .data_sources
            .values()
            .map(|(schema, _)| schema.clone())
            .collect();
        data_sources.sort_by_key(|schema| schema.type_name);
        let mut ephemeral_resources: Vec<Schema> = self
            .inner
            .ephemeral_resources
            .values()
            .map(|(schema, _)| schema.clone())
            .collect();
        ephemeral_resources.sort_by_key(|schema| schema.type_name);
        std::iter::once(self.inner.provider_schema.clone())
            .chain(resources)
            .chain(data_sources)
            .chain(ephemeral_resources)
            .collect()
    }
}

impl Inner {
    fn resource(&self, type_name: &str) -> Result<&(Schema, Box<dyn Resource>), Error> {
        self.resources
            .get(type_name)
            .ok_or_else(|| Error::UnknownType {
                kind: "resource",
                type_name: type_name.to_owned(),
            })
    }

    fn data_source(&self, type_name: &str) -> Result<&(Schema, Box<dyn DataSource>), Error> {
        self.data_sources
            .get(type_name)
            .ok_or_else(|| Error::UnknownType {
                kind: "data source",
                type_name: type_name.to_owned(),
            })
    }

    fn ephemeral_resource(
        &self,
        type_name: &str,
    ) -> Result<&(Schema, Box<dyn EphemeralResource>), Error> {
        self.ephemeral_resources
            .get(type_name)
            .ok_or_else(|| Error::UnknownType {
                kind: "ephemeral resource",
                type_name: type_name.to_owned(),
            })
    }

    /// Runs `operation` until it finishes or Terraform stops the provider; dropping the
    /// operation cancels its HTTP request.
    async fn unless_stopped<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let mut stopped = self.stopped.subscribe();
        tokio::select! {
            result = operation => result,
            _ = stopped.wait_for(|stopped| *stopped) => Err(Error::Stopped),
        }
    }

    fn client(&self) -> Result<Client, Error> {
        self.client
            .read()
            .map_err(|_| Error::NotConfigured)?
            .clone()
            .ok_or(Error::NotConfigured)
    }
}

/// What the provider can do beyond the protocol's baseline: its schema never changes within a
/// release, so a CLI may cache it; it plans no destroys and moves no state between types.
fn server_capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        plan_destroy: false,
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}

fn attribute_names(schema: &Schema) -> Vec<&str> {
    schema
        .attributes
        .iter()
        .map(|attribute| attribute.name)
        .collect()
}

/// Diagnostics for `error` on `schema`'s attributes.
fn report(error: &Error, schema: Option<&Schema>) -> Vec<Diagnostic> {
    if !matches!(error, Error::Invalid { .. } | Error::Api { .. }) {
        tracing::warn!(error = %talos_manager_api_types::error_chain(error), "operation failed");
    }
    diagnostics::from_error(error, &schema.map(attribute_names).unwrap_or_default())
}

fn decode(
    what: &'static str,
    value: Option<&DynamicValue>,
    schema: &Schema,
) -> Result<Value, Error> {
    value::decode(value, &schema.object_type()).map_err(|source| Error::Decode { what, source })
}

fn decode_object(
    what: &'static str,
    value: Option<&DynamicValue>,
    schema: &Schema,
) -> Result<Object, Error> {
    match decode(what, value, schema)? {
        Value::Map(object) => Ok(object),
        _ => Ok(schema.object([])),
    }
}

fn encode(value: &Value, schema: &Schema) -> Option<DynamicValue> {
    Some(value::encode(value, &schema.object_type()))
}

#[tonic::async_trait]
impl tf::provider_server::Provider for ProviderService {
    async fn get_provider_schema(
        &self,
        _request: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        let inner = &self.inner;
        Ok(Response::new(tf::get_provider_schema::Response {
            provider: Some(inner.provider_schema.to_proto()),
            resource_schemas: inner
                .resources
                .iter()
                .map(|(name, (schema, _))| ((*name).to_owned(), schema.to_proto()))
                .collect(),
            data_source_schemas: inner
                .data_sources
                .iter()
                .map(|(name, (schema, _))| ((*name).to_owned(), schema.to_proto()))
                .collect(),
            ephemeral_resource_schemas: inner
                .ephemeral_resources
                .iter()
                .map(|(name, (schema, _))| ((*name).to_owned(), schema.to_proto()))
                .collect(),
            functions: HashMap::new(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(server_capabilities()),
        }))
    }

    async fn get_metadata(
        &self,
        _request: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        let schemas = self.schemas();
        let names = |kind: Kind| {
            schemas
                .iter()
                .filter(move |schema| schema.kind == kind)
                .map(|schema| schema.type_name.to_owned())
        };
        Ok(Response::new(tf::get_metadata::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: names(Kind::DataSource)
                .map(|type_name| tf::get_metadata::DataSourceMetadata { type_name })
                .collect(),
            resources: names(Kind::Resource)
                .map(|type_name| tf::get_metadata::ResourceMetadata { type_name })
                .collect(),
            functions: Vec::new(),
            ephemeral_resources: names(Kind::EphemeralResource)
                .map(|type_name| tf::get_metadata::EphemeralMetadata { type_name })
                .collect(),
        }))
    }

    async fn get_functions(
        &self,
        _request: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response {
            functions: HashMap::new(),
            diagnostics: Vec::new(),
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<tf::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<tf::validate_ephemeral_resource_config::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .ephemeral_resource(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        let result =
            self.inner
                .ephemeral_resource(&request.type_name)
                .and_then(|(schema, ephemeral)| {
                    let config = decode_object("configuration", request.config.as_ref(), schema)?;
                    ephemeral.validate(&config)
                });
        let diagnostics = result
            .err()
            .map(|error| report(&error, schema))
            .unwrap_or_default();
        Ok(Response::new(
            tf::validate_ephemeral_resource_config::Response { diagnostics },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<tf::open_ephemeral_resource::Request>,
    ) -> Result<Response<tf::open_ephemeral_resource::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .ephemeral_resource(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        let result = self
            .inner
            .unless_stopped(async {
                let (schema, ephemeral) = self.inner.ephemeral_resource(&request.type_name)?;
                let config = decode_object("configuration", request.config.as_ref(), schema)?;
                let client = self.inner.client()?;
                let opened = ephemeral.open(&client, &config).await?;
                Ok(encode(&Value::Map(opened), schema))
            })
            .await;
        Ok(Response::new(match result {
            Ok(result) => tf::open_ephemeral_resource::Response {
                diagnostics: Vec::new(),
                result,
                private: None,
            },
            Err(error) => tf::open_ephemeral_resource::Response {
                diagnostics: report(&error, schema),
                result: None,
                private: None,
            },
        }))
    }

    /// Never asked for: Open sets no `renew_at`. Nothing is held, so there is nothing to renew.
    async fn renew_ephemeral_resource(
        &self,
        request: Request<tf::renew_ephemeral_resource::Request>,
    ) -> Result<Response<tf::renew_ephemeral_resource::Response>, Status> {
        let diagnostics = match self.inner.ephemeral_resource(&request.get_ref().type_name) {
            Ok(_) => Vec::new(),
            Err(error) => report(&error, None),
        };
        Ok(Response::new(tf::renew_ephemeral_resource::Response {
            diagnostics,
            private: None,
        }))
    }

    /// Nothing is held between Open and Close (the configs are not revoked: they are the
    /// same kind the service issues on every request).
    async fn close_ephemeral_resource(
        &self,
        request: Request<tf::close_ephemeral_resource::Request>,
    ) -> Result<Response<tf::close_ephemeral_resource::Response>, Status> {
        let diagnostics = match self.inner.ephemeral_resource(&request.get_ref().type_name) {
            Ok(_) => Vec::new(),
            Err(error) => report(&error, None),
        };
        Ok(Response::new(tf::close_ephemeral_resource::Response {
            diagnostics,
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        let schema = &self.inner.provider_schema;
        let result = decode_object(
            "provider configuration",
            request.get_ref().config.as_ref(),
            schema,
        )
        .and_then(|config| crate::provider::validate(&config));
        let diagnostics = match result {
            Ok(()) => Vec::new(),
            Err(error) => report(&error, Some(schema)),
        };
        Ok(Response::new(tf::validate_provider_config::Response {
            diagnostics,
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .resource(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        let result = self
            .inner
            .resource(&request.type_name)
            .and_then(|(schema, resource)| {
                let config = decode_object("configuration", request.config.as_ref(), schema)?;
                resource.validate(&config)
            });
        let diagnostics = result
            .err()
            .map(|error| report(&error, schema))
            .unwrap_or_default();
        Ok(Response::new(tf::validate_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .data_source(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        let result =
            self.inner
                .data_source(&request.type_name)
                .and_then(|(schema, data_source)| {
                    let config = decode_object("configuration", request.config.as_ref(), schema)?;
                    data_source.validate(&config)
                });
        let diagnostics = result
            .err()
            .map(|error| report(&error, schema))
            .unwrap_or_default();
        Ok(Response::new(tf::validate_data_resource_config::Response {
            diagnostics,
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        let request = request.into_inner();
        // Every schema is at version 0: the stored JSON is read with the current schema
        // (attributes it no longer has are dropped, new ones are null).
        let result = self
            .inner
            .resource(&request.type_name)
            .and_then(|(schema, _)| {
                let json = request.raw_state.map(|raw| raw.json).unwrap_or_default();
                let state = if json.is_empty() {
                    Value::Null
                } else {
                    value::decode_json(&json, &schema.object_type()).map_err(|source| {
                        Error::Decode {
                            what: "stored state",
                            source,
                        }
                    })?
                };
                Ok(encode(&state, schema))
            });
        Ok(Response::new(match result {
            Ok(upgraded_state) => tf::upgrade_resource_state::Response {
                upgraded_state,
                diagnostics: Vec::new(),
            },
            Err(error) => tf::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics: report(&error, None),
            },
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        let schema = &self.inner.provider_schema;
        let result = decode_object(
            "provider configuration",
            request.get_ref().config.as_ref(),
            schema,
        )
        .and_then(|config| crate::provider::configure(&config));
        let diagnostics = match result {
            Ok(client) => {
                let client = client.with_stop_signal(self.inner.stopped.subscribe());
                if let Ok(mut slot) = self.inner.client.write() {
                    *slot = Some(client);
                }
                Vec::new()
            }
            Err(error) => report(&error, Some(schema)),
        };
        Ok(Response::new(tf::configure_provider::Response {
            diagnostics,
        }))
    }

    async fn read_resource(
        &self,
        request: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        let request = request.into_inner();
        let result = self
            .inner
            .unless_stopped(async {
                let (schema, resource) = self.inner.resource(&request.type_name)?;
                let current = decode("current state", request.current_state.as_ref(), schema)?;
                let client = self.inner.client()?;
                resources::read(resource.as_ref(), &client, &current)
                    .await
                    .map(|state| encode(&state, schema))
            })
            .await;
        let schema = self
            .inner
            .resource(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        Ok(Response::new(match result {
            Ok(new_state) => tf::read_resource::Response {
                new_state,
                diagnostics: Vec::new(),
                private: request.private,
            },
            Err(error) => tf::read_resource::Response {
                // Keep what Terraform had: a failed refresh must not forget the object.
                new_state: request.current_state,
                diagnostics: report(&error, schema),
                private: request.private,
            },
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        let result = self
            .inner
            .unless_stopped(async {
                let (schema, resource) = self.inner.resource(&request.type_name)?;
                let prior = decode("prior state", request.prior_state.as_ref(), schema)?;
                let proposed = decode(
                    "proposed state",
                    request.proposed_new_state.as_ref(),
                    schema,
                )?;
                let config = decode("configuration", request.config.as_ref(), schema)?;
                // Not configured yet (unknown provider arguments): planned without the service.
                let client = self.inner.client().ok();
                let plan = resources::plan_change(
                    resource.as_ref(),
                    schema,
                    &prior,
                    &proposed,
                    &config,
                    client.as_ref(),
                )
                .await;
                Ok((
                    encode(&plan.planned, schema),
                    plan.requires_replace,
                    plan.warning,
                ))
            })
            .await;
        Ok(Response::new(match result {
            Ok((planned_state, requires_replace, warning)) => tf::plan_resource_change::Response {
                planned_state,
                requires_replace,
                planned_private: request.prior_private,
                diagnostics: warning
                    .map(|(summary, detail)| vec![diagnostics::warning(summary, detail)])
                    .unwrap_or_default(),
            },
            Err(error) => tf::plan_resource_change::Response {
                diagnostics: report(&error, None),
                ..Default::default()
            },
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .resource(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        // Not interruptible: a create cut short would leave an object Terraform never hears of.
        // Each request is bounded by the client's timeout; a longer wait (a bootstrap) ends
        // itself on StopProvider through `Client::stopped` and returns what it has.
        let result = async {
            let (schema, resource) = self.inner.resource(&request.type_name)?;
            let prior = decode("prior state", request.prior_state.as_ref(), schema)?;
            let planned = decode("planned state", request.planned_state.as_ref(), schema)?;
            let client = self.inner.client()?;
            let (state, warnings) =
                resources::apply(resource.as_ref(), &client, &prior, &planned).await?;
            Ok((encode(&state, schema), warnings))
        }
        .await;
        Ok(Response::new(match result {
            Ok((new_state, warnings)) => tf::apply_resource_change::Response {
                new_state,
                private: request.planned_private,
                diagnostics: warnings
                    .into_iter()
                    .map(|(summary, detail)| diagnostics::warning(summary, detail))
                    .collect(),
            },
            Err(error) => tf::apply_resource_change::Response {
                new_state: match (&error, schema) {
                    // Created but not ready: Terraform keeps it, tainted.
                    (Error::Incomplete { state, .. }, Some(schema)) => {
                        encode(&Value::Map(state.clone()), schema)
                    }
                    // The object is as it was: Terraform keeps the prior state.
                    _ => request.prior_state,
                },
                private: request.planned_private,
                diagnostics: report(&error, schema),
            },
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        let request = request.into_inner();
        let result = self
            .inner
            .unless_stopped(async {
                let (schema, resource) = self.inner.resource(&request.type_name)?;
                let client = self.inner.client()?;
                let state = resources::import(resource.as_ref(), &client, &request.id).await?;
                Ok(encode(&state, schema))
            })
            .await;
        Ok(Response::new(match result {
            Ok(state) => tf::import_resource_state::Response {
                imported_resources: vec![tf::import_resource_state::ImportedResource {
                    type_name: request.type_name,
                    state,
                    private: Vec::new(),
                }],
                diagnostics: Vec::new(),
            },
            Err(error) => tf::import_resource_state::Response {
                imported_resources: Vec::new(),
                diagnostics: report(&error, None),
            },
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        let request = request.into_inner();
        let schema = self
            .inner
            .data_source(&request.type_name)
            .ok()
            .map(|(schema, _)| schema);
        let result = self
            .inner
            .unless_stopped(async {
                let (schema, data_source) = self.inner.data_source(&request.type_name)?;
                let config = decode_object("configuration", request.config.as_ref(), schema)?;
                let client = self.inner.client()?;
                let state = data_source.read(&client, &config).await?;
                Ok(encode(&Value::Map(state), schema))
            })
            .await;
        Ok(Response::new(match result {
            Ok(state) => tf::read_data_source::Response {
                state,
                diagnostics: Vec::new(),
            },
            Err(error) => tf::read_data_source::Response {
                state: None,
                diagnostics: report(&error, schema),
            },
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        tracing::debug!("Terraform asked the provider to stop");
        self.inner.stopped.send_replace(true);
        Ok(Response::new(tf::stop_provider::Response {
            error: String::new(),
        }))
    }
}

/// go-plugin's controller: `Shutdown` asks the process to stop serving and exit.
pub struct Controller {
    shutdown: Arc<Notify>,
}

impl Controller {
    /// A controller that signals `shutdown`.
    pub fn new(shutdown: Arc<Notify>) -> Controller {
        Controller { shutdown }
    }
}

#[tonic::async_trait]
impl goplugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        tracing::debug!("Terraform asked the provider to shut down");
        self.shutdown.notify_one();
        Ok(Response::new(goplugin::Empty {}))
    }
}
