//! [`HetznerRobot`]: the Hetzner Robot webservice client (dedicated servers and vSwitches).

pub(crate) mod api;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::http::{Auth, Transport};
use super::ssh_key::{KEY_NAME, upload_name};
use super::{
    MissingKey, Provider, ProviderError, ProviderKind, ProviderServer, ProviderSshKey,
    ProviderVswitch, RescueActivation, RetryPolicy, SshPublicKey, VswitchProvider,
};
use crate::Secret;
use api::{KeyEnvelope, RescueEnvelope, ResetEnvelope, ServerEnvelope, VswitchBody};

const KIND: ProviderKind = ProviderKind::HetznerRobot;

/// A Hetzner Robot account, reached with its web-service user and password.
///
/// ```no_run
/// use talos_manager_core::{HetznerRobot, Provider, Secret};
///
/// # async fn run() -> Result<(), talos_manager_core::ProviderError> {
/// let robot = HetznerRobot::new(
///     HetznerRobot::DEFAULT_URL,
///     "#ws+user",
///     Secret::new("password".to_owned()),
/// )?;
/// for server in robot.list_servers().await? {
///     println!("{} {}", server.provider_id, server.name);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HetznerRobot {
    transport: Transport,
}

impl HetznerRobot {
    /// The real Robot webservice.
    pub const DEFAULT_URL: &str = "https://robot-ws.your-server.de";

    /// A client for the Robot API at `base_url` (no version prefix), with the default
    /// [`RetryPolicy`].
    pub fn new(
        base_url: &str,
        user: impl Into<String>,
        password: Secret<String>,
    ) -> Result<Self, ProviderError> {
        Self::with_policy(base_url, user, password, RetryPolicy::default())
    }

    /// A client with its own retry policy and timeouts.
    pub fn with_policy(
        base_url: &str,
        user: impl Into<String>,
        password: Secret<String>,
        policy: RetryPolicy,
    ) -> Result<Self, ProviderError> {
        let auth = Auth::Basic {
            user: user.into(),
            password,
        };
        let transport = Transport::new(KIND, base_url, auth, policy, api::parse_error)?;
        Ok(HetznerRobot { transport })
    }

    async fn rescue_state(&self, server_number: u64) -> Result<api::Rescue, ProviderError> {
        let request = api::get_rescue(server_number);
        let envelope: RescueEnvelope = self
            .transport
            .send_json(&request)
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(envelope.rescue)
    }

    async fn activate_rescue(
        &self,
        server_number: u64,
        fingerprint: &str,
    ) -> Result<api::Rescue, ProviderError> {
        let request = api::enable_rescue(server_number, fingerprint);
        let envelope: RescueEnvelope = self
            .transport
            .send_json(&request)
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(envelope.rescue)
    }
}

fn parse_server_number(provider_id: &str) -> Result<u64, ProviderError> {
    provider_id
        .parse()
        .map_err(|_| ProviderError::InvalidServerId {
            provider: KIND,
            server_id: provider_id.into(),
        })
}

/// Robot answers 404 `SERVER_NOT_FOUND` for an unknown server number.
fn server_not_found(error: ProviderError, server_number: u64) -> ProviderError {
    match error {
        ProviderError::Api { source, .. }
            if source.status == 404 && source.code == "SERVER_NOT_FOUND" =>
        {
            ProviderError::ServerNotFound {
                provider: KIND,
                server_id: server_number.to_string(),
                source: Some(source),
            }
        }
        other => other,
    }
}

/// Robot answers an empty list with 404 and `code` (`SERVER_NOT_FOUND`, `NOT_FOUND`): that is
/// how the webservice says "no servers" (hetzner-fidelity R1), so it is read as `[]`. Sync never
/// deletes on such an answer alone: what an account stops listing is only marked missing, and a
/// list that loses most of an account's servers at once changes nothing
/// (`crate::sync::SyncPolicy`).
fn empty_list_as_404<T>(
    result: Result<Vec<T>, ProviderError>,
    code: &str,
) -> Result<Vec<T>, ProviderError> {
    match result {
        Err(ProviderError::Api { source, .. }) if source.status == 404 && source.code == code => {
            Ok(Vec::new())
        }
        other => other,
    }
}

fn activation(rescue: &api::Rescue) -> RescueActivation {
    RescueActivation {
        at: OffsetDateTime::now_utc(),
        host_key_fingerprints: rescue.host_key_fingerprints(),
        password: rescue.password.clone().map(Secret::new),
    }
}

#[async_trait]
impl Provider for HetznerRobot {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    async fn list_servers(&self) -> Result<Vec<ProviderServer>, ProviderError> {
        let envelopes = empty_list_as_404(
            self.transport
                .send_json::<Vec<ServerEnvelope>>(&api::list_servers())
                .await,
            "SERVER_NOT_FOUND",
        )?;
        Ok(envelopes
            .into_iter()
            .map(|envelope| envelope.server.into_provider_server())
            .collect())
    }

