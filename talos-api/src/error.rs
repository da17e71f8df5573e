//! tonic's `Status` as core's [`TalosApiError`]: a status the node sent keeps its code; a status
//! tonic made up on our side (no connection, TLS refused, connection dropped) is
//! [`TalosApiError::Unreachable`].

use std::error::Error as _;
use std::net::SocketAddr;
use std::time::Duration;

use talos_manager_core::error_chain;
use talos_manager_core::talos_api::{TalosApiError, TalosStatusCode};
use tonic::Code;

/// The error for a failed call.
///
/// tonic attaches the underlying error as the source of every status it makes up on the client
/// side (connect errors, TLS errors, HTTP/2 resets, a dropped connection); a status decoded from
/// the node's answer has none. That is the line between "unreachable" and "answered".
pub(crate) fn status_error(
    node: SocketAddr,
    operation: &'static str,
    status: tonic::Status,
) -> TalosApiError {
    if let Some(source) = status.source() {
        return TalosApiError::Unreachable {
            node,
            operation,
            message: error_chain(source).to_string(),
        };
    }
    TalosApiError::Status {
        node,
        operation,
        code: status_code(status.code()),
        message: status.message().to_owned(),
    }
}

/// The codes that change what talos-manager does, the rest by number.
pub(crate) fn status_code(code: Code) -> TalosStatusCode {
    match code {
        Code::NotFound => TalosStatusCode::NotFound,
        Code::PermissionDenied => TalosStatusCode::PermissionDenied,
        Code::Unauthenticated => TalosStatusCode::Unauthenticated,
        Code::Unimplemented => TalosStatusCode::Unimplemented,
        Code::FailedPrecondition => TalosStatusCode::FailedPrecondition,
        Code::InvalidArgument => TalosStatusCode::InvalidArgument,
        Code::Unavailable => TalosStatusCode::Unavailable,
        Code::AlreadyExists => TalosStatusCode::AlreadyExists,
        Code::DeadlineExceeded => TalosStatusCode::DeadlineExceeded,
        other => TalosStatusCode::Other(other as i32),
    }
}

pub(crate) fn timed_out(
    node: SocketAddr,
    operation: &'static str,
    timeout: Duration,
) -> TalosApiError {
    TalosApiError::Unreachable {
        node,
        operation,
        message: format!("no answer within {} s", timeout.as_secs_f64()),
    }
}

pub(crate) fn invalid(node: SocketAddr, operation: &'static str, message: &str) -> TalosApiError {
    TalosApiError::InvalidResponse {
        node,
        operation,
        message: message.to_owned(),
    }
}

pub(crate) fn empty_answer(node: SocketAddr, operation: &'static str) -> TalosApiError {
    invalid(node, operation, "the answer holds no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> SocketAddr {
        "192.0.2.1:50000".parse().unwrap()
    }

    #[test]
    fn a_status_from_the_node_keeps_its_code() {
        let error = status_error(
            node(),
            "reset",
            tonic::Status::failed_precondition("last member"),
        );
        assert_eq!(
            error.status_code(),
            Some(TalosStatusCode::FailedPrecondition)
        );
        assert_eq!(
            error.to_string(),
            "the Talos API of 192.0.2.1:50000 answered failed precondition to reset: last member"
        );
    }

    #[test]
    fn a_status_made_up_by_the_client_is_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        let error = status_error(node(), "version", status);
        assert!(
            matches!(error, TalosApiError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(error.is_transient());
        assert!(error.to_string().contains("connection refused"), "{error}");
    }
}
