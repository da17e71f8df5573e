//! A cluster's health in one call: [`cluster_health`].
//!
//! It asks, at the same time and each with its own timeout ([`HealthProbe::call_timeout`]):
//! - every configured node's Talos API for its version (a node that does not answer is shown
//!   as such, never an error of the whole call);
//! - every configured control plane for its etcd member's status (`EtcdStatus`: its member id,
//!   the leader it sees, its errors) and for etcd's member list;
//! - the Kubernetes API for its version and its nodes (Ready, kubelet version).
//!
//! From the answers it builds a [`ClusterHealth`]: etcd's members with each one's health and
//! the leader, the Kubernetes API, every node, the configured servers that are not nodes or
//! not etcd members, and when the cluster's CAs and the client certificates we issue expire;
//! and an overall [`HealthStatus`] with the reasons. The running Kubernetes version it sees
//! is recorded ([`Store::record_running_kubernetes_version`]), so the next config served
//! carries it.
//!
//! Nothing secret is returned or logged: only certificate expiry times.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use time::OffsetDateTime;

use crate::error_chain;
use crate::ids::{ClusterId, ServerId, ServerRef};
use crate::kubernetes::{ClientTimeouts, KubernetesClient, KubernetesError, Node};
use crate::lifecycle::{NodeRef, NodeRole};
use crate::random::SystemRandom;
use crate::store::{Store, StoreError};
use crate::talos::{CLIENT_VALIDITY, SecretsBundle};
use crate::talos_api::{
    EtcdMember, EtcdMemberStatus, TalosApi, TalosApiError, TalosConnector, TalosCredentials,
};

/// A certificate whose expiry is closer than this makes the cluster degraded.
pub const EXPIRY_WARNING: time::Duration = time::Duration::days(30);

/// What a health check runs with.
pub struct HealthProbe<'a> {
    /// The store.
    pub store: &'a Store,
    /// Makes the cluster's Talos API client.
    pub talos: &'a dyn TalosConnector,
    /// The port of every node's Talos API.
    pub talos_port: u16,
    /// The Kubernetes client's timeouts.
    pub kubernetes: ClientTimeouts,
    /// The most any one question (to a node, or the Kubernetes API) may take: the whole call
    /// takes little more, as the questions are asked at the same time.
    pub call_timeout: Duration,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Everything answered and is well.
    Healthy,
    /// The cluster runs, but something is wrong (see the reasons).
    Degraded,
    /// Neither the Kubernetes API nor any node's Talos API answered.
    Unreachable,
    /// etcd was never bootstrapped.
    NotBootstrapped,
}

impl HealthStatus {
    /// `healthy`, `degraded`, `unreachable` or `not_bootstrapped`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unreachable => "unreachable",
            HealthStatus::NotBootstrapped => "not_bootstrapped",
        }
    }
}

/// A cluster's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    /// The cluster.
    pub cluster_id: ClusterId,
    /// Its name.
    pub cluster: String,
    /// When it was checked.
    pub checked_at: OffsetDateTime,
    /// The verdict.
    pub status: HealthStatus,
    /// Why it is not healthy, one readable line each (empty when healthy).
    pub reasons: Vec<String>,
    /// etcd.
    pub etcd: EtcdHealth,
    /// The Kubernetes API.
    pub kubernetes: KubernetesApiHealth,
    /// Every configured node, then every Kubernetes node no configured server carries.
    pub nodes: Vec<NodeHealth>,
    /// Configured servers of the cluster that are not (yet) part of it.
    pub missing: Vec<MissingServer>,
    /// The cluster's CAs and the client certificates we issue, by expiry.
    pub certificates: Vec<CertificateExpiry>,
}

impl ClusterHealth {
    /// The earliest expiry among [`ClusterHealth::certificates`].
    pub fn earliest_expiry(&self) -> Option<OffsetDateTime> {
        self.certificates.iter().map(|cert| cert.not_after).min()
    }

