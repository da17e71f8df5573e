//! The provider's errors. Each becomes Terraform diagnostics in exactly one place,
//! [`crate::diagnostics`].

use talos_manager_api_types::Issue;

/// Why an operation of the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the `endpoint` argument nor `TALOS_MANAGER_ENDPOINT` is set.
    #[error("the talos-manager endpoint is not set")]
    MissingEndpoint,
    /// The endpoint is not an http(s) URL.
    #[error("the talos-manager endpoint {endpoint:?} is not an http(s) URL")]
    InvalidEndpoint {
        /// What was given.
        endpoint: String,
    },
    /// Neither a token nor a password is set.
    #[error("no credentials for talos-manager")]
    MissingCredentials,
    /// A provider argument is unknown at plan time (it refers to something not created yet).
    #[error("the provider's {argument} is not known yet")]
    UnknownProviderArgument {
        /// The argument.
        argument: &'static str,
    },
    /// A resource was used before `ConfigureProvider` (a bug of the caller).
    #[error("the provider is not configured")]
    NotConfigured,
    /// No connection to the service.
    #[error("talos-manager at {endpoint} is unreachable")]
    Unreachable {
        /// The base URL.
        endpoint: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// The service refused the credentials.
    #[error("talos-manager at {endpoint} refused the credentials")]
    Unauthorized {
        /// The base URL.
        endpoint: String,
    },
    /// The service answered with an error.
    #[error("talos-manager answered {status} to {method} {path}: {message}")]
    Api {
        /// The request's method.
        method: &'static str,
        /// The request's path under `/api/v1`.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The stable error code (`invalid`, `not_found`, `conflict`, …).
        code: String,
        /// The service's message.
        message: String,
        /// Problems with the input, each with its location.
        issues: Vec<Issue>,
    },
    /// The service answered something this provider cannot read.
    #[error("unexpected answer from talos-manager to {method} {path}: {detail}")]
    UnexpectedAnswer {
        /// The request's method.
        method: &'static str,
        /// The request's path under `/api/v1`.
        path: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The configuration is invalid (checked before calling the service).
    #[error("invalid {what}")]
    Invalid {
        /// What was checked.
        what: &'static str,
        /// Every problem, each with its location.
        issues: Vec<Issue>,
    },
    /// No object has the id or name asked for (import, data source lookups).
    #[error("no {what} {id:?} exists in talos-manager")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// Terraform named a resource or data source type this provider does not have.
    #[error("this provider has no {kind} named {type_name:?}")]
    UnknownType {
        /// `resource` or `data source`.
        kind: &'static str,
        /// The name given.
        type_name: String,
    },
    /// A value from Terraform could not be decoded (a protocol mismatch).
    #[error("could not decode the {what} Terraform sent")]
    Decode {
        /// Which value.
        what: &'static str,
        /// Why.
        #[source]
        source: crate::value::DecodeError,
    },
    /// Terraform stopped the provider (Ctrl-C) while the call was in flight.
    #[error("stopped by Terraform before talos-manager answered")]
    Stopped,
    /// A bootstrap job ended without installing Talos (failed or cancelled).
    #[error("the bootstrap of server {server_id} {status} (job {job_id})")]
    BootstrapFailed {
        /// The server.
        server_id: String,
        /// The bootstrap job.
        job_id: String,
        /// `failed` or `cancelled`.
        status: String,
        /// Why, as the job recorded it.
        reason: Option<String>,
    },
    /// A bootstrap did not get as far as asked within the resource's timeout.
    #[error("the bootstrap of server {server_id} (job {job_id}) did not finish within {timeout}")]
    BootstrapTimeout {
        /// The server.
        server_id: String,
        /// The bootstrap job, still going on in the service.
        job_id: String,
        /// The timeout, as configured.
        timeout: String,
        /// What was waited for.
        waiting_for: &'static str,
        /// Where the server was when the time ran out.
        server_state: Option<String>,
    },
    /// Terraform stopped the provider (Ctrl-C) while a bootstrap was being waited for.
    #[error(
        "stopped by Terraform while waiting for the bootstrap of server {server_id} (job {job_id})"
    )]
    BootstrapInterrupted {
        /// The server.
        server_id: String,
        /// The bootstrap job, still going on in the service.
        job_id: String,
    },
    /// A job run by an apply or a destroy (an upgrade, a reset) failed or was cancelled.
    #[error("{operation} {} (job {job_id})", job_outcome(*.cancelled))]
    JobFailed {
        /// The operation, capitalised for a summary: `Upgrade`, `Reset`.
        kind: &'static str,
        /// What the job did, e.g. "the upgrade of cluster 1 to v1.11.2".
        operation: String,
        /// The job.
        job_id: String,
        /// It was cancelled (else it failed).
        cancelled: bool,
        /// Why, as the job recorded it (its summary).
        reason: Option<String>,
        /// What becomes of the resource, and what to do.
        next: &'static str,
    },
    /// A job run by an apply or a destroy did not end within the resource's timeout.
    #[error("{operation} (job {job_id}) did not finish within {timeout}")]
    JobTimeout {
        /// The operation, capitalised for a summary.
        kind: &'static str,
        /// What the job does.
        operation: String,
        /// The job, still going on in the service.
        job_id: String,
        /// The timeout, as configured.
        timeout: String,
        /// What becomes of the resource, and what to do.
        next: &'static str,
    },
    /// Terraform stopped the provider (Ctrl-C) while a job was being waited for.
    #[error("stopped by Terraform while waiting for {operation} (job {job_id})")]
    JobInterrupted {
        /// What the job does.
        operation: String,
        /// The job, still going on in the service.
        job_id: String,
        /// What becomes of the resource, and what to do.
        next: &'static str,
    },
    /// Something a job of the service does (one the provider did not queue) did not happen
    /// within the resource's timeout.
    #[error("{operation} did not finish within {timeout}")]
    WaitTimeout {
        /// What was waited for, e.g. "the bootstrap of cluster 1".
        operation: String,
        /// The timeout, as configured.
        timeout: String,
        /// Where to follow it.
        follow: String,
        /// What becomes of the resource, and what to do.
        next: &'static str,
    },
    /// A bootstrapped cluster did not become healthy within the resource's timeout.
    #[error("cluster {cluster_id} did not become healthy within {timeout}")]
    NotHealthy {
        /// The cluster.
        cluster_id: String,
        /// The timeout, as configured.
        timeout: String,
        /// The last check's status (`degraded`, `unreachable`, ...).
        status: String,
        /// The last check's reasons.
        reasons: Vec<String>,
        /// What becomes of the resource, and what to do.
        next: &'static str,
    },
    /// The object exists in the service but is not what was asked for (a bootstrap that
    /// failed or timed out): Terraform keeps `state` and marks it tainted, so the next apply
    /// replaces it.
    #[error("{type_name} was created but is not ready")]
    Incomplete {
        /// The resource type.
        type_name: &'static str,
        /// The object as far as it got.
        state: crate::value::Object,
        /// Why it is not ready.
        #[source]
        error: Box<Error>,
    },
    /// The resource cannot change in place and Terraform asked it to (a provider bug: the
    /// attribute should be force-new).
    #[error("{type_name} cannot be changed in place")]
    UpdateUnsupported {
        /// The resource type.
        type_name: &'static str,
    },
}

/// How a job that did not succeed ended, for messages.
fn job_outcome(cancelled: bool) -> &'static str {
    if cancelled { "was cancelled" } else { "failed" }
}
