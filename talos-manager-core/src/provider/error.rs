//! [`ProviderError`], the one error type of both Hetzner clients, and [`HetznerApiError`], the
//! error body Hetzner sent.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use super::ProviderKind;

/// An error answer from a Hetzner API, as Hetzner sent it.
///
/// Robot sends `{"error":{"status","code","message"}}`, Cloud `{"error":{"code","message",
/// "details"}}`; both become this. Branch on [`code`](Self::code), never on the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HetznerApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// Hetzner's error code: `SERVER_NOT_FOUND`, `RATE_LIMIT_EXCEEDED` (Robot), `locked`,
    /// `rate_limit_exceeded` (Cloud), … When the body held no error object, `http_<status>`.
    pub code: String,
    /// Hetzner's message, free text.
    pub message: String,
    /// Cloud's `X-Correlation-Id` header, to quote to Hetzner support.
    pub correlation_id: Option<String>,
}

impl fmt::Display for HetznerApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)?;
        if let Some(correlation_id) = &self.correlation_id {
            write!(f, " (correlation id {correlation_id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HetznerApiError {}

/// Everything that can go wrong talking to a provider.
///
/// Variants say what failed; the cause (Hetzner's answer, the transport error) is the
/// [`source`](std::error::Error::source), so print the whole chain (`{:#}` with anyhow).
/// [`code`](Self::code) and [`message`](Self::message) give Hetzner's error fields when there
/// are some.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The credentials were refused (401). Robot blocks the client address for 10 minutes after
    /// three failed logins, so this is never retried.
    #[error("{provider} did not accept the credentials")]
    Unauthorized {
        /// Which API refused them.
        provider: ProviderKind,
        /// Hetzner's answer.
        #[source]
        source: HetznerApiError,
    },
    /// The server does not exist in this account.
    #[error("server {server_id} does not exist at {provider}")]
    ServerNotFound {
        /// Which API answered.
        provider: ProviderKind,
        /// The provider id asked for.
        server_id: String,
        /// Hetzner's answer, when it came from Hetzner.
        #[source]
        source: Option<HetznerApiError>,
    },
    /// The vSwitch does not exist in this account.
    #[error("vswitch {vswitch_id} does not exist at {provider}")]
    VswitchNotFound {
        /// Which API answered.
        provider: ProviderKind,
        /// The vSwitch id asked for.
        vswitch_id: u64,
        /// Hetzner's answer, when it came from Hetzner.
        #[source]
        source: Option<HetznerApiError>,
    },
    /// The provider kept answering "rate limit exceeded" (Robot 403, Cloud 429) until the retry
    /// budget was spent.
    #[error("{provider} rate limit still exceeded after {attempts} attempts to {operation}")]
    RateLimited {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// How many requests were sent.
        attempts: u32,
        /// Hetzner's last answer.
        #[source]
        source: HetznerApiError,
    },
    /// The account's request budget for this endpoint is spent until `until`: the provider
    /// answered "rate limit exceeded" (Robot's hourly limits), or this process already sent
    /// what the endpoint allows in an hour. Nothing is sent to the endpoint until then.
    #[error(
        "{provider}'s request budget for {endpoint} is spent until {until}; nothing is sent to \
         it until then, so talos-manager could not {operation}"
    )]
    BudgetSpent {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// The endpoint, as the provider's documentation names it (`GET /vswitch/{id}`), or
        /// `*` for Cloud's one project budget.
        endpoint: &'static str,
        /// When a request may be sent again.
        until: OffsetDateTime,
        /// The provider's "rate limit exceeded" answer, when it sent one (boxed: rare, and
        /// large).
        #[source]
        source: Option<Box<HetznerApiError>>,
    },
    /// The server offers none of the resets talos-manager sends (`power`, `hw`, `sw`); `man`
    /// orders a data-centre technician and is never sent by an automated flow.
    #[error(
        "server {server_id} at {provider} offers no reset talos-manager may send (power, hw or \
         sw), only [{}]; a `man` reset orders a technician: reset it in the provider's console",
        offered.join(", ")
    )]
    NoAutomaticReset {
        /// Which API.
        provider: ProviderKind,
        /// The server.
        server_id: String,
        /// The reset types the server offers.
        offered: Vec<String>,
    },
    /// The provider answered with an error that is not one of the cases above.
    #[error("{provider} refused to {operation}")]
    Api {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// Hetzner's answer (after the last attempt, for retried errors).
        #[source]
        source: HetznerApiError,
    },
    /// The request did not get an answer (connection refused, reset, timed out), after retries.
    #[error("could not reach {provider} to {operation} ({attempts} attempts)")]
    Unreachable {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// How many requests were sent.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A state-changing request got an answer that does not say whether it was carried out (a
    /// 5xx, or no answer after it was sent): the backend may have done the work although the
    /// gateway in front of it failed. It is never sent again blindly; the client reads the state
    /// back where it can (rescue, vSwitch, keys), and otherwise (a reset) reports this.
    #[error(
        "{provider} may or may not have carried out the request to {operation} (the answer was an \
         error after it was sent); it was not sent again: check the server's state before trying \
         again"
    )]
    OutcomeUnknown {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// The failure that left the outcome open (`Api` with a 5xx, or `Unreachable`).
        #[source]
        source: Box<ProviderError>,
    },
    /// A server removed from a vSwitch was still listed as a member when we stopped waiting.
    #[error(
        "{provider} still lists server {server_id} in vswitch {vswitch_id} after {waited:?}; the \
         removal is still processing"
    )]
    VswitchChangeUnfinished {
        /// Which API.
        provider: ProviderKind,
        /// The vSwitch.
        vswitch_id: u64,
        /// The server.
        server_id: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The answer was not the JSON we expected.
    #[error("{provider} sent an unreadable answer to {operation}")]
    InvalidResponse {
        /// Which API.
        provider: ProviderKind,
        /// What we tried to do.
        operation: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A Cloud action ended in `error`.
    #[error("{provider} action {action_id} ({command}) failed")]
    ActionFailed {
        /// Which API.
        provider: ProviderKind,
        /// The action id.
        action_id: u64,
        /// The action's command, e.g. `enable_rescue`.
        command: String,
        /// The action's `error.code` and `error.message`.
        #[source]
        source: HetznerApiError,
    },
    /// A Cloud action was still running when we stopped waiting.
    #[error("{provider} action {action_id} ({command}) still running after {waited:?}")]
    ActionTimedOut {
        /// Which API.
        provider: ProviderKind,
        /// The action id.
        action_id: u64,
        /// The action's command.
        command: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The provider has no SSH key with our fingerprint and we were told not to upload it.
    #[error(
        "the SSH key {fingerprint} is not stored at {provider}{}; upload the public half of \
         SSH_PRIVATE_KEY to the account ({how}), or allow talos-manager to upload it",
        stale_key_name.as_ref().map(|name| format!(" (the key named {name:?} has another fingerprint)")).unwrap_or_default()
    )]
    SshKeyMissing {
        /// Which API.
        provider: ProviderKind,
        /// MD5 fingerprint of our public key.
        fingerprint: String,
        /// A key whose name looks like ours (`talos-manager`) but whose fingerprint differs.
        stale_key_name: Option<String>,
        /// Where to upload it by hand.
        how: &'static str,
    },
    /// The text given as our SSH public key is not an OpenSSH public key.
    #[error("the SSH public key is not a valid OpenSSH public key")]
    InvalidSshKey {
        /// What the parser said (boxed: ssh-key's error is large, and this one is rare).
        #[source]
        source: Box<russh::keys::ssh_key::Error>,
    },
    /// The id is not a valid server id for this provider (both use decimal integers).
    #[error("{server_id:?} is not a {provider} server id")]
    InvalidServerId {
        /// Which provider.
        provider: ProviderKind,
        /// The id given.
        server_id: String,
    },
    /// The SSH key handle came from another provider (Cloud key ids are integers, Robot uses
    /// fingerprints); take it from `ensure_ssh_key` of the same provider.
    #[error("{key_id:?} is not a {provider} SSH key id")]
    ForeignSshKey {
        /// The provider that was given the key.
        provider: ProviderKind,
        /// The handle given.
        key_id: String,
    },
    /// The HTTP client could not be built (TLS set-up failed).
    #[error("failed to build the HTTP client")]
    HttpClient {
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
}

impl ProviderError {
    /// Hetzner's error code, when the error came from a Hetzner answer.
    pub fn code(&self) -> Option<&str> {
        self.api_error().map(|api_error| api_error.code.as_str())
    }

    /// Hetzner's error message, when the error came from a Hetzner answer.
    pub fn message(&self) -> Option<&str> {
        self.api_error().map(|api_error| api_error.message.as_str())
    }

    /// Whether trying again later, unchanged, cannot help: the provider refused the request for
    /// what it is (not found, invalid input, credentials refused, a key that must be uploaded
    /// by hand), not for the moment it came (rate limits, locks, outages, 5xx).
    pub fn is_permanent(&self) -> bool {
        match self {
            ProviderError::Unauthorized { .. }
            | ProviderError::ServerNotFound { .. }
            | ProviderError::VswitchNotFound { .. }
            | ProviderError::SshKeyMissing { .. }
            | ProviderError::InvalidSshKey { .. }
            | ProviderError::InvalidServerId { .. }
            | ProviderError::ForeignSshKey { .. }
            | ProviderError::NoAutomaticReset { .. } => true,
            ProviderError::Api { source, .. } => is_permanent_answer(source),
            ProviderError::ActionFailed { .. }
            | ProviderError::RateLimited { .. }
            | ProviderError::BudgetSpent { .. }
            | ProviderError::Unreachable { .. }
            | ProviderError::OutcomeUnknown { .. }
            | ProviderError::InvalidResponse { .. }
            | ProviderError::ActionTimedOut { .. }
            | ProviderError::VswitchChangeUnfinished { .. }
            | ProviderError::HttpClient { .. } => false,
        }
    }

    /// How long until the provider may be asked again, when a request budget is spent.
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<Duration> {
        match self {
            ProviderError::BudgetSpent { until, .. } => Some((*until - now).unsigned_abs()),
            ProviderError::OutcomeUnknown { source, .. } => source.retry_after(now),
            _ => None,
        }
    }

    /// Hetzner's error answer, when there is one.
    pub fn api_error(&self) -> Option<&HetznerApiError> {
        match self {
            ProviderError::OutcomeUnknown { source, .. } => source.api_error(),
            ProviderError::Unauthorized { source, .. }
            | ProviderError::RateLimited { source, .. }
            | ProviderError::Api { source, .. }
            | ProviderError::ActionFailed { source, .. } => Some(source),
            ProviderError::ServerNotFound { source, .. }
            | ProviderError::VswitchNotFound { source, .. } => source.as_ref(),
            ProviderError::BudgetSpent { source, .. } => source.as_deref(),
            _ => None,
        }
    }
}

/// A 4xx answer that says the request itself is refused: 400, 401, 403 (except Robot's
/// `RATE_LIMIT_EXCEEDED`, a rate limit, and `BLOCKED`, an address block that ends), 404, 405,
/// 422, and 409 except the codes that mean "busy now" (`VSWITCH_IN_PROCESS`, Cloud `conflict`
/// and `locked`, `RESET_MANUAL_ACTIVE`). 408, 423, 429 and every 5xx are transient.
fn is_permanent_answer(answer: &HetznerApiError) -> bool {
    const TRANSIENT_CODES: &[&str] = &[
        "RATE_LIMIT_EXCEEDED",
        "rate_limit_exceeded",
        "BLOCKED",
        "VSWITCH_IN_PROCESS",
        "conflict",
        "locked",
        "RESET_MANUAL_ACTIVE",
        "maintenance",
        "timeout",
    ];
    (400..500).contains(&answer.status)
        && !matches!(answer.status, 408 | 423 | 429)
        && !TRANSIENT_CODES.contains(&answer.code.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_leave_the_cause_to_the_source_chain() {
        let error = ProviderError::Api {
            provider: ProviderKind::HetznerRobot,
            operation: "activate rescue on server 321".into(),
            source: HetznerApiError {
                status: 409,
                code: "BOOT_ALREADY_ENABLED".into(),
                message: "Boot already enabled".into(),
                correlation_id: None,
            },
        };
        assert_eq!(
            error.to_string(),
            "hetzner_robot refused to activate rescue on server 321"
        );
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(
            source,
            "HTTP 409 BOOT_ALREADY_ENABLED: Boot already enabled"
        );
        assert_eq!(error.code(), Some("BOOT_ALREADY_ENABLED"));
        assert_eq!(error.message(), Some("Boot already enabled"));
    }

    fn answer(status: u16, code: &str) -> HetznerApiError {
        HetznerApiError {
            status,
            code: code.into(),
            message: String::new(),
            correlation_id: None,
        }
    }

    #[test]
    fn refusals_are_permanent_and_busy_answers_are_not() {
        let api = |status, code| ProviderError::Api {
            provider: ProviderKind::HetznerRobot,
            operation: "x".into(),
            source: answer(status, code),
        };
        for (status, code) in [
            (404, "RESET_NOT_AVAILABLE"),
            (404, "BOOT_NOT_AVAILABLE"),
            (400, "INVALID_INPUT"),
            (403, "forbidden"),
            (403, "token_readonly"),
            (409, "VSWITCH_VLAN_NOT_UNIQUE"),
        ] {
            assert!(api(status, code).is_permanent(), "{status} {code}");
        }
        for (status, code) in [
            (409, "VSWITCH_IN_PROCESS"),
            (403, "RATE_LIMIT_EXCEEDED"),
            (403, "BLOCKED"),
            (423, "locked"),
            (409, "conflict"),
            (429, "rate_limit_exceeded"),
            (500, "INTERNAL_ERROR"),
            (502, "http_502"),
        ] {
            assert!(!api(status, code).is_permanent(), "{status} {code}");
        }
    }

    #[test]
    fn missing_key_error_says_what_to_do() {
        let error = ProviderError::SshKeyMissing {
            provider: ProviderKind::HetznerCloud,
            fingerprint: "aa:bb".into(),
            stale_key_name: Some("talos-manager".into()),
            how: "Cloud console → Security → SSH keys",
        };
        let text = error.to_string();
        assert!(text.contains("aa:bb"), "{text}");
        assert!(
            text.contains("\"talos-manager\" has another fingerprint"),
            "{text}"
        );
        assert!(
            text.contains("upload the public half of SSH_PRIVATE_KEY"),
            "{text}"
        );
    }
}