    /// How many Kubernetes nodes are Ready, and how many there are.
    pub fn nodes_ready(&self) -> (usize, usize) {
        let known: Vec<bool> = self
            .nodes
            .iter()
            .filter_map(|node| node.kubernetes_ready)
            .collect();
        (known.iter().filter(|ready| **ready).count(), known.len())
    }
}

/// etcd's members as the control planes report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdHealth {
    /// The members (empty when no control plane's etcd answered).
    pub members: Vec<EtcdMemberHealth>,
    /// The leader's name, when a control plane reported one that is a member.
    pub leader: Option<String>,
}

impl EtcdHealth {
    /// How many members are healthy.
    pub fn healthy_members(&self) -> usize {
        self.members.iter().filter(|member| member.healthy).count()
    }
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberHealth {
    /// Its id, in hex as etcd prints it.
    pub id: String,
    /// Its name (the node's hostname).
    pub name: String,
    /// Whether it is a learner (not yet voting).
    pub learner: bool,
    /// Whether it is the leader.
    pub leader: bool,
    /// Whether its node's etcd answered as this member, without errors.
    pub healthy: bool,
    /// Why it is not healthy.
    pub problem: Option<String>,
}

/// The Kubernetes API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesApiHealth {
    /// Whether it answered.
    pub reachable: bool,
    /// The version it runs (`v1.33.1`).
    pub version: Option<String>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// One node: a configured server, a Kubernetes node, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// Its name: the Kubernetes node name (the server's recorded or expected node name).
    pub name: String,
    /// The configured server, if one carries it.
    pub server_id: Option<ServerId>,
    /// That server's reference (`robot-123`), as the API names it.
    pub server_ref: Option<ServerRef>,
    /// The server's name.
    pub server: Option<String>,
    /// Its role, for a configured server.
    pub role: Option<NodeRole>,
    /// Whether its Talos API answered (`None`: not a configured server, not asked).
    pub talos_reachable: Option<bool>,
    /// The Talos version it runs (`v1.11.3`).
    pub talos_version: Option<String>,
    /// Why its Talos API did not answer.
    pub talos_error: Option<String>,
    /// For a control plane: its etcd member's status.
    pub etcd: Option<NodeEtcd>,
    /// Whether its Kubernetes node is Ready (`None`: no such node, or the API did not answer).
    pub kubernetes_ready: Option<bool>,
    /// Its kubelet's version.
    pub kubelet_version: Option<String>,
}

/// A control plane's etcd, as it answered `EtcdStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEtcd {
    /// Its member id (hex), when its etcd answered.
    pub member_id: Option<String>,
    /// The leader it sees (hex).
    pub leader_id: Option<String>,
    /// The errors its etcd reports, or why it did not answer.
    pub errors: Vec<String>,
}

/// A configured server of the cluster that is not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingServer {
    /// The server.
    pub server_id: ServerId,
    /// Its reference (`robot-123`), as the API names it.
    pub server_ref: ServerRef,
    /// Its name.
    pub server: String,
    /// What it is missing from: `kubernetes` (not a node) or `etcd` (not a member).
    pub missing_from: &'static str,
}

/// When a certificate expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// Which one: `os_ca`, `kubernetes_ca`, `etcd_ca`, `aggregator_ca`,
    /// `talosconfig_client`, `kubeconfig_client`.
    pub name: &'static str,
    /// What it is, readable.
    pub description: &'static str,
    /// Its `notAfter`. For the client certificates: one issued now (each talosconfig or
    /// kubeconfig download issues a new one, valid [`CLIENT_VALIDITY`]).
    pub not_after: OffsetDateTime,
}

