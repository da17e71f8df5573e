//! `examples/terraform/basic/main.tf` applies as a user would run it, and a second plan is
//! empty.

use talos_manager_core::store::ProviderKind;

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
