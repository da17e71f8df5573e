//! # talos-manager-core
//!
//! The library behind talos-manager: it lists the servers of every provider account, boots a
//! server into its provider's rescue system, reaches it over SSH, records its SMBIOS UUID and
//! disks, writes a Talos image to the chosen disk, and serves the node the machine config
//! generated natively (no `talosctl`) from its cluster's secrets bundle, its config template's
//! patches and its own values; then it keeps running nodes labelled, upgraded, rebooted and
//! reset, over the Talos and Kubernetes APIs. Everything that knows about Hetzner, SSH, Talos,
//! Kubernetes or SQL is here: the HTTP service and the Terraform provider are thin edges over
//! it, and a Rust program can embed it on its own (see `examples/`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use talos_manager_core::provider::ProviderFactory;
//! use talos_manager_core::sync::sync_all;
//! use talos_manager_core::{EncryptionKey, Store};
//!
//! let store = Store::connect("sqlite:talos-manager.db", &EncryptionKey::generate()).await?;
//! store.migrate().await?;
//! // The real Hetzner APIs; `ProviderFactory::from_source` hands in your own providers.
//! let report = sync_all(&store, &ProviderFactory::default(), None).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! **Engines** (pure: no I/O; time and randomness are inputs):
//! - [`talos`]: the Talos engine: secrets bundles, machine configs, patches, validation and
//!   client configs, equal to what `talosctl` produces for Talos 1.8 to 1.14.
//! - [`node_identity`]: a node's machine type, hostname and private IP, and their conventions.
//! - [`runbooks`]: the commands to reboot or upgrade a node safely (and, for a stored server,
//!   with its values).
//!
//! **Clients** (outbound I/O, no store):
//! - [`provider`]: the [`Provider`] and [`VswitchProvider`] traits, the Hetzner Robot and Cloud
//!   clients, and [`ProviderFactory`](provider::ProviderFactory), the seam every operation
//!   builds an account's clients through.
//! - [`installer`]: the rescue-mode installer: SSH to a rescue system, probe its disks and
//!   SMBIOS UUID, plan (pure) and run the wipe, the image write, grub.cfg injection and the
//!   reboot.
//! - [`image_factory`]: the Talos Image Factory client, schematic bodies and their registration,
//!   Talos releases and image URLs.
//! - [`kubernetes`]: a cluster's Kubernetes API: nodes, pods, cordon and drain.
//! - [`talos_api`]: the Talos machine API as traits (reset, reboot, upgrade, etcd, maintenance
//!   apply) and the `os:admin` credentials issued for it; the gRPC client is the
//!   `talos-manager-talos-api` crate.
//!
//! **Storage**:
//! - [`store`]: the database (SQLite by default, PostgreSQL for real deployments and several
//!   replicas), its embedded migrations, and the encryption of secrets at rest.
//!
//! **Operations** (use cases: the store and the clients together):
//! - [`sync`]: fleet sync from every provider account, then the SSH probe of every server.
//! - [`rescue`]: entering the provider's rescue system with our key, recorded on the server.
//! - [`bootstrap`]: a stored server's bootstrap request: disk, image and `talos.config=` URL;
//!   the bootstrap choices and their defaults, the plan and its dry run, and the one schematic
//!   rule ([`bootstrap::effective_schematic`]).
//! - [`schematics`]: a schematic registered with the Image Factory (with `talos.config=` forced
//!   in), then stored.
//! - [`server_update`]: operator edits of a server (name and vSwitch pushed to the provider).
//! - [`server_state`]: a server's state (`in rescue`, `installing 42 %`, `in cluster`, …).
//! - [`cluster_health`]: a cluster's health in one call (etcd, Kubernetes, nodes, missing
//!   servers, certificate expiry).
//! - [`clusters`]: cluster validation, secrets bundles made or imported, talosconfig and
//!   kubeconfig.
//! - [`node_config`]: the machine config a server is served, from what is stored; a server
//!   bound to a config with its defaults; and [`ConfigService`](node_config::ConfigService),
//!   `/config`'s policy behind one call.
//! - [`node_labels`]: label and taint rules, applied to nodes through the Kubernetes API, and
//!   the Kubernetes version a cluster runs.
//! - [`lifecycle`]: running nodes' reset, rolling upgrades and reboots, with etcd's quorum
//!   kept.
//! - [`jobs`]: durable background jobs (queue, worker, heartbeats, cancellation, recovery) and
//!   every job talos-manager runs: sync, bootstrap, labels and taints, reset, rolling upgrade
//!   and reboot, config push.
//!
//! **Cross-cutting**:
//! - [`ids`]: typed ids of every stored entity, and a server as users name it (`robot-<n>`).
//! - [`Secret`]: a value that prints `<redacted>`.
//! - [`Issue`], [`ValidationError`]: every problem with user input, with its location.
//! - [`error_chain`]: an error with its causes on one line, for logs.
//! - [`progress`]: [`ProgressLog`](progress::ProgressLog), where an operation writes its
//!   readable lines (a job's log).
//! - [`random`]: the one random source (key material, tokens, ids), which fails loudly.
//! - [`api_token`]: bearer tokens for the admin API, stored as hashes.
//! - [`dial_guard`]: under test, no connection leaves 127.0.0.0/8.
//! - `testing` (feature `testing`): a fresh database per test on either backend, the Talos
//!   oracle and the in-memory Talos API fake.
//!
//! The crate root re-exports the types most programs need, in the same groups.
#![warn(missing_docs)]

pub mod api_token;
pub mod bootstrap;
pub mod cluster_health;
pub mod clusters;
pub mod dial_guard;
pub mod ids;
pub mod image_factory;
pub mod installer;
pub mod jobs;
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
pub mod schematics;
pub mod server_state;
pub mod server_update;
pub mod store;
pub mod sync;
pub mod talos;
pub mod talos_api;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

// Engines.
pub use talos::ConfigEngine;
// Clients.
pub use image_factory::{ImageFactory, ImageFactoryError};
pub use provider::{
    Architecture, HetznerApiError, HetznerCloud, HetznerRobot, MissingKey, Provider, ProviderError,
    ProviderKind, ProviderServer, ProviderSshKey, ProviderVswitch, RescueActivation, RetryPolicy,
    SshPublicKey, VswitchProvider, http_client,
};
// Storage.
pub use store::{Backend, EncryptionKey, Store, StoreError};
// Cross-cutting: the shared vocabulary of the service, its clients and this library, from
// `talos-manager-api-types`.
pub use talos_manager_api_types::{Issue, Secret, ValidationError, error_chain};