/// Why the health could not be checked at all (a node or API that does not answer is part
/// of the answer, never this).
#[derive(Debug, thiserror::Error)]
pub enum ClusterHealthError {
    /// Reading the database failed (or no such cluster).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's secrets bundle is unusable.
    #[error(transparent)]
    Bundle(#[from] crate::clusters::ClusterAccessError),
    /// A CA of the bundle could not be read.
    #[error("cluster {cluster}: the {certificate} of its secrets bundle is not a certificate")]
    Certificate {
        /// The cluster's name.
        cluster: String,
        /// Which one.
        certificate: &'static str,
    },
    /// No client credentials could be issued.
    #[error("failed to issue Talos API credentials for cluster {cluster}")]
    Credentials {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: crate::talos::ClientConfigError,
    },
    /// No Talos API client could be made.
    #[error("failed to set up the Talos API client for cluster {cluster}")]
    TalosClient {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: TalosApiError,
    },
    /// No Kubernetes client could be made.
    #[error("failed to set up a kubernetes client for cluster {cluster}")]
    Kubernetes {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: Box<KubernetesError>,
    },
}

/// What one configured node answered.
struct NodeAnswer {
    version: Result<String, String>,
    etcd_status: Option<Result<EtcdMemberStatus, String>>,
    etcd_members: Option<Result<Vec<EtcdMember>, String>>,
}

/// Checks the cluster's health (see the module); `now` is when, for the certificates' margin.
pub async fn cluster_health(
    probe: &HealthProbe<'_>,
    cluster_id: ClusterId,
    now: OffsetDateTime,
) -> Result<ClusterHealth, ClusterHealthError> {
    let cluster = probe.store.get_cluster(cluster_id).await?;
    let name = cluster.name.clone();
    let (_, secrets) = crate::clusters::load_bundle(probe.store, cluster_id).await?;
    let certificates = certificates(&secrets, &name, now)?;

    let credentials =
        TalosCredentials::for_cluster(&secrets, now, &mut SystemRandom).map_err(|source| {
            ClusterHealthError::Credentials {
                cluster: name.clone(),
                source,
            }
        })?;
    let api =
        probe
            .talos
            .cluster(&credentials)
            .map_err(|source| ClusterHealthError::TalosClient {
                cluster: name.clone(),
                source,
            })?;
    let kubernetes = KubernetesClient::for_cluster(
        &secrets,
        &cluster.endpoint,
        probe.kubernetes,
        now,
        &mut SystemRandom,
    )
    .map_err(|source| ClusterHealthError::Kubernetes {
        cluster: name.clone(),
        source: Box::new(source),
    })?;

    let configs = probe.store.list_machine_configs().await?;
    let servers: Vec<_> = probe
        .store
        .list_servers()
        .await?
        .into_iter()
        .filter(|server| server.cluster_id == Some(cluster_id))
        .collect();
    let server_ref = |id: ServerId| {
        servers
            .iter()
            .find(|server| server.id == id)
            .map(|server| ServerRef::new(server.inventory.provider, &server.inventory.provider_id))
    };
    let mut configured: Vec<NodeRef> = servers
        .iter()
        .filter_map(|server| {
            let config = configs.iter().find(|config| config.server_id == server.id);
            NodeRef::new(server, config, probe.talos_port).ok()
        })
        .collect();
    configured.sort_by(|a, b| {
        (a.role != NodeRole::ControlPlane, &a.server_name)
            .cmp(&(b.role != NodeRole::ControlPlane, &b.server_name))
    });

    let (answers, kube) = tokio::join!(
        ask_nodes(api, &configured, probe.call_timeout),
        ask_kubernetes(&kubernetes, probe.call_timeout)
    );

    // The running Kubernetes version, learned on every check.
    let kube_release = kube
        .as_ref()
        .ok()
        .and_then(|(version, _)| version.release());
    if kube.is_ok() {
        probe
            .store
            .record_running_kubernetes_version(
                cluster_id,
                kube_release.as_deref(),
                crate::store::now(),
            )
            .await?;
    }

    let etcd = etcd_health(&configured, &answers);
    let (kubernetes, kube_nodes) = match kube {
        Ok((version, nodes)) => (
            KubernetesApiHealth {
                reachable: true,
                version: Some(version.git_version),
                error: None,
            },
            Some(nodes),
        ),
        Err(error) => (
            KubernetesApiHealth {
                reachable: false,
                version: None,
                error: Some(error),
            },
            None,
        ),
    };

    let mut nodes = Vec::new();
    let mut missing = Vec::new();
    for (node, answer) in configured.iter().zip(&answers) {
        let kube_node = kube_nodes.as_ref().and_then(|list| {
            list.iter()
                .find(|kube| kube.metadata.name == node.node_name)
        });
        if kube_nodes.is_some() && kube_node.is_none() {
            missing.extend(server_ref(node.server_id).map(|server_ref| MissingServer {
                server_id: node.server_id,
                server_ref,
                server: node.server_name.clone(),
                missing_from: "kubernetes",
            }));
        }
        if node.role == NodeRole::ControlPlane
            && !etcd.members.is_empty()
            && !etcd
                .members
                .iter()
                .any(|member| member.name == node.node_name)
        {
            missing.extend(server_ref(node.server_id).map(|server_ref| MissingServer {
                server_id: node.server_id,
                server_ref,
                server: node.server_name.clone(),
                missing_from: "etcd",
            }));
        }
        nodes.push(NodeHealth {
            name: node.node_name.clone(),
            server_id: Some(node.server_id),
            server_ref: server_ref(node.server_id),
            server: Some(node.server_name.clone()),
            role: Some(node.role),
            talos_reachable: Some(answer.version.is_ok()),
            talos_version: answer.version.as_ref().ok().cloned(),
            talos_error: answer.version.as_ref().err().cloned(),
            etcd: answer.etcd_status.as_ref().map(|status| match status {
                Ok(status) => NodeEtcd {
                    member_id: Some(format!("{:x}", status.member_id)),
                    leader_id: (status.leader != 0).then(|| format!("{:x}", status.leader)),
                    errors: status.errors.clone(),
                },
                Err(error) => NodeEtcd {
                    member_id: None,
                    leader_id: None,
                    errors: vec![error.clone()],
                },
            }),
            kubernetes_ready: kube_node.map(Node::is_ready),
            kubelet_version: kube_node
                .map(|kube| kube.status.node_info.kubelet_version.clone())
                .filter(|version| !version.is_empty()),
        });
    }
    for kube in kube_nodes.iter().flatten() {
        if configured
            .iter()
            .any(|node| node.node_name == kube.metadata.name)
        {
            continue;
        }
        nodes.push(NodeHealth {
            name: kube.metadata.name.clone(),
            server_id: None,
            server_ref: None,
            server: None,
            role: None,
            talos_reachable: None,
            talos_version: None,
            talos_error: None,
            etcd: None,
            kubernetes_ready: Some(kube.is_ready()),
            kubelet_version: Some(kube.status.node_info.kubelet_version.clone())
                .filter(|version| !version.is_empty()),
        });
    }

    let mut health = ClusterHealth {
        cluster_id,
        cluster: name,
        checked_at: now,
        status: HealthStatus::Healthy,
        reasons: Vec::new(),
        etcd,
        kubernetes,
        nodes,
        missing,
        certificates,
    };
    let (status, reasons) = verdict(&health, cluster.bootstrapped_at.is_some(), now);
    health.status = status;
    health.reasons = reasons;
    Ok(health)
}

/// Asks every configured node at once; the answers in `nodes`' order.
async fn ask_nodes(
    api: Arc<dyn TalosApi>,
    nodes: &[NodeRef],
    timeout: Duration,
) -> Vec<NodeAnswer> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let api = api.clone();
        let address = node.address;
        let control_plane = node.role == NodeRole::ControlPlane;
        tasks.spawn(async move {
            (
                index,
                ask_node(&*api, address, control_plane, timeout).await,
            )
        });
    }
    let mut answers: BTreeMap<usize, NodeAnswer> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, answer)) = joined {
            answers.insert(index, answer);
        }
    }
    (0..nodes.len())
        .map(|index| {
            answers.remove(&index).unwrap_or_else(|| NodeAnswer {
                version: Err("the check of this node failed".to_owned()),
                etcd_status: None,
                etcd_members: None,
            })
        })
        .collect()
}

