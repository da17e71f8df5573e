//! `talosmanager_server` with the real Terraform CLI against servers synced from the fake Robot
//! webservice: adopt, rename at Hetzner, cluster and vSwitch, import, drift, destroy (which
//! keeps the server).

use talos_manager_core::ProviderKind;
use talos_manager_core::Secret;
use talos_manager_fake_hetzner::{FakeRobot, RobotServer, RobotVswitch};

use super::harness::{Service, Terraform, flat};

const ADDRESS: &str = "talosmanager_server.worker";

/// The Robot server number under test.
const NUMBER: u64 = 321;

/// A service whose Robot account lists server 321 (`worker-1`) and vSwitch 4321.
async fn service_with_robot_server() -> Service {
    let service = Service::start().await;
    service
        .robot
        .add_server(RobotServer::new(NUMBER, "worker-1"));
    service.robot.add_vswitch(RobotVswitch {
        id: 4321,
        name: "production".into(),
        vlan: 4000,
        cancelled: false,
        members: Vec::new(),
    });
    service
        .store()
        .create_provider_account(
            ProviderKind::HetznerRobot,
            FakeRobot::USER,
            &Secret::new(FakeRobot::PASSWORD.into()),
        )
        .await
        .unwrap();
    service.sync().await;
    service
}

/// The configuration: a cluster, and the server with `arguments`.
fn config(arguments: &str) -> String {
    format!(
        "resource \"talosmanager_cluster\" \"prod\" {{\n  name     = \"prod\"\n  endpoint = \"https://127.0.0.1:6443\"\n}}\n\n\
         resource \"talosmanager_server\" \"worker\" {{\n  server_id = \"robot-{NUMBER}\"\n{arguments}}}\n"
    )
}

/// The Robot webservice requests that changed something.
fn robot_writes(service: &Service) -> Vec<String> {
    service
        .robot
        .requests()
        .into_iter()
        .filter(|request| !request.starts_with("GET "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_rename_assign_import_drift_destroy() {
    let service = service_with_robot_server().await;
    let terraform = Terraform::new(&service);

    // A server talos-manager does not list cannot be adopted.
    terraform.write(&config("").replace("robot-321", "robot-999"));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("Not found in talos-manager"), "{output}");
    assert!(output.contains("robot-999"), "{output}");

    // Adopting changes nothing: what the configuration leaves out is read.
    terraform.write(&config(""));
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.lines()
            .any(|line| line.contains("+ name") && line.contains("(known after apply)")),
        "{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["id"], "robot-321");
    assert_eq!(values["name"], "worker-1");
    assert_eq!(values["provider_kind"], "hetzner_robot");
    assert_eq!(values["product"], "AX52");
    assert!(values["cluster_id"].is_null(), "{values:#}");
    assert!(values["vswitch_id"].is_null(), "{values:#}");
    assert_eq!(values["state"], "unknown");
    assert!(
        robot_writes(&service).is_empty(),
        "{:?}",
        robot_writes(&service)
    );
    terraform.assert_no_changes();

    // A new name is pushed to Robot, in place.
    terraform.write(&config("  name      = \"worker-7\"\n"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(plan.contains("\"worker-1\" -> \"worker-7\""), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(service.robot.server(NUMBER).unwrap().name, "worker-7");
    assert_eq!(robot_writes(&service), ["POST /server/321"]);
    let stored = service.store().list_servers().await.unwrap().remove(0);
    assert_eq!(stored.inventory.name, "worker-7");
    terraform.assert_no_changes();

    // Into the cluster and onto the vSwitch.
    let assigned = "  name       = \"worker-7\"\n  cluster_id = talosmanager_cluster.prod.id\n  vswitch_id = \"4321\"\n";
    terraform.write(&config(assigned));
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    let cluster_id = terraform.resource("talosmanager_cluster.prod").unwrap()["id"].clone();
    assert_eq!(values["cluster_id"], cluster_id);
    assert_eq!(values["vswitch_id"], "4321");
    let stored = service.store().list_servers().await.unwrap().remove(0);
    assert_eq!(
        stored.cluster_id.map(|id| id.to_string()).as_deref(),
        cluster_id.as_str()
    );
    assert_eq!(
        robot_writes(&service),
        ["POST /server/321", "POST /vswitch/4321/server"]
    );
    let members = service.robot.vswitch(4321).unwrap().members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].server_number, NUMBER);
    terraform.assert_no_changes();

    // Import round trip.
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, "robot-321"]);
    terraform.assert_no_changes();
    let writes_before = robot_writes(&service).len();

    // Renamed at Hetzner: the sync brings the name in, the plan puts it back.
    service.robot.add_server(RobotServer {
        name: "renamed-by-hand".into(),
        ..service.robot.server(NUMBER).unwrap()
    });
    service.sync().await;
    let plan = terraform.ok(&["plan"]);
    assert!(
        plan.contains("\"renamed-by-hand\" -> \"worker-7\""),
        "{plan}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(service.robot.server(NUMBER).unwrap().name, "worker-7");
    assert_eq!(
        robot_writes(&service)[writes_before..],
        ["POST /server/321"]
    );
    terraform.assert_no_changes();

    // Out of the cluster in place with "".
    terraform.write(&config(
        &assigned.replace("talosmanager_cluster.prod.id", "\"\""),
    ));
    terraform.ok(&["apply", "-auto-approve"]);
    let stored = service.store().list_servers().await.unwrap().remove(0);
    assert_eq!(stored.cluster_id, None);
    assert_eq!(terraform.resource(ADDRESS).unwrap()["cluster_id"], "");
    terraform.assert_no_changes();
    terraform.write(&config(assigned));
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.assert_no_changes();

    // Destroy: the server stays, at Robot and in talos-manager, out of its cluster.
    let writes_before = robot_writes(&service).len();
    let output = flat(&terraform.ok(&["destroy", "-auto-approve"]));
    assert!(
        output.contains("Warning: Not deleted in talos-manager"),
        "{output}"
    );
    assert!(
        output.contains("is only removed from the Terraform state"),
        "{output}"
    );
    assert!(
        output.contains("not deleted or cancelled at Hetzner"),
        "{output}"
    );
    assert_eq!(robot_writes(&service).len(), writes_before);
    let robot = service.robot.server(NUMBER).unwrap();
    assert_eq!(robot.name, "worker-7");
    assert!(!robot.cancelled);
    let stored = service.store().list_servers().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].cluster_id, None);
    assert_eq!(
        stored[0]
            .inventory
            .vswitch_id
            .map(|id| id.to_string())
            .as_deref(),
        Some("4321")
    );
    assert!(service.store().list_clusters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_are_diagnostics_on_their_attributes() {
    let service = service_with_robot_server().await;
    let terraform = Terraform::new(&service);
    terraform.write(&config(
        "  name       = \" \"\n  cluster_id = \"77\"\n  vswitch_id = \"9\"\n",
    ));
    let output = flat(&terraform.fails(&["apply", "-auto-approve"]));
    assert!(output.contains("Must not be empty"), "{output}");
    assert!(output.contains("Cluster 77 does not exist"), "{output}");
    assert!(output.contains("Vswitch 9 does not exist"), "{output}");
    assert!(
        output.contains("with talosmanager_server.worker"),
        "{output}"
    );
    // Nothing changed, and Terraform did not take the server.
    assert!(robot_writes(&service).is_empty());
    assert!(terraform.resource(ADDRESS).is_none());
}
