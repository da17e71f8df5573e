//! The gRPC services of one fake node, for one connection (which knows whether it was made in
//! maintenance mode and what role its client certificate grants).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use talos_manager_talos_api::proto::common::{ContainerDriver, ContainerdNamespace, Data};
use talos_manager_talos_api::proto::cosi::resource::state_server::{State, StateServer};
use talos_manager_talos_api::proto::cosi::resource::{
    GetRequest, GetResponse, ListRequest, ListResponse, Metadata, Resource, Spec,
};
use talos_manager_talos_api::proto::machine::apply_configuration_request::Mode as ApplyMode;
use talos_manager_talos_api::proto::machine::image_service_server::{
    ImageService, ImageServiceServer,
};
use talos_manager_talos_api::proto::machine::lifecycle_service_server::{
    LifecycleService, LifecycleServiceServer,
};
use talos_manager_talos_api::proto::machine::machine_service_server::{
    MachineService, MachineServiceServer,
};
use talos_manager_talos_api::proto::machine::{self as pb};
use tokio::net::TcpStream;
use tonic::codegen::tokio_stream;
use tonic::{Request, Response, Status};

use crate::kubeconfig::unfinished_archive;
use crate::tls::{Role, role_of};
use crate::{Comeback, MachineType, RecordedCall, Shared};

type Stream<T> = tokio_stream::Iter<std::vec::IntoIter<Result<T, Status>>>;

fn stream<T>(items: Vec<T>) -> Stream<T> {
    tokio_stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>())
}

/// Runs the TLS handshake and serves HTTP/2 gRPC on one connection until it closes or the
/// node's server task is aborted.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    address: Ipv4Addr,
    maintenance: bool,
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) {
    let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
        return;
    };
    let role = if maintenance {
        // Anyone reaching a node in maintenance mode gets the reader role.
        Some(Role::Reader)
    } else {
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(role_of)
    };
    let api = NodeApi {
        shared,
        address,
        maintenance,
        role,
    };
    let routes = tonic::service::Routes::new(MachineServiceServer::new(api.clone()))
        .add_service(ImageServiceServer::new(api.clone()))
        .add_service(LifecycleServiceServer::new(api.clone()))
        .add_service(StateServer::new(api));
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(routes))
        .await;
}

#[derive(Clone)]
struct NodeApi {
    shared: Arc<Shared>,
    address: Ipv4Addr,
    maintenance: bool,
    role: Option<Role>,
}

/// Who may call a method, and whether a node in maintenance mode offers it.
struct Rule {
    role: Role,
    in_maintenance: bool,
}

const ADMIN: Rule = Rule {
    role: Role::Admin,
    in_maintenance: false,
};
const OPERATOR: Rule = Rule {
    role: Role::Operator,
    in_maintenance: false,
};
const READER: Rule = Rule {
    role: Role::Reader,
    in_maintenance: false,
};

/// The tag of an installer image reference (`…/installer/<id>:v1.11.2` → `v1.11.2`).
fn image_tag(image: &str) -> Result<String, Status> {
    match image.rsplit_once(':') {
        Some((_, tag)) if tag.starts_with('v') && !tag.contains('/') => Ok(tag.to_owned()),
        _ => Err(Status::invalid_argument(format!(
            "the image reference {image:?} has no version tag"
        ))),
    }
}

/// Whether a version has the 1.13 image and lifecycle services.
fn has_lifecycle_api(version: &str) -> bool {
    crate::release_line(version) >= (1, 13)
}

/// The system volumes Talos 1.14 can put on partitions of their own.
const PROMOTABLE_VOLUMES: [&str; 4] = ["ETCD", "CRI", "KUBELET", "LOG"];

/// Checks a reset's labels as a node of `version` does (Talos's reset handler): `Unknown`, as
/// Talos's plain errors arrive, for a label it refuses.
fn check_wipe_labels(version: &str, dedicated: &[String], labels: &[String]) -> Result<(), Status> {
    for label in labels {
        match label.as_str() {
            "STATE" | "EPHEMERAL" | "META" => {}
            volume if PROMOTABLE_VOLUMES.contains(&volume) => {
                if crate::release_line(version) < (1, 14) {
                    return Err(Status::unknown(format!(
                        "failed to reset: volume {volume:?} is not located"
                    )));
                }
                let own_partition = dedicated.iter().any(|d| d == volume);
                if !own_partition && !labels.iter().any(|l| l == "EPHEMERAL") {
                    return Err(Status::unknown(format!(
                        "failed to reset: volume {volume:?} resides on volume \"EPHEMERAL\", and therefore {volume:?} cannot be wiped without wiping \"EPHEMERAL\""
                    )));
                }
            }
            other => {
                return Err(Status::unknown(format!(
                    "failed to get volume status with label {other:?}: resource VolumeStatuses.block.talos.dev(runtime/{other}) not found"
                )));
            }
        }
    }
    Ok(())
}

