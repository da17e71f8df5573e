//! `/label-taint-rules`: rules that label and taint nodes by name.

use time::OffsetDateTime;

/// A label and taint rule.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RuleView {
    /// Its id.
    pub id: String,
    /// What it matches and applies.
    #[cfg_attr(feature = "openapi", oai(flatten))]
    #[serde(flatten)]
    pub fields: RuleFields,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a rule matches and applies.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RuleFields {
    /// The rule applies to servers whose name contains this string.
    #[cfg_attr(feature = "openapi", oai(rename = "match"))]
    #[serde(rename = "match")]
    pub name_match: String,
    /// Labels, `key=value,key=value` (may be empty when taints are given).
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub labels: String,
    /// Taints, `key=value:Effect,…` with Effect one of NoSchedule, PreferNoSchedule, NoExecute.
    #[cfg_attr(feature = "openapi", oai(default))]
    #[serde(default)]
    pub taints: String,
}
