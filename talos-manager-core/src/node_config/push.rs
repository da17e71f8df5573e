//! Pushing a newly assigned machine config to a node that waits for one in maintenance mode.
//!
//! A node booted with `talos.config=` asks `/config` with exponential back-off for up to three
//! hours; one that has waited long may take as long again to ask once a config is assigned.
//! [`push_to_waiting_node`] hands it the config at once through the maintenance API
//! (`ApplyConfiguration` over TLS without a client certificate, as `talosctl apply-config
//! --insecure` does), then records the server as configured, as a served `/config` would.
//!
//! The maintenance API's certificate comes from a per-boot CA, so it cannot be verified: the
//! config goes to whatever answers at the server's address. That is the address `/config`
//! would serve it to as well.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use time::OffsetDateTime;

use super::{NodeConfigError, render_node_config};
use crate::ids::ServerId;
use crate::progress::ProgressLog;
use crate::store::{Server, Store, StoreError};
use crate::talos_api::{ApplyMode, MachineStage, TalosApiError, TalosMaintenanceApi};

/// How recently a node must have asked for its config for a push to be tried: longer than
/// Talos's whole back-off, so a node that is still retrying is always reached.
pub const WAITING_WINDOW: Duration = Duration::from_secs(6 * 60 * 60);

/// Whether `server` looks like a node waiting for a config: it asked within
/// [`WAITING_WINDOW`] before `now` and was not served one since.
pub fn is_waiting_for_config(server: &Server, now: OffsetDateTime) -> bool {
    match (
        server.last_request_for_configuration_at,
        server.last_configured_at,
    ) {
        (Some(asked), None) => now - asked <= WAITING_WINDOW,
        _ => false,
    }
}

/// What [`push_to_waiting_node`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The node took the config; it installs (if needed) and reboots with it.
    Applied {
        /// How the node applies it, in its words.
        mode_details: String,
    },
    /// Nothing was sent: the node is not (or no longer) waiting in maintenance mode. It still
    /// gets its config from `/config` at its next attempt.
    NotWaiting {
        /// Why, for the job log.
        reason: String,
    },
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The config could not be rendered (no machine config any more, a broken template…).
    #[error("failed to render the machine config of server {server}")]
    Render {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: Box<NodeConfigError>,
    },
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node refused the config.
    #[error("server {server} refused its machine config")]
    Refused {
        /// The server's name.
        server: String,
        /// What the node said.
        #[source]
        source: TalosApiError,
    },
}

/// Applies `server_id`'s machine config to its node when the node is in maintenance mode at
/// its IPv4 address on `talos_port`; see the module documentation. Progress goes to `log`,
/// never the config.
pub async fn push_to_waiting_node(
    store: &Store,
    maintenance: &dyn TalosMaintenanceApi,
    server_id: ServerId,
    talos_port: u16,
    log: &dyn ProgressLog,
) -> Result<PushOutcome, PushError> {
    let server = store.get_server(server_id).await?;
    let name = server.inventory.name.clone();
    let not_waiting = |reason: String| Ok(PushOutcome::NotWaiting { reason });
    let Some(ip) = server
        .inventory
        .ipv4
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return not_waiting(format!("{name} has no IPv4 address to reach it at"));
    };
    let node = SocketAddr::new(ip, talos_port);
    let config = render_node_config(store, server_id)
        .await
        .map_err(|source| PushError::Render {
            server: name.clone(),
            source: Box::new(source),
        })?;
    log.line(format!(
        "asking {name} at {node} whether it waits in maintenance mode"
    ))
    .await;
    match maintenance.machine_status(node).await {
        Ok(status) if status.stage == MachineStage::Maintenance => {}
        Ok(status) => {
            return not_waiting(format!(
                "{name} is {} rather than in maintenance mode",
                status.stage
            ));
        }
        Err(error) => {
            return not_waiting(format!(
                "{name} does not answer the maintenance API: {}",
                crate::error_chain(&error)
            ));
        }
    }
    log.line(format!(
        "applying the {} machine config to {name}",
        config.machine_type.as_str()
    ))
    .await;
    let outcome = maintenance
        .apply_configuration(node, &config.yaml, ApplyMode::Auto)
        .await
        .map_err(|source| PushError::Refused {
            server: name.clone(),
            source,
        })?;
    for warning in &outcome.warnings {
        log.line(format!("{name}: warning: {warning}")).await;
    }
    store
        .mark_server_configured(server_id, OffsetDateTime::now_utc())
        .await?;
    log.line(format!(
        "{name} took its config ({}); it installs and reboots with it",
        outcome.mode_details
    ))
    .await;
    Ok(PushOutcome::Applied {
        mode_details: outcome.mode_details,
    })
}