impl NodeApi {
    /// Records the call and applies the node's faults, mode and RBAC.
    fn enter(&self, method: &str, summary: String, rule: Rule) -> Result<(), Status> {
        let mut state = self.shared.state();
        state.calls.push(RecordedCall {
            node: self.address,
            method: method.to_owned(),
            summary,
        });
        let node = state
            .nodes
            .get(&self.address)
            .ok_or_else(|| Status::unavailable("the node is gone"))?;
        if node
            .faults
            .unavailable_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(Status::unavailable("fake: the node is not ready to answer"));
        }
        if self.maintenance && !rule.in_maintenance {
            return Err(Status::unimplemented(
                "API is not implemented in maintenance mode",
            ));
        }
        if self.role.is_none_or(|role| role < rule.role) {
            return Err(Status::permission_denied("not authorized"));
        }
        Ok(())
    }

    fn control_plane(&self) -> Result<(), Status> {
        let state = self.shared.state();
        match state.nodes.get(&self.address) {
            Some(node) if node.machine_type == MachineType::ControlPlane => Ok(()),
            _ => Err(Status::failed_precondition(
                "etcd is not running on this node (not a control plane)",
            )),
        }
    }

    fn set_stage(&self, stage: &str) {
        if let Some(node) = self.shared.state().nodes.get_mut(&self.address) {
            node.stage = stage.to_owned();
        }
    }

    fn downtime(&self) -> Duration {
        self.shared.state().downtime
    }

    fn machine_status_yaml(&self) -> Option<String> {
        let state = self.shared.state();
        let node = state.nodes.get(&self.address)?;
        let unmet = if node.ready {
            "    unmetConditions: []\n".to_owned()
        } else {
            "    unmetConditions:\n        - name: nodeReady\n          reason: node not ready\n"
                .to_owned()
        };
        Some(format!(
            "stage: {}\nstatus:\n    ready: {}\n{unmet}",
            node.stage, node.ready
        ))
    }

    fn resource(&self, namespace: &str, r#type: &str, id: &str) -> Option<Resource> {
        let yaml = match (namespace, r#type, id) {
            ("runtime", "MachineStatuses.runtime.talos.dev", "machine") => {
                self.machine_status_yaml()?
            }
            ("k8s", "Nodenames.kubernetes.talos.dev", "nodename") if !self.maintenance => {
                let state = self.shared.state();
                let node = state.nodes.get(&self.address)?;
                format!(
                    "nodename: {}\nhostnameVersion: \"1\"\nskipNodeRegistration: false\n",
                    node.hostname
                )
            }
            _ => return None,
        };
        Some(Resource {
            metadata: Some(Metadata {
                namespace: namespace.to_owned(),
                r#type: r#type.to_owned(),
                id: id.to_owned(),
                version: "1".to_owned(),
                owner: String::new(),
                phase: "running".to_owned(),
            }),
            spec: Some(Spec {
                proto_spec: Vec::new(),
                yaml_spec: yaml,
            }),
        })
    }
}

