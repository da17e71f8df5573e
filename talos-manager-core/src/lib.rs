//! # talos-manager-core
//!
//! The library behind talos-manager: everything that knows about Hetzner, SSH, Talos or SQL.
//! The HTTP service and the Terraform provider are thin adapters over it, and Rust programs can
//! use it on their own.
//!
//! Modules:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments and several
//!   replicas), its embedded migrations, and the encryption of secrets at rest.
//! - [`ids`]: typed ids of every stored entity.
//! - [`Secret`]: a value that prints `<redacted>`.
//! - [`error_chain`]: an error with its causes on one line, for logs.
#![warn(missing_docs)]

mod error_chain;
pub mod ids;
mod secret;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error_chain::error_chain;
pub use secret::Secret;
pub use store::{Backend, EncryptionKey, Store, StoreError};
