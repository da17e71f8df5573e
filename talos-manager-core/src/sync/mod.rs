//! Fleet sync: brings the stored servers and Robot vSwitches in line with what every provider
//! account reports, then probes every server over SSH.
//!
//! For each provider account, [`sync_account`] lists the account's vSwitches (Robot) and servers,
//! upserts them by (provider, provider id), deletes the stored vSwitches the account no longer
//! lists (servers and clusters that used one lose the reference, one log line each), and deletes
//! the stored servers of that account the provider no longer lists (their machine configs go with
//! them, one log line each). Local fields (cluster, machine config, probe results) are never
//! touched. [`sync_all`] does this for every stored account, building each account's client with
//! a [`ProviderFactory`]; one failing account is recorded in the [`SyncReport`] and does not stop
//! the others.
//!
//! Then [`sync_all`] probes every stored server with a [`ServerProber`] ([`SshProber`] in the
//! service), [`DEFAULT_PROBE_CONCURRENCY`] at a time: a server in rescue becomes accessible with
//! its SMBIOS UUID and disks recorded, any other becomes not accessible and keeps what an earlier
//! probe recorded. Without a prober (no SSH private key configured) probing is skipped and the
//! report says so. The report counts the reachable servers and groups the others by reason.

mod probe;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::Secret;
use crate::ids::{ProviderAccountId, VswitchId};
use crate::provider::{
    HetznerCloud, HetznerRobot, Provider, ProviderError, ProviderKind, ProviderServer, RetryPolicy,
    VswitchProvider,
};
use crate::store::{ServerInventory, ServerUpsert, Store, StoreError};

pub use probe::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PROBE_CONCURRENCY, DEFAULT_PROBE_TIMEOUT, FailureGroup,
    ProbeFailure, ProbeSummary, ServerProber, SshProber, probe_servers,
};

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
    /// vSwitches deleted because the provider no longer lists them.
    pub vswitches_removed: Vec<VswitchId>,
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
    /// vSwitches deleted because their account no longer lists them.
    pub vswitches_removed: usize,
    /// What probing found; `None` when probing was skipped (no prober, i.e. no SSH key).
    pub probe: Option<ProbeSummary>,
    /// Accounts synced without error.
    pub accounts_synced: usize,
    /// Accounts whose sync failed; the others were still synced.
    pub failures: Vec<AccountFailure>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} removed, {} vswitch(es) removed; {} account(s) synced, {} \
             failed; ",
            self.added,
            self.updated,
            self.removed,
            self.vswitches_removed,
            self.accounts_synced,
            self.failures.len()
        )?;
        match &self.probe {
            Some(summary) => write!(f, "probe: {summary}"),
            None => f.write_str("probing skipped: no SSH private key configured"),
        }
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

/// Syncs one account with its clients: vSwitches first (servers refer to them; the ones the
/// account no longer lists are deleted), then servers, then deletes the account's servers the
/// provider no longer lists. Does not probe: [`sync_all`] does, once every account is synced.
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
        let mut listed_ids = HashSet::with_capacity(listed.len());
        for vswitch in &listed {
            let id = VswitchId(vswitch.id as i64);
            store
                .upsert_vswitch(id, account_id, &vswitch.name, i32::from(vswitch.vlan))
                .await
                .map_err(store_error)?;
            report.vswitches += 1;
            listed_ids.insert(id);
            for server_id in &vswitch.server_ids {
                membership.entry(server_id.clone()).or_insert(id);
            }
        }
        report.vswitches_removed = remove_vanished_vswitches(store, account_id, &listed_ids)
            .await
            .map_err(store_error)?;
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

/// Deletes the account's stored vSwitches that are not in `listed`, before the servers are
/// upserted: the servers and clusters that used one lose the reference (the database sets it to
/// NULL), each with a log line, since a cluster without its vSwitch has no `${vlan}`.
async fn remove_vanished_vswitches(
    store: &Store,
    account_id: ProviderAccountId,
    listed: &HashSet<VswitchId>,
) -> Result<Vec<VswitchId>, StoreError> {
    let vanished: Vec<_> = store
        .list_vswitches()
        .await?
        .into_iter()
        .filter(|vswitch| {
            vswitch.provider_account_id == account_id && !listed.contains(&vswitch.id)
        })
        .collect();
    if vanished.is_empty() {
        return Ok(Vec::new());
    }
    let servers = store.list_servers().await?;
    let clusters = store.list_clusters().await?;
    let mut removed = Vec::with_capacity(vanished.len());
    for vswitch in vanished {
        for server in servers
            .iter()
            .filter(|server| server.inventory.vswitch_id == Some(vswitch.id))
        {
            tracing::info!(
                provider_id = %server.inventory.provider_id,
                name = %server.inventory.name,
                "vswitch {} ({:?}) is no longer listed by provider account {account_id}; server {} \
                 is no longer attached to it",
                vswitch.id,
                vswitch.name,
                server.inventory.name
            );
        }
        for cluster in clusters
            .iter()
            .filter(|cluster| cluster.vswitch_id == Some(vswitch.id))
        {
            tracing::warn!(
                cluster = %cluster.name,
                "vswitch {} ({:?}) is no longer listed by provider account {account_id}; cluster {} \
                 has no vswitch now, so ${{vlan}} is empty in its patches",
                vswitch.id,
                vswitch.name,
                cluster.name
            );
        }
        match store.delete_vswitch(vswitch.id).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        tracing::info!(
            "vswitch {} ({:?}) is no longer listed by provider account {account_id}; deleted it",
            vswitch.id,
            vswitch.name
        );
        removed.push(vswitch.id);
    }
    Ok(removed)
}

/// Syncs every stored provider account, building its clients with `factory`, then probes every
/// stored server with `prober` (skipped, with one log line, when there is none). A failing
/// account is logged and recorded in the report; the others are synced all the same, and every
/// server is probed. Only a failure to list the accounts or servers themselves, or to record a
/// probe, is an error.
pub async fn sync_all(
    store: &Store,
    factory: &ProviderFactory,
    prober: Option<Arc<dyn ServerProber>>,
) -> Result<SyncReport, StoreError> {
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
                    "synced provider account {}: {} added, {} updated, {} removed, {} vswitches ({} \
                     removed)",
                    account.id,
                    account_report.added,
                    account_report.updated,
                    account_report.removed.len(),
                    account_report.vswitches,
                    account_report.vswitches_removed.len()
                );
                report.added += account_report.added;
                report.updated += account_report.updated;
                report.removed += account_report.removed.len();
                report.vswitches_removed += account_report.vswitches_removed.len();
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
    match prober {
        Some(prober) => {
            let servers = store.list_servers().await?;
            let summary = probe_servers(store, prober, servers, DEFAULT_PROBE_CONCURRENCY).await?;
            tracing::info!("probed the servers over SSH: {summary}");
            report.probe = Some(summary);
        }
        None => tracing::info!("no SSH private key configured: servers are not probed"),
    }
    Ok(report)
}
