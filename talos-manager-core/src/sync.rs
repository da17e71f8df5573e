//! Fleet sync: brings the stored servers and Robot vSwitches in line with what every provider
//! account reports.
//!
//! For each provider account, [`sync_account`] lists the account's vSwitches (Robot) and servers,
//! upserts them by (provider, provider id), and deletes the stored servers of that account the
//! provider no longer lists (their machine configs go with them, one log line each). Local
//! fields (cluster, machine config, probe results) are never touched. [`sync_all`] does this for
//! every stored account, building each account's client with a [`ProviderFactory`]; one failing
//! account is recorded in the [`SyncReport`] and does not stop the others.
//!
//! Probing servers over SSH after sync (issue 4 item 6) is not done here yet; [`ServerProber`]
//! is the hook it will use.
// TODO(issue 4 item 6): probe every synced server through `ServerProber` with bounded
// concurrency and a short timeout, and report how many were reachable.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::Secret;
use crate::ids::{ProviderAccountId, VswitchId};
use crate::provider::{
    HetznerCloud, HetznerRobot, Provider, ProviderError, ProviderKind, ProviderServer, RetryPolicy,
    VswitchProvider,
};
use crate::store::{ProbeResult, Server, ServerInventory, ServerUpsert, Store, StoreError};

/// Builds the provider clients of a stored account from its kind, name and secret, against
/// configurable base URLs (the real Hetzner endpoints, or fakes in tests).
#[derive(Debug, Clone)]
pub struct ProviderFactory {
    robot_url: String,
    cloud_url: String,
    policy: Option<RetryPolicy>,
}

/// The clients of one provider account: the servers, and the vSwitches when the provider has
/// them (Robot).
#[derive(Clone)]
pub struct AccountProviders {
    /// Servers of the account.
    pub provider: Arc<dyn Provider>,
    /// vSwitches of the account; `None` for providers without them (Cloud).
    pub vswitches: Option<Arc<dyn VswitchProvider>>,
}

impl std::fmt::Debug for AccountProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountProviders")
            .field("kind", &self.provider.kind())
            .field("vswitches", &self.vswitches.is_some())
            .finish()
    }
}

impl Default for ProviderFactory {
    fn default() -> Self {
        ProviderFactory::new(HetznerRobot::DEFAULT_URL, HetznerCloud::DEFAULT_URL)
    }
}

impl ProviderFactory {
    /// A factory for the Robot API at `robot_url` and the Cloud API at `cloud_url`, with the
    /// clients' default retry policy.
    pub fn new(robot_url: impl Into<String>, cloud_url: impl Into<String>) -> Self {
        ProviderFactory {
            robot_url: robot_url.into(),
            cloud_url: cloud_url.into(),
            policy: None,
        }
    }

    /// The same factory with its own retry policy (tests use [`RetryPolicy::for_fakes`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The Robot base URL.
    pub fn robot_url(&self) -> &str {
        &self.robot_url
    }

    /// The Cloud base URL.
    pub fn cloud_url(&self) -> &str {
        &self.cloud_url
    }

    /// The clients for an account: Robot takes the name as webservice user and the secret as
    /// password, Cloud takes the secret as API token.
    pub fn build(
        &self,
        kind: ProviderKind,
        name: &str,
        secret: Secret<String>,
    ) -> Result<AccountProviders, ProviderError> {
        match kind {
            ProviderKind::HetznerRobot => {
                let robot = Arc::new(match &self.policy {
                    Some(policy) => {
                        HetznerRobot::with_policy(&self.robot_url, name, secret, policy.clone())?
                    }
                    None => HetznerRobot::new(&self.robot_url, name, secret)?,
                });
                Ok(AccountProviders {
                    provider: robot.clone(),
                    vswitches: Some(robot),
                })
            }
            ProviderKind::HetznerCloud => {
                let cloud = Arc::new(match &self.policy {
                    Some(policy) => {
                        HetznerCloud::with_policy(&self.cloud_url, secret, policy.clone())?
                    }
                    None => HetznerCloud::new(&self.cloud_url, secret)?,
                });
                Ok(AccountProviders {
                    provider: cloud,
                    vswitches: None,
                })
            }
        }
    }
}

/// Probes a server over SSH after sync: in rescue it is accessible with its UUID and disks.
///
/// Not called by sync yet (see the module's TODO); the installer's `probe` will implement it.
#[async_trait]
pub trait ServerProber: Send + Sync {
    /// Probes one server.
    async fn probe(&self, server: &Server) -> ProbeResult;
}

/// Why syncing one account failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The account's client could not be built.
    #[error("could not build the client for provider account {account_id}")]
    BuildProvider {
        /// The account.
        account_id: ProviderAccountId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Listing the account's vSwitches failed.
    #[error("could not list the vswitches of provider account {account_id}")]
    ListVswitches {
        /// The account.
        account_id: ProviderAccountId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Listing the account's servers failed.
    #[error("could not list the servers of provider account {account_id}")]
    ListServers {
        /// The account.
        account_id: ProviderAccountId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Reading or writing the store failed.
    #[error("could not store the synced inventory of provider account {account_id}")]
    Store {
        /// The account.
        account_id: ProviderAccountId,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// What syncing one account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountReport {
    /// Servers new to talos-manager.
    pub added: usize,
    /// Known servers written again.
    pub updated: usize,
    /// Servers deleted because the provider no longer lists them (provider ids).
    pub removed: Vec<String>,
    /// vSwitches upserted.
    pub vswitches: usize,
}

/// One account whose sync failed.
#[derive(Debug)]
pub struct AccountFailure {
    /// The account.
    pub account_id: ProviderAccountId,
    /// Its provider.
    pub provider: ProviderKind,
    /// Its name.
    pub name: String,
    /// What failed.
    pub error: SyncError,
}

/// What [`sync_all`] did, over every account.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Servers new to talos-manager.
    pub added: usize,
    /// Known servers written again.
    pub updated: usize,
    /// Servers deleted because their provider no longer lists them.
    pub removed: usize,
    /// Accounts synced without error.
    pub accounts_synced: usize,
    /// Accounts whose sync failed; the others were still synced.
    pub failures: Vec<AccountFailure>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} removed; {} account(s) synced, {} failed",
            self.added,
            self.updated,
            self.removed,
            self.accounts_synced,
            self.failures.len()
        )
    }
}

