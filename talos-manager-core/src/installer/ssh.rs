//! [`SshSession`]: an SSH connection to a rescue system, as root, with our private key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use md5::{Digest as _, Md5};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use super::shell::{Exit, RemoteShell, ShellError, Stream};
use crate::Secret;

/// The SSH port of rescue systems, unless the service's `RESCUE_SSH_PORT` says otherwise.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// Which host keys a rescue system may present.
///
/// Rescue systems get new host keys at every boot, so there is no lasting `known_hosts`. When
/// the provider returned host key fingerprints on activating rescue, only those are accepted.
/// Otherwise the first key seen is recorded and every later connection that shares this value
/// (clones share it) must present the same key: keep one `HostKeys` per rescue session.
#[derive(Clone, Debug)]
pub struct HostKeys {
    expected: Vec<String>,
    pinned: Arc<Mutex<Option<String>>>,
}

impl HostKeys {
    /// Accepts only keys with one of these fingerprints: SHA-256 (`SHA256:…`, as `ssh-keygen -l`
    /// prints them) or MD5 (colon-separated hex, the form Hetzner shows keys in, with or
    /// without an `MD5:` prefix). An empty list means trust on first use.
    pub fn expect(fingerprints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        HostKeys {
            expected: fingerprints.into_iter().map(Into::into).collect(),
            pinned: Arc::default(),
        }
    }

    /// Trusts the first key seen, and refuses any other one afterwards.
    pub fn trust_on_first_use() -> Self {
        HostKeys {
            expected: Vec::new(),
            pinned: Arc::default(),
        }
    }

    /// The fingerprint of the key accepted so far, if any.
    pub fn pinned(&self) -> Option<String> {
        self.pinned.lock().expect("host key pin poisoned").clone()
    }

    /// Whether this policy accepts only announced keys (not trust on first use).
    pub fn is_announced(&self) -> bool {
        !self.expected.is_empty()
    }

    /// Checks a key by its SHA-256 fingerprint (`SHA256:…`, also what is pinned) and its MD5
    /// one (colon-separated hex).
    fn check(&self, fingerprint: &str, md5: &str) -> Result<(), SshError> {
        let mut pinned = self.pinned.lock().expect("host key pin poisoned");
        let announced = |expected: &String| {
            let expected = expected.trim();
            expected == fingerprint
                || expected
                    .strip_prefix("MD5:")
                    .unwrap_or(expected)
                    .eq_ignore_ascii_case(md5)
        };
        if !self.expected.is_empty() && !self.expected.iter().any(announced) {
            return Err(SshError::HostKeyNotExpected {
                seen: fingerprint.to_owned(),
                expected: self.expected.clone(),
            });
        }
        match pinned.as_deref() {
            Some(first) if first != fingerprint => Err(SshError::HostKeyChanged {
                first: first.to_owned(),
                seen: fingerprint.to_owned(),
            }),
            Some(_) => Ok(()),
            None => {
                *pinned = Some(fingerprint.to_owned());
                Ok(())
            }
        }
    }
}

/// The public half of a private key (OpenSSH or PEM), as an OpenSSH line (`ssh-ed25519 AAAA…`):
/// the key the provider authorizes on rescue systems.
pub fn public_key_of(private_key: &Secret<String>) -> Result<String, SshError> {
    let key = russh::keys::decode_secret_key(private_key.expose(), None)
        .map_err(|source| SshError::InvalidPrivateKey { source })?;
    key.public_key()
        .to_openssh()
        .map_err(|source| SshError::InvalidPrivateKey {
            source: source.into(),
        })
}

/// Where and how to reach a rescue system.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port: [`DEFAULT_SSH_PORT`] unless configured.
    pub port: u16,
    /// The user: `root` on rescue systems.
    pub user: String,
    /// Our private key, in OpenSSH or PEM format (RSA, ECDSA or Ed25519).
    pub private_key: Secret<String>,
    /// The host key policy, shared by every connection of one rescue session.
    pub host_keys: HostKeys,
    /// Limit for the TCP connection, the handshake and authentication together.
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// A target for `root@host:22` with trust-on-first-use host keys and a 10 s connect timeout.
    pub fn new(host: impl Into<String>, private_key: Secret<String>) -> Self {
        SshTarget {
            host: host.into(),
            port: DEFAULT_SSH_PORT,
            user: "root".to_owned(),
            private_key,
            host_keys: HostKeys::trust_on_first_use(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why an SSH connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The private key could not be read.
    #[error("the SSH private key could not be read (expected an OpenSSH or PEM private key)")]
    InvalidPrivateKey {
        /// The parser's report (it never contains the key).
        #[source]
        source: russh::keys::Error,
    },
    /// Nothing answered in time.
    #[error("no SSH connection to {address} within {after:?}")]
    ConnectTimeout {
        /// `host:port`.
        address: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The TCP connection or the SSH handshake failed.
    #[error("SSH connection to {address} failed")]
    Connect {
        /// `host:port`.
        address: String,
        /// What failed.
        #[source]
        source: russh::Error,
    },
    /// The host key is not one the provider announced.
    #[error(
        "the host key {seen} is not one the provider announced for this rescue system \
         ({expected:?}): refusing to connect"
    )]
    HostKeyNotExpected {
        /// The fingerprint presented.
        seen: String,
        /// The fingerprints accepted.
        expected: Vec<String>,
    },
    /// The host key differs from the one seen first in this rescue session.
    #[error(
        "the rescue system's host key changed within the rescue session \
         (first {first}, now {seen}): refusing to continue"
    )]
    HostKeyChanged {
        /// The fingerprint seen first.
        first: String,
        /// The fingerprint presented now.
        seen: String,
    },
    /// The server refused our key.
    #[error("the rescue system refused our SSH key for user {user}")]
    AuthenticationRejected {
        /// The user we logged in as.
        user: String,
    },
}

