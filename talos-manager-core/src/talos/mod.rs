//! The Talos engine: secrets bundles, machine-config generation, patches, substitution,
//! validation and client configs — a native, pure replacement for `talosctl gen` and
//! `talosctl validate`.
//!
//! The engine does no I/O and never panics on user input. Time and randomness are inputs:
//! functions that need them take an [`OffsetDateTime`](time::OffsetDateTime) and a
//! [`RandomSource`].
//!
//! ```
//! use talos_manager_core::random::SystemRandom;
//! use talos_manager_core::talos::{ConfigEngine, GenerateInput, GenerateOptions, MachineType, SecretsBundle};
//!
//! let secrets = SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap();
//! let options = GenerateOptions::new("demo", "https://10.0.0.1:6443", "1.33.6");
//! let input = GenerateInput::new(options, MachineType::Worker);
//! let yaml = ConfigEngine::generate(&input, &secrets).unwrap();
//! assert!(yaml.contains("type: worker"));
//! ```
//!
//! # How a config is made
//!
//! 1. Patches are substituted ([`substitute`]) and loaded ([`Patch::parse`]): strategic merge
//!    patches are decoded strictly against the schema, JSON patches are recognised as a JSON
//!    array or a YAML list of operations. Any load error is a [`ConfigError::LoadPatch`],
//!    whose message is talosctl's `error parsing config JSON patch`.
//! 2. Both machine types are generated for the version contract ([`TalosVersion`]) and
//!    patched in talosctl's order: `--config-patch`, then the type's own patches.
//! 3. The result is written in talosctl's canonical form: fields in Talos's declaration
//!    order, empty optional fields left out, free-form maps in go-yaml's natural order,
//!    go-yaml's quoting and 4-space indentation. The stability goldens of Talos 1.8 … 1.14 are
//!    reproduced byte for byte.
//!
//! Documents are handled as [`yaml::Value`] trees; the schema (field order, types, list merge
//! rules) is data distilled from Talos's published JSON schemas, so every document kind Talos
//! knows is decoded strictly without a hand-written struct per kind.
//!
//! # Where it differs from talosctl, on purpose
//!
//! - An empty (or comment-only) patch is no patch. talosctl 1.12 fails on it because it is an
//!   empty JSON patch on a multi-document config.
//! - Errors name paths (`machine.network.nameservers`) where go-yaml names line numbers.
//! - `${…}` variables without a value are left in place ([`unknown_variables`] lists them).
//! - Only the plain output (`--with-docs=false --with-examples=false`) is produced.
//! - A config is written the Talos 1.14 way (yaml/v4 quoting, no `cluster.controlPlane: null`,
//!   deletes of missing documents skipped) when it holds a typed Kubernetes document, which no
//!   earlier Talos loads ([`MachineConfig`] does not carry its version).
//! - The RSA service-account key of a new bundle comes from the crypto library's own
//!   generator: it cannot take the caller's [`RandomSource`].

mod client_config;
mod document;
mod generate;
mod generate_v1_14;
pub mod limits;
mod patch;
mod pki;
mod schema;
mod secrets;
mod substitute;
mod validate;
mod volume;
pub mod yaml;

use crate::Issue;
use crate::random::RandomSource;
pub(crate) use client_config::admin_client_certificate;
pub use client_config::{
    CLIENT_CERT_BACKDATE, CLIENT_VALIDITY, ClientConfigError, admin_kubeconfig,
    os_admin_client_certificate, talosconfig,
};
pub use document::{DecodeIssue, LoadError, MachineConfig};
pub use generate::{
    Cni, EndpointError, GenerateOptions, MachineType, NewerTalosVersion, TalosVersion,
    UnknownMachineType, VANILLA_SCHEMATIC, endpoint_host,
};
pub use patch::{
    DeleteSelector, JsonPatchError, JsonPatchOp, MachineConfigPatchError, MergeError, Patch,
    PatchApplyError, PatchLoadError, StrategicPatch, patch_machine_config,
};
pub use pki::{CertAndKey, PkiError};
pub use secrets::{SecretsBundle, SecretsError};
pub use substitute::{Substitutions, substitute, unknown_variables};
pub use validate::{ValidationMode, ValidationReport, validate, validate_for, validate_report};
pub use volume::{
    EphemeralDisk, EphemeralDiskError, append_volume_config, ephemeral_volume_config,
};

/// Formats issues as talosctl prints a multi-error:
/// `2 errors occurred:\n\t* first\n\t* second` (without the trailing blank line).
pub fn format_issues(issues: &[Issue]) -> String {
    let mut text = if issues.len() == 1 {
        "1 error occurred:".to_owned()
    } else {
        format!("{} errors occurred:", issues.len())
    };
    for issue in issues {
        text.push_str("\n\t* ");
        text.push_str(&issue.message);
    }
    text
}

/// The patches of a config, as talosctl's three patch flags take them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPatches {
    /// `--config-patch`: applied to every machine type, in order.
    pub all: Vec<String>,
    /// `--config-patch-control-plane`: applied to control-plane configs after `all`.
    pub control_plane: Vec<String>,
    /// `--config-patch-worker`: applied to worker configs after `all`.
    pub worker: Vec<String>,
}

