//! Probing servers over SSH after sync: [`SshProber`] logs in to a server's rescue system with
//! our key and reads its SMBIOS UUID and disks; [`probe_servers`] probes many servers at once,
//! records what it found and sums it up in a [`ProbeSummary`].
//!
//! A server is accessible when it answers SSH with our key and its hostname is `rescue`. Any
//! other answer (refused, silent, another hostname, our key refused) marks it not accessible and
//! keeps the UUID and disks recorded by an earlier probe, as the original app did: they are still
//! the server's, and the bootstrap dialog only offers servers that are accessible now.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinSet;

use crate::Secret;
use crate::installer::{HostKeys, ProbeError, SshError, SshSession, SshTarget, probe};
use crate::store::{ProbeResult, Server, Store, StoreError};

/// How many servers are probed at the same time.
pub const DEFAULT_PROBE_CONCURRENCY: usize = 32;

/// How long a server has to accept the TCP connection, finish the SSH handshake and accept our
/// key. Rescue systems answer within milliseconds; a server that is off or runs Talos either
/// refuses at once or never answers, so waiting longer only makes sync slower.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// How long one server's whole probe (connection and every probe command) may take.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Probes one server: `Ok` with what to record when it is in rescue and reachable, else why not.
#[async_trait]
pub trait ServerProber: Send + Sync {
    /// Probes one server.
    async fn probe(&self, server: &Server) -> Result<ProbeResult, ProbeFailure>;
}

/// Why a probed server is not accessible.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The server has no public IPv4 address to reach it at (IPv6-only Cloud servers).
    #[error("server {server} has no public IPv4 address to probe")]
    NoAddress {
        /// The server (name, provider and provider id).
        server: String,
    },
    /// No SSH session could be opened (refused, no answer, key or host key refused).
    #[error("could not log in to server {server} over SSH")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        #[source]
        source: SshError,
    },
    /// Logged in, but the probe found no rescue system or failed.
    #[error("probing server {server} failed")]
    Probe {
        /// The server.
        server: String,
        /// Why (its hostname is not `rescue`, or a command failed).
        #[source]
        source: ProbeError,
    },
    /// The probe took longer than its timeout.
    #[error("probing server {server} took longer than {after:?}")]
    TimedOut {
        /// The server.
        server: String,
        /// The timeout.
        after: Duration,
    },
}

impl ProbeFailure {
    /// A short reason, the same for every server that failed alike, so that a summary can count
    /// them: `not in rescue`, `connection refused or failed`, `no answer in time`, …
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeFailure::NoAddress { .. } => "no IPv4 address",
            ProbeFailure::Connect { source, .. } => match source {
                SshError::ConnectTimeout { .. } => "no SSH answer in time",
                SshError::Connect { .. } => "SSH connection refused or failed",
                SshError::AuthenticationRejected { .. } => "our SSH key was refused",
                SshError::HostKeyNotExpected { .. } | SshError::HostKeyChanged { .. } => {
                    "host key refused"
                }
                SshError::InvalidPrivateKey { .. } => "unreadable SSH private key",
            },
            ProbeFailure::Probe { source, .. } => match source {
                ProbeError::NotInRescue { .. } => "not in rescue",
                _ => "probe command failed",
            },
            ProbeFailure::TimedOut { .. } => "probe timed out",
        }
    }
}

/// Probes servers over SSH as root with our private key, trusting each server's host key on
/// first use (rescue systems make new host keys at every boot; see [`HostKeys`]).
#[derive(Clone)]
pub struct SshProber {
    private_key: Secret<String>,
    port: u16,
    connect_timeout: Duration,
    probe_timeout: Duration,
}

impl std::fmt::Debug for SshProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshProber")
            .field("port", &self.port)
            .field("connect_timeout", &self.connect_timeout)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl SshProber {
    /// A prober logging in with `private_key` (OpenSSH or PEM) on `port` (the service's
    /// `RESCUE_SSH_PORT`), with [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_PROBE_TIMEOUT`].
    ///
    /// # Errors
    /// [`SshError::InvalidPrivateKey`] when the key cannot be read, so that a bad key is
    /// reported once at start rather than once per server.
    pub fn new(private_key: Secret<String>, port: u16) -> Result<SshProber, SshError> {
        russh::keys::decode_secret_key(private_key.expose(), None)
            .map_err(|source| SshError::InvalidPrivateKey { source })?;
        Ok(SshProber {
            private_key,
            port,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
        })
    }

    /// The same prober with other timeouts: `connect` for the connection and login, `probe` for
    /// a server's whole probe.
    pub fn with_timeouts(mut self, connect: Duration, probe: Duration) -> SshProber {
        self.connect_timeout = connect;
        self.probe_timeout = probe;
        self
    }
}

