//! Authentication of the admin API: HTTP Basic with `BASIC_AUTH_PASSWORD` (any user name, as
//! the original), or a bearer API token. Secrets are compared in constant time.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{Basic, Bearer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use crate::AppState;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Someone who knows `BASIC_AUTH_PASSWORD`.
    Password,
    /// The holder of the named API token.
    Token(String),
}

/// HTTP Basic authentication with `BASIC_AUTH_PASSWORD`; the user name is ignored.
#[derive(SecurityScheme)]
#[oai(ty = "basic", rename = "password", checker = "check_password")]
pub(crate) struct PasswordAuth(Principal);

/// A bearer API token (`talos-manager token create NAME`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "token", checker = "check_token")]
pub(crate) struct TokenAuth(Principal);

/// Either way of authenticating; every admin API operation takes one.
#[derive(SecurityScheme)]
pub(crate) enum AdminAuth {
    /// A bearer token.
    Token(TokenAuth),
    /// The password.
    Password(PasswordAuth),
}

impl AdminAuth {
    /// Who made the request, for the log.
    pub(crate) fn principal(&self) -> &Principal {
        match self {
            AdminAuth::Token(TokenAuth(principal))
            | AdminAuth::Password(PasswordAuth(principal)) => principal,
        }
    }
}

fn state(request: &Request) -> poem::Result<&AppState> {
    request
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))
}

async fn check_password(request: &Request, basic: Basic) -> poem::Result<Principal> {
    let state = state(request)?;
    let Some(expected) = &state.basic_auth_password else {
        return Err(ApiError::unauthorized().into());
    };
    if secrets_equal(basic.password.as_bytes(), expected.expose().as_bytes()) {
        Ok(Principal::Password)
    } else {
        Err(ApiError::unauthorized().into())
    }
}

async fn check_token(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(request)?;
    match state.store.authenticate_api_token(&bearer.token).await {
        Ok(Some(token)) => Ok(Principal::Token(token.name)),
        Ok(None) => Err(ApiError::unauthorized().into()),
        Err(error) => Err(ApiError::from(error).into()),
    }
}

/// Compares two secrets in time independent of where they differ (and of their lengths, by
/// comparing digests).
pub(crate) fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.as_slice().ct_eq(expected.as_slice()).into()
}
