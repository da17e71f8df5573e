//! Authentication of the admin API: HTTP Basic with `BASIC_AUTH_PASSWORD` (any user name, as
//! the original), or a bearer API token (refused once expired or revoked). Secrets are
//! compared in constant time; wrong passwords are answered one at a time, each after
//! [`FAILED_PASSWORD_DELAY`], so guessing is slow.
//!
//! Browser safety: [`refuse_cross_site`] refuses state-changing requests that a browser sent
//! from another site (`Sec-Fetch-Site`, else `Origin`), so a page elsewhere cannot use
//! credentials the browser holds; and a 401 invites the browser to ask for a password
//! (`WWW-Authenticate: Basic`) only when the request sent one (see `error.rs`).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{Basic, Bearer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use talos_manager_core::ids::ApiTokenId;

use super::error::ApiError;
use crate::AppState;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Someone who knows `BASIC_AUTH_PASSWORD`.
    Password,
    /// The holder of an API token.
    Token {
        /// The token's id.
        id: ApiTokenId,
        /// Its name.
        name: String,
    },
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

    /// The API token the request was authenticated with, if any.
    pub(crate) fn token_id(&self) -> Option<ApiTokenId> {
        match self.principal() {
            Principal::Token { id, .. } => Some(*id),
            Principal::Password => None,
        }
    }
}

/// How long a wrong password waits before its 401; wrong passwords wait one after another,
/// so at most four are tried a second whatever the concurrency.
pub(crate) const FAILED_PASSWORD_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Answers a wrong password after [`FAILED_PASSWORD_DELAY`], one at a time.
async fn slow_down_failure() {
    static FAILURES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = FAILURES.lock().await;
    tokio::time::sleep(FAILED_PASSWORD_DELAY).await;
}

fn state(request: &Request) -> poem::Result<&AppState> {
    request
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))
}

async fn check_password(request: &Request, basic: Basic) -> poem::Result<Principal> {
    let state = state(request)?;
    let matches = state.basic_auth_password.as_ref().is_some_and(|expected| {
        secrets_equal(basic.password.as_bytes(), expected.expose().as_bytes())
    });
    if matches {
        Ok(Principal::Password)
    } else {
        slow_down_failure().await;
        Err(ApiError::unauthorized().into())
    }
}

async fn check_token(request: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(request)?;
    match state.store.authenticate_api_token(&bearer.token).await {
        Ok(Some(token)) => Ok(Principal::Token {
            id: token.id,
            name: token.name,
        }),
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

/// Whether a browser sent this request from another site: `Sec-Fetch-Site` says so (anything
/// but `same-origin` or `none`), or, from browsers without it, `Origin` names another host
/// than the one the request was sent to (its `Host`, or the service's `HOST`). Requests
/// without either header (curl, Terraform, scripts) are not from a browser page.
pub(crate) fn is_cross_site(request: &Request, public_host: Option<&str>) -> bool {
    let header = |name: &str| {
        request.headers().get(name).map(|value| {
            value
                .to_str()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    };
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site.as_str(), "same-origin" | "none");
    }
    let Some(origin) = header("origin") else {
        return false;
    };
    let Some(origin_host) = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .filter(|host| !host.is_empty() && !host.contains('/'))
    else {
        // `null` (a sandboxed or file page) or something unreadable.
        return true;
    };
    let host = header("host");
    let same_host = host.as_deref() == Some(origin_host);
    let strip_port = |host: &str| -> String {
        match host.rsplit_once(':') {
            Some((name, port))
                if !name.ends_with(']')
                    && port.chars().all(|c| c.is_ascii_digit())
                    && !name.contains(':') =>
            {
                name.to_owned()
            }
            _ => host.to_owned(),
        }
    };
    let public =
        public_host.is_some_and(|public| strip_port(origin_host) == public.to_ascii_lowercase());
    !(same_host || public)
}

/// Refuses (403 `cross_site`) a state-changing request (any method but GET, HEAD and
/// OPTIONS) that a browser sent from another site: see [`is_cross_site`].
pub(crate) async fn refuse_cross_site<E: poem::Endpoint>(
    next: E,
    request: Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    use poem::http::Method;
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        let public_host = request
            .data::<AppState>()
            .and_then(|state| state.image_factory.host().map(str::to_owned));
        if is_cross_site(&request, public_host.as_deref()) {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-site request refused");
            let mut response = super::error::body(
                "cross_site",
                "state-changing requests from another site are refused",
            )
            .into_response();
            response.set_status(poem::http::StatusCode::FORBIDDEN);
            return Ok(response);
        }
    }
    Ok(next.call(request).await?.into_response())
}
