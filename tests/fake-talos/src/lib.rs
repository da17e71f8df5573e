//! A fake Talos API server (apid) for tests: a cluster of nodes, each a tonic server on its own
//! loopback address (`127.0.0.N`, any of which Linux answers on) and all on the same port, so a
//! client configured with one Talos API port reaches them all. It implements the generated
//! server stubs of `talos-manager-talos-api` (feature `server`) and does not depend on
//! `talos-manager-core`, so it cannot share a bug with the client it checks beyond the wire
//! definitions.
//!
//! ```no_run
//! # async fn demo(os_ca_crt_pem: &str, os_ca_key_pem: &str) -> std::io::Result<()> {
//! use std::net::Ipv4Addr;
//! use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};
//!
//! let cluster = FakeTalosCluster::start(os_ca_crt_pem, os_ca_key_pem, None).await?;
//! let cp = cluster.add_node(NodeSpec::control_plane(Ipv4Addr::new(127, 0, 0, 2), "cp-1"))?;
//! let new = cluster.add_node(
//!     NodeSpec::worker(Ipv4Addr::new(127, 0, 0, 3), "w-1").version("v1.13.0").in_maintenance(),
//! )?;
//! println!("{cp} and {new} on port {}", cluster.port());
//! # Ok(())
//! # }
//! ```
//!
//! # What it models
//!
//! - **Configured nodes**: mutual TLS. The serving certificate is signed by the OS CA given to
//!   [`FakeTalosCluster::start`] with an IP SAN for the node's address; a client certificate
//!   chaining to the same CA is required and its extended key usage must be exactly
//!   `clientAuth` (else the handshake fails). Its Organization gives the role: `os:admin`
//!   everything, `os:operator` reads, reboot and image pulls, `os:reader` reads; anything else
//!   is answered `PermissionDenied`.
//! - **Maintenance nodes**: TLS with a self-signed certificate made at each boot, no client
//!   certificate. Only `ApplyConfiguration` (modes AUTO, REBOOT, TRY) and COSI reads
//!   (`MachineStatus` at stage `maintenance`) are answered; everything else is `Unimplemented`,
//!   as on Talos 1.12 and older. An applied config is recorded and the node restarts as a
//!   configured node: stage `booting`, then `running` and ready after the boot delay
//!   ([`FakeTalosCluster::set_boot_delay`]), when a control plane also joins etcd.
//! - **etcd**: the configured control planes are the members (ids stable per join), one of them
//!   the leader. Forfeiting leadership moves it to another member; removing a member removes
//!   it. A graceful reset leaves etcd first, and fails with `FailedPrecondition` on the last
//!   member. A member's etcd stops while its node is down and starts when the node is running
//!   again (unless [`Faults::never_rejoin_etcd`]); `EtcdMemberList` with `query_local` fails
//!   with `Unavailable` on a node whose etcd does not run, without it any running etcd answers.
//!   `EtcdStatus` answers the node's own member id and the leader, `Unavailable` likewise.
//! - **Bootstrap**: by default the cluster runs (etcd exists). After
//!   [`FakeTalosCluster::require_bootstrap`] configured control planes run without etcd until
//!   `MachineService.Bootstrap` is called on one: it becomes the one member (and leader), and
//!   the running control planes join it, as do those that boot later. Bootstrap answers
//!   `Unavailable` while the node is not ready ([`FakeTalosCluster::set_bootstrap_not_ready`]
//!   answers), `FailedPrecondition` on a worker and `AlreadyExists` "etcd data directory is not
//!   empty" on a node that is a member, as Talos does.
//! - **Names**: a node's hostname is its Nodename (COSI `Nodenames`) and etcd member name; it
//!   need not be its server's name.
//! - **Down**: [`FakeTalosCluster::take_down`] stops a node (connections refused, its etcd
//!   member listed but not running) until [`FakeTalosCluster::bring_up`].
//! - **Reset**: wiping `STATE` (with `wipe = true`) brings the node back in maintenance mode
//!   (with `talos.config=`: fetching its config, see below);
//!   wiping other partitions, or user disks only, brings it back configured; no partitions with
//!   mode ALL or SYSTEM_DISK wipes the system disk and the node never comes back (on Hetzner it
//!   would boot the network/rescue system); `reboot = false` powers it off for good. The labels
//!   are checked as the node's version does: `STATE`, `EPHEMERAL` and `META` everywhere; the
//!   system volumes `ETCD`, `CRI`, `KUBELET` and `LOG` are refused before 1.14 (`volume "ETCD"
//!   is not located`), and from 1.14 on accepted when they are partitions of their own
//!   ([`NodeSpec::dedicated_volumes`]) or when `EPHEMERAL`, where they reside otherwise, is
//!   wiped too; any other label is unknown. Refusals answer `Unknown`, as Talos's plain errors
//!   do. Each accepted wipe is recorded ([`FakeTalosCluster::wipes`]); dedicated volumes a reset
//!   to maintenance mode did not wipe keep their data ([`NodeSnapshot::kept_volumes`]).
//! - **Kernel command line** ([`NodeSpec::kernel_args`], [`NodeSnapshot::kernel_args`]): an
//!   upgrade installs the command line the next boot runs with, as Talos's installer writes it.
//!   A node whose config takes the UKI's command line (`grubUseUKICmdline: true`, the default of
//!   configs for 1.12 and later, and always under systemd-boot; [`NodeSpec::uki_cmdline`]) gets
//!   the kernel arguments baked into the installer image ([`FakeTalosCluster::register_installer`];
//!   none for an image the fake registry does not know, like a stock installer); an older
//!   (legacy GRUB) one keeps its `talos.config=`, which the installer copies from the running
//!   command line. A node whose `STATE` was wiped and that has `talos.config=` does not enter
//!   maintenance mode, as Talos does not while that URL gives no config: it stays `booting`
//!   with its API down and fetches its config over HTTP from its own address, `${uuid}`
//!   replaced by its SMBIOS UUID ([`NodeSpec::smbios_uuid`]), every 100 ms until an answer is
//!   200, then applies it and boots configured ([`FakeTalosCluster::config_fetches`]).
//! - **Reboot and upgrade**: the stage becomes `rebooting` or `upgrading`, then the node stops
//!   answering (its listener closes and its connections drop: connections are refused) for the
//!   downtime ([`FakeTalosCluster::set_downtime`], 1 s at start), then comes back `booting`,
//!   then `running` and ready. Nodes at v1.13 and later serve `ImageService.Pull` +
//!   `LifecycleService.Upgrade` (which only installs: the version changes at the next reboot);
//!   every node serves the legacy `MachineService.Upgrade`, and older nodes answer
//!   `Unimplemented` to the new services. The new version is the tag of the installer image
//!   (`…:v1.11.2`). Which path a client took shows in [`FakeTalosCluster::calls`].
//! - **Faults** per node ([`Faults`]): the upgrade fails (legacy: an `Internal` status; 1.13+:
//!   exit code 1 in the install stream), the node never comes back from its next restart, calls
//!   answer `Unavailable` until a moment.
//! - **Kubeconfig** streams a gzip tar without the end-of-archive blocks (as Talos does) holding
//!   one `kubeconfig` entry, in two chunks.
//! - Every call is recorded ([`FakeTalosCluster::calls`]): node, method, a short summary that
//!   never holds a config or a key.

