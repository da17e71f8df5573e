//! Server providers: the [`Provider`] and [`VswitchProvider`] traits, their domain types, the one
//! [`ProviderError`], and the Hetzner Robot and Cloud clients that implement them.
//!
//! A provider is anything that can list servers, rename them, put them into a rescue system that
//! accepts our SSH key, and power-cycle them into it. Hetzner Robot (dedicated servers) and
//! Hetzner Cloud (virtual servers) are the two built in; a third party adds one by implementing
//! [`Provider`] and handing it in through its own [`ProviderSource`]
//! ([`ProviderFactory::from_source`]): every operation builds an account's clients with the
//! [`ProviderFactory`] (`factory.rs`), never by name. Robot also has vSwitches, reached through
//! [`VswitchProvider`].
//!
//! What sync needs from here: [`Provider::list_servers`] (every server of the account, all pages,
//! an empty account is an empty list) and [`VswitchProvider::list_vswitches`] (every vSwitch with
//! its member server ids). Both return domain types, never Hetzner's wire shapes.
//!
//! Rescue, in order: [`Provider::ensure_ssh_key`] finds (or uploads) our key at the provider and
//! fails before anything touches a server when it can't; [`Provider::enable_rescue`] activates
//! the rescue system with only that key; [`Provider::power_cycle`] boots the server into it.
//! [`Provider::reboot_into_rescue`] runs the three in that order.

mod budget;
mod cloud;
mod error;
mod factory;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod http;
mod robot;
mod ssh_key;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Secret;

pub use budget::Clock;
pub use cloud::HetznerCloud;
pub use error::{HetznerApiError, ProviderError};
pub use factory::{AccountProviders, HetznerProviders, ProviderFactory, ProviderSource};
pub(crate) use http::client_builder;
pub use http::{RetryPolicy, USER_AGENT, http_client};
pub use robot::HetznerRobot;
pub use ssh_key::SshPublicKey;

/// Which kind of provider account a server belongs to; stored with every server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// Hetzner Robot: dedicated servers, `https://robot-ws.your-server.de`.
    HetznerRobot,
    /// Hetzner Cloud: virtual servers, `https://api.hetzner.cloud/v1`.
    HetznerCloud,
}

impl ProviderKind {
    /// The stable name stored in the database and used in the API: `hetzner_robot` or
    /// `hetzner_cloud`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::HetznerRobot => "hetzner_robot",
            ProviderKind::HetznerCloud => "hetzner_cloud",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not the name of a provider kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider kind {0:?}, expected hetzner_robot or hetzner_cloud")]
pub struct UnknownProviderKind(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "hetzner_robot" => Ok(ProviderKind::HetznerRobot),
            "hetzner_cloud" => Ok(ProviderKind::HetznerCloud),
            other => Err(UnknownProviderKind(other.to_owned())),
        }
    }
}

/// CPU architecture of a server, which decides the Talos image to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// x86-64.
    Amd64,
    /// 64-bit ARM (Robot `RX…` products, Cloud `server_type.architecture == "arm"`).
    Arm64,
}

impl Architecture {
    /// The name Talos images use: `amd64` or `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server as the provider reports it: what sync stores for every server of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderServer {
    /// The provider's id for the server: the Robot server number or the Cloud server id, in
    /// decimal. Unique together with the [`ProviderKind`].
    pub provider_id: String,
    /// The server's name at the provider (may be empty on Robot).
    pub name: String,
    /// Main public IPv4 address; `None` for IPv6-only Cloud servers.
    pub ipv4: Option<Ipv4Addr>,
    /// The server's public IPv6 /64 network address (Hetzner gives the network, and the host
    /// usually takes `::1` in it); `None` when the server has none.
    pub ipv6: Option<Ipv6Addr>,
    /// Product or server type: `AX52`, `RX170` (Robot), `cpx22`, `cax11` (Cloud).
    pub product: String,
    /// Where the server is: `FSN1-DC16` on Robot, the location `fsn1` on Cloud.
    pub data_center: String,
    /// The provider's status text (`ready`, `in process`, `running`, `off`, …).
    pub status: String,
    /// Robot: the server is cancelled. Always `false` on Cloud.
    pub cancelled: bool,
    /// CPU architecture.
    pub architecture: Architecture,
}

/// A Robot vSwitch (a VLAN between dedicated servers) with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderVswitch {
    /// Robot's vSwitch id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The VLAN id (4000–4091).
    pub vlan: u16,
    /// Whether the vSwitch is cancelled.
    pub cancelled: bool,
    /// Provider ids of the member servers, in the order Robot lists them, whatever their join
    /// state (`ready`, `processing`, `in process`, `failed`).
    pub server_ids: Vec<String>,
    /// Whether `server_ids` are the members: `false` when they could not be read (the read
    /// failed, or was deferred to stay inside the request budget, and nothing was read
    /// before); sync then keeps the stored members.
    pub members_known: bool,
}

