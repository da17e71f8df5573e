//! Operator edits of a server ([`update_server`]): a new name or vSwitch is pushed to the
//! provider before it is stored, the cluster is local.
//!
//! # Expected flow
//! 1. Every change is checked first (a name that is not empty, a cluster and vSwitch that exist, a
//!    vSwitch of the server's own Robot account, no vSwitch for Cloud servers); every problem is
//!    reported at once as a [`ValidationError`].
//! 2. A new name goes to the provider (Robot `POST /server/{n}`, Cloud `PUT /servers/{id}`); the
//!    stored name is the one the provider answers with.
//! 3. A new vSwitch: Robot removes the server from its old vSwitch, then adds it to the new one.
//! 4. The changes are stored together.
//!
//! # Guarantees
//! When a provider call fails nothing is stored, so the stored server stays as it was. A rename
//! that succeeded before a failing vSwitch change is then only at the provider, and the next sync
//! brings its name into the store (sync always stores what the provider lists).

use crate::Secret;
use crate::ids::{ClusterId, ProviderAccountId, ServerId, VswitchId};
use crate::provider::{AccountProviders, ProviderError, ProviderFactory, ProviderKind};
use crate::store::{Server, ServerFieldChanges, Store, StoreError};
use crate::{Issue, ValidationError};

/// What to change on a server; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerChanges {
    /// A new name, pushed to the provider.
    pub name: Option<String>,
    /// The cluster (`Some(None)`: none); local.
    pub cluster_id: Option<Option<ClusterId>>,
    /// The Robot vSwitch (`Some(None)`: none), changed at Robot.
    pub vswitch_id: Option<Option<VswitchId>>,
}

