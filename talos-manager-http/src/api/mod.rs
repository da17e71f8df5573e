//! The admin REST API under `/api/v1`, built with poem-openapi: one file per resource, the
//! OpenAPI document generated from the code and served at `/api/v1/openapi.json`, with an
//! interactive UI at `/api/docs`.
//!
//! Every operation takes [`auth::AdminAuth`], and a test calls each operation of the document
//! without credentials expecting 401 (see `tests/http/auth_coverage.rs`).

mod auth;
mod clusters;
mod configs;
mod document;
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

/// The request and answer bodies of the admin API: the `talos-manager-api-types` crate (with
/// its `openapi` feature), shared with the API's clients (the Terraform provider) so the two
/// cannot drift.
pub use talos_manager_api_types as wire;

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

/// The largest request body the API reads: a config with large inline manifests, escaped
/// as JSON, fits (the engine refuses YAML over 4 MiB anyway).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// Refuses (413) a request whose declared `Content-Length` is over [`MAX_BODY_BYTES`], and
/// stops reading a body sent without one once it passes that size (the operation then fails
/// to read it), so no request body makes the service buffer more.
async fn limit_body<E: poem::Endpoint>(
    next: E,
    mut request: poem::Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    let declared = request
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        let mut response = error::body(
            "payload_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
        response.set_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
        return Ok(response);
    }
    if declared.is_none() {
        let mut read = 0usize;
        let limited = request.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            read = read.saturating_add(chunk.len());
            if read > MAX_BODY_BYTES {
                return Err(std::io::Error::other("the request body is too large"));
            }
            Ok(chunk)
        });
        request.set_body(poem::Body::from_bytes_stream(limited));
    }
    Ok(next.call(request).await?.into_response())
}

/// How often a live stream checks that the token it was opened with still authenticates.
const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// `stream`, ended once the API token it was opened with is revoked or expires (checked every
/// [`TOKEN_RECHECK`], as often as the streams poll). Streams opened with the password run
/// until the client leaves.
fn while_authorized<T: Send + 'static>(
    state: &crate::AppState,
    auth: &auth::AdminAuth,
    stream: BoxStream<'static, T>,
) -> BoxStream<'static, T> {
    let Some(token) = auth.token_id() else {
        return stream;
    };
    let store = state.store.clone();
    stream
        .take_until(async move {
            let mut tick = tokio::time::interval(TOKEN_RECHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.api_token_is_valid(token).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(token = %token, "api token revoked or expired; live stream ended");
                        break;
                    }
                    // An unreachable database ends nothing: the stream's own polls fail too.
                    Err(error) => {
                        tracing::warn!(error = %talos_manager_core::error_chain(&error), "failed to check a live stream's token");
                    }
                }
            }
        })
        .boxed()
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

/// The OpenAPI document of the admin API, as served at `/api/v1/openapi.json`: poem-openapi's,
/// with the corrections of [`document::refine`] (nullable optional fields, event streams).
pub fn openapi_document() -> String {
    document::refine(&service().spec())
}

/// `/api/v1/*`, `/api/v1/openapi.json` and the UI at `/api/docs`.
pub(crate) fn routes(route: Route) -> Route {
    let service = service();
    let document = openapi_document();
    let document = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    // poem-openapi's UI page embeds its own document: it gets the corrected one instead.
    let (generated, refined) = (service.spec(), openapi_document());
    let ui = service
        .swagger_ui()
        .map_to_response()
        .and_then(move |response: poem::Response| {
            let (generated, refined) = (generated.clone(), refined.clone());
            async move {
                let (parts, body) = response.into_parts();
                let page = body.into_string().await?.replace(&generated, &refined);
                Ok(poem::Response::from_parts(parts, page.into()))
            }
        });
    route
        .at(format!("{API_PREFIX}/openapi.json"), document)
        .nest("/api/docs", ui)
        .nest(
            API_PREFIX,
            service
                .around(error::render_poem_errors)
                .around(auth::refuse_cross_site)
                .around(limit_body),
        )
}
