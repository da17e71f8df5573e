//! Rolling upgrades and reboots over the nodes of one cluster, one node at a time, control
//! planes first.
//!
//! [`plan_rolling`] turns a [`RollingTarget`] into a [`RollingPlan`] (or a validation error a
//! user understands); [`run_rolling`] runs it.
//!
//! # Per node
//! 1. Upgrade only: skip a node that already runs the target version with the target
//!    schematic (the one recorded on the server after its last upgrade).
//! 2. Read the node's name from the node (Talos's Nodename, recorded on the server; a mismatch
//!    with the machine config's hostname is logged): drain, uncordon and the waits use it.
//!    Control planes: check etcd through every control plane's Talos API; every other member
//!    must be healthy and a healthy majority must remain while this node is down
//!    ([`super::etcd::check_departure`]), else the run stops before the node is touched,
//!    naming the members that are not healthy. Then forfeit etcd leadership.
//! 3. Cordon and drain (PodDisruptionBudgets respected, bounded).
//! 4. Upgrade to the Image Factory installer of the server's schematic, or reboot.
//! 5. Wait until the node reports the target version, is running and ready in Talos and
//!    Ready in Kubernetes.
//! 6. Control planes: wait until the node's etcd lists it as a voting member again (at most
//!    [`super::LifecycleTiming::etcd_rejoin`]); a node that does not rejoin stops the run.
//! 7. Record the installed schematic (upgrade), uncordon — unless the node was already
//!    cordoned before our drain (read before the cordon and saved in the checkpoint): a node
//!    someone else cordoned stays cordoned.
//!
//! # Guarantees
//! - Never two nodes at once. The first failure stops the run: the nodes after it are not
//!   touched, and the report says per node done, skipped, failed (why) or untouched.
//! - Each step that changes a node is recorded in the [`Checkpoint`] before the next one: a
//!   run started again continues; a node that was asked to upgrade is waited for, not asked
//!   again; a node marked done is skipped.
//! - Cancelled between steps, a run uncordons the node it drained unless that node was
//!   already asked to upgrade or reboot.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::etcd::Departure;
use super::quorum::{self, read_etcd};
use super::wait::{self, BackAt};
use super::{
    ClusterAccess, ClusterApisError, LifecycleContext, NodeRef, NodeRefError, NodeRole,
    cluster_access, cluster_nodes, resolve_node_name,
};
use crate::bootstrap::effective_schematic;
use crate::error_chain;
use crate::ids::{ClusterId, ServerId};
use crate::image_factory::{
    InvalidTalosRelease, TALOS_CONFIG_ARG_PREFIX, TalosRelease, installer_image,
};
use crate::kubernetes::{DrainError, PodPolicy, drain_node};
use crate::store::{Store, StoreError};
use crate::talos::{SecretsBundle, SecretsError};
use crate::talos_api::{RebootMode, UpgradeRequest};

/// Which servers a rolling run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollingTarget {
    /// One server.
    Server(ServerId),
    /// Every configured server of a cluster.
    Cluster(ClusterId),
    /// A selection, all in one cluster.
    Servers(Vec<ServerId>),
}

/// What a rolling run does to each node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum RollingAction {
    /// Install Talos `talos_version` (`v1.11.3`) from the Image Factory installer of each
    /// server's schematic.
    Upgrade {
        /// The target version, `vX.Y.Z`.
        talos_version: String,
    },
    /// Reboot.
    Reboot,
}

impl fmt::Display for RollingAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollingAction::Upgrade { talos_version } => {
                write!(f, "upgrade to Talos {talos_version}")
            }
            RollingAction::Reboot => f.write_str("reboot"),
        }
    }
}

/// One node of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    /// The node.
    pub node: NodeRef,
    /// The Image Factory schematic id it is upgraded with (upgrades only).
    pub schematic: Option<String>,
    /// The installer image (upgrades only).
    pub installer_image: Option<String>,
}

/// What [`run_rolling`] runs: the nodes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingPlan {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Its name.
    pub cluster_name: String,
    /// Upgrade or reboot.
    pub action: RollingAction,
    /// Control planes first, then workers, each by hostname.
    pub nodes: Vec<PlannedNode>,
    /// What the user should know before it runs (an upgrade whose schematic has no
    /// `talos.config=` argument); shown after the nodes.
    pub warnings: Vec<String>,
    /// Which pods each drain may evict beyond `kubectl drain`'s defaults (none unless
    /// [`RollingPlan::with_pod_policy`]).
    pub pod_policy: PodPolicy,
}

