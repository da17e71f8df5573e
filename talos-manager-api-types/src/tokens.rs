//! `/tokens`: bearer tokens for the API.

use time::OffsetDateTime;

/// An API token as listed (without its value).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (to the minute).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops authenticating; absent: when revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A token to make.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CreateToken {
    /// Who or what will use it (unique), e.g. `terraform-ci`.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 100)))]
    pub name: String,
    /// After how many seconds it stops authenticating (at most 100 years); absent: it works
    /// until revoked.
    #[cfg_attr(
        feature = "openapi",
        oai(validator(minimum(value = "1"), maximum(value = "3155760000")))
    )]
    pub expires_in_seconds: Option<u64>,
}

/// A token just made: the only time its value is shown (its `Debug` hides it).
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CreatedToken {
    /// The token as listed.
    #[cfg_attr(feature = "openapi", oai(flatten))]
    #[serde(flatten)]
    pub token: TokenView,
    /// The bearer token: send it as `Authorization: Bearer <token>`. Store it now; it cannot
    /// be shown again.
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}