/// Why [`update_server`] changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerUpdateError {
    /// A change is not possible; every issue is listed (paths `name`, `cluster_id`,
    /// `vswitch_id`).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The client of the server's provider account could not be built.
    #[error("could not build the client of provider account {account_id}")]
    BuildProvider {
        /// The account.
        account_id: ProviderAccountId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The provider did not rename the server.
    #[error("could not rename server {server} at its provider")]
    Rename {
        /// The server's current name.
        server: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Robot did not remove the server from its vSwitch.
    #[error("could not remove server {server} from vswitch {vswitch_id}")]
    LeaveVswitch {
        /// The server's name.
        server: String,
        /// The vSwitch it stays in.
        vswitch_id: VswitchId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Robot did not add the server to the vSwitch.
    #[error("could not add server {server} to vswitch {vswitch_id}")]
    JoinVswitch {
        /// The server's name.
        server: String,
        /// The vSwitch it was to join.
        vswitch_id: VswitchId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServerUpdateError {
    /// The provider's error, for the failures of a provider call.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            ServerUpdateError::BuildProvider { source, .. }
            | ServerUpdateError::Rename { source, .. }
            | ServerUpdateError::LeaveVswitch { source, .. }
            | ServerUpdateError::JoinVswitch { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Applies `changes` to the server `id`: the provider first (name, vSwitch), then the store. See
/// the module's guide for the order and what a failure leaves behind.
///
/// # Errors
/// [`ServerUpdateError::Invalid`] with every problem found before anything changed, a provider
/// failure (the store is unchanged), or a store failure.
pub async fn update_server(
    store: &Store,
    factory: &ProviderFactory,
    id: ServerId,
    changes: &ServerChanges,
) -> Result<Server, ServerUpdateError> {
    let server = store.get_server(id).await?;
    let kind = server.inventory.provider;
    let mut issues = Vec::new();

    let name = match &changes.name {
        Some(name) if name.trim().is_empty() => {
            issues.push(Issue::new("name", "must not be empty"));
            None
        }
        Some(name) if *name != server.inventory.name => Some(name.clone()),
        _ => None,
    };
    if let Some(Some(cluster_id)) = changes.cluster_id {
        match store.get_cluster(cluster_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => issues.push(Issue::new(
                "cluster_id",
                format!("cluster {cluster_id} does not exist"),
            )),
            Err(error) => return Err(error.into()),
        }
    }
    let vswitch_change = match changes.vswitch_id {
        Some(wanted) if wanted != server.inventory.vswitch_id => Some(wanted),
        _ => None,
    };
    if let Some(Some(vswitch_id)) = vswitch_change {
        if kind != ProviderKind::HetznerRobot {
            issues.push(Issue::new(
                "vswitch_id",
                format!("vswitches are Hetzner Robot's; {kind} servers cannot join one"),
            ));
        } else {
            match store.get_vswitch(vswitch_id).await {
                Ok(vswitch) if vswitch.provider_account_id != server.provider_account_id => {
                    issues.push(Issue::new(
                        "vswitch_id",
                        format!(
                            "vswitch {vswitch_id} belongs to another Robot account than the server"
                        ),
                    ));
                }
                Ok(_) => {}
                Err(StoreError::NotFound { .. }) => issues.push(Issue::new(
                    "vswitch_id",
                    format!("vswitch {vswitch_id} does not exist (sync first if it is new)"),
                )),
                Err(error) => return Err(error.into()),
            }
        }
    }
    ValidationError::check("server", issues)?;

    let mut stored_name = None;
    if name.is_some() || vswitch_change.is_some() {
        let providers = account_providers(store, factory, server.provider_account_id).await?;
        if let Some(name) = &name {
            let renamed = providers
                .provider
                .rename_server(&server.inventory.provider_id, name)
                .await
                .map_err(|source| refused_input("name", source))
                .map_err(|error| match error {
                    Refusal::Invalid(invalid) => ServerUpdateError::Invalid(invalid),
                    Refusal::Failed(source) => ServerUpdateError::Rename {
                        server: server.inventory.name.clone(),
                        source,
                    },
                })?;
            tracing::info!(
                provider = %kind,
                provider_id = %server.inventory.provider_id,
                "renamed server {:?} to {:?} at its provider",
                server.inventory.name,
                renamed.name
            );
            stored_name = Some(renamed.name);
        }
        if let Some(wanted) = vswitch_change {
            change_vswitch(&providers, &server, wanted).await?;
        }
    }

    // Only what this request changed: a concurrent edit or sync of the other fields stands.
    Ok(store
        .update_server_fields(
            id,
            &ServerFieldChanges {
                name: stored_name,
                cluster_id: changes.cluster_id,
                vswitch_id: vswitch_change,
                schematic_id: None,
            },
        )
        .await?)
}

/// Moves a Robot server from its vSwitch (if any) to `wanted` (if any).
async fn change_vswitch(
    providers: &AccountProviders,
    server: &Server,
    wanted: Option<VswitchId>,
) -> Result<(), ServerUpdateError> {
    let name = &server.inventory.name;
    let provider_id = &server.inventory.provider_id;
    let Some(vswitches) = &providers.vswitches else {
        // Checked before: only Robot servers get here with a vSwitch to join, and a Cloud
        // server has none to leave.
        return Ok(());
    };
    if let Some(current) = server.inventory.vswitch_id {
        vswitches
            .remove_server_from_vswitch(current.0 as u64, provider_id)
            .await
            .map_err(|source| ServerUpdateError::LeaveVswitch {
                server: name.clone(),
                vswitch_id: current,
                source,
            })?;
        tracing::info!(provider_id = %provider_id, "removed server {name:?} from vswitch {current}");
    }
    if let Some(wanted) = wanted {
        vswitches
            .add_server_to_vswitch(wanted.0 as u64, provider_id)
            .await
            .map_err(|source| refused_input("vswitch_id", source))
            .map_err(|error| match error {
                Refusal::Invalid(invalid) => ServerUpdateError::Invalid(invalid),
                Refusal::Failed(source) => ServerUpdateError::JoinVswitch {
                    server: name.clone(),
                    vswitch_id: wanted,
                    source,
                },
            })?;
        tracing::info!(provider_id = %provider_id, "added server {name:?} to vswitch {wanted}");
    }
    Ok(())
}

async fn account_providers(
    store: &Store,
    factory: &ProviderFactory,
    account_id: ProviderAccountId,
) -> Result<AccountProviders, ServerUpdateError> {
    let account = store.get_provider_account(account_id).await?;
    let secret: Secret<String> = store.provider_account_secret(account_id).await?;
    factory
        .build(account.provider, &account.name, secret)
        .map_err(|source| ServerUpdateError::BuildProvider { account_id, source })
}

/// A provider call that failed: because the provider refused the value we sent (a name it does
/// not allow, a vSwitch the server cannot join), or for another reason.
enum Refusal {
    Invalid(ValidationError),
    Failed(ProviderError),
}

/// The provider error codes that mean "this value is not acceptable", not "try again".
const REFUSED_INPUT_CODES: &[&str] = &[
    // Robot.
    "INVALID_INPUT",
    "VSWITCH_NOT_AVAILABLE",
    "VSWITCH_VLAN_NOT_UNIQUE",
    "VSWITCH_SERVER_LIMIT_REACHED",
    "VSWITCH_PER_SERVER_LIMIT_REACHED",
    // Cloud.
    "invalid_input",
    "uniqueness_error",
];

fn refused_input(field: &str, error: ProviderError) -> Refusal {
    match (&error, error.code()) {
        (ProviderError::Api { provider, .. }, Some(code))
            if REFUSED_INPUT_CODES.contains(&code) =>
        {
            let message = error.message().unwrap_or(code);
            Refusal::Invalid(ValidationError {
                what: "server",
                issues: vec![Issue::new(
                    field,
                    format!("refused by {provider}: {message} ({code})"),
                )],
            })
        }
        _ => Refusal::Failed(error),
    }
}
