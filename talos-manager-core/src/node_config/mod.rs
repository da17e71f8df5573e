//! The machine config a server is served: everything stored about the server, its machine
//! config, its config template and its cluster, fed to the Talos engine. Also the check that
//! a config template generates valid configs before it is saved.
//!
//! [`render_node_config`] reads and renders every time; [`NodeConfigCache`] is what `/config`
//! uses under load: it remembers lookups and renders until the store writes a config input.
//! [`ConfigRequest`] reads what a `/config` request asks for (its UUID, its source address
//! behind `TRUSTED_PROXIES`) and whether it identifies a server ([`ConfigRequest::may_serve`]);
//! [`MissLimiter`] limits the requests that identify none. [`ConfigService`] is `/config`
//! itself: one call answers a request, its policy is that module's documentation.
//! [`push_to_waiting_node`] hands a newly assigned config to a node waiting in maintenance
//! mode instead of letting it back off. [`assign_machine_config`] binds a server to a config
//! template, deciding the per-node values an admin left out.

use std::sync::OnceLock;

pub mod apply;
mod assign;
mod cache;
pub mod drift;
mod miss_limit;
mod push;
mod request;
mod service;

pub use assign::{
    AssignMachineConfigError, FALLBACK_INSTALL_DISK, MachineConfigChoices, assign_machine_config,
};
pub use cache::{CachedNodeConfig, NodeConfigCache, ServerLookup};
pub use miss_limit::MissLimiter;
pub use push::{
    PushError, PushOutcome, WAITING_WINDOW, is_waiting_for_config, push_to_waiting_node,
};
pub use request::{ConfigRequest, TrustedProxies, client_address, is_server_address};
pub use service::{
    CACHE_TTL, ConfigAnswer, ConfigRequestParts, ConfigServeError, ConfigServedHook, ConfigService,
    FLUSH_ENTRIES, FLUSH_INTERVAL, RECORD_INTERVAL,
};

use crate::ids::ServerId;
use crate::node_identity::{
    HOSTNAME_CONFIG_HINT, hostname_patch, move_legacy_hostname, patches_set_hostname,
};
use crate::random::SystemRandom;
use crate::store::{Cluster, Config, ConfigFields, Server, ServerMachineConfig, Store, StoreError};
use crate::talos::{
    ConfigEngine, ConfigError, ConfigPatches, EphemeralDisk, GenerateInput, GenerateOptions,
    MachineType, NewerTalosVersion, SecretsBundle, SecretsError, Substitutions, TalosVersion,
    ValidationMode, ValidationReport, append_volume_config, validate_report,
};
use crate::{Issue, ValidationError};
use crate::{Secret, error_chain};

/// Why a server's config could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    /// The server has no machine config: nothing to serve yet.
    #[error("server {server} has no machine config")]
    NotConfigured {
        /// The server's name.
        server: String,
    },
    /// The server is in no cluster, so there are no secrets to build a config from.
    #[error("server {server} is in no cluster: assign it to one")]
    NoCluster {
        /// The server's name.
        server: String,
    },
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's stored secrets bundle is unusable.
    #[error("the secrets bundle of cluster {cluster} is unusable")]
    Secrets {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: SecretsError,
    },
    /// The engine refused the inputs (a patch that no longer applies, a bad endpoint).
    #[error("failed to generate the machine config of server {server}")]
    Generate {
        /// The server's name.
        server: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
}

/// A server's rendered machine config.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The YAML, as Talos fetches it (with the EPHEMERAL VolumeConfig when one is set).
    pub yaml: Secret<String>,
    /// Control plane or worker.
    pub machine_type: MachineType,
    /// The Talos version contract it was generated for.
    pub talos_version: TalosVersion,
}

/// The Talos version contract a config template targets: the version of its installer image
/// (`…/installer:v1.10.4` → 1.10), else the newest. A newer minor than every contract
/// (`…:v1.15.0`) gets the newest contract, with a warning in the log.
pub fn talos_version_of(install_image: &str) -> TalosVersion {
    let (version, newer) = target_of(install_image);
    if let Some(newer) = newer {
        tracing::warn!(install_image, "{newer}");
    }
    version
}

/// The contract of an installer image and, for a minor newer than every contract, the
/// message that says so.
fn target_of(install_image: &str) -> (TalosVersion, Option<NewerTalosVersion>) {
    install_image
        .rsplit_once(':')
        .and_then(|(_, tag)| TalosVersion::for_target(tag))
        .unwrap_or((TalosVersion::LATEST, None))
}

