//! Typed ids for every stored entity, so a cluster id cannot be passed where a server id is
//! expected.

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type! {
    /// A provider account (one set of Hetzner Robot or Cloud credentials).
    ProviderAccountId,
    /// A server, whatever its provider (the provider's own id is `ServerInventory::provider_id`).
    ServerId,
    /// A Robot vSwitch; the number Hetzner gave it.
    VswitchId,
    /// A Talos cluster.
    ClusterId,
    /// A config template (install image, Kubernetes version, patches).
    ConfigId,
    /// A machine config: the binding of one server to a config.
    MachineConfigId,
    /// A label and taint rule.
    LabelTaintRuleId,
    /// An Image Factory schematic as stored here (not the factory's own id).
    SchematicId,
    /// A background job.
    JobId,
    /// One line of a job's log.
    JobLogLineId,
    /// An API token.
    ApiTokenId,
}

/// A server as users and the admin API name it: its provider and the provider's own id,
/// spelled `robot-<server number>` or `cloud-<id>`, so a Robot and a Cloud server never share
/// one. The HTTP API, the command line and the dashboard all spell server ids this way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerRef {
    /// Which provider the server belongs to.
    pub provider: crate::provider::ProviderKind,
    /// The provider's own id (Robot server number, Cloud server id).
    pub provider_id: String,
}

impl ServerRef {
    /// The reference of the server with `provider_id` at `provider`.
    pub fn new(
        provider: crate::provider::ProviderKind,
        provider_id: impl Into<String>,
    ) -> ServerRef {
        ServerRef {
            provider,
            provider_id: provider_id.into(),
        }
    }
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = match self.provider {
            crate::provider::ProviderKind::HetznerRobot => "robot",
            crate::provider::ProviderKind::HetznerCloud => "cloud",
        };
        write!(f, "{prefix}-{}", self.provider_id)
    }
}

/// The text is not a server id (`robot-<n>` or `cloud-<id>`). Its message is what the API
/// answers (404) for a server id it cannot find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server {text} not found (server ids look like robot-1234567 or cloud-42)")]
pub struct InvalidServerRef {
    /// The text as given.
    pub text: String,
}

impl std::str::FromStr for ServerRef {
    type Err = InvalidServerRef;

    fn from_str(text: &str) -> Result<ServerRef, InvalidServerRef> {
        use crate::provider::ProviderKind;
        match text.split_once('-') {
            Some(("robot", id)) if !id.is_empty() => {
                Ok(ServerRef::new(ProviderKind::HetznerRobot, id))
            }
            Some(("cloud", id)) if !id.is_empty() => {
                Ok(ServerRef::new(ProviderKind::HetznerCloud, id))
            }
            _ => Err(InvalidServerRef {
                text: text.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderKind;

    #[test]
    fn server_ids_round_trip_and_reject_other_shapes() {
        let id = ServerRef::new(ProviderKind::HetznerCloud, "42").to_string();
        assert_eq!(id, "cloud-42");
        assert_eq!(
            id.parse::<ServerRef>().unwrap(),
            ServerRef::new(ProviderKind::HetznerCloud, "42")
        );
        for bad in ["42", "robot-", "aws-1", ""] {
            assert!(bad.parse::<ServerRef>().is_err(), "{bad}");
        }
    }
}
