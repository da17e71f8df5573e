//! # talos-manager-core
//!
//! The library behind talos-manager: everything that knows about Hetzner, SSH, Talos or SQL.
//! The HTTP service and the Terraform provider are thin adapters over it, and Rust programs can
//! use it on their own.
//!
//! Modules:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments), its migrations,
//!   and the encryption of secrets at rest.
//! - [`talos`]: the Talos engine — secrets bundles, machine configs, patches, validation and
//!   client configs, equal to what `talosctl` produces.
//! - [`Secret`]: a value that prints `<redacted>`.
#![warn(missing_docs)]

mod secret;
pub mod store;
pub mod talos;

pub use secret::Secret;
pub use talos::ConfigEngine;
