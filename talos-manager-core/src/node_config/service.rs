//! [`ConfigService`]: what `GET /config` answers, where a booting Talos node fetches its
//! machine config (`talos.config=https://HOST/config?uuid=${uuid}` on its kernel command line).
//! The service's handler reads the request, asks [`ConfigService::answer`] and turns the
//! [`ConfigAnswer`] into an HTTP answer; every rule lives here, written down in
//! [`ConfigService`]'s documentation.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    ConfigRequest, MissLimiter, NodeConfig, NodeConfigCache, NodeConfigError, TrustedProxies,
};
use crate::error_chain;
use crate::ids::{ClusterId, ServerId};
use crate::kubernetes::ClientTimeouts;
use crate::node_labels::running_kubernetes_version;
use crate::store::{Cluster, Server, Store, StoreError};

/// How long `/config` trusts what it read when nothing was written through this process
/// since: the delay after which a change made through another replica is served.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// How often at most a server's config request time is written while what is recorded
/// (served or not) stays the same.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// How long a refreshed request time may wait in memory before it is written
/// ([`ConfigService::flush_request_times`]).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How many refreshed request times are written at once at most: a buffer this full is written
/// without waiting for [`FLUSH_INTERVAL`].
pub const FLUSH_ENTRIES: usize = 512;

/// How old the cluster's running Kubernetes version may be before `/config` asks again.
const VERSION_MAX_AGE: Duration = Duration::from_secs(300);

/// How long `/config` waits for the cluster's API server to tell its version.
const VERSION_TIMEOUTS: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_secs(2),
    request: Duration::from_secs(3),
};

/// What a `/config` request carries, as the transport read it.
#[derive(Debug, Clone, Copy)]
pub struct ConfigRequestParts<'a> {
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The TCP peer's address; `None` when the transport cannot tell (not a socket).
    pub peer: Option<IpAddr>,
    /// Every `X-Forwarded-For` header line, in order (a line that cannot be read as text
    /// should be passed as something that is no address, so that it fails closed).
    pub forwarded_for: &'a [&'a str],
    /// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: &'a TrustedProxies,
}

/// Told when a server was served its config; the service queues the server's label and
/// taint job. Called at most once per server until the time it answered.
#[async_trait]
pub trait ConfigServedHook: Send + Sync {
    /// Server `server` was just served its config. Answers until when it needs not be told
    /// again (a job queued or found within the job's guard: its creation plus the guard).
    ///
    /// # Errors
    /// The store's; the service logs it and tells the hook again on the next request.
    async fn config_served(
        &self,
        store: &Store,
        server: ServerId,
    ) -> Result<OffsetDateTime, StoreError>;
}

/// What [`ConfigService::answer`] answers a request.
#[derive(Debug)]
pub enum ConfigAnswer {
    /// The server's machine config (HTTP 200).
    Config(NodeConfig),
    /// The server is known but has no machine config yet (HTTP 420, which Talos retries).
    NotConfigured {
        /// The server's IPv4 address, else the request's source address.
        ip: String,
    },
    /// The request identifies no server (HTTP 404), whatever the reason: unknown, or known
    /// without its UUID and address. Counted against the source.
    NoSuchServer {
        /// Where the request comes from.
        source: IpAddr,
    },
    /// The source identified no server too often; asked again later (HTTP 429).
    TooManyMisses {
        /// Where the request comes from.
        source: IpAddr,
    },
    /// The transport cannot tell where the request comes from (HTTP 403).
    UnknownSource,
}

impl ConfigAnswer {
    /// The answer's outcome as the `/config` metrics count it: `served`, `not_configured`,
    /// `denied` or `rate_limited`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ConfigAnswer::Config(_) => "served",
            ConfigAnswer::NotConfigured { .. } => "not_configured",
            ConfigAnswer::NoSuchServer { .. } | ConfigAnswer::UnknownSource => "denied",
            ConfigAnswer::TooManyMisses { .. } => "rate_limited",
        }
    }
}

/// Why [`ConfigService::answer`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigServeError {
    /// Looking the server up failed: the database does not answer.
    #[error("failed to look up the server a config request names")]
    Lookup(#[source] StoreError),
    /// The server's config could not be made.
    #[error("failed to render the machine config of server {server}")]
    Render {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: NodeConfigError,
    },
}

