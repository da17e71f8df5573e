//! `talosmanager_settings`: saved on create and update, imported by the id `settings`; destroy
//! leaves them with a warning.

use super::harness::{Service, Terraform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_and_left_on_destroy() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform
        .write("resource \"talosmanager_settings\" \"this\" {\n  talos_version = \"v1.10.4\"\n}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        service.store().settings().await.unwrap().talos_version,
        "v1.10.4"
    );
    terraform.assert_no_changes();

    terraform
        .write("resource \"talosmanager_settings\" \"this\" {\n  talos_version = \"v1.11.0\"\n}");
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        service.store().settings().await.unwrap().talos_version,
        "v1.11.0"
    );

    terraform.ok(&["state", "rm", "talosmanager_settings.this"]);
    terraform.ok(&["import", "talosmanager_settings.this", "settings"]);
    terraform.assert_no_changes();

    let output = terraform.ok(&["destroy", "-auto-approve"]);
    assert!(output.contains("cannot be deleted"), "{output}");
    assert_eq!(
        service.store().settings().await.unwrap().talos_version,
        "v1.11.0"
    );
}
