//! [`error_chain`]: an error and its causes on one line, for logs.

use std::fmt;

/// Formats `error` followed by each of its sources, `: `-separated, so a log line carries the
/// whole chain (our error messages never repeat their source themselves).
///
/// ```
/// use talos_manager_core::error_chain;
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
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
