//! `GET /config`: where a booting Talos node fetches its machine config
//! (`talos.config=https://HOST/config?uuid=${uuid}` on its kernel command line).
//!
//! Unauthenticated by necessity, so a config goes only to the node it belongs to
//! ([`ConfigRequest::may_serve`]):
//! - with `uuid`, the server whose recorded SMBIOS UUID matches (any case), and only when the
//!   request comes from that server's IPv4 address or IPv6 network (a bare stored network
//!   address is a /64);
//! - without `uuid` (the original's behaviour), the server whose IPv4 address the request
//!   comes from, but only while it has no recorded UUID and was never bootstrapped by us, and
//!   only when `CONFIG_ALLOW_IP_ONLY` is not `false`.
//!
//! The source address is the peer's, or the `X-Forwarded-For` client's when the peer is a
//! trusted proxy (every header line read, failing closed:
//! [`client_address`](talos_manager_core::node_config::client_address)). Every request
//! that identifies no server (unknown UUID or address, right UUID from the wrong address, no
//! UUID for a server that has one) gets the same 404 and body, so an answer tells nothing about
//! which UUIDs exist. Such misses are limited per source address ([`MissLimiter`]): past the
//! limit the answer is 429 without a database read, and a repeated miss is cached. Known
//! without machine config: 420, which Talos retries. Talos retries every non-200 answer with
//! back-off, so errors are safe to answer.
//!
//! The config is generated with the Kubernetes version the cluster runs, when its API server
//! answered before: a version older than five minutes is asked for again in the background,
//! and the configs served after the answer use it. Serving a config queues the
//! `label_and_taint` job for the server (not again within 10 minutes).
//!
//! Under load (a fleet booting at once, a node retrying) a request costs no query in the
//! common case: [`ConfigServing`] keeps lookups and rendered configs
//! ([`NodeConfigCache`]: exact within this process, at most [`CACHE_TTL`] old for writes made
//! by another replica), writes a server's request time at most once per
//! [`RECORD_INTERVAL`] unless what it records changes, and remembers the label job's guard.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::{Data, RemoteAddr};
use poem::{IntoResponse, Request, Response, handler};
use talos_manager_core::error_chain;
use talos_manager_core::ids::{ClusterId, ServerId};
use talos_manager_core::kubernetes::ClientTimeouts;
use talos_manager_core::node_config::{
    ConfigRequest, MissLimiter, NodeConfigCache, NodeConfigError,
};
use talos_manager_core::node_labels::running_kubernetes_version;
use talos_manager_core::store::Cluster;

use crate::AppState;
use crate::jobs::{
    CONFIG_SERVED_GUARD, LabelAndTaintQueued, LabelAndTaintTrigger, queue_label_and_taint,
};
use crate::metrics::ConfigRequestLabels;

/// How long `/config` trusts what it read when nothing was written through this process
/// since: the delay after which a change made through another replica is served.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// How often at most a server's config request time is written while what is recorded
/// (served or not) stays the same.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// What `/config` keeps between requests; one per service, in [`AppState`].
#[derive(Debug)]
pub struct ConfigServing {
    cache: NodeConfigCache,
    /// Per server: when its request was last written, whether it was served, and the store's
    /// generation then (a bootstrap or a new machine config clears what was written).
    recorded: Mutex<HashMap<ServerId, (Instant, bool, u64)>>,
    /// Per server: until when its label job needs no check (a job was queued within
    /// [`CONFIG_SERVED_GUARD`]).
    label_job_until: Mutex<HashMap<ServerId, time::OffsetDateTime>>,
    /// Clusters whose running Kubernetes version is being asked for.
    refreshing: Arc<Mutex<HashSet<ClusterId>>>,
    /// Requests that identified no server, per source address.
    misses: MissLimiter,
    /// `CONFIG_ALLOW_IP_ONLY`: whether a request without `uuid` may be served by address.
    allow_ip_only: bool,
}

impl Default for ConfigServing {
    /// As [`ConfigServing::new`] with the IP-only path allowed (the default).
    fn default() -> ConfigServing {
        ConfigServing::new(true)
    }
}

impl ConfigServing {
    /// What `/config` keeps; `allow_ip_only` is `CONFIG_ALLOW_IP_ONLY`.
    pub fn new(allow_ip_only: bool) -> ConfigServing {
        ConfigServing::with_miss_limiter(allow_ip_only, MissLimiter::default())
    }

    /// As [`ConfigServing::new`], with misses limited by `misses`.
    pub fn with_miss_limiter(allow_ip_only: bool, misses: MissLimiter) -> ConfigServing {
        ConfigServing {
            cache: NodeConfigCache::new(CACHE_TTL),
            recorded: Mutex::default(),
            label_job_until: Mutex::default(),
            refreshing: Arc::default(),
            misses,
            allow_ip_only,
        }
    }
}

