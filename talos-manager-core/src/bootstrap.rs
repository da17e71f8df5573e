//! From a stored server to the installer's [`BootstrapRequest`]: the disk it was seen with in
//! rescue, the Talos image (Image Factory schematic or a custom image per architecture) and the
//! `talos.config=` URL the node will fetch its config from. [`plan`]
//! then turns the request into the dry run and the steps the bootstrap job runs:
//! [`bootstrap_plan`] does both, for the API's dry run and the check before a bootstrap is
//! queued, and [`dry_run`] prints it for a server named by id or name (`talos-manager
//! bootstrap-plan`).

use crate::ids::{SchematicId, ServerId, ServerRef};
use crate::installer::{BlockDevice, BootstrapRequest, ImageSource, Plan, parse_lsblk, plan};
use crate::provider::Architecture;
use crate::store::{Server, Settings, Store, StoreError};
use crate::{Issue, ValidationError};

/// What a user may choose for a bootstrap; everything else comes from the server and settings.
///
/// The defaults are applied in one place, [`bootstrap_request`]; the HTTP API, the CLI and the
/// Terraform provider only pass the choices on. Serialised as a bootstrap job's arguments
/// (absent choices are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootstrapChoices {
    /// The target disk: a WWID (`eui.…`, `naa.…`, `0x…`) or a device (`/dev/nvme0n1`,
    /// `nvme0n1`). Default: the first disk that is not a RAID member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// The Talos version, `vX.Y.Z`. Default: the settings' version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talos_version: Option<String>,
    /// The schematic. Default: [`effective_schematic`]: the server's, else the settings'
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schematic_id: Option<SchematicId>,
}

impl BootstrapChoices {
    /// The choices of a request, where a blank disk or version means "no choice": the default
    /// applies. A version that is not one ([`check_talos_version`]) is refused.
    pub fn from_request(
        disk: Option<String>,
        talos_version: Option<String>,
        schematic_id: Option<SchematicId>,
    ) -> Result<BootstrapChoices, ValidationError> {
        let given = |text: Option<String>| text.filter(|text| !text.trim().is_empty());
        let choices = BootstrapChoices {
            disk: given(disk),
            talos_version: given(talos_version),
            schematic_id,
        };
        if let Some(version) = &choices.talos_version {
            check_talos_version("bootstrap", version)?;
        }
        Ok(choices)
    }
}

/// Refuses a Talos version that is not `vX.Y.Z` (with an optional pre-release suffix, as
/// `v1.11.0-beta.1`), wherever a user gives one (the settings' default, a bootstrap, an upgrade
/// runbook): it goes into image URLs and the runbooks' commands. `what` names the input in the
/// error.
pub fn check_talos_version(what: &'static str, version: &str) -> Result<(), ValidationError> {
    if is_talos_version(version) {
        return Ok(());
    }
    Err(ValidationError {
        what,
        issues: vec![Issue::new(
            "talos_version",
            format!("{version:?} is not a Talos version like v1.10.4"),
        )],
    })
}

/// Whether `version` is `vX.Y.Z`, optionally with a pre-release suffix (`v1.11.0-beta.1`).
fn is_talos_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let core = rest.split_once('-').map_or(rest, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// The schematic a server's Talos image is built from: the one `chosen` for this operation,
/// else the server's own, else the settings' default; `None` when there is none of them.
///
/// This is the one rule for it: bootstrap, rolling upgrades and the upgrade runbook all ask
/// here.
pub fn effective_schematic(
    chosen: Option<SchematicId>,
    server: &Server,
    settings: &Settings,
) -> Option<SchematicId> {
    chosen
        .or(server.schematic_id)
        .or(settings.default_schematic_id)
}

/// Where images and configs come from, from the service's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapEnvironment {
    /// `HOST`: the public host name nodes reach talos-manager at.
    pub host: Option<String>,
    /// `TALOS_IMAGE_FACTORY_URL`.
    pub image_factory_url: String,
    /// `TALOS_AMD64_IMAGE_URL`: a custom image for amd64 servers (grub injection).
    pub amd64_image_url: Option<String>,
    /// `TALOS_ARM64_IMAGE_URL`: a custom image for arm64 servers (grub injection).
    pub arm64_image_url: Option<String>,
}