impl ConfigServeError {
    /// The outcome as the `/config` metrics count it: `error`.
    pub fn outcome(&self) -> &'static str {
        "error"
    }
}

/// `/config`, and what it keeps between requests; one per service.
///
/// Unauthenticated by necessity, so a config goes only to the node it belongs to
/// ([`ConfigRequest::may_serve`]):
/// - with `uuid`, the server whose recorded SMBIOS UUID matches (any case), and only when the
///   request comes from that server's IPv4 address or IPv6 network (a bare stored network
///   address is a /64);
/// - without `uuid` (the original's behaviour), the server whose IPv4 address the request
///   comes from, but only while it has no recorded UUID and was never bootstrapped by us, and
///   only when `CONFIG_ALLOW_IP_ONLY` is not `false`.
///
/// The source address is the peer's, or the `X-Forwarded-For` client's when the peer is a
/// trusted proxy (every header line read, failing closed:
/// [`client_address`](super::client_address)). Every request that identifies no server
/// (unknown UUID or address, right UUID from the wrong address, no UUID for a server that has
/// one) gets the same answer ([`ConfigAnswer::NoSuchServer`]), so an
/// answer tells nothing about which UUIDs exist. Such misses are limited per source address
/// ([`MissLimiter`]): past the limit the answer is [`ConfigAnswer::TooManyMisses`] without a
/// database read, and a repeated miss is cached. Known without machine config:
/// [`ConfigAnswer::NotConfigured`] (HTTP 420, which Talos retries). Talos retries every non-200
/// answer with back-off, so errors are safe to answer.
///
/// The config is generated with the Kubernetes version the cluster runs, when its API server
/// answered before: a version older than five minutes is asked for again in the background,
/// and the configs served after the answer use it. Serving a config tells the
/// [`ConfigServedHook`] (the service queues the `label_and_taint` job for the server), not again
/// before the time the hook answered (10 minutes for the label job).
///
/// Under load (a fleet booting at once, a node retrying) a request costs no query in the
/// common case: the service keeps lookups and rendered configs
/// ([`NodeConfigCache`]: exact within this process, at most [`CACHE_TTL`] old for writes made
/// by another replica), writes a server's request time at most once per
/// [`RECORD_INTERVAL`] unless what it records changes, and remembers the hook's guard.
///
/// A request that changes what is recorded (a server served for the first time since it was
/// reset or bootstrapped, asking for the first time, or served where it was not) is written
/// before the answer, so that what depends on it (the bootstrap guard's "live node", the
/// cluster bootstrap's first control plane that fetched its config, the server's state) sees
/// it at once. A request that only moves those times forward is buffered and written with
/// the others in one transaction every [`FLUSH_INTERVAL`] or [`FLUSH_ENTRIES`] requests, and
/// when the service stops ([`ConfigService::flush_request_times`]): a crash loses at most that
/// last second of "last requested" times, and a refresh that a bootstrap, erase or reset
/// overtook is dropped rather than written over the cleared times
/// ([`Store::refresh_config_requests`]).
#[derive(Debug)]
pub struct ConfigService {
    cache: NodeConfigCache,
    /// Per server: when its request was last written, whether it was served, and the store's
    /// generation then (a bootstrap or a new machine config clears what was written).
    recorded: Mutex<HashMap<ServerId, (Instant, bool, u64)>>,
    /// Request times waiting to be written ([`ConfigService::flush_request_times`]).
    refreshes: Arc<PendingRefreshes>,
    /// Per server: until when the [`ConfigServedHook`] need not be told again.
    label_job_until: Mutex<HashMap<ServerId, OffsetDateTime>>,
    /// Clusters whose running Kubernetes version is being asked for.
    refreshing: Arc<Mutex<HashSet<ClusterId>>>,
    /// Requests that identified no server, per source address.
    misses: MissLimiter,
    /// `CONFIG_ALLOW_IP_ONLY`: whether a request without `uuid` may be served by address.
    allow_ip_only: bool,
}

impl Default for ConfigService {
    /// As [`ConfigService::new`] with the IP-only path allowed (the default).
    fn default() -> ConfigService {
        ConfigService::new(true)
    }
}

