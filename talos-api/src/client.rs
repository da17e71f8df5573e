//! The gRPC implementations of core's Talos API traits: [`GrpcTalosConnector`] makes
//! [`GrpcTalosApi`] (a cluster's nodes, mutual TLS) and [`GrpcMaintenanceApi`] (nodes in
//! maintenance mode), both over one lazily made, cached tonic channel per node address.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use talos_manager_core::Secret;
use talos_manager_core::image_factory::TalosRelease;
use talos_manager_core::talos_api::{
    ApplyMode, ApplyOutcome, EtcdMember, EtcdMemberStatus, MachineStatus, RebootMode, ResetRequest,
    TalosApi, TalosApiError, TalosConnector, TalosCredentials, TalosMaintenanceApi,
    TalosVersionInfo, UpgradeRequest, WipeMode,
};
use tonic::transport::{Channel, Endpoint};

use crate::cosi;
use crate::error::{empty_answer, invalid, status_error, timed_out};
use crate::kubeconfig::unpack_kubeconfig;
use crate::proto::common::{ContainerDriver, ContainerdInstance, ContainerdNamespace};
use crate::proto::cosi::resource::state_client::StateClient;
use crate::proto::machine::image_service_client::ImageServiceClient;
use crate::proto::machine::image_service_pull_response;
use crate::proto::machine::lifecycle_service_client::LifecycleServiceClient;
use crate::proto::machine::lifecycle_service_install_progress;
use crate::proto::machine::machine_service_client::MachineServiceClient;
use crate::proto::machine::{self as pb};
use crate::tls::{NodeConnector, maintenance_tls_config, mutual_tls_config};

/// The first Talos release with `ImageService.Pull` + `LifecycleService.Upgrade`; older nodes
/// (and 1.13 pre-releases) get the legacy `MachineService.Upgrade`, which 1.13+ still serves.
const LIFECYCLE_UPGRADE_SINCE: &str = "v1.13.0";

/// Timeouts of the Talos API client.
///
/// Every call runs under [`TalosClientOptions::request_timeout`], except the two that wait on
/// the node's work: an upgrade (the image pull and install stream of Talos 1.13+, or the legacy
/// call, which pulls the installer before it answers) and the kubeconfig (Talos mints a
/// certificate), which run under [`TalosClientOptions::long_request_timeout`]. A call that runs
/// out of time is [`TalosApiError::Unreachable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalosClientOptions {
    /// How long to wait for TCP and TLS to a node (5 s).
    pub connect_timeout: Duration,
    /// How long one ordinary call may take, connection included (30 s).
    pub request_timeout: Duration,
    /// How long an upgrade or a kubeconfig download may take (10 min).
    pub long_request_timeout: Duration,
}

impl Default for TalosClientOptions {
    fn default() -> Self {
        TalosClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            long_request_timeout: Duration::from_secs(600),
        }
    }
}

/// Makes Talos API clients over gRPC: [`TalosConnector::cluster`] builds a mutual-TLS client
/// from a cluster's credentials (a new client, with its own connections, per call: keep it for
/// the duration of a job), [`TalosConnector::maintenance`] hands out the one shared client for
/// nodes in maintenance mode.
pub struct GrpcTalosConnector {
    options: TalosClientOptions,
    maintenance: Arc<GrpcMaintenanceApi>,
}

impl fmt::Debug for GrpcTalosConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTalosConnector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for GrpcTalosConnector {
    fn default() -> Self {
        GrpcTalosConnector::new()
    }
}

impl GrpcTalosConnector {
    /// A connector with the default timeouts.
    pub fn new() -> GrpcTalosConnector {
        GrpcTalosConnector::with_options(TalosClientOptions::default())
    }

    /// A connector with these timeouts.
    pub fn with_options(options: TalosClientOptions) -> GrpcTalosConnector {
        GrpcTalosConnector {
            options,
            maintenance: Arc::new(GrpcMaintenanceApi::with_options(options)),
        }
    }
}

impl TalosConnector for GrpcTalosConnector {
    fn cluster(&self, credentials: &TalosCredentials) -> Result<Arc<dyn TalosApi>, TalosApiError> {
        Ok(Arc::new(GrpcTalosApi::new(credentials, self.options)?))
    }

