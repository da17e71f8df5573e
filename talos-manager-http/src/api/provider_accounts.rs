//! `/provider-accounts`: Hetzner Robot and Cloud credentials. Credentials are verified by
//! listing the account's servers before they are stored; the secret is never returned.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use talos_manager_api_types::{
    CreateProviderAccount, IssueBody, ProviderAccountView, UpdateProviderAccount,
};
use talos_manager_core::Secret;
use talos_manager_core::ids::{ProviderAccountId, ServerRef};
use talos_manager_core::provider::ProviderKind;
use talos_manager_core::store::ProviderAccount;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Created, Deleted, Tag};
use crate::AppState;

/// The wire form of `ProviderAccount`.
fn account_view(account: ProviderAccount) -> ProviderAccountView {
    ProviderAccountView {
        id: account.id.to_string(),
        provider: account.provider.as_str().to_owned(),
        name: account.name,
        created_at: account.created_at,
        updated_at: account.updated_at,
        credentials_refused_at: account.credentials_refused_at,
        blocked_until: account.blocked_until,
    }
}

fn account_id(text: &str) -> Result<ProviderAccountId, ApiError> {
    parse_id("provider account", text, ProviderAccountId)
}

/// Lists the account's servers with these credentials: a refused login is a 422 on `secret`.
async fn verify(
    state: &AppState,
    provider: ProviderKind,
    name: &str,
    secret: &Secret<String>,
) -> ApiResult<Vec<talos_manager_core::ProviderServer>> {
    let providers = state.providers.build(provider, name, secret.clone())?;
    Ok(providers.provider.list_servers().await?)
}

/// Refuses credentials for an existing account that do not list its known servers (the ones not
/// already marked missing): they belong to another account, or see less of it, and the next
/// sync would take every server they do not list for gone.
async fn same_account(
    state: &AppState,
    id: ProviderAccountId,
    listed: &[talos_manager_core::ProviderServer],
) -> ApiResult<()> {
    let listed: std::collections::HashSet<&str> = listed
        .iter()
        .map(|server| server.provider_id.as_str())
        .collect();
    let unseen: Vec<String> = state
        .store
        .list_servers_of_account(id)
        .await?
        .into_iter()
        .filter(|server| server.missing_since.is_none())
        .filter(|server| !listed.contains(server.inventory.provider_id.as_str()))
        .map(|server| {
            ServerRef::new(server.inventory.provider, &server.inventory.provider_id).to_string()
        })
        .collect();
    if unseen.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        "provider account",
        vec![IssueBody {
            path: "secret".into(),
            message: format!(
                "these credentials do not list {} of the account's known servers ({}): they \
                 belong to another account or see less of it; use a new provider account for \
                 other credentials",
                unseen.len(),
                unseen.join(", ")
            ),
        }],
    ))
}

fn name_issues(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "provider account",
            vec![IssueBody {
                path: "name".into(),
                message: "must not be empty".into(),
            }],
        ));
    }
    Ok(())
}

pub(crate) struct ProviderAccountsApi;

#[OpenApi(tag = "Tag::ProviderAccounts")]
impl ProviderAccountsApi {
    /// List the provider accounts.
    #[oai(
        path = "/provider-accounts",
        method = "get",
        operation_id = "list_provider_accounts"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<ProviderAccountView>>> {
        let accounts = state.store.list_provider_accounts().await?;
        Ok(Json(accounts.into_iter().map(account_view).collect()))
    }

    /// Add a provider account; its credentials are verified by listing its servers.
    #[oai(
        path = "/provider-accounts",
        method = "post",
        operation_id = "create_provider_account"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        body: Json<CreateProviderAccount>,
    ) -> ApiResult<Created<ProviderAccountView>> {
        let body = body.0;
        let provider: ProviderKind = body.provider.parse().map_err(|error| {
            ApiError::invalid(
                "provider account",
                vec![IssueBody {
                    path: "provider".into(),
                    message: format!("{error}"),
                }],
            )
        })?;
        name_issues(&body.name)?;
        let secret = Secret::new(body.secret);
        verify(&state, provider, &body.name, &secret).await?;
        let account = state
            .store
            .create_provider_account(provider, &body.name, &secret)
            .await?;
        tracing::info!(%provider, name = %account.name, "provider account {} added", account.id);
        Ok(Created::Created(Json(account_view(account))))
    }

    /// Get a provider account (without its secret).
    #[oai(
        path = "/provider-accounts/:id",
        method = "get",
        operation_id = "get_provider_account"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Json<ProviderAccountView>> {
        let account = state.store.get_provider_account(account_id(&id)?).await?;
        Ok(Json(account_view(account)))
    }

    /// Rename a provider account and optionally replace its secret; the credentials are
    /// verified again, and must list every known server of the account that is not marked
    /// missing (422 otherwise: other credentials are another account).
    #[oai(
        path = "/provider-accounts/:id",
        method = "put",
        operation_id = "update_provider_account"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<UpdateProviderAccount>,
    ) -> ApiResult<Json<ProviderAccountView>> {
        let id = account_id(&id)?;
        let body = body.0;
        name_issues(&body.name)?;
        let account = state.store.get_provider_account(id).await?;
        let new_secret = body.secret.map(Secret::new);
        let secret = match &new_secret {
            Some(secret) => secret.clone(),
            None => state.store.provider_account_secret(id).await?,
        };
        let listed = verify(&state, account.provider, &body.name, &secret).await?;
        same_account(&state, id, &listed).await?;
        let account = state
            .store
            .update_provider_account(id, &body.name, new_secret.as_ref())
            .await?;
        Ok(Json(account_view(account)))
    }

    /// Delete a provider account, with its servers and vSwitches.
    #[oai(
        path = "/provider-accounts/:id",
        method = "delete",
        operation_id = "delete_provider_account"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        state
            .store
            .delete_provider_account(account_id(&id)?)
            .await?;
        Ok(Deleted::Deleted)
    }
}