/// Why no bootstrap can be planned for the server.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapPlanError {
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's disks are unknown: it was never probed in rescue.
    #[error("server {server} has not been seen in rescue yet: enter rescue mode, then sync")]
    NotProbed {
        /// The server's name.
        server: String,
    },
    /// The recorded lsblk output does not parse.
    #[error("the disks recorded for server {server} cannot be read")]
    Lsblk {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The chosen disk is not among the server's disks.
    #[error("server {server} has no disk {disk}")]
    NoSuchDisk {
        /// The server's name.
        server: String,
        /// The disk asked for.
        disk: String,
    },
    /// No disk qualifies (every disk is a RAID member, or none exists).
    #[error("server {server} has no disk outside a RAID array: choose one explicitly")]
    NoDisk {
        /// The server's name.
        server: String,
    },
    /// The chosen disk belongs to a RAID array.
    #[error("disk {disk} of server {server} is a member of RAID {arrays}: choose another disk")]
    RaidMember {
        /// The server's name.
        server: String,
        /// The disk.
        disk: String,
        /// The arrays it belongs to.
        arrays: String,
    },
    /// `HOST` is unset, so no `talos.config=` URL can be given to the node.
    #[error("HOST is not set: the node needs https://HOST/config to fetch its config")]
    NoHost,
    /// Neither a custom image nor an Image Factory schematic is configured.
    #[error(
        "no Talos image for {architecture} servers: register an Image Factory schematic (and pick it or make it the default), or set TALOS_{upper}_IMAGE_URL",
        upper = architecture.as_str().to_uppercase()
    )]
    NoImage {
        /// The server's architecture.
        architecture: Architecture,
    },
}

/// The bootstrap request for a server, as the dry run and the bootstrap job use it.
pub async fn bootstrap_request(
    store: &Store,
    server_id: ServerId,
    choices: &BootstrapChoices,
    environment: &BootstrapEnvironment,
) -> Result<BootstrapRequest, BootstrapPlanError> {
    let server = store.get_server(server_id).await?;
    let name = server.inventory.name.clone();
    let lsblk = server
        .lsblk
        .as_deref()
        .ok_or_else(|| BootstrapPlanError::NotProbed {
            server: name.clone(),
        })?;
    let disks = parse_lsblk(lsblk).map_err(|source| BootstrapPlanError::Lsblk {
        server: name.clone(),
        source,
    })?;
    let disk = choose_disk(&name, &disks, choices.disk.as_deref())?;
    let host = environment
        .host
        .as_deref()
        .ok_or(BootstrapPlanError::NoHost)?;
    let image = resolve_image(store, &server, choices, environment).await?;
    Ok(BootstrapRequest {
        server: name,
        disk,
        image,
        talos_config_url: format!("https://{host}/config?uuid=${{uuid}}"),
        image_size: None,
    })
}

/// The image a bootstrap of the server would write, as [`bootstrap_request`] chooses it: the
/// custom image of its architecture when one is set, else the Image Factory image of its
/// [`effective_schematic`] at the chosen (else the settings') Talos version. Needs no probe, so
/// the bootstrap job checks the image exists ([`check_image`](crate::installer::check_image))
/// before it reboots the server into rescue or touches its disk.
pub async fn bootstrap_image(
    store: &Store,
    server_id: ServerId,
    choices: &BootstrapChoices,
    environment: &BootstrapEnvironment,
) -> Result<ImageSource, BootstrapPlanError> {
    let server = store.get_server(server_id).await?;
    resolve_image(store, &server, choices, environment).await
}

/// The one rule for the image of [`bootstrap_image`] and [`bootstrap_request`].
async fn resolve_image(
    store: &Store,
    server: &Server,
    choices: &BootstrapChoices,
    environment: &BootstrapEnvironment,
) -> Result<ImageSource, BootstrapPlanError> {
    let architecture = server.inventory.architecture;
    let custom = match architecture {
        Architecture::Amd64 => environment.amd64_image_url.clone(),
        Architecture::Arm64 => environment.arm64_image_url.clone(),
    };
    let settings = store.settings().await?;
    Ok(match custom {
        Some(url) => ImageSource::Custom { url },
        None => {
            let schematic_id = effective_schematic(choices.schematic_id, server, &settings)
                .ok_or(BootstrapPlanError::NoImage { architecture })?;
            let schematic = store.get_schematic(schematic_id).await?;
            let factory_id = schematic
                .fields
                .factory_id
                .ok_or(BootstrapPlanError::NoImage { architecture })?;
            ImageSource::Factory {
                base_url: environment
                    .image_factory_url
                    .trim_end_matches('/')
                    .to_owned(),
                schematic: factory_id,
                version: choices
                    .talos_version
                    .clone()
                    .unwrap_or(settings.talos_version),
                architecture,
            }
        }
    })
}

/// The bootstrap request and plan of a stored server: the one code path of the dry run, for
/// the command line and the API, and the check of the choices before a bootstrap is queued.
pub async fn bootstrap_plan(
    store: &Store,
    environment: &BootstrapEnvironment,
    server_id: ServerId,
    choices: &BootstrapChoices,
) -> Result<(BootstrapRequest, Plan), BootstrapPlanError> {
    let request = bootstrap_request(store, server_id, choices, environment).await?;
    let plan = plan(&request);
    Ok((request, plan))
}

