//! `talosmanager_cluster` with the real Terraform CLI: secrets made by the service, client
//! configs issued, endpoint changed in place, name forcing replacement, import, validation.

use super::harness::{Service, Terraform};

const ADDRESS: &str = "talosmanager_cluster.c";

fn cluster(name: &str, endpoint: &str) -> String {
    format!(
        "resource \"talosmanager_cluster\" \"c\" {{\n  name     = \"{name}\"\n  endpoint = \"{endpoint}\"\n}}\n\noutput \"kubeconfig\" {{\n  value     = talosmanager_cluster.c.kubeconfig\n  sensitive = true\n}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(&cluster("production", "https://10.0.0.1:6443"));
    let output = terraform.ok(&["apply", "-auto-approve"]);
    assert!(
        !output.contains("BEGIN"),
        "a secret reached the output:\n{output}"
    );
    let values = terraform.resource(ADDRESS).unwrap();
    let first_id = values["id"].as_str().unwrap().to_owned();
    assert!(
        values["secrets"].as_str().unwrap().contains("secrets:"),
        "{values}"
    );
    assert!(
        values["talosconfig"]
            .as_str()
            .unwrap()
            .contains("context: production"),
        "{values}"
    );
    assert!(
        values["kubeconfig"]
            .as_str()
            .unwrap()
            .contains("https://10.0.0.1:6443"),
        "{values}"
    );
    terraform.assert_no_changes();

    // A new endpoint: updated in place, new kubeconfig.
    terraform.write(&cluster("production", "https://10.0.0.2:6443"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["id"], first_id.as_str());
    assert!(
        values["kubeconfig"]
            .as_str()
            .unwrap()
            .contains("https://10.0.0.2:6443"),
        "{values}"
    );
    terraform.assert_no_changes();

    // A new name replaces it.
    terraform.write(&cluster("staging", "https://10.0.0.2:6443"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_ne!(values["id"], first_id.as_str());
    let clusters = service.store().list_clusters().await.unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].name, "staging");

    // Import round trip: the secrets come back from the service.
    let id = values["id"].as_str().unwrap().to_owned();
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    assert_eq!(
        terraform.resource(ADDRESS).unwrap()["secrets"],
        values["secrets"]
    );
    // Import does not record outputs: the apply writes the output and changes nothing else.
    let output = terraform.ok(&["apply", "-auto-approve"]);
    assert!(
        output.contains("0 added, 0 changed, 0 destroyed"),
        "{output}"
    );
    terraform.assert_no_changes();

    // An invalid name points at the name argument.
    terraform.write(&cluster("Bad Name", "https://10.0.0.2:6443"));
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(output.contains("Error: Invalid cluster"), "{output}");
    assert!(output.contains("on main.tf line 10"), "{output}");

    terraform.write(&cluster("staging", "https://10.0.0.2:6443"));
    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(service.store().list_clusters().await.unwrap().is_empty());
}
