//! The one place where errors become Terraform diagnostics: a summary, a detail, and an
//! attribute path when the problem is in one attribute (Terraform then shows the HCL line).
//! Validation issues from the service (`issues[]`) and from local checks become one
//! diagnostic per issue.

use talos_manager_api_types::Issue;

use crate::error::Error;
use crate::tfplugin6::attribute_path::{Step, step::Selector};
use crate::tfplugin6::{AttributePath, Diagnostic, diagnostic::Severity};

/// An error diagnostic.
pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error.into(),
        summary: summary.into(),
        detail: detail.into(),
        attribute: None,
    }
}

/// A warning diagnostic.
pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning.into(),
        ..error(summary, detail)
    }
}

/// The path of a top-level attribute.
pub fn attribute_path(name: &str) -> AttributePath {
    AttributePath {
        steps: vec![Step {
            selector: Some(Selector::AttributeName(name.to_owned())),
        }],
    }
}

/// The diagnostics for `error`. `attributes` are the names of the schema's attributes: an
/// issue whose path starts with one of them points at it.
pub fn from_error(error: &Error, attributes: &[&str]) -> Vec<Diagnostic> {
    match error {
        Error::MissingEndpoint => vec![with_path(
            error_diag(
                "Missing talos-manager endpoint",
                "Set `endpoint` in the provider block (e.g. \"https://talos-manager.example.com\"), \
                 or the TALOS_MANAGER_ENDPOINT environment variable.",
            ),
            "endpoint",
        )],
        Error::InvalidEndpoint { endpoint } => vec![with_path(
            error_diag(
                "Invalid talos-manager endpoint",
                format!(
                    "{endpoint:?} is not an http:// or https:// URL, e.g. \
                     \"https://talos-manager.example.com\"."
                ),
            ),
            "endpoint",
        )],
        Error::MissingCredentials => vec![error_diag(
            "Missing talos-manager credentials",
            "Set `token` (an API token from `talos-manager token create NAME`) or the \
             TALOS_MANAGER_TOKEN environment variable; or `password` (the service's \
             BASIC_AUTH_PASSWORD) or TALOS_MANAGER_PASSWORD.",
        )],
        Error::UnknownProviderArgument { argument } => vec![with_path(
            error_diag(
                "Provider argument not known yet",
                format!(
                    "The provider's `{argument}` depends on a value known only after apply. \
                     Use a value known at plan time."
                ),
            ),
            argument,
        )],
        Error::Unreachable { endpoint, source } => vec![error_diag(
            "talos-manager is unreachable",
            format!(
                "Could not reach talos-manager at {endpoint}: {}. Check the provider's \
                 `endpoint` and that the service is running.",
                chain(source)
            ),
        )],
        Error::Unauthorized { endpoint } => vec![error_diag(
            "talos-manager refused the credentials",
            format!(
                "talos-manager at {endpoint} answered 401 Unauthorized. Check the provider's \
                 `token` (TALOS_MANAGER_TOKEN): it must be a token from `talos-manager token \
                 create NAME` that was not revoked; or `password`, the service's \
                 BASIC_AUTH_PASSWORD."
            ),
        )],
        Error::Api {
            message, issues, ..
        } if !issues.is_empty() => issues_diagnostics(&capitalize(message), issues, attributes),
        Error::Invalid { what, issues } => {
            issues_diagnostics(&capitalize(&format!("invalid {what}")), issues, attributes)
        }
        Error::Api { .. }
        | Error::UnexpectedAnswer { .. }
        | Error::NotFound { .. }
        | Error::UnknownType { .. }
        | Error::NotConfigured
        | Error::Stopped
        | Error::UpdateUnsupported { .. } => {
            vec![error_diag(summary(error), chain(error))]
        }
        Error::BootstrapFailed {
            job_id,
            status,
            reason,
            ..
        } => vec![error_diag(
            if status == "cancelled" {
                "Bootstrap cancelled"
            } else {
                "Bootstrap failed"
            },
            format!(
                "{}: {}\n\nThe job's log: GET /api/v1/jobs/{job_id}/log (or the dashboard's \
                 jobs page). Terraform marks the resource tainted: the next apply bootstraps \
                 the server again.",
                capitalize(&error.to_string()),
                reason.as_deref().unwrap_or("no reason was recorded"),
            ),
        )],
        Error::BootstrapTimeout {
            job_id,
            waiting_for,
            server_state,
            ..
        } => vec![error_diag(
            "Bootstrap timed out",
            format!(
                "{} (waiting until {waiting_for}{}). The job goes on in talos-manager: follow \
                 it at GET /api/v1/jobs/{job_id} and its log at GET \
                 /api/v1/jobs/{job_id}/log. Terraform marks the resource tainted: once the job \
                 succeeded, `terraform untaint` keeps it, otherwise the next apply bootstraps \
                 the server again. A longer `timeout` waits longer.",
                capitalize(&error.to_string()),
                server_state
                    .as_ref()
                    .map(|state| format!("; the server's state: {state}"))
                    .unwrap_or_default(),
            ),
        )],
        Error::BootstrapInterrupted { job_id, .. } => vec![error_diag(
            "Interrupted",
            format!(
                "{}. The job goes on in talos-manager: follow it at GET \
                 /api/v1/jobs/{job_id}/log, or cancel it with POST \
                 /api/v1/jobs/{job_id}/cancel. Terraform marks the resource tainted: once the \
                 job succeeded, `terraform untaint` keeps it, otherwise the next apply \
                 bootstraps the server again.",
                capitalize(&error.to_string()),
            ),
        )],
        Error::JobFailed {
            kind,
            job_id,
            cancelled,
            reason,
            next,
            ..
        } => vec![error_diag(
            format!("{kind} {}", if *cancelled { "cancelled" } else { "failed" }),
            format!(
                "{}: {}\n\nThe job's log: GET /api/v1/jobs/{job_id}/log (or the dashboard's \
                 jobs page). {next}",
                capitalize(&error.to_string()),
                reason.as_deref().unwrap_or("no reason was recorded"),
            ),
        )],
        Error::JobTimeout {
            kind, job_id, next, ..
        } => vec![error_diag(
            format!("{kind} timed out"),
            format!(
                "{}. The job goes on in talos-manager: follow it at GET \
                 /api/v1/jobs/{job_id}/log. {next} A longer `timeout` waits longer.",
                capitalize(&error.to_string()),
            ),
        )],
        Error::WaitTimeout { follow, next, .. } => vec![error_diag(
            "Timed out",
            format!(
                "{}. It goes on in talos-manager: follow it at {follow}. {next} A longer \
                 `timeout` waits longer.",
                capitalize(&error.to_string()),
            ),
        )],
        Error::NotHealthy {
            cluster_id,
            status,
            reasons,
            next,
            ..
        } => vec![error_diag(
            "Cluster not healthy",
            format!(
                "{}: the last check said {status}: {}. Check it at GET \
                 /api/v1/clusters/{cluster_id}/health. {next} A longer `timeout` waits longer; \
                 `wait_for_health = false` does not wait.",
                capitalize(&error.to_string()),
                if reasons.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reasons.join("; ")
                },
            ),
        )],
        Error::JobInterrupted { job_id, next, .. } => vec![error_diag(
            "Interrupted",
            format!(
                "{}. The job goes on in talos-manager: follow it at GET \
                 /api/v1/jobs/{job_id}/log, or cancel it with POST \
                 /api/v1/jobs/{job_id}/cancel. {next}",
                capitalize(&error.to_string()),
            ),
        )],
        Error::Incomplete { error, .. } => from_error(error, attributes),
        Error::Decode { .. } => vec![error_diag(
            "Unexpected value from Terraform",
            format!(
                "{}. This is a bug of terraform-provider-talosmanager, or a Terraform version \
                 it does not support.",
                chain(error)
            ),
        )],
    }
}