impl RollingPlan {
    /// The plan with drains evicting what `policy` allows.
    pub fn with_pod_policy(mut self, policy: PodPolicy) -> RollingPlan {
        self.pod_policy = policy;
        self
    }
}

impl fmt::Display for RollingPlan {
    /// The plan as a user reads it, one node a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} of cluster {}, one node at a time:",
            self.action, self.cluster_name
        )?;
        for (i, planned) in self.nodes.iter().enumerate() {
            write!(
                f,
                "{}. {} ({}, {})",
                i + 1,
                planned.node.hostname,
                planned.node.role.as_str(),
                planned.node.address.ip()
            )?;
            if let Some(image) = &planned.installer_image {
                write!(f, " with {image}")?;
            }
            writeln!(f)?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// Why no plan can be made.
#[derive(Debug, thiserror::Error)]
pub enum RollingPlanError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No server was given.
    #[error("no servers selected")]
    NoServers,
    /// The cluster has no configured server.
    #[error("cluster {cluster} has no configured servers")]
    EmptyCluster {
        /// The cluster's name.
        cluster: String,
    },
    /// A server is not a reachable node.
    #[error(transparent)]
    Node(#[from] NodeRefError),
    /// The servers are in different clusters.
    #[error("the servers are in different clusters ({}): upgrade or reboot one cluster at a time", .clusters.join(", "))]
    MixedClusters {
        /// The clusters' names.
        clusters: Vec<String>,
    },
    /// The cluster's secrets bundle is unusable, so no credentials can be issued.
    #[error("the secrets bundle of cluster {cluster} is unusable")]
    Secrets {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// The target version is not `vX.Y.Z`.
    #[error(transparent)]
    InvalidVersion(#[from] InvalidTalosRelease),
    /// Servers without an Image Factory schematic (their own or the default) are not
    /// upgraded: a stock installer's kernel command line has no `talos.config=`, so the node
    /// would no longer fetch its config after a reset (docs/lifecycle.md).
    #[error(
        "no Image Factory schematic for {}: choose one for the server or set a default schematic (registered with the factory); a stock installer would drop the node's talos.config= kernel argument",
        .servers.join(", ")
    )]
    NoSchematic {
        /// The servers' names.
        servers: Vec<String>,
    },
}

/// Control planes first, then workers; each group by hostname. Pure.
pub fn order_nodes(mut nodes: Vec<PlannedNode>) -> Vec<PlannedNode> {
    nodes.sort_by(|a, b| {
        let rank = |node: &PlannedNode| match node.node.role {
            NodeRole::ControlPlane => 0,
            NodeRole::Worker => 1,
        };
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.node.hostname.cmp(&b.node.hostname))
    });
    nodes
}

