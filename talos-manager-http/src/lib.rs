//! # talos-manager-http
//!
//! The talos-manager service: what Talos nodes fetch their config from, the admin API and the
//! dashboard, over [`talos_manager_core`]. A library so that tests build exactly the app the
//! `talos-manager` binary serves.
//!
//! - [`config`]: the configuration from flags and the environment.
//! - [`node_config`]: `GET /config`, where booting Talos nodes fetch their machine config.
//! - [`app`]: the routes, among them `GET /config` for booting Talos nodes.
//! - [`api`]: the admin REST API and its OpenAPI document.
//! - [`dashboard`]: the web dashboard, a browser client of the admin API.
//! - [`serve`]: open the store, migrate, listen, shut down gracefully; run the job worker
//!   (the jobs are [`talos_manager_core::jobs`]).
//! - [`talos_commands`]: `gen secrets`, `gen config` and `validate`, as talosctl has them.
//! - [`tokens`]: API tokens from the command line, and the first start's admin token.
//! - [`metrics`]: `/metrics` in the Prometheus format.
//! - [`logging`]: human-readable or JSON logs.
//! - `testing` (feature `testing`): the service started in the test process, for tests.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod dashboard;
mod health;
pub mod logging;
pub mod metrics;
pub mod node_config;
mod request_log;
mod serve;
pub mod talos_commands;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

use poem::{EndpointExt as _, Route, get};
use talos_manager_core::{Secret, Store};

pub use serve::{ServeError, open_store, serve};

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The service's metrics.
    pub metrics: metrics::Metrics,
    /// Where background jobs are enqueued.
    pub jobs: talos_manager_core::jobs::JobQueue,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: talos_manager_core::node_config::TrustedProxies,
    /// `BASIC_AUTH_PASSWORD`: when set, HTTP Basic with it authenticates admin requests.
    pub basic_auth_password: Option<Secret<String>>,
    /// The Image Factory (`TALOS_IMAGE_FACTORY_URL`) and the public host name (`HOST`).
    pub image_factory: std::sync::Arc<talos_manager_core::image_factory::FactoryService>,
    /// Builds the Hetzner clients of provider accounts (`HETZNER_ROBOT_API_URL`,
    /// `HETZNER_CLOUD_API_URL`).
    pub providers: talos_manager_core::sync::ProviderFactory,
    /// What rescue and bootstrap need: our SSH key, the rescue SSH port, image sources.
    pub bootstrap: talos_manager_core::jobs::BootstrapSettings,
    /// `/config` and what it keeps between requests (lookups, rendered configs, write
    /// throttles).
    pub config_serving: std::sync::Arc<talos_manager_core::node_config::ConfigService>,
    /// Clusters' health: checked by `GET /clusters/{id}/health` and the service's refresh
    /// loop, read by `/metrics`.
    pub cluster_health: std::sync::Arc<talos_manager_core::cluster_health::HealthMonitor>,
}

/// The service's routes.
pub fn app(state: AppState) -> impl poem::Endpoint {
    let route = Route::new()
        .at("/healthz", get(health::healthz))
        .at("/metrics", get(metrics::metrics))
        .at("/config", get(node_config::config));
    let route = dashboard::routes(route);
    api::routes(route)
        .around(request_log::log_request)
        .data(state)
}
