//! The admin REST API under `/api/v1`, built with poem-openapi: one file per resource, the
//! OpenAPI document generated from the code and served at `/api/v1/openapi.json`, with an
//! interactive UI at `/api/docs`.
//!
//! Every operation takes [`auth::AdminAuth`], and a test calls each operation of the document
//! without credentials expecting 401 (see `tests/http/auth_coverage.rs`).

mod auth;
mod clusters;
mod configs;
mod error;
mod ids;
mod jobs;
mod label_taint_rules;
mod lifecycle;
mod machine_configs;
mod provider_accounts;
mod schematics;
mod server_events;
mod servers;
mod settings;
mod tokens;

use futures_util::stream::{BoxStream, StreamExt as _};
use poem::{EndpointExt as _, Route};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApiService, Tags};

/// The groups of operations, in the order the UI lists them.
#[derive(Tags)]
enum Tag {
    /// Hetzner servers.
    Servers,
    /// Hetzner Robot and Cloud credentials.
    ProviderAccounts,
    /// Talos clusters, their secrets and client configs.
    Clusters,
    /// Config templates: installer image, Kubernetes version, patches.
    Configs,
    /// Servers bound to configs, with their hostname, private IP and disks.
    MachineConfigs,
    /// Background jobs and their live logs.
    Jobs,
    /// Rules that label and taint nodes by name.
    LabelTaintRules,
    /// Image Factory schematics and the Talos versions it builds.
    Schematics,
    /// Bootstrap defaults.
    Settings,
    /// Bearer tokens for this API.
    Tokens,
}

/// Answer of operations that create something.
#[derive(Debug, ApiResponse)]
enum Created<T: poem_openapi::types::ToJSON + Send + Sync> {
    /// Created.
    #[oai(status = 201)]
    Created(Json<T>),
}

/// Answer of operations that delete something.
#[derive(Debug, ApiResponse)]
enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

type Apis = (
    servers::ServersApi,
    lifecycle::LifecycleApi,
    server_events::ServerEventsApi,
    provider_accounts::ProviderAccountsApi,
    clusters::ClustersApi,
    configs::ConfigsApi,
    machine_configs::MachineConfigsApi,
    jobs::JobsApi,
    label_taint_rules::LabelTaintRulesApi,
    settings::SettingsApi,
    tokens::TokensApi,
    schematics::SchematicsApi,
);

/// The request and answer bodies of the admin API, shared with its clients (the Terraform
/// provider) so the two cannot drift. They (de)serialise with poem-openapi's `ToJSON` and
/// `ParseFromJSON`, exactly as the service does.
pub mod wire {
    pub use super::clusters::{ClusterBody, ClusterView};
    pub use super::configs::{ConfigBody, ConfigView};
    pub use super::error::{ErrorBody, IssueBody};
    pub use super::jobs::{JobLogEvent, JobView};
    pub use super::label_taint_rules::{RuleFields, RuleView};
    pub use super::lifecycle::{ResetBody, ResetProfileName, RollingSelection, UpgradeBody};
    pub use super::machine_configs::{CreateMachineConfig, MachineConfigView, MachineTypeName};
    pub use super::provider_accounts::{
        CreateProviderAccount, ProviderAccountView, UpdateProviderAccount,
    };
    pub use super::schematics::{SchematicBody, SchematicView, TalosVersionsView};
    pub use super::server_events::ServerEvent;
    pub use super::servers::{BootstrapBody, BootstrapPlanView, ServerView, UpdateServer};
    pub use super::settings::{SettingsView, UpdateSettings};
    pub use super::tokens::{CreateToken, CreatedToken, TokenView};
}

pub(crate) use ids::server_api_id;

/// Told when the service begins to shut down. `serve` attaches it to every request, and the
/// live streams end on it, so an open dashboard tab does not hold the graceful shutdown for its
/// whole grace period. Without it (an `app()` built by a test) streams end when the client
/// leaves.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(pub(crate) tokio::sync::watch::Receiver<bool>);

/// `stream`, ended when the service begins to shut down (see [`ShutdownSignal`]).
fn until_shutdown<T: Send + 'static>(
    request: &poem::Request,
    stream: BoxStream<'static, T>,
) -> BoxStream<'static, T> {
    match request.data::<ShutdownSignal>() {
        Some(ShutdownSignal(stop)) => {
            let mut stop = stop.clone();
            stream
                .take_until(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .boxed()
        }
        None => stream,
    }
}

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            servers::ServersApi,
            lifecycle::LifecycleApi,
            server_events::ServerEventsApi,
            provider_accounts::ProviderAccountsApi,
            clusters::ClustersApi,
            configs::ConfigsApi,
            machine_configs::MachineConfigsApi,
            jobs::JobsApi,
            label_taint_rules::LabelTaintRulesApi,
            settings::SettingsApi,
            tokens::TokensApi,
            schematics::SchematicsApi,
        ),
        "talos-manager admin API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Manage Hetzner servers, Talos clusters, configs and jobs. Authenticate with a bearer \
         token (`talos-manager token create NAME`) or HTTP Basic with BASIC_AUTH_PASSWORD.",
    )
    .server(API_PREFIX)
}

/// The OpenAPI document of the admin API, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> String {
    let mut document: serde_json::Value =
        serde_json::from_str(&service().spec()).expect("poem-openapi writes JSON");
    nullable_optionals(&mut document);
    document.to_string()
}

/// poem-openapi documents an `Option<T>` field as an optional property but sends `None` as
/// `null`: every optional property of the component schemas is marked nullable (OpenAPI 3.0;
/// a reference is wrapped in `allOf`, beside which `nullable` counts), so that the document says
/// what the API answers (schemathesis checks every answer against it).
fn nullable_optionals(document: &mut serde_json::Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let required: Vec<String> = schema
            .get("required")
            .and_then(serde_json::Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| name.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let Some(properties) = schema
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        for (name, property) in properties.iter_mut() {
            let Some(property) = property.as_object_mut() else {
                continue;
            };
            if required.contains(name) || property.contains_key("default") {
                continue;
            }
            if let Some(reference) = property.remove("$ref") {
                property.insert(
                    "allOf".to_owned(),
                    serde_json::json!([{ "$ref": reference }]),
                );
            }
            property.insert("nullable".to_owned(), serde_json::Value::Bool(true));
        }
    }
}

/// `GET /api/v1/openapi.json`.
#[poem::handler]
fn serve_openapi_document() -> poem::web::WithContentType<String> {
    use poem::IntoResponse as _;
    openapi_document().with_content_type("application/json; charset=utf-8")
}

/// `/api/v1/*`, `/api/v1/openapi.json` and the UI at `/api/docs`.
pub(crate) fn routes(route: Route) -> Route {
    let service = service();
    let document = poem::get(serve_openapi_document);
    let ui = service.swagger_ui();
    route
        .at(format!("{API_PREFIX}/openapi.json"), document)
        .nest("/api/docs", ui)
        .nest(API_PREFIX, service.around(error::render_poem_errors))
}
