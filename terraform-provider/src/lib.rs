//! # terraform-provider-talosmanager
//!
//! The Terraform provider for talos-manager: a tfplugin6 gRPC server (Terraform ≥ 1.0) that is
//! a client of the service's admin REST API. The binary (`main.rs`) does the go-plugin
//! handshake and serves [`server::ProviderService`].
//!
//! - [`schema`]: each attribute declared once; the tfplugin6 schema and `docs/terraform/` come
//!   from it.
//! - [`resources`], [`data_sources`]: one file per type, plus the Terraform semantics shared
//!   by all (planning, drift, import).
//! - [`ephemeral_resources`]: client configs opened for a run, never stored (protocol 6.7+).
//! - [`provider`]: the provider block.
//! - [`client`]: the admin API client.
//! - [`error`] and [`diagnostics`]: the errors, and the one place they become diagnostics.
//! - [`value`]: Terraform values and their msgpack/JSON encodings.
//! - [`tls`]: AutoMTLS with Terraform's pinned client certificate.
#![warn(missing_docs)]

pub mod client;
pub mod data_sources;
pub mod diagnostics;
pub mod ephemeral_resources;
pub mod error;
pub mod provider;
pub mod resources;
pub mod schema;
pub mod server;
pub mod tls;
pub mod value;

/// Generated tfplugin6 messages and the `Provider` service stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// Generated go-plugin controller stubs.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod goplugin {
    tonic::include_proto!("plugin");
}