/// Our SSH key as stored at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSshKey {
    /// The provider's handle for the key: the MD5 fingerprint on Robot, the numeric id on Cloud.
    pub id: String,
    /// The key's name at the provider.
    pub name: String,
    /// MD5 fingerprint, colon-separated hex, as both Hetzner APIs show it.
    pub fingerprint: String,
    /// Whether [`Provider::ensure_ssh_key`] uploaded it just now.
    pub uploaded: bool,
}

/// What [`Provider::ensure_ssh_key`] does when the provider has no key with our fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Upload our public key (Robot `POST /key`, Cloud `POST /ssh_keys`).
    Upload,
    /// Fail with [`ProviderError::SshKeyMissing`], which says how to fix it.
    Fail,
}

/// The record of one rescue activation, stored on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescueActivation {
    /// When we activated it.
    pub at: OffsetDateTime,
    /// SSH host key fingerprints of the rescue system when the provider tells them (Robot's
    /// `host_key`, usually empty); the rescue system makes new ones at every boot.
    pub host_key_fingerprints: Vec<String>,
    /// The rescue root password the provider generated, when it returned one.
    pub password: Option<Secret<String>>,
}

/// A source of servers: lists them, renames them, and boots them into a rescue system that our
/// SSH key can log in to.
///
/// Implemented by [`HetznerRobot`], [`HetznerCloud`] and, for tests, `fake::FakeProvider`.
/// Every method is safe to retry: the implementations retry rate limits, 5xx answers and timeouts
/// themselves within a bound, and return [`ProviderError`] once it is spent.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Which kind of provider this is.
    fn kind(&self) -> ProviderKind;

    /// Every server of the account (all pages). An account without servers gives an empty list.
    async fn list_servers(&self) -> Result<Vec<ProviderServer>, ProviderError>;

    /// One server, or [`ProviderError::ServerNotFound`].
    async fn get_server(&self, provider_id: &str) -> Result<ProviderServer, ProviderError>;

    /// Renames the server at the provider and returns it as it is now.
    async fn rename_server(
        &self,
        provider_id: &str,
        name: &str,
    ) -> Result<ProviderServer, ProviderError>;

    /// Finds our key at the provider by its MD5 fingerprint; when there is none, uploads it or
    /// fails, as `missing` says. Touches no server.
    async fn ensure_ssh_key(
        &self,
        key: &SshPublicKey,
        missing: MissingKey,
    ) -> Result<ProviderSshKey, ProviderError>;

    /// Activates the rescue system for the server's next boot, with `key` as its only
    /// authorized key. Does not reboot the server.
    async fn enable_rescue(
        &self,
        provider_id: &str,
        key: &ProviderSshKey,
    ) -> Result<RescueActivation, ProviderError>;

    /// Boots the server (into the rescue system, once enabled): powers it on when it is off,
    /// else resets it.
    async fn power_cycle(&self, provider_id: &str) -> Result<(), ProviderError>;

    /// Ensures our key, enables rescue with it and power-cycles the server, in that order.
    async fn reboot_into_rescue(
        &self,
        provider_id: &str,
        key: &SshPublicKey,
        missing: MissingKey,
    ) -> Result<RescueActivation, ProviderError> {
        let provider_key = self.ensure_ssh_key(key, missing).await?;
        let activation = self.enable_rescue(provider_id, &provider_key).await?;
        self.power_cycle(provider_id).await?;
        Ok(activation)
    }
}

/// vSwitches: VLANs that join dedicated servers (Hetzner Robot only).
#[async_trait]
pub trait VswitchProvider: Send + Sync {
    /// Every vSwitch of the account, each with its members.
    async fn list_vswitches(&self) -> Result<Vec<ProviderVswitch>, ProviderError>;

    /// One vSwitch, or [`ProviderError::VswitchNotFound`].
    async fn get_vswitch(&self, vswitch_id: u64) -> Result<ProviderVswitch, ProviderError>;

    /// Adds the server to the vSwitch. Robot shows it as `processing` until the join is done.
    async fn add_server_to_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError>;

    /// Removes the server from the vSwitch.
    async fn remove_server_from_vswitch(
        &self,
        vswitch_id: u64,
        provider_id: &str,
    ) -> Result<(), ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_kind_round_trips_through_its_name() {
        for kind in [ProviderKind::HetznerRobot, ProviderKind::HetznerCloud] {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
        }
        assert_eq!(ProviderKind::HetznerRobot.to_string(), "hetzner_robot");
        assert!("hetzner".parse::<ProviderKind>().is_err());
    }
}