/// The plan for `target`: checks every server is a configured node with an address in one
/// cluster whose secrets bundle is usable, and (upgrades) resolves each server's schematic
/// (its own, else the default) to its installer image on `image_factory_url`.
pub async fn plan_rolling(
    store: &Store,
    target: &RollingTarget,
    action: &RollingAction,
    image_factory_url: &str,
) -> Result<RollingPlan, RollingPlanError> {
    if let RollingAction::Upgrade { talos_version } = action {
        talos_version.parse::<TalosRelease>()?;
    }
    let machine_configs = store.list_machine_configs().await?;
    let all_servers = store.list_servers().await?;
    let servers: Vec<_> = match target {
        RollingTarget::Server(id) => vec![store.get_server(*id).await?],
        RollingTarget::Servers(ids) => {
            let mut servers = Vec::new();
            for id in ids {
                servers.push(store.get_server(*id).await?);
            }
            servers
        }
        RollingTarget::Cluster(cluster_id) => {
            let cluster = store.get_cluster(*cluster_id).await?;
            let servers: Vec<_> = all_servers
                .into_iter()
                .filter(|server| {
                    server.cluster_id == Some(*cluster_id)
                        && machine_configs
                            .iter()
                            .any(|config| config.server_id == server.id)
                })
                .collect();
            if servers.is_empty() {
                return Err(RollingPlanError::EmptyCluster {
                    cluster: cluster.name,
                });
            }
            servers
        }
    };
    if servers.is_empty() {
        return Err(RollingPlanError::NoServers);
    }
    let mut cluster_ids: Vec<ClusterId> = servers.iter().filter_map(|s| s.cluster_id).collect();
    cluster_ids.sort();
    cluster_ids.dedup();
    let mut nodes = Vec::new();
    for server in &servers {
        let config = machine_configs
            .iter()
            .find(|config| config.server_id == server.id);
        nodes.push((server, NodeRef::new(server, config, 0)?));
    }
    if cluster_ids.len() > 1 {
        let mut clusters = Vec::new();
        for id in cluster_ids {
            clusters.push(store.get_cluster(id).await?.name);
        }
        return Err(RollingPlanError::MixedClusters { clusters });
    }
    let cluster_id = cluster_ids[0];
    let cluster = store.get_cluster(cluster_id).await?;
    let secrets = store.cluster_secrets(cluster_id).await?;
    SecretsBundle::parse(secrets.expose()).map_err(|source| RollingPlanError::Secrets {
        cluster: cluster.name.clone(),
        source,
    })?;

    let settings = store.settings().await?;
    let mut planned = Vec::new();
    let mut without_schematic = Vec::new();
    // Schematic name → the servers upgraded with it although it has no `talos.config=`.
    let mut without_talos_config: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (server, node) in nodes {
        let (schematic, installer) = match action {
            RollingAction::Reboot => (None, None),
            RollingAction::Upgrade { talos_version } => {
                let factory_id = match effective_schematic(None, server, &settings) {
                    Some(id) => {
                        let schematic = store.get_schematic(id).await?.fields;
                        if schematic.factory_id.is_some()
                            && !schematic.body.contains(TALOS_CONFIG_ARG_PREFIX)
                        {
                            without_talos_config
                                .entry(schematic.name)
                                .or_default()
                                .push(server.inventory.name.clone());
                        }
                        schematic.factory_id
                    }
                    None => None,
                };
                match factory_id {
                    Some(factory_id) => {
                        let image =
                            installer_image(image_factory_url, Some(&factory_id), talos_version);
                        (Some(factory_id), Some(image))
                    }
                    None => {
                        without_schematic.push(server.inventory.name.clone());
                        (None, None)
                    }
                }
            }
        };
        planned.push(PlannedNode {
            node,
            schematic,
            installer_image: installer,
        });
    }
    if !without_schematic.is_empty() {
        return Err(RollingPlanError::NoSchematic {
            servers: without_schematic,
        });
    }
    let warnings = without_talos_config
        .into_iter()
        .map(|(schematic, servers)| {
            format!(
                "schematic {schematic} has no talos.config= kernel argument: once upgraded with its installer, {} will not fetch a config after a reset; save the schematic through talos-manager, which adds it",
                servers.join(", ")
            )
        })
        .collect();
    Ok(RollingPlan {
        cluster_id,
        cluster_name: cluster.name,
        action: action.clone(),
        nodes: order_nodes(planned),
        warnings,
        pod_policy: PodPolicy::default(),
    })
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Upgraded or rebooted, back and uncordoned.
    Done,
    /// Left alone, for this reason (already at the target; done before a restart).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The step that failed and why; the run stopped here.
    Failed {
        /// What went wrong, and the state the node is left in.
        reason: String,
    },
    /// The run was cancelled while at this node.
    Cancelled {
        /// The state the node is left in.
        reason: String,
    },
    /// Not touched: an earlier node failed or the run was cancelled.
    Untouched,
}

/// One node's line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The server.
    pub server_id: ServerId,
    /// The server's name.
    pub server_name: String,
    /// The node's name: the one it reported when it was read, else its machine config's
    /// hostname.
    pub hostname: String,
    /// Control plane or worker.
    pub role: NodeRole,
    /// How it ended.
    pub outcome: NodeOutcome,
}

/// What [`run_rolling`] did, per node in plan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingReport {
    /// Per node.
    pub nodes: Vec<NodeReport>,
}

impl RollingReport {
    /// Whether every node is done or skipped.
    pub fn succeeded(&self) -> bool {
        self.nodes.iter().all(|node| {
            matches!(
                node.outcome,
                NodeOutcome::Done | NodeOutcome::Skipped { .. }
            )
        })
    }

