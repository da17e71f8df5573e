//! `/metrics` in the Prometheus text format: HTTP requests, config requests by outcome, jobs
//! by kind and outcome, provider calls by status.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
        Metrics {
            registry: Arc::new(registry),
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
    state
        .metrics
        .render()
        .with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .with_status(StatusCode::OK)
        .into_response()
}
