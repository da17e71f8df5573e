//! # talos-manager-http
//!
//! The talos-manager service: what Talos nodes fetch their config from, the admin API and the
//! dashboard, over [`talos_manager_core`]. A library so that tests build exactly the app the
//! `talos-manager` binary serves.
//!
//! - [`config`]: the configuration from flags and the environment.
//! - [`app`]: the routes.
//! - [`serve`]: open the store, migrate, listen, shut down gracefully.
//! - [`logging`]: human-readable or JSON logs.
#![warn(missing_docs)]

pub mod config;
mod health;
pub mod logging;
mod serve;

use poem::{EndpointExt as _, Route, get};
use talos_manager_core::Store;

pub use serve::{ServeError, open_store, serve};

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
}

/// The service's routes.
pub fn app(state: AppState) -> impl poem::Endpoint {
    Route::new()
        .at("/healthz", get(health::healthz))
        .data(state)
}