#[tonic::async_trait]
impl MachineService for NodeApi {
    async fn version(&self, _: Request<()>) -> Result<Response<pb::VersionResponse>, Status> {
        self.enter("MachineService/Version", String::new(), READER)?;
        let tag = self
            .shared
            .state()
            .nodes
            .get(&self.address)
            .map(|node| node.version.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::VersionResponse {
            messages: vec![pb::Version {
                metadata: None,
                version: Some(pb::VersionInfo {
                    tag,
                    sha: "fake".to_owned(),
                    built: String::new(),
                    go_version: "go1.24".to_owned(),
                    os: "linux".to_owned(),
                    arch: "amd64".to_owned(),
                }),
                platform: Some(pb::PlatformInfo {
                    name: "metal".to_owned(),
                    mode: "metal".to_owned(),
                }),
                features: Some(pb::FeaturesInfo { rbac: true }),
            }],
        }))
    }

    async fn apply_configuration(
        &self,
        request: Request<pb::ApplyConfigurationRequest>,
    ) -> Result<Response<pb::ApplyConfigurationResponse>, Status> {
        let request = request.into_inner();
        let mode = request.mode();
        let rule = Rule {
            // In maintenance mode the reader role may apply (Talos grants it for that).
            role: if self.maintenance {
                Role::Reader
            } else {
                Role::Admin
            },
            in_maintenance: true,
        };
        self.enter(
            "MachineService/ApplyConfiguration",
            format!("mode {}, {} bytes", mode.as_str_name(), request.data.len()),
            rule,
        )?;
        let config = String::from_utf8(request.data)
            .ok()
            .filter(|config| !config.trim().is_empty())
            .ok_or_else(|| Status::invalid_argument("the config is empty or not text"))?;
        if self.maintenance && matches!(mode, ApplyMode::NoReboot | ApplyMode::Staged) {
            return Err(Status::unimplemented(format!(
                "apply configuration in {} mode is not supported in maintenance mode",
                mode.as_str_name()
            )));
        }
        if let Some(node) = self.shared.state().nodes.get_mut(&self.address) {
            node.applied_configs.push(config);
        }
        let mode_details = if self.maintenance {
            // It installs and reboots into its config.
            self.set_stage("installing");
            self.shared
                .restart(self.address, Duration::ZERO, Comeback::Configured);
            "Applied configuration, the node installs and reboots".to_owned()
        } else {
            "Applied configuration without a reboot".to_owned()
        };
        Ok(Response::new(pb::ApplyConfigurationResponse {
            messages: vec![pb::ApplyConfiguration {
                metadata: None,
                warnings: Vec::new(),
                mode: mode as i32,
                mode_details,
            }],
        }))
    }

    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetResponse>, Status> {
        let request = request.into_inner();
        let wiped: Vec<String> = request
            .system_partitions_to_wipe
            .iter()
            .filter(|partition| partition.wipe)
            .map(|partition| partition.label.clone())
            .collect();
        self.enter(
            "MachineService/Reset",
            format!(
                "graceful {}, reboot {}, wipe [{}], mode {}, user disks [{}]",
                request.graceful,
                request.reboot,
                wiped.join(", "),
                request.mode().as_str_name(),
                request.user_disks_to_wipe.join(", ")
            ),
            ADMIN,
        )?;
        {
            let mut state = self.shared.state();
            let Some(node) = state.nodes.get_mut(&self.address) else {
                return Err(Status::unavailable("the node is gone"));
            };
            let labels: Vec<String> = request
                .system_partitions_to_wipe
                .iter()
                .map(|partition| partition.label.clone())
                .collect();
            check_wipe_labels(&node.version, &node.dedicated_volumes, &labels)?;
            node.wipes.push(wiped.clone());
            if request.reboot && wiped.iter().any(|label| label == "STATE") {
                let kept = node
                    .dedicated_volumes
                    .iter()
                    .filter(|volume| !wiped.contains(volume))
                    .cloned()
                    .collect();
                node.kept_volumes = kept;
            }
            let member = state
                .etcd
                .iter()
                .find(|member| member.node == self.address)
                .map(|member| member.id);
            if request.graceful
                && let Some(id) = member
            {
                if state.etcd.len() == 1 {
                    return Err(Status::failed_precondition(
                        "etcd: cannot leave the cluster as its last member",
                    ));
                }
                state.remove_member(id);
            }
        }
        let comeback = if !request.reboot {
            Comeback::Never
        } else if wiped.iter().any(|label| label == "STATE") {
            Comeback::Maintenance
        } else if !wiped.is_empty() || request.mode() == pb::reset_request::WipeMode::UserDisks {
            Comeback::Configured
        } else {
            // The whole system disk: Talos is gone from this machine.
            Comeback::Never
        };
        self.set_stage("resetting");
        self.shared.restart(self.address, self.downtime(), comeback);
        Ok(Response::new(pb::ResetResponse {
            messages: vec![pb::Reset {
                metadata: None,
                actor_id: "fake-reset".to_owned(),
            }],
        }))
    }

    async fn reboot(
        &self,
        request: Request<pb::RebootRequest>,
    ) -> Result<Response<pb::RebootResponse>, Status> {
        let request = request.into_inner();
        self.enter(
            "MachineService/Reboot",
            format!("mode {}", request.mode().as_str_name()),
            OPERATOR,
        )?;
        self.set_stage("rebooting");
        self.shared
            .restart(self.address, self.downtime(), Comeback::Configured);
        Ok(Response::new(pb::RebootResponse {
            messages: vec![pb::Reboot {
                metadata: None,
                actor_id: "fake-reboot".to_owned(),
            }],
        }))
    }

    async fn upgrade(
        &self,
        request: Request<pb::UpgradeRequest>,
    ) -> Result<Response<pb::UpgradeResponse>, Status> {
        let request = request.into_inner();
        self.enter(
            "MachineService/Upgrade",
            format!(
                "image {}, preserve {}, stage {}, force {}, reboot mode {}",
                request.image,
                request.preserve,
                request.stage,
                request.force,
                request.reboot_mode().as_str_name()
            ),
            ADMIN,
        )?;
        let tag = image_tag(&request.image)?;
        {
            let mut state = self.shared.state();
            let kernel_args = state.upgraded_kernel_args(self.address, &request.image);
            let Some(node) = state.nodes.get_mut(&self.address) else {
                return Err(Status::unavailable("the node is gone"));
            };
            if node.faults.fail_upgrade {
                return Err(Status::internal(
                    "fake: failed to validate the installer image",
                ));
            }
            node.installed_version = Some(tag);
            node.installed_kernel_args = Some(kernel_args);
            node.stage = "upgrading".to_owned();
        }
        self.shared
            .restart(self.address, self.downtime(), Comeback::Configured);
        Ok(Response::new(pb::UpgradeResponse {
            messages: vec![pb::Upgrade {
                metadata: None,
                ack: "Upgrade request received".to_owned(),
                actor_id: "fake-upgrade".to_owned(),
            }],
        }))
    }

    async fn etcd_forfeit_leadership(
        &self,
        _: Request<pb::EtcdForfeitLeadershipRequest>,
    ) -> Result<Response<pb::EtcdForfeitLeadershipResponse>, Status> {
        self.enter("MachineService/EtcdForfeitLeadership", String::new(), ADMIN)?;
        self.control_plane()?;
        let mut state = self.shared.state();
        let own = state
            .etcd
            .iter()
            .find(|member| member.node == self.address)
            .map(|member| member.id);
        let mut new_leader = String::new();
        if own.is_some()
            && state.leader == own
            && let Some(other) = state
                .etcd
                .iter()
                .find(|member| Some(member.id) != own)
                .map(|member| member.id)
        {
            state.leader = Some(other);
            new_leader = format!("{other:x}");
        }
        Ok(Response::new(pb::EtcdForfeitLeadershipResponse {
            messages: vec![pb::EtcdForfeitLeadership {
                metadata: None,
                member: new_leader,
            }],
        }))
    }

    async fn bootstrap(
        &self,
        request: Request<pb::BootstrapRequest>,
    ) -> Result<Response<pb::BootstrapResponse>, Status> {
        let recover = request.get_ref().recover_etcd;
        self.enter(
            "MachineService/Bootstrap",
            format!("recover etcd {recover}"),
            ADMIN,
        )?;
        {
            let state = self.shared.state();
            if state
                .nodes
                .get(&self.address)
                .is_some_and(|node| node.machine_type != MachineType::ControlPlane)
            {
                return Err(Status::failed_precondition(
                    "bootstrap can only be performed on a control plane node",
                ));
            }
        }
        let mut state = self.shared.state();
        if state.bootstrap_not_ready > 0 {
            state.bootstrap_not_ready -= 1;
            return Err(Status::unavailable(
                "bootstrap is not available yet: services are starting",
            ));
        }
        if state.etcd.iter().any(|member| member.node == self.address) {
            return Err(Status::already_exists("etcd data directory is not empty"));
        }
        state.bootstrapped = true;
        // This node starts etcd; the running control planes join it.
        let running: Vec<Ipv4Addr> = std::iter::once(self.address)
            .chain(
                state
                    .nodes
                    .iter()
                    .filter(|(address, node)| {
                        **address != self.address
                            && node.machine_type == MachineType::ControlPlane
                            && !node.maintenance
                            && node.up
                            && node.stage == "running"
                    })
                    .map(|(address, _)| *address),
            )
            .collect();
        for address in running {
            state.join_etcd(address);
            if let Some(node) = state.nodes.get_mut(&address) {
                node.etcd_running = true;
            }
        }
        Ok(Response::new(pb::BootstrapResponse {
            messages: vec![pb::Bootstrap { metadata: None }],
        }))
    }

    async fn etcd_member_list(
        &self,
        request: Request<pb::EtcdMemberListRequest>,
    ) -> Result<Response<pb::EtcdMemberListResponse>, Status> {
        let query_local = request.get_ref().query_local;
        self.enter(
            "MachineService/EtcdMemberList",
            format!("query local {query_local}"),
            READER,
        )?;
        self.control_plane()?;
        let state = self.shared.state();
        let local_runs = state
            .nodes
            .get(&self.address)
            .is_some_and(|node| node.etcd_running);
        let any_runs = state.nodes.values().any(|node| node.etcd_running);
        if (query_local && !local_runs) || !any_runs {
            return Err(Status::unavailable(
                "etcd: context deadline exceeded (etcd is not running on this node)",
            ));
        }
        let members = state
            .etcd
            .iter()
            .map(|member| pb::EtcdMember {
                id: member.id,
                hostname: member.hostname.clone(),
                peer_urls: vec![format!("https://{}:2380", member.node)],
                client_urls: vec![format!("https://{}:2379", member.node)],
                is_learner: false,
            })
            .collect();
        Ok(Response::new(pb::EtcdMemberListResponse {
            messages: vec![pb::EtcdMembers {
                metadata: None,
                legacy_members: Vec::new(),
                members,
            }],
        }))
    }

    async fn etcd_status(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::EtcdStatusResponse>, Status> {
        self.enter("MachineService/EtcdStatus", String::new(), READER)?;
        self.control_plane()?;
        let state = self.shared.state();
        if !state
            .nodes
            .get(&self.address)
            .is_some_and(|node| node.etcd_running)
        {
            return Err(Status::unavailable(
                "etcd: context deadline exceeded (etcd is not running on this node)",
            ));
        }
        let own = state
            .etcd
            .iter()
            .find(|member| member.node == self.address)
            .map(|member| member.id);
        Ok(Response::new(pb::EtcdStatusResponse {
            messages: vec![pb::EtcdStatus {
                metadata: None,
                member_status: Some(pb::EtcdMemberStatus {
                    protocol_version: "3.5.0".into(),
                    db_size: 20 * 1024 * 1024,
                    db_size_in_use: 10 * 1024 * 1024,
                    leader: state.leader.unwrap_or_default(),
                    raft_index: 1000,
                    raft_term: 2,
                    raft_applied_index: 1000,
                    errors: Vec::new(),
                    is_learner: false,
                    member_id: own.unwrap_or_default(),
                    storage_version: "3.5.0".into(),
                }),
            }],
        }))
    }

    async fn etcd_remove_member_by_id(
        &self,
        request: Request<pb::EtcdRemoveMemberByIdRequest>,
    ) -> Result<Response<pb::EtcdRemoveMemberByIdResponse>, Status> {
        let member_id = request.get_ref().member_id;
        self.enter(
            "MachineService/EtcdRemoveMemberByID",
            format!("member {member_id:x}"),
            ADMIN,
        )?;
        self.control_plane()?;
        if !self.shared.state().remove_member(member_id) {
            return Err(Status::not_found(format!(
                "etcd member {member_id:x} not found"
            )));
        }
        Ok(Response::new(pb::EtcdRemoveMemberByIdResponse {
            messages: vec![pb::EtcdRemoveMemberById { metadata: None }],
        }))
    }

    type KubeconfigStream = Stream<Data>;

    async fn kubeconfig(&self, _: Request<()>) -> Result<Response<Self::KubeconfigStream>, Status> {
        self.enter("MachineService/Kubeconfig", String::new(), ADMIN)?;
        self.control_plane()?;
        let kubeconfig = self.shared.state().kubeconfig.clone();
        let archive = unfinished_archive(&kubeconfig).map_err(|error| {
            Status::internal(format!("fake: cannot build the archive: {error}"))
        })?;
        // Two chunks, so a client must put the stream together.
        let (head, tail) = archive.split_at(archive.len() / 2);
        Ok(Response::new(stream(vec![
            Data {
                metadata: None,
                bytes: head.to_vec(),
            },
            Data {
                metadata: None,
                bytes: tail.to_vec(),
            },
        ])))
    }
}

