//! Reset a configured node: [`reset_server`] with one of three [`ResetProfile`]s.
//!
//! # Flow
//! 1. Read the server, its machine config and cluster; issue credentials for the cluster.
//! 2. Read the node's name from the node (recorded on the server; a mismatch with the machine
//!    config's hostname is logged). Control planes: read the etcd members and their health
//!    from every control plane (another one first) and check the quorum rule
//!    ([`super::etcd::check_departure`] for a removal: every other member healthy, a healthy
//!    majority left); refuse unless `force`.
//! 3. Read the Talos version the node runs and `Reset` it (graceful, so Talos drains the node
//!    and leaves etcd itself, unless the node is the last etcd member or a refusal was forced),
//!    wiping what that version defines ([`reset_request`]).
//! 4. Record the reset in the store at once, as the original app did: the machine config is
//!    unassigned and the status fields cleared, so the node finds no config when it asks.
//! 5. Wait until the node goes down; remove its etcd member if still listed (from a healthy
//!    control plane); delete its Kubernetes Node.
//! 6. Per profile: wait for maintenance mode or the node's first request to `/config` (a node
//!    with `talos.config=` asks there before Talos would enter maintenance mode); nothing
//!    (powered off, disk empty); or enter the provider's rescue system.
//!
//! # Guarantees
//! Nothing is sent to the node before every check passed. A failure after the reset was
//! accepted says what is left to do.

use std::sync::Arc;

use super::etcd::{Departure, MemberRemoval, QuorumRefusal};
use super::quorum::read_etcd;
use super::wait::{self, WaitError};
use super::{
    ClusterApisError, LifecycleContext, NodeRef, NodeRefError, NodeRole, cluster_access,
    cluster_nodes, resolve_node_name,
};
use crate::error_chain;
use crate::ids::ServerId;
use crate::image_factory::TalosRelease;
use crate::rescue::{RescueError, enter_rescue};
use crate::store::{Server, StoreError};
use crate::talos_api::{MachineStage, ResetRequest, TalosApi, TalosApiError, WipeMode};

/// What a reset wipes and where the server ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetProfile {
    /// Wipe STATE and EPHEMERAL (on Talos 1.14 and later also the ETCD, CRI, KUBELET and LOG
    /// volumes) and reboot (the original app's reset): Talos stays installed and comes back in
    /// maintenance mode, asking talos-manager for a config again.
    Maintenance,
    /// Wipe the whole system disk and power off: nothing bootable is left.
    Wipe,
    /// Wipe the whole system disk, then boot the provider's rescue system with our key: ready
    /// for a new bootstrap.
    WipeToRescue,
}

impl ResetProfile {
    /// `maintenance`, `wipe` or `wipe_to_rescue`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetProfile::Maintenance => "maintenance",
            ResetProfile::Wipe => "wipe",
            ResetProfile::WipeToRescue => "wipe_to_rescue",
        }
    }
}

/// What every Talos version wipes for a reset to maintenance mode: the machine config and
/// node identity (`STATE`) and the node's data under `/var` (`EPHEMERAL`).
const MAINTENANCE_VOLUMES: [&str; 2] = ["STATE", "EPHEMERAL"];

/// The system volumes Talos 1.14 can move out of `EPHEMERAL` onto partitions of their own
/// (`VolumeConfig` with `provisioning`; Talos's `PromotableSystemVolumeNames`): etcd's data,
/// containerd's, the kubelet's and the logs. Wiping `EPHEMERAL` no longer wipes them then, so a
/// reset names them; Talos accepts them as directories too, as long as `EPHEMERAL`, where they
/// reside, is wiped in the same request. Talos 1.13 refuses them (`volume "ETCD" is not
/// located`).
const DEDICATED_SYSTEM_VOLUMES: [&str; 4] = ["ETCD", "CRI", "KUBELET", "LOG"];

