//! `/metrics` in the Prometheus text format: HTTP requests, config requests by outcome, jobs
//! by kind and outcome, provider calls by status, and each cluster's health as of its last
//! check (the service checks every cluster every minute; a scrape asks no cluster anything).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use talos_manager_core::jobs::JobObserver;
use talos_manager_core::store::JobStatus;

use crate::AppState;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `POST`, … (the nine standard methods), or `other`.
    pub method: String,
    /// The route group: `config`, `api`, `healthz`, `metrics`, `dashboard`.
    pub route: String,
    /// The answer's status code.
    pub status: u16,
}

/// Labels of a `/config` request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigRequestLabels {
    /// `served`, `not_configured`, `denied` (no server identified; the same answer whatever
    /// the reason), `rate_limited`, `error`.
    pub outcome: String,
}

/// Labels of a finished job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's kind.
    pub kind: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
}

/// Labels of a call to a provider's API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderCallLabels {
    /// `hetzner_robot` or `hetzner_cloud`.
    pub provider: String,
    /// The HTTP status, or 0 when no answer came.
    pub status: u16,
}

/// Labels of a cluster's health gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    /// The cluster's name.
    pub cluster: String,
}

/// Each cluster's health, as of its last check.
#[derive(Clone, Default)]
pub struct ClusterGauges {
    /// 1 when the last check found the cluster healthy, else 0.
    pub healthy: Family<ClusterLabel, Gauge>,
    /// Healthy etcd members.
    pub etcd_members_healthy: Family<ClusterLabel, Gauge>,
    /// etcd members.
    pub etcd_members: Family<ClusterLabel, Gauge>,
    /// Ready Kubernetes nodes.
    pub nodes_ready: Family<ClusterLabel, Gauge>,
    /// Kubernetes nodes.
    pub nodes: Family<ClusterLabel, Gauge>,
    /// Seconds until the earliest certificate expiry (negative once expired).
    pub certificate_expiry_seconds: Family<ClusterLabel, Gauge>,
    /// When the cluster was last checked (Unix seconds).
    pub checked_timestamp_seconds: Family<ClusterLabel, Gauge>,
}

impl ClusterGauges {
    /// Sets the gauges to `checks` (clusters not in it disappear).
    pub fn set(&self, checks: &[talos_manager_core::cluster_health::ClusterHealth]) {
        let families = [
            &self.healthy,
            &self.etcd_members_healthy,
            &self.etcd_members,
            &self.nodes_ready,
            &self.nodes,
            &self.certificate_expiry_seconds,
            &self.checked_timestamp_seconds,
        ];
        for family in families {
            family.clear();
        }
        let now = time::OffsetDateTime::now_utc();
        for health in checks {
            let label = ClusterLabel {
                cluster: health.cluster.clone(),
            };
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            let (ready, total) = health.nodes_ready();
            self.healthy.get_or_create(&label).set(i64::from(
                health.status == talos_manager_core::cluster_health::HealthStatus::Healthy,
            ));
            self.etcd_members_healthy
                .get_or_create(&label)
                .set(count(health.etcd.healthy_members()));
            self.etcd_members
                .get_or_create(&label)
                .set(count(health.etcd.members.len()));
            self.nodes_ready.get_or_create(&label).set(count(ready));
            self.nodes.get_or_create(&label).set(count(total));
            if let Some(expiry) = health.earliest_expiry() {
                self.certificate_expiry_seconds
                    .get_or_create(&label)
                    .set((expiry - now).whole_seconds());
            }
            self.checked_timestamp_seconds
                .get_or_create(&label)
                .set(health.checked_at.unix_timestamp());
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "cluster_healthy",
            "1 when the cluster's last health check found it healthy",
            self.healthy.clone(),
        );
        registry.register(
            "cluster_etcd_members_healthy",
            "Healthy etcd members at the cluster's last health check",
            self.etcd_members_healthy.clone(),
        );
        registry.register(
            "cluster_etcd_members",
            "etcd members at the cluster's last health check",
            self.etcd_members.clone(),
        );
        registry.register(
            "cluster_nodes_ready",
            "Ready Kubernetes nodes at the cluster's last health check",
            self.nodes_ready.clone(),
        );
        registry.register(
            "cluster_nodes",
            "Kubernetes nodes at the cluster's last health check",
            self.nodes.clone(),
        );
        registry.register(
            "cluster_certificate_expiry_seconds",
            "Seconds until the earliest expiry of the cluster's CAs and issued client certificates",
            self.certificate_expiry_seconds.clone(),
        );
        registry.register(
            "cluster_health_checked_timestamp_seconds",
            "When the cluster's health was last checked (Unix time)",
            self.checked_timestamp_seconds.clone(),
        );
    }
}

/// Every metric of the service. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// HTTP requests by method, route group and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request durations in seconds, by route group.
    pub request_seconds: Family<RouteLabel, Histogram>,
    /// `/config` requests by outcome.
    pub config_requests: Family<ConfigRequestLabels, Counter>,
    /// Finished jobs by kind and outcome.
    pub jobs: Family<JobLabels, Counter>,
    /// Provider API calls by provider and status.
    pub provider_calls: Family<ProviderCallLabels, Counter>,
    /// Each cluster's health.
    pub clusters: ClusterGauges,
}

/// Counts finished jobs in [`Metrics::jobs`].
impl JobObserver for Metrics {
    fn job_finished(&self, kind: &str, outcome: JobStatus) {
        let labels = JobLabels {
            kind: kind.to_owned(),
            outcome: outcome.as_str().to_owned(),
        };
        self.jobs.get_or_create(&labels).inc();
    }
}

/// The route group of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// `config`, `api`, `healthz`, `metrics`, `dashboard`.
    pub route: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("talos_manager");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            request_seconds.clone(),
        );
        let config_requests = Family::<ConfigRequestLabels, Counter>::default();
        registry.register(
            "config_requests",
            "Machine config requests from Talos nodes, by outcome",
            config_requests.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Background jobs finished, by kind and outcome",
            jobs.clone(),
        );
        let provider_calls = Family::<ProviderCallLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Calls to provider APIs, by provider and HTTP status",
            provider_calls.clone(),
        );
        let clusters = ClusterGauges::default();
        clusters.register(&mut registry);
        Metrics {
            registry: Arc::new(registry),
            clusters,
            requests,
            request_seconds,
            config_requests,
            jobs,
            provider_calls,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `GET /metrics`.
#[handler]
pub(crate) async fn metrics(state: Data<&AppState>) -> Response {
    state.metrics.clusters.set(&state.cluster_health.latest());
    state
        .metrics
        .render()
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .with_status(StatusCode::OK)
        .into_response()
}