    /// The node that failed, if one did.
    pub fn failure(&self) -> Option<&NodeReport> {
        self.nodes
            .iter()
            .find(|node| matches!(node.outcome, NodeOutcome::Failed { .. }))
    }

    /// One line: `3 done, 1 skipped, 1 failed (worker-2: …)`.
    pub fn summary(&self) -> String {
        let count =
            |f: fn(&NodeOutcome) -> bool| self.nodes.iter().filter(|node| f(&node.outcome)).count();
        let mut parts = vec![
            format!("{} done", count(|o| matches!(o, NodeOutcome::Done))),
            format!(
                "{} skipped",
                count(|o| matches!(o, NodeOutcome::Skipped { .. }))
            ),
        ];
        for node in &self.nodes {
            match &node.outcome {
                NodeOutcome::Failed { reason } => {
                    parts.push(format!("failed: {}: {reason}", node.hostname))
                }
                NodeOutcome::Cancelled { reason } => {
                    parts.push(format!("cancelled at {}: {reason}", node.hostname))
                }
                _ => {}
            }
        }
        let untouched = count(|o| matches!(o, NodeOutcome::Untouched));
        if untouched > 0 {
            parts.push(format!("{untouched} untouched"));
        }
        parts.join(", ")
    }
}

/// Why a run could not run at all (node failures are in the [`RollingReport`]).
#[derive(Debug, thiserror::Error)]
pub enum RollingError {
    /// The cluster's APIs could not be set up.
    #[error(transparent)]
    Access(#[from] ClusterApisError),
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How far a node has come, as the checkpoint records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Cordoned and drained.
    Drained,
    /// Asked to upgrade or reboot.
    Requested,
    /// Back and uncordoned.
    Done,
    /// Left alone.
    Skipped,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Drained => "drained",
            Phase::Requested => "requested",
            Phase::Done => "done",
            Phase::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Drained,
            Phase::Requested,
            Phase::Done,
            Phase::Skipped,
        ]
        .into_iter()
        .find(|phase| phase.as_str() == text)
    }
}

/// The checkpoint's content: the action and each node's phase by server id.
struct Progress {
    action: RollingAction,
    phases: BTreeMap<ServerId, Phase>,
    /// Per node, whether it was already cordoned (by someone else) before our drain: such a
    /// node stays cordoned afterwards. Saved before the cordon, so a restart never mistakes
    /// our own cordon for someone else's.
    cordoned_before: BTreeMap<ServerId, bool>,
}

impl Progress {
    fn to_json(&self) -> Value {
        let phases: serde_json::Map<String, Value> = self
            .phases
            .iter()
            .map(|(id, phase)| (id.0.to_string(), json!(phase.as_str())))
            .collect();
        let cordoned_before: serde_json::Map<String, Value> = self
            .cordoned_before
            .iter()
            .map(|(id, cordoned)| (id.0.to_string(), json!(cordoned)))
            .collect();
        json!({ "rolling": self.action, "phases": phases, "cordoned_before": cordoned_before })
    }

    /// The phases saved for `action`; `None` when the state is another run's or unreadable.
    fn from_json(value: &Value, action: &RollingAction) -> Option<Progress> {
        let saved: RollingAction = serde_json::from_value(value.get("rolling")?.clone()).ok()?;
        if &saved != action {
            return None;
        }
        let phases = value
            .get("phases")?
            .as_object()?
            .iter()
            .filter_map(|(id, phase)| {
                Some((ServerId(id.parse().ok()?), Phase::parse(phase.as_str()?)?))
            })
            .collect();
        let cordoned_before = value
            .get("cordoned_before")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(id, cordoned)| Some((ServerId(id.parse().ok()?), cordoned.as_bool()?)))
            .collect();
        Some(Progress {
            action: saved,
            phases,
            cordoned_before,
        })
    }
}

