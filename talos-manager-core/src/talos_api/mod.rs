//! The Talos machine API: what talos-manager asks of a running node (gRPC on port 50000,
//! mutual TLS with a client certificate signed by the cluster's Talos API CA) and of a node in
//! maintenance mode (TLS without verification, no client certificate).
//!
//! This module is the contract only: the [`TalosApi`] and [`TalosMaintenanceApi`] traits, their
//! plain-data requests and answers, [`TalosApiError`], and [`TalosCredentials`] issued from a
//! cluster's secrets bundle. The gRPC client lives in the `talos-manager-talos-api` crate
//! (core knows nothing about tonic); tests use an in-memory fake or the fake Talos API server.
//!
//! Every call names the node it is for by its socket address (`203.0.113.7:50000`): talos-manager
//! connects to each node directly, without proxying through an endpoint.
//!
//! ```no_run
//! # async fn demo(api: &dyn talos_manager_core::talos_api::TalosApi) -> Result<(), talos_manager_core::talos_api::TalosApiError> {
//! let node = "203.0.113.7:50000".parse().unwrap();
//! let version = api.version(node).await?;
//! println!("{} runs Talos {}", node, version.tag);
//! for member in api.etcd_members(node).await? {
//!     println!("etcd member {:x} on {}", member.id, member.hostname);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use crate::Secret;
use crate::random::RandomSource;
use crate::talos::{ClientConfigError, SecretsBundle};

/// The port Talos's apid listens on.
pub const DEFAULT_PORT: u16 = 50000;

/// What `Version` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalosVersionInfo {
    /// The release tag, `v1.10.4`.
    pub tag: String,
    /// The architecture, `amd64` or `arm64`.
    pub arch: String,
    /// The platform name, `metal`.
    pub platform: String,
}

/// Where a node is in its life (`MachineStatuses.runtime.talos.dev`'s `stage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineStage {
    /// Not known yet.
    Unknown,
    /// Starting up.
    Booting,
    /// Writing itself to disk.
    Installing,
    /// Up without a machine config, waiting for one.
    Maintenance,
    /// Up with its config.
    Running,
    /// Going down to come back.
    Rebooting,
    /// Going down for good.
    ShuttingDown,
    /// Wiping itself.
    Resetting,
    /// Installing a new version.
    Upgrading,
    /// A stage this client does not know, as Talos spells it.
    Other(String),
}

impl MachineStage {
    /// The stage as Talos prints it (`running`, `shutting down`, …).
    pub fn parse(text: &str) -> MachineStage {
        match text {
            "unknown" => MachineStage::Unknown,
            "booting" => MachineStage::Booting,
            "installing" => MachineStage::Installing,
            "maintenance" => MachineStage::Maintenance,
            "running" => MachineStage::Running,
            "rebooting" => MachineStage::Rebooting,
            "shutting down" => MachineStage::ShuttingDown,
            "resetting" => MachineStage::Resetting,
            "upgrading" => MachineStage::Upgrading,
            other => MachineStage::Other(other.to_owned()),
        }
    }

    /// The stage as Talos spells it.
    pub fn as_str(&self) -> &str {
        match self {
            MachineStage::Unknown => "unknown",
            MachineStage::Booting => "booting",
            MachineStage::Installing => "installing",
            MachineStage::Maintenance => "maintenance",
            MachineStage::Running => "running",
            MachineStage::Rebooting => "rebooting",
            MachineStage::ShuttingDown => "shutting down",
            MachineStage::Resetting => "resetting",
            MachineStage::Upgrading => "upgrading",
            MachineStage::Other(other) => other,
        }
    }
}

impl fmt::Display for MachineStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's machine status (`MachineStatuses.runtime.talos.dev/machine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineStatus {
    /// Its stage.
    pub stage: MachineStage,
    /// Whether every readiness condition holds.
    pub ready: bool,
    /// The conditions that do not hold yet, as `name: reason`.
    pub unmet_conditions: Vec<String>,
}

/// One etcd member, as a control plane lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// The member id.
    pub id: u64,
    /// The hostname of the node it runs on.
    pub hostname: String,
    /// Whether it is a learner (not yet voting).
    pub is_learner: bool,
}

/// The status of the etcd member on one control plane (`MachineService.EtcdStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberStatus {
    /// This node's member id.
    pub member_id: u64,
    /// The member id of the leader this member sees (`0`: none).
    pub leader: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
    /// The errors etcd reports for this member (an alarm, no leader, …); empty when healthy.
    pub errors: Vec<String>,
    /// The database size in bytes.
    pub db_size: i64,
}