    async fn get_server(&self, provider_id: &str) -> Result<ProviderServer, ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        let envelope: ServerEnvelope = self
            .transport
            .send_json(&api::get_server(server_number))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(envelope.server.into_provider_server())
    }

    async fn rename_server(
        &self,
        provider_id: &str,
        name: &str,
    ) -> Result<ProviderServer, ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        let envelope: ServerEnvelope = self
            .transport
            .send_json(&api::rename_server(server_number, name))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(envelope.server.into_provider_server())
    }

    async fn ensure_ssh_key(
        &self,
        key: &SshPublicKey,
        missing: MissingKey,
    ) -> Result<ProviderSshKey, ProviderError> {
        let keys = empty_list_as_404(
            self.transport
                .send_json::<Vec<KeyEnvelope>>(&api::list_keys())
                .await,
            "NOT_FOUND",
        )?;
        let fingerprint = key.md5_fingerprint();
        if let Some(found) = keys
            .iter()
            .find(|envelope| envelope.key.fingerprint == fingerprint)
        {
            return Ok(ProviderSshKey {
                id: found.key.fingerprint.clone(),
                name: found.key.name.clone(),
                fingerprint: found.key.fingerprint.clone(),
                uploaded: false,
            });
        }
        let stale_key_name = keys
            .iter()
            .find(|envelope| envelope.key.name.contains(KEY_NAME))
            .map(|envelope| envelope.key.name.clone());
        // Names need not be unique in Robot, but a second "talos-manager" would be confusing.
        let name = upload_name(
            KIND,
            fingerprint,
            stale_key_name,
            missing,
            "Robot → Key management → New key",
        )?;
        let created: KeyEnvelope = self
            .transport
            .send_json(&api::create_key(&name, key.openssh()))
            .await?;
        Ok(ProviderSshKey {
            id: created.key.fingerprint.clone(),
            name: created.key.name,
            fingerprint: created.key.fingerprint,
            uploaded: true,
        })
    }

    /// Activates Linux rescue with only our key. When rescue is already active
    /// (`BOOT_ALREADY_ENABLED`), the activation is kept if it carries our key, and otherwise
    /// deleted and made again so that our key takes effect.
    async fn enable_rescue(
        &self,
        provider_id: &str,
        key: &ProviderSshKey,
    ) -> Result<RescueActivation, ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        match self.activate_rescue(server_number, &key.fingerprint).await {
            Ok(rescue) => Ok(activation(&rescue)),
            Err(error) if error.code() == Some("BOOT_ALREADY_ENABLED") => {
                let current = self.rescue_state(server_number).await?;
                if current.active && current.authorized_fingerprints().contains(&key.fingerprint) {
                    tracing::info!(server_number, "rescue already active with our key");
                    return Ok(activation(&current));
                }
                tracing::info!(
                    server_number,
                    "rescue active with other keys; activating again"
                );
                self.transport
                    .send(&api::disable_rescue(server_number))
                    .await
                    .map_err(|error| server_not_found(error, server_number))?;
                let rescue = self
                    .activate_rescue(server_number, &key.fingerprint)
                    .await?;
                Ok(activation(&rescue))
            }
            Err(error) => Err(error),
        }
    }

    /// Presses the power button when Robot says the server is shut off, else a hardware reset.
    async fn power_cycle(&self, provider_id: &str) -> Result<(), ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        let options: ResetEnvelope = self
            .transport
            .send_json(&api::get_reset(server_number))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        let reset_type = options.reset.boot_type();
        self.transport
            .send(&api::reset(server_number, reset_type))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(())
    }
}

#[async_trait]
impl VswitchProvider for HetznerRobot {
    /// Lists the vSwitches, then reads each one for its members (the list has none).
    async fn list_vswitches(&self) -> Result<Vec<ProviderVswitch>, ProviderError> {
        let refs: Vec<VswitchBody> = self.transport.send_json(&api::list_vswitches()).await?;
        let mut vswitches = Vec::with_capacity(refs.len());
        for vswitch_ref in refs {
            vswitches.push(self.get_vswitch(vswitch_ref.id).await?);
        }
        Ok(vswitches)
    }

    async fn get_vswitch(&self, vswitch_id: u64) -> Result<ProviderVswitch, ProviderError> {
        match self
            .transport
            .send_json::<VswitchBody>(&api::get_vswitch(vswitch_id))
            .await
        {
            Ok(body) => Ok(body.into_vswitch()),
            Err(ProviderError::Api { source, .. }) if source.status == 404 => {
                Err(ProviderError::VswitchNotFound {
                    provider: KIND,
                    vswitch_id,
                    source: Some(source),
                })
            }
            Err(error) => Err(error),
        }
    }

    async fn add_server_to_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        self.transport
            .send(&api::add_vswitch_server(vswitch_id, server_number))
            .await?;
        Ok(())
    }

    async fn remove_server_from_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        self.transport
            .send(&api::remove_vswitch_server(vswitch_id, server_number))
            .await?;
        Ok(())
    }
}
