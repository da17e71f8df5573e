//! [`FakeProvider`]: an in-memory provider for the flow tests of core (sync, rescue, server
//! edits: `tests/core/provider_flows.rs`), implementing [`Provider`] and [`VswitchProvider`]
//! like the real clients.
//!
//! Available with the `testing` feature (and in this crate's own unit tests). Tests of the
//! Hetzner clients themselves use the wire-level fakes in `tests/fake-hetzner` instead; this
//! fake skips HTTP entirely and models only what callers of the traits can observe.
//!
//! # State model
//!
//! The fake holds servers (as [`ProviderServer`]), SSH keys (by MD5 fingerprint), vSwitches and
//! a log of calls, behind one mutex. Each server also has a [`FakeServerState`]:
//!
//! ```text
//!             enable_rescue                power_cycle              advance (Explicit mode)
//!  Ordered ─────────────────> RescueEnabled ─────────> BootingRescue ─────────────────────> InRescue
//!     ^  ^                                   (Auto mode: power_cycle goes straight to InRescue)   |
//!     |  └───────────── power_cycle without an activation: boots from disk ──────────────────────┤
//!     |                                                                        mark_installed     v
//!     └──── (never back: a wiped disk)                                   Installed <──────────────┘
//! ```
//!
//! * `Ordered`: the server runs whatever it came with; SSH into rescue would fail.
//! * `RescueEnabled`: an activation with our key waits for the next boot
//!   ([`FakeProvider::rescue_keys`] tells which keys). Enabling again replaces it, as the Robot
//!   client does when the keys differ.
//! * `BootingRescue`: the server is rebooting into rescue. Only in [`SimMode::Explicit`]: the test
//!   decides when the boot completes with [`FakeProvider::advance`], so it can check what
//!   callers do while a server is still unreachable.
//! * `InRescue`: the rescue system is up with our key; the activation is used up, so another
//!   power cycle boots from disk (back to `Ordered`, or `Installed` once Talos is on the disk).
//! * `Installed`: the installer wrote Talos ([`FakeProvider::mark_installed`]). Enabling rescue
//!   again starts a new round, as on a real server.
//!
//! Accounts: [`FakeAccounts`] is a [`ProviderSource`] that hands each stored account (kind and
//! name) its `FakeProvider`, so that sync, rescue and server edits run against fakes through the
//! same [`ProviderFactory`](super::ProviderFactory) the service uses
//! (`ProviderFactory::from_source(accounts)`).
//!
//! Faults: [`FakeProvider::fail_next`] makes the next calls fail with
//! [`ProviderError::Api`] (code `fake_failure`), for testing how callers report provider errors.
//! Every call is logged ([`FakeProvider::calls`]) as `"method provider_id"`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    AccountProviders, Architecture, HetznerApiError, MissingKey, Provider, ProviderError,
    ProviderKind, ProviderServer, ProviderSource, ProviderSshKey, ProviderVswitch,
    RescueActivation, SshPublicKey, VswitchProvider,
};
use crate::Secret;

/// Whether transitions that take time on a real server complete by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// `power_cycle` after `enable_rescue` lands the server in rescue at once.
    Auto,
    /// The boot into rescue waits for [`FakeProvider::advance`].
    Explicit,
}

/// Where a fake server is in its life; see the module docs for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeServerState {
    /// Running what it came with.
    Ordered,
    /// Rescue activated, waiting for a power cycle.
    RescueEnabled,
    /// Rebooting into rescue ([`SimMode::Explicit`] only).
    BootingRescue,
    /// The rescue system is up and accepts our key.
    InRescue,
    /// Talos is installed.
    Installed,
}

#[derive(Debug)]
struct FakeServer {
    server: ProviderServer,
    state: FakeServerState,
    installed: bool,
    rescue_keys: Vec<String>,
    activations: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    servers: BTreeMap<String, FakeServer>,
    keys: BTreeMap<String, String>,
    vswitches: BTreeMap<u64, ProviderVswitch>,
    calls: Vec<String>,
    failures_left: u32,
}

/// An in-memory [`Provider`] and [`VswitchProvider`] with a per-server state machine.
#[derive(Debug)]
pub struct FakeProvider {
    kind: ProviderKind,
    mode: SimMode,
    state: Mutex<FakeState>,
    /// Refuses every call as wrong credentials (an account [`FakeAccounts`] does not know).
    refuses_credentials: bool,
}

impl FakeProvider {
    /// An empty fake account of this kind.
    pub fn new(kind: ProviderKind, mode: SimMode) -> Self {
        FakeProvider {
            kind,
            mode,
            state: Mutex::new(FakeState::default()),
            refuses_credentials: false,
        }
    }

