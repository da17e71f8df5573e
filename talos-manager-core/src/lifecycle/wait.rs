//! Bounded polls of a node: until it goes down, and until it is back (at a version, running
//! and ready in Talos, Ready in Kubernetes). One log line per change of what is seen, not one
//! per question.

use tokio::time::Instant;

use super::{LifecycleContext, NodeRef};
use crate::error_chain;
use crate::kubernetes::KubernetesClient;
use crate::talos_api::{MachineStage, TalosApi};

/// Why a wait ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The node kept answering.
    #[error("{node} still answered {waited_seconds} s after it accepted the request")]
    StayedUp {
        /// The node.
        node: String,
        /// How long we waited.
        waited_seconds: u64,
    },
    /// The node did not come back as wanted.
    #[error("{node} was not back after {waited_seconds} s: {last_seen}")]
    NotBack {
        /// The node.
        node: String,
        /// How long we waited.
        waited_seconds: u64,
        /// What was seen last.
        last_seen: String,
    },
    /// The node is back but has not rejoined etcd as a healthy voting member.
    #[error(
        "{node} is back but had not rejoined etcd as a healthy member after {waited_seconds} s: {last_seen}"
    )]
    NotRejoined {
        /// The node.
        node: String,
        /// How long we waited.
        waited_seconds: u64,
        /// What was seen last.
        last_seen: String,
    },
    /// The caller asked to stop.
    #[error("waiting for {node} was cancelled")]
    Cancelled {
        /// The node.
        node: String,
    },
}

/// Asks until the node's Talos API stops answering as a configured node.
pub(crate) async fn until_down(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    node: &NodeRef,
) -> Result<(), WaitError> {
    let started = Instant::now();
    loop {
        match api.version(node.address).await {
            Err(_) => return Ok(()),
            Ok(_) => match api.machine_status(node.address).await {
                Ok(status)
                    if matches!(
                        status.stage,
                        MachineStage::Running | MachineStage::Booting | MachineStage::Unknown
                    ) => {}
                // Resetting, rebooting, shutting down, or no answer: on its way down.
                _ => return Ok(()),
            },
        }
        if started.elapsed() + ctx.timing.poll_interval > ctx.timing.node_down {
            return Err(WaitError::StayedUp {
                node: node.node_name.clone(),
                waited_seconds: started.elapsed().as_secs(),
            });
        }
        if (ctx.is_cancelled)() {
            return Err(WaitError::Cancelled {
                node: node.node_name.clone(),
            });
        }
        tokio::time::sleep(ctx.timing.poll_interval).await;
    }
}

/// What to wait for.
pub(crate) struct BackAt<'a> {
    /// The Talos version tag the node must report (`v1.11.3`), if any.
    pub version: Option<&'a str>,
    /// Whether the node must first be seen down (a reboot just asked for: a node still up
    /// has not rebooted yet).
    pub see_down_first: bool,
}

/// Asks until the node is back: at `back.version`, stage running and ready in Talos, Ready
/// in Kubernetes.
pub(crate) async fn until_back(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    kubernetes: &KubernetesClient,
    node: &NodeRef,
    back: BackAt<'_>,
) -> Result<(), WaitError> {
    let started = Instant::now();
    let bound = ctx.timing.node_back;
    let mut seen_down = !back.see_down_first;
    let mut last_seen = String::new();
    loop {
        let seen = match observe(api, kubernetes, node, back.version).await {
            Observed::Down(what) => {
                seen_down = true;
                what
            }
            Observed::Back if seen_down => return Ok(()),
            Observed::Back => "still up: it has not gone down for the reboot yet".to_owned(),
            Observed::Up(what) => what,
        };
        if seen != last_seen {
            ctx.line(format!("{}: {seen}", node.node_name)).await;
            last_seen = seen;
        }
        if started.elapsed() + ctx.timing.poll_interval > bound {
            return Err(WaitError::NotBack {
                node: node.node_name.clone(),
                waited_seconds: started.elapsed().as_secs(),
                last_seen,
            });
        }
        if (ctx.is_cancelled)() {
            return Err(WaitError::Cancelled {
                node: node.node_name.clone(),
            });
        }
        tokio::time::sleep(ctx.timing.poll_interval).await;
    }
}

enum Observed {
    /// The Talos API does not answer: rebooting.
    Down(String),
    /// Up, but not (yet) as wanted.
    Up(String),
    /// As wanted.
    Back,
}

async fn observe(
    api: &dyn TalosApi,
    kubernetes: &KubernetesClient,
    node: &NodeRef,
    version: Option<&str>,
) -> Observed {
    let running = match api.version(node.address).await {
        Ok(running) => running,
        Err(error) => {
            return Observed::Down(format!(
                "the Talos API does not answer ({})",
                short(&error_chain(&error).to_string())
            ));
        }
    };
    if let Some(version) = version
        && running.tag != version
    {
        return Observed::Up(format!("runs Talos {}, waiting for {version}", running.tag));
    }
    match api.machine_status(node.address).await {
        Ok(status) if status.stage == MachineStage::Running && status.ready => {}
        Ok(status) if status.stage == MachineStage::Running => {
            return Observed::Up(format!(
                "running Talos {}, not ready yet ({})",
                running.tag,
                status.unmet_conditions.join(", ")
            ));
        }
        Ok(status) => {
            return Observed::Up(format!("Talos {} is {}", running.tag, status.stage));
        }
        Err(error) => {
            return Observed::Down(format!(
                "the Talos API does not answer ({})",
                short(&error_chain(&error).to_string())
            ));
        }
    }
    match kubernetes.get_node(&node.node_name).await {
        Ok(k8s) if k8s.is_ready() => Observed::Back,
        Ok(_) => Observed::Up(format!(
            "running Talos {} and ready, but not Ready in Kubernetes yet",
            running.tag
        )),
        Err(error) => Observed::Up(format!(
            "running Talos {}; the Kubernetes node is not readable ({})",
            running.tag,
            short(&error_chain(&error).to_string())
        )),
    }
}

/// The first 200 characters of an error chain.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}
