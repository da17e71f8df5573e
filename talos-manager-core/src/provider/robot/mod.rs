//! [`HetznerRobot`]: the Hetzner Robot webservice client (dedicated servers and vSwitches).

pub(crate) mod api;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::budget::Clock;
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
    /// The account as the vSwitch locks know it: base URL and web-service user.
    account: Arc<str>,
}

/// One asynchronous mutex per account and vSwitch, shared by every client in the process:
/// Robot refuses a change to a vSwitch while another one runs (409 `VSWITCH_IN_PROCESS`), so
/// changes to one vSwitch go one at a time, each waiting until its predecessor has finished.
type VswitchLocks = Mutex<HashMap<(Arc<str>, u64), Arc<tokio::sync::Mutex<()>>>>;
static VSWITCH_LOCKS: LazyLock<VswitchLocks> = LazyLock::new(Default::default);

/// The members of each account's vSwitches as last read, and when: sync reads a vSwitch
/// (`GET /vswitch/{id}`, 500 per hour) again only once its entry is older than the policy's
/// `vswitch_cache_ttl`, and our own membership changes drop the entry.
type VswitchCache = Mutex<HashMap<(Arc<str>, u64), (OffsetDateTime, ProviderVswitch)>>;
static VSWITCH_CACHE: LazyLock<VswitchCache> = LazyLock::new(Default::default);

/// The share of `GET /vswitch/{id}`'s hourly budget sync leaves untouched, in fifths: the reads
/// that follow our own vSwitch changes (and other tools) need some.
const VSWITCH_READS_KEPT_FIFTHS: u32 = 1;

