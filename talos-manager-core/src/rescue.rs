//! [`enter_rescue`]: boots a stored server into its provider's rescue system with our SSH key,
//! and records the activation. The `POST /servers/{id}/rescue` endpoint and the bootstrap job
//! both go through it.

use crate::Secret;
use crate::ids::ServerId;
use crate::installer::{SshError, public_key_of};
use crate::provider::{MissingKey, ProviderError, ProviderFactory, RescueActivation, SshPublicKey};
use crate::store::{Server, Store, StoreError};

/// Why a server could not be put into rescue.
#[derive(Debug, thiserror::Error)]
pub enum RescueError {
    /// `SSH_PRIVATE_KEY` is not set: a rescue system would let nobody in.
    #[error(
        "SSH_PRIVATE_KEY is not set: talos-manager needs its SSH key to log in to rescue systems"
    )]
    NoSshKey,
    /// `SSH_PRIVATE_KEY` cannot be read.
    #[error("SSH_PRIVATE_KEY cannot be used")]
    InvalidSshKey(#[source] SshError),
    /// The public half of `SSH_PRIVATE_KEY` is not a key the providers accept.
    #[error("the public half of SSH_PRIVATE_KEY cannot be uploaded to providers")]
    InvalidPublicKey(#[source] Box<ProviderError>),
    /// Reading or writing the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider refused or failed (the key, the activation or the power cycle).
    #[error("failed to put server {server} into rescue")]
    Provider {
        /// The server's name.
        server: String,
        /// The provider's error (boxed: it is large).
        #[source]
        source: Box<ProviderError>,
    },
}

/// What [`enter_rescue`] did.
#[derive(Debug)]
pub struct EnteredRescue {
    /// The server as stored now (`rescue_activated_at` set, not accessible until probed).
    pub server: Server,
    /// The activation the provider returned (host key fingerprints, when it tells them).
    pub activation: RescueActivation,
}

/// Our public key, from the private one.
pub fn our_public_key(private_key: Option<&Secret<String>>) -> Result<SshPublicKey, RescueError> {
    let private_key = private_key.ok_or(RescueError::NoSshKey)?;
    let openssh = public_key_of(private_key).map_err(RescueError::InvalidSshKey)?;
    SshPublicKey::parse(&openssh).map_err(|error| RescueError::InvalidPublicKey(Box::new(error)))
}

/// Activates the rescue system of `server_id` through its provider account with our key
/// (uploaded to the account when missing), power-cycles the server and records the activation.
///
/// # Guarantees
/// The activation is recorded only when the power cycle was accepted; a failure leaves the
/// server row as it was. Safe to call again: an activation still pending is replaced.
pub async fn enter_rescue(
    store: &Store,
    providers: &ProviderFactory,
    server_id: ServerId,
    private_key: Option<&Secret<String>>,
) -> Result<EnteredRescue, RescueError> {
    let key = our_public_key(private_key)?;
    let server = store.get_server(server_id).await?;
    let account = store
        .get_provider_account(server.provider_account_id)
        .await?;
    let secret = store.provider_account_secret(account.id).await?;
    let provider_error = |source| RescueError::Provider {
        server: server.inventory.name.clone(),
        source: Box::new(source),
    };
    let clients = providers
        .build(account.provider, &account.name, secret)
        .map_err(provider_error)?;
    let activation = clients
        .provider
        .reboot_into_rescue(&server.inventory.provider_id, &key, MissingKey::Upload)
        .await
        .map_err(provider_error)?;
    let server = store
        .record_rescue_activation(server_id, activation.at)
        .await?;
    Ok(EnteredRescue { server, activation })
}