/// Everything `gen config` needs for one machine config besides the secrets bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateInput {
    /// Generator options (cluster name, endpoint, versions, install disk, …).
    pub options: GenerateOptions,
    /// The three patch lists, as written (with `${…}` variables).
    pub patches: ConfigPatches,
    /// Which config to return.
    pub machine_type: MachineType,
    /// Values for `${…}` variables, substituted into every patch before it is loaded.
    pub substitutions: Substitutions,
    /// When set, the EPHEMERAL `VolumeConfig` document for this disk is appended to the
    /// output, as the original app served it.
    pub ephemeral_disk: Option<EphemeralDisk>,
}

impl GenerateInput {
    /// An input without patches, variables or ephemeral disk.
    pub fn new(options: GenerateOptions, machine_type: MachineType) -> GenerateInput {
        GenerateInput {
            options,
            patches: ConfigPatches::default(),
            machine_type,
            substitutions: Substitutions::default(),
            ephemeral_disk: None,
        }
    }
}

/// Which patch list a patch error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchGroup {
    /// `--config-patch`.
    All,
    /// `--config-patch-control-plane`.
    ControlPlane,
    /// `--config-patch-worker`.
    Worker,
}

/// Generating a machine config failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The cluster endpoint is not acceptable.
    #[error("invalid cluster endpoint")]
    Endpoint(#[source] EndpointError),
    /// A patch could not be loaded (talosctl's wording, kept so scripts matching it work).
    #[error("error parsing config JSON patch")]
    LoadPatch {
        /// The list the patch is in.
        group: PatchGroup,
        /// Its index in that list.
        patch_idx: usize,
        /// Why.
        #[source]
        source: PatchLoadError,
    },
    /// A patch could not be applied.
    #[error("failed to generate config bundle: {}", match group {
        PatchGroup::All => "error patching configs",
        PatchGroup::ControlPlane => "error patching control plane configs",
        PatchGroup::Worker => "error patching worker config",
    })]
    ApplyPatch {
        /// The list the patch is in.
        group: PatchGroup,
        /// Why.
        #[source]
        source: PatchApplyError,
    },
}

/// The facade over the engine: what the CLI, the `/config` endpoint and Terraform call.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigEngine;

/// Merges the ephemeral disk's `VolumeConfig` into a config's EPHEMERAL volume document, as a
/// strategic patch.
fn merge_ephemeral_volume_config(
    config: &mut MachineConfig,
    disk: &EphemeralDisk,
) -> Result<(), ConfigError> {
    let patch =
        Patch::parse(&ephemeral_volume_config(disk)).map_err(|source| ConfigError::LoadPatch {
            group: PatchGroup::All,
            patch_idx: 0,
            source,
        })?;
    config
        .apply_patch(&patch)
        .map_err(|source| ConfigError::ApplyPatch {
            group: PatchGroup::All,
            source,
        })
}

impl ConfigEngine {
    /// Generates one machine config as `talosctl gen config --output-types <type>
    /// --with-docs=false --with-examples=false -o -` prints it.
    ///
    /// As in talosctl, both machine types are generated and patched, so a control-plane patch
    /// that does not apply fails a worker config too.
    pub fn generate(input: &GenerateInput, secrets: &SecretsBundle) -> Result<String, ConfigError> {
        let mut config = ConfigEngine::generate_config(input, secrets)?;
        match &input.ephemeral_disk {
            // Talos 1.14 configs already hold an EPHEMERAL VolumeConfig: the disk is merged
            // into it (a second one would be a duplicate document).
            Some(disk) if input.options.talos_version.typed_documents() => {
                merge_ephemeral_volume_config(&mut config, disk)?;
                Ok(config.to_yaml())
            }
            Some(disk) => Ok(append_volume_config(&config.to_yaml(), disk)),
            None => Ok(config.to_yaml()),
        }
    }

    /// Like [`ConfigEngine::generate`], returning the document tree (without the appended
    /// VolumeConfig).
    pub fn generate_config(
        input: &GenerateInput,
        secrets: &SecretsBundle,
    ) -> Result<MachineConfig, ConfigError> {
        let load = |group: PatchGroup, texts: &[String]| -> Result<Vec<Patch>, ConfigError> {
            texts
                .iter()
                .enumerate()
                .map(|(patch_idx, text)| {
                    Patch::parse(&substitute(text, &input.substitutions)).map_err(|source| {
                        ConfigError::LoadPatch {
                            group,
                            patch_idx,
                            source,
                        }
                    })
                })
                .collect()
        };
        let all = load(PatchGroup::All, &input.patches.all)?;
        let control_plane = load(PatchGroup::ControlPlane, &input.patches.control_plane)?;
        let worker = load(PatchGroup::Worker, &input.patches.worker)?;

        let make = |machine_type, own: &[Patch], group| -> Result<MachineConfig, ConfigError> {
            let mut config = generate::generate(&input.options, secrets, machine_type)
                .map_err(ConfigError::Endpoint)?;
            config
                .apply_patches(&all)
                .map_err(|source| ConfigError::ApplyPatch {
                    group: PatchGroup::All,
                    source,
                })?;
            config
                .apply_patches(own)
                .map_err(|source| ConfigError::ApplyPatch { group, source })?;
            Ok(config)
        };
        let control_plane_config = make(
            MachineType::ControlPlane,
            &control_plane,
            PatchGroup::ControlPlane,
        )?;
        let worker_config = make(MachineType::Worker, &worker, PatchGroup::Worker)?;
        Ok(match input.machine_type {
            MachineType::ControlPlane => control_plane_config,
            MachineType::Worker => worker_config,
        })
    }
}
