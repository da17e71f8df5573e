//! `/servers`: the fleet, as synced from the providers and probed in rescue.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use talos_manager_api_types::{
    BootstrapBody, BootstrapPlanView, DiskView, IssueBody, MaybeUndefined, ServerView, UpdateServer,
};
use talos_manager_core::bootstrap::{BootstrapChoices, bootstrap_plan, check_talos_version};
use talos_manager_core::ids::{ClusterId, SchematicId, ServerRef, VswitchId};
use talos_manager_core::lifecycle::{Precheck, precheck_bootstrap};
use talos_manager_core::node_config::render_node_config;
use talos_manager_core::runbooks;
use talos_manager_core::server_state::server_state;
use talos_manager_core::server_update::{ServerChanges, update_server};
use talos_manager_core::store::{Job, NewJob, Server};

use super::Tag;
use super::auth::AdminAuth;
use super::clusters::YamlFile;
use super::error::{ApiError, ApiResult};
use crate::AppState;
use talos_manager_core::StoreError;
use talos_manager_core::installer::{ImageSource, parse_lsblk};
use talos_manager_core::jobs::{BootstrapArgs, JobKind};
use talos_manager_core::rescue::{enter_rescue, our_public_key};

/// A queued job.
#[derive(Debug, poem_openapi::ApiResponse)]
enum SyncAccepted {
    /// The sync job, queued.
    #[oai(status = 202)]
    Accepted(Json<talos_manager_api_types::JobView>),
}

/// The disks of a server's recorded lsblk output; none when it was never probed or the
/// record cannot be read (the probe refreshes it).
fn disks(lsblk: Option<&str>) -> Vec<DiskView> {
    let Some(devices) = lsblk.and_then(|json| parse_lsblk(json).ok()) else {
        return Vec::new();
    };
    devices
        .into_iter()
        .filter(|device| device.kind == "disk")
        .map(|device| DiskView {
            path: device.path(),
            wwid: device.wwid(),
            size_bytes: device.size,
            model: device.model,
            partitions: u32::try_from(device.partitions).unwrap_or(u32::MAX),
            raid_arrays: device.raid_arrays,
        })
        .collect()
}

/// The view of `server`, whose newest bootstrap job is `latest_bootstrap`.
pub(crate) fn server_view_of(server: Server, latest_bootstrap: Option<&Job>) -> ServerView {
    let state = server_state(&server, latest_bootstrap).to_string();
    let disks = disks(server.lsblk.as_deref());
    let inventory = server.inventory;
    ServerView {
        id: ServerRef::new(inventory.provider, &inventory.provider_id).to_string(),
        provider: inventory.provider.as_str().to_owned(),
        provider_account_id: server.provider_account_id.to_string(),
        name: inventory.name,
        ipv4: inventory.ipv4,
        ipv6: inventory.ipv6,
        product: inventory.product,
        data_center: inventory.data_center,
        status: inventory.status,
        cancelled: inventory.cancelled,
        architecture: inventory.architecture.as_str().to_owned(),
        vswitch_id: inventory.vswitch_id.map(|id| id.to_string()),
        cluster_id: server.cluster_id.map(|id| id.to_string()),
        accessible: server.accessible,
        uuid: server.uuid,
        bootstrap_disk: server.bootstrap_disk,
        bootstrap_disk_wwid: server.bootstrap_disk_wwid,
        schematic_id: server.schematic_id.map(|id| id.to_string()),
        last_request_for_configuration_at: server.last_request_for_configuration_at,
        last_configured_at: server.last_configured_at,
        label_and_taint_job_completed_at: server.label_and_taint_job_completed_at,
        rescue_activated_at: server.rescue_activated_at,
        missing_since: server.missing_since,
        missing_syncs: u32::try_from(server.missing_syncs).unwrap_or(0),
        state,
        disks,
        node_name: server.node_name,
        node_name_mismatch: None,
    }
}

