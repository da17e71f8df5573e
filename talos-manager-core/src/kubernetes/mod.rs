//! Kubernetes: a small typed client for a cluster's API (with admin credentials issued from its
//! secrets bundle, no kubeconfig file), the pure plan of a node's labels-and-taints patch
//! (`node.rs`), pods as a drain reads them, and the cordon and drain of a node before it is
//! upgraded or rebooted (`drain.rs`). A client: nothing here reads the store; applying the
//! rules to a server's node is [`crate::node_labels`]'s use case.
//!
//! The client is hand-written over reqwest rather than kube-rs and k8s-openapi: we make a few
//! calls (`GET /version`; `GET`, `PATCH`, `DELETE` of a node; the pods on a node and their
//! eviction), reqwest and rustls are already built for the provider clients, and k8s-openapi
//! alone takes minutes to compile.
//!
//! ```no_run
//! # async fn demo(secrets: &talos_manager_core::talos::SecretsBundle) -> Result<(), talos_manager_core::kubernetes::KubernetesError> {
//! use talos_manager_core::kubernetes::{ClientTimeouts, KubernetesClient};
//! use talos_manager_core::random::SystemRandom;
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
mod drain;
mod node;
mod pod;

pub use client::{
    ClientTimeouts, Eviction, KubernetesClient, KubernetesError, MAX_RETRY_AFTER, THROTTLE_RETRIES,
};
pub use drain::{DrainError, DrainOptions, DrainReport, drain_node, terminating_skip_after};
pub use node::{
    KubernetesVersion, LabelsTaints, Node, NodeCondition, NodeMetadata, NodePatchPlan, NodeSpec,
    NodeStatus, NodeSystemInfo, NodeTaint, TaintEffectKey, plan_node_patch,
};
pub use pod::{
    DrainVerdict, EMPTY_DIR_REASON, MIRROR_POD_ANNOTATION, OwnerReference, Pod, PodMetadata,
    PodPolicy, PodSpec, PodStatus, UNMANAGED_REASON, Volume,
};
