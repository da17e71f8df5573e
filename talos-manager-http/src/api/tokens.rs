//! `/tokens`: the bearer tokens of the admin API. A token's value is shown once, when made.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use talos_manager_core::api_token::generate_api_token;
use talos_manager_core::ids::ApiTokenId;
use talos_manager_core::store::ApiToken;
use time::OffsetDateTime;

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult};
use super::ids::parse_id;
use super::{Deleted, Tag};
use crate::AppState;

/// An API token as listed (without its value).
#[derive(Debug, Object)]
pub(crate) struct TokenView {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// When it was made.
    created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute).
    last_used_at: Option<OffsetDateTime>,
}

impl From<ApiToken> for TokenView {
    fn from(token: ApiToken) -> TokenView {
        TokenView {
            id: token.id.to_string(),
            name: token.name,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// A token to make.
#[derive(Debug, Object)]
pub(crate) struct CreateToken {
    /// Who or what will use it (unique), e.g. `terraform-ci`.
    #[oai(validator(min_length = 1, max_length = 100))]
    name: String,
}

/// A token just made: the only time its value is shown.
#[derive(Debug, Object)]
pub(crate) struct CreatedToken {
    /// The token as listed.
    #[oai(flatten)]
    token: TokenView,
    /// The bearer token: send it as `Authorization: Bearer <token>`. Store it now; it cannot
    /// be shown again.
    secret: String,
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
        Ok(Json(tokens.into_iter().map(Into::into).collect()))
    }

    /// Make an API token; its value is in the answer and nowhere else.
    #[oai(path = "/tokens", method = "post", operation_id = "create_token")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AdminAuth,
        body: Json<CreateToken>,
    ) -> ApiResult<TokenCreated> {
        let new = generate_api_token().map_err(|error| ApiError::internal(&error))?;
        let token = state.store.create_api_token(&body.name, &new).await?;
        tracing::info!(name = %token.name, by = ?auth.principal(), "api token created");
        Ok(TokenCreated::Created(Json(CreatedToken {
            token: token.into(),
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
