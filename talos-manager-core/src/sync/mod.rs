//! Fleet sync: brings the stored servers and Robot vSwitches in line with what every provider
//! account reports, then probes every server over SSH.
//!
//! For each provider account, [`sync_account`] lists the account's vSwitches (Robot) and servers
//! and upserts them by (provider, provider id). Local fields (cluster, machine config, probe
//! results) are never touched. [`sync_all`] does this for every stored account, building each
//! account's client with a [`ProviderFactory`]; one failing account is recorded in the
//! [`SyncReport`] and does not stop the others.
//!
//! # Inventory is never lost to one answer
//!
//! A server or vSwitch the account no longer lists is not deleted at once: it is *marked
//! missing* (`missing_since`, `missing_syncs`), shown as such in the API and the dashboard, and
//! keeps its cluster, machine config and vSwitch links. It is deleted (a server with its machine
//! config; a vSwitch detaching its servers and clusters) only once it has been missed by
//! [`SyncPolicy::missing_syncs`] syncs in a row **and** for [`SyncPolicy::missing_grace`]. One
//! that is listed again is un-marked. And a sync in which more than
//! [`SyncPolicy::max_missing_percent`] of an account's servers (and more than one) went missing
//! at once marks and deletes none of them and says why in the report and the job log: an empty
//! or short answer (Robot's 404 `SERVER_NOT_FOUND`, which is also how Robot says "no servers",
//! another webservice user's credentials) looks exactly like that.
//!
//! Then [`sync_all`] probes every stored server with a [`ServerProber`] ([`SshProber`] in the
//! service), [`DEFAULT_PROBE_CONCURRENCY`] at a time: a server in rescue becomes accessible with
//! its SMBIOS UUID and disks recorded, any other becomes not accessible and keeps what an earlier
//! probe recorded. Without a prober (no SSH private key configured) probing is skipped and the
//! report says so. The report counts the reachable servers and groups the others by reason.

mod probe;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::ids::{ProviderAccountId, VswitchId};
use crate::provider::{ProviderError, ProviderKind, ProviderServer, ProviderVswitch};
use crate::store::{ServerInventory, ServerUpsert, Store, StoreError};

// The factory lives in `provider/`; re-exported here, where sync, the jobs and the service
// have always found it.
pub use crate::provider::{AccountProviders, ProviderFactory};
pub use probe::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PROBE_CONCURRENCY, DEFAULT_PROBE_TIMEOUT, FailureGroup,
    ProbeFailure, ProbeSummary, ServerProber, SshProber, probe_servers,
};

/// When sync gives up on servers and vSwitches a provider account no longer lists
/// (`SYNC_MISSING_SYNCS`, `SYNC_MISSING_GRACE`, `SYNC_MAX_MISSING_PERCENT` in the service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Syncs in a row that must miss a server or vSwitch before it is deleted (at least 1).
    pub missing_syncs: u32,
    /// How long a server or vSwitch must have been missing before it is deleted.
    pub missing_grace: Duration,
    /// The share of an account's stored servers, in percent, that may go missing in one sync;
    /// above it (and above one server) the sync marks and deletes none and reports why.
    pub max_missing_percent: u8,
}

impl Default for SyncPolicy {
    /// 3 syncs in a row and 24 hours; at most 50 % of an account's servers missing at once.
    fn default() -> Self {
        SyncPolicy {
            missing_syncs: 3,
            missing_grace: Duration::from_secs(24 * 60 * 60),
            max_missing_percent: 50,
        }
    }
}

impl SyncPolicy {
    /// Whether `missing` newly unlisted servers out of `stored` is too many for one sync.
    pub fn too_many_missing(&self, missing: usize, stored: usize) -> bool {
        missing > 1 && missing * 100 > usize::from(self.max_missing_percent) * stored
    }