/// Runs `plan`; see the module documentation. Progress is saved to `checkpoint` after every
/// step and read from it first, so calling this again with the same checkpoint resumes.
pub async fn run_rolling(
    ctx: &LifecycleContext<'_>,
    plan: &RollingPlan,
    checkpoint: &dyn Checkpoint,
) -> Result<RollingReport, RollingError> {
    let access = cluster_access(ctx, plan.cluster_id).await?;
    let mut progress = match checkpoint.load().await? {
        Some(saved) => match Progress::from_json(&saved, &plan.action) {
            Some(progress) => {
                ctx.line(format!(
                    "resuming: {} of {} nodes already handled",
                    progress
                        .phases
                        .values()
                        .filter(|phase| matches!(phase, Phase::Done | Phase::Skipped))
                        .count(),
                    plan.nodes.len()
                ))
                .await;
                progress
            }
            None => Progress {
                action: plan.action.clone(),
                phases: BTreeMap::new(),
                cordoned_before: BTreeMap::new(),
            },
        },
        None => Progress {
            action: plan.action.clone(),
            phases: BTreeMap::new(),
            cordoned_before: BTreeMap::new(),
        },
    };
    ctx.line(format!(
        "{} of cluster {}: {} nodes, one at a time, control planes first",
        plan.action,
        plan.cluster_name,
        plan.nodes.len()
    ))
    .await;

    let mut reports: Vec<NodeReport> = plan
        .nodes
        .iter()
        .map(|planned| NodeReport {
            server_id: planned.node.server_id,
            server_name: planned.node.server_name.clone(),
            hostname: planned.node.hostname.clone(),
            role: planned.node.role,
            outcome: NodeOutcome::Untouched,
        })
        .collect();
    for (index, planned) in plan.nodes.iter().enumerate() {
        let mut planned = planned.clone();
        planned.node.address.set_port(ctx.talos_port);
        if (ctx.is_cancelled)() {
            ctx.line("cancelled; the remaining nodes are untouched")
                .await;
            break;
        }
        let outcome = run_node(ctx, plan, &access, &planned, &mut progress, checkpoint).await?;
        let stop = !matches!(outcome, NodeOutcome::Done | NodeOutcome::Skipped { .. });
        reports[index].outcome = outcome;
        // The name the node reported, when it was read.
        if let Some(name) = ctx
            .store
            .get_server(planned.node.server_id)
            .await?
            .node_name
        {
            reports[index].hostname = name;
        }
        if stop {
            let untouched = plan.nodes.len() - index - 1;
            if untouched > 0 {
                ctx.line(format!(
                    "stopping: the {untouched} remaining nodes are untouched"
                ))
                .await;
            }
            break;
        }
    }
    let report = RollingReport { nodes: reports };
    ctx.line(report.summary()).await;
    Ok(report)
}

async fn save(
    checkpoint: &dyn Checkpoint,
    progress: &mut Progress,
    server: ServerId,
    phase: Phase,
) -> Result<(), CheckpointError> {
    progress.phases.insert(server, phase);
    checkpoint.save(&progress.to_json()).await
}

