//! Cordon and drain a node through the Kubernetes API by `kubectl drain --ignore-daemonsets`'s
//! rules: no new pods land on it; DaemonSet, mirror and finished pods stay; a pod no controller
//! manages or one with an `emptyDir` volume makes the drain fail naming it, unless the
//! [`PodPolicy`] allows it (`--force`, `--delete-emptydir-data`); every other pod is evicted,
//! respecting PodDisruptionBudgets.
//!
//! # Flow
//! 1. Cordon the node (`spec.unschedulable`).
//! 2. List the pods on it and judge each ([`Pod::drain_verdict`]); if any is refused, stop
//!    before evicting anything.
//! 3. Evict each that is not already terminating; an eviction a PodDisruptionBudget blocks
//!    (HTTP 429), or one refused because the pod's namespace is being deleted (HTTP 403,
//!    `NamespaceTerminating`: its controller deletes the pod soon), is asked again after
//!    [`DrainOptions::retry_interval`], as `kubectl drain` does; a pod that is terminating is
//!    waited for.
//! 4. A pod already terminating for [`terminating_skip_after`] on a node whose kubelet is not
//!    ready (nothing will confirm its deletion) is left behind, logged.
//! 5. Repeat until none is left, or fail after [`DrainOptions::timeout`] naming the pods
//!    still there. The node stays cordoned either way; uncordoning is the caller's decision.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Eviction, KubernetesClient, KubernetesError};
use super::pod::{DrainVerdict, Pod, PodPolicy};
use crate::progress::ProgressLog;

/// How long a drain may take, and how often it asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOptions {
    /// The whole drain, from the cordon to the last pod gone.
    pub timeout: Duration,
    /// Delay between two rounds (evictions blocked by a budget, pods still terminating).
    pub retry_interval: Duration,
}

impl Default for DrainOptions {
    /// 10 minutes, asking again every 5 s.
    fn default() -> Self {
        DrainOptions {
            timeout: Duration::from_secs(600),
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// Why a drain did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// A call failed in a way waiting does not help.
    #[error("failed to drain node {node}")]
    Kubernetes {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: KubernetesError,
    },
    /// Pods were still on the node when the time was up.
    #[error(
        "gave up draining node {node} after {waited_seconds} s: {} still on it ({})",
        pods_phrase(.pods.len()), .pods.join(", ")
    )]
    Timeout {
        /// The node.
        node: String,
        /// How long it tried.
        waited_seconds: u64,
        /// The pods left, `namespace/name`.
        pods: Vec<String>,
    },
    /// Pods the [`PodPolicy`] does not allow to evict are on the node; nothing was evicted.
    #[error(
        "refused to drain node {node}: {}",
        .pods.iter().map(|(pod, why)| format!("pod {pod}: {why}")).collect::<Vec<_>>().join("; ")
    )]
    Refused {
        /// The node.
        node: String,
        /// Each pod refused, `namespace/name`, and why.
        pods: Vec<(String, String)>,
    },
    /// The caller asked to stop.
    #[error("draining node {node} was cancelled")]
    Cancelled {
        /// The node.
        node: String,
    },
}

fn pods_phrase(count: usize) -> String {
    if count == 1 {
        "1 pod is".to_owned()
    } else {
        format!("{count} pods are")
    }
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// The pods evicted, `namespace/name`.
    pub evicted: Vec<String>,
    /// Pods left terminating on a node whose kubelet is down, `namespace/name`.
    pub skipped_terminating: Vec<String>,
}

/// How long a drain waits for a pod that is already terminating on a node whose kubelet is
/// not ready (so nothing will confirm the deletion) before it goes on without it: a quarter
/// of the drain's timeout, at most a minute (Talos's own drain waits a minute per pod).
pub fn terminating_skip_after(options: &DrainOptions) -> Duration {
    (options.timeout / 4).min(Duration::from_secs(60))
}