/// Which disks a reset wipes (`ResetRequest.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeMode {
    /// The system disk and the user disks named.
    All,
    /// Only the system disk.
    SystemDisk,
    /// Only the user disks named.
    UserDisks,
}

/// A reset, as the API takes it.
///
/// Mind the traps: an empty [`ResetRequest::wipe_partitions`] with [`WipeMode::All`] or
/// [`WipeMode::SystemDisk`] wipes the whole system disk (the node will not boot Talos again);
/// a graceful reset of the last etcd member fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    /// Cordon and drain the node and leave etcd first.
    pub graceful: bool,
    /// Reboot when done (otherwise the node powers off).
    pub reboot: bool,
    /// Volume labels to wipe (`STATE`, `EPHEMERAL`); empty wipes the whole system disk.
    pub wipe_partitions: Vec<String>,
    /// Which disks.
    pub mode: WipeMode,
    /// User disks (`/dev/sdb`) to wipe too.
    pub user_disks: Vec<String>,
}

/// How a node reboots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMode {
    /// As Talos likes (kexec when it can).
    Default,
    /// A full firmware reboot, no kexec.
    Powercycle,
}

/// An upgrade to the installer image `image`.
///
/// The client picks the call the node understands: `LifecycleService.Upgrade` after an
/// `ImageService.Pull` on Talos 1.13 and later (which neither drains nor reboots: the client then
/// reboots the node), the legacy `MachineService.Upgrade` before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The installer image, `factory.talos.dev/metal-installer/<schematic>:v1.10.4`.
    pub image: String,
    /// Stage the upgrade and apply it at the next boot.
    pub stage: bool,
    /// Skip Talos's etcd health checks (legacy call only). Never set by talos-manager's rolling
    /// upgrade: it checks etcd itself.
    pub force: bool,
    /// How the node reboots into the new version.
    pub reboot_mode: RebootMode,
}

/// How an applied machine config takes effect (`ApplyConfigurationRequest.mode`).
///
/// There is deliberately no `Reboot`: it is the protocol's default and deprecated; talos-manager
/// always sends a mode explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Apply without a reboot when possible, with one otherwise.
    Auto,
    /// Apply without a reboot, or fail.
    NoReboot,
    /// Apply at the next reboot.
    Staged,
    /// Apply for a while, then roll back unless confirmed.
    Try,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// How it was applied, as the node describes it.
    pub mode_details: String,
    /// Warnings about the config.
    pub warnings: Vec<String>,
}

/// A gRPC status code the node answered with, the ones that change what talos-manager does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalosStatusCode {
    /// The thing asked about does not exist.
    NotFound,
    /// Our certificate lacks the role (or the node is in maintenance mode).
    PermissionDenied,
    /// No or a bad client certificate.
    Unauthenticated,
    /// The node does not offer the call (old version, or maintenance mode).
    Unimplemented,
    /// The node is not in a state to do it (another operation runs, not installed, …).
    FailedPrecondition,
    /// The request is wrong (a config that does not validate, a bad image reference).
    InvalidArgument,
    /// The node is going down or not ready to answer.
    Unavailable,
    /// What was asked to be made exists already (Bootstrap: etcd's data directory is not
    /// empty, the node was bootstrapped).
    AlreadyExists,
    /// The call took too long.
    DeadlineExceeded,
    /// Any other code, by its number.
    Other(i32),
}

impl fmt::Display for TalosStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TalosStatusCode::NotFound => f.write_str("not found"),
            TalosStatusCode::PermissionDenied => f.write_str("permission denied"),
            TalosStatusCode::Unauthenticated => f.write_str("unauthenticated"),
            TalosStatusCode::Unimplemented => f.write_str("unimplemented"),
            TalosStatusCode::FailedPrecondition => f.write_str("failed precondition"),
            TalosStatusCode::InvalidArgument => f.write_str("invalid argument"),
            TalosStatusCode::Unavailable => f.write_str("unavailable"),
            TalosStatusCode::AlreadyExists => f.write_str("already exists"),
            TalosStatusCode::DeadlineExceeded => f.write_str("deadline exceeded"),
            TalosStatusCode::Other(code) => write!(f, "gRPC status {code}"),
        }
    }
}

