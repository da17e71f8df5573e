//! The config patch recipes of `docs/recipes/` pass the check the API runs before it saves a
//! config (`check_config_template`: generate a control plane and a worker for stand-in servers,
//! then validate both as `talosctl validate -m metal`: no error, and no warning either), for
//! every supported Talos version, and each one changes the config it is applied to. A recipe limited to some versions
//! (`# talos-manager talos: 1.8-1.11`) is refused by the same check on the others: the governor
//! as an install kernel argument on Talos 1.12+, whose schematic form is checked as well.

use std::fs;
use std::path::{Path, PathBuf};

use talos_manager_core::node_config::{check_config_template, check_config_template_warnings};
use talos_manager_core::store::ConfigFields;
use talos_manager_core::talos::{
    ConfigEngine, ConfigPatches, GenerateInput, GenerateOptions, MachineType, SecretsBundle,
    Substitutions, TalosVersion,
};

/// An installer image per version contract (its release's tag picks the config format), so
/// that every contract the engine gains is checked too.
fn install_images() -> Vec<String> {
    TalosVersion::ALL
        .iter()
        .map(|version| format!("ghcr.io/siderolabs/installer:{}", version.release()))
        .collect()
}

/// The Talos minor version of an installer image (`…:v1.12.0` → 12).
fn minor_of(install_image: &str) -> u32 {
    install_image
        .rsplit_once(":v1.")
        .and_then(|(_, rest)| rest.split('.').next())
        .and_then(|minor| minor.parse().ok())
        .expect("an installer tag v1.N.x")
}

/// Where a recipe goes, from its `# talos-manager field: …` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    All,
    ControlPlane,
    Worker,
}

struct Recipe {
    name: String,
    field: Field,
    patch: String,
    /// The Talos minor versions it is for (`# talos-manager talos: 1.8-1.11`, or `1.12-` for
    /// 1.12 and every newer one), else all.
    minors: Option<(u32, u32)>,
}

impl Recipe {
    fn is_for(&self, install_image: &str) -> bool {
        self.minors
            .is_none_or(|(from, to)| (from..=to).contains(&minor_of(install_image)))
    }
}

fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/recipes")
}

fn recipes() -> Vec<Recipe> {
    let mut paths: Vec<PathBuf> = fs::read_dir(recipes_dir())
        .expect("docs/recipes exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let patch = fs::read_to_string(&path).unwrap();
            let field = patch
                .lines()
                .find_map(|line| line.strip_prefix("# talos-manager field: "))
                .map(|field| match field.trim() {
                    "patch" => Field::All,
                    "patch_control_plane" => Field::ControlPlane,
                    "patch_worker" => Field::Worker,
                    other => panic!("{name}: unknown field {other:?}"),
                })
                .unwrap_or_else(|| panic!("{name}: no `# talos-manager field: …` line"));
            let minors = patch
                .lines()
                .find_map(|line| line.strip_prefix("# talos-manager talos: "))
                .map(|range| {
                    let (from, to) = range.trim().split_once('-').expect("a range A-B or A-");
                    let to = if to.is_empty() {
                        u32::MAX
                    } else {
                        minor_of(&format!(":v{to}.0"))
                    };
                    (minor_of(&format!(":v{from}.0")), to)
                });
            Recipe {
                name,
                field,
                patch,
                minors,
            }
        })
        .collect()
}

fn config_with(recipe: &Recipe, install_image: &str) -> ConfigFields {
    let mut fields = ConfigFields {
        name: recipe.name.clone(),
        install_image: install_image.to_owned(),
        kubernetes_version: TalosVersion::parse(&format!("1.{}", minor_of(install_image)))
            .expect("a contract's installer")
            .default_kubernetes_version()
            .to_owned(),
        kubespan: false,
        patch: String::new(),
        patch_control_plane: String::new(),
        patch_worker: String::new(),
    };
    match recipe.field {
        Field::All => fields.patch = recipe.patch.clone(),
        Field::ControlPlane => fields.patch_control_plane = recipe.patch.clone(),
        Field::Worker => fields.patch_worker = recipe.patch.clone(),
    }
    fields
}