fn summary(error: &Error) -> String {
    match error {
        Error::Api { code, .. } if code == "not_found" => "Not found in talos-manager".into(),
        Error::Api { code, .. } if code == "conflict" || code == "in_use" => {
            "Conflict in talos-manager".into()
        }
        Error::Api { .. } => "talos-manager refused the request".into(),
        Error::UnexpectedAnswer { .. } => "Unexpected answer from talos-manager".into(),
        Error::NotFound { .. } => "Not found in talos-manager".into(),
        Error::UnknownType { .. } => "Unknown type".into(),
        Error::NotConfigured => "Provider not configured".into(),
        Error::Stopped => "Interrupted".into(),
        Error::UpdateUnsupported { .. } => "Cannot change in place".into(),
        other => capitalize(&other.to_string()),
    }
}

fn issues_diagnostics(summary: &str, issues: &[Issue], attributes: &[&str]) -> Vec<Diagnostic> {
    issues
        .iter()
        .map(|issue| {
            let attribute = issue
                .path
                .split(['.', '['])
                .next()
                .filter(|head| attributes.contains(head));
            match attribute {
                Some(attribute) => {
                    let detail = if issue.path == attribute {
                        capitalize(&issue.message)
                    } else {
                        format!("{}: {}", issue.path, issue.message)
                    };
                    with_path(error_diag(summary, detail), attribute)
                }
                None if issue.path.is_empty() => error_diag(summary, capitalize(&issue.message)),
                None => error_diag(summary, format!("{}: {}", issue.path, issue.message)),
            }
        })
        .collect()
}

fn error_diag(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
    error(summary, detail)
}

fn with_path(mut diagnostic: Diagnostic, attribute: &str) -> Diagnostic {
    diagnostic.attribute = Some(attribute_path(attribute));
    diagnostic
}

/// The error and its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_issues_point_at_their_attributes() {
        let error = Error::Api {
            method: "POST",
            path: "/label-taint-rules".into(),
            status: 422,
            code: "invalid".into(),
            message: "invalid label and taint rule".into(),
            issues: vec![
                Issue::new("labels", "\"a b\" is not a valid label"),
                Issue::new("machine.network", "unknown field"),
            ],
        };
        let diagnostics = from_error(&error, &["labels", "taints"]);
        assert_eq!(diagnostics.len(), 2);
        assert_eq!(diagnostics[0].summary, "Invalid label and taint rule");
        assert_eq!(diagnostics[0].attribute, Some(attribute_path("labels")));
        assert_eq!(diagnostics[0].detail, "\"a b\" is not a valid label");
        assert_eq!(diagnostics[1].attribute, None);
        assert_eq!(diagnostics[1].detail, "machine.network: unknown field");
    }

    #[test]
    fn unauthorized_says_what_to_check() {
        let error = Error::Unauthorized {
            endpoint: "http://127.0.0.1:1".into(),
        };
        let diagnostics = from_error(&error, &[]);
        assert_eq!(
            diagnostics[0].summary,
            "talos-manager refused the credentials"
        );
        assert!(diagnostics[0].detail.contains("token"));
    }
}
