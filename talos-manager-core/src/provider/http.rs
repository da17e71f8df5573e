//! The one place an HTTP client is built ([`http_client`]) and the bounded retry policy
//! ([`RetryPolicy`]) both Hetzner clients share.
//!
//! Requests are plain values ([`ApiRequest`]) built by the pure `api.rs` modules; [`Transport`]
//! sends them with authentication, retries what is worth retrying with exponential back-off and
//! jitter (the `backon` crate), and turns what is left into a [`ProviderError`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::budget::{AccountBudgets, Clock, HourlyLimit, Spent};
use super::{HetznerApiError, ProviderError, ProviderKind};
use crate::Secret;

/// The budget name of a Cloud project's one request budget.
const CLOUD_BUDGET: &str = "*";

/// The `User-Agent` of every request talos-manager sends to a provider.
pub const USER_AGENT: &str = concat!("talos-manager/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTP client for provider APIs: rustls, a user agent, a connect timeout and a
/// timeout for each whole request, taken from `policy`.
///
/// This is the only place in the code base that builds a `reqwest::Client` (clippy bans
/// `reqwest::Client::new`), so no request to a provider can hang forever.
pub fn http_client(policy: &RetryPolicy) -> Result<reqwest::Client, ProviderError> {
    client_builder(policy.connect_timeout, policy.request_timeout)
        .build()
        .map_err(|source| ProviderError::HttpClient { source })
}

/// The start of every client: rustls, our user agent and both timeouts. Clients with their
/// own TLS trust (the Kubernetes client) add it to this builder.
pub(crate) fn client_builder(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
}

/// How long to wait and how often to try again.
///
/// A request is sent at most [`max_attempts`](Self::max_attempts) times. Between attempts the
/// delay grows exponentially from `min_delay` to `max_delay`, with jitter. What is retried
/// blindly, for every method, is only what the API refused without carrying it out: connection
/// failures (nothing was sent), Cloud 429 `rate_limit_exceeded` (after waiting for the
/// project budget to refill, see `budget.rs`) and 409 `conflict`, and Cloud 423 `locked` for
/// the power actions that follow `enable_rescue`. Robot's 403 `RATE_LIMIT_EXCEEDED` is not
/// retried: its budgets are hourly, so the endpoint is recorded as spent until the answer's
/// `interval` has passed ([`ProviderError::BudgetSpent`]). Timeouts, broken answers and 5xx answers are retried for `GET`s only:
/// a state-changing call that got one may have been carried out (the backend did the work, the
/// gateway in front of it failed), so the client reads the state back instead and acts on it
/// (see `docs/hetzner.md`). Credentials refused (401) are never retried: Robot blocks the
/// address after three failed logins.
///
/// A Robot vSwitch is locked while a membership change runs (409 `VSWITCH_IN_PROCESS`); a
/// change that meets the lock is tried again every
/// [`vswitch_lock_poll`](Self::vswitch_lock_poll) for up to
/// [`vswitch_lock_wait`](Self::vswitch_lock_wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests sent at most, the first one included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub min_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for one whole request, answer included.
    pub request_timeout: Duration,
    /// How often a Cloud action is polled while it runs.
    pub action_poll_interval: Duration,
    /// How long to wait for a Cloud action before giving up.
    pub action_timeout: Duration,
    /// How long a Robot vSwitch change waits, in total, for a running change of the same
    /// vSwitch to finish (409 `VSWITCH_IN_PROCESS`), and for its own removal to finish.
    pub vswitch_lock_wait: Duration,
    /// How often a locked Robot vSwitch is tried again.
    pub vswitch_lock_poll: Duration,
    /// How long a request waits for a spent request budget that refills sooner than this (a
    /// Cloud project's budget refills one request per second); a budget spent for longer (a
    /// Robot hourly limit) fails the request at once with [`ProviderError::BudgetSpent`].
    pub budget_wait: Duration,
    /// How long sync uses a Robot vSwitch's members as read, before it reads them again
    /// (`GET /vswitch/{id}`, 500 per hour); our own changes to a vSwitch invalidate them.
    pub vswitch_cache_ttl: Duration,
}