/// A membership change of a vSwitch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Add,
    Remove,
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
        let user = user.into();
        let account: Arc<str> = format!("{}\n{user}", base_url.trim_end_matches('/')).into();
        let auth = Auth::Basic { user, password };
        let transport = Transport::new(KIND, base_url, auth, policy, api::parse_error, &account)?;
        Ok(HetznerRobot { transport, account })
    }

    /// The same client counting its request budgets and vSwitch cache on `clock` (tests move a
    /// manual one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.transport.clock = clock;
        self
    }

    fn cached_vswitch(&self, vswitch_id: u64) -> Option<(OffsetDateTime, ProviderVswitch)> {
        lock(&VSWITCH_CACHE)
            .get(&(self.account.clone(), vswitch_id))
            .cloned()
    }

    fn cache_vswitch(&self, vswitch: &ProviderVswitch) {
        lock(&VSWITCH_CACHE).insert(
            (self.account.clone(), vswitch.id),
            (self.transport.clock.now(), vswitch.clone()),
        );
    }

    fn forget_vswitch(&self, vswitch_id: u64) {
        lock(&VSWITCH_CACHE).remove(&(self.account.clone(), vswitch_id));
    }

    fn vswitch_lock(&self, vswitch_id: u64) -> Arc<tokio::sync::Mutex<()>> {
        lock(&VSWITCH_LOCKS)
            .entry((self.account.clone(), vswitch_id))
            .or_default()
            .clone()
    }

    /// Adds or removes one server, one change per vSwitch at a time in this process; waits out
    /// Robot's lock (409 `VSWITCH_IN_PROCESS`) for up to the policy's `vswitch_lock_wait`, and
    /// after an answer that leaves the outcome open reads the vSwitch back: the change is done
    /// when the membership is what it asked for. A removal returns once Robot no longer lists
    /// the server, so that a following add (to this or another vSwitch) meets no half-finished
    /// removal.
    async fn change_membership(
        &self,
        vswitch_id: u64,
        server_number: u64,
        change: Membership,
    ) -> Result<(), ProviderError> {
        let vswitch_lock = self.vswitch_lock(vswitch_id);
        let _serialized = vswitch_lock.lock().await;
        // Whatever happens below, the members as last read are no longer to be trusted.
        self.forget_vswitch(vswitch_id);
        let policy = &self.transport.policy;
        let deadline = Instant::now() + policy.vswitch_lock_wait;
        let request = match change {
            Membership::Add => api::add_vswitch_server(vswitch_id, server_number),
            Membership::Remove => api::remove_vswitch_server(vswitch_id, server_number),
        };
        loop {
            match self.transport.send(&request).await {
                Ok(_) => break,
                Err(error)
                    if error.code() == Some("VSWITCH_IN_PROCESS") && Instant::now() < deadline =>
                {
                    tracing::info!(
                        vswitch_id,
                        server_number,
                        ?change,
                        "vswitch busy with another change; waiting"
                    );
                    tokio::time::sleep(policy.vswitch_lock_poll).await;
                }
                Err(error @ ProviderError::OutcomeUnknown { .. }) => {
                    let listed = self.lists_member(vswitch_id, server_number).await?;
                    match (change, listed) {
                        (Membership::Add, true) | (Membership::Remove, false) => break,
                        _ => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
        if change == Membership::Remove {
            while self.lists_member(vswitch_id, server_number).await? {
                if Instant::now() >= deadline {
                    return Err(ProviderError::VswitchChangeUnfinished {
                        provider: KIND,
                        vswitch_id,
                        server_id: server_number.to_string(),
                        waited: policy.vswitch_lock_wait,
                    });
                }
                tokio::time::sleep(policy.vswitch_lock_poll).await;
            }
        }
        Ok(())
    }

    async fn lists_member(
        &self,
        vswitch_id: u64,
        server_number: u64,
    ) -> Result<bool, ProviderError> {
        let vswitch = self.get_vswitch(vswitch_id).await?;
        Ok(vswitch
            .server_ids
            .iter()
            .any(|id| *id == server_number.to_string()))
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let created = match self
            .transport
            .send_json::<KeyEnvelope>(&api::create_key(&name, key.openssh()))
            .await
        {
            Ok(created) => created,
            // Another upload of the same key won the race (409 `KEY_ALREADY_EXISTS`), or ours
            // went through behind an error answer: the key is there, use it.
            Err(error)
                if error.code() == Some("KEY_ALREADY_EXISTS")
                    || matches!(error, ProviderError::OutcomeUnknown { .. }) =>
            {
                let keys = empty_list_as_404(
                    self.transport
                        .send_json::<Vec<KeyEnvelope>>(&api::list_keys())
                        .await,
                    "NOT_FOUND",
                )?;
                let Some(found) = keys
                    .into_iter()
                    .find(|envelope| envelope.key.fingerprint == fingerprint)
                else {
                    return Err(error);
                };
                tracing::info!(fingerprint, "our key was uploaded meanwhile; using it");
                return Ok(ProviderSshKey {
                    id: found.key.fingerprint.clone(),
                    name: found.key.name,
                    fingerprint: found.key.fingerprint,
                    uploaded: true,
                });
            }
            Err(error) => return Err(error),
        };
        Ok(ProviderSshKey {
            id: created.key.fingerprint.clone(),
            name: created.key.name,
            fingerprint: created.key.fingerprint,
            uploaded: true,
        })
    }

    /// Activates Linux rescue with only our key. When rescue is already active
    /// (`BOOT_ALREADY_ENABLED`), the activation is kept if it carries our key, and otherwise
    /// deleted and made again so that our key takes effect. An activation whose answer leaves
    /// the outcome open (a 5xx, a timeout) is not sent again: the rescue state is read back, and
    /// an active rescue with our key is the activation.
    async fn enable_rescue(
        &self,
        provider_id: &str,
        key: &ProviderSshKey,
    ) -> Result<RescueActivation, ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        match self.activate_rescue(server_number, &key.fingerprint).await {
            Ok(rescue) => Ok(activation(&rescue)),
            Err(error @ ProviderError::OutcomeUnknown { .. }) => {
                let current = self.rescue_state(server_number).await?;
                if current.active && current.authorized_fingerprints().contains(&key.fingerprint) {
                    tracing::info!(
                        server_number,
                        "rescue activation answered with an error but went through"
                    );
                    return Ok(activation(&current));
                }
                Err(error)
            }
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

    /// Presses the power button when Robot says the server is shut off, else a hardware reset,
    /// else the power button, else a software reset; never `man`, which orders a technician
    /// ([`ProviderError::NoAutomaticReset`] when the server offers nothing else).
    ///
    /// A reset whose answer leaves the outcome open is never sent again (a second reset could
    /// come after the first boot used the one-boot rescue activation, or switch the server off
    /// again): that ends in [`ProviderError::OutcomeUnknown`].
    async fn power_cycle(&self, provider_id: &str) -> Result<(), ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        let options: ResetEnvelope = self
            .transport
            .send_json(&api::get_reset(server_number))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        let Some(reset_type) = options.reset.boot_type() else {
            return Err(ProviderError::NoAutomaticReset {
                provider: KIND,
                server_id: provider_id.to_owned(),
                offered: options.reset.types,
            });
        };
        self.transport
            .send(&api::reset(server_number, reset_type))
            .await
            .map_err(|error| server_not_found(error, server_number))?;
        Ok(())
    }
}

#[async_trait]
impl VswitchProvider for HetznerRobot {
    /// Lists the vSwitches, then takes each one's members from the cache while they are younger
    /// than the policy's `vswitch_cache_ttl`, and reads the others (`GET /vswitch/{id}`),
    /// stalest first, while that endpoint's hourly budget has more than a fifth left. A vSwitch
    /// whose read fails (other than for refused credentials) or is deferred keeps its members
    /// as last read, or is listed with `members_known: false`: one bad read never costs the
    /// account its sync, and never loses members.
    async fn list_vswitches(&self) -> Result<Vec<ProviderVswitch>, ProviderError> {
        let refs: Vec<VswitchBody> = self.transport.send_json(&api::list_vswitches()).await?;
        let clock = &self.transport.clock;
        let ttl = self.transport.policy.vswitch_cache_ttl;
        let keep = api::GET_VSWITCH.per_hour * VSWITCH_READS_KEPT_FIFTHS / 5;
        let mut entries: Vec<_> = refs
            .into_iter()
            .enumerate()
            .map(|(position, vswitch_ref)| {
                let cached = self.cached_vswitch(vswitch_ref.id);
                (position, vswitch_ref, cached)
            })
            .collect();
        entries.sort_by_key(|(_, _, cached)| cached.as_ref().map(|(read_at, _)| *read_at));
        let mut vswitches = Vec::with_capacity(entries.len());
        let mut deferred = 0usize;
        for (position, vswitch_ref, cached) in entries {
            let now = clock.now();
            let fresh = cached
                .as_ref()
                .is_some_and(|(read_at, _)| now - *read_at < ttl);
            let members = if fresh {
                cached.map(|(_, vswitch)| vswitch)
            } else if self.transport.budgets.remaining(api::GET_VSWITCH, now) > keep {
                match self.get_vswitch(vswitch_ref.id).await {
                    Ok(vswitch) => Some(vswitch),
                    Err(error @ ProviderError::Unauthorized { .. }) => return Err(error),
                    Err(error) if error.code() == Some("BLOCKED") => return Err(error),
                    Err(error) => {
                        tracing::warn!(
                            vswitch_id = vswitch_ref.id,
                            "could not read the members of vswitch {}; keeping them as last \
                             read: {}",
                            vswitch_ref.id,
                            crate::error_chain(&error)
                        );
                        cached.map(|(_, vswitch)| vswitch)
                    }
                }
            } else {
                deferred += 1;
                cached.map(|(_, vswitch)| vswitch)
            };
            let mut vswitch = vswitch_ref.into_vswitch();
            match members {
                Some(members) => vswitch.server_ids = members.server_ids,
                None => vswitch.members_known = false,
            }
            vswitches.push((position, vswitch));
        }
        if deferred > 0 {
            tracing::info!(
                deferred,
                "deferred reading the members of {deferred} vswitch(es) to stay inside Robot's \
                 hourly request budget for GET /vswitch/{{id}}"
            );
        }
        // In Robot's order: sync links a server to the first vSwitch that lists it.
        vswitches.sort_by_key(|(position, _)| *position);
        Ok(vswitches.into_iter().map(|(_, vswitch)| vswitch).collect())
    }

    async fn get_vswitch(&self, vswitch_id: u64) -> Result<ProviderVswitch, ProviderError> {
        match self
            .transport
            .send_json::<VswitchBody>(&api::get_vswitch(vswitch_id))
            .await
        {
            Ok(body) => {
                let vswitch = body.into_vswitch();
                self.cache_vswitch(&vswitch);
                Ok(vswitch)
            }
            Err(ProviderError::Api { source, .. }) if source.status == 404 => {
                self.forget_vswitch(vswitch_id);
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
        self.change_membership(vswitch_id, server_number, Membership::Add)
            .await
    }

    async fn remove_server_from_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError> {
        let server_number = parse_server_number(provider_id)?;
        self.change_membership(vswitch_id, server_number, Membership::Remove)
            .await
    }
}
