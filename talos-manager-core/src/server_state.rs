//! [`server_state`]: where a server is on its way from rescue to the cluster, in one phrase, from
//! its latest bootstrap job and its timestamps.

use std::fmt;

use crate::store::{Job, JobStatus, Server};

/// Where a server is on its way from rescue to the cluster. `Display` is the phrase the API and
/// the dashboard show (`installing 42 %`, `failed: <reason>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Nothing is known yet: never in rescue, never bootstrapped, never asked for a config.
    Unknown,
    /// Rescue was activated and the server is rebooting into it.
    EnteringRescue,
    /// The last probe found it in rescue and reachable.
    InRescue,
    /// A bootstrap is queued.
    BootstrapQueued,
    /// A bootstrap runs, before the image write (entering rescue, probing, wiping).
    Bootstrapping,
    /// The image is being written; the percentage when the image size is known.
    Installing {
        /// Percent written.
        percent: Option<i32>,
    },
    /// The image is written and the server reboots into Talos; it has not asked for a config.
    BootingTalos,
    /// It asked for its config and got none (it has no machine config yet); Talos keeps asking.
    WaitingForConfig,
    /// It was served its config.
    ConfigServed,
    /// It was served its config and its labels and taints were applied: it is a node.
    InCluster,
    /// The last bootstrap failed.
    Failed {
        /// Why, as the job recorded it.
        reason: String,
    },
    /// The last bootstrap was cancelled.
    Cancelled,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerState::Unknown => f.write_str("unknown"),
            ServerState::EnteringRescue => f.write_str("entering rescue"),
            ServerState::InRescue => f.write_str("in rescue"),
            ServerState::BootstrapQueued => f.write_str("bootstrap queued"),
            ServerState::Bootstrapping => f.write_str("bootstrapping"),
            ServerState::Installing { percent: Some(p) } => write!(f, "installing {p} %"),
            ServerState::Installing { percent: None } => f.write_str("installing"),
            ServerState::BootingTalos => f.write_str("booting Talos"),
            ServerState::WaitingForConfig => f.write_str("waiting for config"),
            ServerState::ConfigServed => f.write_str("config served"),
            ServerState::InCluster => f.write_str("in cluster"),
            ServerState::Failed { reason } => write!(f, "failed: {reason}"),
            ServerState::Cancelled => f.write_str("bootstrap cancelled"),
        }
    }
}

