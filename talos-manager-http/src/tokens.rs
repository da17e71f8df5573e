//! API tokens from the command line (`talos-manager token …`) and the first start's admin token.

use talos_manager_core::api_token::generate_api_token;
use talos_manager_core::{Secret, Store, StoreError};

/// Why a token command failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] talos_manager_core::api_token::RandomError),
    /// No token has that name.
    #[error("no API token is named {0:?} (see `talos-manager token list`)")]
    NoSuchToken(String),
}

/// Makes a token named `name` and returns its value, to be shown once.
pub async fn create_token(store: &Store, name: &str) -> Result<Secret<String>, TokenError> {
    let new = generate_api_token()?;
    store.create_api_token(name, &new).await?;
    Ok(new.token)
}

/// Revokes the token named `name`.
pub async fn revoke_token(store: &Store, name: &str) -> Result<(), TokenError> {
    let token = store
        .list_api_tokens()
        .await?
        .into_iter()
        .find(|token| token.name == name)
        .ok_or_else(|| TokenError::NoSuchToken(name.to_owned()))?;
    store.delete_api_token(token.id).await?;
    Ok(())
}

/// On a service with neither `BASIC_AUTH_PASSWORD` nor any token, makes an `admin` token and
/// returns it, so the first user can get in. Returns `None` otherwise.
pub async fn first_start_token(
    store: &Store,
    basic_auth_password: Option<&Secret<String>>,
) -> Result<Option<Secret<String>>, TokenError> {
    if basic_auth_password.is_some() || store.count_api_tokens().await? > 0 {
        return Ok(None);
    }
    Ok(Some(create_token(store, "admin").await?))
}
