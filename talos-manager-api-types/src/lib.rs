//! # talos-manager-api-types
//!
//! The wire types of talos-manager's admin REST API (`/api/v1`): every request body and every
//! answer, as plain serde types. This crate is the contract between the service and its
//! clients; its types hold no behaviour beyond (de)serialisation and redacted `Debug`.
//!
//! Beside them, the few pure rules a client applies before it sends a request, so that it
//! reports the service's own messages at plan time, and the vocabulary they speak; each is
//! defined here once and re-exported by `talos-manager-core` at its usual path:
//!
//! - [`Issue`] and [`ValidationError`]: every problem with user input, with its location;
//! - [`Secret`]: a value that prints `<redacted>`; [`error_chain`]: an error with its causes on
//!   one log line;
//! - [`parse_labels`], [`parse_taints`]: the syntax of a label and taint rule
//!   (`talos_manager_core::node_labels`);
//! - [`force_talos_config`]: the `talos.config=` kernel argument forced into a schematic body,
//!   and [`TalosRelease`], the Image Factory's versions in order
//!   (`talos_manager_core::image_factory`);
//! - [`newer_talos_minor_of`]: whether a config template's installer is a Talos minor newer
//!   than the newest version contract, given that one (the service's
//!   `GET /api/v1/talos-versions/supported`); the contracts themselves stay in
//!   `talos_manager_core::talos`.
//!
//! They need nothing but serde, serde_norway and thiserror: no I/O, no database, no SSH.
//!
//! ## Who uses it
//!
//! - `talos-manager-http`, the service, with the `openapi` feature: the types then also derive
//!   poem-openapi's `Object` and `Enum`, and the checked-in OpenAPI document
//!   (`talos-manager-http/openapi/admin-api.json`) is generated from them.
//! - `terraform-provider-talosmanager`, without the feature: it (de)serialises the same types
//!   with serde and links neither the service nor poem, sqlx or russh.
//! - `talos-manager-core` re-exports the rules above; it never enables the feature, so the
//!   library stays free of poem.
//!
//! Any other Rust client of the API can depend on it the same way, without the feature.
//!
//! ## How a type is written
//!
//! Each type derives `serde::Serialize` and `serde::Deserialize` and, behind
//! `cfg_attr(feature = "openapi", …)`, poem-openapi's derive with its `oai` attributes. The two
//! must say the same thing, so every `oai` attribute that changes the JSON has its serde twin:
//! `default` and `default = "…"`, `rename`, `flatten`, `skip_serializing_if_is_empty`
//! (`skip_serializing_if = "Vec::is_empty"`). Times are RFC 3339 strings
//! (`time::serde::rfc3339`, `…::option` with `default`, as poem-openapi writes them); an
//! optional field is `null` when empty, as the service sends it; a partial update's field is a
//! [`MaybeUndefined`] (absent, `null` or a value). Validators (`oai(validator(…))`) and
//! `write_only` are the service's business and have no serde twin: a client sends the secret
//! of a `write_only` field, the service never returns it.
//!
//! ## Stability
//!
//! These types are the API: a change here is a change of the OpenAPI document, which a test
//! of the service compares with the checked-in one. Add fields as optional (`Option<…>`, or a
//! `default`) so that older clients and services keep working; never rename or remove a field
//! or change its type within `/api/v1`. Secret-bearing types (a cluster's secrets bundle, a
//! provider account's secret, a new token) print `<redacted>` in `Debug`; keep it so for new
//! ones.
#![warn(missing_docs)]

mod cluster_health;
mod clusters;
mod configs;
mod error;
mod error_chain;
mod jobs;
mod label_taint_rules;
mod labels;
mod lifecycle;
mod machine_configs;
mod maybe_undefined;
mod newer_talos;
mod provider_accounts;
mod schematic_body;
mod schematics;
mod secret;
mod server_events;
mod servers;
mod settings;
mod talos_version;
mod tokens;
mod validation;

pub use cluster_health::{
    CertificateExpiryView, ClusterHealthView, EtcdMemberHealthView, HealthStatusName,
    MissingServerView, NodeHealthView,
};
pub use clusters::{ClusterBody, ClusterView};
pub use configs::{ConfigBody, ConfigView};
pub use error::{ErrorBody, IssueBody};
pub use error_chain::error_chain;
pub use jobs::{JobLogEvent, JobView};
pub use label_taint_rules::{RuleFields, RuleView};
pub use labels::{Label, Taint, TaintEffect, parse_labels, parse_taints};
pub use lifecycle::{ResetBody, ResetProfileName, RollingSelection, UpgradeBody};
pub use machine_configs::{CreateMachineConfig, MachineConfigView, MachineTypeName};
pub use maybe_undefined::MaybeUndefined;
pub use newer_talos::{NewerTalosMinor, newer_talos_minor_of};
pub use provider_accounts::{CreateProviderAccount, ProviderAccountView, UpdateProviderAccount};
pub use schematic_body::{
    SchematicBodyError, TALOS_CONFIG_ARG_PREFIX, force_talos_config, talos_config_arg,
};
pub use schematics::{
    SchematicBody, SchematicView, SupportedTalosVersion, SupportedTalosVersionsView,
    TalosVersionsView,
};
pub use secret::Secret;
pub use server_events::ServerEvent;
pub use servers::{BootstrapBody, BootstrapPlanView, DiskView, ServerView, UpdateServer};
pub use settings::{SettingsView, UpdateSettings};
pub use talos_version::{InvalidTalosRelease, TalosRelease, order_for_display, parse_versions};
pub use tokens::{CreateToken, CreatedToken, TokenView};
pub use validation::{Issue, ValidationError};

/// How a secret field of a wire type prints in `Debug`: whether it is there, never its value.
fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}
