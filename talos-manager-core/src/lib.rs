//! # talos-manager-core
//!
//! The library behind talos-manager: everything that knows about Hetzner, SSH, Talos or SQL.
//! The HTTP service and the Terraform provider are thin adapters over it, and Rust programs can
//! use it on their own.
//!
//! Modules:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments and several
//!   replicas), its embedded migrations, and the encryption of secrets at rest.
//! - [`clusters`]: cluster validation, secrets bundles made or imported, talosconfig and
//!   kubeconfig.
//! - [`installer`]: the rescue-mode installer: SSH to a rescue system, probe its disks and
//!   SMBIOS UUID, plan and run the wipe, the image write, grub.cfg injection and the reboot.
//! - [`bootstrap`]: a stored server's bootstrap request: disk, image and `talos.config=` URL;
//!   the bootstrap choices and their defaults, and the one schematic rule
//!   ([`bootstrap::effective_schematic`]).
//! - [`rescue`]: entering the provider's rescue system with our key, recorded on the server.
//! - [`server_state`]: a server's state (`in rescue`, `installing 42 %`, `in cluster`, …).
//! - [`api_token`]: bearer tokens for the admin API, stored as hashes.
//! - [`random`]: the one random source (key material, tokens, ids), which fails loudly.
//! - [`node_config`]: the machine config a server is served, from what is stored.
//! - [`node_identity`]: a node's machine type, hostname and private IP, and their conventions.
//! - [`node_labels`]: Kubernetes labels and taints of label and taint rules.
//! - [`kubernetes`]: a cluster's Kubernetes API: rule labels and taints reconciled on nodes,
//!   and the Kubernetes version the cluster runs.
//! - [`runbooks`]: the commands to reboot or upgrade a node safely.
//! - [`Issue`], [`ValidationError`]: every problem with user input, with its location.
//! - [`ids`]: typed ids of every stored entity.
//! - [`image_factory`]: the Talos Image Factory client, schematic bodies, Talos versions and
//!   image URLs.
//! - [`talos`]: the Talos engine — secrets bundles, machine configs, patches, validation and
//!   client configs, equal to what `talosctl` produces.
//! - [`talos_api`]: the Talos machine API as traits (reset, reboot, upgrade, etcd, maintenance
//!   apply) and the `os:admin` credentials issued for it; the gRPC client is the
//!   `talos-manager-talos-api` crate.
//! - [`provider`]: the [`Provider`] and [`VswitchProvider`] traits, the Hetzner Robot and Cloud
//!   clients ([`HetznerRobot`], [`HetznerCloud`]) and their one error type [`ProviderError`].
//! - [`sync`]: fleet sync from every provider account, then the SSH probe of every server.
//! - [`server_update`]: operator edits of a server (name and vSwitch pushed to the provider).
//! - [`Secret`]: a value that prints `<redacted>`.
//! - [`error_chain`]: an error with its causes on one line, for logs.
#![warn(missing_docs)]

pub mod api_token;
pub mod bootstrap;
pub mod clusters;
pub mod dial_guard;
pub mod ids;
pub mod image_factory;
pub mod installer;
pub mod kubernetes;
pub mod lifecycle;
pub mod node_config;
pub mod node_identity;
pub mod node_labels;
pub mod progress;
pub mod provider;
pub mod random;
pub mod rescue;
pub mod runbooks;
pub mod server_state;
pub mod server_update;
pub mod store;
pub mod sync;
pub mod talos;
pub mod talos_api;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use image_factory::{ImageFactory, ImageFactoryError};
pub use provider::{
    Architecture, HetznerApiError, HetznerCloud, HetznerRobot, MissingKey, Provider, ProviderError,
    ProviderKind, ProviderServer, ProviderSshKey, ProviderVswitch, RescueActivation, RetryPolicy,
    SshPublicKey, VswitchProvider, http_client,
};
pub use store::{Backend, EncryptionKey, Store, StoreError};
pub use talos::ConfigEngine;
// The shared vocabulary of the service, its clients and this library, from
// `talos-manager-api-types`.
pub use talos_manager_api_types::{Issue, Secret, ValidationError, error_chain};
