//! [`HetznerCloud`]: the Hetzner Cloud API client (virtual servers of one project).

pub(crate) mod api;

use std::time::Instant;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use sha2::{Digest, Sha256};

use super::budget::Clock;
use super::http::{ApiRequest, Auth, Transport};
use super::ssh_key::{KEY_NAME, upload_name};
use super::{
    HetznerApiError, MissingKey, Provider, ProviderError, ProviderKind, ProviderServer,
    ProviderSshKey, RescueActivation, RetryPolicy, SshPublicKey,
};
use crate::Secret;
use api::{ActionEnvelope, EnableRescueResponse, ServerEnvelope, ServersPage, SshKeyEnvelope};

const KIND: ProviderKind = ProviderKind::HetznerCloud;

/// A stop for pagination that never ends (a server that always sends `next_page`): 50 per page
/// makes this a million servers.
const MAX_PAGES: u64 = 20_000;

/// A Hetzner Cloud project, reached with an API token.
///
/// ```no_run
/// use talos_manager_core::{HetznerCloud, Provider, Secret};
///
/// # async fn run() -> Result<(), talos_manager_core::ProviderError> {
/// let cloud = HetznerCloud::new(HetznerCloud::DEFAULT_URL, Secret::new("token".to_owned()))?;
/// let servers = cloud.list_servers().await?; // every page
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HetznerCloud {
    transport: Transport,
}

impl HetznerCloud {
    /// The real Cloud API, version 1.
    pub const DEFAULT_URL: &str = "https://api.hetzner.cloud/v1";

    /// A client for the Cloud API at `base_url` (including `/v1`), with the default
    /// [`RetryPolicy`].
    pub fn new(base_url: &str, token: Secret<String>) -> Result<Self, ProviderError> {
        Self::with_policy(base_url, token, RetryPolicy::default())
    }

    /// A client with its own retry policy and timeouts.
    pub fn with_policy(
        base_url: &str,
        token: Secret<String>,
        policy: RetryPolicy,
    ) -> Result<Self, ProviderError> {
        // The project's budget is shared by every client with this token; the key holds a
        // digest of it, never the token.
        let digest = Sha256::digest(token.expose().as_bytes());
        let account_key = format!(
            "{}\n{}",
            base_url.trim_end_matches('/'),
            digest
                .iter()
                .take(8)
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        );
        let auth = Auth::Bearer { token };
        let transport =
            Transport::new(KIND, base_url, auth, policy, api::parse_error, &account_key)?;
        Ok(HetznerCloud { transport })
    }

    /// The same client counting its request budget on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.transport.clock = clock;
        self
    }

    /// Polls the action until it leaves `running`; `Err` when it ends in `error` or takes
    /// longer than the policy's `action_timeout`.
    async fn wait_for_action(&self, action: api::Action) -> Result<(), ProviderError> {
        let started = Instant::now();
        let mut action = action;
        loop {
            match action.status.as_str() {
                "success" => return Ok(()),
                "error" => {
                    let (code, message) = action
                        .error
                        .map(|error| (error.code, error.message))
                        .unwrap_or_else(|| ("action_failed".into(), String::new()));
                    return Err(ProviderError::ActionFailed {
                        provider: KIND,
                        action_id: action.id,
                        command: action.command,
                        source: HetznerApiError {
                            status: 200,
                            code,
                            message,
                            correlation_id: None,
                        },
                    });
                }
                _ => {}
            }
            if started.elapsed() >= self.transport.policy.action_timeout {
                return Err(ProviderError::ActionTimedOut {
                    provider: KIND,
                    action_id: action.id,
                    command: action.command,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.transport.policy.action_poll_interval).await;
            let envelope: ActionEnvelope = self
                .transport
                .send_json(&api::get_action(action.id))
                .await?;
            action = envelope.action;
        }
    }

    /// Sends a request that acts on a server (an action, a rename), waiting while the server
    /// is `locked`: Cloud refuses such requests with 423 `locked` while any action runs on the
    /// server, ours or someone else's (the console, a backup). The server is read every
    /// `action_poll_interval` until it shows `"locked": false`, then the request is sent
    /// again (a refused request did nothing, so this repeats nothing); after `action_timeout`
    /// the `locked` error is returned.
    async fn send_when_unlocked<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
        server_id: u64,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        loop {
            match self.transport.send_json(request).await {
                Err(error)
                    if error.code() == Some("locked")
                        && started.elapsed() < self.transport.policy.action_timeout =>
                {
                    tracing::info!(
                        server_id,
                        operation = %request.operation,
                        "the server is locked by a running action; waiting for it to finish"
                    );
                    self.wait_until_unlocked(server_id, started).await?;
                }
                answer => return answer.map_err(|error| server_not_found(error, server_id)),
            }
        }
    }

    /// Reads the server until it is no longer `locked`, or `action_timeout` after `started`.
    async fn wait_until_unlocked(
        &self,
        server_id: u64,
        started: Instant,
    ) -> Result<(), ProviderError> {
        loop {
            tokio::time::sleep(self.transport.policy.action_poll_interval).await;
            let envelope: ServerEnvelope = self
                .transport
                .send_json(&api::get_server(server_id))
                .await
                .map_err(|error| server_not_found(error, server_id))?;
            if !envelope.server.locked || started.elapsed() >= self.transport.policy.action_timeout
            {
                return Ok(());
            }
        }
    }

    async fn list_ssh_keys(&self) -> Result<Vec<api::SshKey>, ProviderError> {
        let mut keys = Vec::new();
        let mut page = 1;
        loop {
            let body: api::SshKeysPage =
                self.transport.send_json(&api::list_ssh_keys(page)).await?;
            keys.extend(body.ssh_keys);
            match body.meta.pagination.next_page {
                Some(next) if next > page && page < MAX_PAGES => page = next,
                _ => return Ok(keys),
            }
        }
    }
}