    fn maintenance(&self) -> Arc<dyn TalosMaintenanceApi> {
        self.maintenance.clone()
    }
}

/// One tonic channel per node address, made on first use (connecting lazily: a node that is
/// down costs nothing until it is called) and reused; tonic reconnects a channel whose
/// connection dropped (a node that rebooted) on the next call.
struct Channels {
    tls: Arc<rustls::ClientConfig>,
    options: TalosClientOptions,
    cache: Mutex<HashMap<SocketAddr, Channel>>,
}

impl Channels {
    fn new(tls: Arc<rustls::ClientConfig>, options: TalosClientOptions) -> Channels {
        Channels {
            tls,
            options,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, node: SocketAddr, operation: &'static str) -> Result<Channel, TalosApiError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = cache.get(&node) {
            return Ok(channel.clone());
        }
        // The scheme is https because the connection is TLS (the `:scheme` Talos sees); the TLS
        // is ours (`NodeConnector`): tonic's TLS features must stay off, or tonic would insist
        // on doing TLS for an https URI itself.
        let endpoint = Endpoint::from_shared(format!("https://{node}"))
            .map_err(|error| TalosApiError::Unreachable {
                node,
                operation,
                message: format!("no gRPC endpoint for this address: {error}"),
            })?
            .connect_timeout(self.options.connect_timeout)
            // Notice a node that vanished without closing the connection.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint.connect_with_connector_lazy(NodeConnector {
            node,
            tls: self.tls.clone(),
        });
        cache.insert(node, channel.clone());
        Ok(channel)
    }

    fn machine(
        &self,
        node: SocketAddr,
        operation: &'static str,
    ) -> Result<MachineServiceClient<Channel>, TalosApiError> {
        Ok(MachineServiceClient::new(self.get(node, operation)?))
    }

    fn state(
        &self,
        node: SocketAddr,
        operation: &'static str,
    ) -> Result<StateClient<Channel>, TalosApiError> {
        Ok(StateClient::new(self.get(node, operation)?))
    }
}

/// Runs one call under `timeout`, turning its failure into core's error.
async fn run<T>(
    node: SocketAddr,
    operation: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, TalosApiError> {
    tracing::debug!(%node, operation, "Talos API call");
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(timed_out(node, operation, timeout)),
        Ok(Err(status)) => Err(status_error(node, operation, status)),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// The Talos API of a cluster's configured nodes, as `os:admin` over mutual TLS.
pub struct GrpcTalosApi {
    channels: Channels,
}

impl fmt::Debug for GrpcTalosApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The TLS configuration holds the client key: never print it.
        f.debug_struct("GrpcTalosApi")
            .field("options", &self.channels.options)
            .finish_non_exhaustive()
    }
}

impl GrpcTalosApi {
    /// A client trusting only `credentials.ca_pem` and presenting its client certificate.
    pub fn new(
        credentials: &TalosCredentials,
        options: TalosClientOptions,
    ) -> Result<GrpcTalosApi, TalosApiError> {
        let tls = mutual_tls_config(credentials)
            .map_err(|error| TalosApiError::Credentials(Box::new(error)))?;
        Ok(GrpcTalosApi {
            channels: Channels::new(tls, options),
        })
    }

    fn timeout(&self) -> Duration {
        self.channels.options.request_timeout
    }

    fn long_timeout(&self) -> Duration {
        self.channels.options.long_request_timeout
    }

    /// The legacy unary `MachineService.Upgrade`: pulls, checks etcd, installs and reboots.
    async fn legacy_upgrade(
        &self,
        node: SocketAddr,
        request: &UpgradeRequest,
    ) -> Result<(), TalosApiError> {
        const OPERATION: &str = "upgrade";
        let mut client = self.channels.machine(node, OPERATION)?;
        let message = pb::UpgradeRequest {
            image: request.image.clone(),
            // `preserve` would silently skip Talos's etcd safety checks.
            preserve: false,
            stage: request.stage,
            force: request.force,
            reboot_mode: match request.reboot_mode {
                RebootMode::Default => pb::upgrade_request::RebootMode::Default,
                RebootMode::Powercycle => pb::upgrade_request::RebootMode::Powercycle,
            } as i32,
        };
        let response = run(node, OPERATION, self.long_timeout(), async move {
            client.upgrade(message).await
        })
        .await?;
        first(node, OPERATION, response.into_inner().messages)?;
        Ok(())
    }

