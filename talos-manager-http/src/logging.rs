//! Logs through `tracing`: human-readable by default, one JSON object a line with
//! `LOG_FORMAT=json`; the level from `RUST_LOG` (default `info`). Logs go to stderr.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people.
    Text,
    /// For log collectors.
    Json,
}

impl LogFormat {
    /// Reads `LOG_FORMAT` (`text` or `json`; unset means text).
    pub fn from_env() -> Result<LogFormat, crate::config::ConfigError> {
        match std::env::var("LOG_FORMAT").ok().as_deref() {
            None | Some("" | "text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(crate::config::ConfigError::Invalid {
                name: "LOG_FORMAT",
                problem: format!("{other:?} is not a log format (use text or json)"),
            }),
        }
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
