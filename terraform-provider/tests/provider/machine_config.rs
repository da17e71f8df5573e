//! `talosmanager_machine_config` with the real Terraform CLI: defaults computed by the service,
//! replacement when an argument changes (the API has no update), import, destroy.

use talos_manager_core::ProviderKind;

use super::harness::{Service, Terraform};

const ADDRESS: &str = "talosmanager_machine_config.worker";

fn machine_config(server_id: &str, config_id: &str, hostname: Option<&str>) -> String {
    let hostname = hostname
        .map(|hostname| format!("  hostname  = \"{hostname}\"\n"))
        .unwrap_or_default();
    format!(
        "resource \"talosmanager_machine_config\" \"worker\" {{\n  server_id = \"{server_id}\"\n  config_id = \"{config_id}\"\n{hostname}}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_replacement_and_import() {
    let service = Service::start().await;
    let server_id = service
        .add_server(ProviderKind::HetznerRobot, "7", "worker-3")
        .await;
    let config_id = service.add_config("default").await;
    let terraform = Terraform::new(&service);

    // Created with the service's defaults for what the configuration leaves open.
    terraform.write(&machine_config(&server_id, &config_id, None));
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.lines()
            .any(|line| line.contains("+ hostname") && line.contains("(known after apply)")),
        "{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["server_id"], server_id.as_str());
    assert_eq!(values["hostname"], "worker-3");
    assert_eq!(values["private_ip"], "10.0.1.3");
    assert_eq!(values["install_disk"], "/dev/sda");
    assert!(values["ephemeral_disk_identifier"].is_null());
    let first_id = values["id"].as_str().unwrap().to_owned();
    terraform.assert_no_changes();

    // Any change replaces it.
    terraform.write(&machine_config(&server_id, &config_id, Some("worker-4")));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("forces replacement"), "{plan}");
    assert!(plan.contains("must be replaced"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_ne!(values["id"], first_id.as_str());
    assert_eq!(values["hostname"], "worker-4");
    let stored = service.store().list_machine_configs().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].fields.hostname, "worker-4");
    terraform.assert_no_changes();

    // Import round trip.
    let id = values["id"].as_str().unwrap().to_owned();
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    terraform.assert_no_changes();

    // `already_configured` acts only at creation: setting it later is no replacement.
    let config = machine_config(&server_id, &config_id, Some("worker-4"));
    terraform.write(&config.replace("}", "  already_configured = true\n}"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(!plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(terraform.resource(ADDRESS).unwrap()["id"], id.as_str());
    terraform.assert_no_changes();

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        service
            .store()
            .list_machine_configs()
            .await
            .unwrap()
            .is_empty()
    );
}