struct Client {
    host_keys: HostKeys,
    rejected: Arc<Mutex<Option<SshError>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(certificate) => certificate.public_key(),
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let md5 = russh::keys::PublicKey::from(key.clone())
            .to_bytes()
            .map(|blob| {
                Md5::digest(&blob)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        match self.host_keys.check(&fingerprint, &md5) {
            Ok(()) => Ok(true),
            Err(error) => {
                *self.rejected.lock().expect("poisoned") = Some(error);
                Ok(false)
            }
        }
    }
}

/// An authenticated SSH connection to a rescue system. Each [`RemoteShell::exec`] opens its own
/// channel, so one session runs the probe and the whole install.
pub struct SshSession {
    handle: Handle<Client>,
    address: String,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("address", &self.address)
            .finish()
    }
}

impl SshSession {
    /// Connects and authenticates with the target's key. RSA keys sign with rsa-sha2-512 or
    /// rsa-sha2-256, whichever the server prefers (OpenSSH 8.8 and later refuse SHA-1).
    ///
    /// # Errors
    /// [`SshError`]: an unreadable key, no answer within the timeout, a host key the policy
    /// refuses, or a refused key.
    pub async fn connect(target: &SshTarget) -> Result<SshSession, SshError> {
        let key = russh::keys::decode_secret_key(target.private_key.expose(), None)
            .map_err(|source| SshError::InvalidPrivateKey { source })?;
        crate::dial_guard::enforce_host("SSH", &target.host);
        let address = format!("{}:{}", target.host, target.port);
        let timeout = target.connect_timeout;
        match tokio::time::timeout(timeout, Self::open(target, key, &address)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::ConnectTimeout {
                address,
                after: timeout,
            }),
        }
    }

    async fn open(
        target: &SshTarget,
        key: russh::keys::PrivateKey,
        address: &str,
    ) -> Result<SshSession, SshError> {
        let rejected = Arc::new(Mutex::new(None));
        let client = Client {
            host_keys: target.host_keys.clone(),
            rejected: rejected.clone(),
        };
        let config = Arc::new(client::Config {
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            ..client::Config::default()
        });
        let connect_error = |source: russh::Error| {
            rejected
                .lock()
                .expect("poisoned")
                .take()
                .unwrap_or(SshError::Connect {
                    address: address.to_owned(),
                    source,
                })
        };
        let mut handle = client::connect(config, (target.host.as_str(), target.port), client)
            .await
            .map_err(connect_error)?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(connect_error)?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(connect_error)?;
        if !auth.success() {
            return Err(SshError::AuthenticationRejected {
                user: target.user.clone(),
            });
        }
        Ok(SshSession {
            handle,
            address: address.to_owned(),
        })
    }

    /// `host:port` of the rescue system.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[async_trait]
impl RemoteShell for SshSession {
    async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        on_output: &mut (dyn for<'chunk> FnMut(Stream, &'chunk [u8]) + Send),
    ) -> Result<Exit, ShellError> {
        let transport = |source: russh::Error| ShellError::Transport {
            source: Box::new(source),
        };
        let run = async {
            let channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(transport)?;
            let mut guard = ClosedOnDrop(Some(channel));
            let channel = guard.0.as_mut().expect("the channel stays until drop");
            channel.exec(true, command).await.map_err(transport)?;
            let mut exit = None;
            while let Some(message) = channel.wait().await {
                match message {
                    ChannelMsg::Data { data } => on_output(Stream::Stdout, &data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => on_output(Stream::Stderr, &data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        exit = Some(Exit::Status(exit_status));
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit = Some(Exit::Signal(format!("{signal_name:?}")));
                    }
                    _ => {}
                }
            }
            Ok(exit.unwrap_or(Exit::Disconnected))
        };
        // On timeout the future is dropped, and with it the channel, which closes it: sshd then
        // closes the command's stdin, which stops long pipelines (see `plan`).
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Err(ShellError::Timeout { after: timeout }))
    }
}

/// Closes its channel when dropped (a timeout or a cancelled future), so that sshd closes the
/// command's standard input. russh leaves dropped channels open.
struct ClosedOnDrop(Option<russh::Channel<client::Msg>>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        if let (Some(channel), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = channel.close().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_on_first_use_refuses_a_change() {
        let keys = HostKeys::trust_on_first_use();
        keys.check("SHA256:a", "aa:01").unwrap();
        keys.clone().check("SHA256:a", "aa:01").unwrap();
        let error = keys.check("SHA256:b", "bb:02").unwrap_err();
        assert!(matches!(error, SshError::HostKeyChanged { .. }), "{error}");
        assert_eq!(keys.pinned().as_deref(), Some("SHA256:a"));
    }

    #[test]
    fn expected_fingerprints_are_enforced() {
        let keys = HostKeys::expect(["SHA256:a", "SHA256:b"]);
        keys.check("SHA256:b", "bb:02").unwrap();
        assert!(matches!(
            keys.check("SHA256:c", "cc:03"),
            Err(SshError::HostKeyNotExpected { .. })
        ));
    }

    #[test]
    fn expected_md5_fingerprints_match_in_any_case_with_or_without_prefix() {
        HostKeys::expect(["AA:01"])
            .check("SHA256:a", "aa:01")
            .unwrap();
        HostKeys::expect(["MD5:aa:01"])
            .check("SHA256:a", "aa:01")
            .unwrap();
        assert!(matches!(
            HostKeys::expect(["aa:01"]).check("SHA256:b", "bb:02"),
            Err(SshError::HostKeyNotExpected { .. })
        ));
    }
}
