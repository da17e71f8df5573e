//! The one place where errors become HTTP responses: a status, a stable `code`, a message fit
//! for users, and every validation issue. Internal detail goes to the log only.

use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use talos_manager_api_types::{ErrorBody, IssueBody};
use talos_manager_core::bootstrap::BootstrapPlanError;
use talos_manager_core::cluster_health::ClusterHealthError;
use talos_manager_core::clusters::{ClusterAccessError, ClusterSecretsError};
use talos_manager_core::ids::InvalidServerRef;
use talos_manager_core::image_factory::ImageFactoryError;
use talos_manager_core::jobs::{LabelTaintRuleError, QueueClusterBootstrapError};
use talos_manager_core::lifecycle::{BootstrapRefusal, RollingPlanError};
use talos_manager_core::node_config::{AssignMachineConfigError, NodeConfigError};
use talos_manager_core::rescue::RescueError;
use talos_manager_core::runbooks::RunbookError;
use talos_manager_core::schematics::RegisterSchematicError;
use talos_manager_core::server_update::ServerUpdateError;
use talos_manager_core::{ProviderError, StoreError, ValidationError, error_chain};

/// An error answer of the admin API.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub(crate) enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Credentials are missing or wrong.
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        /// How to authenticate: `Basic realm="talos-manager"`; sent only when the request
        /// carried Basic credentials.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// No such thing.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// It conflicts with what exists, or is still in use.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The input is well-formed but not valid: see `issues`.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// A failure of talos-manager; the log has the details.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// An upstream service (the Image Factory) failed or could not be reached.
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
    /// The database or a provider is unavailable, or a provider's request budget is spent;
    /// retry later.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds until a provider's request budget allows the call again, when one is spent.
        #[oai(header = "Retry-After")]
        Option<String>,
    ),
}

/// The result of every admin API operation.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
        issues: Vec::new(),
    })
}

/// The realm browsers show when asking for the dashboard password.
pub(crate) const WWW_AUTHENTICATE: &str = "Basic realm=\"talos-manager\"";

impl ApiError {
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::Unauthorized(
            body(
                "unauthorized",
                "credentials are missing or wrong: send a bearer token (`talos-manager token create`) \
                 or the BASIC_AUTH_PASSWORD",
            ),
            WWW_AUTHENTICATE.to_owned(),
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(body("not_found", message))
    }

    pub(crate) fn invalid(what: &str, issues: Vec<IssueBody>) -> ApiError {
        ApiError::Invalid(Json(ErrorBody {
            code: "invalid".into(),
            message: format!("invalid {what}"),
            issues,
        }))
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Conflict(body("conflict", message))
    }

    /// 409 `cluster_busy`: a job holds the cluster's exclusive scope; `message` says which.
    pub(crate) fn cluster_busy(message: String) -> ApiError {
        ApiError::Conflict(body("cluster_busy", message))
    }

    /// 409 `bootstrap_running`: a bootstrap of `server` is already queued or running.
    pub(crate) fn bootstrap_running(server: &str) -> ApiError {
        ApiError::Conflict(body(
            "bootstrap_running",
            format!(
                "a bootstrap of server {server} is already queued or running: follow or \
                 cancel it first"
            ),
        ))
    }