/// The state of `server`, given its newest bootstrap job (if any).
///
/// A queued or running bootstrap wins. Otherwise the newest evidence does: a rescue activation
/// or config request after the job ended says more than the job's outcome. A running job with a
/// recorded progress is writing the image (`installing N %`).
pub fn server_state(server: &Server, latest_bootstrap: Option<&Job>) -> ServerState {
    if let Some(job) = latest_bootstrap {
        match job.status {
            JobStatus::Queued => return ServerState::BootstrapQueued,
            JobStatus::Running => {
                return match job.progress {
                    Some(percent) => ServerState::Installing {
                        percent: Some(percent),
                    },
                    None => ServerState::Bootstrapping,
                };
            }
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled => {}
        }
    }
    let job_ended = latest_bootstrap.and_then(|job| job.finished_at);
    let after_job = |at: Option<time::OffsetDateTime>| match (at, job_ended) {
        (Some(at), Some(ended)) => at > ended,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if after_job(server.last_request_for_configuration_at) || after_job(server.last_configured_at) {
        return config_state(server);
    }
    if after_job(server.rescue_activated_at) {
        return rescue_state(server);
    }
    match latest_bootstrap {
        Some(job) => match job.status {
            JobStatus::Succeeded => ServerState::BootingTalos,
            JobStatus::Failed => ServerState::Failed {
                reason: job
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no reason was recorded".to_owned()),
            },
            JobStatus::Cancelled => ServerState::Cancelled,
            JobStatus::Queued | JobStatus::Running => ServerState::Bootstrapping,
        },
        None if server.accessible => ServerState::InRescue,
        None => ServerState::Unknown,
    }
}

/// The state of a server that asked for its config.
fn config_state(server: &Server) -> ServerState {
    let served_last = match (
        server.last_configured_at,
        server.last_request_for_configuration_at,
    ) {
        (Some(served), Some(requested)) => served >= requested,
        (Some(_), None) => true,
        (None, _) => false,
    };
    match (served_last, server.label_and_taint_job_completed_at) {
        (true, Some(_)) => ServerState::InCluster,
        (true, None) => ServerState::ConfigServed,
        (false, _) => ServerState::WaitingForConfig,
    }
}

/// The state of a server whose rescue was activated after its last bootstrap.
fn rescue_state(server: &Server) -> ServerState {
    if server.accessible {
        ServerState::InRescue
    } else {
        ServerState::EnteringRescue
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::ids::{JobId, ProviderAccountId, ServerId};
    use crate::provider::{Architecture, ProviderKind};
    use crate::store::ServerInventory;

    const T0: OffsetDateTime = datetime!(2026-01-01 10:00 UTC);
    const T1: OffsetDateTime = datetime!(2026-01-01 10:10 UTC);
    const T2: OffsetDateTime = datetime!(2026-01-01 10:20 UTC);
    const T3: OffsetDateTime = datetime!(2026-01-01 10:30 UTC);

    fn server() -> Server {
        Server {
            id: ServerId(1),
            provider_account_id: ProviderAccountId(1),
            inventory: ServerInventory {
                provider: ProviderKind::HetznerRobot,
                provider_id: "321".into(),
                name: "worker-1".into(),
                ipv4: Some("127.18.1.2".into()),
                ipv6: None,
                product: "AX52".into(),
                data_center: "FSN1-DC16".into(),
                status: "ready".into(),
                cancelled: false,
                architecture: Architecture::Amd64,
                vswitch_id: None,
            },
            cluster_id: None,
            accessible: false,
            uuid: None,
            lsblk: None,
            bootstrap_disk: None,
            bootstrap_disk_wwid: None,
            schematic_id: None,
            rescue_activated_at: None,
            last_request_for_configuration_at: None,
            last_configured_at: None,
            label_and_taint_job_completed_at: None,
            installed_schematic: None,
            missing_since: None,
            missing_syncs: 0,
            node_name: None,
            created_at: T0,
            updated_at: T0,
        }
    }

    fn job(status: JobStatus, finished_at: Option<OffsetDateTime>) -> Job {
        Job {
            id: JobId(7),
            kind: "bootstrap".into(),
            server_id: Some(ServerId(1)),
            args: serde_json::json!({}),
            status,
            attempts: 1,
            last_error: None,
            run_after: T0,
            locked_by: None,
            heartbeat_at: None,
            cancel_requested: false,
            created_at: T0,
            started_at: Some(T0),
            finished_at,
            progress: None,
            state: None,
        }
    }

    #[track_caller]
    fn check(server: &Server, job: Option<&Job>, expected: &str) {
        assert_eq!(server_state(server, job).to_string(), expected);
    }

    #[test]
    fn without_a_bootstrap_the_rescue_and_config_timestamps_decide() {
        let mut server = server();
        check(&server, None, "unknown");
        server.rescue_activated_at = Some(T1);
        check(&server, None, "entering rescue");
        server.accessible = true;
        check(&server, None, "in rescue");
        // A node configured outside talos-manager (or before it kept jobs).
        let mut adopted = self::server();
        adopted.last_configured_at = Some(T1);
        check(&adopted, None, "config served");
    }

    #[test]
    fn a_queued_or_running_bootstrap_shows_its_progress() {
        let server = server();
        check(
            &server,
            Some(&job(JobStatus::Queued, None)),
            "bootstrap queued",
        );
        let mut running = job(JobStatus::Running, None);
        check(&server, Some(&running), "bootstrapping");
        running.progress = Some(42);
        check(&server, Some(&running), "installing 42 %");
        // A running job wins over older or newer timestamps.
        let mut configured = self::server();
        configured.last_configured_at = Some(T3);
        check(&configured, Some(&running), "installing 42 %");
    }

    #[test]
    fn after_a_successful_bootstrap_the_node_boots_asks_and_joins() {
        let done = job(JobStatus::Succeeded, Some(T1));
        let mut server = server();
        check(&server, Some(&done), "booting Talos");
        server.last_request_for_configuration_at = Some(T2);
        check(&server, Some(&done), "waiting for config");
        server.last_configured_at = Some(T2);
        check(&server, Some(&done), "config served");
        server.label_and_taint_job_completed_at = Some(T3);
        check(&server, Some(&done), "in cluster");
        // A config served before the bootstrap says nothing about the new install.
        let mut old = self::server();
        old.last_configured_at = Some(T0);
        old.label_and_taint_job_completed_at = Some(T0);
        check(&old, Some(&done), "booting Talos");
    }

    #[test]
    fn a_failed_or_cancelled_bootstrap_shows_until_something_newer_happens() {
        let mut failed = job(JobStatus::Failed, Some(T1));
        failed.last_error = Some("the server did not come up in rescue".into());
        let mut server = server();
        check(
            &server,
            Some(&failed),
            "failed: the server did not come up in rescue",
        );
        failed.last_error = None;
        check(&server, Some(&failed), "failed: no reason was recorded");
        check(
            &server,
            Some(&job(JobStatus::Cancelled, Some(T1))),
            "bootstrap cancelled",
        );
        // Rescue activated again after the failure: a retry is on its way.
        server.rescue_activated_at = Some(T2);
        check(&server, Some(&failed), "entering rescue");
        server.accessible = true;
        check(&server, Some(&failed), "in rescue");
    }
}
