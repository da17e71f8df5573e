//! An in-memory fake of the Talos machine API ([`TalosConnector`], [`TalosApi`],
//! [`TalosMaintenanceApi`]) for lifecycle tests: per-node version, stage and readiness, one
//! etcd membership shared by the control planes, injected failures, and every call recorded
//! as `operation hostname` (`upgrade worker-1 …`).
//!
//! Going down and coming back is counted in questions, not time: after a reboot, upgrade or
//! reset a node answers "unreachable" to its next [`FakeTalos::set_down_polls`] calls (2 by
//! default), then comes back in its new state. So tests are fast and deterministic.
//!
//! A node's name (its Nodename and etcd member name) is the one given to
//! [`FakeTalos::add_node`], which may differ from its server's name. A control plane's etcd
//! stops while the node is down and starts again when it is back, unless
//! [`FakeTalos::never_rejoin_etcd`]: then its member stays listed but its own etcd does not
//! answer. `etcd_members` asks the node's own etcd, as the gRPC client does. A node made
//! unreachable ([`FakeTalos::set_reachable`]) is down: nothing on it answers.
//!
//! A control plane added with [`FakeTalos::add_unbootstrapped_node`] runs without etcd until
//! `bootstrap` is called on one such node: that node becomes etcd's one member (and leader),
//! and the other control planes waiting for a cluster join it. `bootstrap` on a node whose etcd
//! has data answers `AlreadyExists` "etcd data directory is not empty", as Talos does; "not
//! ready yet" answers are injected with [`FakeTalos::fail`] (`"bootstrap"`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Secret;
use crate::talos_api::{
    ApplyMode, ApplyOutcome, EtcdMember, EtcdMemberStatus, MachineStage, MachineStatus, RebootMode,
    ResetRequest, TalosApi, TalosApiError, TalosConnector, TalosCredentials, TalosMaintenanceApi,
    TalosStatusCode, TalosVersionInfo, UpgradeRequest,
};

/// A failure to inject with [`FakeTalos::fail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFailure {
    /// The node answers this status.
    Status(TalosStatusCode, String),
    /// The installer fails with this exit code (upgrade).
    InstallFailed(i32, String),
    /// No answer.
    Unreachable(String),
}

/// Where a node is after a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Configured and running (or rebooting).
    Configured,
    /// Reset to maintenance mode: only the maintenance API answers.
    Maintenance,
    /// System disk wiped: nothing answers.
    Wiped,
}

#[derive(Debug, Clone)]
struct Node {
    hostname: String,
    control_plane: bool,
    version: String,
    ready: bool,
    reachable: bool,
    life: Life,
    down_polls: u32,
    /// Applied when the node comes back.
    pending: Option<Pending>,
    /// Whether its etcd runs (control planes).
    etcd_running: bool,
    /// Whether its etcd starts again when it comes back.
    rejoins_etcd: bool,
    /// A control plane whose etcd waits for a bootstrap (no cluster yet).
    awaits_bootstrap: bool,
}