/// The Talos `Reset` a profile sends to a node running `talos_version` (`None` when it could
/// not be read: only what every version has is wiped).
///
/// ```
/// use talos_manager_core::lifecycle::{ResetProfile, reset_request};
///
/// let v1_13 = "v1.13.9".parse().unwrap();
/// let v1_14 = "v1.14.1".parse().unwrap();
/// let wiped = |version| reset_request(ResetProfile::Maintenance, true, version).wipe_partitions;
/// assert_eq!(wiped(Some(&v1_13)), ["STATE", "EPHEMERAL"]);
/// assert_eq!(wiped(Some(&v1_14)), ["STATE", "EPHEMERAL", "ETCD", "CRI", "KUBELET", "LOG"]);
/// ```
pub fn reset_request(
    profile: ResetProfile,
    graceful: bool,
    talos_version: Option<&TalosRelease>,
) -> ResetRequest {
    match profile {
        ResetProfile::Maintenance => {
            let mut volumes = MAINTENANCE_VOLUMES.to_vec();
            if talos_version.is_some_and(TalosRelease::has_dedicated_system_volumes) {
                volumes.extend(DEDICATED_SYSTEM_VOLUMES);
            }
            ResetRequest {
                graceful,
                reboot: true,
                wipe_partitions: volumes.into_iter().map(str::to_owned).collect(),
                mode: WipeMode::All,
                user_disks: Vec::new(),
            }
        }
        // An empty partition list wipes the whole system disk, whatever volumes it holds; the
        // node powers off (a reboot into an empty disk would loop), the provider powers it on
        // for rescue.
        ResetProfile::Wipe | ResetProfile::WipeToRescue => ResetRequest {
            graceful,
            reboot: false,
            wipe_partitions: Vec::new(),
            mode: WipeMode::SystemDisk,
            user_disks: Vec::new(),
        },
    }
}

/// `A`, `A and B`, `A, B and C`.
fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why a reset was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is not a node we can reach.
    #[error(transparent)]
    Node(#[from] NodeRefError),
    /// The cluster's APIs could not be set up.
    #[error(transparent)]
    Access(#[from] ClusterApisError),
    /// Resetting would break etcd; `force` overrides.
    #[error("refused to reset {server}")]
    Refused {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        reason: QuorumRefusal,
    },
    /// No control plane answered, so etcd's state is unknown; `force` overrides.
    #[error(
        "refused to reset {server}: no control plane of cluster {cluster} answers, so etcd's membership cannot be checked (force to reset anyway)"
    )]
    EtcdUnknown {
        /// The server's name.
        server: String,
        /// The cluster's name.
        cluster: String,
    },
    /// A call to a node failed.
    #[error("failed to {step} for {server}")]
    Talos {
        /// The server's name.
        server: String,
        /// What was being done.
        step: &'static str,
        /// Why.
        #[source]
        source: TalosApiError,
    },
    /// The node did not go down or come back as the profile expects.
    #[error("the reset of {server} was accepted, but")]
    Wait {
        /// The server's name.
        server: String,
        /// What was not seen.
        #[source]
        source: WaitError,
    },
    /// Entering rescue after the wipe failed.
    #[error("{server} was wiped, but entering rescue failed: enter rescue again from its page")]
    Rescue {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: RescueError,
    },
    /// The caller asked to stop before the reset was sent.
    #[error("the reset of {server} was cancelled before anything was sent to the node")]
    Cancelled {
        /// The server's name.
        server: String,
    },
}

/// What [`reset_server`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    /// The server as stored now (no machine config, status fields cleared; in rescue for
    /// [`ResetProfile::WipeToRescue`]).
    pub server: Server,
    /// The node's name.
    pub node: String,
    /// The profile.
    pub profile: ResetProfile,
    /// Whether the reset was graceful (drain and leave etcd done by Talos).
    pub graceful: bool,
    /// The refusal `force` overrode, if any.
    pub forced: Option<QuorumRefusal>,
    /// The etcd member id talos-manager removed (when it was still listed after the reset).
    pub removed_etcd_member: Option<u64>,
    /// Whether a Kubernetes Node was deleted.
    pub deleted_kubernetes_node: bool,
    /// What could not be cleaned up and why; the reset itself succeeded.
    pub warnings: Vec<String>,
}