fn parse_server_id(provider_id: &str) -> Result<u64, ProviderError> {
    provider_id
        .parse()
        .map_err(|_| ProviderError::InvalidServerId {
            provider: KIND,
            server_id: provider_id.into(),
        })
}

/// Cloud answers 404 `not_found` for an unknown server id.
fn server_not_found(error: ProviderError, server_id: u64) -> ProviderError {
    match error {
        ProviderError::Api { source, .. } if source.status == 404 && source.code == "not_found" => {
            ProviderError::ServerNotFound {
                provider: KIND,
                server_id: server_id.to_string(),
                source: Some(source),
            }
        }
        other => other,
    }
}

#[async_trait]
impl Provider for HetznerCloud {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    /// Reads every page (50 servers each) until `meta.pagination.next_page` is null.
    async fn list_servers(&self) -> Result<Vec<ProviderServer>, ProviderError> {
        let mut servers = Vec::new();
        let mut page = 1;
        loop {
            let body: ServersPage = self.transport.send_json(&api::list_servers(page)).await?;
            if let Some(total) = body.meta.pagination.total_entries {
                servers.reserve((total as usize).saturating_sub(servers.len()));
            }
            servers.extend(
                body.servers
                    .into_iter()
                    .map(api::Server::into_provider_server),
            );
            match body.meta.pagination.next_page {
                Some(next) if next > page && page < MAX_PAGES => page = next,
                _ => return Ok(servers),
            }
        }
    }

    async fn get_server(&self, provider_id: &str) -> Result<ProviderServer, ProviderError> {
        let server_id = parse_server_id(provider_id)?;
        let envelope: ServerEnvelope = self
            .transport
            .send_json(&api::get_server(server_id))
            .await
            .map_err(|error| server_not_found(error, server_id))?;
        Ok(envelope.server.into_provider_server())
    }

    async fn rename_server(
        &self,
        provider_id: &str,
        name: &str,
    ) -> Result<ProviderServer, ProviderError> {
        let server_id = parse_server_id(provider_id)?;
        let envelope: ServerEnvelope = self
            .send_when_unlocked(&api::rename_server(server_id, name), server_id)
            .await?;
        Ok(envelope.server.into_provider_server())
    }

    async fn ensure_ssh_key(
        &self,
        key: &SshPublicKey,
        missing: MissingKey,
    ) -> Result<ProviderSshKey, ProviderError> {
        let keys = self.list_ssh_keys().await?;
        let fingerprint = key.md5_fingerprint();
        if let Some(found) = keys
            .iter()
            .find(|ssh_key| ssh_key.fingerprint == fingerprint)
        {
            return Ok(ProviderSshKey {
                id: found.id.to_string(),
                name: found.name.clone(),
                fingerprint: found.fingerprint.clone(),
                uploaded: false,
            });
        }
        let stale_key_name = keys
            .iter()
            .find(|ssh_key| ssh_key.name.contains(KEY_NAME))
            .map(|ssh_key| ssh_key.name.clone());
        // Cloud key names are unique in a project.
        let name = upload_name(
            KIND,
            fingerprint,
            stale_key_name,
            missing,
            "Cloud console → Security → SSH keys → Add SSH key",
        )?;
        let created: SshKeyEnvelope = self
            .transport
            .send_json(&api::create_ssh_key(&name, key.openssh()))
            .await?;
        Ok(ProviderSshKey {
            id: created.ssh_key.id.to_string(),
            name: created.ssh_key.name,
            fingerprint: created.ssh_key.fingerprint,
            uploaded: true,
        })
    }

    /// Enables rescue with only our key and waits for the action. A server `locked` by another
    /// running action is waited out first. An action that fails with `unknown_error` (seen in
    /// the wild) is tried again, within the retry policy's attempts.
    async fn enable_rescue(
        &self,
        provider_id: &str,
        key: &ProviderSshKey,
    ) -> Result<RescueActivation, ProviderError> {
        let server_id = parse_server_id(provider_id)?;
        let key_id: u64 = key.id.parse().map_err(|_| ProviderError::ForeignSshKey {
            provider: KIND,
            key_id: key.id.clone(),
        })?;
        let mut attempt = 1;
        loop {
            let response: EnableRescueResponse = self
                .send_when_unlocked(&api::enable_rescue(server_id, key_id), server_id)
                .await?;
            let at = OffsetDateTime::now_utc();
            match self.wait_for_action(response.action).await {
                Ok(()) => {
                    return Ok(RescueActivation {
                        at,
                        host_key_fingerprints: Vec::new(),
                        password: response.root_password.map(Secret::new),
                    });
                }
                Err(error)
                    if error.code() == Some("unknown_error")
                        && attempt < self.transport.policy.max_attempts =>
                {
                    tracing::info!(server_id, attempt, "enable_rescue failed, trying again");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Powers the server on when it is `off`, else resets it, waiting while it is `locked` by
    /// another action, and waits for the action.
    async fn power_cycle(&self, provider_id: &str) -> Result<(), ProviderError> {
        let server_id = parse_server_id(provider_id)?;
        let envelope: ServerEnvelope = self
            .transport
            .send_json(&api::get_server(server_id))
            .await
            .map_err(|error| server_not_found(error, server_id))?;
        let request = if envelope.server.status == "off" {
            api::power_on(server_id)
        } else {
            api::reset(server_id)
        };
        let action: ActionEnvelope = self.send_when_unlocked(&request, server_id).await?;
        self.wait_for_action(action.action).await
    }
}