/// Cordons `node` and evicts its pods as `policy` allows; see the module documentation.
/// `is_cancelled` is asked between rounds.
pub async fn drain_node(
    client: &KubernetesClient,
    node: &str,
    options: &DrainOptions,
    policy: PodPolicy,
    log: &dyn ProgressLog,
    is_cancelled: &(dyn Fn() -> bool + Send + Sync),
) -> Result<DrainReport, DrainError> {
    let kubernetes = |source| DrainError::Kubernetes {
        node: node.to_owned(),
        source,
    };
    let started = Instant::now();
    client
        .set_unschedulable(node, true)
        .await
        .map_err(kubernetes)?;
    log.line(format!("node {node}: cordoned")).await;
    let mut report = DrainReport::default();
    let mut reported_blocked = BTreeSet::new();
    let mut reported_waiting = false;
    let mut terminating_since: std::collections::BTreeMap<String, Instant> =
        std::collections::BTreeMap::new();
    let skip_after = terminating_skip_after(options);
    loop {
        let listed = client.pods_on_node(node).await.map_err(kubernetes)?;
        let refused: Vec<(String, String)> = listed
            .iter()
            .filter_map(|pod| match pod.drain_verdict(policy) {
                DrainVerdict::Refuse(why) => Some((pod.full_name(), why.to_owned())),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            return Err(DrainError::Refused {
                node: node.to_owned(),
                pods: refused,
            });
        }
        let pods: Vec<Pod> = listed
            .into_iter()
            .filter(|pod| pod.drain_verdict(policy) == DrainVerdict::Evict)
            .filter(|pod| !report.skipped_terminating.contains(&pod.full_name()))
            .collect();
        if pods.is_empty() {
            log.line(format!(
                "node {node}: drained ({} evicted)",
                pods_count(report.evicted.len())
            ))
            .await;
            return Ok(report);
        }
        for pod in pods.iter().filter(|pod| !pod.is_terminating()) {
            let name = pod.full_name();
            match client
                .evict_pod(&pod.metadata.namespace, &pod.metadata.name)
                .await
                .map_err(kubernetes)?
            {
                Eviction::Evicted => {
                    log.line(format!("node {node}: evicted pod {name}")).await;
                    report.evicted.push(name);
                }
                Eviction::Gone => {}
                Eviction::Blocked { message } => {
                    if reported_blocked.insert(name.clone()) {
                        log.line(format!(
                            "node {node}: eviction of pod {name} blocked by a PodDisruptionBudget ({message}); asking again every {} s",
                            options.retry_interval.as_secs_f64()
                        ))
                        .await;
                    }
                }
                Eviction::NamespaceTerminating { message } => {
                    if reported_blocked.insert(name.clone()) {
                        log.line(format!(
                            "node {node}: pod {name} cannot be evicted while its namespace is being deleted ({message}); asking again every {} s until the namespace deletes it",
                            options.retry_interval.as_secs_f64()
                        ))
                        .await;
                    }
                }
            }
        }
        // A pod terminating for long on a node whose kubelet is down never goes: skip it.
        let now = Instant::now();
        let overdue: Vec<String> = pods
            .iter()
            .filter(|pod| pod.is_terminating())
            .map(|pod| pod.full_name())
            .filter(|name| {
                now.duration_since(*terminating_since.entry(name.clone()).or_insert(now))
                    >= skip_after
            })
            .collect();
        if !overdue.is_empty() && !client.get_node(node).await.map_err(kubernetes)?.is_ready() {
            for name in overdue {
                log.line(format!(
                    "node {node}: pod {name} is still terminating after {} s and the node's kubelet is not ready; going on without it",
                    skip_after.as_secs_f64()
                ))
                .await;
                report.skipped_terminating.push(name);
            }
            continue;
        }
        if pods.iter().any(|pod| pod.is_terminating()) && !reported_waiting {
            reported_waiting = true;
            log.line(format!(
                "node {node}: waiting for evicted pods to terminate"
            ))
            .await;
        }
        let elapsed = started.elapsed();
        if elapsed + options.retry_interval > options.timeout {
            // One last look: the evictions just sent may have finished.
            let left: Vec<String> = client
                .pods_on_node(node)
                .await
                .map_err(kubernetes)?
                .into_iter()
                .filter(|pod| pod.drain_verdict(policy) != DrainVerdict::Skip)
                .map(|pod| pod.full_name())
                .filter(|name| !report.skipped_terminating.contains(name))
                .collect();
            if left.is_empty() {
                continue;
            }
            return Err(DrainError::Timeout {
                node: node.to_owned(),
                waited_seconds: elapsed.as_secs(),
                pods: left,
            });
        }
        if is_cancelled() {
            return Err(DrainError::Cancelled {
                node: node.to_owned(),
            });
        }
        tokio::time::sleep(options.retry_interval).await;
    }
}

fn pods_count(count: usize) -> String {
    if count == 1 {
        "1 pod".to_owned()
    } else {
        format!("{count} pods")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_names_the_pods_left() {
        let error = DrainError::Timeout {
            node: "worker-1".into(),
            waited_seconds: 600,
            pods: vec!["shop/db-0".into()],
        };
        assert_eq!(
            error.to_string(),
            "gave up draining node worker-1 after 600 s: 1 pod is still on it (shop/db-0)"
        );
    }
}