    /// Talos 1.13+: `ImageService.Pull`, then `LifecycleService.Upgrade` (whose failure is a
    /// non-zero exit code in the stream), then a reboot into the new version.
    async fn lifecycle_upgrade(
        &self,
        node: SocketAddr,
        request: &UpgradeRequest,
    ) -> Result<(), TalosApiError> {
        // talosctl uses the CRI driver in the system namespace for both calls.
        let containerd = ContainerdInstance {
            driver: ContainerDriver::Cri as i32,
            namespace: ContainerdNamespace::NsSystem as i32,
        };

        const PULL: &str = "upgrade (image pull)";
        let mut images = ImageServiceClient::new(self.channels.get(node, PULL)?);
        let pull = crate::proto::machine::ImageServicePullRequest {
            containerd: Some(containerd),
            image_ref: request.image.clone(),
        };
        let pulled = run(node, PULL, self.long_timeout(), async move {
            let mut stream = images.pull(pull).await?.into_inner();
            let mut name = None;
            while let Some(message) = stream.message().await? {
                if let Some(image_service_pull_response::Response::Name(pulled)) = message.response
                {
                    name = Some(pulled);
                }
            }
            Ok(name)
        })
        .await?;
        let image_name = pulled
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| request.image.clone());

        const INSTALL: &str = "upgrade (install)";
        let mut lifecycle = LifecycleServiceClient::new(self.channels.get(node, INSTALL)?);
        let install = crate::proto::machine::LifecycleServiceUpgradeRequest {
            containerd: Some(containerd),
            source: Some(crate::proto::machine::InstallArtifactsSource { image_name }),
        };
        let (exit_code, last_message) = run(node, INSTALL, self.long_timeout(), async move {
            let mut stream = lifecycle.upgrade(install).await?.into_inner();
            let mut exit_code = None;
            let mut last_message = String::new();
            while let Some(message) = stream.message().await? {
                match message.progress.and_then(|progress| progress.response) {
                    Some(lifecycle_service_install_progress::Response::Message(text)) => {
                        last_message = text;
                    }
                    Some(lifecycle_service_install_progress::Response::ExitCode(code)) => {
                        exit_code = Some(code);
                    }
                    None => {}
                }
            }
            Ok((exit_code, last_message))
        })
        .await?;
        match exit_code {
            Some(0) => {}
            Some(exit_code) => {
                return Err(TalosApiError::InstallFailed {
                    node,
                    exit_code,
                    message: last_message,
                });
            }
            None => {
                return Err(invalid(
                    node,
                    INSTALL,
                    "the install stream ended without an exit code",
                ));
            }
        }
        // The new version is on disk; it runs after a reboot.
        self.reboot(node, request.reboot_mode).await
    }
}

/// The first (on a direct call, the only) message of a Talos answer's envelope, failing with
/// the error a proxying endpoint put in its metadata.
fn first<M: Enveloped>(
    node: SocketAddr,
    operation: &'static str,
    messages: Vec<M>,
) -> Result<M, TalosApiError> {
    let message = messages
        .into_iter()
        .next()
        .ok_or_else(|| empty_answer(node, operation))?;
    if let Some(metadata) = message.metadata()
        && (!metadata.error.is_empty() || metadata.status.is_some())
    {
        let code = metadata.status.as_ref().map_or(2, |status| status.code);
        let text = match &metadata.status {
            Some(status) if !status.message.is_empty() => status.message.clone(),
            _ => metadata.error.clone(),
        };
        return Err(status_error(
            node,
            operation,
            tonic::Status::new(tonic::Code::from_i32(code), text),
        ));
    }
    Ok(message)
}

