//! Ids as the API spells them: every id is a string. Servers are `robot-<server number>` or
//! `cloud-<id>`, so a Robot and a Cloud server never share one; other ids are numbers as text.

use talos_manager_core::ProviderKind;

use super::error::ApiError;

/// Parses a numeric id from a path or body; anything else is "not found" for `entity`.
pub(crate) fn parse_id<T>(entity: &str, text: &str, make: fn(i64) -> T) -> Result<T, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(make)
        .ok_or_else(|| ApiError::not_found(format!("{entity} {text} not found")))
}

/// The API id of a server.
pub(crate) fn server_api_id(provider: ProviderKind, provider_id: &str) -> String {
    let prefix = match provider {
        ProviderKind::HetznerRobot => "robot",
        ProviderKind::HetznerCloud => "cloud",
    };
    format!("{prefix}-{provider_id}")
}

/// Splits a server's API id into provider and provider id.
pub(crate) fn parse_server_api_id(text: &str) -> Result<(ProviderKind, &str), ApiError> {
    let parsed = match text.split_once('-') {
        Some(("robot", id)) if !id.is_empty() => Some((ProviderKind::HetznerRobot, id)),
        Some(("cloud", id)) if !id.is_empty() => Some((ProviderKind::HetznerCloud, id)),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError::not_found(format!(
            "server {text} not found (server ids look like robot-1234567 or cloud-42)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_round_trip_and_reject_other_shapes() {
        let id = server_api_id(ProviderKind::HetznerCloud, "42");
        assert_eq!(id, "cloud-42");
        assert_eq!(
            parse_server_api_id(&id).unwrap(),
            (ProviderKind::HetznerCloud, "42")
        );
        for bad in ["42", "robot-", "aws-1", ""] {
            assert!(parse_server_api_id(bad).is_err(), "{bad}");
        }
    }
}