/// Says in `node_name_mismatch` when the reported node name differs from
/// `expected_hostname`, the machine config's hostname.
pub(crate) fn with_expected_hostname(
    mut view: ServerView,
    expected_hostname: Option<&str>,
) -> ServerView {
    view.node_name_mismatch = match (&view.node_name, expected_hostname) {
        (Some(node_name), Some(expected)) if node_name != expected => Some(format!(
            "the node calls itself {node_name}, its machine config expects {expected}"
        )),
        _ => None,
    };
    view
}

/// Loads a server by its API id.
pub(crate) async fn load_server(state: &AppState, api_id: &str) -> ApiResult<Server> {
    let server: ServerRef = api_id.parse()?;
    Ok(state
        .store
        .get_server_by_provider_id(server.provider, &server.provider_id)
        .await?)
}

pub(crate) struct ServersApi;

#[OpenApi(tag = "Tag::Servers")]
impl ServersApi {
    /// Sync the fleet from every provider account now: queues a `sync` job and answers with it.
    #[oai(path = "/servers/sync", method = "post", operation_id = "sync_servers")]
    async fn sync(&self, state: Data<&AppState>, _auth: AdminAuth) -> ApiResult<SyncAccepted> {
        let job = state
            .jobs
            .enqueue(&NewJob {
                kind: JobKind::Sync.to_string(),
                server_id: None,
                args: serde_json::json!({}),
            })
            .await?;
        Ok(SyncAccepted::Accepted(Json(super::jobs::job_view(
            job,
            &std::collections::HashMap::new(),
        ))))
    }

