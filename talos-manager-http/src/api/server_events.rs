//! `/servers/events`: the servers page's live updates, as server-sent events.
//!
//! Each connection polls the store once a second and sends the servers whose row changed: the
//! server's view (name, cluster, state with the install progress, timestamps), its newest job and
//! its machine config. Polling was chosen over a channel fed by the writes because the writes
//! come from many places (the API, the job worker, `GET /config`, other replicas sharing a
//! PostgreSQL database), and a poll sees all of them with four cheap queries per second and
//! connected tab.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::EventStream;
use poem_openapi::types::ToJSON as _;
use talos_manager_api_types::ServerEvent;
use talos_manager_core::ids::ServerRef;
use talos_manager_core::store::Job;
use talos_manager_core::{Store, StoreError, error_chain};

use super::auth::AdminAuth;
use super::jobs::job_view;
use super::machine_configs::machine_config_view;
use super::servers::{server_view_of, with_expected_hostname};
use super::{Tag, until_shutdown, while_authorized};
use crate::AppState;
use talos_manager_core::jobs::JobKind;

/// How often a connection looks for changes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often an idle connection sends a keep-alive comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where a connection stands: what it sent last for each server, and what is still to send.
struct Watch {
    store: Store,
    sent: HashMap<String, serde_json::Value>,
    pending: VecDeque<ServerEvent>,
    first: bool,
}

/// The next event: a change found by the last poll, else the changes of the next poll. The
/// first poll sends every server. A store error ends the stream (the page falls back to
/// polling and reconnects).
async fn next_event(mut watch: Watch) -> Option<(ServerEvent, Watch)> {
    loop {
        if let Some(event) = watch.pending.pop_front() {
            return Some((event, watch));
        }
        if !watch.first {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        watch.first = false;
        let events = match snapshot(&watch.store).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "live server updates stopped");
                return None;
            }
        };
        let mut seen = HashSet::with_capacity(events.len());
        for event in events {
            seen.insert(event.server_id.clone());
            let json = event.to_json();
            if watch.sent.get(&event.server_id) != json.as_ref() {
                if let Some(json) = json {
                    watch.sent.insert(event.server_id.clone(), json);
                }
                watch.pending.push_back(event);
            }
        }
        let gone: Vec<String> = watch
            .sent
            .keys()
            .filter(|server_id| !seen.contains(*server_id))
            .cloned()
            .collect();
        for server_id in gone {
            watch.sent.remove(&server_id);
            watch.pending.push_back(ServerEvent {
                server_id,
                server: None,
                latest_job: None,
                machine_config: None,
            });
        }
    }
}

/// Every server's event as the store has it now.
async fn snapshot(store: &Store) -> Result<Vec<ServerEvent>, StoreError> {
    let servers = store.list_servers().await?;
    let bootstraps = store
        .latest_jobs_by_server(JobKind::Bootstrap.as_str())
        .await?;
    let labels = store
        .latest_jobs_by_server(JobKind::LabelAndTaint.as_str())
        .await?;
    let resets = store.latest_jobs_by_server(JobKind::Reset.as_str()).await?;
    let mut machine_configs: HashMap<_, _> = store
        .list_machine_configs()
        .await?
        .into_iter()
        .map(|machine_config| (machine_config.server_id, machine_config))
        .collect();
    let api_ids: HashMap<_, _> = servers
        .iter()
        .map(|server| {
            let api_id = ServerRef::new(server.inventory.provider, &server.inventory.provider_id)
                .to_string();
            (server.id, api_id)
        })
        .collect();
    Ok(servers
        .into_iter()
        .map(|server| {
            let bootstrap = bootstraps.get(&server.id);
            let latest_job = [bootstrap, labels.get(&server.id), resets.get(&server.id)]
                .into_iter()
                .flatten()
                .max_by_key(|job: &&Job| job.id)
                .map(|job| job_view(job.clone(), &api_ids));
            let machine_config = machine_configs.remove(&server.id);
            let hostname = machine_config
                .as_ref()
                .map(|machine_config| machine_config.fields.hostname.clone());
            let machine_config =
                machine_config.map(|machine_config| machine_config_view(machine_config, &server));
            let view =
                with_expected_hostname(server_view_of(server, bootstrap), hostname.as_deref());
            ServerEvent {
                server_id: view.id.clone(),
                server: Some(view),
                latest_job,
                machine_config,
            }
        })
        .collect())
}

pub(crate) struct ServerEventsApi;

#[OpenApi(tag = "Tag::Servers")]
impl ServerEventsApi {
    /// Follow the servers as server-sent events, for live pages: first one event per server,
    /// then one whenever a server's view, newest job or machine config changes (checked every
    /// second), and an event whose `server` is null when a server is deleted. A keep-alive
    /// comment comes every 15 s.
    #[oai(
        path = "/servers/events",
        method = "get",
        operation_id = "follow_server_events"
    )]
    async fn events(
        &self,
        request: &poem::Request,
        state: Data<&AppState>,
        auth: AdminAuth,
    ) -> EventStream<BoxStream<'static, ServerEvent>> {
        let watch = Watch {
            store: state.store.clone(),
            sent: HashMap::new(),
            pending: VecDeque::new(),
            first: true,
        };
        let events = until_shutdown(
            request,
            while_authorized(&state, &auth, stream::unfold(watch, next_event).boxed()),
        );
        EventStream::new(events).keep_alive(KEEP_ALIVE)
    }
}