/// A message of Talos's `repeated X messages = 1` envelope (each begins with metadata).
trait Enveloped {
    fn metadata(&self) -> Option<&crate::proto::common::Metadata>;
}

macro_rules! enveloped {
    ($($message:ty),* $(,)?) => {
        $(impl Enveloped for $message {
            fn metadata(&self) -> Option<&crate::proto::common::Metadata> {
                self.metadata.as_ref()
            }
        })*
    };
}

enveloped!(
    pb::Bootstrap,
    pb::Version,
    pb::ApplyConfiguration,
    pb::Reset,
    pb::Reboot,
    pb::Upgrade,
    pb::EtcdForfeitLeadership,
    pb::EtcdMembers,
    pb::EtcdRemoveMemberById,
    pb::EtcdStatus,
);

fn apply_request(config: &Secret<String>, mode: ApplyMode) -> pb::ApplyConfigurationRequest {
    use pb::apply_configuration_request::Mode;
    pb::ApplyConfigurationRequest {
        data: config.expose().as_bytes().to_vec(),
        // Always explicit: the protocol's default (0) is the deprecated REBOOT.
        mode: match mode {
            ApplyMode::Auto => Mode::Auto,
            ApplyMode::NoReboot => Mode::NoReboot,
            ApplyMode::Staged => Mode::Staged,
            ApplyMode::Try => Mode::Try,
        } as i32,
        dry_run: false,
    }
}

async fn apply_configuration(
    channels: &Channels,
    node: SocketAddr,
    config: &Secret<String>,
    mode: ApplyMode,
) -> Result<ApplyOutcome, TalosApiError> {
    const OPERATION: &str = "apply configuration";
    let mut client = channels.machine(node, OPERATION)?;
    let request = apply_request(config, mode);
    let response = run(
        node,
        OPERATION,
        channels.options.request_timeout,
        async move { client.apply_configuration(request).await },
    )
    .await?;
    let applied = first(node, OPERATION, response.into_inner().messages)?;
    Ok(ApplyOutcome {
        mode_details: applied.mode_details,
        warnings: applied.warnings,
    })
}

async fn machine_status(
    channels: &Channels,
    node: SocketAddr,
) -> Result<MachineStatus, TalosApiError> {
    const OPERATION: &str = "machine status";
    let yaml = cosi_get(channels, node, OPERATION, cosi::MACHINE_STATUS).await?;
    cosi::machine_status(&yaml).map_err(|message| invalid(node, OPERATION, &message))
}

/// `State.Get` of one resource: its YAML spec.
async fn cosi_get(
    channels: &Channels,
    node: SocketAddr,
    operation: &'static str,
    resource: cosi::ResourceRef,
) -> Result<String, TalosApiError> {
    let mut client = channels.state(node, operation)?;
    let request = crate::proto::cosi::resource::GetRequest {
        namespace: resource.namespace.to_owned(),
        r#type: resource.r#type.to_owned(),
        id: resource.id.to_owned(),
        options: None,
    };
    let response = run(
        node,
        operation,
        channels.options.request_timeout,
        async move { client.get(request).await },
    )
    .await?;
    response
        .into_inner()
        .resource
        .and_then(|resource| resource.spec)
        .map(|spec| spec.yaml_spec)
        .ok_or_else(|| invalid(node, operation, "the resource has no spec"))
}

#[async_trait::async_trait]
impl TalosApi for GrpcTalosApi {
    async fn version(&self, node: SocketAddr) -> Result<TalosVersionInfo, TalosApiError> {
        const OPERATION: &str = "version";
        let mut client = self.channels.machine(node, OPERATION)?;
        let response = run(node, OPERATION, self.timeout(), async move {
            client.version(()).await
        })
        .await?;
        let version = first(node, OPERATION, response.into_inner().messages)?;
        let info = version
            .version
            .ok_or_else(|| invalid(node, OPERATION, "the answer has no version"))?;
        Ok(TalosVersionInfo {
            tag: info.tag,
            arch: info.arch,
            platform: version.platform.map(|p| p.name).unwrap_or_default(),
        })
    }

    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError> {
        machine_status(&self.channels, node).await
    }