impl ConfigService {
    /// What `/config` keeps; `allow_ip_only` is `CONFIG_ALLOW_IP_ONLY`.
    pub fn new(allow_ip_only: bool) -> ConfigService {
        ConfigService::with_miss_limiter(allow_ip_only, MissLimiter::default())
    }

    /// As [`ConfigService::new`], with misses limited by `misses`.
    pub fn with_miss_limiter(allow_ip_only: bool, misses: MissLimiter) -> ConfigService {
        ConfigService {
            cache: NodeConfigCache::new(CACHE_TTL),
            recorded: Mutex::default(),
            refreshes: Arc::default(),
            label_job_until: Mutex::default(),
            refreshing: Arc::default(),
            misses,
            allow_ip_only,
        }
    }

    /// Answers a `/config` request: finds the server it names, checks that the request
    /// identifies it, renders its config, records the request and tells `served`.
    ///
    /// # Errors
    /// [`ConfigServeError::Lookup`] when the database does not answer,
    /// [`ConfigServeError::Render`] when the server's config cannot be made.
    pub async fn answer(
        &self,
        store: &Store,
        request: ConfigRequestParts<'_>,
        served: &dyn ConfigServedHook,
    ) -> Result<ConfigAnswer, ConfigServeError> {
        let Some(peer) = request.peer else {
            return Ok(ConfigAnswer::UnknownSource);
        };
        let asked = ConfigRequest::parse(
            request.query,
            peer,
            request.forwarded_for,
            request.trusted_proxies,
        );
        let source = asked.source;
        let uuid = asked.uuid.as_deref();

        if !self.misses.allows(source, Instant::now()) {
            return Ok(ConfigAnswer::TooManyMisses { source });
        }
        let lookup = asked.lookup();
        let server = self
            .cache
            .find_server(store, &lookup)
            .await
            .map_err(ConfigServeError::Lookup)?;
        let server = match server {
            Some(server) if asked.may_serve(&server, self.allow_ip_only) => server,
            Some(server) => {
                tracing::warn!(%source, uuid = ?uuid, server = %server.inventory.name, "config requested for a known server without its UUID and address; refused");
                return Ok(self.no_such_server(source));
            }
            None => {
                tracing::info!(%source, uuid = ?uuid, "config requested by an unknown server");
                return Ok(self.no_such_server(source));
            }
        };

        match self.cache.render(store, &server).await {
            Ok(rendered) => {
                self.refresh_kubernetes_version(store, &rendered.cluster);
                self.record_request(store, &server, true).await;
                self.tell_served(store, server.id, served).await;
                let node_config = rendered.config;
                tracing::info!(server = %server.inventory.name, machine_type = node_config.machine_type.as_str(), "config served");
                Ok(ConfigAnswer::Config(node_config))
            }
            Err(NodeConfigError::NotConfigured { .. }) => {
                self.record_request(store, &server, false).await;
                let ip = server
                    .inventory
                    .ipv4
                    .clone()
                    .unwrap_or_else(|| source.to_string());
                Ok(ConfigAnswer::NotConfigured { ip })
            }
            Err(source) => Err(ConfigServeError::Render {
                server: server.inventory.name.clone(),
                source,
            }),
        }
    }

    /// The one answer to every request that identifies no server; counts the miss against
    /// the source.
    fn no_such_server(&self, source: IpAddr) -> ConfigAnswer {
        self.misses.record_miss(source, Instant::now());
        ConfigAnswer::NoSuchServer { source }
    }

    /// Writes that the server asked (and whether it was served), unless the same was written
    /// less than [`RECORD_INTERVAL`] ago: at once when it changes what is recorded about
    /// `server` (as looked up for this request), else through the buffer.
    async fn record_request(&self, store: &Store, server: &Server, served: bool) {
        let generation = store.config_inputs_generation();
        let refresh_only = if served {
            server.last_configured_at.is_some()
        } else {
            server.last_configured_at.is_none()
                && server.last_request_for_configuration_at.is_some()
        };
        let server = server.id;
        let recent =
            lock(&self.recorded)
                .get(&server)
                .is_some_and(|&(at, was_served, was_generation)| {
                    was_served == served
                        && was_generation == generation
                        && at.elapsed() < RECORD_INTERVAL
                });
        if recent {
            return;
        }
        let now = OffsetDateTime::now_utc();
        if refresh_only {
            self.refreshes.push(store, server, now, served);
        } else if let Err(error) = store.record_config_request(server, now, served).await {
            tracing::warn!(error = %error_chain(&error), "failed to record a config request");
            return;
        }
        let mut recorded = lock(&self.recorded);
        if recorded.len() >= 100_000 {
            recorded.clear();
        }
        recorded.insert(server, (Instant::now(), served, generation));
    }