    /// A failure whose details must not reach the client.
    pub(crate) fn internal(error: &(dyn std::error::Error + 'static)) -> ApiError {
        tracing::error!(error = %error_chain(error), "request failed");
        ApiError::Internal(body(
            "internal",
            "internal error; the service log has the details",
        ))
    }
}

fn bad_request(error: poem::Error) -> ApiError {
    ApiError::BadRequest(body("bad_request", error.to_string()))
}

impl From<QueueClusterBootstrapError> for ApiError {
    fn from(error: QueueClusterBootstrapError) -> ApiError {
        match error {
            QueueClusterBootstrapError::AlreadyBootstrapped { .. } => {
                ApiError::Conflict(body("cluster_bootstrapped", error.to_string()))
            }
            QueueClusterBootstrapError::InProgress { .. } => {
                ApiError::Conflict(body("bootstrap_running", error.to_string()))
            }
            QueueClusterBootstrapError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
            StoreError::Conflict { entity, .. } => {
                ApiError::conflict(format!("a {entity} with that name or id exists already"))
            }
            StoreError::InUse { .. } => ApiError::Conflict(body("in_use", error.to_string())),
            StoreError::MissingReference { entity, .. } => ApiError::invalid(
                entity,
                vec![IssueBody {
                    path: String::new(),
                    message: format!("{entity} refers to something that does not exist"),
                }],
            ),
            StoreError::Connect { .. } | StoreError::Query { .. } => {
                tracing::error!(error = %error_chain(&error), "database failure");
                ApiError::Unavailable(
                    body("unavailable", "the database is unavailable; retry later"),
                    None,
                )
            }
            _ => ApiError::internal(&error),
        }
    }
}

impl From<InvalidServerRef> for ApiError {
    fn from(error: InvalidServerRef) -> ApiError {
        ApiError::not_found(error.to_string())
    }
}

impl From<LabelTaintRuleError> for ApiError {
    fn from(error: LabelTaintRuleError) -> ApiError {
        match error {
            LabelTaintRuleError::Invalid(error) => error.into(),
            LabelTaintRuleError::Store(error) => error.into(),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> ApiError {
        ApiError::invalid(
            error.what,
            error
                .issues
                .into_iter()
                .map(|issue| IssueBody {
                    path: issue.path,
                    message: issue.message,
                })
                .collect(),
        )
    }
}

impl From<ImageFactoryError> for ApiError {
    fn from(error: ImageFactoryError) -> ApiError {
        match &error {
            ImageFactoryError::Status {
                status: 400,
                message,
                ..
            } => ApiError::invalid(
                "schematic",
                vec![IssueBody {
                    path: "body".into(),
                    message: format!("refused by the image factory: {message}"),
                }],
            ),
            ImageFactoryError::Unreachable { url, .. } => {
                tracing::warn!(error = %error_chain(&error), "image factory unreachable");
                ApiError::BadGateway(body(
                    "bad_gateway",
                    format!(
                        "the image factory could not be reached at {url}; check \
                         TALOS_IMAGE_FACTORY_URL and the network, then retry"
                    ),
                ))
            }
            ImageFactoryError::Status { .. }
            | ImageFactoryError::UnexpectedAnswer { .. }
            | ImageFactoryError::InvalidSchematicId { .. } => {
                tracing::warn!(error = %error_chain(&error), "image factory failed");
                ApiError::BadGateway(body("bad_gateway", error.to_string()))
            }
            _ => ApiError::internal(&error),
        }
    }
}

impl From<RegisterSchematicError> for ApiError {
    fn from(error: RegisterSchematicError) -> ApiError {
        match error {
            RegisterSchematicError::NoHost => ApiError::invalid(
                "schematic",
                vec![IssueBody {
                    path: "body".into(),
                    message: error.to_string(),
                }],
            ),
            RegisterSchematicError::Body(error) => ValidationError {
                what: "schematic",
                issues: vec![error.issue()],
            }
            .into(),
            RegisterSchematicError::Factory(error) => error.into(),
            RegisterSchematicError::Store(error) => error.into(),
        }
    }
}

/// Renders errors that poem raises itself (no route, wrong method, failed authentication, a
/// body that does not parse) in the API's JSON shape. Answers made from [`ApiError`] pass as
/// they are, except that a 401 keeps `WWW-Authenticate: Basic` only when the request sent
/// Basic credentials: otherwise a browser would prompt for the password and then attach it
/// to every request to this origin, cross-site form posts included (review #6).
pub(crate) async fn render_poem_errors<E: poem::Endpoint>(
    next: E,
    request: poem::Request,
) -> poem::Result<poem::Response> {
    let sent_basic = request
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim_start().get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "));
    let mut response = render_errors(next, request).await?;
    if response.status() == StatusCode::UNAUTHORIZED && !sent_basic {
        response
            .headers_mut()
            .remove(poem::http::header::WWW_AUTHENTICATE);
    }
    Ok(response)
}

async fn render_errors<E: poem::Endpoint>(
    next: E,
    request: poem::Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse as _;
    let error = match next.call(request).await {
        Ok(response) => return Ok(response.into_response()),
        Err(error) if error.is_from_response() => return Ok(error.into_response()),
        Err(error) => error,
    };
    let status = error.status();
    let api_error = match status {
        StatusCode::UNAUTHORIZED => ApiError::unauthorized(),
        StatusCode::NOT_FOUND => ApiError::not_found("no such API endpoint"),
        _ if status.is_client_error() => {
            let code = if status == StatusCode::METHOD_NOT_ALLOWED {
                "method_not_allowed"
            } else {
                "bad_request"
            };
            let mut response = ApiError::BadRequest(body(code, error.to_string())).into_response();
            response.set_status(status);
            return Ok(response);
        }
        _ => ApiError::internal(&error),
    };
    Ok(api_error.into_response())
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> ApiError {
        match &error {
            ProviderError::Unauthorized { provider, .. } => ApiError::invalid(
                "provider account",
                vec![IssueBody {
                    path: "secret".into(),
                    message: format!("{provider} did not accept these credentials"),
                }],
            ),
            ProviderError::ServerNotFound { .. } | ProviderError::VswitchNotFound { .. } => {
                ApiError::not_found(error.to_string())
            }
            // Refused for what it is (a 4xx such as a read-only token or a reset type the server
            // does not offer): trying again unchanged cannot help, so the answer does not say so.
            ProviderError::Api { .. } | ProviderError::NoAutomaticReset { .. }
                if error.is_permanent() =>
            {
                tracing::warn!(error = %error_chain(&error), "provider refused the call");
                ApiError::BadGateway(body("provider_refused", error_chain(&error).to_string()))
            }
            ProviderError::OutcomeUnknown { .. } => {
                tracing::warn!(error = %error_chain(&error), "provider call outcome unknown");
                ApiError::BadGateway(body(
                    "provider_outcome_unknown",
                    error_chain(&error).to_string(),
                ))
            }
            ProviderError::Unreachable { .. }
            | ProviderError::RateLimited { .. }
            | ProviderError::BudgetSpent { .. }
            | ProviderError::Api { .. }
            | ProviderError::VswitchChangeUnfinished { .. }
            | ProviderError::InvalidResponse { .. } => {
                tracing::warn!(error = %error_chain(&error), "provider call failed");
                let retry_after = error
                    .retry_after(time::OffsetDateTime::now_utc())
                    .map(|wait| wait.as_secs().max(1).to_string());
                ApiError::Unavailable(
                    body(
                        "provider_unavailable",
                        format!("{}; retry later", error_chain(&error)),
                    ),
                    retry_after,
                )
            }
            _ => ApiError::internal(&error),
        }
    }
}

impl From<RescueError> for ApiError {
    fn from(error: RescueError) -> ApiError {
        match error {
            RescueError::NoSshKey
            | RescueError::InvalidSshKey(_)
            | RescueError::InvalidPublicKey(_) => {
                ApiError::Conflict(body("ssh_key_missing", error_chain(&error).to_string()))
            }
            RescueError::Store(error) => error.into(),
            RescueError::Provider { source, .. } => (*source).into(),
        }
    }
}

impl From<BootstrapPlanError> for ApiError {
    fn from(error: BootstrapPlanError) -> ApiError {
        let issue = |path: &str, error: &BootstrapPlanError| {
            ApiError::invalid(
                "bootstrap choices",
                vec![IssueBody {
                    path: path.to_owned(),
                    message: error.to_string(),
                }],
            )
        };
        match error {
            BootstrapPlanError::Store(error) => error.into(),
            BootstrapPlanError::NotProbed { .. } => {
                ApiError::Conflict(body("not_in_rescue_yet", error.to_string()))
            }
            BootstrapPlanError::NoSuchDisk { .. }
            | BootstrapPlanError::NoDisk { .. }
            | BootstrapPlanError::RaidMember { .. } => issue("disk", &error),
            BootstrapPlanError::NoImage { .. } => issue("schematic", &error),
            BootstrapPlanError::NoHost => ApiError::conflict(error.to_string()),
            BootstrapPlanError::Lsblk { .. } => ApiError::internal(&error),
        }
    }
}

impl From<BootstrapRefusal> for ApiError {
    fn from(error: BootstrapRefusal) -> ApiError {
        match error {
            BootstrapRefusal::LiveNode { .. } => {
                ApiError::Conflict(body("live_node", error.to_string()))
            }
            BootstrapRefusal::Quorum { .. } => {
                ApiError::Conflict(body("live_node", error_chain(&error).to_string()))
            }
            BootstrapRefusal::Store(error) => error.into(),
            BootstrapRefusal::Access(_) => ApiError::internal(&error),
        }
    }
}

impl From<ServerUpdateError> for ApiError {
    fn from(error: ServerUpdateError) -> ApiError {
        match error {
            ServerUpdateError::Invalid(invalid) => invalid.into(),
            ServerUpdateError::Store(store) => store.into(),
            ServerUpdateError::BuildProvider { source, .. }
            | ServerUpdateError::Rename { source, .. }
            | ServerUpdateError::LeaveVswitch { source, .. }
            | ServerUpdateError::JoinVswitch { source, .. } => source.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<NodeConfigError> for ApiError {
    fn from(error: NodeConfigError) -> ApiError {
        match error {
            NodeConfigError::NotConfigured { .. } => ApiError::not_found(error.to_string()),
            NodeConfigError::NoCluster { .. } => ApiError::conflict(error.to_string()),
            NodeConfigError::Store(error) => error.into(),
            NodeConfigError::Generate { .. } => ApiError::invalid(
                "machine config",
                vec![IssueBody {
                    path: "config".into(),
                    message: error_chain(&error).to_string(),
                }],
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<AssignMachineConfigError> for ApiError {
    fn from(error: AssignMachineConfigError) -> ApiError {
        match error {
            AssignMachineConfigError::Invalid(invalid) => invalid.into(),
            AssignMachineConfigError::Store(error) => error.into(),
        }
    }
}

impl From<RunbookError> for ApiError {
    fn from(error: RunbookError) -> ApiError {
        match error {
            RunbookError::NotConfigured { .. } => ApiError::not_found(error.to_string()),
            RunbookError::Store(error) => error.into(),
        }
    }
}

impl From<RollingPlanError> for ApiError {
    fn from(error: RollingPlanError) -> ApiError {
        match error {
            RollingPlanError::Store(error) => error.into(),
            RollingPlanError::Secrets { .. } => ApiError::internal(&error),
            other => ApiError::invalid(
                "selection",
                vec![IssueBody {
                    path: String::new(),
                    message: other.to_string(),
                }],
            ),
        }
    }
}

impl From<ClusterSecretsError> for ApiError {
    fn from(error: ClusterSecretsError) -> ApiError {
        match error {
            ClusterSecretsError::Invalid(invalid) => invalid.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<ClusterAccessError> for ApiError {
    fn from(error: ClusterAccessError) -> ApiError {
        match error {
            ClusterAccessError::Store(error) => error.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<ClusterHealthError> for ApiError {
    fn from(error: ClusterHealthError) -> ApiError {
        match error {
            ClusterHealthError::Store(error) => error.into(),
            ClusterHealthError::Bundle(error) => error.into(),
            other => ApiError::internal(&other),
        }
    }
}
