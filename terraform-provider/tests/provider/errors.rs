//! Readable diagnostics: a bad token, an unreachable service, an invalid label.

use super::harness::{Service, Terraform};

const RULE: &str = "resource \"talosmanager_label_taint_rule\" \"r\" {\n  match  = \"worker\"\n  labels = \"tier=app\"\n}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_unreachable_service_and_missing_credentials() {
    let service = Service::start().await;
    let mut terraform = Terraform::new(&service);
    terraform.write(&format!(
        "{RULE}\n\ndata \"talosmanager_servers\" \"all\" {{}}"
    ));

    terraform.env("TALOS_MANAGER_TOKEN", "not-a-token");
    let output = terraform.fails(&["plan"]);
    assert!(
        output.contains("talos-manager refused the credentials"),
        "{output}"
    );
    assert!(output.contains("TALOS_MANAGER_TOKEN"), "{output}");
    assert!(
        !output.contains("not-a-token"),
        "the token leaked:\n{output}"
    );

    // The service's Basic password works instead of a token.
    let mut with_password = Terraform::without_credentials(&service);
    with_password.write(&format!(
        "provider \"talosmanager\" {{\n  password = \"test-password\"\n}}\n\n{RULE}"
    ));
    with_password.ok(&["apply", "-auto-approve"]);
    with_password.env("TALOS_MANAGER_ENDPOINT", "http://127.0.0.1:9");
    let output = with_password.fails(&["plan"]);
    assert!(output.contains("talos-manager is unreachable"), "{output}");
    assert!(output.contains("http://127.0.0.1:9"), "{output}");

    let none = Terraform::without_credentials(&service);
    none.write(RULE);
    let output = none.fails(&["plan"]);
    assert!(
        output.contains("Missing talos-manager credentials"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_labels_point_at_the_attribute() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(
        "resource \"talosmanager_label_taint_rule\" \"r\" {\n  match  = \"worker\"\n  labels = \"tier=app,bad label=x\"\n  taints = \"dedicated=db:Sometimes\"\n}",
    );
    let output = terraform.fails(&["plan"]);
    assert!(
        output.contains("Error: Invalid label and taint rule"),
        "{output}"
    );
    assert!(output.contains("bad label=x"), "{output}");
    assert!(output.contains("on main.tf line 11"), "{output}");
    assert!(output.contains("on main.tf line 12"), "{output}");
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
async fn service_refusals_are_reported_with_its_message() {
    let service = Service::start().await;
    let config_id = service.add_config("default").await;
    let terraform = Terraform::new(&service);
    terraform.write(&format!(
        "resource \"talosmanager_machine_config\" \"m\" {{\n  server_id = \"robot-404\"\n  config_id = \"{config_id}\"\n}}"
    ));
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(output.contains("Not found in talos-manager"), "{output}");
    assert!(output.contains("POST /machine-configs"), "{output}");
    assert!(
        terraform
            .resource("talosmanager_machine_config.m")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_provider_arguments_point_at_themselves() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(&format!(
        "provider \"talosmanager\" {{\n  endpoint        = \"talos-manager:3000\"\n  request_timeout = 0\n}}\n\n{RULE}"
    ));
    let output = terraform.fails(&["plan"]);
    assert!(
        output.contains("Error: Invalid provider configuration"),
        "{output}"
    );
    assert!(
        output.contains("is not an http:// or https:// URL"),
        "{output}"
    );
    assert!(output.contains("on main.tf line 10"), "{output}");
    assert!(
        output.contains("Must be a positive number of seconds"),
        "{output}"
    );
}
