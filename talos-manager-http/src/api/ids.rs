//! Ids as the API spells them: every id is a string. Servers are `robot-<server number>` or
//! `cloud-<id>` (core's [`ServerRef`](talos_manager_core::ids::ServerRef)); other ids are
//! numbers as text.

use super::error::ApiError;

/// Parses a numeric id from a path or body; anything else is "not found" for `entity`.
pub(crate) fn parse_id<T>(entity: &str, text: &str, make: fn(i64) -> T) -> Result<T, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(make)
        .ok_or_else(|| ApiError::not_found(format!("{entity} {text} not found")))
}
