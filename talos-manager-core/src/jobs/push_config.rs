//! The `push_config` job: hands a newly assigned machine config to a node that waits for one in
//! maintenance mode (see `crate::node_config::push_to_waiting_node`), and when such
//! a job is queued: after a machine config is saved for a server whose node asked for its config
//! recently and was not served one.

use std::fmt;
use std::sync::Arc;

use crate::node_config::{PushOutcome, is_waiting_for_config, push_to_waiting_node};
use crate::store::{NewJob, Server};
use crate::talos_api::TalosConnector;
use crate::{Store, StoreError};
use async_trait::async_trait;
use time::OffsetDateTime;

use super::{JobContext, JobError, JobHandler, JobKind, JobLog, JobQueue, LabelAndTaintTrigger};

/// How the service reaches nodes' Talos API: the client, and the port nodes listen on
/// (`TALOS_API_PORT`).
#[derive(Clone)]
pub struct TalosSettings {
    /// Makes Talos API clients: the gRPC client in the service, the fake's in tests.
    pub connector: Arc<dyn TalosConnector>,
    /// The port of every node's Talos API.
    pub port: u16,
}

impl fmt::Debug for TalosSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TalosSettings")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Pushes the job's server's machine config to its node when it waits in maintenance mode.
#[derive(Debug, Clone)]
pub struct PushConfigJob {
    talos: TalosSettings,
}

impl PushConfigJob {
    /// A handler reaching nodes as `talos` says.
    pub fn new(talos: TalosSettings) -> PushConfigJob {
        PushConfigJob { talos }
    }
}

#[async_trait]
impl JobHandler for PushConfigJob {
    fn kind(&self) -> &'static str {
        JobKind::PushConfig.as_str()
    }

    fn repeatable(&self) -> bool {
        // Applying the same config twice to a node in maintenance mode is harmless, and a node
        // that already took it is no longer in maintenance mode.
        true
    }

    async fn run(&self, context: &JobContext) -> Result<(), JobError> {
        let server_id = context.server_id()?;
        let maintenance = self.talos.connector.maintenance();
        let outcome = push_to_waiting_node(
            context.store(),
            maintenance.as_ref(),
            server_id,
            self.talos.port,
            &JobLog(context),
        )
        .await
        .map_err(|error| JobError::Push(Box::new(error)))?;
        match outcome {
            PushOutcome::Applied { .. } => {
                // The node will not ask `/config` again: queue what a served config queues.
                let queue = JobQueue::new(context.store().clone());
                super::queue_label_and_taint(
                    &queue,
                    context.store(),
                    server_id,
                    LabelAndTaintTrigger::ConfigServed,
                )
                .await?;
            }
            PushOutcome::NotWaiting { reason } => {
                context
                    .log(format!(
                        "nothing pushed: {reason}; the node gets its config from /config at \
                         its next attempt"
                    ))
                    .await;
            }
        }
        Ok(())
    }
}

/// Queues a push of `server`'s config when its node looks like it waits for one (it asked
/// within the last hours and was not served a config since). Returns whether it queued one.
pub async fn queue_push_if_waiting(
    store: &Store,
    queue: &JobQueue,
    server: &Server,
) -> Result<bool, StoreError> {
    let fresh = store.get_server(server.id).await?;
    if !is_waiting_for_config(&fresh, OffsetDateTime::now_utc()) {
        return Ok(false);
    }
    queue
        .enqueue(&NewJob {
            kind: JobKind::PushConfig.to_string(),
            server_id: Some(fresh.id),
            args: serde_json::json!({}),
        })
        .await?;
    Ok(true)
}