impl Default for RetryPolicy {
    /// Values for the real APIs: 6 attempts, 2 s growing to 60 s (Robot's budgets are hourly and
    /// community clients start their back-off at a few seconds), 10 s to connect, 30 s per
    /// request, actions polled every 500 ms for up to 5 minutes (what hcloud-go does), a locked
    /// vSwitch tried every 15 s for up to 5 minutes (what community.hrobot and hrobot-rs do), a
    /// budget that refills within 5 s waited for, vSwitch members kept for 10 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            action_poll_interval: Duration::from_millis(500),
            action_timeout: Duration::from_secs(300),
            vswitch_lock_wait: Duration::from_secs(300),
            vswitch_lock_poll: Duration::from_secs(15),
            budget_wait: Duration::from_secs(5),
            vswitch_cache_ttl: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// Millisecond delays and a 2 s request timeout: for talking to the fakes on loopback.
    pub fn for_fakes() -> Self {
        RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            action_poll_interval: Duration::from_millis(2),
            action_timeout: Duration::from_secs(5),
            vswitch_lock_wait: Duration::from_secs(5),
            vswitch_lock_poll: Duration::from_millis(20),
            budget_wait: Duration::from_secs(2),
            vswitch_cache_ttl: Duration::from_secs(600),
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// Robot: HTTP Basic with the web-service user.
    Basic {
        user: String,
        password: Secret<String>,
    },
    /// Cloud: `Authorization: Bearer <project token>`.
    Bearer { token: Secret<String> },
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Empty,
    /// `application/x-www-form-urlencoded`; repeated keys for arrays (`server[]=1&server[]=2`).
    Form(Vec<(String, String)>),
    Json(serde_json::Value),
}

/// One API call as a value: built without I/O, sent by [`Transport`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    /// Path below the base URL, starting with `/`.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Body,
    /// What the call does, for error messages: "list servers", "reset server 321".
    pub(crate) operation: String,
    /// Retry Cloud 423 `locked` (the server is busy right after `enable_rescue`).
    pub(crate) retry_locked: bool,
    /// The endpoint's hourly limit (Robot); Cloud's one project budget comes from its answers.
    pub(crate) limit: Option<HourlyLimit>,
}

impl ApiRequest {
    pub(crate) fn new(
        method: Method,
        path: impl Into<String>,
        operation: impl Into<String>,
    ) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::Empty,
            operation: operation.into(),
            retry_locked: false,
            limit: None,
        }
    }

    /// The endpoint's documented hourly limit: `endpoint` as the documentation names it.
    pub(crate) fn limit(mut self, endpoint: &'static str, per_hour: u32) -> Self {
        self.limit = Some(HourlyLimit { endpoint, per_hour });
        self
    }

    pub(crate) fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    pub(crate) fn json(mut self, value: serde_json::Value) -> Self {
        self.body = Body::Json(value);
        self
    }

    pub(crate) fn retry_locked(mut self) -> Self {
        self.retry_locked = true;
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) body: Vec<u8>,
}

/// Turns an error answer's status, body and correlation id into a [`HetznerApiError`].
pub(crate) type ErrorParser = fn(u16, &[u8], Option<String>) -> HetznerApiError;

/// Sends [`ApiRequest`]s to one API with its base URL, credentials and retry policy.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub(crate) provider: ProviderKind,
    client: reqwest::Client,
    base_url: String,
    auth: Auth,
    pub(crate) policy: RetryPolicy,
    parse_error: ErrorParser,
    /// The account's request budgets, shared by its clients in this process.
    pub(crate) budgets: Arc<AccountBudgets>,
    /// What the budgets and caches count time on.
    pub(crate) clock: Clock,
}

enum Failure {
    Api(HetznerApiError),
    Transport(reqwest::Error),
    /// Not sent: the budget is spent until then.
    Budget(&'static str, OffsetDateTime),
}

impl Transport {
    pub(crate) fn new(
        provider: ProviderKind,
        base_url: &str,
        auth: Auth,
        policy: RetryPolicy,
        parse_error: ErrorParser,
        account_key: &str,
    ) -> Result<Self, ProviderError> {
        Ok(Transport {
            provider,
            client: http_client(&policy)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            policy,
            parse_error,
            budgets: AccountBudgets::of_account(&format!("{provider}\n{account_key}")),
            clock: Clock::system(),
        })
    }

