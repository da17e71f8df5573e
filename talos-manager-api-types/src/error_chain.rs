//! [`error_chain`]: an error and its causes on one line, for logs.

use std::fmt;

/// Formats `error` followed by each of its sources, `: `-separated, so a log line carries the
/// whole chain (our error messages never repeat their source themselves; a cause that the
/// message before it already ends with, as some libraries' errors repeat theirs, is left out).
///
/// ```
/// use talos_manager_api_types::error_chain;
///
/// let io = std::io::Error::other("connection refused");
/// #[derive(Debug, thiserror::Error)]
/// #[error("failed to reach the database")]
/// struct Outer(#[source] std::io::Error);
/// assert_eq!(
///     error_chain(&Outer(io)).to_string(),
///     "failed to reach the database: connection refused"
/// );
/// ```
pub fn error_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> impl fmt::Display + 'a {
    ErrorChain(error)
}

struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            let text = error.to_string();
            if !previous.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("transport error: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_repeats_is_left_out() {
        let error = Repeats(std::io::Error::other("connection refused"));
        assert_eq!(
            error_chain(&error).to_string(),
            "transport error: connection refused"
        );
    }
}