    /// Whether something missed by `missing_syncs` syncs in a row since `since` may go now.
    fn expired(
        &self,
        missing_syncs: i32,
        since: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> bool {
        let grace = time::Duration::try_from(self.missing_grace).unwrap_or(time::Duration::MAX);
        i64::from(missing_syncs) >= i64::from(self.missing_syncs.max(1))
            && since.is_some_and(|since| now - since >= grace)
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

impl SyncError {
    /// The provider's error, when the provider failed.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            SyncError::BuildProvider { source, .. }
            | SyncError::ListVswitches { source, .. }
            | SyncError::ListServers { source, .. } => Some(source),
            SyncError::Store { .. } => None,
        }
    }
}

/// What syncing one account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountReport {
    /// Servers new to talos-manager.
    pub added: usize,
    /// Known servers written again.
    pub updated: usize,
    /// Servers marked missing, and kept, because the provider no longer lists them (provider
    /// ids).
    pub missing: Vec<String>,
    /// Servers deleted because the provider has not listed them for long enough (provider ids).
    pub removed: Vec<String>,
    /// vSwitches upserted.
    pub vswitches: usize,
    /// vSwitches marked missing, and kept.
    pub vswitches_missing: Vec<VswitchId>,
    /// vSwitches deleted because the provider has not listed them for long enough.
    pub vswitches_removed: Vec<VswitchId>,
    /// Why the servers the account no longer lists were neither marked nor deleted, when too
    /// many went missing at once.
    pub held_back: Option<String>,
    /// Why the account's vSwitches were not synced (a spent request budget, an outage), when
    /// they were not; its servers were synced all the same and kept their vSwitches.
    pub vswitches_deferred: Option<String>,
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
    /// Servers marked missing (and kept) because their provider no longer lists them.
    pub missing: usize,
    /// Servers deleted because their provider has not listed them for long enough.
    pub removed: usize,
    /// vSwitches deleted because their account no longer lists them.
    pub vswitches_removed: usize,
    /// What probing found; `None` when probing was skipped (no prober, i.e. no SSH key).
    pub probe: Option<ProbeSummary>,
    /// Accounts synced without error.
    pub accounts_synced: usize,
    /// Accounts whose sync failed; the others were still synced.
    pub failures: Vec<AccountFailure>,
    /// Accounts skipped, without a request, because the provider refused their credentials
    /// (`credentials_refused_at`) and they have not changed since.
    pub credentials_refused: Vec<ProviderAccountId>,
    /// Accounts skipped, without a request, because the provider blocks the client address
    /// (`blocked_until`, Robot's 403 `BLOCKED`) and their credentials have not changed since.
    pub blocked: Vec<ProviderAccountId>,
    /// Accounts where too many servers went missing at once, so none was marked or deleted:
    /// `(account, why)`.
    pub held_back: Vec<(ProviderAccountId, String)>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} missing, {} removed, {} vswitch(es) removed; {} account(s) \
             synced, {} failed; ",
            self.added,
            self.updated,
            self.missing,
            self.removed,
            self.vswitches_removed,
            self.accounts_synced,
            self.failures.len()
        )?;
        for (account_id, why) in &self.held_back {
            write!(f, "account {account_id}: {why}; ")?;
        }
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

/// Whether the provider refused the account itself (credentials refused, or Robot blocking the
/// address after failed logins): sync stops sending requests for it at once.
fn is_refusal(error: &ProviderError) -> bool {
    matches!(error, ProviderError::Unauthorized { .. }) || error.code() == Some("BLOCKED")
}

/// What one sync reads from a provider account, before it changes the store.
#[derive(Debug)]
pub struct AccountListing {
    /// The account's vSwitches (`None` for providers without them), or why they could not be
    /// listed this time (a spent request budget, an outage): the servers are synced all the
    /// same and keep their vSwitches.
    pub vswitches: Option<Result<Vec<ProviderVswitch>, ProviderError>>,
    /// The account's servers.
    pub servers: Vec<ProviderServer>,
}