/// What went wrong talking to a node's Talos API.
#[derive(Debug, thiserror::Error)]
pub enum TalosApiError {
    /// The client certificate could not be issued or loaded.
    #[error("failed to set up the Talos API client credentials")]
    Credentials(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No answer: connection refused, TLS handshake failed, timeout, connection dropped.
    #[error("the Talos API of {node} is unreachable ({operation}): {message}")]
    Unreachable {
        /// The node.
        node: SocketAddr,
        /// The call (`version`, `reset`, …).
        operation: &'static str,
        /// What the transport said.
        message: String,
    },
    /// The node answered with an error status.
    #[error("the Talos API of {node} answered {code} to {operation}: {message}")]
    Status {
        /// The node.
        node: SocketAddr,
        /// The call.
        operation: &'static str,
        /// The status code.
        code: TalosStatusCode,
        /// The node's message.
        message: String,
    },
    /// An upgrade's install step ended with a non-zero exit code (Talos 1.13+ reports it in the
    /// stream, not as an error status).
    #[error("the upgrade of {node} failed with exit code {exit_code}: {message}")]
    InstallFailed {
        /// The node.
        node: SocketAddr,
        /// The installer's exit code.
        exit_code: i32,
        /// The installer's last message.
        message: String,
    },
    /// An answer that is not what the call returns.
    #[error("the Talos API of {node} sent an unreadable answer to {operation}: {message}")]
    InvalidResponse {
        /// The node.
        node: SocketAddr,
        /// The call.
        operation: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl TalosApiError {
    /// Whether trying again later may help: the node is unreachable, going down or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            TalosApiError::Unreachable { .. } => true,
            TalosApiError::Status { code, .. } => matches!(
                code,
                TalosStatusCode::Unavailable | TalosStatusCode::DeadlineExceeded
            ),
            _ => false,
        }
    }

    /// The status code, when the node answered with one.
    pub fn status_code(&self) -> Option<TalosStatusCode> {
        match self {
            TalosApiError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The calls talos-manager makes to a configured node, authenticated as `os:admin`.
///
/// Reset, reboot and upgrade return as soon as the node accepted them; the work goes on on the
/// node, which drops the connection when it goes down. Poll [`TalosApi::machine_status`] and
/// [`TalosApi::version`] to see it come back.
#[async_trait::async_trait]
pub trait TalosApi: Send + Sync {
    /// `MachineService.Bootstrap` on a control plane: starts etcd as a new cluster with this
    /// node its one member. Talos answers `FailedPrecondition` or `Unavailable` while the node
    /// is not ready for it (time not in sync, services starting) and `AlreadyExists` once its
    /// etcd has data (it was bootstrapped). Calling it on a second control plane of a cluster
    /// that runs would split etcd in two: see `crate::lifecycle::cluster_bootstrap`.
    async fn bootstrap(&self, node: SocketAddr) -> Result<(), TalosApiError>;

    /// `MachineService.Version`.
    async fn version(&self, node: SocketAddr) -> Result<TalosVersionInfo, TalosApiError>;

    /// The node's machine status (COSI `MachineStatuses.runtime.talos.dev/machine`).
    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError>;

    /// The node's Kubernetes node name (COSI `Nodenames.kubernetes.talos.dev/nodename`).
    async fn node_name(&self, node: SocketAddr) -> Result<String, TalosApiError>;

    /// `MachineService.EtcdMemberList` on a control plane.
    async fn etcd_members(&self, node: SocketAddr) -> Result<Vec<EtcdMember>, TalosApiError>;

    /// `MachineService.EtcdStatus` on a control plane: its local etcd member's status (its
    /// member id, the leader it sees, its errors). Fails when etcd does not run there.
    async fn etcd_status(&self, node: SocketAddr) -> Result<EtcdMemberStatus, TalosApiError>;

    /// `MachineService.EtcdForfeitLeadership` on a control plane: the id of the new leader when
    /// this node was the leader, `None` otherwise.
    async fn etcd_forfeit_leadership(
        &self,
        node: SocketAddr,
    ) -> Result<Option<String>, TalosApiError>;

    /// `MachineService.EtcdRemoveMemberByID`, sent to a healthy control plane.
    async fn etcd_remove_member(
        &self,
        node: SocketAddr,
        member_id: u64,
    ) -> Result<(), TalosApiError>;

    /// `MachineService.Reset`.
    async fn reset(&self, node: SocketAddr, request: &ResetRequest) -> Result<(), TalosApiError>;

    /// `MachineService.Reboot`.
    async fn reboot(&self, node: SocketAddr, mode: RebootMode) -> Result<(), TalosApiError>;

    /// An upgrade to `request.image`; on Talos 1.13 and later the client reboots the node after
    /// the install succeeded, so both paths end in the same place.
    async fn upgrade(
        &self,
        node: SocketAddr,
        request: &UpgradeRequest,
    ) -> Result<(), TalosApiError>;

    /// `MachineService.Kubeconfig` on a control plane: an admin kubeconfig.
    async fn kubeconfig(&self, node: SocketAddr) -> Result<Secret<String>, TalosApiError>;

    /// `MachineService.ApplyConfiguration` on a configured node.
    async fn apply_configuration(
        &self,
        node: SocketAddr,
        config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError>;
}

/// The calls a node in maintenance mode (booted, no machine config yet) answers over TLS without
/// a client certificate. Its certificate comes from a per-boot CA, so it is not verified.
#[async_trait::async_trait]
pub trait TalosMaintenanceApi: Send + Sync {
    /// `MachineService.ApplyConfiguration`: hands the node its config; it installs (if needed)
    /// and reboots into normal mode.
    async fn apply_configuration(
        &self,
        node: SocketAddr,
        config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError>;

    /// The node's machine status (a COSI read the reader role may make).
    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError>;
}

/// Makes Talos API clients: one per cluster (mutual TLS with that cluster's credentials), and
/// the maintenance-mode client.
pub trait TalosConnector: Send + Sync {
    /// A client for the nodes of a cluster.
    fn cluster(&self, credentials: &TalosCredentials) -> Result<Arc<dyn TalosApi>, TalosApiError>;

    /// A client for nodes in maintenance mode.
    fn maintenance(&self) -> Arc<dyn TalosMaintenanceApi>;
}

/// How long a client certificate issued for one job is valid: a rolling upgrade of a large
/// cluster takes hours.
pub const CREDENTIALS_VALIDITY: time::Duration = time::Duration::hours(24);

/// A client identity for a cluster's Talos API: the cluster's Talos API CA to verify nodes, and
/// an `os:admin` client certificate with its key, as PEM text ready for a TLS library.
#[derive(Clone)]
pub struct TalosCredentials {
    /// The Talos API CA certificate (PEM): the only trust root for the nodes' certificates.
    pub ca_pem: String,
    /// The client certificate (PEM).
    pub cert_pem: String,
    /// The client key (PEM, labelled `PRIVATE KEY`: Talos's `ED25519 PRIVATE KEY` label is
    /// unknown to rustls, the DER inside is standard PKCS#8).
    pub key_pem: Secret<String>,
}

impl fmt::Debug for TalosCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TalosCredentials")
            .field("ca_pem", &"<certificate>")
            .field("cert_pem", &"<certificate>")
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

impl TalosCredentials {
    /// Issues an `os:admin` client certificate from the bundle's Talos API CA (Ed25519 like the
    /// CA, extended key usage exactly `clientAuth`, valid from
    /// [`crate::talos::CLIENT_CERT_BACKDATE`] before `now`, so that a node whose clock is
    /// behind accepts it, for [`CREDENTIALS_VALIDITY`]).
    pub fn for_cluster(
        secrets: &SecretsBundle,
        now: OffsetDateTime,
        rng: &mut dyn RandomSource,
    ) -> Result<TalosCredentials, ClientConfigError> {
        let client = crate::talos::os_admin_client_certificate(
            secrets,
            now - crate::talos::CLIENT_CERT_BACKDATE,
            now + CREDENTIALS_VALIDITY,
            rng,
        )?;
        Ok(TalosCredentials {
            ca_pem: pem_text(&secrets.os.crt),
            cert_pem: pem_text(&client.crt),
            key_pem: Secret::new(relabel_private_key(&pem_text(&client.key))),
        })
    }
}

/// The PEM text inside Talos's base64-of-PEM encoding (empty when it is not).
fn pem_text(b64: &str) -> String {
    STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// Talos's `ED25519 PRIVATE KEY` PEM label as the standard `PRIVATE KEY` (same PKCS#8 DER).
fn relabel_private_key(pem: &str) -> String {
    pem.replace("BEGIN ED25519 PRIVATE KEY", "BEGIN PRIVATE KEY")
        .replace("END ED25519 PRIVATE KEY", "END PRIVATE KEY")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SystemRandom;

    #[test]
    fn credentials_are_an_os_admin_client_certificate_signed_by_the_os_ca() {
        let now = OffsetDateTime::now_utc();
        let secrets = SecretsBundle::generate(now, &mut SystemRandom).unwrap();
        let credentials = TalosCredentials::for_cluster(&secrets, now, &mut SystemRandom).unwrap();
        assert!(
            credentials
                .ca_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(
            credentials
                .key_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let der = pem::parse(&credentials.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.contents()).unwrap();
        let organizations: Vec<_> = cert
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .collect();
        assert_eq!(organizations, ["os:admin"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // A node whose clock is a minute (or a little more) behind ours accepts it.
        let not_before = cert.validity().not_before.timestamp();
        assert_eq!(
            not_before,
            (now - time::Duration::minutes(5)).unix_timestamp()
        );
        let ca = pem::parse(&credentials.ca_pem).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(ca.contents()).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        assert!(format!("{credentials:?}").contains("<redacted>"));
    }
}
