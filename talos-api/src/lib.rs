//! # talos-manager-talos-api
//!
//! The Talos machine API client of talos-manager: gRPC (tonic) with our own TLS (rustls,
//! aws-lc-rs), implementing the contract `talos-manager-core` defines in
//! [`talos_manager_core::talos_api`] ([`TalosApi`], [`TalosMaintenanceApi`],
//! [`TalosConnector`]). Core stays free of tonic; the service hands a [`GrpcTalosConnector`] to
//! the code that needs one, and tests hand it the fake Talos API server's addresses
//! (`tests/fake-talos`) or an in-memory fake.
//!
//! ```no_run
//! # async fn demo(credentials: talos_manager_core::talos_api::TalosCredentials) -> Result<(), talos_manager_core::talos_api::TalosApiError> {
//! use talos_manager_core::talos_api::TalosConnector as _;
//! use talos_manager_talos_api::GrpcTalosConnector;
//!
//! let connector = GrpcTalosConnector::new();
//! // `credentials`: `TalosCredentials::for_cluster(&secrets, now, &mut rng)`.
//! let api = connector.cluster(&credentials)?;
//! let node = "203.0.113.7:50000".parse().unwrap();
//! println!("Talos {}", api.version(node).await?.tag);
//! println!("stage {}", api.machine_status(node).await?.stage);
//! # Ok(()) }
//! ```
//!
//! # Connections
//!
//! Every call goes straight to the node it names (no `node` metadata, no proxying through an
//! endpoint). Each client keeps one tonic channel per node address, made on first use and then
//! reused; a connection the node dropped (it rebooted) is made again on the next call.
//! [`TalosConnector::cluster`] returns a new client each time, so keep it for a job's duration.
//!
//! Timeouts ([`TalosClientOptions`]): 5 s to connect, 30 s per call; an upgrade and a kubeconfig
//! download get 10 min, because the node pulls the installer image before it answers. A call
//! that runs out of time, like one that cannot connect, is [`TalosApiError::Unreachable`].
//!
//! # Traps it handles
//!
//! - **Mutual TLS as apid wants it.** The only trust root is the cluster's OS CA
//!   ([`TalosCredentials::ca_pem`]); the node's certificate is checked against the IP address we
//!   connect to; the client certificate is core's `os:admin` one (EKU exactly `clientAuth`, which
//!   apid insists on). Talos's `ED25519 PRIVATE KEY` PEM label is accepted as `PRIVATE KEY`.
//! - **ALPN `h2`** is offered on every connection: Talos 1.9+ closes TLS connections without it.
//! - **Maintenance mode** ([`GrpcMaintenanceApi`]): the node's certificate comes from a per-boot
//!   CA, so it is not verified (the handshake signature still is), and no client certificate is
//!   sent. Talos up to 1.12 answers only `ApplyConfiguration` and COSI reads there.
//! - **Errors**: a gRPC status the node sent keeps its code ([`TalosApiError::Status`], see
//!   [`TalosStatusCode`]); anything the client side made up (refused, TLS refused, connection
//!   dropped, timeout) is [`TalosApiError::Unreachable`], which [`TalosApiError::is_transient`]
//!   says is worth retrying.
//! - **Upgrade**: it first asks the node's version. Talos v1.13.0 and later get
//!   `ImageService.Pull` then `LifecycleService.Upgrade` (containerd CRI driver, system
//!   namespace, like talosctl), whose failure is a non-zero exit code *in the stream*
//!   ([`TalosApiError::InstallFailed`]) and which neither drains nor reboots, so the client then
//!   calls `Reboot` with the requested mode. Older nodes (and 1.13 pre-releases) get the legacy
//!   `MachineService.Upgrade`, always with `preserve = false` (`preserve` skips Talos's etcd
//!   safety checks).
//! - **Apply**: the mode is always sent; the protocol's default (0) is the deprecated `REBOOT`.
//! - **Reset**: every partition is sent with `wipe = true` (Talos ignores one without it).
//! - **Kubeconfig**: Talos streams a gzip tar it never finishes; the client reads the first
//!   entry named `kubeconfig` and stops before the missing end of the archive.
//! - **Machine status and node name** are COSI `State.Get` reads
//!   (`MachineStatuses.runtime.talos.dev/machine` in `runtime`,
//!   `Nodenames.kubernetes.talos.dev/nodename` in `k8s`) decoded from the resource's YAML spec.
//! - **Secrets**: configs, keys and kubeconfigs are never logged, and the `Debug` of everything
//!   holding one is redacted (the generated `ApplyConfigurationRequest` and `common.Data`
//!   included).
//!
//! # Protocol definitions
//!
//! `proto/` holds our own `.proto` files for the few services we call, written from the wire
//! format (package, service and method names and field numbers are what make the calls work);
//! `build.rs` compiles them with protox, no `protoc` needed. [`proto`] is the generated code; the
//! `server` feature adds the server stubs the fake Talos API server implements.
#![warn(missing_docs)]

mod client;
mod cosi;
mod error;
mod kubeconfig;
pub mod proto;
mod tls;

pub use client::{GrpcMaintenanceApi, GrpcTalosApi, GrpcTalosConnector, TalosClientOptions};
pub use tls::TlsSetupError;

#[cfg(doc)]
use talos_manager_core::talos_api::{
    TalosApi, TalosApiError, TalosConnector, TalosCredentials, TalosMaintenanceApi, TalosStatusCode,
};
