//! # talos-manager-core
//!
//! The library behind talos-manager: everything that knows about Hetzner, SSH, Talos or SQL.
//! The HTTP service and the Terraform provider are thin adapters over it, and Rust programs can
//! use it on their own.
//!
//! Modules:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments and several
//!   replicas), its embedded migrations, and the encryption of secrets at rest.
//! - [`installer`]: the rescue-mode installer: SSH to a rescue system, probe its disks and
//!   SMBIOS UUID, plan and run the wipe, the image write, grub.cfg injection and the reboot.
//! - [`api_token`]: bearer tokens for the admin API, stored as hashes.
//! - [`node_labels`]: Kubernetes labels and taints of label and taint rules.
//! - [`Issue`], [`ValidationError`]: every problem with user input, with its location.
//! - [`ids`]: typed ids of every stored entity.
//! - [`Secret`]: a value that prints `<redacted>`.
//! - [`error_chain`]: an error with its causes on one line, for logs.
#![warn(missing_docs)]

pub mod api_token;
mod error_chain;
pub mod ids;
pub mod installer;
pub mod node_labels;
mod secret;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod validation;

pub use error_chain::error_chain;
pub use secret::Secret;
pub use store::{Backend, EncryptionKey, Store, StoreError};
pub use validation::{Issue, ValidationError};