async fn ask_node(
    api: &dyn TalosApi,
    node: SocketAddr,
    control_plane: bool,
    timeout: Duration,
) -> NodeAnswer {
    // Under test (the dial guard active) a node outside loopback is not asked: it does not
    // answer.
    if let Err(refused) = crate::dial_guard::check_host("Talos API", &node.ip().to_string()) {
        let error = refused.to_string();
        return NodeAnswer {
            version: Err(error.clone()),
            etcd_status: control_plane.then_some(Err(error)),
            etcd_members: None,
        };
    }
    let version = within(timeout, api.version(node))
        .await
        .map(|version| version.tag);
    let (etcd_status, etcd_members) = if control_plane && version.is_ok() {
        let (status, members) = tokio::join!(
            within(timeout, api.etcd_status(node)),
            within(timeout, api.etcd_members(node))
        );
        (Some(status), Some(members))
    } else if control_plane {
        // Its Talos API did not answer: neither will its etcd status.
        let error = version.clone().err().unwrap_or_default();
        (Some(Err(error)), None)
    } else {
        (None, None)
    };
    NodeAnswer {
        version,
        etcd_status,
        etcd_members,
    }
}

/// A Talos API call with a timeout; errors as readable text.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, TalosApiError>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(short(&error_chain(&error).to_string())),
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f32())),
    }
}