/// The [`NewerTalosVersion`] message of an installer image whose tag is a Talos minor newer
/// than every contract (its configs are generated for the newest contract), else `None`.
pub fn newer_talos_version_of(install_image: &str) -> Option<NewerTalosVersion> {
    target_of(install_image).1
}

/// What to tell about a config template that does not stop it from being saved (the API's
/// `warnings`, shown by the dashboard and Terraform): an installer of a Talos minor newer than
/// every contract ([`newer_talos_version_of`]).
pub fn config_template_warnings(config: &ConfigFields) -> Vec<Issue> {
    newer_talos_version_of(&config.install_image)
        .map(|newer| Issue::new("install_image", newer.to_string()))
        .into_iter()
        .collect()
}

/// The inputs for the engine, from stored rows. The Kubernetes version is the one the cluster
/// runs when it is known (see [`crate::node_labels::running_kubernetes_version`]), else the
/// config template's.
pub fn generate_input(
    cluster: &Cluster,
    config: &ConfigFields,
    machine_config: &ServerMachineConfig,
    server: &Server,
    vlan: Option<i32>,
) -> GenerateInput {
    let kubernetes_version = cluster
        .running_kubernetes_version
        .clone()
        .unwrap_or_else(|| config.kubernetes_version.clone());
    let mut options = GenerateOptions::new(
        cluster.name.clone(),
        cluster.endpoint.clone(),
        kubernetes_version,
    );
    options.talos_version = talos_version_of(&config.install_image);
    options.install_disk = Some(machine_config.fields.install_disk.clone());
    options.install_image = Some(config.install_image.clone());
    options.kubespan = config.kubespan;
    let mut substitutions = Substitutions::new()
        .hostname(&machine_config.fields.hostname)
        .private_ip(&machine_config.fields.private_ip);
    if let Some(ipv4) = &server.inventory.ipv4 {
        substitutions = substitutions.public_ip(ipv4);
    }
    if let Some(vlan) = vlan {
        substitutions = substitutions.vlan(vlan.to_string());
    }
    // Stored from a rescue host's answer: only a well-formed WWID reaches the config text.
    if let Some(wwid) = server
        .bootstrap_disk_wwid
        .as_deref()
        .filter(|wwid| crate::installer::is_valid_wwid(wwid))
    {
        substitutions = substitutions.bootstrap_disk_wwid(wwid);
    }
    let talos_version = options.talos_version;
    GenerateInput {
        options,
        patches: patches_of(config, &machine_config.fields.hostname, talos_version),
        machine_type: machine_config.machine_type,
        substitutions,
        ephemeral_disk: machine_config
            .fields
            .ephemeral_disk_identifier
            .as_deref()
            .and_then(|identifier| EphemeralDisk::parse(identifier).ok()),
    }
}

/// The config template's patches, then the patch that sets the node's hostname
/// ([`hostname_patch`]) unless the template's patches set one themselves. The hostname patch
/// comes last, so that a template's JSON6902 patches still apply to the single document Talos
/// requires of them.
fn patches_of(config: &ConfigFields, hostname: &str, version: TalosVersion) -> ConfigPatches {
    let non_empty = |text: &String| {
        if text.trim().is_empty() {
            Vec::new()
        } else {
            vec![text.clone()]
        }
    };
    let mut patches = ConfigPatches {
        all: non_empty(&config.patch),
        control_plane: non_empty(&config.patch_control_plane),
        worker: non_empty(&config.patch_worker),
    };
    if !patches_set_hostname([
        config.patch.as_str(),
        &config.patch_control_plane,
        &config.patch_worker,
    ]) {
        let hostname = hostname_patch(hostname, version);
        patches.control_plane.push(hostname.clone());
        patches.worker.push(hostname);
    }
    patches
}

/// Renders the machine config of a server from what is stored.
///
/// # Errors
/// [`NodeConfigError::NotConfigured`] when the server has no machine config, `NoCluster` when
/// it is in no cluster, and the store's, secrets' and engine's errors.
pub async fn render_node_config(
    store: &Store,
    server_id: ServerId,
) -> Result<NodeConfig, NodeConfigError> {
    let server = store.get_server(server_id).await?;
    let inputs = read_inputs(store, &server).await?;
    let secrets = parse_secrets(&inputs.cluster, &inputs.secrets)?;
    generate(&server, &inputs.input, &secrets)
}

/// Everything stored that a server's config is made from.
struct Inputs {
    cluster: Cluster,
    input: GenerateInput,
    secrets: Secret<String>,
}

