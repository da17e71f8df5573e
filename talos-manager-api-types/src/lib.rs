//! # talos-manager-api-types
//!
//! The wire types of talos-manager's admin REST API (`/api/v1`): every request body and every
//! answer, as plain serde types. This crate is the contract between the service and its
//! clients; it holds no behaviour beyond (de)serialisation and redacted `Debug`.
//!
//! ## Who uses it
//!
//! - `talos-manager-http`, the service, with the `openapi` feature: the types then also derive
//!   poem-openapi's `Object` and `Enum`, and the checked-in OpenAPI document
//!   (`talos-manager-http/openapi/admin-api.json`) is generated from them.
//! - `terraform-provider-talosmanager`, without the feature: it (de)serialises the same types
//!   with serde and links neither the service nor poem, sqlx or russh.
//! - `talos-manager-core` re-exports [`DEFAULT_TALOS_VERSION`] and
//!   [`DEFAULT_KUBERNETES_VERSION`] from here (`talos_manager_core::store`), the defaults the
//!   API documents.
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

mod clusters;
mod configs;
mod defaults;
mod error;
mod jobs;
mod label_taint_rules;
mod lifecycle;
mod machine_configs;
mod maybe_undefined;
mod provider_accounts;
mod schematics;
mod server_events;
mod servers;
mod settings;
mod tokens;

pub use clusters::{ClusterBody, ClusterView};
pub use configs::{ConfigBody, ConfigView};
pub use defaults::{DEFAULT_KUBERNETES_VERSION, DEFAULT_TALOS_VERSION};
pub use error::{ErrorBody, IssueBody};
pub use jobs::{JobLogEvent, JobView};
pub use label_taint_rules::{RuleFields, RuleView};
pub use lifecycle::{ResetBody, ResetProfileName, RollingSelection, UpgradeBody};
pub use machine_configs::{CreateMachineConfig, MachineConfigView, MachineTypeName};
pub use maybe_undefined::MaybeUndefined;
pub use provider_accounts::{CreateProviderAccount, ProviderAccountView, UpdateProviderAccount};
pub use schematics::{SchematicBody, SchematicView, TalosVersionsView};
pub use server_events::ServerEvent;
pub use servers::{BootstrapBody, BootstrapPlanView, DiskView, ServerView, UpdateServer};
pub use settings::{SettingsView, UpdateSettings};
pub use tokens::{CreateToken, CreatedToken, TokenView};

/// How a secret field of a wire type prints in `Debug`: whether it is there, never its value.
fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}