    async fn node_name(&self, node: SocketAddr) -> Result<String, TalosApiError> {
        const OPERATION: &str = "node name";
        let yaml = cosi_get(&self.channels, node, OPERATION, cosi::NODENAME).await?;
        cosi::node_name(&yaml).map_err(|message| invalid(node, OPERATION, &message))
    }

    async fn bootstrap(&self, node: SocketAddr) -> Result<(), TalosApiError> {
        const OPERATION: &str = "bootstrap";
        let mut client = self.channels.machine(node, OPERATION)?;
        let request = pb::BootstrapRequest {
            recover_etcd: false,
            recover_skip_hash_check: false,
        };
        let response = run(node, OPERATION, self.timeout(), async move {
            client.bootstrap(request).await
        })
        .await?;
        first(node, OPERATION, response.into_inner().messages)?;
        Ok(())
    }

    async fn etcd_members(&self, node: SocketAddr) -> Result<Vec<EtcdMember>, TalosApiError> {
        const OPERATION: &str = "etcd member list";
        let mut client = self.channels.machine(node, OPERATION)?;
        // Every member, as the node's own etcd lists them: the call fails when etcd does not
        // run on that node, so an answer also says its member is up (lifecycle operations
        // check each control plane's etcd this way before they take one down).
        let request = pb::EtcdMemberListRequest { query_local: true };
        let response = run(node, OPERATION, self.timeout(), async move {
            client.etcd_member_list(request).await
        })
        .await?;
        let members = first(node, OPERATION, response.into_inner().messages)?;
        Ok(members
            .members
            .into_iter()
            .map(|member| EtcdMember {
                id: member.id,
                hostname: member.hostname,
                is_learner: member.is_learner,
            })
            .collect())
    }

    async fn etcd_status(&self, node: SocketAddr) -> Result<EtcdMemberStatus, TalosApiError> {
        const OPERATION: &str = "etcd status";
        let mut client = self.channels.machine(node, OPERATION)?;
        let response = run(node, OPERATION, self.timeout(), async move {
            client.etcd_status(()).await
        })
        .await?;
        let status = first(node, OPERATION, response.into_inner().messages)?;
        let member = status
            .member_status
            .ok_or_else(|| invalid(node, OPERATION, "no member status in the answer"))?;
        Ok(EtcdMemberStatus {
            member_id: member.member_id,
            leader: member.leader,
            is_learner: member.is_learner,
            errors: member.errors,
            db_size: member.db_size,
        })
    }

    async fn etcd_forfeit_leadership(
        &self,
        node: SocketAddr,
    ) -> Result<Option<String>, TalosApiError> {
        const OPERATION: &str = "etcd forfeit leadership";
        let mut client = self.channels.machine(node, OPERATION)?;
        let response = run(node, OPERATION, self.timeout(), async move {
            client
                .etcd_forfeit_leadership(pb::EtcdForfeitLeadershipRequest {})
                .await
        })
        .await?;
        let forfeit = first(node, OPERATION, response.into_inner().messages)?;
        Ok(Some(forfeit.member).filter(|member| !member.is_empty()))
    }

    async fn etcd_remove_member(
        &self,
        node: SocketAddr,
        member_id: u64,
    ) -> Result<(), TalosApiError> {
        const OPERATION: &str = "etcd remove member";
        let mut client = self.channels.machine(node, OPERATION)?;
        let response = run(node, OPERATION, self.timeout(), async move {
            client
                .etcd_remove_member_by_id(pb::EtcdRemoveMemberByIdRequest { member_id })
                .await
        })
        .await?;
        first(node, OPERATION, response.into_inner().messages)?;
        Ok(())
    }