mod kubeconfig;
mod services;
mod tls;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::tls::{OsCa, maintenance_config};

/// A node's machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineType {
    /// Runs etcd and the Kubernetes control plane.
    ControlPlane,
    /// Runs workloads.
    Worker,
}

/// A node to add to the fake cluster.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its loopback address (`127.0.0.2`).
    pub address: Ipv4Addr,
    /// Its hostname (also its Kubernetes node name and etcd member name).
    pub hostname: String,
    /// Control plane or worker.
    pub machine_type: MachineType,
    /// The Talos version it runs, `v1.12.0`.
    pub version: String,
    /// Booted without a config (maintenance mode) rather than configured and running.
    pub maintenance: bool,
    /// The system volumes on partitions of their own (Talos 1.14 and later: `ETCD`, `CRI`,
    /// `KUBELET`, `LOG`); the others are directories in `EPHEMERAL`.
    pub dedicated_volumes: Vec<String>,
    /// The kernel arguments it booted with that matter here (`talos.config=…`).
    pub kernel_args: Vec<String>,
    /// Whether its boot entry takes the installer's UKI command line on upgrade; `None`: as
    /// the version's generated configs do (1.12 and later).
    pub uki_cmdline: Option<bool>,
    /// Its SMBIOS UUID, what `${uuid}` in `talos.config=` becomes.
    pub smbios_uuid: String,
}

