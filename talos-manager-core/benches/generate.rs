//! Benchmarks of machine-config generation: a worker and a control-plane config from a
//! parsed secrets bundle, with and without the original app's patches (Talos 1.10), and the
//! plain Talos 1.14 configs (`cargo bench --bench generate -- v1.14`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use talos_manager_core::talos::{
    ConfigEngine, ConfigPatches, GenerateInput, GenerateOptions, MachineType, SecretsBundle,
    Substitutions, TalosVersion, substitute,
};

const SECRETS: &str = include_str!("../tests/data/talos/secrets/original-app-secrets.yaml");
const PATCH: &str = include_str!("../tests/data/talos/original-app/worker-case/patch.yaml");
const PATCH_CONTROL_PLANE: &str =
    include_str!("../tests/data/talos/original-app/worker-case/patch-control-plane.yaml");
const PATCH_WORKER: &str =
    include_str!("../tests/data/talos/original-app/worker-case/patch-worker.yaml");

fn input(machine_type: MachineType, with_patches: bool) -> GenerateInput {
    let mut options = GenerateOptions::new("cluster", "https://cluster.example.com:6443", "1.30.1");
    options.talos_version = TalosVersion::V1_10;
    options.install_disk = Some("/dev/nvme0n1".into());
    options.install_image = Some("ghcr.io/siderolabs/installer:v1.10.4".into());
    options.kubespan = true;
    let mut input = GenerateInput::new(options, machine_type);
    if with_patches {
        let vars = Substitutions::new()
            .hostname("worker-1")
            .public_ip("72.14.201.110")
            .private_ip("10.0.1.1")
            .vlan("1337")
            .bootstrap_disk_wwid("lol");
        input.patches = ConfigPatches {
            all: vec![substitute(PATCH, &vars)],
            control_plane: vec![substitute(PATCH_CONTROL_PLANE, &vars)],
            worker: vec![substitute(PATCH_WORKER, &vars)],
        };
    }
    input
}

fn generate(c: &mut Criterion) {
    let secrets = SecretsBundle::parse(SECRETS).expect("fixture bundle parses");
    for (name, machine_type, with_patches) in [
        ("worker", MachineType::Worker, false),
        ("controlplane", MachineType::ControlPlane, false),
        ("worker+patches", MachineType::Worker, true),
        ("controlplane+patches", MachineType::ControlPlane, true),
    ] {
        let input = input(machine_type, with_patches);
        c.bench_function(name, |b| {
            b.iter(|| {
                ConfigEngine::generate(black_box(&input), black_box(&secrets)).expect("generates")
            })
        });
    }
    // Talos 1.14: some thirty typed documents per control plane.
    for (name, machine_type) in [
        ("v1.14 worker", MachineType::Worker),
        ("v1.14 controlplane", MachineType::ControlPlane),
    ] {
        let mut input = input(machine_type, false);
        input.options.talos_version = TalosVersion::V1_14;
        input.options.kubernetes_version = TalosVersion::V1_14.default_kubernetes_version().into();
        input.options.install_image = Some(TalosVersion::V1_14.default_installer_image());
        c.bench_function(name, |b| {
            b.iter(|| {
                ConfigEngine::generate(black_box(&input), black_box(&secrets)).expect("generates")
            })
        });
    }
}

criterion_group!(benches, generate);
criterion_main!(benches);
