//! `talosmanager_cluster` with the real Terraform CLI: secrets made by the service, client
//! configs issued, endpoint and name changed in place (the secrets stay), import, validation,
//! and a cluster that servers use refused on destroy.

use talos_manager_core::Architecture;
use talos_manager_core::ProviderKind;
use talos_manager_core::Secret;
use talos_manager_core::ids::ClusterId;
use talos_manager_core::store::ServerInventory;

use super::harness::{Service, Terraform, flat};

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

    // A new name renames it in place: same cluster, same secrets bundle, new client configs.
    let secrets = values["secrets"].clone();
    terraform.write(&cluster("staging", "https://10.0.0.2:6443"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(!plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["id"], first_id.as_str());
    assert_eq!(values["secrets"], secrets, "the PKI is kept");
    assert!(
        values["talosconfig"]
            .as_str()
            .unwrap()
            .contains("context: staging"),
        "{values}"
    );
    let clusters = service.store().list_clusters().await.unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0].name, "staging");
    terraform.assert_no_changes();

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

    // A cluster a server belongs to is not destroyed: its PKI is what the node trusts.
    terraform.write(&cluster("staging", "https://10.0.0.2:6443"));
    let store = service.store();
    let account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "robot",
            &Secret::new("secret".into()),
        )
        .await
        .unwrap();
    let (server, _) = store
        .upsert_server(
            account.id,
            &ServerInventory {
                provider: ProviderKind::HetznerRobot,
                provider_id: "7".into(),
                name: "worker-7".into(),
                ipv4: Some("127.0.0.7".into()),
                ipv6: None,
                product: "AX52".into(),
                data_center: "FSN1-DC16".into(),
                status: "ready".into(),
                cancelled: false,
                architecture: Architecture::Amd64,
                vswitch_id: None,
            },
        )
        .await
        .unwrap();
    let cluster_id = ClusterId(id.parse().unwrap());
    store
        .update_server_assignment(server.id, "worker-7", Some(cluster_id), None, None)
        .await
        .unwrap();
    let output = flat(&terraform.fails(&["destroy", "-auto-approve"]));
    assert!(
        output.contains(&format!("cluster {id} is still in use")),
        "{output}"
    );
    assert_eq!(store.list_clusters().await.unwrap().len(), 1);
    assert!(terraform.resource(ADDRESS).is_some());

    store
        .update_server_assignment(server.id, "worker-7", None, None, None)
        .await
        .unwrap();
    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(service.store().list_clusters().await.unwrap().is_empty());
}
