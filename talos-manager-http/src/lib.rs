//! # talos-manager-http
//!
//! The talos-manager service: what Talos nodes fetch their config from, the admin API and the
//! dashboard, over [`talos_manager_core`]. A library so that tests build exactly the app the
//! `talos-manager` binary serves.
//!
//! - [`config`]: the configuration from flags and the environment.
//! - [`app`]: the routes.
//! - [`api`]: the admin REST API and its OpenAPI document.
//! - [`serve`]: open the store, migrate, listen, shut down gracefully.
//! - [`tokens`]: API tokens from the command line, and the first start's admin token.
//! - [`logging`]: human-readable or JSON logs.
#![warn(missing_docs)]

pub mod api;
pub mod config;
mod health;
pub mod logging;
mod serve;
pub mod tokens;

use poem::{EndpointExt as _, Route, get};
use talos_manager_core::{Secret, Store};

pub use serve::{ServeError, open_store, serve};

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// `BASIC_AUTH_PASSWORD`: when set, HTTP Basic with it authenticates admin requests.
    pub basic_auth_password: Option<Secret<String>>,
}

/// The service's routes.
pub fn app(state: AppState) -> impl poem::Endpoint {
    let route = Route::new().at("/healthz", get(health::healthz));
    api::routes(route).data(state)
}
