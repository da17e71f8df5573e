//! Convergence: rolling the config talos-manager would serve now out to running nodes (the
//! `config_apply` job), one node at a time, control planes first.
//!
//! For each node: render its config, ask Talos for a dry run (what changes, whether a reboot is
//! needed), apply it with the chosen mode, wait until the node is healthy again (its Talos API
//! answers, running and ready; a control plane's etcd member answers without errors), and
//! check that it runs the new config. The first node that fails stops the roll. Each node done
//! is saved in the checkpoint, so a run started again after a restart continues after it.
//!
//! `reboot` is Talos's deprecated REBOOT mode done explicitly: the config is staged, then the
//! node is rebooted into it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::drift::{Comparison, ConfigDriftError, DriftScope, compare, nodes_of};
use super::render_node_config;
use crate::ids::{ClusterId, ServerId, ServerRef};
use crate::lifecycle::{Checkpoint, CheckpointError, NodeRef, NodeRole};
use crate::progress::ProgressLog;
use crate::store::Store;
use crate::talos_api::{ApplyMode, MachineStage, RebootMode, TalosApi, TalosConnector};

/// How the new config takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConfigApplyMode {
    /// Without a reboot when Talos can, with one otherwise.
    #[default]
    Auto,
    /// Without a reboot, or the node refuses.
    NoReboot,
    /// At the node's next reboot (the node keeps running the old config until then).
    Staged,
    /// Staged, then the node is rebooted into it.
    Reboot,
}

impl ConfigApplyMode {
    /// The mode as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigApplyMode::Auto => "auto",
            ConfigApplyMode::NoReboot => "no_reboot",
            ConfigApplyMode::Staged => "staged",
            ConfigApplyMode::Reboot => "reboot",
        }
    }

    /// The mode sent to Talos.
    fn talos_mode(self) -> ApplyMode {
        match self {
            ConfigApplyMode::Auto => ApplyMode::Auto,
            ConfigApplyMode::NoReboot => ApplyMode::NoReboot,
            ConfigApplyMode::Staged | ConfigApplyMode::Reboot => ApplyMode::Staged,
        }
    }
}

/// Which servers a config apply covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigApplyTarget {
    /// Every configured server of the cluster.
    Cluster(ClusterId),
    /// These servers (all of one cluster).
    Servers(Vec<ServerId>),
}

/// How a config apply reaches the nodes and how long it waits.
pub struct ApplyContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// Makes the cluster's Talos API client.
    pub talos: &'a dyn TalosConnector,
    /// The port of every node's Talos API.
    pub talos_port: u16,
    /// How often to ask a node whether it is healthy again.
    pub poll_interval: Duration,
    /// How long a node may take to be healthy again after the apply.
    pub node_back: Duration,
    /// Where progress goes (never a config or a secret).
    pub log: &'a dyn ProgressLog,
}

/// One node of a plan: what Talos says the apply would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedApply {
    /// The server.
    pub server_id: ServerId,
    /// Its provider and id there.
    pub server_ref: ServerRef,
    /// Its name.
    pub server: String,
    /// Control plane or worker.
    pub role: NodeRole,
    /// Whether it runs another config than the one it would get (`None`: unknown).
    pub drifted: Option<bool>,
    /// Our diff (secrets masked), when drifted.
    pub diff: Option<String>,
    /// Talos's dry-run summary: how it would apply the config (with or without a reboot).
    pub talos_summary: Option<String>,
    /// Why the node could not be asked.
    pub error: Option<String>,
}

/// What a config apply would do, node by node in the order it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigApplyPlan {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// The mode.
    pub mode: ConfigApplyMode,
    /// Control planes first, then by name.
    pub nodes: Vec<PlannedApply>,
}

