//! A server bound to a config template, with the per-node values an admin did not give
//! decided here: the one code path of the API's `POST /machine-configs`, for embedders too
//! ([`Store::put_machine_config`] alone stores exactly what it is given).

use time::OffsetDateTime;

use crate::ValidationError;
use crate::ids::ConfigId;
use crate::node_identity::default_private_ip;
use crate::store::{MachineConfigFields, Server, ServerMachineConfig, Store, StoreError};
use crate::talos::MachineType;

/// The install disk of a server that was never bootstrapped by talos-manager (as the original).
pub const FALLBACK_INSTALL_DISK: &str = "/dev/sda";

/// What an admin chooses when configuring a server; what is `None` gets its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfigChoices {
    /// The config template.
    pub config_id: ConfigId,
    /// Default: the server's name.
    pub hostname: Option<String>,
    /// Default: the hostname's convention ([`default_private_ip`]), else empty (which
    /// validation refuses).
    pub private_ip: Option<String>,
    /// Default: the disk the server was bootstrapped on, else [`FALLBACK_INSTALL_DISK`].
    pub install_disk: Option<String>,
    /// The disk for the EPHEMERAL volume (`wwid:…` or `uuid:…`); none by default.
    pub ephemeral_disk_identifier: Option<String>,
    /// Default: a new machine config takes the type of the server's name, a replaced one
    /// keeps its type ([`Store::put_machine_config_as`]).
    pub machine_type: Option<MachineType>,
    /// The node was configured outside talos-manager: it is marked configured now.
    pub already_configured: bool,
}

/// Why a server could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum AssignMachineConfigError {
    /// A value (given or defaulted) is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The config template does not exist, or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Configures `server` with `choices`, replacing its previous machine config: the defaults
/// applied, the values validated, the binding stored, and the server marked configured when
/// `already_configured`. Handing the config to a node that waits for one is the caller's
/// (the `push_config` job).
pub async fn assign_machine_config(
    store: &Store,
    server: &Server,
    choices: MachineConfigChoices,
) -> Result<ServerMachineConfig, AssignMachineConfigError> {
    let config = store.get_config(choices.config_id).await?;
    let hostname = choices
        .hostname
        .unwrap_or_else(|| server.inventory.name.clone());
    let private_ip = choices
        .private_ip
        .or_else(|| default_private_ip(&hostname))
        .unwrap_or_default();
    let install_disk = choices
        .install_disk
        .or_else(|| server.bootstrap_disk.clone())
        .unwrap_or_else(|| FALLBACK_INSTALL_DISK.to_owned());
    let fields = MachineConfigFields {
        config_id: config.id,
        hostname,
        private_ip,
        install_disk,
        ephemeral_disk_identifier: choices.ephemeral_disk_identifier,
    };
    fields.validate()?;
    let machine_config = store
        .put_machine_config_as(server.id, &fields, choices.machine_type)
        .await?;
    if choices.already_configured {
        store
            .mark_server_configured(server.id, OffsetDateTime::now_utc())
            .await?;
    }
    Ok(machine_config)
}