async fn run_node(
    ctx: &LifecycleContext<'_>,
    plan: &RollingPlan,
    access: &ClusterAccess,
    planned: &PlannedNode,
    progress: &mut Progress,
    checkpoint: &dyn Checkpoint,
) -> Result<NodeOutcome, RollingError> {
    let mut node = planned.node.clone();
    let api = &*access.talos;
    let kubernetes = &access.kubernetes;
    let phase = progress.phases.get(&node.server_id).copied();
    match phase {
        Some(Phase::Done) => {
            ctx.line(format!("{}: done before the restart", node.node_name))
                .await;
            return Ok(NodeOutcome::Skipped {
                reason: "done before the restart".to_owned(),
            });
        }
        Some(Phase::Skipped) => {
            return Ok(NodeOutcome::Skipped {
                reason: "skipped before the restart".to_owned(),
            });
        }
        _ => {}
    }
    let failed = |reason: String| NodeOutcome::Failed { reason };
    if phase.is_none() || phase == Some(Phase::Drained) {
        // Its names, from the node itself, before anything acts on them.
        if let Err(error) = resolve_node_name(ctx, api, &mut node).await {
            let reason = format!(
                "the Talos API does not answer, nothing was changed: {}",
                error_chain(&error)
            );
            ctx.line(format!("{}: failed: {reason}", node.node_name))
                .await;
            return Ok(failed(reason));
        }
    }
    let node = &node;
    let name = &node.node_name;
    ctx.line(format!("{name} ({}): starting", node.role.as_str()))
        .await;
    // Uncordon only what we cordoned: whether someone else had cordoned it is read once,
    // before our cordon, and saved (a checkpoint from before this was recorded reads false).
    let mut keep_cordoned = progress
        .cordoned_before
        .get(&node.server_id)
        .copied()
        .unwrap_or(false);

    if phase.is_none() {
        let running = match api.version(node.address).await {
            Ok(running) => running,
            Err(error) => {
                let reason = format!(
                    "the Talos API does not answer, nothing was changed: {}",
                    error_chain(&error)
                );
                ctx.line(format!("{name}: failed: {reason}")).await;
                return Ok(failed(reason));
            }
        };
        if let RollingAction::Upgrade { talos_version } = &plan.action
            && &running.tag == talos_version
        {
            let server = ctx.store.get_server(node.server_id).await?;
            if server.installed_schematic.is_some()
                && server.installed_schematic == planned.schematic
            {
                let reason = format!("already runs Talos {talos_version} with its schematic");
                ctx.line(format!("{name}: {reason}; skipped")).await;
                save(checkpoint, progress, node.server_id, Phase::Skipped).await?;
                return Ok(NodeOutcome::Skipped { reason });
            }
            ctx.line(format!(
                "{name}: runs Talos {talos_version}, but not with the schematic {}: upgrading",
                planned.schematic.as_deref().unwrap_or("(none)")
            ))
            .await;
        }
    }

    // Control planes: etcd must stay healthy without this node, checked before it is touched
    // (again after a restart that stopped with the node drained).
    if node.role == NodeRole::ControlPlane && (phase.is_none() || phase == Some(Phase::Drained)) {
        let control_planes: Vec<NodeRef> =
            cluster_nodes(ctx.store, plan.cluster_id, ctx.talos_port)
                .await?
                .into_iter()
                .filter(|other| other.role == NodeRole::ControlPlane)
                .collect();
        let refusal = match read_etcd(ctx, api, &control_planes, node).await {
            Some(view) => view
                .check(node, Departure::Restart)
                .err()
                .map(|r| r.to_string()),
            None => Some(
                "no control plane's etcd answers, so etcd's health cannot be checked".to_owned(),
            ),
        };
        if let Some(refusal) = refusal {
            let left = if phase == Some(Phase::Drained) {
                format!("; {}", uncordon(ctx, access, name, keep_cordoned).await)
            } else {
                String::new()
            };
            let reason =
                format!("refused to take it down: {refusal}; nothing was sent to the node{left}");
            ctx.line(format!("{name}: {reason}")).await;
            return Ok(failed(reason));
        }
        ctx.line(format!(
            "{name}: etcd stays healthy while it is down; every other member is healthy"
        ))
        .await;
    }

    if phase.is_none() {
        if node.role == NodeRole::ControlPlane {
            match api.etcd_forfeit_leadership(node.address).await {
                Ok(Some(leader)) => {
                    ctx.line(format!(
                        "{name}: forfeited etcd leadership (new leader {leader})"
                    ))
                    .await
                }
                Ok(None) => {
                    ctx.line(format!("{name}: not the etcd leader, nothing to forfeit"))
                        .await
                }
                Err(error) => {
                    let reason = format!(
                        "failed to forfeit etcd leadership, nothing was changed: {}",
                        error_chain(&error)
                    );
                    ctx.line(format!("{name}: failed: {reason}")).await;
                    return Ok(failed(reason));
                }
            }
        }
        if let std::collections::btree_map::Entry::Vacant(entry) =
            progress.cordoned_before.entry(node.server_id)
        {
            let cordoned = match kubernetes.get_node(name).await {
                Ok(found) => found.spec.unschedulable,
                Err(error) => {
                    let reason = format!(
                        "failed to read the node from Kubernetes, nothing was changed: {}",
                        error_chain(&error)
                    );
                    ctx.line(format!("{name}: failed: {reason}")).await;
                    return Ok(failed(reason));
                }
            };
            entry.insert(cordoned);
            checkpoint.save(&progress.to_json()).await?;
            keep_cordoned = cordoned;
            if cordoned {
                ctx.line(format!(
                    "{name}: already cordoned before the drain; it stays cordoned afterwards"
                ))
                .await;
            }
        }
        ctx.line(format!("{name}: cordoning and draining")).await;
        match drain_node(
            kubernetes,
            name,
            &ctx.timing.drain,
            plan.pod_policy,
            ctx.log,
            ctx.is_cancelled,
        )
        .await
        {
            Ok(_) => {}
            Err(error) => {
                let left = uncordon(ctx, access, name, keep_cordoned).await;
                let reason = format!("{}; {left}", error_chain(&error));
                ctx.line(format!("{name}: {reason}")).await;
                return Ok(match error {
                    DrainError::Cancelled { .. } => NodeOutcome::Cancelled { reason },
                    _ => failed(reason),
                });
            }
        }
        save(checkpoint, progress, node.server_id, Phase::Drained).await?;
    }

    let resumed_request = phase == Some(Phase::Requested);
    if !resumed_request {
        if (ctx.is_cancelled)() {
            let left = uncordon(ctx, access, name, keep_cordoned).await;
            let reason = format!("cancelled before the {}; {left}", action_noun(&plan.action));
            ctx.line(format!("{name}: {reason}")).await;
            return Ok(NodeOutcome::Cancelled { reason });
        }
        let sent = match (&plan.action, &planned.installer_image) {
            (RollingAction::Upgrade { .. }, Some(image)) => {
                ctx.line(format!("{name}: upgrading with {image}")).await;
                api.upgrade(
                    node.address,
                    &UpgradeRequest {
                        image: image.clone(),
                        stage: false,
                        force: false,
                        reboot_mode: RebootMode::Default,
                    },
                )
                .await
            }
            (RollingAction::Upgrade { .. }, None) => {
                let reason = "no installer image planned".to_owned();
                return Ok(failed(reason));
            }
            (RollingAction::Reboot, _) => {
                ctx.line(format!("{name}: rebooting")).await;
                api.reboot(node.address, RebootMode::Default).await
            }
        };
        if let Err(error) = sent {
            let left = uncordon(ctx, access, name, keep_cordoned).await;
            let reason = format!(
                "the {} was refused: {}; {left}",
                action_noun(&plan.action),
                error_chain(&error)
            );
            ctx.line(format!("{name}: failed: {reason}")).await;
            return Ok(failed(reason));
        }
        save(checkpoint, progress, node.server_id, Phase::Requested).await?;
    } else {
        ctx.line(format!(
            "{name}: was asked to {} before the restart; waiting for it",
            action_noun(&plan.action)
        ))
        .await;
    }

    let version = match &plan.action {
        RollingAction::Upgrade { talos_version } => Some(talos_version.as_str()),
        RollingAction::Reboot => None,
    };
    ctx.line(format!("{name}: waiting until it is back and ready"))
        .await;
    let back = BackAt {
        version,
        see_down_first: matches!(plan.action, RollingAction::Reboot) && !resumed_request,
    };
    if let Err(error) = wait::until_back(ctx, api, kubernetes, node, back).await {
        let reason = format!("{error}; it is left cordoned");
        ctx.line(format!("{name}: failed: {reason}")).await;
        return Ok(match error {
            wait::WaitError::Cancelled { .. } => NodeOutcome::Cancelled { reason },
            _ => failed(reason),
        });
    }
    match version {
        Some(version) => {
            ctx.line(format!("{name}: runs Talos {version}, ready"))
                .await;
            ctx.store
                .record_installed_schematic(node.server_id, planned.schematic.as_deref())
                .await?;
        }
        None => ctx.line(format!("{name}: back and ready")).await,
    }
    if node.role == NodeRole::ControlPlane {
        if let Err(error) = quorum::until_rejoined(ctx, api, node).await {
            let reason = format!("{error}; it is left cordoned");
            ctx.line(format!("{name}: failed: {reason}")).await;
            return Ok(match error {
                wait::WaitError::Cancelled { .. } => NodeOutcome::Cancelled { reason },
                _ => failed(reason),
            });
        }
        ctx.line(format!("{name}: rejoined etcd as a healthy member"))
            .await;
    }
    if keep_cordoned {
        ctx.line(format!(
            "{name}: left cordoned, as it was before the drain; done"
        ))
        .await;
    } else {
        if let Err(error) = kubernetes.set_unschedulable(name, false).await {
            let reason = format!(
                "back and ready, but uncordoning failed: {}",
                error_chain(&error)
            );
            ctx.line(format!("{name}: failed: {reason}")).await;
            return Ok(failed(reason));
        }
        ctx.line(format!("{name}: uncordoned, done")).await;
    }
    save(checkpoint, progress, node.server_id, Phase::Done).await?;
    Ok(NodeOutcome::Done)
}