/// Sends the requests of one sync to the account's provider: its vSwitches (members from the
/// client's cache, see [`VswitchProvider::list_vswitches`](crate::provider::VswitchProvider))
/// then its servers. Refused credentials or a blocked address end it at once (another request
/// would make it worse); any other vSwitch failure is kept in the listing.
pub async fn read_account(
    account_id: ProviderAccountId,
    providers: &AccountProviders,
) -> Result<AccountListing, SyncError> {
    let vswitches = match &providers.vswitches {
        None => None,
        Some(vswitches) => match vswitches.list_vswitches().await {
            Err(source) if is_refusal(&source) => {
                return Err(SyncError::ListVswitches { account_id, source });
            }
            result => Some(result),
        },
    };
    let servers = providers
        .provider
        .list_servers()
        .await
        .map_err(|source| SyncError::ListServers { account_id, source })?;
    Ok(AccountListing { vswitches, servers })
}

/// [`sync_account_with`] under the default [`SyncPolicy`].
pub async fn sync_account(
    store: &Store,
    account_id: ProviderAccountId,
    providers: &AccountProviders,
) -> Result<AccountReport, SyncError> {
    sync_account_with(store, account_id, providers, &SyncPolicy::default()).await
}

/// Syncs one account with its clients: vSwitches first (servers refer to them), then servers;
/// what the account no longer lists is marked missing, and deleted under `policy` (see the
/// module's documentation). Does not probe: [`sync_all`] does, once every account is synced.
pub async fn sync_account_with(
    store: &Store,
    account_id: ProviderAccountId,
    providers: &AccountProviders,
    policy: &SyncPolicy,
) -> Result<AccountReport, SyncError> {
    let listing = read_account(account_id, providers).await?;
    let store_error = |source| SyncError::Store { account_id, source };
    let kind = providers.provider.kind();
    let mut report = AccountReport::default();
    let now = OffsetDateTime::now_utc();

    let mut membership: HashMap<String, VswitchId> = HashMap::new();
    // vSwitches whose members are not known this sync (missing but kept, or not read): their
    // servers keep the stored link.
    let mut kept_vswitches: HashSet<VswitchId> = HashSet::new();
    if let Some(vswitches) = listing.vswitches {
        let stored_vswitches: HashMap<VswitchId, _> = store
            .list_vswitches()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|vswitch| vswitch.provider_account_id == account_id)
            .map(|vswitch| (vswitch.id, vswitch))
            .collect();
        match vswitches {
            Ok(listed) => {
                let mut listed_ids = HashSet::with_capacity(listed.len());
                for vswitch in &listed {
                    let id = VswitchId(vswitch.id as i64);
                    let vlan = i32::from(vswitch.vlan);
                    // Written only when it changed (or was marked missing).
                    let unchanged = stored_vswitches.get(&id).is_some_and(|stored| {
                        stored.name == vswitch.name
                            && stored.vlan == vlan
                            && stored.missing_since.is_none()
                    });
                    if !unchanged {
                        store
                            .upsert_vswitch(id, account_id, &vswitch.name, vlan)
                            .await
                            .map_err(store_error)?;
                    }
                    report.vswitches += 1;
                    listed_ids.insert(id);
                    if !vswitch.members_known {
                        kept_vswitches.insert(id);
                    }
                    for server_id in &vswitch.server_ids {
                        membership.entry(server_id.clone()).or_insert(id);
                    }
                }
                let (missing, removed) =
                    handle_vanished_vswitches(store, account_id, &listed_ids, policy, now)
                        .await
                        .map_err(store_error)?;
                kept_vswitches.extend(missing.iter().copied());
                report.vswitches_missing = missing;
                report.vswitches_removed = removed;
            }
            // Anything else (a spent budget, an outage) defers the vSwitches: the servers are
            // still synced, and keep the vSwitches they had.
            Err(source) => {
                let why = format!(
                    "vswitches not synced this time, servers keep theirs: {}",
                    crate::error_chain(&source)
                );
                tracing::warn!(provider = %kind, "provider account {account_id}: {why}");
                kept_vswitches.extend(stored_vswitches.keys().copied());
                report.vswitches_deferred = Some(why);
            }
        }
    }

    let servers = listing.servers;
    let stored = store
        .list_servers_of_account(account_id)
        .await
        .map_err(store_error)?;
    let listed: HashSet<&str> = servers
        .iter()
        .map(|server| server.provider_id.as_str())
        .collect();
    for server in &servers {
        let kept_link = stored
            .iter()
            .find(|stored| stored.inventory.provider_id == server.provider_id)
            .and_then(|stored| stored.inventory.vswitch_id)
            .filter(|id| kept_vswitches.contains(id));
        let vswitch_id = membership.get(&server.provider_id).copied().or(kept_link);
        let (_, upsert) = store
            .upsert_server(account_id, &inventory(kind, server, vswitch_id))
            .await
            .map_err(store_error)?;
        match upsert {
            ServerUpsert::Inserted => report.added += 1,
            ServerUpsert::Updated => report.updated += 1,
        }
    }

    let unlisted: Vec<_> = stored
        .iter()
        .filter(|server| !listed.contains(server.inventory.provider_id.as_str()))
        .collect();
    let newly_missing = unlisted
        .iter()
        .filter(|server| server.missing_since.is_none())
        .count();
    if policy.too_many_missing(newly_missing, stored.len()) {
        let why = format!(
            "{newly_missing} of its {} servers are no longer listed at once (more than {} %): \
             none was marked missing or deleted; check the account's credentials and the \
             provider, or raise SYNC_MAX_MISSING_PERCENT if they are really gone",
            stored.len(),
            policy.max_missing_percent
        );
        tracing::warn!(provider = %kind, "provider account {account_id}: {why}");
        report.held_back = Some(why);
        return Ok(report);
    }
    for server in unlisted {
        let marked = store
            .mark_server_missing(server.id, now)
            .await
            .map_err(store_error)?;
        let provider_id = marked.inventory.provider_id.clone();
        if policy.expired(marked.missing_syncs, marked.missing_since, now) {
            match store.delete_server(marked.id).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(store_error(error)),
            }
            tracing::info!(
                provider = %kind,
                provider_id = %provider_id,
                name = %marked.inventory.name,
                "server not listed by its provider account {account_id} for {} syncs since {:?}; \
                 deleted it and its machine config",
                marked.missing_syncs,
                marked.missing_since
            );
            report.removed.push(provider_id);
        } else {
            tracing::warn!(
                provider = %kind,
                provider_id = %provider_id,
                name = %marked.inventory.name,
                "server not listed by its provider account {account_id} ({} sync(s) in a row); \
                 marked missing, kept with its machine config",
                marked.missing_syncs
            );
            report.missing.push(provider_id);
        }
    }
    Ok(report)
}

