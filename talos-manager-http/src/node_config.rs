//! `GET /config`: where a booting Talos node fetches its machine config
//! (`talos.config=https://HOST/config?uuid=${uuid}` on its kernel command line).
//!
//! Unauthenticated by necessity, so a config goes only to the node it belongs to:
//! - with `uuid`, the server whose recorded SMBIOS UUID matches (any case), and only when the
//!   request comes from that server's IPv4 address or IPv6 network; otherwise 403;
//! - without `uuid` (the original's behaviour), the server whose IPv4 address the request
//!   comes from.
//!
//! The source address is the peer's, or the `X-Forwarded-For` client's when the peer is a
//! trusted proxy. Unknown server: 404. Known without machine config: 420, which Talos retries.
//! Talos retries every non-200 answer with back-off, so errors are safe to answer.
//!
//! The config is generated with the Kubernetes version the cluster runs, when its API server
//! answered before (asked again every few minutes, for a few seconds at most). Serving a
//! config queues the `label_and_taint` job for the server (not again within 10 minutes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Query, RemoteAddr};
use poem::{IntoResponse, Request, Response, handler};
use talos_manager_core::error_chain;
use talos_manager_core::ids::ClusterId;
use talos_manager_core::kubernetes::{ClientTimeouts, running_kubernetes_version};
use talos_manager_core::node_config::{NodeConfigError, render_node_config};
use talos_manager_core::store::Server;

use crate::AppState;
use crate::client_address::client_address;
use crate::jobs::{LabelAndTaintTrigger, queue_label_and_taint};
use crate::metrics::ConfigRequestLabels;

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

/// Whether `address` is the server's IPv4 address or inside its IPv6 network.
fn is_server_address(server: &Server, address: IpAddr) -> bool {
    let inventory = &server.inventory;
    match address {
        IpAddr::V4(v4) => inventory.ipv4.as_deref() == Some(v4.to_string().as_str()),
        IpAddr::V6(_) => inventory.ipv6.as_deref().is_some_and(|network| {
            network
                .parse::<ipnet::IpNet>()
                .map(|net| net.contains(&address))
                .or_else(|_| network.parse::<IpAddr>().map(|ip| ip == address))
                .unwrap_or(false)
        }),
    }
}

/// How old the cluster's running Kubernetes version may be before `/config` asks again.
const VERSION_MAX_AGE: Duration = Duration::from_secs(300);

/// How long `/config` waits for the cluster's API server to tell its version.
const VERSION_TIMEOUTS: ClientTimeouts = ClientTimeouts {
    connect: Duration::from_secs(2),
    request: Duration::from_secs(3),
};

/// Makes sure the cluster's running Kubernetes version is recent (the config is generated
/// with it); a failure only costs freshness, so it is logged and the config served anyway.
async fn refresh_kubernetes_version(state: &AppState, cluster_id: ClusterId) {
    let refreshed =
        running_kubernetes_version(&state.store, cluster_id, VERSION_MAX_AGE, VERSION_TIMEOUTS)
            .await;
    if let Err(error) = refreshed {
        tracing::warn!(cluster = %cluster_id, error = %error_chain(&error), "failed to refresh the running kubernetes version");
    }
}

#[handler]
pub(crate) async fn config(
    state: Data<&AppState>,
    request: &Request,
    remote: &RemoteAddr,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = *state;
    let Some(peer) = remote.as_socket_addr().map(|address| address.ip()) else {
        count(state, "forbidden");
        return plain(
            StatusCode::FORBIDDEN,
            "cannot tell where the request comes from".into(),
        );
    };
    let forwarded_for = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let source = client_address(peer, forwarded_for, &state.trusted_proxies);
    let uuid = query
        .get("uuid")
        .map(|uuid| uuid.trim())
        .filter(|uuid| !uuid.is_empty() && !uuid.contains("${"));

    let found = match uuid {
        Some(uuid) => state.store.find_servers_by_uuid(uuid).await,
        None => state.store.find_servers_by_ipv4(&source.to_string()).await,
    };
    let servers = match found {
        Ok(servers) => servers,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "config request failed");
            count(state, "error");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; retry later".into(),
            );
        }
    };
    let Some(server) = servers.into_iter().next() else {
        count(state, "unknown_server");
        tracing::info!(%source, uuid = ?uuid, "config requested by an unknown server");
        let what = match uuid {
            Some(uuid) => format!("No server with SMBIOS UUID {uuid}"),
            None => format!("No server with IP {source}"),
        };
        return plain(StatusCode::NOT_FOUND, what);
    };
    if uuid.is_some() && !is_server_address(&server, source) {
        count(state, "forbidden");
        tracing::warn!(%source, server = %server.inventory.name, "config requested with a server's UUID from another address; refused");
        return plain(
            StatusCode::FORBIDDEN,
            format!("The UUID belongs to a server whose address is not {source}"),
        );
    }

    if let Some(cluster_id) = server.cluster_id {
        refresh_kubernetes_version(state, cluster_id).await;
    }
    let now = time::OffsetDateTime::now_utc();
    match render_node_config(&state.store, server.id).await {
        Ok(node_config) => {
            if let Err(error) = state
                .store
                .record_config_request(server.id, now, true)
                .await
            {
                tracing::warn!(error = %error_chain(&error), "failed to record a config request");
            }
            let queued = queue_label_and_taint(
                &state.jobs,
                &state.store,
                server.id,
                LabelAndTaintTrigger::ConfigServed,
            )
            .await;
            if let Err(error) = queued {
                tracing::warn!(error = %error_chain(&error), "failed to queue the label and taint job");
            }
            count(state, "served");
            tracing::info!(server = %server.inventory.name, machine_type = node_config.machine_type.as_str(), "config served");
            node_config
                .yaml
                .into_inner()
                .with_content_type("text/yaml")
                .with_status(StatusCode::OK)
                .into_response()
        }
        Err(NodeConfigError::NotConfigured { .. }) => {
            if let Err(error) = state
                .store
                .record_config_request(server.id, now, false)
                .await
            {
                tracing::warn!(error = %error_chain(&error), "failed to record a config request");
            }
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
