//! `talosmanager_schematic` with the real Terraform CLI against the fake Image Factory: the
//! service's forced `talos.config=` argument causes no diff, the body as written stays in the
//! state, a new body registers a new factory id in place, import, changes and deletion outside
//! Terraform, destroy, a body the service refuses.

use talos_manager_core::store::SchematicFields;
use talos_manager_fake_hetzner::FakeImageFactory;

use super::harness::{HOST, Service, Terraform};

const ADDRESS: &str = "talosmanager_schematic.s";

const AMD_UCODE: &str =
    "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/amd-ucode\n";

fn schematic(name: &str, body: &str) -> String {
    format!(
        "resource \"talosmanager_schematic\" \"s\" {{\n  name = \"{name}\"\n  body = <<-YAML\n{}  YAML\n}}",
        body.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forced_argument_makes_no_diff_and_a_new_body_updates_in_place() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);

    terraform.write(&schematic("amd", AMD_UCODE));
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.lines()
            .any(|line| line.contains("+ factory_id") && line.contains("(known after apply)")),
        "{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(
        values["body"], AMD_UCODE,
        "the state keeps the body as written"
    );
    let effective = values["effective_body"].as_str().unwrap().to_owned();
    assert!(
        effective.contains(&format!("talos.config=https://{HOST}/config")),
        "{effective}"
    );
    assert!(effective.contains("siderolabs/amd-ucode"), "{effective}");
    assert_eq!(
        values["factory_id"].as_str(),
        FakeImageFactory::schematic_id(&effective).as_deref()
    );
    let id = values["id"].as_str().unwrap().to_owned();
    terraform.assert_no_changes();

    // The same schematic written differently (JSON here) is no change.
    terraform.write(
        "resource \"talosmanager_schematic\" \"s\" {\n  name = \"amd\"\n  body = jsonencode({ customization = { systemExtensions = { officialExtensions = [\"siderolabs/amd-ucode\"] } } })\n}",
    );
    terraform.assert_no_changes();

    // A different body: registered again in place, with a new factory id.
    let with_args = format!("{AMD_UCODE}  extraKernelArgs:\n    - net.ifnames=0\n");
    terraform.write(&schematic("amd", &with_args));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(
        plan.lines()
            .any(|line| line.contains("~ factory_id") && line.contains("(known after apply)")),
        "{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["id"], id.as_str());
    assert_eq!(values["body"], with_args.as_str());
    let effective = values["effective_body"].as_str().unwrap();
    assert!(effective.contains("net.ifnames=0"), "{effective}");
    assert_eq!(
        values["factory_id"].as_str(),
        FakeImageFactory::schematic_id(effective).as_deref()
    );
    assert_eq!(service.factory.schematics().len(), 2);
    terraform.assert_no_changes();

    // A body that is no schematic: the service's reason, nothing changed.
    terraform.write(&schematic("amd", "customization: [1]\n"));
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(output.contains("Error: Invalid schematic"), "{output}");
    assert!(
        output.contains("customization: must be a mapping"),
        "{output}"
    );
    assert_eq!(
        terraform.resource(ADDRESS).unwrap()["body"],
        with_args.as_str()
    );

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(service.store().list_schematics().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_changes_outside_terraform() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    let with_args = format!("{AMD_UCODE}  extraKernelArgs:\n    - net.ifnames=0\n");
    terraform.write(&schematic("amd", &with_args));
    terraform.ok(&["apply", "-auto-approve"]);
    let id = terraform.resource(ADDRESS).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Import: the service's body stands in for the one written, and plans no change.
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    terraform.assert_no_changes();

    // Changed outside Terraform: the plan puts the configured body back.
    let stored = service.store().list_schematics().await.unwrap();
    service
        .store()
        .update_schematic(
            stored[0].id,
            &SchematicFields {
                name: "amd".into(),
                body: "customization: {}\n".into(),
                factory_id: None,
            },
        )
        .await
        .unwrap();
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(plan.contains("net.ifnames=0"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.assert_no_changes();

    // Deleted outside Terraform: a refresh forgets it, the next apply creates it again.
    service
        .store()
        .delete_schematic(stored[0].id)
        .await
        .unwrap();
    terraform.ok(&["apply", "-refresh-only", "-auto-approve"]);
    assert!(terraform.resource(ADDRESS).is_none());
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(service.store().list_schematics().await.unwrap().len(), 1);

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(service.store().list_schematics().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_body_only_the_config_argument_is_registered() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write("resource \"talosmanager_schematic\" \"s\" {\n  name = \"plain\"\n}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert!(values["body"].is_null(), "{values}");
    assert!(
        values["effective_body"]
            .as_str()
            .unwrap()
            .contains("talos.config="),
        "{values}"
    );
    terraform.assert_no_changes();
    let id = values["id"].as_str().unwrap().to_owned();
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    terraform.assert_no_changes();
}