/// Why no dry run could be printed for a server named by id or name.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// No server has that id or name.
    #[error("no server is named or has the id {0:?} (ids look like robot-1234567 or cloud-42)")]
    NoSuchServer(String),
    /// Several servers have that name.
    #[error("{0} servers are named {1:?}: give the id instead (robot-… or cloud-…)")]
    Ambiguous(usize, String),
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plan cannot be made.
    #[error(transparent)]
    Plan(#[from] BootstrapPlanError),
}

/// The dry run (the plan's text) for `server`: its id (`robot-<n>`, `cloud-<id>`), else its
/// name, which must be unique.
pub async fn dry_run(
    store: &Store,
    environment: &BootstrapEnvironment,
    server: &str,
    choices: &BootstrapChoices,
) -> Result<String, DryRunError> {
    let server_id = find_server(store, server).await?;
    let (_, plan) = bootstrap_plan(store, environment, server_id, choices).await?;
    Ok(plan.to_string())
}

/// The stored server `text` names: by id first, else by name.
async fn find_server(store: &Store, text: &str) -> Result<ServerId, DryRunError> {
    let servers = store.list_servers().await?;
    let by_id: Vec<_> = match text.parse::<ServerRef>() {
        Ok(server_ref) => servers
            .iter()
            .filter(|candidate| {
                candidate.inventory.provider == server_ref.provider
                    && candidate.inventory.provider_id == server_ref.provider_id
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let matches = if by_id.is_empty() {
        servers
            .iter()
            .filter(|candidate| candidate.inventory.name == text)
            .collect()
    } else {
        by_id
    };
    match matches.as_slice() {
        [] => Err(DryRunError::NoSuchServer(text.to_owned())),
        [one] => Ok(one.id),
        many => Err(DryRunError::Ambiguous(many.len(), text.to_owned())),
    }
}

fn choose_disk(
    server: &str,
    disks: &[BlockDevice],
    chosen: Option<&str>,
) -> Result<BlockDevice, BootstrapPlanError> {
    let whole_disks = || disks.iter().filter(|disk| disk.kind == "disk");
    let disk = match chosen {
        Some(id) => {
            let bare = id.strip_prefix("/dev/").unwrap_or(id);
            let wwid = crate::installer::normalize_wwn(bare);
            whole_disks()
                .find(|disk| disk.name == bare || disk.wwid().as_deref() == Some(wwid.as_str()))
                .ok_or_else(|| BootstrapPlanError::NoSuchDisk {
                    server: server.to_owned(),
                    disk: id.to_owned(),
                })?
        }
        None => whole_disks()
            .find(|disk| disk.raid_arrays.is_empty())
            .ok_or_else(|| BootstrapPlanError::NoDisk {
                server: server.to_owned(),
            })?,
    };
    if !disk.raid_arrays.is_empty() {
        return Err(BootstrapPlanError::RaidMember {
            server: server.to_owned(),
            disk: disk.path(),
            arrays: disk.raid_arrays.join(", "),
        });
    }
    Ok(disk.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talos_versions() {
        for good in ["v1.10.4", "v1.11.0-beta.1", "v2.0.10"] {
            assert!(super::is_talos_version(good), "{good}");
        }
        for bad in ["1.10.4", "v1.10", "v1.x.4", "latest", "v1.10.4.1"] {
            assert!(!super::is_talos_version(bad), "{bad}");
        }
    }

    const LSBLK: &str = include_str!("../tests/data/installer/lsblk.json");

    #[test]
    fn disks_are_chosen_by_wwid_or_name_and_raid_members_refused() {
        let disks = parse_lsblk(LSBLK).unwrap();
        let error = choose_disk("worker-1", &disks, Some("/dev/sdz")).unwrap_err();
        assert_eq!(error.to_string(), "server worker-1 has no disk /dev/sdz");
        let members: Vec<&BlockDevice> =
            disks.iter().filter(|d| !d.raid_arrays.is_empty()).collect();
        assert!(!members.is_empty(), "the fixture has a RAID");
        let error = choose_disk("worker-1", &disks, Some(&members[0].name)).unwrap_err();
        assert!(error.to_string().contains("is a member of RAID"), "{error}");
        // The fixture's nvme1n1 is outside its RAID: the default.
        let default = choose_disk("worker-1", &disks, None).unwrap();
        assert_eq!(default.path(), "/dev/nvme1n1");
        let by_wwid = choose_disk(
            "worker-1",
            &disks,
            Some("eui.36344630528029720025384500000002"),
        );
        assert_eq!(by_wwid.unwrap().path(), "/dev/nvme1n1");
        let only_raid: Vec<BlockDevice> = disks
            .iter()
            .filter(|d| !d.raid_arrays.is_empty())
            .cloned()
            .collect();
        let error = choose_disk("worker-1", &only_raid, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "server worker-1 has no disk outside a RAID array: choose one explicitly"
        );
    }
}
