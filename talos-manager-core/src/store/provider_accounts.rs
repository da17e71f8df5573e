//! Provider accounts: one set of Hetzner Robot or Cloud credentials each.

use time::OffsetDateTime;

use super::{Store, StoreError, now, on_pool, sql};
use crate::Secret;
use crate::ids::ProviderAccountId;
use crate::provider::ProviderKind;

const SECRET_COLUMN: &str = "provider_accounts.secret";

/// Reads a stored provider kind; an unknown one means the row was written by something else.
pub(crate) fn parse_provider_kind(
    column: &'static str,
    value: &str,
) -> Result<ProviderKind, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt {
        column,
        value: value.to_owned(),
    })
}

/// A provider account as listed; the secret is read on its own with
/// [`Store::provider_account_secret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccount {
    /// Its id.
    pub id: ProviderAccountId,
    /// Robot or Cloud.
    pub provider: ProviderKind,
    /// Robot: the webservice user. Cloud: a label. Unique per provider, ignoring case.
    pub name: String,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// When the provider last refused its credentials (401); the periodic sync skips the
    /// account until its secret is updated, which clears this.
    pub credentials_refused_at: Option<OffsetDateTime>,
    /// Until when the provider blocks the client address (Robot's 403 `BLOCKED` after failed
    /// logins); the periodic sync skips the account until then or until its secret is updated,
    /// which clears this.
    pub blocked_until: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: ProviderAccountId,
    provider: String,
    name: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    credentials_refused_at: Option<OffsetDateTime>,
    blocked_until: Option<OffsetDateTime>,
}

impl TryFrom<Row> for ProviderAccount {
    type Error = StoreError;
    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(ProviderAccount {
            id: row.id,
            provider: parse_provider_kind("provider_accounts.provider", &row.provider)?,
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
            credentials_refused_at: row.credentials_refused_at,
            blocked_until: row.blocked_until,
        })
    }
}

const COLUMNS: &str =
    "id, provider, name, created_at, updated_at, credentials_refused_at, blocked_until";

impl Store {
    /// Adds a provider account; its secret is stored encrypted.
    pub async fn create_provider_account(
        &self,
        provider: ProviderKind,
        name: &str,
        secret: &Secret<String>,
    ) -> Result<ProviderAccount, StoreError> {
        let sql = sql!(
            "INSERT INTO provider_accounts (provider, name, secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING {COLUMNS}"
        );
        let ciphertext = self.cipher.encrypt_str(SECRET_COLUMN, secret);
        let row: Row = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(provider.as_str())
            .bind(name)
            .bind(&ciphertext)
            .bind(now())
            .fetch_one(pool)
            .await)
        .map_err(|e| StoreError::from_write("provider account", "insert provider account", e))?;
        row.try_into()
    }

    /// Every provider account, by provider then name.
    pub async fn list_provider_accounts(&self) -> Result<Vec<ProviderAccount>, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM provider_accounts ORDER BY provider, name, id");
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await)
            .map_err(StoreError::query("list provider accounts"))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// One provider account.
    pub async fn get_provider_account(
        &self,
        id: ProviderAccountId,
    ) -> Result<ProviderAccount, StoreError> {
        let sql = sql!("SELECT {COLUMNS} FROM provider_accounts WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get provider account"))?;
        row.ok_or_else(|| StoreError::not_found("provider account", id))?
            .try_into()
    }

    /// The decrypted secret of a provider account (password or API token).
    pub async fn provider_account_secret(
        &self,
        id: ProviderAccountId,
    ) -> Result<Secret<String>, StoreError> {
        let sql = "SELECT secret FROM provider_accounts WHERE id = $1";
        let ciphertext: Option<Vec<u8>> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get provider account secret"))?;
        let ciphertext = ciphertext.ok_or_else(|| StoreError::not_found("provider account", id))?;
        Ok(self.cipher.decrypt_str(SECRET_COLUMN, &ciphertext)?)
    }

    /// Records that the provider refused the account's credentials now; the periodic sync
    /// leaves the account alone until its secret is updated.
    pub async fn mark_provider_account_credentials_refused(
        &self,
        id: ProviderAccountId,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE provider_accounts SET credentials_refused_at = $2 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(now())
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(|e| StoreError::from_write("provider account", "mark credentials refused", e))?;
        Ok(())
    }

    /// Records that the provider blocks the client address until `until` (Robot's 403
    /// `BLOCKED`); the periodic sync leaves the account alone until then or until its secret is
    /// updated.
    pub async fn mark_provider_account_blocked(
        &self,
        id: ProviderAccountId,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE provider_accounts SET blocked_until = $2 WHERE id = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(until)
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(|e| StoreError::from_write("provider account", "mark blocked", e))?;
        Ok(())
    }

    /// Changes the name and, when given, the secret of a provider account; a new secret clears
    /// [`ProviderAccount::credentials_refused_at`] and [`ProviderAccount::blocked_until`].
    pub async fn update_provider_account(
        &self,
        id: ProviderAccountId,
        name: &str,
        secret: Option<&Secret<String>>,
    ) -> Result<ProviderAccount, StoreError> {
        let ciphertext = secret.map(|secret| self.cipher.encrypt_str(SECRET_COLUMN, secret));
        let sql = sql!(
            "UPDATE provider_accounts SET name = $2, secret = COALESCE($3, secret), updated_at = $4, \
             credentials_refused_at = CASE WHEN $3 IS NULL THEN credentials_refused_at ELSE NULL \
             END, blocked_until = CASE WHEN $3 IS NULL THEN blocked_until ELSE NULL END \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(name)
            .bind(&ciphertext)
            .bind(now())
            .fetch_optional(pool)
            .await)
        .map_err(|e| StoreError::from_write("provider account", "update provider account", e))?;
        row.ok_or_else(|| StoreError::not_found("provider account", id))?
            .try_into()
    }

    /// Deletes a provider account and, with it, its servers and vSwitches.
    pub async fn delete_provider_account(&self, id: ProviderAccountId) -> Result<(), StoreError> {
        self.delete_row("provider_accounts", "provider account", id.0)
            .await
    }
}