/// Uncordons after a step failed before the node was touched; says what state it is in.
async fn uncordon(
    ctx: &LifecycleContext<'_>,
    access: &ClusterAccess,
    name: &str,
    keep_cordoned: bool,
) -> String {
    if keep_cordoned {
        ctx.line(format!("{name}: left cordoned, as it was before the drain"))
            .await;
        return "it stays cordoned, as it was before the drain".to_owned();
    }
    match access.kubernetes.set_unschedulable(name, false).await {
        Ok(_) => {
            ctx.line(format!("{name}: uncordoned")).await;
            "the node was uncordoned".to_owned()
        }
        Err(error) => format!(
            "it is still cordoned (uncordoning failed: {})",
            error_chain(&error)
        ),
    }
}

fn action_noun(action: &RollingAction) -> &'static str {
    match action {
        RollingAction::Upgrade { .. } => "upgrade",
        RollingAction::Reboot => "reboot",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn planned(hostname: &str) -> PlannedNode {
        PlannedNode {
            node: NodeRef {
                server_id: ServerId(1),
                server_name: hostname.to_owned(),
                hostname: hostname.to_owned(),
                node_name: hostname.to_owned(),
                address: SocketAddr::from(([192, 0, 2, 1], 50000)),
                role: NodeRole::of_server(hostname),
            },
            schematic: None,
            installer_image: None,
        }
    }

    #[test]
    fn control_planes_come_first_then_workers_by_name() {
        let ordered = order_nodes(
            [
                "worker-2",
                "control-plane-3",
                "worker-1",
                "control-plane-1",
                "control-plane-2",
            ]
            .into_iter()
            .map(planned)
            .collect(),
        );
        let names: Vec<&str> = ordered.iter().map(|p| p.node.hostname.as_str()).collect();
        assert_eq!(
            names,
            [
                "control-plane-1",
                "control-plane-2",
                "control-plane-3",
                "worker-1",
                "worker-2"
            ]
        );
    }

    #[test]
    fn progress_round_trips_and_ignores_another_runs_state() {
        let action = RollingAction::Upgrade {
            talos_version: "v1.11.3".into(),
        };
        let mut progress = Progress {
            action: action.clone(),
            phases: BTreeMap::new(),
            cordoned_before: BTreeMap::new(),
        };
        progress.phases.insert(ServerId(4), Phase::Requested);
        progress.phases.insert(ServerId(2), Phase::Done);
        progress.cordoned_before.insert(ServerId(4), true);
        progress.cordoned_before.insert(ServerId(2), false);
        let json = progress.to_json();
        assert_eq!(
            json,
            json!({"rolling": {"action": "upgrade", "talos_version": "v1.11.3"},
                   "phases": {"2": "done", "4": "requested"},
                   "cordoned_before": {"2": false, "4": true}})
        );
        let back = Progress::from_json(&json, &action).unwrap();
        assert_eq!(back.phases, progress.phases);
        assert_eq!(back.cordoned_before, progress.cordoned_before);
        // A checkpoint saved before `cordoned_before` existed still reads.
        let old = json!({"rolling": {"action": "upgrade", "talos_version": "v1.11.3"},
                         "phases": {"2": "done"}});
        assert!(
            Progress::from_json(&old, &action)
                .unwrap()
                .cordoned_before
                .is_empty()
        );
        assert!(Progress::from_json(&json, &RollingAction::Reboot).is_none());
    }

    #[test]
    fn summary_names_the_failure() {
        let node = |hostname: &str, outcome| NodeReport {
            server_id: ServerId(1),
            server_name: hostname.into(),
            hostname: hostname.into(),
            role: NodeRole::Worker,
            outcome,
        };
        let report = RollingReport {
            nodes: vec![
                node("worker-1", NodeOutcome::Done),
                node(
                    "worker-2",
                    NodeOutcome::Failed {
                        reason: "boom".into(),
                    },
                ),
                node("worker-3", NodeOutcome::Untouched),
            ],
        };
        assert!(!report.succeeded());
        assert_eq!(
            report.summary(),
            "1 done, 0 skipped, failed: worker-2: boom, 1 untouched"
        );
    }
}