impl NodeSpec {
    /// A configured control plane running Talos v1.12.0.
    pub fn control_plane(address: Ipv4Addr, hostname: &str) -> NodeSpec {
        NodeSpec {
            address,
            hostname: hostname.to_owned(),
            machine_type: MachineType::ControlPlane,
            version: "v1.12.0".to_owned(),
            maintenance: false,
            dedicated_volumes: Vec::new(),
            kernel_args: Vec::new(),
            uki_cmdline: None,
            smbios_uuid: format!("00000000-0000-4000-8000-{:012x}", u32::from(address)),
        }
    }

    /// A configured worker running Talos v1.12.0.
    pub fn worker(address: Ipv4Addr, hostname: &str) -> NodeSpec {
        NodeSpec {
            machine_type: MachineType::Worker,
            ..NodeSpec::control_plane(address, hostname)
        }
    }

    /// Runs this Talos version instead (`v1.13.0`).
    pub fn version(mut self, tag: &str) -> NodeSpec {
        self.version = tag.to_owned();
        self
    }

    /// Booted in maintenance mode, waiting for a config.
    pub fn in_maintenance(mut self) -> NodeSpec {
        self.maintenance = true;
        self
    }

    /// These system volumes are partitions of their own (`["ETCD"]`; Talos 1.14 and later).
    pub fn dedicated_volumes(mut self, volumes: &[&str]) -> NodeSpec {
        self.dedicated_volumes = volumes.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Booted with these kernel arguments (`talos.config=https://…/config?uuid=${uuid}`).
    pub fn kernel_args(mut self, args: &[&str]) -> NodeSpec {
        self.kernel_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Whether an upgrade takes the installer's UKI command line (else the legacy GRUB one).
    pub fn uki_cmdline(mut self, uki: bool) -> NodeSpec {
        self.uki_cmdline = Some(uki);
        self
    }

    /// Its SMBIOS UUID.
    pub fn smbios_uuid(mut self, uuid: &str) -> NodeSpec {
        self.smbios_uuid = uuid.to_owned();
        self
    }
}

/// `(major, minor)` of a version tag (`v1.14.0-rc.1` → `(1, 14)`); unreadable parts are 0.
pub(crate) fn release_line(version: &str) -> (u64, u64) {
    let mut numbers = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// One attempt of a node to fetch its config from its `talos.config=` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFetch {
    /// The URL asked, `${uuid}` filled in.
    pub url: String,
    /// The HTTP status, or 0 when no answer came.
    pub status: u16,
}

/// Faults injected into one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Upgrades fail: the legacy call answers an error, the 1.13+ install ends with exit code 1.
    pub fail_upgrade: bool,
    /// The node's next restart (reboot, upgrade, reset) never ends: it stays unreachable.
    pub never_come_back: bool,
    /// Every call answers `Unavailable` until then.
    pub unavailable_until: Option<Instant>,
    /// After its next restart the node is running and ready, but its etcd does not start: its
    /// member stays listed, not healthy.
    pub never_rejoin_etcd: bool,
}

/// One call a node received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The node's address.
    pub node: Ipv4Addr,
    /// `Service/Method`: `MachineService/Version`, `LifecycleService/Upgrade`, `State/Get`, …
    pub method: String,
    /// What was asked, without configs or keys (`mode AUTO, 120 bytes`).
    pub summary: String,
}

