//! `talosmanager_config` with the real Terraform CLI: service defaults, update in place, the
//! service's validation issues on the patch argument, Talos's warnings as Terraform warnings,
//! import, destroy, and the warning about a Talos minor newer than every version talos-manager
//! knows.

use super::harness::{Service, Terraform};

const ADDRESS: &str = "talosmanager_config.default";

fn config(kubernetes_version: &str, patch: &str) -> String {
    format!(
        "resource \"talosmanager_config\" \"default\" {{\n  name               = \"default\"\n  kubernetes_version = \"{kubernetes_version}\"\n  patch              = <<-YAML\n{patch}\n  YAML\n}}"
    )
}

/// The node's own label, as Talos 1.14 (the default) writes node labels: a `KubeNodeConfig`
/// document.
const GOOD_PATCH: &str = "    apiVersion: v1alpha1\n    kind: KubeNodeConfig\n    labels:\n      example.com/node: $${hostname}";
const BAD_PATCH: &str = "    machine:\n      network:\n        nameservers: not-a-list";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_validation() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(&config("1.30.1", GOOD_PATCH));
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    // The service's default installer (the Image Factory's `metal-installer/…:v1.14.1` from
    // Talos 1.14 on, which `installer:v1.` does not match).
    assert_eq!(
        values["install_image"],
        talos_manager_core::store::default_install_image(),
        "{values}"
    );
    assert_eq!(values["kubespan"], true);
    assert!(values["patch_worker"].is_null());
    let id = values["id"].as_str().unwrap().to_owned();
    terraform.assert_no_changes();

    terraform.write(&config("1.31.0", GOOD_PATCH));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let stored = service.store().list_configs().await.unwrap();
    assert_eq!(stored[0].fields.kubernetes_version, "1.31.0");
    terraform.assert_no_changes();

    // The service's issues point at the patch argument; nothing changes.
    terraform.write(&config("1.31.0", BAD_PATCH));
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(output.contains("Error: Invalid config"), "{output}");
    // The diagnostic points at the patch argument (line 12), and says what is wrong.
    assert!(output.contains("on main.tf line 12"), "{output}");
    assert!(output.contains("machine.network.nameservers"), "{output}");
    assert_eq!(
        service.store().list_configs().await.unwrap()[0]
            .fields
            .patch,
        "apiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels:\n  example.com/node: ${hostname}\n"
    );

    // Talos's warnings (a deprecated field) are Terraform warnings, apart from errors: the
    // config is saved.
    let warned = format!(
        "{GOOD_PATCH}\n    ---\n    machine:\n      network:\n        interfaces:\n          - interface: eth0\n            cidr: 10.0.0.2/24"
    );
    terraform.write(&config("1.31.0", &warned));
    let output = terraform.ok(&["apply", "-auto-approve"]);
    // Terraform wraps and frames diagnostics: compare the words.
    let words: Vec<&str> = output
        .split_whitespace()
        .filter(|word| *word != "│")
        .collect();
    let words = words.join(" ");
    assert!(
        words.contains("Warning: Talos warns about this config template"),
        "{output}"
    );
    assert!(
        words.contains(
            "machine.network.interfaces[0].cidr: \"eth0\": machine.network.interface.cidr is deprecated"
        ),
        "{output}"
    );
    assert!(!words.contains("Error"), "{output}");
    assert!(
        service.store().list_configs().await.unwrap()[0]
            .fields
            .patch
            .contains("cidr: 10.0.0.2/24"),
    );
    terraform.assert_no_changes();

    terraform.write(&config("1.31.0", GOOD_PATCH));
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    terraform.assert_no_changes();

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(service.store().list_configs().await.unwrap().is_empty());
}

/// An installer of a Talos minor newer than every version talos-manager knows is planned and
/// applied with the service's message as a warning (the API's `warnings`), and saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_talos_minor_is_a_warning() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(
        "resource \"talosmanager_config\" \"default\" {\n  name          = \"default\"\n  install_image = \"ghcr.io/siderolabs/installer:v1.15.0\"\n}",
    );
    let message = format!(
        "Talos v1.15 is newer than the newest config format talos-manager knows ({0}); its \
         configs are generated for {0}",
        talos_manager_core::talos::TalosVersion::LATEST
    );
    // Terraform wraps long warning details: compare without line breaks.
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("Warning: Newer Talos version"), "{plan}");
    assert!(flat(&plan).contains(&message), "{plan}");
    let applied = terraform.ok(&["apply", "-auto-approve"]);
    assert!(flat(&applied).contains(&message), "{applied}");
    let stored = service.store().list_configs().await.unwrap();
    assert_eq!(
        stored[0].fields.install_image,
        "ghcr.io/siderolabs/installer:v1.15.0"
    );
}
