//! `GET /config`: where a booting Talos node fetches its machine config
//! (`talos.config=https://HOST/config?uuid=${uuid}` on its kernel command line).
//!
//! The rules (which request is served, misses limited, the cache and write throttles) are
//! core's [`ConfigService`](talos_manager_core::node_config::ConfigService); this handler reads the request, asks the service once and writes
//! its answer as HTTP (and counts it in `/metrics`). Serving a config queues the
//! `label_and_taint` job for the server: the service's [`JobQueue`](talos_manager_core::jobs::JobQueue) is the
//! [`ConfigServedHook`](talos_manager_core::node_config::ConfigServedHook).

use std::net::IpAddr;

use poem::http::StatusCode;
use poem::web::{Data, RemoteAddr};
use poem::{IntoResponse, Request, Response, handler};
use talos_manager_core::error_chain;
use talos_manager_core::node_config::{ConfigAnswer, ConfigRequestParts, ConfigServeError};

use crate::AppState;
use crate::metrics::ConfigRequestLabels;

#[handler]
pub(crate) async fn config(
    state: Data<&AppState>,
    request: &Request,
    remote: &RemoteAddr,
) -> Response {
    let state = *state;
    let peer: Option<IpAddr> = remote.as_socket_addr().map(|address| address.ip());
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        // A line that is not visible ASCII cannot be read: it counts as an unreadable hop.
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let parts = ConfigRequestParts {
        query: request.uri().query().unwrap_or_default(),
        peer,
        forwarded_for: &forwarded_for,
        trusted_proxies: &state.trusted_proxies,
    };
    let answer = state
        .config_serving
        .answer(&state.store, parts, &state.jobs)
        .await;
    match answer {
        Ok(answer) => {
            count(state, answer.outcome());
            respond(answer)
        }
        Err(error) => {
            count(state, error.outcome());
            failed(&error)
        }
    }
}

/// The HTTP answer of a [`ConfigAnswer`].
fn respond(answer: ConfigAnswer) -> Response {
    match answer {
        ConfigAnswer::Config(node_config) => node_config
            .yaml
            .into_inner()
            .with_content_type("text/yaml")
            .with_status(StatusCode::OK)
            .into_response(),
        ConfigAnswer::NotConfigured { ip } => plain(
            StatusCode::from_u16(420).unwrap_or(StatusCode::NOT_FOUND),
            format!("No configuration found for server with IP {ip}"),
        ),
        ConfigAnswer::NoSuchServer { source } => plain(
            StatusCode::NOT_FOUND,
            format!("No server matches this request (SMBIOS UUID and address {source})"),
        ),
        ConfigAnswer::TooManyMisses { source } => plain(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many config requests from {source} matched no server; retry later"),
        )
        .with_header("retry-after", "10")
        .into_response(),
        ConfigAnswer::UnknownSource => plain(
            StatusCode::FORBIDDEN,
            "cannot tell where the request comes from".into(),
        ),
    }
}

/// The HTTP answer of a [`ConfigServeError`]; the details go to the log only.
fn failed(error: &ConfigServeError) -> Response {
    match error {
        ConfigServeError::Lookup(source) => {
            tracing::error!(error = %error_chain(source), "config request failed");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; retry later".into(),
            )
        }
        ConfigServeError::Render { server, source } => {
            tracing::error!(%server, error = %error_chain(source), "failed to render a machine config");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The machine config could not be generated; the talos-manager log has the details"
                    .into(),
            )
        }
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