async fn ask_kubernetes(
    client: &KubernetesClient,
    timeout: Duration,
) -> Result<(crate::kubernetes::KubernetesVersion, Vec<Node>), String> {
    // Under test (the dial guard active) an endpoint outside loopback is not asked.
    crate::dial_guard::check_url("Kubernetes API", client.endpoint())
        .map_err(|refused| refused.to_string())?;
    let asked = async {
        let version = client.version().await?;
        let nodes = client.list_nodes().await?;
        Ok::<_, KubernetesError>((version, nodes))
    };
    match tokio::time::timeout(timeout * 2, asked).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(short(&error_chain(&error).to_string())),
        Err(_) => Err(format!(
            "no answer within {} s",
            (timeout * 2).as_secs_f32()
        )),
    }
}

/// etcd's members, as the first control plane whose etcd answered lists them, each healthy
/// when its own node's etcd answered as it without errors; the leader most answers name.
fn etcd_health(configured: &[NodeRef], answers: &[NodeAnswer]) -> EtcdHealth {
    let Some(members) = answers
        .iter()
        .find_map(|answer| answer.etcd_members.as_ref()?.as_ref().ok())
    else {
        return EtcdHealth::default();
    };
    let statuses: Vec<(&NodeRef, &Result<EtcdMemberStatus, String>)> = configured
        .iter()
        .zip(answers)
        .filter_map(|(node, answer)| Some((node, answer.etcd_status.as_ref()?)))
        .collect();
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, status) in &statuses {
        if let Ok(status) = status
            && status.leader != 0
        {
            *votes.entry(status.leader).or_default() += 1;
        }
    }
    let leader_id = votes
        .iter()
        .max_by_key(|(_, count)| **count)
        .map(|(id, _)| *id);
    let members: Vec<EtcdMemberHealth> = members
        .iter()
        .map(|member| {
            let own = statuses.iter().find(|(node, status)| {
                matches!(status, Ok(status) if status.member_id == member.id)
                    || node.node_name == member.hostname
                    || node.hostname == member.hostname
            });
            let problem = match own {
                None => Some("no configured control plane carries this member".to_owned()),
                Some((_, Err(error))) => Some(format!("its etcd does not answer: {error}")),
                Some((_, Ok(status))) if status.member_id != member.id => {
                    Some("its node's etcd answers as another member".to_owned())
                }
                Some((_, Ok(status))) if !status.errors.is_empty() => {
                    Some(format!("etcd reports: {}", status.errors.join("; ")))
                }
                Some(_) if member.is_learner => Some("a learner, not yet voting".to_owned()),
                Some(_) => None,
            };
            EtcdMemberHealth {
                id: format!("{:x}", member.id),
                name: member.hostname.clone(),
                learner: member.is_learner,
                leader: Some(member.id) == leader_id,
                healthy: problem.is_none(),
                problem,
            }
        })
        .collect();
    let leader = members
        .iter()
        .find(|member| member.leader)
        .map(|member| member.name.clone());
    EtcdHealth { members, leader }
}

