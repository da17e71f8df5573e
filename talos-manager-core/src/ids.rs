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
    /// A server, whatever its provider (the provider's own id is [`crate::store::Server::provider_id`]).
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