#[derive(Debug, Clone)]
enum Pending {
    Version(String),
    Life(Life),
    Nothing,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<SocketAddr, Node>,
    etcd: Vec<EtcdMember>,
    leader: Option<u64>,
    calls: Vec<String>,
    failures: Vec<(SocketAddr, &'static str, FakeFailure)>,
    down_polls: u32,
    next_member_id: u64,
    /// Upgrades that come back at the old version (the install failed after the reply).
    roll_back: Vec<SocketAddr>,
}

/// The fake; clones share state.
#[derive(Debug, Clone)]
pub struct FakeTalos {
    state: Arc<Mutex<State>>,
}

impl Default for FakeTalos {
    fn default() -> Self {
        FakeTalos::new()
    }
}

impl FakeTalos {
    /// An empty fake.
    pub fn new() -> FakeTalos {
        FakeTalos {
            state: Arc::new(Mutex::new(State {
                down_polls: 2,
                next_member_id: 0x1000,
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a running, ready node; a control plane joins etcd (the first one leads).
    pub fn add_node(
        &self,
        address: SocketAddr,
        hostname: &str,
        control_plane: bool,
        version: &str,
    ) {
        let mut state = self.lock();
        if control_plane {
            let id = state.next_member_id;
            state.next_member_id += 1;
            state.etcd.push(EtcdMember {
                id,
                hostname: hostname.to_owned(),
                is_learner: false,
            });
            state.leader.get_or_insert(id);
        }
        state.nodes.insert(
            address,
            Node {
                hostname: hostname.to_owned(),
                control_plane,
                version: version.to_owned(),
                ready: true,
                reachable: true,
                life: Life::Configured,
                down_polls: 0,
                pending: None,
                etcd_running: control_plane,
                rejoins_etcd: true,
                awaits_bootstrap: false,
            },
        );
    }

    /// Adds a running, ready control plane of a cluster that was never bootstrapped: its etcd
    /// does not run and it is no member until a `bootstrap` (on it or another such node).
    pub fn add_unbootstrapped_node(&self, address: SocketAddr, hostname: &str, version: &str) {
        self.lock().nodes.insert(
            address,
            Node {
                hostname: hostname.to_owned(),
                control_plane: true,
                version: version.to_owned(),
                ready: true,
                reachable: true,
                life: Life::Configured,
                down_polls: 0,
                pending: None,
                etcd_running: false,
                rejoins_etcd: true,
                awaits_bootstrap: true,
            },
        );
    }

    /// After its next restart the node comes back (running, ready) but its etcd does not
    /// start: it stays a listed member that is not healthy.
    pub fn never_rejoin_etcd(&self, address: SocketAddr) {
        if let Some(node) = self.lock().nodes.get_mut(&address) {
            node.rejoins_etcd = false;
        }
    }

    /// How many questions a node going down leaves unanswered before it is back.
    pub fn set_down_polls(&self, polls: u32) {
        self.lock().down_polls = polls;
    }

    /// Makes a node answer nothing (`false`) or answer again.
    pub fn set_reachable(&self, address: SocketAddr, reachable: bool) {
        if let Some(node) = self.lock().nodes.get_mut(&address) {
            node.reachable = reachable;
        }
    }

    /// Sets whether a node reports ready.
    pub fn set_ready(&self, address: SocketAddr, ready: bool) {
        if let Some(node) = self.lock().nodes.get_mut(&address) {
            node.ready = ready;
        }
    }

    /// The next call of `operation` (`version`, `upgrade`, `reset`, …) to the node fails.
    pub fn fail(&self, address: SocketAddr, operation: &'static str, failure: FakeFailure) {
        self.lock().failures.push((address, operation, failure));
    }

    /// The node's next upgrade is accepted, but it comes back at its old version.
    pub fn roll_back_next_upgrade(&self, address: SocketAddr) {
        self.lock().roll_back.push(address);
    }

    /// The version a node runs.
    pub fn version_of(&self, address: SocketAddr) -> Option<String> {
        self.lock()
            .nodes
            .get(&address)
            .map(|node| node.version.clone())
    }

    /// The etcd members' hostnames.
    pub fn etcd_hostnames(&self) -> Vec<String> {
        self.lock()
            .etcd
            .iter()
            .map(|member| member.hostname.clone())
            .collect()
    }

    /// Every call, in order, as `operation hostname[ detail]`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The calls of `operation` (`upgrade`, `reboot`, …), in order.
    pub fn calls_of(&self, operation: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|call| call.split(' ').next() == Some(operation))
            .collect()
    }

    /// Records the call and answers for the node's state: `Ok(node)` when it is up and
    /// configured.
    fn enter(
        &self,
        address: SocketAddr,
        operation: &'static str,
        detail: &str,
        maintenance: bool,
    ) -> Result<(MutexGuard<'_, State>, String), TalosApiError> {
        let mut state = self.lock();
        let hostname = state
            .nodes
            .get(&address)
            .map_or_else(|| address.to_string(), |node| node.hostname.clone());
        let mut call = format!("{operation} {hostname}");
        if !detail.is_empty() {
            call.push(' ');
            call.push_str(detail);
        }
        state.calls.push(call);
        let unreachable = |message: &str| TalosApiError::Unreachable {
            node: address,
            operation,
            message: message.to_owned(),
        };
        if let Some(index) = state
            .failures
            .iter()
            .position(|(node, op, _)| *node == address && *op == operation)
        {
            let (_, _, failure) = state.failures.remove(index);
            return Err(match failure {
                FakeFailure::Status(code, message) => TalosApiError::Status {
                    node: address,
                    operation,
                    code,
                    message,
                },
                FakeFailure::InstallFailed(exit_code, message) => TalosApiError::InstallFailed {
                    node: address,
                    exit_code,
                    message,
                },
                FakeFailure::Unreachable(message) => unreachable(&message),
            });
        }
        let Some(node) = state.nodes.get_mut(&address) else {
            return Err(unreachable("connection refused"));
        };
        if !node.reachable {
            return Err(unreachable("connection timed out"));
        }
        if node.down_polls > 0 {
            node.down_polls -= 1;
            if node.down_polls == 0 {
                node.etcd_running =
                    node.control_plane && node.rejoins_etcd && !node.awaits_bootstrap;
                match node.pending.take() {
                    Some(Pending::Version(version)) => node.version = version,
                    Some(Pending::Life(life)) => node.life = life,
                    Some(Pending::Nothing) | None => {}
                }
            }
            return Err(unreachable("connection refused (rebooting)"));
        }
        let answers = match node.life {
            Life::Configured => !maintenance,
            Life::Maintenance => maintenance,
            Life::Wiped => false,
        };
        if !answers {
            return Err(unreachable(if maintenance {
                "TLS handshake failed: the node is not in maintenance mode"
            } else {
                "TLS handshake failed: certificate signed by unknown authority"
            }));
        }
        Ok((state, hostname))
    }
}

impl TalosConnector for FakeTalos {
    fn cluster(&self, _credentials: &TalosCredentials) -> Result<Arc<dyn TalosApi>, TalosApiError> {
        Ok(Arc::new(self.clone()))
    }

    fn maintenance(&self) -> Arc<dyn TalosMaintenanceApi> {
        Arc::new(self.clone())
    }
}

fn node_mut(state: &mut State, address: SocketAddr) -> &mut Node {
    state
        .nodes
        .get_mut(&address)
        .expect("enter() checked the node exists")
}

#[async_trait::async_trait]
impl TalosApi for FakeTalos {
    async fn bootstrap(&self, node: SocketAddr) -> Result<(), TalosApiError> {
        let (mut state, hostname) = self.enter(node, "bootstrap", "", false)?;
        let status = |code, message: &str| TalosApiError::Status {
            node,
            operation: "bootstrap",
            code,
            message: message.to_owned(),
        };
        if !node_mut(&mut state, node).control_plane {
            return Err(status(
                TalosStatusCode::FailedPrecondition,
                "bootstrap can only be performed on a control plane node",
            ));
        }
        if !node_mut(&mut state, node).awaits_bootstrap
            || state.etcd.iter().any(|member| member.hostname == hostname)
        {
            return Err(status(
                TalosStatusCode::AlreadyExists,
                "etcd data directory is not empty",
            ));
        }
        // This node starts the cluster; the other control planes waiting for one join it.
        let waiting: Vec<SocketAddr> = state
            .nodes
            .iter()
            .filter(|(address, other)| other.awaits_bootstrap && **address != node)
            .map(|(address, _)| *address)
            .collect();
        for address in std::iter::once(node).chain(waiting) {
            let id = state.next_member_id;
            state.next_member_id += 1;
            let this = node_mut(&mut state, address);
            this.awaits_bootstrap = false;
            this.etcd_running = true;
            let hostname = this.hostname.clone();
            state.etcd.push(EtcdMember {
                id,
                hostname,
                is_learner: false,
            });
            state.leader.get_or_insert(id);
        }
        Ok(())
    }

    async fn version(&self, node: SocketAddr) -> Result<TalosVersionInfo, TalosApiError> {
        let (mut state, _) = self.enter(node, "version", "", false)?;
        Ok(TalosVersionInfo {
            tag: node_mut(&mut state, node).version.clone(),
            arch: "amd64".into(),
            platform: "metal".into(),
        })
    }

    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError> {
        let (mut state, _) = self.enter(node, "machine_status", "", false)?;
        let ready = node_mut(&mut state, node).ready;
        Ok(MachineStatus {
            stage: MachineStage::Running,
            ready,
            unmet_conditions: if ready {
                Vec::new()
            } else {
                vec!["nodeReady: node not ready".into()]
            },
        })
    }

    async fn node_name(&self, node: SocketAddr) -> Result<String, TalosApiError> {
        let (state, hostname) = self.enter(node, "node_name", "", false)?;
        drop(state);
        Ok(hostname)
    }

    async fn etcd_members(&self, node: SocketAddr) -> Result<Vec<EtcdMember>, TalosApiError> {
        let (mut state, _) = self.enter(node, "etcd_members", "", false)?;
        let this = node_mut(&mut state, node);
        if !this.control_plane {
            return Err(TalosApiError::Status {
                node,
                operation: "etcd_members",
                code: TalosStatusCode::FailedPrecondition,
                message: "etcd is not running on a worker".into(),
            });
        }
        if !this.etcd_running {
            return Err(TalosApiError::Status {
                node,
                operation: "etcd_members",
                code: TalosStatusCode::Unavailable,
                message: "etcd: context deadline exceeded (etcd is not running on this node)"
                    .into(),
            });
        }
        Ok(state.etcd.clone())
    }

    async fn etcd_status(&self, node: SocketAddr) -> Result<EtcdMemberStatus, TalosApiError> {
        let (mut state, hostname) = self.enter(node, "etcd_status", "", false)?;
        let this = node_mut(&mut state, node);
        if !this.control_plane || !this.etcd_running {
            return Err(TalosApiError::Status {
                node,
                operation: "etcd_status",
                code: if this.control_plane {
                    TalosStatusCode::Unavailable
                } else {
                    TalosStatusCode::FailedPrecondition
                },
                message: "etcd is not running on this node".into(),
            });
        }
        let own = state
            .etcd
            .iter()
            .find(|member| member.hostname == hostname)
            .cloned();
        Ok(EtcdMemberStatus {
            member_id: own.as_ref().map_or(0, |member| member.id),
            leader: state.leader.unwrap_or_default(),
            is_learner: own.is_some_and(|member| member.is_learner),
            errors: Vec::new(),
            db_size: 20 * 1024 * 1024,
        })
    }

    async fn etcd_forfeit_leadership(
        &self,
        node: SocketAddr,
    ) -> Result<Option<String>, TalosApiError> {
        let (mut state, hostname) = self.enter(node, "etcd_forfeit_leadership", "", false)?;
        let own = state
            .etcd
            .iter()
            .find(|member| member.hostname == hostname)
            .map(|member| member.id);
        if own.is_none() || own != state.leader {
            return Ok(None);
        }
        let next = state
            .etcd
            .iter()
            .find(|member| Some(member.id) != own && !member.is_learner)
            .map(|member| member.id);
        state.leader = next.or(own);
        Ok(next.map(|id| format!("{id:x}")))
    }

    async fn etcd_remove_member(
        &self,
        node: SocketAddr,
        member_id: u64,
    ) -> Result<(), TalosApiError> {
        let (mut state, _) =
            self.enter(node, "etcd_remove_member", &format!("{member_id:x}"), false)?;
        let before = state.etcd.len();
        state.etcd.retain(|member| member.id != member_id);
        if state.etcd.len() == before {
            return Err(TalosApiError::Status {
                node,
                operation: "etcd_remove_member",
                code: TalosStatusCode::NotFound,
                message: format!("member {member_id:x} not found"),
            });
        }
        Ok(())
    }

    async fn reset(&self, node: SocketAddr, request: &ResetRequest) -> Result<(), TalosApiError> {
        let detail = format!(
            "graceful={} reboot={} wipe=[{}]",
            request.graceful,
            request.reboot,
            request.wipe_partitions.join(",")
        );
        let (mut state, hostname) = self.enter(node, "reset", &detail, false)?;
        let voters = state
            .etcd
            .iter()
            .filter(|member| !member.is_learner)
            .count();
        let member = state
            .etcd
            .iter()
            .position(|member| member.hostname == hostname);
        if request.graceful
            && let Some(index) = member
        {
            if voters <= 1 {
                return Err(TalosApiError::Status {
                    node,
                    operation: "reset",
                    code: TalosStatusCode::FailedPrecondition,
                    message: "failed to leave etcd: the last member cannot leave".into(),
                });
            }
            // A graceful reset leaves etcd itself.
            state.etcd.remove(index);
        }
        let down_polls = state.down_polls.max(1);
        let life = if !request.wipe_partitions.is_empty() && request.reboot {
            Life::Maintenance
        } else {
            Life::Wiped
        };
        let node = node_mut(&mut state, node);
        node.down_polls = down_polls;
        node.etcd_running = false;
        node.pending = Some(Pending::Life(life));
        Ok(())
    }

    async fn reboot(&self, node: SocketAddr, mode: RebootMode) -> Result<(), TalosApiError> {
        let (mut state, _) = self.enter(node, "reboot", &format!("{mode:?}"), false)?;
        let down_polls = state.down_polls.max(1);
        let node = node_mut(&mut state, node);
        node.down_polls = down_polls;
        node.etcd_running = false;
        node.pending = Some(Pending::Nothing);
        Ok(())
    }

    async fn upgrade(
        &self,
        node: SocketAddr,
        request: &UpgradeRequest,
    ) -> Result<(), TalosApiError> {
        let (mut state, _) = self.enter(node, "upgrade", &request.image, false)?;
        let down_polls = state.down_polls.max(1);
        let rolls_back = match state.roll_back.iter().position(|a| *a == node) {
            Some(index) => {
                state.roll_back.remove(index);
                true
            }
            None => false,
        };
        let Some((_, tag)) = request.image.rsplit_once(':') else {
            return Err(TalosApiError::Status {
                node,
                operation: "upgrade",
                code: TalosStatusCode::InvalidArgument,
                message: format!("invalid image reference {:?}", request.image),
            });
        };
        let tag = tag.to_owned();
        let node = node_mut(&mut state, node);
        node.down_polls = down_polls;
        node.etcd_running = false;
        node.pending = Some(if rolls_back {
            Pending::Nothing
        } else {
            Pending::Version(tag)
        });
        Ok(())
    }

    async fn kubeconfig(&self, node: SocketAddr) -> Result<Secret<String>, TalosApiError> {
        drop(self.enter(node, "kubeconfig", "", false)?);
        Ok(Secret::new("apiVersion: v1\nkind: Config\n".into()))
    }

    async fn apply_configuration(
        &self,
        node: SocketAddr,
        _config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError> {
        drop(self.enter(node, "apply_configuration", &format!("{mode:?}"), false)?);
        Ok(ApplyOutcome {
            mode_details: "Applied configuration without a reboot".into(),
            warnings: Vec::new(),
        })
    }
}

#[async_trait::async_trait]
impl TalosMaintenanceApi for FakeTalos {
    async fn apply_configuration(
        &self,
        node: SocketAddr,
        _config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError> {
        let (mut state, _) = self.enter(
            node,
            "maintenance_apply_configuration",
            &format!("{mode:?}"),
            true,
        )?;
        let down_polls = state.down_polls.max(1);
        let node = node_mut(&mut state, node);
        node.down_polls = down_polls;
        node.pending = Some(Pending::Life(Life::Configured));
        Ok(ApplyOutcome {
            mode_details: "Applied configuration with a reboot".into(),
            warnings: Vec::new(),
        })
    }

    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError> {
        drop(self.enter(node, "maintenance_machine_status", "", true)?);
        Ok(MachineStatus {
            stage: MachineStage::Maintenance,
            ready: false,
            unmet_conditions: Vec::new(),
        })
    }
}