/// Resets the Talos node of `server_id` with `profile`; see the module documentation.
///
/// Refuses ([`ResetError::Refused`], [`ResetError::EtcdUnknown`]) to reset the last etcd
/// member, or a control plane whose removal leaves the other members without a healthy
/// majority, unless `force`.
pub async fn reset_server(
    ctx: &LifecycleContext<'_>,
    server_id: ServerId,
    profile: ResetProfile,
    force: bool,
) -> Result<ResetOutcome, ResetError> {
    let server = ctx.store.get_server(server_id).await?;
    let machine_config = ctx.store.machine_config_for_server(server_id).await?;
    let mut node = NodeRef::new(&server, machine_config.as_ref(), ctx.talos_port)?;
    let name = node.server_name.clone();
    let cluster_id = server.cluster_id.ok_or_else(|| NodeRefError::NoCluster {
        server: name.clone(),
    })?;
    let access = cluster_access(ctx, cluster_id).await?;
    let api = access.talos.clone();
    ctx.line(format!(
        "resetting {name} ({}, node {} at {}) to {}",
        node.role.as_str(),
        node.hostname,
        node.address,
        profile_phrase(profile)
    ))
    .await;

    // Its names, from the node itself (the reset is sent to it, so it must answer anyway).
    if let Err(error) = resolve_node_name(ctx, &*api, &mut node).await {
        ctx.line(format!(
            "{name}: its node name could not be read ({}); using {}",
            error_chain(&error),
            node.node_name
        ))
        .await;
    }

    // Etcd: who may answer for it, and whether this node may leave.
    let mut forced = None;
    let mut graceful = true;
    let mut etcd_peer: Option<NodeRef> = None;
    if node.role == NodeRole::ControlPlane {
        let control_planes: Vec<NodeRef> = cluster_nodes(ctx.store, cluster_id, ctx.talos_port)
            .await?
            .into_iter()
            .filter(|other| other.role == NodeRole::ControlPlane)
            .collect();
        let view = read_etcd(ctx, &*api, &control_planes, &node).await;
        let check = match &view {
            Some(view) => {
                etcd_peer = view.peer.clone();
                view.check(&node, Departure::Removal).map_err(Some)
            }
            None => Err(None),
        };
        match check {
            Ok(MemberRemoval { member }) => {
                if member.is_none() {
                    ctx.line(format!("{} is no etcd member", node.node_name))
                        .await;
                }
            }
            Err(refusal) if force => {
                graceful = false;
                let text = match &refusal {
                    Some(reason) => reason.to_string(),
                    None => "etcd's membership cannot be checked".to_owned(),
                };
                ctx.line(format!(
                    "forced: {text}; resetting without leaving etcd gracefully"
                ))
                .await;
                forced = refusal;
            }
            Err(Some(reason)) => {
                ctx.line(format!("refused: {reason}")).await;
                return Err(ResetError::Refused {
                    server: name,
                    reason,
                });
            }
            Err(None) => {
                return Err(ResetError::EtcdUnknown {
                    server: name,
                    cluster: access.cluster.name.clone(),
                });
            }
        }
    }

    if (ctx.is_cancelled)() {
        return Err(ResetError::Cancelled { server: name });
    }
    // What to wipe depends on the volumes the node's Talos version defines.
    let talos_version = match api.version(node.address).await {
        Ok(info) => match info.tag.parse::<TalosRelease>() {
            Ok(version) => Some(version),
            Err(error) => {
                ctx.line(format!(
                    "{name}: its Talos version {:?} is not vX.Y.Z ({error}); wiping only the volumes every version has",
                    info.tag
                ))
                .await;
                None
            }
        },
        Err(error) => {
            ctx.line(format!(
                "{name}: its Talos version could not be read ({}); wiping only the volumes every version has",
                error_chain(&error)
            ))
            .await;
            None
        }
    };
    let request = reset_request(profile, graceful, talos_version.as_ref());
    ctx.line(format!(
        "asking {}{} to reset ({}, wiping {}, then {})",
        node.node_name,
        talos_version
            .as_ref()
            .map(|version| format!(" (Talos {version})"))
            .unwrap_or_default(),
        if graceful {
            "graceful: Talos drains the node and leaves etcd first"
        } else {
            "not graceful"
        },
        if request.wipe_partitions.is_empty() {
            "the whole system disk".to_owned()
        } else {
            join_words(&request.wipe_partitions)
        },
        if request.reboot {
            "reboot"
        } else {
            "power off"
        }
    ))
    .await;
    api.reset(node.address, &request)
        .await
        .map_err(|source| ResetError::Talos {
            server: name.clone(),
            step: "send the reset",
            source,
        })?;
    let mut stored = ctx.store.record_reset(server_id).await?;
    ctx.line(format!(
        "reset accepted; {name}'s machine config is unassigned and its status cleared"
    ))
    .await;

    let waited = |source| ResetError::Wait {
        server: name.clone(),
        source,
    };
    ctx.line(format!("waiting for {} to go down", node.node_name))
        .await;
    wait::until_down(ctx, &*api, &node).await.map_err(waited)?;
    ctx.line(format!("{} is down", node.node_name)).await;

    let mut warnings = Vec::new();
    let mut removed_etcd_member = None;
    if node.role == NodeRole::ControlPlane {
        match &etcd_peer {
            Some(peer) => {
                removed_etcd_member =
                    remove_member(ctx, &*api, peer, &node)
                        .await
                        .map_err(|source| ResetError::Talos {
                            server: name.clone(),
                            step: "remove its etcd member",
                            source,
                        })?;
            }
            None => {
                let warning = format!(
                    "no other control plane answered: etcd member {} not removed",
                    node.node_name
                );
                ctx.line(warning.clone()).await;
                warnings.push(warning);
            }
        }
    }

    let deleted_kubernetes_node = match access.kubernetes.delete_node(&node.node_name).await {
        Ok(true) => {
            ctx.line(format!("Kubernetes node {} deleted", node.node_name))
                .await;
            true
        }
        Ok(false) => {
            ctx.line(format!(
                "Kubernetes node {} was already gone",
                node.node_name
            ))
            .await;
            false
        }
        Err(error) => {
            let warning = format!(
                "could not delete Kubernetes node {} ({}): delete it with `kubectl delete node {}`",
                node.node_name,
                error_chain(&error),
                node.node_name
            );
            ctx.line(warning.clone()).await;
            warnings.push(warning);
            false
        }
    };

    match profile {
        ResetProfile::Maintenance => {
            ctx.line(format!(
                "waiting for {} to come back in maintenance mode or ask for its config",
                node.node_name
            ))
            .await;
            let back = wait_for_maintenance(ctx, server_id, &node)
                .await
                .map_err(waited)?;
            ctx.line(match back {
                Back::Maintenance => format!(
                    "{} is in maintenance mode, waiting for a machine config",
                    node.node_name
                ),
                Back::AskingForConfig => format!(
                    "{} booted and asks /config for a machine config (its talos.config= argument): it gets one once you assign it",
                    node.node_name
                ),
            })
            .await;
        }
        ResetProfile::Wipe => {
            ctx.line(format!(
                "{}'s system disk is wiped and it powers off; enter rescue to bootstrap it again",
                node.node_name
            ))
            .await;
        }
        ResetProfile::WipeToRescue => {
            ctx.line(format!(
                "letting the wipe finish for {} s before entering rescue",
                ctx.timing.wipe_grace.as_secs()
            ))
            .await;
            tokio::time::sleep(ctx.timing.wipe_grace).await;
            let entered = enter_rescue(ctx.store, ctx.providers, server_id, ctx.ssh_private_key)
                .await
                .map_err(|source| ResetError::Rescue {
                    server: name.clone(),
                    source,
                })?;
            ctx.line(format!(
                "{name} is booting into the rescue system, ready for a new bootstrap"
            ))
            .await;
            stored = entered.server;
        }
    }
    ctx.line(format!("reset of {name} done")).await;
    Ok(ResetOutcome {
        server: stored,
        node: node.node_name,
        profile,
        graceful,
        forced,
        removed_etcd_member,
        deleted_kubernetes_node,
        warnings,
    })
}