/// Marks the account's stored vSwitches that are not in `listed` missing, and deletes those
/// missing for long enough under `policy`: the servers and clusters that used a deleted one lose
/// the reference (the database sets it to NULL), each with a log line, since a cluster without
/// its vSwitch has no `${vlan}`. Returns the vSwitches kept missing and the ones deleted.
async fn handle_vanished_vswitches(
    store: &Store,
    account_id: ProviderAccountId,
    listed: &HashSet<VswitchId>,
    policy: &SyncPolicy,
    now: OffsetDateTime,
) -> Result<(Vec<VswitchId>, Vec<VswitchId>), StoreError> {
    let vanished: Vec<_> = store
        .list_vswitches()
        .await?
        .into_iter()
        .filter(|vswitch| {
            vswitch.provider_account_id == account_id && !listed.contains(&vswitch.id)
        })
        .collect();
    if vanished.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut missing = Vec::new();
    let mut expired = Vec::new();
    for vswitch in vanished {
        let marked = store.mark_vswitch_missing(vswitch.id, now).await?;
        if policy.expired(marked.missing_syncs, marked.missing_since, now) {
            expired.push(marked);
        } else {
            tracing::warn!(
                "vswitch {} ({:?}) is not listed by provider account {account_id} ({} sync(s) in \
                 a row); marked missing, its servers and clusters keep it",
                marked.id,
                marked.name,
                marked.missing_syncs
            );
            missing.push(marked.id);
        }
    }
    if expired.is_empty() {
        return Ok((missing, Vec::new()));
    }
    let servers = store.list_servers().await?;
    let clusters = store.list_clusters().await?;
    let mut removed = Vec::with_capacity(expired.len());
    for vswitch in expired {
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
    Ok((missing, removed))
}

/// How long Robot blocks the client address after three failed logins (its documentation);
/// the answer does not say.
const ADDRESS_BLOCK: Duration = Duration::from_secs(600);

/// [`sync_all_with`] under the default [`SyncPolicy`].
pub async fn sync_all(
    store: &Store,
    factory: &ProviderFactory,
    prober: Option<Arc<dyn ServerProber>>,
) -> Result<SyncReport, StoreError> {
    sync_all_with(store, factory, prober, &SyncPolicy::default()).await
}

/// Syncs every stored provider account under `policy`, building its clients with `factory`,
/// then probes every stored server with `prober` (skipped, with one log line, when there is
/// none). A failing account is logged and recorded in the report; the others are synced all the
/// same, and every server is probed. Only a failure to list the accounts or servers themselves,
/// or to record a probe, is an error.
pub async fn sync_all_with(
    store: &Store,
    factory: &ProviderFactory,
    prober: Option<Arc<dyn ServerProber>>,
    policy: &SyncPolicy,
) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport::default();
    for account in store.list_provider_accounts().await? {
        // Robot blocks the client address, for every account, after three failed logins: an
        // account whose credentials were refused waits for new ones.
        if let Some(refused_at) = account.credentials_refused_at {
            tracing::info!(
                provider = %account.provider,
                account = %account.name,
                %refused_at,
                "not syncing provider account {}: its credentials were refused; update them",
                account.id
            );
            report.credentials_refused.push(account.id);
            continue;
        }
        if let Some(blocked_until) = account
            .blocked_until
            .filter(|until| *until > OffsetDateTime::now_utc())
        {
            tracing::info!(
                provider = %account.provider,
                account = %account.name,
                %blocked_until,
                "not syncing provider account {}: the provider blocks this address until then",
                account.id
            );
            report.blocked.push(account.id);
            continue;
        }
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
            sync_account_with(store, account.id, &providers, policy).await
        }
        .await;
        match result {
            Ok(account_report) => {
                tracing::info!(
                    provider = %account.provider,
                    account = %account.name,
                    "synced provider account {}: {} added, {} updated, {} missing, {} removed, {} \
                     vswitches ({} missing, {} removed)",
                    account.id,
                    account_report.added,
                    account_report.updated,
                    account_report.missing.len(),
                    account_report.removed.len(),
                    account_report.vswitches,
                    account_report.vswitches_missing.len(),
                    account_report.vswitches_removed.len()
                );
                report.added += account_report.added;
                report.updated += account_report.updated;
                report.missing += account_report.missing.len();
                report.removed += account_report.removed.len();
                if let Some(why) = account_report.held_back {
                    report.held_back.push((account.id, why));
                }
                report.vswitches_removed += account_report.vswitches_removed.len();
                report.accounts_synced += 1;
            }
            Err(error) => {
                if matches!(
                    error.provider_error(),
                    Some(ProviderError::Unauthorized { .. })
                ) {
                    store
                        .mark_provider_account_credentials_refused(account.id)
                        .await?;
                }
                if error
                    .provider_error()
                    .is_some_and(|error| error.code() == Some("BLOCKED"))
                {
                    store
                        .mark_provider_account_blocked(
                            account.id,
                            OffsetDateTime::now_utc() + ADDRESS_BLOCK,
                        )
                        .await?;
                }
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