    /// Counts one request against its budget, waiting up to the policy's `budget_wait` for a
    /// budget that refills that soon (once: a clock that does not move does not refill it).
    async fn admit(&self, request: &ApiRequest) -> Result<(), Failure> {
        let check = |now: OffsetDateTime| -> Result<(), (&'static str, Spent)> {
            match request.limit {
                Some(limit) => self
                    .budgets
                    .reserve(limit, now)
                    .map_err(|spent| (limit.endpoint, spent)),
                None => match self.budgets.spent_until(CLOUD_BUDGET, now) {
                    Some(until) => Err((CLOUD_BUDGET, Spent { until })),
                    None => Ok(()),
                },
            }
        };
        let now = self.clock.now();
        let Err((endpoint, spent)) = check(now) else {
            return Ok(());
        };
        let wait = spent.until - now;
        if wait > self.policy.budget_wait {
            return Err(Failure::Budget(endpoint, spent.until));
        }
        tracing::info!(
            provider = %self.provider, operation = %request.operation, endpoint, %wait,
            "request budget spent; waiting for it to refill"
        );
        tokio::time::sleep(wait.unsigned_abs()).await;
        check(self.clock.now()).map_err(|(endpoint, spent)| Failure::Budget(endpoint, spent.until))
    }

    /// Records what a rate-limit answer or Cloud's `RateLimit-*` headers say about the budget.
    fn record_budget(
        &self,
        request: &ApiRequest,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) {
        let now = self.clock.now();
        match self.provider {
            ProviderKind::HetznerRobot => {
                let Some(limit) = request.limit else { return };
                if status != 403 {
                    return;
                }
                let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else {
                    return;
                };
                if answer["error"]["code"] != "RATE_LIMIT_EXCEEDED" {
                    return;
                }
                let interval = answer["error"]["interval"].as_u64().unwrap_or(3600);
                let until = now + Duration::from_secs(interval);
                tracing::warn!(
                    endpoint = limit.endpoint, %until,
                    "Robot says the hourly request budget is spent; nothing is sent to this \
                     endpoint until then"
                );
                self.budgets.spent(limit.endpoint, until);
            }
            ProviderKind::HetznerCloud => {
                let header = |name: &str| -> Option<i64> {
                    headers.get(name)?.to_str().ok()?.trim().parse().ok()
                };
                let remaining = header("ratelimit-remaining");
                if status != 429 && remaining != Some(0) {
                    return;
                }
                // The project budget refills gradually (one request per second at the real
                // API): spent until the next request comes back, `Reset` (when it is full
                // again) divided by the budget, or a second when the headers say nothing.
                let limit = header("ratelimit-limit").filter(|limit| *limit > 0);
                let reset = header("ratelimit-reset")
                    .and_then(|reset| OffsetDateTime::from_unix_timestamp(reset).ok());
                let until = match (limit, reset) {
                    (Some(limit), Some(reset)) => {
                        now + (reset - now).max(time::Duration::ZERO) / limit as f64
                    }
                    _ if status == 429 => now + Duration::from_secs(1),
                    _ => return,
                };
                self.budgets.spent(CLOUD_BUDGET, until);
            }
        }
    }

    /// Sends the request, retrying within the policy; `Ok` only for a 2xx answer.
    pub(crate) async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, ProviderError> {
        let attempts = AtomicU32::new(0);
        let result = (|| async {
            self.admit(request).await?;
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(request).await
        })
        .retry(self.policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|failure| self.is_retryable(request, failure))
        .notify(|failure, delay| match failure {
            Failure::Api(api_error) => tracing::info!(
                provider = %self.provider, operation = %request.operation, %api_error, ?delay,
                "retrying provider request"
            ),
            Failure::Transport(error) => tracing::info!(
                provider = %self.provider, operation = %request.operation, %error, ?delay,
                "retrying provider request"
            ),
            Failure::Budget(..) => {}
        })
        .await;
        let attempts = attempts.load(Ordering::Relaxed);
        let provider = self.provider;
        let operation = request.operation.clone();
        result.map_err(|failure| match failure {
            Failure::Budget(endpoint, until) => ProviderError::BudgetSpent {
                provider,
                operation,
                endpoint,
                until,
                source: None,
            },
            // Robot's hourly limit: recorded as spent until the answer's `interval` has passed.
            Failure::Api(source)
                if provider == ProviderKind::HetznerRobot && is_rate_limit(&source) =>
            {
                let endpoint = request.limit.map_or(CLOUD_BUDGET, |limit| limit.endpoint);
                let now = self.clock.now();
                ProviderError::BudgetSpent {
                    provider,
                    operation,
                    endpoint,
                    until: self
                        .budgets
                        .spent_until(endpoint, now)
                        .unwrap_or(now + Duration::from_secs(3600)),
                    source: Some(Box::new(source)),
                }
            }
            Failure::Transport(source) if request.method != Method::GET && !source.is_connect() => {
                ProviderError::OutcomeUnknown {
                    provider,
                    operation,
                    source: Box::new(ProviderError::Unreachable {
                        provider,
                        operation: request.operation.clone(),
                        attempts,
                        source,
                    }),
                }
            }
            Failure::Api(source) if request.method != Method::GET && source.status >= 500 => {
                ProviderError::OutcomeUnknown {
                    provider,
                    operation: operation.clone(),
                    source: Box::new(ProviderError::Api {
                        provider,
                        operation,
                        source,
                    }),
                }
            }
            Failure::Transport(source) => ProviderError::Unreachable {
                provider,
                operation,
                attempts,
                source,
            },
            Failure::Api(source) if source.status == 401 => {
                ProviderError::Unauthorized { provider, source }
            }
            Failure::Api(source) if is_rate_limit(&source) => ProviderError::RateLimited {
                provider,
                operation,
                attempts,
                source,
            },
            Failure::Api(source) => ProviderError::Api {
                provider,
                operation,
                source,
            },
        })
    }