    async fn reset(&self, node: SocketAddr, request: &ResetRequest) -> Result<(), TalosApiError> {
        const OPERATION: &str = "reset";
        let mut client = self.channels.machine(node, OPERATION)?;
        let message = pb::ResetRequest {
            graceful: request.graceful,
            reboot: request.reboot,
            system_partitions_to_wipe: request
                .wipe_partitions
                .iter()
                .map(|label| pb::ResetPartitionSpec {
                    label: label.clone(),
                    // Without it, Talos accepts the partition and wipes nothing.
                    wipe: true,
                })
                .collect(),
            user_disks_to_wipe: request.user_disks.clone(),
            mode: match request.mode {
                WipeMode::All => pb::reset_request::WipeMode::All,
                WipeMode::SystemDisk => pb::reset_request::WipeMode::SystemDisk,
                WipeMode::UserDisks => pb::reset_request::WipeMode::UserDisks,
            } as i32,
        };
        let response = run(node, OPERATION, self.timeout(), async move {
            client.reset(message).await
        })
        .await?;
        first(node, OPERATION, response.into_inner().messages)?;
        Ok(())
    }

    async fn reboot(&self, node: SocketAddr, mode: RebootMode) -> Result<(), TalosApiError> {
        const OPERATION: &str = "reboot";
        let mut client = self.channels.machine(node, OPERATION)?;
        let message = pb::RebootRequest {
            mode: match mode {
                RebootMode::Default => pb::reboot_request::Mode::Default,
                RebootMode::Powercycle => pb::reboot_request::Mode::Powercycle,
            } as i32,
        };
        let response = run(node, OPERATION, self.timeout(), async move {
            client.reboot(message).await
        })
        .await?;
        first(node, OPERATION, response.into_inner().messages)?;
        Ok(())
    }

    async fn upgrade(
        &self,
        node: SocketAddr,
        request: &UpgradeRequest,
    ) -> Result<(), TalosApiError> {
        let running = self.version(node).await?;
        let version = TalosRelease::from_str(&running.tag).map_err(|_| {
            invalid(
                node,
                "upgrade",
                &format!("the node runs Talos {:?}, not a version", running.tag),
            )
        })?;
        let since = TalosRelease::from_str(LIFECYCLE_UPGRADE_SINCE)
            .map_err(|_| invalid(node, "upgrade", "bad built-in version"))?;
        if version >= since {
            self.lifecycle_upgrade(node, request).await
        } else {
            self.legacy_upgrade(node, request).await
        }
    }

    async fn kubeconfig(&self, node: SocketAddr) -> Result<Secret<String>, TalosApiError> {
        const OPERATION: &str = "kubeconfig";
        let mut client = self.channels.machine(node, OPERATION)?;
        let archive = run(node, OPERATION, self.long_timeout(), async move {
            let mut stream = client.kubeconfig(()).await?.into_inner();
            let mut archive = Vec::new();
            while let Some(chunk) = stream.message().await? {
                archive.extend_from_slice(&chunk.bytes);
            }
            Ok(archive)
        })
        .await?;
        unpack_kubeconfig(&archive)
            .map(Secret::new)
            .map_err(|message| invalid(node, OPERATION, &message))
    }

    async fn apply_configuration(
        &self,
        node: SocketAddr,
        config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError> {
        apply_configuration(&self.channels, node, config, mode).await
    }
}

/// The Talos API of nodes in maintenance mode: TLS without verification (the node's
/// certificate comes from a per-boot CA), no client certificate.
pub struct GrpcMaintenanceApi {
    channels: Channels,
}

impl fmt::Debug for GrpcMaintenanceApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcMaintenanceApi")
            .field("options", &self.channels.options)
            .finish_non_exhaustive()
    }
}

impl GrpcMaintenanceApi {
    /// A maintenance-mode client with these timeouts.
    pub fn with_options(options: TalosClientOptions) -> GrpcMaintenanceApi {
        GrpcMaintenanceApi {
            channels: Channels::new(maintenance_tls_config(), options),
        }
    }
}

#[async_trait::async_trait]
impl TalosMaintenanceApi for GrpcMaintenanceApi {
    async fn apply_configuration(
        &self,
        node: SocketAddr,
        config: &Secret<String>,
        mode: ApplyMode,
    ) -> Result<ApplyOutcome, TalosApiError> {
        apply_configuration(&self.channels, node, config, mode).await
    }

    async fn machine_status(&self, node: SocketAddr) -> Result<MachineStatus, TalosApiError> {
        machine_status(&self.channels, node).await
    }
}