/// The overall status and its reasons.
fn verdict(
    health: &ClusterHealth,
    bootstrapped: bool,
    now: OffsetDateTime,
) -> (HealthStatus, Vec<String>) {
    if !bootstrapped {
        return (
            HealthStatus::NotBootstrapped,
            vec![format!(
                "cluster {} was never bootstrapped: etcd and Kubernetes do not run yet",
                health.cluster
            )],
        );
    }
    let mut reasons = Vec::new();
    let any_talos = health
        .nodes
        .iter()
        .any(|node| node.talos_reachable == Some(true));
    if let Some(error) = &health.kubernetes.error {
        reasons.push(format!("the Kubernetes API does not answer: {error}"));
    }
    if !health.kubernetes.reachable && !any_talos {
        if health.nodes.is_empty() {
            reasons.push("no configured node to ask".to_owned());
        } else {
            reasons.push("no node's Talos API answers".to_owned());
        }
        return (HealthStatus::Unreachable, reasons);
    }
    for node in &health.nodes {
        if let (Some(server), Some(error)) = (&node.server, &node.talos_error) {
            reasons.push(format!("{server}: its Talos API does not answer: {error}"));
        }
    }
    if health.etcd.members.is_empty() {
        reasons.push("no control plane's etcd answers".to_owned());
    } else {
        let voters = health
            .etcd
            .members
            .iter()
            .filter(|member| !member.learner)
            .count();
        let healthy = health.etcd.healthy_members();
        for member in health.etcd.members.iter().filter(|member| !member.healthy) {
            reasons.push(format!(
                "etcd member {} is not healthy: {}",
                member.name,
                member.problem.as_deref().unwrap_or("unknown")
            ));
        }
        if healthy * 2 <= voters {
            reasons.push(format!(
                "etcd has lost its quorum: {healthy} of {voters} members healthy"
            ));
        }
        if health.etcd.leader.is_none() {
            reasons.push("etcd has no leader".to_owned());
        }
    }
    for node in &health.nodes {
        if node.kubernetes_ready == Some(false) {
            reasons.push(format!("node {} is not Ready", node.name));
        }
    }
    for missing in &health.missing {
        reasons.push(match missing.missing_from {
            "etcd" => format!("{} is not an etcd member", missing.server),
            _ => format!("{} is not a Kubernetes node", missing.server),
        });
    }
    for cert in &health.certificates {
        if cert.not_after - now < EXPIRY_WARNING {
            reasons.push(format!(
                "the {} expires at {} (in {} days)",
                cert.description,
                cert.not_after,
                (cert.not_after - now).whole_days()
            ));
        }
    }
    let status = if reasons.is_empty() {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    (status, reasons)
}

/// The bundle's CAs and the client certificates issued now, earliest expiry first.
fn certificates(
    secrets: &SecretsBundle,
    cluster: &str,
    now: OffsetDateTime,
) -> Result<Vec<CertificateExpiry>, ClusterHealthError> {
    let cas = [
        ("os_ca", "Talos API CA", &secrets.os.crt),
        ("kubernetes_ca", "Kubernetes CA", &secrets.k8s.crt),
        ("etcd_ca", "etcd CA", &secrets.etcd.crt),
        (
            "aggregator_ca",
            "Kubernetes aggregator (front-proxy) CA",
            &secrets.k8s_aggregator.crt,
        ),
    ];
    let mut out = Vec::new();
    let mut not_after = BTreeMap::new();
    for (name, description, crt) in cas {
        let expiry = certificate_not_after(crt).ok_or(ClusterHealthError::Certificate {
            cluster: cluster.to_owned(),
            certificate: description,
        })?;
        not_after.insert(name, expiry);
        out.push(CertificateExpiry {
            name,
            description,
            not_after: expiry,
        });
    }
    // A client certificate issued now is valid CLIENT_VALIDITY, but never past its CA.
    let client = now + CLIENT_VALIDITY;
    out.push(CertificateExpiry {
        name: "talosconfig_client",
        description: "talosconfig client certificate (one issued now)",
        not_after: client.min(not_after["os_ca"]),
    });
    out.push(CertificateExpiry {
        name: "kubeconfig_client",
        description: "kubeconfig client certificate (one issued now)",
        not_after: client.min(not_after["kubernetes_ca"]),
    });
    out.sort_by_key(|cert| cert.not_after);
    Ok(out)
}

/// The `notAfter` of a certificate in Talos's base64-of-PEM encoding.
pub fn certificate_not_after(b64: &str) -> Option<OffsetDateTime> {
    let pem_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let block = pem::parse(pem_bytes).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).ok()?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

/// The first 200 characters of an error chain.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// How often the service's loop refreshes every cluster's health for `/metrics`.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Checks clusters' health with the service's settings and keeps each cluster's last result:
/// `GET /clusters/{id}/health` checks one cluster now, the service's loop
/// ([`HealthMonitor::refresh_all`], every [`REFRESH_INTERVAL`]) all of them, and `/metrics`
/// reads the kept results ([`HealthMonitor::latest`]) without asking anything.
pub struct HealthMonitor {
    talos: crate::jobs::TalosSettings,
    kubernetes: ClientTimeouts,
    call_timeout: Duration,
    latest: std::sync::Mutex<BTreeMap<ClusterId, ClusterHealth>>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("talos", &self.talos)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl HealthMonitor {
    /// A monitor reaching nodes as `talos` says; every question bounded by `call_timeout`
    /// (the Kubernetes client's own timeouts are at most that too).
    pub fn new(talos: crate::jobs::TalosSettings, call_timeout: Duration) -> HealthMonitor {
        HealthMonitor {
            talos,
            kubernetes: ClientTimeouts {
                connect: call_timeout.min(Duration::from_secs(3)),
                request: call_timeout,
            },
            call_timeout,
            latest: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Checks one cluster now and keeps the result.
    pub async fn check(
        &self,
        store: &Store,
        cluster_id: ClusterId,
    ) -> Result<ClusterHealth, ClusterHealthError> {
        let probe = HealthProbe {
            store,
            talos: &*self.talos.connector,
            talos_port: self.talos.port,
            kubernetes: self.kubernetes,
            call_timeout: self.call_timeout,
        };
        let health = cluster_health(&probe, cluster_id, OffsetDateTime::now_utc()).await?;
        self.lock().insert(cluster_id, health.clone());
        Ok(health)
    }

    /// Checks every cluster (one after the other), keeps the results and forgets clusters
    /// that no longer exist. A cluster that cannot be checked is logged and keeps its last
    /// result.
    pub async fn refresh_all(&self, store: &Store) -> Result<(), StoreError> {
        let clusters = store.list_clusters().await?;
        self.lock()
            .retain(|id, _| clusters.iter().any(|cluster| cluster.id == *id));
        for cluster in clusters {
            if let Err(error) = self.check(store, cluster.id).await {
                tracing::warn!(cluster = %cluster.name, error = %error_chain(&error), "cluster health check failed");
            }
        }
        Ok(())
    }

    /// The last result of every cluster checked.
    pub fn latest(&self) -> Vec<ClusterHealth> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ClusterId, ClusterHealth>> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