/// Why a config apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConfigApplyError {
    /// The target could not be read or reached (see [`ConfigDriftError`]).
    #[error(transparent)]
    Target(#[from] ConfigDriftError),
    /// The servers selected are not all of one cluster, or none was selected.
    #[error("the servers of a config apply must be one or more servers of one cluster")]
    MixedSelection,
    /// The checkpoint could not be read or saved.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A node failed; the nodes after it were not touched.
    #[error("{server}: {reason}; the nodes after it were not touched")]
    NodeFailed {
        /// The server's name.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

async fn target_nodes(
    ctx: &ApplyContext<'_>,
    target: &ConfigApplyTarget,
) -> Result<
    (
        ClusterId,
        Vec<(NodeRef, ServerRef)>,
        std::sync::Arc<dyn TalosApi>,
    ),
    ConfigApplyError,
> {
    match target {
        ConfigApplyTarget::Cluster(cluster) => Ok(nodes_of(
            ctx.store,
            ctx.talos,
            ctx.talos_port,
            DriftScope::Cluster(*cluster),
        )
        .await?),
        ConfigApplyTarget::Servers(servers) => {
            let mut all: Option<(ClusterId, Vec<(NodeRef, ServerRef)>, _)> = None;
            for server in servers {
                let (cluster, nodes, api) = nodes_of(
                    ctx.store,
                    ctx.talos,
                    ctx.talos_port,
                    DriftScope::Server(*server),
                )
                .await?;
                match &mut all {
                    None => all = Some((cluster, nodes, api)),
                    Some((first, list, _)) if *first == cluster => list.extend(nodes),
                    Some(_) => return Err(ConfigApplyError::MixedSelection),
                }
            }
            let (cluster, mut nodes, api) = all.ok_or(ConfigApplyError::MixedSelection)?;
            nodes.sort_by(|(a, _), (b, _)| {
                (a.role != NodeRole::ControlPlane, &a.server_name)
                    .cmp(&(b.role != NodeRole::ControlPlane, &b.server_name))
            });
            Ok((cluster, nodes, api))
        }
    }
}

/// The summary of Talos's dry-run answer, without its diff (which is not masked).
fn talos_summary(mode_details: &str) -> String {
    mode_details
        .split("\n\nConfig diff:")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Asks every node of `target` for a dry run of the config it would get now: the plan, with
/// our diff (secrets masked) and Talos's summary. Changes nothing.
///
/// # Errors
/// When the target cannot be read or a config cannot be rendered.
pub async fn plan_config_apply(
    ctx: &ApplyContext<'_>,
    target: &ConfigApplyTarget,
    mode: ConfigApplyMode,
) -> Result<ConfigApplyPlan, ConfigApplyError> {
    let (cluster_id, nodes, api) = target_nodes(ctx, target).await?;
    let mut planned = Vec::new();
    for (node, server_ref) in nodes {
        let desired = render(ctx.store, &node).await?;
        let mut entry = PlannedApply {
            server_id: node.server_id,
            server_ref,
            server: node.server_name.clone(),
            role: node.role,
            drifted: None,
            diff: None,
            talos_summary: None,
            error: None,
        };
        match api.machine_config(node.address).await {
            Ok(running) => match compare(running.expose(), desired.expose()) {
                Ok(Comparison::InSync) => entry.drifted = Some(false),
                Ok(Comparison::Drifted { diff }) => {
                    entry.drifted = Some(true);
                    entry.diff = Some(diff);
                }
                Err(error) => entry.error = Some(error),
            },
            Err(error) => entry.error = Some(crate::error_chain(&error).to_string()),
        }
        match api
            .dry_run_configuration(node.address, &desired, mode.talos_mode())
            .await
        {
            Ok(outcome) => entry.talos_summary = Some(talos_summary(&outcome.mode_details)),
            Err(error) => {
                entry
                    .error
                    .get_or_insert_with(|| crate::error_chain(&error).to_string());
            }
        }
        planned.push(entry);
    }
    Ok(ConfigApplyPlan {
        cluster_id,
        mode,
        nodes: planned,
    })
}

async fn render(store: &Store, node: &NodeRef) -> Result<crate::Secret<String>, ConfigApplyError> {
    render_node_config(store, node.server_id)
        .await
        .map(|config| config.yaml)
        .map_err(|source| {
            ConfigApplyError::Target(ConfigDriftError::Render {
                server: node.server_name.clone(),
                source: Box::new(source),
            })
        })
}

/// The checkpoint: the servers done.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    done: Vec<ServerId>,
}

/// What a finished config apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigApplyReport {
    /// The servers applied to, in order.
    pub applied: Vec<String>,
    /// The servers already in sync, left alone.
    pub in_sync: Vec<String>,
    /// The servers done by an earlier run (before a restart).
    pub resumed: Vec<String>,
}

/// Rolls the config out over `target` (see the module), saving progress in `checkpoint`.
///
/// # Errors
/// At the first node that fails ([`ConfigApplyError::NodeFailed`]), or when the target cannot
/// be read.
pub async fn run_config_apply(
    ctx: &ApplyContext<'_>,
    target: &ConfigApplyTarget,
    mode: ConfigApplyMode,
    checkpoint: &dyn Checkpoint,
) -> Result<ConfigApplyReport, ConfigApplyError> {
    let (_, nodes, api) = target_nodes(ctx, target).await?;
    let mut progress: Progress = checkpoint
        .load()
        .await?
        .and_then(|state| serde_json::from_value(state).ok())
        .unwrap_or_default();
    let mut report = ConfigApplyReport {
        applied: Vec::new(),
        in_sync: Vec::new(),
        resumed: Vec::new(),
    };
    let order: Vec<String> = nodes
        .iter()
        .map(|(node, _)| format!("{} ({})", node.server_name, node.role.as_str()))
        .collect();
    ctx.log
        .line(format!(
            "applying the rendered config in {} mode, one node at a time: {}",
            mode.as_str(),
            order.join(", ")
        ))
        .await;
    for (node, _) in &nodes {
        let name = &node.server_name;
        if progress.done.contains(&node.server_id) {
            ctx.log
                .line(format!("{name}: done before the restart"))
                .await;
            report.resumed.push(name.clone());
            continue;
        }
        let fail = |reason: String| ConfigApplyError::NodeFailed {
            server: name.clone(),
            reason,
        };
        let desired = render(ctx.store, node).await?;
        let running = api.machine_config(node.address).await.map_err(|error| {
            fail(format!(
                "its config could not be read: {}",
                crate::error_chain(&error)
            ))
        })?;
        let comparison = compare(running.expose(), desired.expose()).map_err(&fail)?;
        let Comparison::Drifted { diff } = comparison else {
            ctx.log
                .line(format!("{name}: in sync, nothing to apply"))
                .await;
            report.in_sync.push(name.clone());
            progress.done.push(node.server_id);
            save(checkpoint, &progress).await?;
            continue;
        };
        ctx.log.line(format!("{name}: changes:\n{diff}")).await;
        let dry_run = api
            .dry_run_configuration(node.address, &desired, mode.talos_mode())
            .await
            .map_err(|error| {
                fail(format!(
                    "the dry run was refused: {}",
                    crate::error_chain(&error)
                ))
            })?;
        ctx.log
            .line(format!(
                "{name}: Talos's dry run: {}",
                talos_summary(&dry_run.mode_details)
            ))
            .await;
        let applied = api
            .apply_configuration(node.address, &desired, mode.talos_mode())
            .await
            .map_err(|error| {
                fail(format!(
                    "the config was refused: {}",
                    crate::error_chain(&error)
                ))
            })?;
        ctx.log
            .line(format!("{name}: {}", applied.mode_details))
            .await;
        if mode == ConfigApplyMode::Reboot {
            api.reboot(node.address, RebootMode::Default)
                .await
                .map_err(|error| {
                    fail(format!(
                        "the reboot was refused: {}",
                        crate::error_chain(&error)
                    ))
                })?;
            ctx.log.line(format!("{name}: rebooting into it")).await;
        }
        ctx.log
            .line(format!("{name}: waiting until it is healthy"))
            .await;
        wait_healthy(ctx, &*api, node, &desired, mode)
            .await
            .map_err(&fail)?;
        ctx.log.line(format!("{name}: healthy, done")).await;
        report.applied.push(name.clone());
        progress.done.push(node.server_id);
        save(checkpoint, &progress).await?;
    }
    Ok(report)
}

async fn save(checkpoint: &dyn Checkpoint, progress: &Progress) -> Result<(), CheckpointError> {
    checkpoint
        .save(&serde_json::to_value(progress).unwrap_or_default())
        .await
}

/// Waits until the node answers running and ready, its etcd member (control planes) answers
/// without errors and (unless staged) it runs `desired`.
async fn wait_healthy(
    ctx: &ApplyContext<'_>,
    api: &dyn TalosApi,
    node: &NodeRef,
    desired: &crate::Secret<String>,
    mode: ConfigApplyMode,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + ctx.node_back;
    loop {
        let why = match check_healthy(api, node, desired, mode).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "not healthy within {} s: {why}",
                ctx.node_back.as_secs()
            ));
        }
        tokio::time::sleep(ctx.poll_interval).await;
    }
}