    /// List the servers, by cluster then name.
    #[oai(path = "/servers", method = "get", operation_id = "list_servers")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        /// Only the servers of this cluster.
        cluster_id: Query<Option<String>>,
        /// Only `hetzner_robot` or `hetzner_cloud` servers.
        provider: Query<Option<String>>,
        /// Only servers in rescue and reachable (true) or not (false).
        accessible: Query<Option<bool>>,
    ) -> ApiResult<Json<Vec<ServerView>>> {
        let servers = state.store.list_servers().await?;
        let bootstraps = state
            .store
            .latest_jobs_by_server(JobKind::Bootstrap.as_str())
            .await?;
        let hostnames: std::collections::HashMap<_, _> = state
            .store
            .list_machine_configs()
            .await?
            .into_iter()
            .map(|machine_config| (machine_config.server_id, machine_config.fields.hostname))
            .collect();
        let views = servers
            .into_iter()
            .filter(|server| {
                cluster_id.as_ref().is_none_or(|cluster| {
                    server.cluster_id.map(|id| id.to_string()).as_ref() == Some(cluster)
                }) && provider
                    .as_deref()
                    .is_none_or(|provider| server.inventory.provider.as_str() == provider)
                    && accessible.is_none_or(|accessible| server.accessible == accessible)
            })
            .map(|server| {
                let latest = bootstraps.get(&server.id);
                let hostname = hostnames.get(&server.id).map(String::as_str);
                with_expected_hostname(server_view_of(server, latest), hostname)
            })
            .collect();
        Ok(Json(views))
    }

    /// The machine config the server is served when it boots (YAML, with secrets: treat it
    /// as one).
    #[oai(
        path = "/servers/:id/machine-config.yaml",
        method = "get",
        operation_id = "get_server_machine_config"
    )]
    async fn machine_config(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<YamlFile> {
        let server = load_server(&state, &id).await?;
        let node_config = render_node_config(&state.store, server.id).await?;
        tracing::info!(server = %server.inventory.name, by = ?auth.principal(), "machine config downloaded");
        Ok(YamlFile::Ok(PlainText(node_config.yaml.into_inner())))
    }

    /// The commands to reboot the node safely (etcd leadership handed over by control
    /// planes, drained, rebooted, uncordoned).
    #[oai(
        path = "/servers/:id/reboot-command",
        method = "get",
        operation_id = "get_server_reboot_command"
    )]
    async fn reboot_command(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<PlainText<String>> {
        let server = load_server(&state, &id).await?;
        Ok(PlainText(
            runbooks::server_reboot_command(&state.store, &server).await?,
        ))
    }

    /// The commands to upgrade the node to the default Talos version (or `talos_version`) with
    /// the installer of its Image Factory schematic (on `TALOS_IMAGE_FACTORY_URL`), as a rolling
    /// upgrade uses; without a schematic Talos's stock installer of that version (the factory's
    /// empty schematic from 1.14 on).
    #[oai(
        path = "/servers/:id/upgrade-command",
        method = "get",
        operation_id = "get_server_upgrade_command"
    )]
    async fn upgrade_command(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        /// The Talos version to upgrade to, `vX.Y.Z` [default: the settings' version].
        talos_version: Query<Option<String>>,
    ) -> ApiResult<PlainText<String>> {
        if let Some(version) = &talos_version.0 {
            check_talos_version("upgrade command", version)?;
        }
        let server = load_server(&state, &id).await?;
        Ok(PlainText(
            runbooks::server_upgrade_command(
                &state.store,
                state.image_factory.client(),
                &server,
                talos_version.0,
            )
            .await?,
        ))
    }

    /// Get a server.
    #[oai(path = "/servers/:id", method = "get", operation_id = "get_server")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ServerView>> {
        let server = load_server(&state, &id).await?;
        Ok(Json(server_view(&state, server).await?))
    }

    /// Compare the machine config the server's node runs (read through its Talos API) with
    /// the config talos-manager would serve it now: `in_sync`, `drifted` with a unified diff
    /// (secrets masked) or `unreachable`. See `GET /clusters/{id}/config-drift`.
    #[oai(
        path = "/servers/:id/config-drift",
        method = "get",
        operation_id = "get_server_config_drift"
    )]
    async fn config_drift(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<talos_manager_api_types::ConfigDriftView>> {
        let server = load_server(&state, &id).await?;
        let drift = super::clusters::check_drift(
            &state,
            talos_manager_core::node_config::drift::DriftScope::Server(server.id),
        )
        .await?;
        Ok(Json(super::clusters::drift_view(drift)))
    }

    // Rescue and bootstrap: kept together in one block.

    /// Put the server into its provider's rescue system: activates rescue with talos-manager's
    /// SSH key (uploaded to the provider account when missing), power-cycles the server and
    /// records the activation. Answers with the server.
    #[oai(
        path = "/servers/:id/rescue",
        method = "post",
        operation_id = "enter_rescue"
    )]
    async fn rescue(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ServerView>> {
        let server = load_server(&state, &id).await?;
        let entered = enter_rescue(
            &state.store,
            &state.providers,
            server.id,
            state.bootstrap.ssh_private_key.as_ref(),
        )
        .await?;
        tracing::info!(server = %server.inventory.name, by = ?auth.principal(), "rescue activated");
        Ok(Json(server_view(&state, entered.server).await?))
    }

    /// The dry run of a bootstrap: the steps it would run (the text `talos-manager
    /// bootstrap-plan` prints) and what was chosen. 422 when the choices are invalid; 409 when
    /// the server's disks are not known yet (enter rescue first).
    #[oai(
        path = "/servers/:id/bootstrap-plan",
        method = "get",
        operation_id = "get_server_bootstrap_plan"
    )]
    async fn bootstrap_plan(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        /// The target disk (WWID such as `eui.…` or `naa.…`, or a device such as
        /// `/dev/nvme0n1`) [default: the first disk outside a RAID].
        disk: Query<Option<String>>,
        /// The Talos version, `vX.Y.Z` [default: the settings' version].
        talos_version: Query<Option<String>>,
        /// The schematic's id [default: the server's, else the settings' default].
        schematic: Query<Option<String>>,
    ) -> ApiResult<Json<BootstrapPlanView>> {
        let server = load_server(&state, &id).await?;
        let args = bootstrap_args(disk.0, talos_version.0, schematic.0.as_deref())?;
        let (request, plan) = bootstrap_plan(
            &state.store,
            &state.bootstrap.environment,
            server.id,
            &args.choices,
        )
        .await?;
        let (schematic, talos_version) = match &request.image {
            ImageSource::Factory {
                schematic, version, ..
            } => (Some(schematic.clone()), Some(version.clone())),
            ImageSource::Custom { .. } => (None, None),
        };
        Ok(Json(BootstrapPlanView {
            text: plan.to_string(),
            disk: request.disk.path(),
            disk_wwid: request.disk.wwid(),
            image_url: plan.image_url.clone(),
            schematic,
            talos_version,
            talos_config_url: request.talos_config_url,
            steps: plan.steps.iter().map(|step| step.name.clone()).collect(),
        }))
    }

    /// Bootstrap the server: queues a `bootstrap` job (enter rescue if needed, wait for it,
    /// check the SMBIOS UUID, wipe the disk, write Talos, reboot) and answers 202 with it.
    /// Follow it at `/jobs/{id}/log`.
    ///
    /// A bootstrap erases the server. A live node (served its machine config, or labelled in
    /// its cluster, since its last bootstrap) is refused with 409 `live_node` unless `force`:
    /// reset it first, or pass `force`. A forced bootstrap of a live node in a cluster holds the
    /// cluster like a reset (409 `cluster_busy` while a reset, upgrade, reboot or another forced
    /// bootstrap of it is queued or running), and for a control plane the job first checks etcd
    /// with reset's quorum rule and fails without touching the server when etcd cannot lose it,
    /// even with `force`.
    ///
    /// 409 `bootstrap_running` when a bootstrap of the server is queued or running,
    /// `ssh_key_missing` when no SSH key is configured; 422 when the choices are invalid.
    #[oai(
        path = "/servers/:id/bootstrap",
        method = "post",
        operation_id = "bootstrap_server"
    )]
    async fn bootstrap(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
        body: Json<BootstrapBody>,
    ) -> ApiResult<BootstrapAccepted> {
        let server = load_server(&state, &id).await?;
        our_public_key(state.bootstrap.ssh_private_key.as_ref())?;
        let body = body.0;
        let mut args = bootstrap_args(body.disk, body.talos_version, body.schematic.as_deref())?;
        args.force = body.force;
        let precheck = precheck_bootstrap(&server, args.force)?;
        // Check the choices now when the disks are known; otherwise the job checks them once
        // it has probed the rescue system.
        if server.lsblk.is_some() {
            bootstrap_plan(
                &state.store,
                &state.bootstrap.environment,
                server.id,
                &args.choices,
            )
            .await?;
        }
        let new_job = NewJob {
            kind: JobKind::Bootstrap.to_string(),
            server_id: Some(server.id),
            args: serde_json::to_value(&args).map_err(|error| ApiError::internal(&error))?,
        };
        // Erasing a live node of a cluster holds the cluster, as a reset does: two forced
        // bootstraps of control planes at once would each pass the quorum check alone.
        let scope = match (precheck, server.cluster_id) {
            (Precheck::Forced(_), Some(cluster)) => {
                Some(talos_manager_core::jobs::cluster_scope(cluster))
            }
            _ => None,
        };
        let queued = match &scope {
            Some(scope) => state.jobs.enqueue_exclusive(&new_job, scope).await,
            None => state.jobs.enqueue(&new_job).await,
        };
        let job = match queued {
            Ok(job) => job,
            Err(StoreError::Conflict { .. }) => {
                let holder = match &scope {
                    Some(scope) => state.store.active_job_in_scope(scope).await?,
                    None => None,
                };
                return Err(match holder {
                    Some(holder) => ApiError::cluster_busy(format!(
                        "a reset, upgrade, reboot or forced bootstrap of server {}'s cluster \
                         is already queued or running (job {}, {}): follow or cancel it first",
                        server.inventory.name, holder.id, holder.kind
                    )),
                    None => ApiError::bootstrap_running(&server.inventory.name),
                });
            }
            Err(other) => return Err(other.into()),
        };
        match precheck {
            Precheck::Forced(live) => {
                tracing::warn!(server = %server.inventory.name, job = %job.id, by = ?auth.principal(), %live, "forced bootstrap of a live node queued");
            }
            Precheck::Free => {
                tracing::info!(server = %server.inventory.name, job = %job.id, by = ?auth.principal(), "bootstrap queued");
            }
        }
        let api_id =
            ServerRef::new(server.inventory.provider, &server.inventory.provider_id).to_string();
        let servers = std::collections::HashMap::from([(server.id, api_id)]);
        Ok(BootstrapAccepted::Accepted(Json(super::jobs::job_view(
            job, &servers,
        ))))
    }

    /// Change a server's name, cluster or vSwitch.
    ///
    /// A new `name` is pushed to the provider (Robot server name, Cloud server name) and a new
    /// `vswitch_id` makes Robot move the server, both before anything is stored; `cluster_id` is
    /// local. Absent fields stay as they are, `null` clears. When the provider fails, nothing
    /// changes here.
    #[oai(
        path = "/servers/:id",
        method = "patch",
        operation_id = "update_server"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
        body: Json<UpdateServer>,
    ) -> ApiResult<Json<ServerView>> {
        let server = load_server(&state, &id).await?;
        let mut issues = Vec::new();
        let changes = ServerChanges {
            name: body.name.clone(),
            cluster_id: body_id(&body.cluster_id, "cluster_id", ClusterId, &mut issues),
            vswitch_id: body_id(&body.vswitch_id, "vswitch_id", VswitchId, &mut issues),
        };
        if !issues.is_empty() {
            return Err(ApiError::invalid("server", issues));
        }
        let updated = update_server(&state.store, &state.providers, server.id, &changes).await?;
        tracing::info!(server = %updated.inventory.name, by = ?auth.principal(), "server updated");
        Ok(Json(server_view(&state, updated).await?))
    }
}

