//! `/jobs`: background jobs and their live logs.

use time::OffsetDateTime;

/// A background job.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// What it does: `sync`, `bootstrap`, `label_and_taint`, …
    pub kind: String,
    /// The server it is about.
    pub server_id: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Someone asked to stop it.
    pub cancel_requested: bool,
    /// How many times it was started.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its last attempt started.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it succeeded or failed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// One event of a job's live log: a log line, or, last, the job's final status.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct JobLogEvent {
    /// The line's id; increasing.
    pub line_id: Option<String>,
    /// When the line was written.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// The log line.
    pub line: Option<String>,
    /// Present on the last event only: `succeeded`, `failed` or `cancelled`.
    pub job_status: Option<String>,
}
