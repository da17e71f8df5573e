//! `data.talosmanager_servers`, `data.talosmanager_server` and `data.talosmanager_talos_versions`
//! with the real Terraform CLI.

use talos_manager_core::ProviderKind;

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

data "talosmanager_servers" "same_account" {
  provider_account_id = data.talosmanager_server.by_id.provider_account_id
}

output "same_account" {
  value = [for server in data.talosmanager_servers.same_account.servers : server.id]
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
    assert_eq!(
        outputs["same_account"]["value"],
        serde_json::json!(["robot-9", "robot-7"])
    );
    assert_eq!(outputs["by_name"]["value"], "cloud-8");
    assert_eq!(outputs["by_id"]["value"], "control-plane-1");
    assert_eq!(outputs["ipv4"]["value"], "127.0.113.9");
    terraform.assert_no_changes();

    // A lookup that finds nothing says so.
    terraform.write("data \"talosmanager_server\" \"missing\" {\n  name = \"nope\"\n}");
    let output = terraform.fails(&["plan"]);
    assert!(output.contains("Not found in talos-manager"), "{output}");
    assert!(output.contains("\"nope\""), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talos_versions_newest_first_and_filtered() {
    let service = Service::start().await;
    service
        .factory
        .set_versions(&["v1.9.5", "v1.10.0-beta.1", "v1.10.4", "v1.11.0-alpha.1"]);
    let terraform = Terraform::new(&service);
    terraform.write(
        r#"
data "talosmanager_talos_versions" "all" {}

data "talosmanager_talos_versions" "stable" {
  stable_only = true
}

data "talosmanager_talos_versions" "recent" {
  min_version = "v1.10.0"
}

output "all" {
  value = data.talosmanager_talos_versions.all.versions
}

output "stable" {
  value = data.talosmanager_talos_versions.stable.versions
}

output "recent" {
  value = data.talosmanager_talos_versions.recent.versions
}

output "latest" {
  value = data.talosmanager_talos_versions.all.latest
}
"#,
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let state = terraform.show();
    let outputs = &state["values"]["outputs"];
    assert_eq!(
        outputs["all"]["value"],
        serde_json::json!(["v1.10.4", "v1.9.5", "v1.11.0-alpha.1", "v1.10.0-beta.1"])
    );
    assert_eq!(
        outputs["stable"]["value"],
        serde_json::json!(["v1.10.4", "v1.9.5"])
    );
    assert_eq!(
        outputs["recent"]["value"],
        serde_json::json!(["v1.10.4", "v1.11.0-alpha.1"])
    );
    assert_eq!(outputs["latest"]["value"], "v1.10.4");
    terraform.assert_no_changes();

    // A minimum that is no version points at the argument.
    terraform.write("data \"talosmanager_talos_versions\" \"bad\" {\n  min_version = \"1.10\"\n}");
    let output = terraform.fails(&["plan"]);
    assert!(
        output.contains("Error: Invalid Talos versions filter"),
        "{output}"
    );
    assert!(
        output.contains("\"1.10\" is not a talos version"),
        "{output}"
    );
    assert!(output.contains("on main.tf line 10"), "{output}");
}
