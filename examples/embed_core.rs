//! Generates a cluster's Talos configs from Rust, without talosctl: a new secrets bundle, a
//! worker config with the original app's patches and `${…}` variables and an EPHEMERAL disk,
//! its validation, and the talosconfig and admin kubeconfig.
//!
//! Run: `cargo run -p talos-manager-examples --example embed_core`

use anyhow::Context as _;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::talos::{
    ConfigEngine, ConfigPatches, EphemeralDisk, GenerateInput, GenerateOptions, MachineType,
    SecretsBundle, Substitutions, TalosVersion, ValidationMode, admin_kubeconfig, format_issues,
    talosconfig, validate,
};

fn main() -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let secrets = SecretsBundle::generate(now, &mut SystemRandom).context("generate secrets")?;

    let mut options = GenerateOptions::new(
        "example",
        "https://example.internal:6443",
        TalosVersion::V1_10.default_kubernetes_version(),
    );
    options.talos_version = TalosVersion::V1_10;
    options.install_disk = Some("/dev/nvme0n1".into());
    options.install_image = Some("ghcr.io/siderolabs/installer:v1.10.9".into());
    options.kubespan = true;

    let mut input = GenerateInput::new(options, MachineType::Worker);
    input.patches = ConfigPatches {
        all: vec!["machine:\n  network:\n    interfaces:\n      - interface: eth0\n        dhcp: true\n        vlans:\n          - vlanId: ${vlan}\n            addresses: [${private_ip}/21]\n".into()],
        control_plane: Vec::new(),
        worker: vec!["machine:\n  nodeLabels:\n    role: storage\n".into()],
    };
    input.substitutions = Substitutions::new()
        .hostname("worker-1")
        .vlan("4000")
        .private_ip("10.0.1.1");
    input.ephemeral_disk = Some(EphemeralDisk::parse("wwid:eui.0025384500000002")?);

    let worker = ConfigEngine::generate(&input, &secrets).context("generate the worker config")?;
    let issues = validate(&worker, ValidationMode::Metal, true);
    anyhow::ensure!(issues.is_empty(), "{}", format_issues(&issues));

    let talosconfig = talosconfig(
        &secrets,
        "example",
        &["10.0.1.1".into()],
        &[],
        now,
        &mut SystemRandom,
    )?;
    let kubeconfig = admin_kubeconfig(
        &secrets,
        "example",
        "https://example.internal:6443",
        now,
        &mut SystemRandom,
    )?;
    eprintln!(
        "worker config: {} lines, {} documents, valid for metal; talosconfig {} bytes; kubeconfig {} bytes",
        worker.lines().count(),
        worker.matches("\n---\n").count() + 1,
        talosconfig.len(),
        kubeconfig.len(),
    );
    Ok(())
}