#[async_trait]
impl ServerProber for SshProber {
    async fn probe(&self, server: &Server) -> Result<ProbeResult, ProbeFailure> {
        let label = server_label(server);
        let Some(host) = server.inventory.ipv4.clone() else {
            return Err(ProbeFailure::NoAddress { server: label });
        };
        let target = SshTarget {
            port: self.port,
            host_keys: HostKeys::trust_on_first_use(),
            connect_timeout: self.connect_timeout,
            ..SshTarget::new(host, self.private_key.clone())
        };
        let work = async {
            let session =
                SshSession::connect(&target)
                    .await
                    .map_err(|source| ProbeFailure::Connect {
                        server: label.clone(),
                        source,
                    })?;
            let probed = probe(&session).await;
            session.close().await;
            let probed = probed.map_err(|source| ProbeFailure::Probe {
                server: label.clone(),
                source,
            })?;
            Ok(probed.store_record())
        };
        match tokio::time::timeout(self.probe_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(ProbeFailure::TimedOut {
                server: label,
                after: self.probe_timeout,
            }),
        }
    }
}

/// Servers that failed a probe for the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureGroup {
    /// How many.
    pub count: usize,
    /// One of them, with the whole error chain, to start debugging from.
    pub example: String,
}

/// What probing the fleet found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSummary {
    /// Servers probed.
    pub probed: usize,
    /// Servers in rescue and reachable: accessible now.
    pub reachable: usize,
    /// The others, by [`ProbeFailure::reason`].
    pub failures: BTreeMap<&'static str, FailureGroup>,
}

impl ProbeSummary {
    fn add_failure(&mut self, reason: &'static str, example: impl FnOnce() -> String) {
        self.failures
            .entry(reason)
            .and_modify(|group| group.count += 1)
            .or_insert_with(|| FailureGroup {
                count: 1,
                example: example(),
            });
    }
}

impl std::fmt::Display for ProbeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} server(s) reachable in rescue",
            self.reachable, self.probed
        )?;
        for (reason, group) in &self.failures {
            write!(f, "; {reason}: {} (e.g. {})", group.count, group.example)?;
        }
        Ok(())
    }
}

/// Probes `servers` with `prober`, at most `concurrency` at once, and records each result:
/// accessible with its UUID and disks, or not accessible with the earlier data kept. A server
/// that was not accessible and still is not is not written again.
///
/// # Errors
/// A store failure while recording (a server deleted meanwhile is skipped).
pub async fn probe_servers(
    store: &Store,
    prober: Arc<dyn ServerProber>,
    servers: Vec<Server>,
    concurrency: usize,
) -> Result<ProbeSummary, StoreError> {
    let mut summary = ProbeSummary {
        probed: servers.len(),
        ..ProbeSummary::default()
    };
    let mut running = JoinSet::new();
    let mut servers = servers.into_iter();
    loop {
        while running.len() < concurrency.max(1) {
            let Some(server) = servers.next() else { break };
            running.spawn(probe_and_record(store.clone(), prober.clone(), server));
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(None)) => summary.reachable += 1,
            Ok(Ok(Some(failure))) => summary.add_failure(failure.reason(), || {
                crate::error_chain(&failure).to_string()
            }),
            Ok(Err(error)) => return Err(error),
            Err(join_error) => {
                tracing::error!(error = %join_error, "a server probe panicked");
                summary.add_failure("probe panicked", || join_error.to_string());
            }
        }
    }
    Ok(summary)
}

/// Probes one server and records the result; `Ok(None)` when it is accessible.
async fn probe_and_record(
    store: Store,
    prober: Arc<dyn ServerProber>,
    server: Server,
) -> Result<Option<ProbeFailure>, StoreError> {
    let result = prober.probe(&server).await;
    let (record, failure) = match result {
        Ok(record) => (Some(record), None),
        // Keep the UUID and disks of an earlier probe: only `accessible` changes.
        Err(failure) => (
            server.accessible.then_some(ProbeResult {
                accessible: false,
                uuid: None,
                lsblk: None,
            }),
            Some(failure),
        ),
    };
    if let Some(record) = record {
        match store.record_probe(server.id, &record).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(failure)
}

/// How logs and summaries name a server: its name, provider and provider id.
fn server_label(server: &Server) -> String {
    let inventory = &server.inventory;
    if inventory.name.is_empty() {
        format!("{} {}", inventory.provider, inventory.provider_id)
    } else {
        format!(
            "{} ({} {})",
            inventory.name, inventory.provider, inventory.provider_id
        )
    }
}
