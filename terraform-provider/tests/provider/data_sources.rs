//! `data.talosmanager_servers`, `data.talosmanager_server`, `data.talosmanager_talos_versions`
//! and `data.talosmanager_cluster_health` with the real Terraform CLI.

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

/// A cluster of three control planes and a worker on the fake Talos API (real gRPC client)
/// and the fake Kubernetes API: healthy, then degraded with one control plane down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_of_a_running_cluster() {
    use std::net::Ipv4Addr;
    use talos_manager_core::jobs::TalosSettings;
    use talos_manager_core::testing::fleet::{FleetBuilder, pem, secrets_bundle};
    use talos_manager_fake_kubernetes::FakeKubernetes;
    use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};

    let secrets = secrets_bundle().await;
    let talos = FakeTalosCluster::start(&pem(&secrets.os.crt), &pem(&secrets.os.key), None)
        .await
        .unwrap();
    let kubernetes = FakeKubernetes::start(&pem(&secrets.k8s.crt), &pem(&secrets.k8s.key))
        .await
        .unwrap();
    let service = Service::start_with_talos(TalosSettings {
        connector: std::sync::Arc::new(talos_manager_talos_api::GrpcTalosConnector::new()),
        port: talos.port(),
    })
    .await;
    let names = [
        "control-plane-1",
        "control-plane-2",
        "control-plane-3",
        "worker-1",
    ];
    let fleet = FleetBuilder::new(&names, kubernetes.url(), &secrets)
        .new_servers(Ipv4Addr::new(127, 0, 0, 91), 1, Some("robot"))
        .build(service.store())
        .await
        .unwrap();
    for server in &fleet.servers {
        let spec = if server.control_plane {
            NodeSpec::control_plane(server.address, &server.name)
        } else {
            NodeSpec::worker(server.address, &server.name)
        };
        talos.add_node(spec).unwrap();
        kubernetes.add_node(&server.name, serde_json::json!({}), serde_json::json!([]));
    }
    let terraform = Terraform::new(&service);
    terraform.write(&format!(
        r#"
data "talosmanager_cluster_health" "prod" {{
  cluster_id = "{}"
}}

output "status" {{
  value = data.talosmanager_cluster_health.prod.status
}}

output "healthy" {{
  value = data.talosmanager_cluster_health.prod.healthy
}}

output "reasons" {{
  value = data.talosmanager_cluster_health.prod.reasons
}}

output "etcd" {{
  value = "${{data.talosmanager_cluster_health.prod.etcd_members_healthy}}/${{length(data.talosmanager_cluster_health.prod.etcd_members)}} led by ${{data.talosmanager_cluster_health.prod.etcd_leader}}"
}}

output "nodes" {{
  value = "${{data.talosmanager_cluster_health.prod.nodes_ready}}/${{data.talosmanager_cluster_health.prod.nodes_total}}"
}}

output "talos_versions" {{
  value = distinct([for node in data.talosmanager_cluster_health.prod.nodes : node.talos_version])
}}

output "earliest_expiry" {{
  value = data.talosmanager_cluster_health.prod.earliest_expiry
}}
"#,
        fleet.cluster
    ));
    terraform.ok(&["apply", "-auto-approve"]);
    let outputs = terraform.show()["values"]["outputs"].clone();
    assert_eq!(outputs["status"]["value"], "healthy", "{outputs:#}");
    assert_eq!(outputs["healthy"]["value"], true);
    assert_eq!(outputs["reasons"]["value"], serde_json::json!([]));
    assert_eq!(outputs["etcd"]["value"], "3/3 led by control-plane-1");
    assert_eq!(outputs["nodes"]["value"], "4/4");
    assert_eq!(
        outputs["talos_versions"]["value"],
        serde_json::json!(["v1.12.0"])
    );
    assert!(
        outputs["earliest_expiry"]["value"].is_string(),
        "{outputs:#}"
    );

    talos.take_down(fleet.server("control-plane-2").address);
    kubernetes.set_ready("control-plane-2", false);
    terraform.ok(&["apply", "-auto-approve"]);
    let outputs = terraform.show()["values"]["outputs"].clone();
    assert_eq!(outputs["status"]["value"], "degraded", "{outputs:#}");
    assert_eq!(outputs["healthy"]["value"], false);
    assert_eq!(outputs["etcd"]["value"], "2/3 led by control-plane-1");
    assert_eq!(outputs["nodes"]["value"], "3/4");
    let reasons = outputs["reasons"]["value"].to_string();
    assert!(
        reasons.contains("control-plane-2: its Talos API does not answer"),
        "{reasons}"
    );
}
