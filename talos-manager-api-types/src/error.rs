//! The body of every error answer.

/// The body of every error answer of the admin API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ErrorBody {
    /// A stable, machine-readable code: `bad_request`, `unauthorized`, `cross_site`,
    /// `payload_too_large`, `not_found`, `conflict`,
    /// `in_use`, `invalid`, `internal`, `bad_gateway`, `unavailable`, `provider_unavailable`,
    /// `provider_refused`, `provider_outcome_unknown`,
    /// `ssh_key_missing`, `not_in_rescue_yet`, `bootstrap_running`, `live_node`,
    /// `cluster_busy`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Every problem with the input, with its location (for `invalid`).
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_empty, default))]
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub issues: Vec<IssueBody>,
}

/// One problem with the input.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct IssueBody {
    /// A field (`labels`) or a path into a document (`machine.network.nameservers`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}
