//! Kubernetes: a small typed client for a cluster's API (with admin credentials issued from its
//! secrets bundle, no kubeconfig file), the labels and taints of label and taint rules applied
//! to nodes and removed again when the rules change, and the version the cluster runs.
//!
//! The client is hand-written over reqwest rather than kube-rs and k8s-openapi: we make three
//! calls (`GET /version`, `GET` and `PATCH` of a node), reqwest and rustls are already built
//! for the provider clients, and k8s-openapi alone takes minutes to compile.
//!
//! ```no_run
//! # async fn demo(secrets: &talos_manager_core::talos::SecretsBundle) -> Result<(), talos_manager_core::kubernetes::KubernetesError> {
//! use talos_manager_core::kubernetes::{ClientTimeouts, KubernetesClient};
//! use talos_manager_core::talos::SystemRandom;
//!
//! let client = KubernetesClient::for_cluster(
//!     secrets,
//!     "https://prod.example.com:6443",
//!     ClientTimeouts::default(),
//!     time::OffsetDateTime::now_utc(),
//!     &mut SystemRandom,
//! )?;
//! println!("{}", client.version().await?.git_version);
//! let node = client.get_node("worker-1").await?;
//! println!("{:?}", node.metadata.labels);
//! # Ok(()) }
//! ```

mod client;
mod node;
mod reconcile;

pub use client::{ClientTimeouts, KubernetesClient, KubernetesError};
pub use node::{
    KubernetesVersion, LabelsTaints, Node, NodeMetadata, NodePatchPlan, NodeSpec, NodeTaint,
    TaintEffectKey, plan_node_patch,
};
pub use reconcile::{
    ProgressLog, ReconcileError, ReconcileOptions, ReconcileOutcome, cluster_client,
    configured_servers_matching, reconcile_labels_and_taints, running_kubernetes_version,
};
