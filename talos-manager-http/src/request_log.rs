//! Every request gets an id (the caller's valid `X-Request-Id`, else a new one), echoed in the
//! answer, carried by the request's tracing span, and counted in the metrics. The query string
//! is never logged.

use std::time::Instant;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse as _, Request, Response};
use talos_manager_core::random::{RandomError, SystemRandom, random_bytes};
use tracing::Instrument as _;

use crate::metrics::{Metrics, RequestLabels, RouteLabel};

const REQUEST_ID: &str = "x-request-id";

/// The route group a path belongs to, for metrics.
fn route_group(path: &str) -> &'static str {
    match path {
        "/config" => "config",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        _ if path.starts_with("/api/") => "api",
        _ => "dashboard",
    }
}

/// The request's id: the caller's `x-request-id` when it is sane, else 16 random hex digits.
fn request_id(request: &Request) -> Result<String, RandomError> {
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match given {
        Some(id) => Ok(id.to_owned()),
        None => Ok(random_bytes::<8>(&mut SystemRandom)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()),
    }
}

/// Logs, times and counts each request.
pub(crate) async fn log_request<E: Endpoint>(next: E, request: Request) -> poem::Result<Response> {
    let metrics = request
        .data::<crate::AppState>()
        .map(|state| state.metrics.clone());
    let id = match request_id(&request) {
        Ok(id) => id,
        // Without randomness the service cannot tell requests apart (nor make tokens or keys):
        // say so instead of logging under a made-up id.
        Err(error) => {
            tracing::error!(%error, "no request id");
            return Ok(Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(error.to_string()));
        }
    };
    let method = method_label(request.method());
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let result = next.call(request).instrument(span.clone()).await;
    let mut response = match result {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Some(metrics) = metrics {
        record(
            &metrics,
            method,
            &path,
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
    }
    Ok(response)
}

/// The method as a metrics label and log field: one of the standard methods, or `other` for
/// any extension method (clients can make those up, of any length, without credentials).
pub(crate) fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

fn record(metrics: &Metrics, method: &str, path: &str, status: u16, seconds: f64) {
    let route = route_group(path).to_owned();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.to_owned(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .request_seconds
        .get_or_create(&RouteLabel { route })
        .observe(seconds);
}