    /// Writes the buffered request times now, in one transaction. The service calls it when
    /// it stops; it also runs by itself every [`FLUSH_INTERVAL`] while requests are buffered.
    pub async fn flush_request_times(&self, store: &Store) {
        self.refreshes.flush(store).await;
    }

    /// Tells the hook that the server was served, unless it answered a time not yet passed.
    async fn tell_served(&self, store: &Store, server: ServerId, served: &dyn ConfigServedHook) {
        let now = OffsetDateTime::now_utc();
        if lock(&self.label_job_until)
            .get(&server)
            .is_some_and(|until| now < *until)
        {
            return;
        }
        match served.config_served(store, server).await {
            Ok(until) => {
                let mut guard = lock(&self.label_job_until);
                if guard.len() >= 100_000 {
                    guard.clear();
                }
                guard.insert(server, until);
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to queue the label and taint job");
            }
        }
    }

    /// Asks the cluster's API server for its version in the background when the one the
    /// config was made with is older than [`VERSION_MAX_AGE`] (and the cluster answered
    /// before); one question per cluster at a time.
    fn refresh_kubernetes_version(&self, store: &Store, cluster: &Cluster) {
        if cluster.running_kubernetes_version.is_none() {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let fresh = cluster
            .running_kubernetes_version_checked_at
            .is_some_and(|checked_at| now - checked_at < VERSION_MAX_AGE);
        if fresh || !lock(&self.refreshing).insert(cluster.id) {
            return;
        }
        let refreshing = self.refreshing.clone();
        let store = store.clone();
        let cluster_id = cluster.id;
        tokio::spawn(async move {
            let refreshed =
                running_kubernetes_version(&store, cluster_id, VERSION_MAX_AGE, VERSION_TIMEOUTS)
                    .await;
            if let Err(error) = refreshed {
                tracing::warn!(cluster = %cluster_id, error = %error_chain(&error), "failed to refresh the running kubernetes version");
            }
            lock(&refreshing).remove(&cluster_id);
        });
    }
}

/// Request times that only move forward, waiting to be written together
/// ([`ConfigService::flush_request_times`]).
#[derive(Debug, Default)]
struct PendingRefreshes {
    /// Per server: the latest request time, and whether it was served.
    pending: Mutex<HashMap<ServerId, (OffsetDateTime, bool)>>,
    /// Whether a flush is scheduled [`FLUSH_INTERVAL`] from the first buffered entry.
    scheduled: AtomicBool,
}

impl PendingRefreshes {
    /// Buffers a refresh; a full buffer is written now (in the background), else a flush is
    /// scheduled unless one is.
    fn push(self: &Arc<Self>, store: &Store, server: ServerId, at: OffsetDateTime, served: bool) {
        let full = {
            let mut pending = lock(&self.pending);
            pending.insert(server, (at, served));
            pending.len() >= FLUSH_ENTRIES
        };
        let delay = if full {
            Duration::ZERO
        } else if !self.scheduled.swap(true, Ordering::AcqRel) {
            FLUSH_INTERVAL
        } else {
            return;
        };
        let refreshes = self.clone();
        let store = store.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                refreshes.scheduled.store(false, Ordering::Release);
            }
            refreshes.flush(&store).await;
        });
    }

    /// Writes what is buffered in one transaction; on a failure the times are lost (logged):
    /// the next request of each server writes its time again.
    async fn flush(&self, store: &Store) {
        let batch: Vec<(ServerId, OffsetDateTime, bool)> =
            std::mem::take(&mut *lock(&self.pending))
                .into_iter()
                .map(|(server, (at, served))| (server, at, served))
                .collect();
        if batch.is_empty() {
            return;
        }
        if let Err(error) = store.refresh_config_requests(&batch).await {
            tracing::warn!(requests = batch.len(), error = %error_chain(&error), "failed to record config request times");
        }
    }
}

/// Locks a map that holds only hints; a panic elsewhere leaves it usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