#[tonic::async_trait]
impl ImageService for NodeApi {
    type PullStream = Stream<pb::ImageServicePullResponse>;

    async fn pull(
        &self,
        request: Request<pb::ImageServicePullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let request = request.into_inner();
        let containerd = request.containerd.unwrap_or_default();
        self.enter(
            "ImageService/Pull",
            format!(
                "image {}, containerd {} {}",
                request.image_ref,
                containerd.driver().as_str_name(),
                containerd.namespace().as_str_name()
            ),
            OPERATOR,
        )?;
        {
            let mut state = self.shared.state();
            let Some(node) = state.nodes.get_mut(&self.address) else {
                return Err(Status::unavailable("the node is gone"));
            };
            if !has_lifecycle_api(&node.version) {
                return Err(Status::unimplemented(
                    "unknown service machine.ImageService",
                ));
            }
            image_tag(&request.image_ref)?;
            if containerd.driver() != ContainerDriver::Cri
                || containerd.namespace() != ContainerdNamespace::NsSystem
            {
                return Err(Status::invalid_argument(
                    "fake: an installer image is pulled with the CRI driver into the system namespace",
                ));
            }
            node.pulled_images.push(request.image_ref.clone());
        }
        use pb::image_service_pull_response::Response as Pulled;
        Ok(Response::new(stream(vec![
            pb::ImageServicePullResponse {
                response: Some(Pulled::PullProgress(pb::ImageServicePullProgress {
                    layer_id: "sha256:fake".to_owned(),
                    progress: Some(pb::ImageServicePullLayerProgress {
                        status: pb::image_service_pull_layer_progress::Status::DownloadComplete
                            as i32,
                        offset: 1024,
                        total: 1024,
                    }),
                })),
            },
            pb::ImageServicePullResponse {
                response: Some(Pulled::Name(request.image_ref)),
            },
        ])))
    }
}