/// A reference in the body: `None` when absent, `Some(None)` for `null`; an id that is not a
/// positive number is an issue at `field`.
fn body_id<T>(
    value: &MaybeUndefined<String>,
    field: &str,
    make: fn(i64) -> T,
    issues: &mut Vec<IssueBody>,
) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(text) => match text.parse::<i64>().ok().filter(|id| *id > 0) {
            Some(id) => Some(Some(make(id))),
            None => {
                issues.push(IssueBody {
                    path: field.to_owned(),
                    message: format!("{text:?} is not an id"),
                });
                None
            }
        },
    }
}

/// A server's view with its state, from its newest bootstrap job.
async fn server_view(state: &AppState, server: Server) -> ApiResult<ServerView> {
    let bootstraps = state
        .store
        .latest_jobs_by_server(JobKind::Bootstrap.as_str())
        .await?;
    let latest = bootstraps.get(&server.id).cloned();
    let machine_config = state.store.machine_config_for_server(server.id).await?;
    Ok(with_expected_hostname(
        server_view_of(server, latest.as_ref()),
        machine_config.as_ref().map(|m| m.fields.hostname.as_str()),
    ))
}

/// The bootstrap choices of a request.
fn bootstrap_args(
    disk: Option<String>,
    talos_version: Option<String>,
    schematic: Option<&str>,
) -> ApiResult<BootstrapArgs> {
    let schematic_id = schematic
        .map(|text| super::ids::parse_id("schematic", text, SchematicId))
        .transpose()?;
    let choices = BootstrapChoices::from_request(disk, talos_version, schematic_id)?;
    Ok(BootstrapArgs {
        choices,
        force: false,
    })
}

/// The queued bootstrap.
#[derive(Debug, poem_openapi::ApiResponse)]
enum BootstrapAccepted {
    /// The bootstrap job, queued.
    #[oai(status = 202)]
    Accepted(Json<talos_manager_api_types::JobView>),
}
