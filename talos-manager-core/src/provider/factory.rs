//! The seam between the operations and the providers: [`ProviderFactory`] builds the clients of
//! a stored provider account, from a [`ProviderSource`].
//!
//! Sync, rescue, server edits, bootstrap and lifecycle never name a provider client: they ask the
//! factory for an account's [`AccountProviders`]. The default source is [`HetznerProviders`]
//! (the Robot and Cloud clients against configurable base URLs); an embedder hands in its own
//! with [`ProviderFactory::from_source`], and core's flow tests hand in
//! `fake::FakeAccounts` (in-memory providers, feature `testing`).

use std::fmt;
use std::sync::Arc;

use super::budget::Clock;
use super::{
    HetznerCloud, HetznerRobot, Provider, ProviderError, ProviderKind, RetryPolicy, VswitchProvider,
};
use crate::Secret;

/// The clients of one provider account: the servers, and the vSwitches when the provider has
/// them (Robot).
#[derive(Clone)]
pub struct AccountProviders {
    /// Servers of the account.
    pub provider: Arc<dyn Provider>,
    /// vSwitches of the account; `None` for providers without them (Cloud).
    pub vswitches: Option<Arc<dyn VswitchProvider>>,
}

impl fmt::Debug for AccountProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountProviders")
            .field("kind", &self.provider.kind())
            .field("vswitches", &self.vswitches.is_some())
            .finish()
    }
}

/// Where an account's provider clients come from: implement it to hand sync, rescue, server
/// edits, bootstrap and lifecycle your own [`Provider`]s, and wrap it with
/// [`ProviderFactory::from_source`].
pub trait ProviderSource: Send + Sync + fmt::Debug {
    /// The clients of the stored account of this kind, name and secret. Building makes no
    /// request; wrong credentials show on the first call.
    fn build(
        &self,
        kind: ProviderKind,
        name: &str,
        secret: Secret<String>,
    ) -> Result<AccountProviders, ProviderError>;

    /// This source with `policy` for the requests its clients retry, or `None` when it makes
    /// no requests that could be retried (the default: an in-memory source keeps its clients).
    fn with_retry_policy(&self, policy: RetryPolicy) -> Option<Arc<dyn ProviderSource>> {
        let _ = policy;
        None
    }
}

/// The built-in [`ProviderSource`]: [`HetznerRobot`] and [`HetznerCloud`] clients against
/// configurable base URLs (the real Hetzner endpoints, or fakes in tests).
#[derive(Debug, Clone)]
pub struct HetznerProviders {
    robot_url: String,
    cloud_url: String,
    policy: Option<RetryPolicy>,
    clock: Clock,
}

impl Default for HetznerProviders {
    fn default() -> Self {
        HetznerProviders::new(HetznerRobot::DEFAULT_URL, HetznerCloud::DEFAULT_URL)
    }
}

impl HetznerProviders {
    /// The Robot API at `robot_url` and the Cloud API at `cloud_url`, with the clients' default
    /// retry policy.
    pub fn new(robot_url: impl Into<String>, cloud_url: impl Into<String>) -> Self {
        HetznerProviders {
            robot_url: robot_url.into(),
            cloud_url: cloud_url.into(),
            policy: None,
            clock: Clock::system(),
        }
    }

    /// The same source with clients that count their request budgets and caches on `clock`
    /// (tests move a manual one to simulate hours and weeks).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same source with its own retry policy (tests use [`RetryPolicy::for_fakes`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The Robot base URL.
    pub fn robot_url(&self) -> &str {
        &self.robot_url
    }

    /// The Cloud base URL.
    pub fn cloud_url(&self) -> &str {
        &self.cloud_url
    }
}

impl ProviderSource for HetznerProviders {
    /// Robot takes the name as webservice user and the secret as password, Cloud takes the
    /// secret as API token.
    fn build(
        &self,
        kind: ProviderKind,
        name: &str,
        secret: Secret<String>,
    ) -> Result<AccountProviders, ProviderError> {
        match kind {
            ProviderKind::HetznerRobot => {
                let robot = Arc::new(
                    match &self.policy {
                        Some(policy) => HetznerRobot::with_policy(
                            &self.robot_url,
                            name,
                            secret,
                            policy.clone(),
                        )?,
                        None => HetznerRobot::new(&self.robot_url, name, secret)?,
                    }
                    .with_clock(self.clock.clone()),
                );
                Ok(AccountProviders {
                    provider: robot.clone(),
                    vswitches: Some(robot),
                })
            }
            ProviderKind::HetznerCloud => {
                let cloud = Arc::new(
                    match &self.policy {
                        Some(policy) => {
                            HetznerCloud::with_policy(&self.cloud_url, secret, policy.clone())?
                        }
                        None => HetznerCloud::new(&self.cloud_url, secret)?,
                    }
                    .with_clock(self.clock.clone()),
                );
                Ok(AccountProviders {
                    provider: cloud,
                    vswitches: None,
                })
            }
        }
    }

    fn with_retry_policy(&self, policy: RetryPolicy) -> Option<Arc<dyn ProviderSource>> {
        Some(Arc::new(self.clone().with_retry_policy(policy)))
    }
}

/// Builds the provider clients of a stored account from its kind, name and secret: a cheap,
/// clonable handle on a [`ProviderSource`] ([`HetznerProviders`] unless an embedder hands in
/// its own).
#[derive(Debug, Clone)]
pub struct ProviderFactory {
    source: Arc<dyn ProviderSource>,
}

impl Default for ProviderFactory {
    /// The real Hetzner Robot and Cloud APIs.
    fn default() -> Self {
        ProviderFactory::from_source(HetznerProviders::default())
    }
}

impl ProviderFactory {
    /// A factory for the Robot API at `robot_url` and the Cloud API at `cloud_url`, with the
    /// clients' default retry policy ([`HetznerProviders::new`]).
    pub fn new(robot_url: impl Into<String>, cloud_url: impl Into<String>) -> Self {
        ProviderFactory::from_source(HetznerProviders::new(robot_url, cloud_url))
    }

    /// A factory whose clients come from `source`.
    pub fn from_source(source: impl ProviderSource + 'static) -> Self {
        ProviderFactory {
            source: Arc::new(source),
        }
    }

    /// The same factory with its own retry policy (tests use [`RetryPolicy::for_fakes`]); a
    /// source that makes no requests stays as it is.
    pub fn with_retry_policy(self, policy: RetryPolicy) -> Self {
        match self.source.with_retry_policy(policy) {
            Some(source) => ProviderFactory { source },
            None => self,
        }
    }

    /// The clients for an account, as the source builds them.
    pub fn build(
        &self,
        kind: ProviderKind,
        name: &str,
        secret: Secret<String>,
    ) -> Result<AccountProviders, ProviderError> {
        self.source.build(kind, name, secret)
    }
}