    /// Sends the request and parses the 2xx answer's JSON.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
    ) -> Result<T, ProviderError> {
        let response = self.send(request).await?;
        self.parse(request, &response.body)
    }

    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        request: &ApiRequest,
        body: &[u8],
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(body).map_err(|source| ProviderError::InvalidResponse {
            provider: self.provider,
            operation: request.operation.clone(),
            source,
        })
    }

    async fn attempt(&self, request: &ApiRequest) -> Result<ApiResponse, Failure> {
        let url = format!("{}{}", self.base_url, request.path);
        crate::dial_guard::enforce_url("Hetzner API", &url);
        let mut builder = self.client.request(request.method.clone(), url);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        builder = match &self.auth {
            Auth::Basic { user, password } => builder.basic_auth(user, Some(password.expose())),
            Auth::Bearer { token } => builder.bearer_auth(token.expose()),
        };
        builder = match &request.body {
            Body::Empty => builder,
            Body::Form(fields) => builder.form(fields),
            Body::Json(value) => builder.json(value),
        };
        let response = builder.send().await.map_err(Failure::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Failure::Transport)?.to_vec();
        self.record_budget(request, status, &headers, &body);
        tracing::debug!(
            provider = %self.provider, method = %request.method, path = %request.path, status,
            "provider request"
        );
        if (200..300).contains(&status) {
            return Ok(ApiResponse { body });
        }
        let correlation_id = headers
            .get("x-correlation-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Err(Failure::Api((self.parse_error)(
            status,
            &body,
            correlation_id,
        )))
    }

    fn is_retryable(&self, request: &ApiRequest, failure: &Failure) -> bool {
        match failure {
            Failure::Budget(..) => false,
            // A request that may have reached the API is sent again only when repeating it is
            // harmless: a second `power` press would switch a server off again.
            Failure::Transport(error) if error.is_connect() => true,
            Failure::Transport(error) => {
                request.method == Method::GET
                    && (error.is_timeout() || error.is_request() || error.is_body())
            }
            Failure::Api(api_error) => {
                (api_error.status >= 500 && request.method == Method::GET)
                    // Cloud's budget refills every second: the next attempt waits for it.
                    // Robot's is hourly: the answer is recorded, never retried.
                    || (self.provider == ProviderKind::HetznerCloud && is_rate_limit(api_error))
                    || (self.provider == ProviderKind::HetznerCloud && api_error.code == "conflict")
                    || (request.retry_locked && api_error.code == "locked")
            }
        }
    }
}

fn is_rate_limit(api_error: &HetznerApiError) -> bool {
    api_error.code.eq_ignore_ascii_case("rate_limit_exceeded") || api_error.status == 429
}

/// The error for an answer whose body holds no Hetzner error object.
pub(crate) fn unparsed_error(
    status: u16,
    body: &[u8],
    correlation_id: Option<String>,
) -> HetznerApiError {
    let text = String::from_utf8_lossy(body);
    let message: String = text.chars().take(200).collect();
    HetznerApiError {
        status,
        code: format!("http_{status}"),
        message,
        correlation_id,
    }
}