/// The stored inventory of a server as the provider reports it.
pub fn inventory(
    kind: ProviderKind,
    server: &ProviderServer,
    vswitch_id: Option<VswitchId>,
) -> ServerInventory {
    ServerInventory {
        provider: kind,
        provider_id: server.provider_id.clone(),
        name: server.name.clone(),
        ipv4: server.ipv4.map(|ip| ip.to_string()),
        ipv6: server.ipv6.map(|ip| ip.to_string()),
        product: server.product.clone(),
        data_center: server.data_center.clone(),
        status: server.status.clone(),
        cancelled: server.cancelled,
        architecture: server.architecture,
        vswitch_id,
    }
}

/// Syncs one account with its clients: vSwitches first (servers refer to them), then servers,
/// then deletes the account's servers the provider no longer lists.
pub async fn sync_account(
    store: &Store,
    account_id: ProviderAccountId,
    providers: &AccountProviders,
) -> Result<AccountReport, SyncError> {
    let store_error = |source| SyncError::Store { account_id, source };
    let kind = providers.provider.kind();
    let mut report = AccountReport::default();

    let mut membership: HashMap<String, VswitchId> = HashMap::new();
    if let Some(vswitches) = &providers.vswitches {
        let listed = vswitches
            .list_vswitches()
            .await
            .map_err(|source| SyncError::ListVswitches { account_id, source })?;
        for vswitch in &listed {
            let id = VswitchId(vswitch.id as i64);
            store
                .upsert_vswitch(id, account_id, &vswitch.name, i32::from(vswitch.vlan))
                .await
                .map_err(store_error)?;
            report.vswitches += 1;
            for server_id in &vswitch.server_ids {
                membership.entry(server_id.clone()).or_insert(id);
            }
        }
    }

    let servers = providers
        .provider
        .list_servers()
        .await
        .map_err(|source| SyncError::ListServers { account_id, source })?;
    let mut keep = Vec::with_capacity(servers.len());
    for server in &servers {
        let vswitch_id = membership.get(&server.provider_id).copied();
        let (_, upsert) = store
            .upsert_server(account_id, &inventory(kind, server, vswitch_id))
            .await
            .map_err(store_error)?;
        match upsert {
            ServerUpsert::Inserted => report.added += 1,
            ServerUpsert::Updated => report.updated += 1,
        }
        keep.push(server.provider_id.clone());
    }

    let removed = store
        .delete_servers_not_in(account_id, &keep)
        .await
        .map_err(store_error)?;
    for server in removed {
        tracing::info!(
            provider = %kind,
            provider_id = %server.inventory.provider_id,
            name = %server.inventory.name,
            "server no longer listed by its provider account {account_id}; deleted it and its machine config"
        );
        report.removed.push(server.inventory.provider_id);
    }
    Ok(report)
}

/// Syncs every stored provider account, building its clients with `factory`. A failing account
/// is logged and recorded in the report; the others are synced all the same. Only a failure to
/// list the accounts themselves is an error.
pub async fn sync_all(store: &Store, factory: &ProviderFactory) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport::default();
    for account in store.list_provider_accounts().await? {
        tracing::info!(
            provider = %account.provider,
            account = %account.name,
            "syncing provider account {}",
            account.id
        );
        let result = async {
            let secret = store
                .provider_account_secret(account.id)
                .await
                .map_err(|source| SyncError::Store {
                    account_id: account.id,
                    source,
                })?;
            let providers = factory
                .build(account.provider, &account.name, secret)
                .map_err(|source| SyncError::BuildProvider {
                    account_id: account.id,
                    source,
                })?;
            sync_account(store, account.id, &providers).await
        }
        .await;
        match result {
            Ok(account_report) => {
                tracing::info!(
                    provider = %account.provider,
                    account = %account.name,
                    "synced provider account {}: {} added, {} updated, {} removed, {} vswitches",
                    account.id,
                    account_report.added,
                    account_report.updated,
                    account_report.removed.len(),
                    account_report.vswitches
                );
                report.added += account_report.added;
                report.updated += account_report.updated;
                report.removed += account_report.removed.len();
                report.accounts_synced += 1;
            }
            Err(error) => {
                tracing::warn!(
                    provider = %account.provider,
                    account = %account.name,
                    "sync of provider account {} failed: {}",
                    account.id,
                    crate::error_chain(&error)
                );
                report.failures.push(AccountFailure {
                    account_id: account.id,
                    provider: account.provider,
                    name: account.name,
                    error,
                });
            }
        }
    }
    Ok(report)
}
