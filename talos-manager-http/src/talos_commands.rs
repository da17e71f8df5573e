//! `talos-manager gen secrets`, `gen config`, `machineconfig patch` and `validate`: talosctl's
//! commands of the same names, offline and without talosctl, so users can switch.

use std::path::{Path, PathBuf};

use talos_manager_core::talos::{
    ConfigEngine, ConfigError, ConfigPatches, GenerateInput, GenerateOptions,
    MachineConfigPatchError, MachineType, SecretsBundle, SecretsError, TalosVersion,
    ValidationMode, format_issues, patch_machine_config, talosconfig, validate, validate_report,
};

use talos_manager_core::random::SystemRandom;

/// Why a command failed. The binary prints it with its causes and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum TalosCommandError {
    /// A file could not be read or written.
    #[error("failed to {action} {path}")]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The output exists and `--force` was not given.
    #[error("{path} already exists (use --force to overwrite it)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A flag's value cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The secrets bundle is unusable.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The config could not be generated.
    #[error(transparent)]
    Generate(#[from] ConfigError),
    /// The talosconfig could not be made.
    #[error(transparent)]
    ClientConfig(#[from] talos_manager_core::talos::ClientConfigError),
    /// The config is not valid.
    #[error("{}", format_issues(.0))]
    Invalid(Vec<talos_manager_core::Issue>),
    /// The config could not be patched.
    #[error("failed to patch {path}")]
    Patch {
        /// The machine config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MachineConfigPatchError,
    },
}

fn read(path: &Path) -> Result<String, TalosCommandError> {
    std::fs::read_to_string(path).map_err(|source| TalosCommandError::File {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` to `path`, refusing to overwrite unless `force`. The file is readable by
/// its owner only (mode 0600: it holds CA keys or admin credentials), and a symbolic link at
/// `path` is replaced, not followed.
fn write(path: &Path, contents: &str, force: bool) -> Result<(), TalosCommandError> {
    if !force && (path.exists() || path.is_symlink()) {
        return Err(TalosCommandError::Exists {
            path: path.to_owned(),
        });
    }
    crate::tokens::write_private_file(path, contents.as_bytes()).map_err(|source| {
        TalosCommandError::File {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

/// `gen secrets -o FILE`: a new secrets bundle.
pub fn gen_secrets(output: &Path, force: bool) -> Result<(), TalosCommandError> {
    let bundle = SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)?;
    write(output, &bundle.to_yaml(), force)
}

/// What `gen config` is asked for.
#[derive(Debug, Clone)]
pub struct GenConfigRequest {
    /// The cluster's name.
    pub cluster_name: String,
    /// The Kubernetes API endpoint.
    pub endpoint: String,
    /// `--with-secrets`: a bundle file; a new bundle when absent.
    pub with_secrets: Option<PathBuf>,
    /// `--output-types`.
    pub output_types: Vec<String>,
    /// `--install-disk`.
    pub install_disk: String,
    /// `--install-image`; talosctl's installer for the version when absent.
    pub install_image: Option<String>,
    /// `--kubernetes-version`; the version's default when absent.
    pub kubernetes_version: Option<String>,
    /// `--talos-version`; the newest when absent.
    pub talos_version: Option<String>,
    /// `--with-kubespan`.
    pub kubespan: bool,
    /// `--config-patch`, `--config-patch-control-plane`, `--config-patch-worker`: each
    /// `@file` or inline YAML/JSON.
    pub patches: (Vec<String>, Vec<String>, Vec<String>),
    /// `-o`: a directory, or `-` for standard output.
    pub output: String,
    /// `--force`: overwrite existing files.
    pub force: bool,
}

fn load_patches(items: &[String]) -> Result<Vec<String>, TalosCommandError> {
    items
        .iter()
        .map(|item| match item.strip_prefix('@') {
            Some(path) => read(Path::new(path)),
            None => Ok(item.clone()),
        })
        .collect()
}

/// `gen config`: the requested files, as (file name, contents). Written to the output
/// directory, or printed when the output is `-`.
pub fn gen_config(request: &GenConfigRequest) -> Result<Vec<(String, String)>, TalosCommandError> {
    let version = match &request.talos_version {
        Some(text) => match TalosVersion::for_target(text) {
            Some((version, None)) => version,
            // A newer minor than every contract: the newest contract, said on stderr.
            Some((version, Some(newer))) => {
                eprintln!("warning: {newer}");
                version
            }
            None => {
                return Err(TalosCommandError::Usage(format!(
                    "--talos-version {text:?} is not supported (use one of {})",
                    TalosVersion::ALL.map(|v| v.to_string()).join(", ")
                )));
            }
        },
        None => TalosVersion::LATEST,
    };
    let secrets = match &request.with_secrets {
        Some(path) => SecretsBundle::parse(&read(path)?)?,
        None => SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)?,
    };
    let kubernetes_version = request
        .kubernetes_version
        .clone()
        .unwrap_or_else(|| version.default_kubernetes_version().to_owned());
    let mut options =
        GenerateOptions::new(&request.cluster_name, &request.endpoint, kubernetes_version);
    options.talos_version = version;
    options.install_disk = Some(request.install_disk.clone());
    options.install_image = Some(
        request
            .install_image
            .clone()
            .unwrap_or_else(|| version.default_installer_image()),
    );
    options.kubespan = request.kubespan;
    let patches = ConfigPatches {
        all: load_patches(&request.patches.0)?,
        control_plane: load_patches(&request.patches.1)?,
        worker: load_patches(&request.patches.2)?,
    };
    let mut files = Vec::new();
    for output_type in &request.output_types {
        let (file, contents) = match output_type.as_str() {
            "controlplane" | "worker" => {
                let machine_type = if output_type == "worker" {
                    MachineType::Worker
                } else {
                    MachineType::ControlPlane
                };
                let mut input = GenerateInput::new(options.clone(), machine_type);
                input.patches = patches.clone();
                (
                    format!("{output_type}.yaml"),
                    ConfigEngine::generate(&input, &secrets)?,
                )
            }
            "talosconfig" => (
                "talosconfig".to_owned(),
                talosconfig(
                    &secrets,
                    &request.cluster_name,
                    &[],
                    &[],
                    time::OffsetDateTime::now_utc(),
                    &mut SystemRandom,
                )?,
            ),
            other => {
                return Err(TalosCommandError::Usage(format!(
                    "unknown output type {other:?} (use controlplane, worker or talosconfig)"
                )));
            }
        };
        files.push((file, contents));
    }
    if request.output == "-" && files.len() != 1 {
        return Err(TalosCommandError::Usage(
            "-o - writes one file: give exactly one --output-types".into(),
        ));
    }
    if request.output != "-" {
        let dir = Path::new(&request.output);
        std::fs::create_dir_all(dir).map_err(|source| TalosCommandError::File {
            action: "write",
            path: dir.to_owned(),
            source,
        })?;
        for (file, contents) in &files {
            write(&dir.join(file), contents, request.force)?;
        }
    }
    Ok(files)
}

/// `validate -m MODE [--strict] -c FILE`: Talos's warnings when the config is valid (with
/// `--strict` they are errors, as in talosctl).
pub fn validate_file(
    path: &Path,
    mode: &str,
    strict: bool,
) -> Result<Vec<talos_manager_core::Issue>, TalosCommandError> {
    let mode = ValidationMode::parse(mode).ok_or_else(|| {
        TalosCommandError::Usage(format!(
            "unknown mode {mode:?} (use metal, cloud or container)"
        ))
    })?;
    let text = read(path)?;
    let issues = validate(&text, mode, strict);
    if !issues.is_empty() {
        return Err(TalosCommandError::Invalid(issues));
    }
    Ok(validate_report(&text, mode, false, TalosVersion::LATEST).warnings)
}

/// A `--patch` value as talosctl reads it: `@file`; a bare file name (a value without a space
/// or a newline that does not start with `[` or `{`); or the patch itself.
fn read_patch_argument(item: &str) -> Result<String, TalosCommandError> {
    if let Some(path) = item.strip_prefix('@') {
        return read(Path::new(path));
    }
    if !item.contains(['\n', ' ']) && !item.starts_with(['[', '{']) {
        return read(Path::new(item));
    }
    Ok(item.to_owned())
}

/// `machineconfig patch FILE --patch … [-o FILE|-]`: the patched config, returned for
/// standard output (no `-o`, or `-o -`) or written to the output file (mode 0600, replacing
/// it, so a file can be patched in place as talosctl does).
pub fn machineconfig_patch(
    path: &Path,
    patches: &[String],
    output: Option<&str>,
) -> Result<Option<String>, TalosCommandError> {
    let config = read(path)?;
    let patches = patches
        .iter()
        .map(|item| read_patch_argument(item))
        .collect::<Result<Vec<_>, _>>()?;
    let patched =
        patch_machine_config(&config, &patches).map_err(|source| TalosCommandError::Patch {
            path: path.to_owned(),
            source,
        })?;
    match output {
        None | Some("-") => Ok(Some(patched)),
        Some(file) => {
            write(Path::new(file), &patched, true)?;
            Ok(None)
        }
    }
}