/// What a node looks like now, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The Talos version it runs.
    pub version: String,
    /// Its machine status stage (`running`, `maintenance`, `rebooting`, …).
    pub stage: String,
    /// Whether it reports ready.
    pub ready: bool,
    /// In maintenance mode.
    pub maintenance: bool,
    /// Accepting connections.
    pub up: bool,
    /// Control plane or worker.
    pub machine_type: MachineType,
    /// The kernel arguments it runs with now.
    pub kernel_args: Vec<String>,
    /// Dedicated volumes whose data survived its last reset to maintenance mode (not wiped).
    pub kept_volumes: Vec<String>,
}

/// An etcd member of the fake cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEtcdMember {
    /// Its member id.
    pub id: u64,
    /// The hostname of its node.
    pub hostname: String,
    /// Its node's address.
    pub node: Ipv4Addr,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) hostname: String,
    pub(crate) machine_type: MachineType,
    pub(crate) version: String,
    pub(crate) maintenance: bool,
    pub(crate) stage: String,
    pub(crate) ready: bool,
    pub(crate) up: bool,
    /// Bumped at every restart, so a stale delayed step does nothing.
    pub(crate) generation: u64,
    /// Installed by `LifecycleService.Upgrade`, running after the next reboot.
    pub(crate) installed_version: Option<String>,
    pub(crate) pulled_images: Vec<String>,
    pub(crate) applied_configs: Vec<String>,
    pub(crate) dedicated_volumes: Vec<String>,
    pub(crate) kept_volumes: Vec<String>,
    /// The system volumes of each accepted reset, in order.
    pub(crate) wipes: Vec<Vec<String>>,
    pub(crate) kernel_args: Vec<String>,
    /// Installed by an upgrade, booted after the next reboot.
    pub(crate) installed_kernel_args: Option<Vec<String>>,
    pub(crate) uki_cmdline: bool,
    pub(crate) smbios_uuid: String,
    pub(crate) config_fetches: Vec<ConfigFetch>,
    pub(crate) faults: Faults,
    /// Whether its etcd runs (configured control planes that are up).
    pub(crate) etcd_running: bool,
    pub(crate) configured_tls: Arc<rustls::ServerConfig>,
    pub(crate) maintenance_tls: Arc<rustls::ServerConfig>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) nodes: BTreeMap<Ipv4Addr, Node>,
    pub(crate) etcd: Vec<FakeEtcdMember>,
    pub(crate) leader: Option<u64>,
    pub(crate) joins: u64,
    pub(crate) calls: Vec<RecordedCall>,
    pub(crate) kubeconfig: String,
    pub(crate) downtime: Duration,
    pub(crate) boot_delay: Duration,
    pub(crate) stopped: bool,
    /// Installer image repositories (without the tag) → the kernel arguments in their UKI.
    pub(crate) installers: BTreeMap<String, Vec<String>>,
    /// Whether etcd exists (a control plane was bootstrapped); control planes join it.
    pub(crate) bootstrapped: bool,
    /// How many more Bootstrap calls answer "not ready".
    pub(crate) bootstrap_not_ready: u32,
}

impl State {
    /// The kernel command line a node boots with after an upgrade with `image`: the image's
    /// UKI command line, or (legacy GRUB) its `talos.config=` carried over.
    pub(crate) fn upgraded_kernel_args(&self, address: Ipv4Addr, image: &str) -> Vec<String> {
        let Some(node) = self.nodes.get(&address) else {
            return Vec::new();
        };
        if node.uki_cmdline {
            let repository = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
            self.installers.get(repository).cloned().unwrap_or_default()
        } else {
            node.kernel_args
                .iter()
                .filter(|arg| arg.starts_with("talos.config="))
                .cloned()
                .collect()
        }
    }

    pub(crate) fn join_etcd(&mut self, address: Ipv4Addr) {
        if self.etcd.iter().any(|member| member.node == address) {
            return;
        }
        let Some(node) = self.nodes.get(&address) else {
            return;
        };
        self.joins += 1;
        let id = (0x7a1u64 << 48) | (self.joins << 32) | u64::from(u32::from(address));
        self.etcd.push(FakeEtcdMember {
            id,
            hostname: node.hostname.clone(),
            node: address,
        });
        if self.leader.is_none() {
            self.leader = Some(id);
        }
    }