#[tonic::async_trait]
impl LifecycleService for NodeApi {
    type UpgradeStream = Stream<pb::LifecycleServiceUpgradeResponse>;

    async fn upgrade(
        &self,
        request: Request<pb::LifecycleServiceUpgradeRequest>,
    ) -> Result<Response<Self::UpgradeStream>, Status> {
        let request = request.into_inner();
        let image = request
            .source
            .map(|source| source.image_name)
            .unwrap_or_default();
        self.enter("LifecycleService/Upgrade", format!("image {image}"), ADMIN)?;
        let exit_code = {
            let mut state = self.shared.state();
            let kernel_args = state.upgraded_kernel_args(self.address, &image);
            let Some(node) = state.nodes.get_mut(&self.address) else {
                return Err(Status::unavailable("the node is gone"));
            };
            if !has_lifecycle_api(&node.version) {
                return Err(Status::unimplemented(
                    "unknown service machine.LifecycleService",
                ));
            }
            if image.is_empty() {
                return Err(Status::invalid_argument("no image name"));
            }
            if !node.pulled_images.contains(&image) {
                return Err(Status::failed_precondition(format!(
                    "fake: the image {image} was not pulled"
                )));
            }
            if node.faults.fail_upgrade {
                1
            } else {
                node.installed_version = Some(image_tag(&image)?);
                node.installed_kernel_args = Some(kernel_args);
                0
            }
        };
        use pb::lifecycle_service_install_progress::Response as Progress;
        let progress = |response| pb::LifecycleServiceUpgradeResponse {
            progress: Some(pb::LifecycleServiceInstallProgress {
                response: Some(response),
            }),
        };
        let last = if exit_code == 0 {
            "installation finished"
        } else {
            "fake: the installer failed"
        };
        Ok(Response::new(stream(vec![
            progress(Progress::Message(format!("installing {image}"))),
            progress(Progress::Message(last.to_owned())),
            progress(Progress::ExitCode(exit_code)),
        ])))
    }
}

#[tonic::async_trait]
impl State for NodeApi {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let request = request.into_inner();
        self.enter(
            "State/Get",
            format!("{} {}/{}", request.namespace, request.r#type, request.id),
            Rule {
                role: Role::Reader,
                in_maintenance: true,
            },
        )?;
        let resource = self
            .resource(&request.namespace, &request.r#type, &request.id)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "resource {}/{} not found",
                    request.r#type, request.id
                ))
            })?;
        Ok(Response::new(GetResponse {
            resource: Some(resource),
        }))
    }

    type ListStream = Stream<ListResponse>;

    async fn list(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let request = request.into_inner();
        self.enter(
            "State/List",
            format!("{} {}", request.namespace, request.r#type),
            Rule {
                role: Role::Reader,
                in_maintenance: true,
            },
        )?;
        let id = match request.r#type.as_str() {
            "MachineStatuses.runtime.talos.dev" => "machine",
            "Nodenames.kubernetes.talos.dev" => "nodename",
            _ => "",
        };
        let resources = self
            .resource(&request.namespace, &request.r#type, id)
            .into_iter()
            .map(|resource| ListResponse {
                resource: Some(resource),
            })
            .collect();
        Ok(Response::new(stream(resources)))
    }
}