async fn read_inputs(store: &Store, server: &Server) -> Result<Inputs, NodeConfigError> {
    let name = || server.inventory.name.clone();
    let machine_config = store
        .machine_config_for_server(server.id)
        .await?
        .ok_or_else(|| NodeConfigError::NotConfigured { server: name() })?;
    let cluster_id = server
        .cluster_id
        .ok_or_else(|| NodeConfigError::NoCluster { server: name() })?;
    let cluster = store.get_cluster(cluster_id).await?;
    let config: Config = store.get_config(machine_config.fields.config_id).await?;
    let vlan = match cluster.vswitch_id {
        Some(vswitch) => Some(store.get_vswitch(vswitch).await?.vlan),
        None => None,
    };
    let secrets = store.cluster_secrets(cluster.id).await?;
    let input = generate_input(&cluster, &config.fields, &machine_config, server, vlan);
    Ok(Inputs {
        cluster,
        input,
        secrets,
    })
}

fn parse_secrets(
    cluster: &Cluster,
    text: &Secret<String>,
) -> Result<SecretsBundle, NodeConfigError> {
    SecretsBundle::parse(text.expose()).map_err(|source| NodeConfigError::Secrets {
        cluster: cluster.name.clone(),
        source,
    })
}

fn generate(
    server: &Server,
    input: &GenerateInput,
    secrets: &SecretsBundle,
) -> Result<NodeConfig, NodeConfigError> {
    let yaml = render(input, secrets).map_err(|source| NodeConfigError::Generate {
        server: server.inventory.name.clone(),
        source,
    })?;
    Ok(NodeConfig {
        yaml: Secret::new(yaml),
        machine_type: input.machine_type,
        talos_version: input.options.talos_version,
    })
}

/// The engine's config for `input`, with a config template's `machine.network.hostname` moved
/// into the `HostnameConfig` of a Talos 1.12+ config ([`move_legacy_hostname`], logged), then
/// the EPHEMERAL `VolumeConfig` when one is set: the text a node is served.
///
/// # Errors
/// The engine's [`ConfigError`].
pub fn render(input: &GenerateInput, secrets: &SecretsBundle) -> Result<String, ConfigError> {
    let mut config = ConfigEngine::generate_config(input, secrets)?;
    let version = input.options.talos_version;
    if let Some(hostname) = move_legacy_hostname(&mut config, version) {
        tracing::warn!(
            hostname,
            %version,
            "the config template sets machine.network.hostname: served as the HostnameConfig \
             document instead; {HOSTNAME_CONFIG_HINT}"
        );
    }
    let yaml = config.to_yaml();
    Ok(match &input.ephemeral_disk {
        Some(disk) => append_volume_config(&yaml, disk),
        None => yaml,
    })
}

/// A secrets bundle made once per process for checking config templates (it never leaves the
/// process). Making one takes a moment (an RSA-4096 key): call this off the async runtime.
pub fn validation_secrets() -> Result<&'static SecretsBundle, SecretsError> {
    static BUNDLE: OnceLock<SecretsBundle> = OnceLock::new();
    if let Some(bundle) = BUNDLE.get() {
        return Ok(bundle);
    }
    let bundle = SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)?;
    Ok(BUNDLE.get_or_init(|| bundle))
}

/// Checks a config template as the original app did, and more: generates a control plane and
/// a worker config for stand-in servers with its patches (variables filled with sample
/// values), then validates both as `talosctl validate -m metal` would. Every error is
/// reported, with the patch field it comes from; Talos's warnings (deprecated fields) do not
/// fail the check: [`check_config_template_warnings`] returns them.
pub fn check_config_template(
    config: &ConfigFields,
    secrets: &SecretsBundle,
) -> Result<(), ValidationError> {
    check_config_template_warnings(config, secrets).map(|_| ())
}