fn secrets() -> SecretsBundle {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/talos/secrets/original-app-secrets.yaml");
    SecretsBundle::parse(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The config a stand-in server of `machine_type` gets with `patches` on Talos `version`.
fn generate(
    version: TalosVersion,
    machine_type: MachineType,
    patches: ConfigPatches,
    secrets: &SecretsBundle,
) -> String {
    let mut options = GenerateOptions::new(
        "recipes",
        "https://192.0.2.1:6443",
        version.default_kubernetes_version(),
    );
    options.talos_version = version;
    let mut input = GenerateInput::new(options, machine_type);
    input.patches = patches;
    input.substitutions = Substitutions::new()
        .hostname("worker-1")
        .private_ip("10.0.1.1")
        .public_ip("192.0.2.10")
        .vlan("4000");
    ConfigEngine::generate(&input, secrets).unwrap()
}

#[test]
fn every_recipe_passes_the_api_check_for_every_talos_version() {
    let recipes = recipes();
    assert!(recipes.len() >= 6, "found only {} recipes", recipes.len());
    let secrets = secrets();
    let mut failures = Vec::new();
    for recipe in &recipes {
        for install_image in &install_images() {
            if !recipe.is_for(install_image) {
                continue;
            }
            // No error, and no warning either: a recipe never uses a deprecated field.
            match check_config_template_warnings(&config_with(recipe, install_image), &secrets) {
                Ok(warnings) if warnings.is_empty() => {}
                Ok(warnings) => failures.push(format!(
                    "{} with {install_image}: warnings {warnings:?}",
                    recipe.name
                )),
                Err(error) => {
                    failures.push(format!("{} with {install_image}: {error:?}", recipe.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_recipe_changes_the_config_of_the_nodes_it_is_for() {
    let secrets = secrets();
    for recipe in recipes() {
        let machine_type = match recipe.field {
            Field::ControlPlane => MachineType::ControlPlane,
            Field::All | Field::Worker => MachineType::Worker,
        };
        for version in TalosVersion::ALL {
            let image = format!("ghcr.io/siderolabs/installer:{}", version.release());
            if recipe.is_for(&image) {
                check_changes(&recipe, version, machine_type, &secrets);
            }
        }
    }
}

fn check_changes(
    recipe: &Recipe,
    version: TalosVersion,
    machine_type: MachineType,
    secrets: &SecretsBundle,
) {
    {
        let plain = generate(version, machine_type, ConfigPatches::default(), secrets);
        let text = vec![recipe.patch.clone()];
        let patches = match recipe.field {
            Field::All => ConfigPatches {
                all: text,
                ..ConfigPatches::default()
            },
            Field::ControlPlane => ConfigPatches {
                control_plane: text,
                ..ConfigPatches::default()
            },
            Field::Worker => ConfigPatches {
                worker: text,
                ..ConfigPatches::default()
            },
        };
        let patched = generate(version, machine_type, patches, secrets);
        assert_ne!(
            plain, patched,
            "{} changes nothing on {version}",
            recipe.name
        );
        assert!(
            !patched.contains("${"),
            "{}: a variable was left unfilled:\n{patched}",
            recipe.name
        );
    }
}

/// The check the recipes pass is not one that passes everything: the patch the original app's
/// test rejects (nameservers given as a map) fails it, named by its field.
#[test]
fn a_broken_recipe_fails_the_same_check() {
    let broken = Recipe {
        name: "broken.yaml".into(),
        field: Field::Worker,
        patch: "machine:\n  network:\n    nameservers:\n      first: 1.1.1.1\n".into(),
        minors: None,
    };
    let error = check_config_template(&config_with(&broken, &install_images()[2]), &secrets())
        .expect_err("a map where a list belongs is refused");
    let text = format!("{error:?}");
    assert!(text.contains("patch_worker"), "{text}");
}

/// The hostname as `machine.network.hostname` is refused on Talos 1.12 and newer next to the
/// generated `HostnameConfig`, as `talosctl validate -m metal` refuses it; `hostname-config.yaml`
/// is the form that passes there.
#[test]
fn the_hostname_moves_to_a_hostname_config_on_talos_1_12() {
    let old = recipes()
        .into_iter()
        .find(|r| r.name == "hostname.yaml")
        .expect("the hostname recipe");
    for install_image in install_images().iter().filter(|i| minor_of(i) >= 12) {
        let error = check_config_template(&config_with(&old, install_image), &secrets())
            .expect_err("refused on 1.12+");
        // Talos's words, then how to write it instead.
        assert!(
            error
                .issues
                .iter()
                .any(|issue| issue.to_string().starts_with(
                    "machine.network.hostname: static hostname is already set in v1alpha1 config: \
                 from Talos 1.12 on a node's hostname is a HostnameConfig document"
                ) && issue.message.contains("docs/recipes/hostname-config.yaml")),
            "{install_image}: {error:?}"
        );
    }
}

/// The governor as an install kernel argument is refused on Talos 1.12 and newer exactly as
/// `talosctl validate -m metal` refuses it (named by its path), and its replacement, the
/// schematic of `docs/recipes/schematics/governor.yaml`, keeps the argument next to the
/// `talos.config=` one talos-manager adds to every schematic.
#[test]
fn the_governor_moves_from_the_config_to_the_schematic_on_talos_1_12() {
    let recipe = recipes()
        .into_iter()
        .find(|r| r.name == "governor-install-arg.yaml")
        .expect("the governor recipe");
    for install_image in install_images().iter().filter(|i| minor_of(i) < 12) {
        check_config_template(&config_with(&recipe, install_image), &secrets())
            .unwrap_or_else(|error| panic!("accepted up to 1.11: {install_image}: {error:?}"));
    }
    for install_image in install_images().iter().filter(|i| minor_of(i) >= 12) {
        let error = check_config_template(&config_with(&recipe, install_image), &secrets())
            .expect_err("refused on 1.12+");
        // 1.12 and 1.13 name the UKI rule; 1.14 installs from an UnattendedInstallConfig
        // document and refuses any `machine.install` next to it.
        let expected = if minor_of(install_image) >= 14 {
            "machine.install: UnattendedInstallConfig config is incompatible with v1alpha1 \
             config (.machine.install)"
        } else {
            "machine.install.extraKernelArgs: install.extraKernelArgs and \
             install.grubUseUKICmdline can't be used together"
        };
        assert!(
            error
                .issues
                .iter()
                .any(|issue| issue.to_string() == expected),
            "{install_image}: {error:?}"
        );
    }
    let schematic = fs::read_to_string(recipes_dir().join("schematics/governor.yaml")).unwrap();
    let body = talos_manager_core::image_factory::force_talos_config(
        &schematic,
        "https://talos-manager.example.com/config",
    )
    .unwrap();
    assert!(
        body.contains("- cpufreq.default_governor=performance\n")
            && body.contains("- talos.config=https://talos-manager.example.com/config"),
        "{body}"
    );
}
