//! `data.talosmanager_servers` and `data.talosmanager_server` with the real Terraform CLI.

use talos_manager_core::store::ProviderKind;

use super::harness::{Service, Terraform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_by_filters_id_and_name() {
    let service = Service::start().await;
    service
        .add_server(ProviderKind::HetznerRobot, "7", "worker-1")
        .await;
    service
        .add_server(ProviderKind::HetznerCloud, "8", "worker-2")
        .await;
    service
        .add_server(ProviderKind::HetznerRobot, "9", "control-plane-1")
        .await;
    let terraform = Terraform::new(&service);
    terraform.write(
        r#"
data "talosmanager_servers" "robot_workers" {
  provider_kind = "hetzner_robot"
  name_contains = "worker"
}

data "talosmanager_servers" "all" {}

data "talosmanager_server" "by_name" {
  name = "worker-2"
}

data "talosmanager_server" "by_id" {
  id = "robot-9"
}

output "robot_workers" {
  value = [for server in data.talosmanager_servers.robot_workers.servers : server.id]
}

output "all" {
  value = length(data.talosmanager_servers.all.servers)
}

output "by_name" {
  value = data.talosmanager_server.by_name.id
}

output "by_id" {
  value = data.talosmanager_server.by_id.name
}

output "ipv4" {
  value = data.talosmanager_server.by_id.ipv4
}
"#,
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let state = terraform.show();
    let outputs = &state["values"]["outputs"];
    assert_eq!(
        outputs["robot_workers"]["value"],
        serde_json::json!(["robot-7"])
    );
    assert_eq!(outputs["all"]["value"], 3);
    assert_eq!(outputs["by_name"]["value"], "cloud-8");
    assert_eq!(outputs["by_id"]["value"], "control-plane-1");
    assert_eq!(outputs["ipv4"]["value"], "203.0.113.9");
    terraform.assert_no_changes();

    // A lookup that finds nothing says so.
    terraform.write("data \"talosmanager_server\" \"missing\" {\n  name = \"nope\"\n}");
    let output = terraform.fails(&["plan"]);
    assert!(output.contains("Not found in talos-manager"), "{output}");
    assert!(output.contains("\"nope\""), "{output}");
}
