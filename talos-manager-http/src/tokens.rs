//! API tokens from the command line (`talos-manager token …`) and the first start's admin token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use talos_manager_core::api_token::generate_api_token;
use talos_manager_core::{Secret, Store, StoreError};
use time::OffsetDateTime;

/// Why a token command failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] talos_manager_core::random::RandomError),
    /// The first start's token file could not be written.
    #[error("failed to write the first API token to {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The expiry date would be too far away.
    #[error("the token's lifetime is too long")]
    Lifetime,
    /// No token has that name.
    #[error("no API token is named {0:?} (see `talos-manager token list`)")]
    NoSuchToken(String),
}

/// Makes a token named `name` and returns its value, to be shown once.
pub async fn create_token(store: &Store, name: &str) -> Result<Secret<String>, TokenError> {
    Ok(create_expiring_token(store, name, None).await?.0)
}

/// Makes a token named `name` that stops working after `lifetime` (`None`: when revoked);
/// returns its value, to be shown once, and when it expires.
pub async fn create_expiring_token(
    store: &Store,
    name: &str,
    lifetime: Option<Duration>,
) -> Result<(Secret<String>, Option<OffsetDateTime>), TokenError> {
    let expires_at = lifetime.map(expiry).transpose()?;
    let new = generate_api_token()?;
    store
        .create_expiring_api_token(name, &new, expires_at)
        .await?;
    Ok((new.token, expires_at))
}

/// When a token made now with `lifetime` expires.
///
/// # Errors
/// [`TokenError::Lifetime`] when the date would be past the year 9999.
pub fn expiry(lifetime: Duration) -> Result<OffsetDateTime, TokenError> {
    time::Duration::try_from(lifetime)
        .ok()
        .and_then(|lifetime| OffsetDateTime::now_utc().checked_add(lifetime))
        .filter(|at| at.year() <= 9999)
        .ok_or(TokenError::Lifetime)
}

/// A token lifetime as people write it: a positive whole number with a unit, `s`, `m`, `h` or
/// `d` (`90d`, `12h`, `30m`, `3600s`).
///
/// # Errors
/// A message saying what is expected.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let problem = || format!("{text:?} is not a lifetime such as 90d, 12h, 30m or 3600s");
    let split = text.len().checked_sub(1).ok_or_else(problem)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(problem)?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(problem()),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(problem)
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

/// The file in the data directory the first start's admin token is written to.
pub const FIRST_TOKEN_FILE: &str = "admin-token";

/// On a service with neither `BASIC_AUTH_PASSWORD` nor any token, makes an `admin` token,
/// writes it to [`FIRST_TOKEN_FILE`] in `data_dir` (mode 0600, readable only by the service's
/// user; never to the log) and returns that file's path, so the first user can get in.
/// Returns `None` otherwise. The file is written before the token is stored, so a failure
/// leaves no token nobody can read.
pub async fn first_start_token(
    store: &Store,
    basic_auth_password: Option<&Secret<String>>,
    data_dir: &Path,
) -> Result<Option<PathBuf>, TokenError> {
    if basic_auth_password.is_some() || store.count_api_tokens().await? > 0 {
        return Ok(None);
    }
    let new = generate_api_token()?;
    let path = data_dir.join(FIRST_TOKEN_FILE);
    std::fs::create_dir_all(data_dir)
        .and_then(|()| write_private_file(&path, format!("{}\n", new.token.expose()).as_bytes()))
        .map_err(|source| TokenError::File {
            path: path.clone(),
            source,
        })?;
    store.create_api_token("admin", &new).await?;
    Ok(Some(path))
}

/// Writes `contents` to a new file at `path` that only its owner can read (mode 0600), in
/// place of whatever was there (a symbolic link is replaced, not followed).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