    /// Removes a member; leadership moves to the first other member.
    pub(crate) fn remove_member(&mut self, id: u64) -> bool {
        let before = self.etcd.len();
        self.etcd.retain(|member| member.id != id);
        if self.leader == Some(id) {
            self.leader = self.etcd.first().map(|member| member.id);
        }
        self.etcd.len() != before
    }
}

/// Where a restart ends.
#[derive(Debug, Clone)]
pub(crate) enum Comeback {
    /// Configured and running, with this version.
    Configured,
    /// In maintenance mode (STATE wiped).
    Maintenance,
    /// Never (system disk wiped, powered off).
    Never,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    servers: Mutex<BTreeMap<Ipv4Addr, JoinHandle<()>>>,
    /// Holds the port on 127.0.0.1 until a node takes that address.
    reservation: Mutex<Option<TcpListener>>,
    port: u16,
    ca: OsCa,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(128)
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn start_serving(self: &Arc<Self>, address: Ipv4Addr) -> io::Result<()> {
        if address == Ipv4Addr::LOCALHOST {
            lock(&self.reservation).take();
        }
        let listener = listen(SocketAddrV4::new(address, self.port).into())?;
        let task = tokio::spawn(serve(self.clone(), address, listener));
        if let Some(old) = lock(&self.servers).insert(address, task) {
            old.abort();
        }
        if let Some(node) = self.state().nodes.get_mut(&address) {
            node.up = true;
        }
        Ok(())
    }

    fn stop_serving(&self, address: Ipv4Addr) {
        if let Some(task) = lock(&self.servers).remove(&address) {
            task.abort();
        }
        if let Some(node) = self.state().nodes.get_mut(&address) {
            node.up = false;
        }
    }

