//! The Terraform examples apply as a user would run them, and a second plan is empty:
//! `examples/terraform/basic` on servers put into the store, `examples/terraform/cluster` on
//! servers synced from the fake Hetzner APIs.

use talos_manager_core::ProviderKind;
use talos_manager_fake_hetzner::{
    CloudServer, FakeCloud, FakeRobot, RobotServer, RobotVswitch, VswitchMember,
};

use super::harness::{Service, Terraform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_example_applies_and_then_plans_no_changes() {
    let service = Service::start().await;
    service
        .add_server(ProviderKind::HetznerRobot, "5", "worker-5")
        .await;
    service
        .add_server(ProviderKind::HetznerCloud, "6", "control-plane-1")
        .await;
    let terraform = Terraform::new(&service);
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/terraform/basic/main.tf"
    );
    terraform.write_file("main.tf", &std::fs::read_to_string(example).unwrap());
    let server_name = "-var=server_name=worker-5".to_owned();

    terraform.ok(&["apply", "-auto-approve", &server_name]);
    let state = terraform.show();
    let outputs = &state["values"]["outputs"];
    assert_eq!(outputs["hostname"]["value"], "worker-5");
    assert!(
        outputs["kubeconfig"]["value"]
            .as_str()
            .unwrap()
            .contains("https://10.0.0.1:6443")
    );
    assert_eq!(outputs["private_ip"]["value"], "10.0.1.5");
    assert_eq!(
        outputs["robot_servers"]["value"],
        serde_json::json!(["worker-5"])
    );
    let run = terraform.run(&["plan", "-detailed-exitcode", &server_name]);
    assert_eq!(run.code, 0, "the second plan is not empty:\n{}", run.output);

    terraform.ok(&["destroy", "-auto-approve", &server_name]);
    assert!(
        service
            .store()
            .list_machine_configs()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        service
            .store()
            .list_label_taint_rules()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_example_applies_on_synced_servers_and_then_plans_no_changes() {
    let service = Service::start().await;
    service
        .robot
        .add_server(RobotServer::new(100_001, "control-plane-1"));
    service
        .robot
        .add_server(RobotServer::new(100_002, "worker-1"));
    service.robot.add_vswitch(RobotVswitch {
        id: 4321,
        name: "production".into(),
        vlan: 4000,
        cancelled: false,
        members: [100_001, 100_002]
            .map(|server_number| VswitchMember {
                server_number,
                pending_reads: 0,
            })
            .to_vec(),
    });
    service
        .cloud
        .add_server(CloudServer::new(200_001, "worker-2"));
    // Not configured by the example: the data sources find it, the machine configs skip it.
    service
        .cloud
        .add_server(CloudServer::new(200_002, "spare-1"));
    let mut terraform = Terraform::new(&service);
    terraform.env("TF_VAR_robot_user", FakeRobot::USER);
    terraform.env("TF_VAR_robot_password", FakeRobot::PASSWORD);
    terraform.env("TF_VAR_cloud_token", FakeCloud::TOKEN);
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/terraform/cluster/main.tf"
    );
    terraform.write_file("main.tf", &std::fs::read_to_string(example).unwrap());

    // The accounts first, then the service syncs their servers, then everything else.
    terraform.ok(&[
        "apply",
        "-auto-approve",
        "-target=talosmanager_provider_account.robot",
        "-target=talosmanager_provider_account.cloud",
    ]);
    service.sync().await;
    let output = terraform.ok(&["apply", "-auto-approve"]);
    assert!(!output.contains(FakeRobot::PASSWORD), "{output}");
    assert!(!output.contains(FakeCloud::TOKEN), "{output}");
    let state = terraform.show();
    let outputs = &state["values"]["outputs"];
    assert_eq!(
        outputs["nodes"]["value"],
        serde_json::json!({
            "control-plane-1": "10.0.0.1",
            "worker-1": "10.0.1.1",
            "worker-2": "10.0.1.2",
        })
    );
    assert_eq!(outputs["newest_talos_version"]["value"], "v1.10.5");

    let store = service.store();
    let machine_configs = store.list_machine_configs().await.unwrap();
    assert_eq!(machine_configs.len(), 3);
    let clusters = store.list_clusters().await.unwrap();
    assert_eq!(clusters.len(), 1);
    assert!(
        clusters[0].vswitch_id.is_some(),
        "the cluster is on the vSwitch"
    );
    let configs = store.list_configs().await.unwrap();
    let robot = configs
        .iter()
        .find(|config| config.fields.name == "robot")
        .unwrap();
    assert!(
        robot.fields.patch.contains("vlanId: ${vlan}"),
        "{}",
        robot.fields.patch
    );
    let schematics = store.list_schematics().await.unwrap();
    let factory_id = schematics[0].fields.factory_id.clone().unwrap();
    assert_eq!(
        robot.fields.install_image,
        format!("factory.talos.dev/installer/{factory_id}:v1.13.9"),
        "the example's talos_version"
    );
    let settings = store.settings().await.unwrap();
    assert_eq!(settings.default_schematic_id, Some(schematics[0].id));
    let in_cluster = |servers: Vec<talos_manager_core::store::Server>| -> Vec<String> {
        let mut names: Vec<String> = servers
            .into_iter()
            .filter(|server| server.cluster_id.is_some())
            .map(|server| server.inventory.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        in_cluster(store.list_servers().await.unwrap()),
        ["control-plane-1", "worker-1", "worker-2"]
    );

    terraform.assert_no_changes();

    // The servers leave the cluster and stay at Hetzner (talos-manager forgets them with their
    // provider accounts).
    let output = terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        output.contains("Warning: Not deleted in talos-manager"),
        "{output}"
    );
    assert!(store.list_machine_configs().await.unwrap().is_empty());
    assert!(store.list_provider_accounts().await.unwrap().is_empty());
    assert!(store.list_schematics().await.unwrap().is_empty());
    assert!(store.list_clusters().await.unwrap().is_empty());
}
