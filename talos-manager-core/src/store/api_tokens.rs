//! API tokens: names and hashes of the bearer tokens the admin API accepts.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::api_token::{NewApiToken, hash_api_token};
use crate::ids::ApiTokenId;

/// A token as listed (its value is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// Its name, unique (who or what uses it).
    pub name: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (updated at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops authenticating; `None`: never.
    pub expires_at: Option<OffsetDateTime>,
}

impl ApiToken {
    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

const COLUMNS: &str = "id, name, created_at, last_used_at, expires_at";

impl Store {
    /// Stores a new token under `name`, valid until revoked.
    pub async fn create_api_token(
        &self,
        name: &str,
        token: &NewApiToken,
    ) -> Result<ApiToken, StoreError> {
        self.create_expiring_api_token(name, token, None).await
    }

    /// Stores a new token under `name` that stops authenticating at `expires_at` (`None`:
    /// never).
    pub async fn create_expiring_api_token(
        &self,
        name: &str,
        token: &NewApiToken,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<ApiToken, StoreError> {
        let sql = sql!(
            "INSERT INTO api_tokens (name, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(name)
            .bind(&token.hash)
            .bind(now())
            .bind(expires_at)
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("api token", "insert api token", e))
    }

    /// Every token, oldest first.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.list_rows("api_tokens", COLUMNS, "id").await
    }

    /// How many tokens exist.
    pub async fn count_api_tokens(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_tokens"
        )
        .fetch_one(pool)
        .await)
        .map_err(StoreError::query("count api tokens"))
    }

    /// The token whose value is `token`, if any and not expired. Records its use, at most once
    /// a minute so that authenticating is a read.
    pub async fn authenticate_api_token(
        &self,
        token: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let found: Option<ApiToken> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(hash_api_token(token))
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("authenticate api token"))?;
        let now = now();
        let Some(mut found) = found.filter(|token| !token.is_expired(now)) else {
            return Ok(None);
        };
        let stale = found
            .last_used_at
            .is_none_or(|at| now - at > time::Duration::MINUTE);
        if stale {
            let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1";
            on_pool!(self, |pool| sqlx::query(sql)
                .bind(found.id)
                .bind(now)
                .execute(pool)
                .await
                .map(drop))
            .map_err(StoreError::query("record api token use"))?;
            found.last_used_at = Some(now);
        }
        Ok(Some(found))
    }

    /// Whether the token `id` still authenticates: it exists (was not revoked) and has not
    /// expired. Live streams ask this on every poll.
    pub async fn api_token_is_valid(&self, id: ApiTokenId) -> Result<bool, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        let found: Option<ApiToken> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("check api token"))?;
        Ok(found.is_some_and(|token| !token.is_expired(now())))
    }

    /// Revokes a token.
    pub async fn delete_api_token(&self, id: ApiTokenId) -> Result<(), StoreError> {
        self.delete_row("api_tokens", "api token", id.0).await
    }
}