    /// After the current answer is out, takes the node down for `downtime` and brings it back
    /// as `comeback` says (unless it is set never to come back).
    pub(crate) fn restart(
        self: &Arc<Self>,
        address: Ipv4Addr,
        downtime: Duration,
        comeback: Comeback,
    ) {
        let shared = self.clone();
        let generation = {
            let mut state = self.state();
            let Some(node) = state.nodes.get_mut(&address) else {
                return;
            };
            node.generation += 1;
            node.ready = false;
            node.etcd_running = false;
            node.generation
        };
        tokio::spawn(async move {
            // Let the answer that caused the restart reach the client.
            tokio::time::sleep(Duration::from_millis(50)).await;
            shared.stop_serving(address);
            tokio::time::sleep(downtime).await;
            let (boot_delay, fetching) = {
                let mut state = shared.state();
                let boot_delay = state.boot_delay;
                let stopped = state.stopped;
                let Some(node) = state.nodes.get_mut(&address) else {
                    return;
                };
                let fetching = node
                    .kernel_args
                    .iter()
                    .any(|arg| arg.starts_with("talos.config="));
                if stopped || node.generation != generation || node.faults.never_come_back {
                    return;
                }
                match comeback {
                    Comeback::Never => return,
                    Comeback::Configured => {
                        if let Some(version) = node.installed_version.take() {
                            node.version = version;
                        }
                        if let Some(args) = node.installed_kernel_args.take() {
                            node.kernel_args = args;
                        }
                        node.maintenance = false;
                        node.stage = "booting".to_owned();
                    }
                    Comeback::Maintenance if fetching => {
                        // Talos downloads from talos.config= before it would enter
                        // maintenance mode; its API does not answer meanwhile.
                        node.maintenance = false;
                        node.stage = "booting".to_owned();
                        node.applied_configs.clear();
                    }
                    Comeback::Maintenance => {
                        node.maintenance = true;
                        node.stage = "maintenance".to_owned();
                        node.applied_configs.clear();
                        match maintenance_config(address) {
                            Ok(config) => node.maintenance_tls = config,
                            Err(_) => return,
                        }
                    }
                }
                (boot_delay, fetching)
            };
            if fetching && matches!(comeback, Comeback::Maintenance) {
                shared.fetch_config(address, generation).await;
                return;
            }
            let mut retries = 0;
            while let Err(error) = shared.start_serving(address) {
                retries += 1;
                if retries > 50 {
                    eprintln!("fake Talos node {address} could not listen again: {error}");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if matches!(comeback, Comeback::Maintenance) {
                return;
            }
            tokio::time::sleep(boot_delay).await;
            let mut state = shared.state();
            let bootstrapped = state.bootstrapped;
            let Some(node) = state.nodes.get_mut(&address) else {
                return;
            };
            if node.generation != generation {
                return;
            }
            node.stage = "running".to_owned();
            node.ready = true;
            if node.machine_type == MachineType::ControlPlane
                && !node.faults.never_rejoin_etcd
                && bootstrapped
            {
                node.etcd_running = true;
                state.join_etcd(address);
            }
        });
    }
}

impl Shared {
    /// A node without a config that has `talos.config=`: asks that URL from its own address
    /// every 100 ms until an answer is 200, then applies the config and boots configured.
    /// Stops when the node restarts or the cluster stops.
    async fn fetch_config(self: &Arc<Self>, address: Ipv4Addr, generation: u64) {
        let url = {
            let state = self.state();
            let Some(node) = state.nodes.get(&address) else {
                return;
            };
            let Some(url) = node
                .kernel_args
                .iter()
                .find_map(|arg| arg.strip_prefix("talos.config="))
            else {
                return;
            };
            url.replace("${uuid}", &node.smbios_uuid)
        };
        let Ok(client) = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(address))
            .timeout(Duration::from_secs(5))
            .build()
        else {
            return;
        };
        loop {
            let (status, body) = match client.get(&url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.text().await.unwrap_or_default())
                }
                Err(_) => (0, String::new()),
            };
            let served = {
                let mut state = self.state();
                if state.stopped {
                    return;
                }
                let Some(node) = state.nodes.get_mut(&address) else {
                    return;
                };
                if node.generation != generation {
                    return;
                }
                node.config_fetches.push(ConfigFetch {
                    url: url.clone(),
                    status,
                });
                let served = status == 200 && !body.trim().is_empty();
                if served {
                    node.applied_configs.push(body);
                    node.stage = "installing".to_owned();
                }
                served
            };
            if served {
                self.restart(address, Duration::ZERO, Comeback::Configured);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Accepts connections on one node's listener until the task is aborted, which drops every
/// connection with it (the node went down).
async fn serve(shared: Arc<Shared>, address: Ipv4Addr, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let (maintenance, config) = {
            let state = shared.state();
            let Some(node) = state.nodes.get(&address) else {
                continue;
            };
            let config = if node.maintenance {
                node.maintenance_tls.clone()
            } else {
                node.configured_tls.clone()
            };
            (node.maintenance, config)
        };
        connections.spawn(services::serve_connection(
            shared.clone(),
            address,
            maintenance,
            config,
            tcp,
        ));
    }
}

/// The fake cluster; every node stops when it is dropped.
pub struct FakeTalosCluster {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakeTalosCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTalosCluster")
            .field("port", &self.shared.port)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeTalosCluster {
    fn drop(&mut self) {
        self.shared.state().stopped = true;
        for (_, task) in std::mem::take(&mut *lock(&self.shared.servers)) {
            task.abort();
        }
    }
}

impl FakeTalosCluster {
    /// Starts an empty cluster whose nodes trust the OS CA (`os_ca_crt_pem`, `os_ca_key_pem`:
    /// PEM text, the key PKCS#8 under `PRIVATE KEY` or Talos's `ED25519 PRIVATE KEY`). The
    /// port is `port_hint` when it is free on 127.0.0.1, else any free one; it is held on
    /// 127.0.0.1 until a node takes that address.
    pub async fn start(
        os_ca_crt_pem: &str,
        os_ca_key_pem: &str,
        port_hint: Option<u16>,
    ) -> io::Result<FakeTalosCluster> {
        let ca = OsCa::new(os_ca_crt_pem, os_ca_key_pem)?;
        let reservation = match port_hint
            .map(|port| listen(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into()))
        {
            Some(Ok(listener)) => listener,
            _ => listen(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into())?,
        };
        let port = reservation.local_addr()?.port();
        Ok(FakeTalosCluster {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    nodes: BTreeMap::new(),
                    etcd: Vec::new(),
                    leader: None,
                    joins: 0,
                    calls: Vec::new(),
                    kubeconfig: DEFAULT_KUBECONFIG.to_owned(),
                    downtime: Duration::from_secs(1),
                    boot_delay: Duration::from_millis(200),
                    stopped: false,
                    installers: BTreeMap::new(),
                    bootstrapped: true,
                    bootstrap_not_ready: 0,
                }),
                servers: Mutex::new(BTreeMap::new()),
                reservation: Mutex::new(Some(reservation)),
                port,
                ca,
            }),
        })
    }

    /// The Talos API port every node listens on.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Adds a node and starts its server (call inside a Tokio runtime); its socket address.
    /// A configured control plane becomes an etcd member (the first one the leader).
    pub fn add_node(&self, spec: NodeSpec) -> io::Result<SocketAddr> {
        let address = spec.address;
        if self.shared.state().nodes.contains_key(&address) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("the fake cluster already has a node on {address}"),
            ));
        }
        let uki_cmdline = spec
            .uki_cmdline
            .unwrap_or_else(|| release_line(&spec.version) >= (1, 12));
        let bootstrapped = self.shared.state().bootstrapped;
        let node = Node {
            hostname: spec.hostname,
            machine_type: spec.machine_type,
            version: spec.version,
            maintenance: spec.maintenance,
            stage: if spec.maintenance {
                "maintenance"
            } else {
                "running"
            }
            .to_owned(),
            ready: !spec.maintenance,
            up: false,
            generation: 0,
            installed_version: None,
            pulled_images: Vec::new(),
            applied_configs: Vec::new(),
            dedicated_volumes: spec.dedicated_volumes,
            kept_volumes: Vec::new(),
            wipes: Vec::new(),
            kernel_args: spec.kernel_args,
            installed_kernel_args: None,
            uki_cmdline,
            smbios_uuid: spec.smbios_uuid,
            config_fetches: Vec::new(),
            faults: Faults::default(),
            etcd_running: !spec.maintenance
                && spec.machine_type == MachineType::ControlPlane
                && bootstrapped,
            configured_tls: self.shared.ca.configured_config(address)?,
            maintenance_tls: maintenance_config(address)?,
        };
        {
            let mut state = self.shared.state();
            state.nodes.insert(address, node);
            if !spec.maintenance
                && spec.machine_type == MachineType::ControlPlane
                && state.bootstrapped
            {
                state.join_etcd(address);
            }
        }
        if let Err(error) = self.shared.start_serving(address) {
            self.shared.state().nodes.remove(&address);
            return Err(error);
        }
        Ok(SocketAddrV4::new(address, self.shared.port).into())
    }

    /// The cluster was never bootstrapped: control planes added or booting from now on run
    /// without etcd until `MachineService.Bootstrap` is called on one of them.
    pub fn require_bootstrap(&self) {
        self.shared.state().bootstrapped = false;
    }

    /// The next `answers` Bootstrap calls answer `Unavailable` (services still starting).
    pub fn set_bootstrap_not_ready(&self, answers: u32) {
        self.shared.state().bootstrap_not_ready = answers;
    }

    /// Whether a control plane was bootstrapped (etcd exists).
    pub fn bootstrapped(&self) -> bool {
        self.shared.state().bootstrapped
    }

    /// How long a rebooting or upgrading node stays unreachable (1 s at start).
    pub fn set_downtime(&self, downtime: Duration) {
        self.shared.state().downtime = downtime;
    }

    /// How long a node that came back stays `booting` before it is `running` and ready
    /// (200 ms at start).
    pub fn set_boot_delay(&self, boot_delay: Duration) {
        self.shared.state().boot_delay = boot_delay;
    }

    /// The text inside the kubeconfig archive control planes send.
    pub fn set_kubeconfig(&self, kubeconfig: &str) {
        self.shared.state().kubeconfig = kubeconfig.to_owned();
    }

    /// Sets a node's faults.
    pub fn set_faults(&self, node: Ipv4Addr, faults: Faults) {
        if let Some(node) = self.shared.state().nodes.get_mut(&node) {
            node.faults = faults;
        }
    }

    /// Takes a node down: it stops answering (connections refused) and its etcd stops; its
    /// member stays listed. [`FakeTalosCluster::bring_up`] undoes it.
    pub fn take_down(&self, node: Ipv4Addr) {
        self.shared.stop_serving(node);
        if let Some(node) = self.shared.state().nodes.get_mut(&node) {
            node.etcd_running = false;
        }
    }

    /// Brings a node taken down back as it was (its etcd running again if it is a member).
    pub fn bring_up(&self, node: Ipv4Addr) -> io::Result<()> {
        self.shared.start_serving(node)?;
        let mut state = self.shared.state();
        let member = state.etcd.iter().any(|member| member.node == node);
        if let Some(node) = state.nodes.get_mut(&node) {
            node.etcd_running = member;
        }
        Ok(())
    }

    /// The node's state now (`None` for an unknown address).
    pub fn node(&self, node: Ipv4Addr) -> Option<NodeSnapshot> {
        self.shared
            .state()
            .nodes
            .get(&node)
            .map(|node| NodeSnapshot {
                version: node.version.clone(),
                stage: node.stage.clone(),
                ready: node.ready,
                maintenance: node.maintenance,
                up: node.up,
                machine_type: node.machine_type,
                kernel_args: node.kernel_args.clone(),
                kept_volumes: node.kept_volumes.clone(),
            })
    }

    /// The fake registry's installer image `repository` (`factory.talos.dev/metal-installer/<id>`,
    /// without a tag) has these kernel arguments in its UKI command line, as the Image Factory
    /// bakes a schematic's `extraKernelArgs` into its installers.
    pub fn register_installer(&self, repository: &str, kernel_args: &[&str]) {
        self.shared.state().installers.insert(
            repository.to_owned(),
            kernel_args.iter().map(|a| (*a).to_owned()).collect(),
        );
    }

    /// The system volumes each accepted reset of a node wiped, in order.
    pub fn wipes(&self, node: Ipv4Addr) -> Vec<Vec<String>> {
        self.shared
            .state()
            .nodes
            .get(&node)
            .map(|node| node.wipes.clone())
            .unwrap_or_default()
    }

    /// Every attempt of a node to fetch its config from its `talos.config=` URL.
    pub fn config_fetches(&self, node: Ipv4Addr) -> Vec<ConfigFetch> {
        self.shared
            .state()
            .nodes
            .get(&node)
            .map(|node| node.config_fetches.clone())
            .unwrap_or_default()
    }

    /// The configs applied to a node, in order (cleared when a reset sends it back to
    /// maintenance mode).
    pub fn applied_configs(&self, node: Ipv4Addr) -> Vec<String> {
        self.shared
            .state()
            .nodes
            .get(&node)
            .map(|node| node.applied_configs.clone())
            .unwrap_or_default()
    }

    /// The etcd members, in join order.
    pub fn etcd_members(&self) -> Vec<FakeEtcdMember> {
        self.shared.state().etcd.clone()
    }

    /// The etcd leader's member id.
    pub fn etcd_leader(&self) -> Option<u64> {
        self.shared.state().leader
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.state().calls.clone()
    }

    /// The methods a node was called with, in order (`MachineService/Version`, …).
    pub fn methods(&self, node: Ipv4Addr) -> Vec<String> {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|call| call.node == node)
            .map(|call| call.method.clone())
            .collect()
    }
}

const DEFAULT_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
    - name: fake
      cluster:
        server: https://127.0.0.1:6443
contexts:
    - name: admin@fake
      context:
        cluster: fake
        user: admin@fake
current-context: admin@fake
users:
    - name: admin@fake
      user: {}
";