/// [`check_config_template`], returning Talos's warnings about the generated configs (each
/// with its path, once even when both machine types have it) when there is no error.
pub fn check_config_template_warnings(
    config: &ConfigFields,
    secrets: &SecretsBundle,
) -> Result<Vec<Issue>, ValidationError> {
    let mut warnings: Vec<Issue> = Vec::new();
    let mut issues = Vec::new();
    if config.name.trim().is_empty() {
        issues.push(Issue::new("name", "can't be blank"));
    }
    if config.install_image.trim().is_empty() {
        issues.push(Issue::new("install_image", "can't be blank"));
    }
    if !is_kubernetes_version(&config.kubernetes_version) {
        issues.push(Issue::new(
            "kubernetes_version",
            format!(
                "{:?} is not a Kubernetes version like 1.30.1",
                config.kubernetes_version
            ),
        ));
    }
    if issues.is_empty() {
        for (machine_type, hostname) in [
            (MachineType::ControlPlane, "control-plane-1"),
            (MachineType::Worker, "worker-1"),
        ] {
            let report = check_one(config, secrets, machine_type, hostname);
            issues.extend(report.errors);
            for warning in report.warnings {
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
        }
        issues.dedup();
    }
    ValidationError::check("config", issues).map(|()| warnings)
}

fn check_one(
    config: &ConfigFields,
    secrets: &SecretsBundle,
    machine_type: MachineType,
    hostname: &str,
) -> ValidationReport {
    let mut options = GenerateOptions::new(
        "validation",
        "https://192.0.2.1:6443",
        config.kubernetes_version.clone(),
    );
    options.talos_version = talos_version_of(&config.install_image);
    options.install_disk = Some("/dev/sda".into());
    options.install_image = Some(config.install_image.clone());
    options.kubespan = config.kubespan;
    let private_ip = if machine_type == MachineType::ControlPlane {
        "10.0.0.1"
    } else {
        "10.0.1.1"
    };
    let talos_version = options.talos_version;
    let input = GenerateInput {
        options,
        patches: patches_of(config, hostname, talos_version),
        machine_type,
        substitutions: Substitutions::new()
            .hostname(hostname)
            .private_ip(private_ip)
            .public_ip("192.0.2.10")
            .vlan("4000")
            .bootstrap_disk_wwid("eui.0000000000000001"),
        ephemeral_disk: None,
    };
    match ConfigEngine::generate(&input, secrets) {
        Ok(yaml) => {
            let mut report = validate_report(
                &yaml,
                ValidationMode::Metal,
                false,
                input.options.talos_version,
            );
            for issue in &mut report.errors {
                // Talos's words, then how to write it for this version.
                if issue.path == "machine.network.hostname" && talos_version.multi_document() {
                    issue.message = format!("{}: {HOSTNAME_CONFIG_HINT}", issue.message);
                }
            }
            report
        }
        Err(error) => {
            let field = match &error {
                ConfigError::LoadPatch { group, .. } | ConfigError::ApplyPatch { group, .. } => {
                    match group {
                        crate::talos::PatchGroup::All => "patch",
                        crate::talos::PatchGroup::ControlPlane => "patch_control_plane",
                        crate::talos::PatchGroup::Worker => "patch_worker",
                    }
                }
                ConfigError::Endpoint(_) => "endpoint",
            };
            ValidationReport {
                errors: vec![Issue::new(field, error_chain(&error).to_string())],
                warnings: Vec::new(),
            }
        }
    }
}

fn is_kubernetes_version(text: &str) -> bool {
    let parts: Vec<&str> = text.trim_start_matches('v').split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::talos::validate_for;

    #[test]
    fn clients_find_the_same_newer_talos_minor_given_the_newest_release() {
        // A client of the API checks with the API types' rule and the newest release the
        // service lists (`/talos-versions/supported`); it must say what the service says.
        for image in [
            "ghcr.io/siderolabs/installer:v1.15.0",
            "ghcr.io/siderolabs/installer:v1.16.0-alpha.1",
            "factory.talos.dev/metal-installer/abc:1.99",
            "ghcr.io/siderolabs/installer:v1.14.1",
            "ghcr.io/siderolabs/installer:v1.10.4",
            "ghcr.io/siderolabs/installer:v1.7.0",
            "ghcr.io/siderolabs/installer:v2.0.0",
            "ghcr.io/siderolabs/installer:latest",
            "registry:5000/installer",
        ] {
            assert_eq!(
                talos_manager_api_types::newer_talos_minor_of(
                    image,
                    TalosVersion::LATEST.release()
                )
                .map(|newer| newer.to_string()),
                newer_talos_version_of(image).map(|newer| newer.to_string()),
                "{image}"
            );
        }
    }

    fn generated(install_image: &str, patch: &str) -> String {
        let secrets =
            SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap();
        let config = ConfigFields {
            name: "default".into(),
            install_image: install_image.into(),
            kubernetes_version: "1.33.1".into(),
            kubespan: false,
            patch: patch.into(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        };
        let mut options = GenerateOptions::new("prod", "https://192.0.2.1:6443", "1.33.1");
        options.talos_version = talos_version_of(install_image);
        options.install_disk = Some("/dev/sda".into());
        let version = options.talos_version;
        let input = GenerateInput {
            options,
            patches: patches_of(&config, "worker-1", version),
            machine_type: MachineType::Worker,
            substitutions: Substitutions::new()
                .hostname("worker-1")
                .private_ip("10.0.1.1"),
            ephemeral_disk: None,
        };
        render(&input, &secrets).unwrap()
    }

    #[test]
    fn every_config_sets_the_hostname_without_a_hostname_patch() {
        let v1_10 = generated("ghcr.io/siderolabs/installer:v1.10.4", "");
        assert!(
            v1_10.contains("    network:\n        hostname: worker-1\n"),
            "{v1_10}"
        );
        let v1_12 = generated("ghcr.io/siderolabs/installer:v1.12.0", "");
        assert!(
            v1_12.contains("kind: HostnameConfig\nauto: \"off\"\nhostname: worker-1\n"),
            "{v1_12}"
        );
        assert!(!v1_12.contains("auto: stable"), "{v1_12}");
        // A template that sets the hostname itself keeps its own.
        let own = generated(
            "ghcr.io/siderolabs/installer:v1.10.4",
            "machine:\n  network:\n    hostname: node-${hostname}\n",
        );
        assert!(own.contains("hostname: node-worker-1\n"), "{own}");
    }

    /// A template written for Talos ≤1.11 (`machine.network.hostname`) is served, on 1.12+, a
    /// config whose `HostnameConfig` carries that hostname, which Talos accepts; saving such a
    /// template is refused with the way to write it.
    #[test]
    fn a_legacy_hostname_becomes_the_hostname_config_on_talos_1_12_and_newer() {
        let legacy = "machine:\n  network:\n    hostname: node-${hostname}\n";
        for version in TalosVersion::ALL.into_iter().filter(|v| v.multi_document()) {
            let image = format!("ghcr.io/siderolabs/installer:{}", version.release());
            let served = generated(&image, legacy);
            // Talos 1.14's YAML encoder single-quotes YAML 1.1 words.
            let off = if version.typed_documents() {
                "'off'"
            } else {
                "\"off\""
            };
            assert!(
                served.contains(&format!(
                    "kind: HostnameConfig\nauto: {off}\nhostname: node-worker-1\n"
                )),
                "{version}: {served}"
            );
            assert!(
                !served.contains("    network:\n        hostname:"),
                "{served}"
            );
            assert_eq!(
                validate_for(&served, ValidationMode::Metal, true, version),
                Vec::new(),
                "{version}: {served}"
            );
            let fields = ConfigFields {
                name: "legacy".into(),
                install_image: image,
                kubernetes_version: version.default_kubernetes_version().into(),
                kubespan: false,
                patch: legacy.into(),
                patch_control_plane: String::new(),
                patch_worker: String::new(),
            };
            let secrets = validation_secrets().unwrap();
            let error = check_config_template(&fields, secrets).unwrap_err();
            assert_eq!(
                error.issues,
                vec![Issue::new(
                    "machine.network.hostname",
                    format!(
                        "static hostname is already set in v1alpha1 config: {HOSTNAME_CONFIG_HINT}"
                    )
                )],
                "{version}"
            );
        }
    }

    #[test]
    fn talos_version_follows_the_installer_tag() {
        assert_eq!(
            talos_version_of("ghcr.io/siderolabs/installer:v1.10.4"),
            TalosVersion::V1_10
        );
        assert_eq!(
            talos_version_of("factory.talos.dev/metal-installer/abc:v1.9.0"),
            TalosVersion::V1_9
        );
        assert_eq!(
            talos_version_of("registry.local:5000/installer"),
            TalosVersion::LATEST
        );
        assert_eq!(
            talos_version_of("factory.talos.dev/metal-installer/abc:v1.15.0"),
            TalosVersion::LATEST
        );
        assert_eq!(
            TalosVersion::for_target("v1.15.0")
                .unwrap()
                .1
                .unwrap()
                .to_string(),
            format!(
                "Talos v1.15 is newer than the newest config format talos-manager knows ({0}); \
                 its configs are generated for {0}",
                TalosVersion::LATEST
            )
        );
        assert_eq!(TalosVersion::for_target("v1.7.0"), None);
        let newer = ConfigFields {
            name: "next".into(),
            install_image: "factory.talos.dev/metal-installer/abc:v1.15.0".into(),
            kubernetes_version: "1.36.3".into(),
            kubespan: false,
            patch: String::new(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        };
        assert_eq!(
            config_template_warnings(&newer),
            vec![Issue::new(
                "install_image",
                format!(
                    "Talos v1.15 is newer than the newest config format talos-manager knows \
                     ({0}); its configs are generated for {0}",
                    TalosVersion::LATEST
                )
            )]
        );
        let current = ConfigFields {
            install_image: crate::store::default_install_image(),
            ..newer
        };
        assert_eq!(config_template_warnings(&current), Vec::new());
    }
}