fn profile_phrase(profile: ResetProfile) -> &'static str {
    match profile {
        ResetProfile::Maintenance => {
            "maintenance mode (wipe STATE and EPHEMERAL, from Talos 1.14 also ETCD, CRI, KUBELET and LOG)"
        }
        ResetProfile::Wipe => "an empty disk (wipe the whole system disk)",
        ResetProfile::WipeToRescue => "rescue (wipe the whole system disk, then rescue)",
    }
}

/// Removes `node`'s member through `peer` when it is still listed.
async fn remove_member(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    peer: &NodeRef,
    node: &NodeRef,
) -> Result<Option<u64>, TalosApiError> {
    let members = api.etcd_members(peer.address).await?;
    let Some(member) = members
        .iter()
        .find(|member| member.hostname == node.node_name)
    else {
        ctx.line(format!("{} has left etcd", node.node_name)).await;
        return Ok(None);
    };
    api.etcd_remove_member(peer.address, member.id).await?;
    ctx.line(format!(
        "etcd member {} ({:x}) removed through {}",
        node.node_name, member.id, peer.node_name
    ))
    .await;
    Ok(Some(member.id))
}

/// How a node came back from a reset to maintenance mode.
enum Back {
    /// Its maintenance API reports maintenance mode.
    Maintenance,
    /// It asked `/config` (recorded on the server since the reset cleared the time). A node
    /// booted with `talos.config=` keeps asking that URL, with back-off for up to three hours,
    /// before Talos would enter maintenance mode, so its maintenance API does not answer then.
    AskingForConfig,
}

