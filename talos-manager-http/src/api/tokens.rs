//! `/tokens`: the bearer tokens of the admin API. A token's value is shown once, when made.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use talos_manager_api_types::{CreateToken, CreatedToken, TokenView};
use talos_manager_core::api_token::generate_api_token;
use talos_manager_core::ids::ApiTokenId;
use talos_manager_core::store::ApiToken;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Deleted, Tag};
use crate::AppState;

/// The wire form of `ApiToken`.
fn token_view(token: ApiToken) -> TokenView {
    TokenView {
        id: token.id.to_string(),
        name: token.name,
        created_at: token.created_at,
        last_used_at: token.last_used_at,
        expires_at: token.expires_at,
    }
}

#[derive(Debug, ApiResponse)]
pub(crate) enum TokenCreated {
    /// Made.
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

pub(crate) struct TokensApi;

#[OpenApi(tag = "Tag::Tokens")]
impl TokensApi {
    /// List the API tokens.
    #[oai(path = "/tokens", method = "get", operation_id = "list_tokens")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: AdminAuth,
    ) -> ApiResult<Json<Vec<TokenView>>> {
        let tokens = state.store.list_api_tokens().await?;
        Ok(Json(tokens.into_iter().map(token_view).collect()))
    }

    /// Make an API token; its value is in the answer and nowhere else.
    #[oai(path = "/tokens", method = "post", operation_id = "create_token")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        body: Json<CreateToken>,
    ) -> ApiResult<TokenCreated> {
        let expires_at = body
            .expires_in_seconds
            .map(|seconds| crate::tokens::expiry(std::time::Duration::from_secs(seconds)))
            .transpose()
            .map_err(|error| ApiError::internal(&error))?;
        let new = generate_api_token().map_err(|error| ApiError::internal(&error))?;
        let token = state
            .store
            .create_expiring_api_token(&body.name, &new, expires_at)
            .await?;
        tracing::info!(name = %token.name, by = ?auth.principal(), "api token created");
        Ok(TokenCreated::Created(Json(CreatedToken {
            token: token_view(token),
            secret: new.token.into_inner(),
        })))
    }

    /// Revoke an API token.
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "delete_token")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        id: Path<String>,
    ) -> ApiResult<Deleted> {
        let id = parse_id("api token", &id, ApiTokenId)?;
        state.store.delete_api_token(id).await?;
        tracing::info!(%id, by = ?auth.principal(), "api token revoked");
        Ok(Deleted::Deleted)
    }
}