async fn check_healthy(
    api: &dyn TalosApi,
    node: &NodeRef,
    desired: &crate::Secret<String>,
    mode: ConfigApplyMode,
) -> Result<(), String> {
    let status = api
        .machine_status(node.address)
        .await
        .map_err(|error| crate::error_chain(&error).to_string())?;
    if status.stage != MachineStage::Running || !status.ready {
        return Err(format!("it is {} (ready: {})", status.stage, status.ready));
    }
    if node.role == NodeRole::ControlPlane {
        let etcd = api
            .etcd_status(node.address)
            .await
            .map_err(|error| format!("its etcd does not answer: {}", crate::error_chain(&error)))?;
        if !etcd.errors.is_empty() {
            return Err(format!("its etcd reports {}", etcd.errors.join("; ")));
        }
    }
    if mode != ConfigApplyMode::Staged {
        let running = api
            .machine_config(node.address)
            .await
            .map_err(|error| crate::error_chain(&error).to_string())?;
        if compare(running.expose(), desired.expose())? != Comparison::InSync {
            return Err("it does not run the new config yet".to_owned());
        }
    }
    Ok(())
}

/// A [`ProgressLog`] that keeps nothing: for a plan, which logs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

#[async_trait::async_trait]
impl ProgressLog for NoProgress {
    async fn line(&self, _line: String) {}
}