/// Until the node asks `/config` or its maintenance API reports maintenance mode.
async fn wait_for_maintenance(
    ctx: &LifecycleContext<'_>,
    server_id: ServerId,
    node: &NodeRef,
) -> Result<Back, WaitError> {
    let maintenance: Arc<dyn crate::talos_api::TalosMaintenanceApi> = ctx.talos.maintenance();
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(server) = ctx.store.get_server(server_id).await
            && server.last_request_for_configuration_at.is_some()
        {
            return Ok(Back::AskingForConfig);
        }
        let last_seen = match maintenance.machine_status(node.address).await {
            Ok(status) if status.stage == MachineStage::Maintenance => {
                return Ok(Back::Maintenance);
            }
            Ok(status) => format!("it is {}", status.stage),
            Err(error) => format!(
                "no answer ({}) and no request for its config",
                error_chain(&error)
            ),
        };
        if started.elapsed() + ctx.timing.poll_interval > ctx.timing.node_back {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> TalosRelease {
        text.parse().unwrap()
    }

    #[test]
    fn profiles_wipe_what_they_say() {
        for (talos, volumes) in [
            (None, &["STATE", "EPHEMERAL"][..]),
            (Some(version("v1.12.0")), &["STATE", "EPHEMERAL"]),
            (Some(version("v1.13.9")), &["STATE", "EPHEMERAL"]),
            (
                Some(version("v1.14.0-rc.1")),
                &["STATE", "EPHEMERAL", "ETCD", "CRI", "KUBELET", "LOG"],
            ),
            (
                Some(version("v1.15.0")),
                &["STATE", "EPHEMERAL", "ETCD", "CRI", "KUBELET", "LOG"],
            ),
        ] {
            let maintenance = reset_request(ResetProfile::Maintenance, true, talos.as_ref());
            assert_eq!(maintenance.wipe_partitions, volumes, "{talos:?}");
            assert!(maintenance.reboot && maintenance.graceful);
            assert_eq!(maintenance.mode, WipeMode::All);
            for profile in [ResetProfile::Wipe, ResetProfile::WipeToRescue] {
                let wipe = reset_request(profile, false, talos.as_ref());
                assert!(wipe.wipe_partitions.is_empty() && !wipe.reboot && !wipe.graceful);
                assert_eq!(wipe.mode, WipeMode::SystemDisk);
            }
        }
        assert_eq!(
            join_words(&[
                "STATE".to_owned(),
                "EPHEMERAL".to_owned(),
                "ETCD".to_owned()
            ]),
            "STATE, EPHEMERAL and ETCD"
        );
    }
}
