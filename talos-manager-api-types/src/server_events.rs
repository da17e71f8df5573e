//! `/servers/events`: the servers page's live rows.

use crate::{JobView, MachineConfigView, ServerView};

/// A server's row changed: its view, newest job and machine config as they are now.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ServerEvent {
    /// The server's id, `robot-<server number>` or `cloud-<id>`.
    pub server_id: String,
    /// The server now; null when it was deleted (it vanished at its provider).
    pub server: Option<ServerView>,
    /// Its newest `bootstrap`, `label_and_taint` or `reset` job.
    pub latest_job: Option<JobView>,
    /// Its machine config, when it has one.
    pub machine_config: Option<MachineConfigView>,
}
