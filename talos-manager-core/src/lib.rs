//! # talos-manager-core
//!
//! The library behind talos-manager: everything that knows about Hetzner, SSH, Talos or SQL.
//! The HTTP service and the Terraform provider are thin adapters over it, and Rust programs can
//! use it on their own.
//!
//! Modules:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments), its migrations,
//!   and the encryption of secrets at rest.
//! - [`provider`]: the [`Provider`] and [`VswitchProvider`] traits, the Hetzner Robot and Cloud
//!   clients ([`HetznerRobot`], [`HetznerCloud`]) and their one error type [`ProviderError`].
//! - [`Secret`]: a value that prints `<redacted>`.
#![warn(missing_docs)]

pub mod provider;
mod secret;
pub mod store;

pub use provider::{
    Architecture, HetznerApiError, HetznerCloud, HetznerRobot, MissingKey, Provider, ProviderError,
    ProviderKind, ProviderServer, ProviderSshKey, RescueActivation, RetryPolicy, SshPublicKey,
    Vswitch, VswitchProvider, http_client,
};
pub use secret::Secret;