/// Locks a map that holds only hints; a panic elsewhere leaves it usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ConfigServing {
    /// Writes that the server asked (and whether it was served), unless the same was written
    /// less than [`RECORD_INTERVAL`] ago.
    async fn record_request(&self, state: &AppState, server: ServerId, served: bool) {
        let generation = state.store.config_inputs_generation();
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
        let now = time::OffsetDateTime::now_utc();
        match state.store.record_config_request(server, now, served).await {
            Ok(()) => {
                let mut recorded = lock(&self.recorded);
                if recorded.len() >= 100_000 {
                    recorded.clear();
                }
                recorded.insert(server, (Instant::now(), served, generation));
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to record a config request");
            }
        }
    }

    /// Queues the server's label and taint job unless one was queued within the guard.
    async fn queue_label_job(&self, state: &AppState, server: ServerId) {
        let now = time::OffsetDateTime::now_utc();
        if lock(&self.label_job_until)
            .get(&server)
            .is_some_and(|until| now < *until)
        {
            return;
        }
        let queued = queue_label_and_taint(
            &state.jobs,
            &state.store,
            server,
            LabelAndTaintTrigger::ConfigServed,
        )
        .await;
        match queued {
            Ok(LabelAndTaintQueued::Queued(job) | LabelAndTaintQueued::Skipped(job)) => {
                let mut until = lock(&self.label_job_until);
                if until.len() >= 100_000 {
                    until.clear();
                }
                until.insert(server, job.created_at + CONFIG_SERVED_GUARD);
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "failed to queue the label and taint job");
            }
        }
    }

    /// Asks the cluster's API server for its version in the background when the one the
    /// config was made with is older than [`VERSION_MAX_AGE`] (and the cluster answered
    /// before); one question per cluster at a time.
    fn refresh_kubernetes_version(&self, state: &AppState, cluster: &Cluster) {
        if cluster.running_kubernetes_version.is_none() {
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        let fresh = cluster
            .running_kubernetes_version_checked_at
            .is_some_and(|checked_at| now - checked_at < VERSION_MAX_AGE);
        if fresh || !lock(&self.refreshing).insert(cluster.id) {
            return;
        }
        let refreshing = self.refreshing.clone();
        let store = state.store.clone();
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

impl ConfigServing {
    /// The one answer to every request that identifies no server; counts the miss against
    /// the source.
    fn denied(&self, state: &AppState, source: IpAddr) -> Response {
        self.misses.record_miss(source, Instant::now());
        count(state, "denied");
        plain(
            StatusCode::NOT_FOUND,
            format!("No server matches this request (SMBIOS UUID and address {source})"),
        )
    }
}

fn plain(status: StatusCode, text: String) -> Response {
    text.with_content_type("text/plain; charset=utf-8")
        .with_status(status)
        .into_response()
}

fn count(state: &AppState, outcome: &str) {
    state
        .metrics
        .config_requests
        .get_or_create(&ConfigRequestLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// How old the cluster's running Kubernetes version may be before `/config` asks again.
const VERSION_MAX_AGE: Duration = Duration::from_secs(300);

/// How long `/config` waits for the cluster's API server to tell its version.
const VERSION_TIMEOUTS: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_secs(2),
    request: Duration::from_secs(3),
};

#[handler]
pub(crate) async fn config(
    state: Data<&AppState>,
    request: &Request,
    remote: &RemoteAddr,
) -> Response {
    let state = *state;
    let Some(peer) = remote.as_socket_addr().map(|address| address.ip()) else {
        count(state, "denied");
        return plain(
            StatusCode::FORBIDDEN,
            "cannot tell where the request comes from".into(),
        );
    };
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        // A line that is not visible ASCII cannot be read: it counts as an unreadable hop.
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let query = request.uri().query().unwrap_or_default();
    let asked = ConfigRequest::parse(query, peer, &forwarded_for, &state.trusted_proxies);
    let source = asked.source;
    let uuid = asked.uuid.as_deref();

    let serving = &state.config_serving;
    if !serving.misses.allows(source, Instant::now()) {
        count(state, "rate_limited");
        return plain(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many config requests from {source} matched no server; retry later"),
        )
        .with_header("retry-after", "10")
        .into_response();
    }
    let lookup = asked.lookup();
    let found = serving.cache.find_server(&state.store, &lookup).await;
    let server = match found {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "config request failed");
            count(state, "error");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; retry later".into(),
            );
        }
    };
    let server = match server {
        Some(server) if asked.may_serve(&server, serving.allow_ip_only) => server,
        Some(server) => {
            tracing::warn!(%source, uuid = ?uuid, server = %server.inventory.name, "config requested for a known server without its UUID and address; refused");
            return serving.denied(state, source);
        }
        None => {
            tracing::info!(%source, uuid = ?uuid, "config requested by an unknown server");
            return serving.denied(state, source);
        }
    };

    match serving.cache.render(&state.store, &server).await {
        Ok(rendered) => {
            serving.refresh_kubernetes_version(state, &rendered.cluster);
            serving.record_request(state, server.id, true).await;
            serving.queue_label_job(state, server.id).await;
            count(state, "served");
            let node_config = rendered.config;
            tracing::info!(server = %server.inventory.name, machine_type = node_config.machine_type.as_str(), "config served");
            node_config
                .yaml
                .into_inner()
                .with_content_type("text/yaml")
                .with_status(StatusCode::OK)
                .into_response()
        }
        Err(NodeConfigError::NotConfigured { .. }) => {
            serving.record_request(state, server.id, false).await;
            count(state, "not_configured");
            let ip = server
                .inventory
                .ipv4
                .clone()
                .unwrap_or_else(|| source.to_string());
            plain(
                StatusCode::from_u16(420).unwrap_or(StatusCode::NOT_FOUND),
                format!("No configuration found for server with IP {ip}"),
            )
        }
        Err(error) => {
            count(state, "error");
            tracing::error!(server = %server.inventory.name, error = %error_chain(&error), "failed to render a machine config");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The machine config could not be generated; the talos-manager log has the details"
                    .into(),
            )
        }
    }
}
