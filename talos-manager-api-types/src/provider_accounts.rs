//! `/provider-accounts`: Hetzner Robot and Cloud credentials.

use time::OffsetDateTime;

/// A provider account, without its secret.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ProviderAccountView {
    /// Its id.
    pub id: String,
    /// `hetzner_robot` or `hetzner_cloud`.
    pub provider: String,
    /// Robot: the webservice user. Cloud: a label.
    pub name: String,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the provider last refused these credentials (401), or `null`. The periodic sync
    /// sends no request for the account until its secret is updated, which clears this.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub credentials_refused_at: Option<OffsetDateTime>,
    /// Until when the provider blocks talos-manager's address (Robot's 403 `BLOCKED`, 10
    /// minutes after three failed logins), or `null`. The periodic sync sends no request for
    /// the account until then, or until its secret is updated, which clears this.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub blocked_until: Option<OffsetDateTime>,
}

/// A new provider account.
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CreateProviderAccount {
    /// `hetzner_robot` or `hetzner_cloud`.
    pub provider: String,
    /// Robot: the webservice user. Cloud: a label.
    pub name: String,
    /// Robot: the webservice password. Cloud: the API token. Never returned.
    #[cfg_attr(feature = "openapi", oai(write_only))]
    pub secret: String,
}

/// Changes to a provider account.
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct UpdateProviderAccount {
    /// The new name (Robot: the webservice user).
    pub name: String,
    /// A new secret; the stored one is kept when absent. Never returned.
    #[cfg_attr(feature = "openapi", oai(write_only))]
    pub secret: Option<String>,
}

/// Prints `secret` as `<redacted>`.
impl std::fmt::Debug for CreateProviderAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateProviderAccount")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Prints `secret` as `<redacted>`.
impl std::fmt::Debug for UpdateProviderAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateProviderAccount")
            .field("name", &self.name)
            .field("secret", &crate::redacted(&self.secret))
            .finish_non_exhaustive()
    }
}