    /// A fake account that refuses our credentials on every call.
    fn refusing(kind: ProviderKind) -> Self {
        FakeProvider {
            refuses_credentials: true,
            ..FakeProvider::new(kind, SimMode::Auto)
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds or replaces a server, in state `Ordered`.
    ///
    /// # Panics
    /// When the server's IPv4 address is not loopback: tests contact nothing outside
    /// `127.0.0.0/8` ([`crate::dial_guard`]).
    pub fn add_server(&self, server: ProviderServer) {
        if let Some(ipv4) = server.ipv4 {
            assert!(
                ipv4.is_loopback(),
                "FakeProvider refuses server {} at {ipv4}: fake servers live in 127.0.0.0/8, \
                 because the service may contact them",
                server.provider_id
            );
        }
        let fake_server = FakeServer {
            server: server.clone(),
            state: FakeServerState::Ordered,
            installed: false,
            rescue_keys: Vec::new(),
            activations: 0,
        };
        self.lock().servers.insert(server.provider_id, fake_server);
    }

    /// Adds `n_servers` servers with ids after the highest numeric id and returns the ids.
    /// Every fourth is arm64; every tenth has no IPv4.
    pub fn generate_servers(&self, n_servers: usize) -> Vec<String> {
        let first = self
            .lock()
            .servers
            .keys()
            .filter_map(|id| id.parse::<u64>().ok())
            .max()
            .map_or(1, |last| last + 1);
        (0..n_servers as u64)
            .map(|server_idx| {
                let id = first + server_idx;
                let arm = server_idx % 4 == 3;
                self.add_server(ProviderServer {
                    provider_id: id.to_string(),
                    name: format!("fake-{id}"),
                    ipv4: (server_idx % 10 != 9)
                        .then(|| std::net::Ipv4Addr::new(127, 18, (id >> 8) as u8, id as u8)),
                    ipv6: Some(std::net::Ipv6Addr::new(
                        0x2a01, 0x4f8, 0, id as u16, 0, 0, 0, 0,
                    )),
                    product: if arm { "RX170" } else { "AX52" }.to_owned(),
                    data_center: "FSN1-DC16".to_owned(),
                    status: "ready".to_owned(),
                    cancelled: false,
                    architecture: if arm {
                        Architecture::Arm64
                    } else {
                        Architecture::Amd64
                    },
                });
                id.to_string()
            })
            .collect()
    }

    /// Removes a server, as if cancelled at the provider; `true` when it existed.
    pub fn remove_server(&self, provider_id: &str) -> bool {
        self.lock().servers.remove(provider_id).is_some()
    }

    /// The state of a server.
    pub fn server_state(&self, provider_id: &str) -> Option<FakeServerState> {
        self.lock()
            .servers
            .get(provider_id)
            .map(|server| server.state)
    }

    /// Fingerprints authorized by the server's current or last rescue activation.
    pub fn rescue_keys(&self, provider_id: &str) -> Option<Vec<String>> {
        self.lock()
            .servers
            .get(provider_id)
            .map(|server| server.rescue_keys.clone())
    }

    /// Completes a pending boot into rescue (`BootingRescue` → `InRescue`); other states stay.
    /// Returns the state after the step.
    pub fn advance(&self, provider_id: &str) -> Option<FakeServerState> {
        let mut state = self.lock();
        let server = state.servers.get_mut(provider_id)?;
        if server.state == FakeServerState::BootingRescue {
            server.state = FakeServerState::InRescue;
        }
        Some(server.state)
    }

    /// Records that Talos was written to the server's disk (`InRescue` → `Installed`); `false`
    /// when the server is not in rescue.
    pub fn mark_installed(&self, provider_id: &str) -> bool {
        let mut state = self.lock();
        match state.servers.get_mut(provider_id) {
            Some(server) if server.state == FakeServerState::InRescue => {
                server.state = FakeServerState::Installed;
                server.installed = true;
                true
            }
            _ => false,
        }
    }

    /// Stores an SSH key in the account under `name`.
    pub fn add_ssh_key(&self, key: &SshPublicKey, name: &str) {
        self.lock()
            .keys
            .insert(key.md5_fingerprint().to_owned(), name.to_owned());
    }

    /// Adds or replaces a vSwitch.
    pub fn add_vswitch(&self, vswitch: ProviderVswitch) {
        self.lock().vswitches.insert(vswitch.id, vswitch);
    }

    /// Makes the next `times` calls fail with code `fake_failure`.
    pub fn fail_next(&self, times: u32) {
        self.lock().failures_left = times;
    }

    /// Every call so far, as `"method argument"`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Logs the call and returns the state, or the injected failure.
    fn call(&self, call: String) -> Result<MutexGuard<'_, FakeState>, ProviderError> {
        let mut state = self.lock();
        state.calls.push(call.clone());
        if self.refuses_credentials {
            return Err(ProviderError::Unauthorized {
                provider: self.kind,
                source: HetznerApiError {
                    status: 401,
                    code: "unauthorized".to_owned(),
                    message: "no FakeProvider for this account".to_owned(),
                    correlation_id: None,
                },
            });
        }
        if state.failures_left > 0 {
            state.failures_left -= 1;
            return Err(ProviderError::Api {
                provider: self.kind,
                operation: call,
                source: HetznerApiError {
                    status: 500,
                    code: "fake_failure".to_owned(),
                    message: "failure injected into FakeProvider".to_owned(),
                    correlation_id: None,
                },
            });
        }
        Ok(state)
    }

    fn not_found(&self, provider_id: &str) -> ProviderError {
        ProviderError::ServerNotFound {
            provider: self.kind,
            server_id: provider_id.to_owned(),
            source: None,
        }
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn list_servers(&self) -> Result<Vec<ProviderServer>, ProviderError> {
        let state = self.call("list_servers".to_owned())?;
        Ok(state
            .servers
            .values()
            .map(|server| server.server.clone())
            .collect())
    }

    async fn get_server(&self, provider_id: &str) -> Result<ProviderServer, ProviderError> {
        let state = self.call(format!("get_server {provider_id}"))?;
        let server = state
            .servers
            .get(provider_id)
            .ok_or_else(|| self.not_found(provider_id))?;
        Ok(server.server.clone())
    }

    async fn rename_server(
        &self,
        provider_id: &str,
        name: &str,
    ) -> Result<ProviderServer, ProviderError> {
        let mut state = self.call(format!("rename_server {provider_id}"))?;
        let server = state
            .servers
            .get_mut(provider_id)
            .ok_or_else(|| self.not_found(provider_id))?;
        server.server.name = name.to_owned();
        Ok(server.server.clone())
    }

    async fn ensure_ssh_key(
        &self,
        key: &SshPublicKey,
        missing: MissingKey,
    ) -> Result<ProviderSshKey, ProviderError> {
        let mut state = self.call("ensure_ssh_key".to_owned())?;
        let fingerprint = key.md5_fingerprint().to_owned();
        let found = state.keys.get(&fingerprint).cloned();
        let (name, uploaded) = match (found, missing) {
            (Some(name), _) => (name, false),
            (None, MissingKey::Upload) => {
                state
                    .keys
                    .insert(fingerprint.clone(), "talos-manager".to_owned());
                ("talos-manager".to_owned(), true)
            }
            (None, MissingKey::Fail) => {
                return Err(ProviderError::SshKeyMissing {
                    provider: self.kind,
                    fingerprint,
                    stale_key_name: None,
                    how: "FakeProvider::add_ssh_key",
                });
            }
        };
        Ok(ProviderSshKey {
            id: fingerprint.clone(),
            name,
            fingerprint,
            uploaded,
        })
    }

    async fn enable_rescue(
        &self,
        provider_id: &str,
        key: &ProviderSshKey,
    ) -> Result<RescueActivation, ProviderError> {
        let mut state = self.call(format!("enable_rescue {provider_id}"))?;
        if !state.keys.contains_key(&key.fingerprint) {
            return Err(ProviderError::SshKeyMissing {
                provider: self.kind,
                fingerprint: key.fingerprint.clone(),
                stale_key_name: None,
                how: "Provider::ensure_ssh_key",
            });
        }
        let server = state
            .servers
            .get_mut(provider_id)
            .ok_or_else(|| self.not_found(provider_id))?;
        server.state = FakeServerState::RescueEnabled;
        server.rescue_keys = vec![key.fingerprint.clone()];
        server.activations += 1;
        Ok(RescueActivation {
            at: OffsetDateTime::now_utc(),
            host_key_fingerprints: Vec::new(),
            password: Some(Secret::new(format!(
                "fake-{provider_id}-{}",
                server.activations
            ))),
        })
    }

    async fn power_cycle(&self, provider_id: &str) -> Result<(), ProviderError> {
        let mode = self.mode;
        let mut state = self.call(format!("power_cycle {provider_id}"))?;
        let server = state
            .servers
            .get_mut(provider_id)
            .ok_or_else(|| self.not_found(provider_id))?;
        server.state = match (server.state, mode) {
            (FakeServerState::RescueEnabled, SimMode::Auto) => FakeServerState::InRescue,
            (FakeServerState::RescueEnabled, SimMode::Explicit) => FakeServerState::BootingRescue,
            (FakeServerState::BootingRescue, _) => FakeServerState::BootingRescue,
            _ if server.installed => FakeServerState::Installed,
            _ => FakeServerState::Ordered,
        };
        Ok(())
    }
}

#[async_trait]
impl VswitchProvider for FakeProvider {
    async fn list_vswitches(&self) -> Result<Vec<ProviderVswitch>, ProviderError> {
        let state = self.call("list_vswitches".to_owned())?;
        Ok(state.vswitches.values().cloned().collect())
    }

    async fn get_vswitch(&self, vswitch_id: u64) -> Result<ProviderVswitch, ProviderError> {
        let state = self.call(format!("get_vswitch {vswitch_id}"))?;
        state
            .vswitches
            .get(&vswitch_id)
            .cloned()
            .ok_or(ProviderError::VswitchNotFound {
                provider: self.kind,
                vswitch_id,
                source: None,
            })
    }

    async fn add_server_to_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError> {
        let mut state = self.call(format!("add_server_to_vswitch {vswitch_id} {provider_id}"))?;
        if !state.servers.contains_key(provider_id) {
            return Err(self.not_found(provider_id));
        }
        let kind = self.kind;
        let vswitch =
            state
                .vswitches
                .get_mut(&vswitch_id)
                .ok_or(ProviderError::VswitchNotFound {
                    provider: kind,
                    vswitch_id,
                    source: None,
                })?;
        if !vswitch.server_ids.iter().any(|id| id == provider_id) {
            vswitch.server_ids.push(provider_id.to_owned());
        }
        Ok(())
    }

    async fn remove_server_from_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError> {
        let mut state = self.call(format!(
            "remove_server_from_vswitch {vswitch_id} {provider_id}"
        ))?;
        let kind = self.kind;
        let vswitch =
            state
                .vswitches
                .get_mut(&vswitch_id)
                .ok_or(ProviderError::VswitchNotFound {
                    provider: kind,
                    vswitch_id,
                    source: None,
                })?;
        vswitch.server_ids.retain(|id| id != provider_id);
        Ok(())
    }
}

/// A [`ProviderSource`] of [`FakeProvider`]s, one per stored account (kind and name).
///
/// A Robot fake is also the account's [`VswitchProvider`]; a Cloud fake has no vSwitches. The
/// account's secret is not checked: an account with no fake is refused as a provider refuses
/// credentials ([`ProviderError::Unauthorized`]), on every call of its clients.
#[derive(Debug, Default)]
pub struct FakeAccounts {
    accounts: BTreeMap<(ProviderKind, String), Arc<FakeProvider>>,
}

impl FakeAccounts {
    /// No accounts.
    pub fn new() -> Self {
        FakeAccounts::default()
    }

    /// The same accounts plus the account `name`, served by `fake` (its kind is the fake's).
    pub fn with(mut self, name: &str, fake: Arc<FakeProvider>) -> Self {
        self.accounts.insert((fake.kind, name.to_owned()), fake);
        self
    }
}

impl ProviderSource for FakeAccounts {
    fn build(
        &self,
        kind: ProviderKind,
        name: &str,
        _secret: Secret<String>,
    ) -> Result<AccountProviders, ProviderError> {
        let fake = match self.accounts.get(&(kind, name.to_owned())) {
            Some(fake) => fake.clone(),
            None => Arc::new(FakeProvider::refusing(kind)),
        };
        let vswitches: Option<Arc<dyn VswitchProvider>> =
            (kind == ProviderKind::HetznerRobot).then(|| fake.clone() as Arc<dyn VswitchProvider>);
        Ok(AccountProviders {
            provider: fake,
            vswitches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9uR4m5+mneWPpJTHO9a+r1GCrFW/Q10j4Q4myNRRJ1 t@t";

    fn key() -> SshPublicKey {
        SshPublicKey::parse(KEY).unwrap()
    }

    #[tokio::test]
    async fn auto_mode_reaches_rescue_on_the_power_cycle() {
        let fake = FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto);
        let ids = fake.generate_servers(3);
        assert_eq!(fake.list_servers().await.unwrap().len(), 3);
        let activation = fake
            .reboot_into_rescue(&ids[0], &key(), MissingKey::Upload)
            .await
            .unwrap();
        assert!(activation.password.is_some());
        assert_eq!(fake.server_state(&ids[0]), Some(FakeServerState::InRescue));
        assert_eq!(
            fake.rescue_keys(&ids[0]).unwrap(),
            [key().md5_fingerprint()]
        );
        assert!(fake.mark_installed(&ids[0]));
        fake.power_cycle(&ids[0]).await.unwrap();
        assert_eq!(fake.server_state(&ids[0]), Some(FakeServerState::Installed));
        assert_eq!(fake.server_state(&ids[1]), Some(FakeServerState::Ordered));
    }

    #[tokio::test]
    async fn explicit_mode_waits_for_advance() {
        let fake = FakeProvider::new(ProviderKind::HetznerCloud, SimMode::Explicit);
        let id = fake.generate_servers(1).remove(0);
        fake.reboot_into_rescue(&id, &key(), MissingKey::Upload)
            .await
            .unwrap();
        assert_eq!(fake.server_state(&id), Some(FakeServerState::BootingRescue));
        assert_eq!(fake.advance(&id), Some(FakeServerState::InRescue));
        // The activation is used up: the next power cycle boots from disk.
        fake.power_cycle(&id).await.unwrap();
        assert_eq!(fake.server_state(&id), Some(FakeServerState::Ordered));
        assert_eq!(
            fake.calls(),
            [
                "ensure_ssh_key",
                &format!("enable_rescue {id}"),
                &format!("power_cycle {id}"),
                &format!("power_cycle {id}")
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_key_fails_before_any_server_is_touched() {
        let fake = FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto);
        let id = fake.generate_servers(1).remove(0);
        let error = fake
            .reboot_into_rescue(&id, &key(), MissingKey::Fail)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::SshKeyMissing { .. }),
            "{error:?}"
        );
        assert_eq!(fake.server_state(&id), Some(FakeServerState::Ordered));
        fake.add_ssh_key(&key(), "mine");
        let found = fake.ensure_ssh_key(&key(), MissingKey::Fail).await.unwrap();
        assert_eq!((found.name.as_str(), found.uploaded), ("mine", false));
    }

    #[tokio::test]
    async fn injected_failures_and_unknown_ids_are_errors() {
        let fake = FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto);
        fake.fail_next(1);
        let error = fake.list_servers().await.unwrap_err();
        assert_eq!(error.code(), Some("fake_failure"));
        assert!(fake.list_servers().await.unwrap().is_empty());
        let error = fake.get_server("9").await.unwrap_err();
        assert!(
            matches!(error, ProviderError::ServerNotFound { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn accounts_hand_each_account_its_fake_through_the_factory() {
        let robot = Arc::new(FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto));
        robot.generate_servers(2);
        // A retry policy leaves an in-memory source as it is.
        let factory =
            crate::provider::ProviderFactory::from_source(FakeAccounts::new().with("user", robot))
                .with_retry_policy(crate::provider::RetryPolicy::for_fakes());
        let secret = || Secret::new("anything".to_owned());
        let clients = factory
            .build(ProviderKind::HetznerRobot, "user", secret())
            .unwrap();
        assert_eq!(clients.provider.list_servers().await.unwrap().len(), 2);
        assert!(clients.vswitches.is_some());
        let stranger = factory
            .build(ProviderKind::HetznerCloud, "user", secret())
            .unwrap();
        assert!(stranger.vswitches.is_none());
        let error = stranger.provider.list_servers().await.unwrap_err();
        assert!(
            matches!(error, ProviderError::Unauthorized { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn vswitch_membership_changes() {
        let fake = FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto);
        let ids = fake.generate_servers(2);
        fake.add_vswitch(ProviderVswitch {
            id: 7,
            name: "lan".into(),
            vlan: 4000,
            cancelled: false,
            server_ids: Vec::new(),
            members_known: true,
        });
        fake.add_server_to_vswitch(7, &ids[0]).await.unwrap();
        fake.add_server_to_vswitch(7, &ids[1]).await.unwrap();
        fake.remove_server_from_vswitch(7, &ids[0]).await.unwrap();
        assert_eq!(
            fake.get_vswitch(7).await.unwrap().server_ids,
            [ids[1].clone()]
        );
        assert_eq!(fake.list_vswitches().await.unwrap().len(), 1);
        let error = fake.get_vswitch(8).await.unwrap_err();
        assert!(
            matches!(error, ProviderError::VswitchNotFound { .. }),
            "{error:?}"
        );
    }
}
