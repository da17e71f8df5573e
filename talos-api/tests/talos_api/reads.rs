//! Reads from configured nodes: version, machine status, node name, kubeconfig.

use talos_manager_core::talos_api::{MachineStage, TalosStatusCode};
use talos_manager_fake_talos::NodeSpec;

use super::harness::{Harness, address};

#[tokio::test]
async fn version_status_and_node_name_of_a_configured_node() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::control_plane(address(2), "cp-1").version("v1.11.5"),
    ])
    .await;
    let node = nodes[0];

    let version = h.api.version(node).await.unwrap();
    assert_eq!(
        (
            version.tag.as_str(),
            version.arch.as_str(),
            version.platform.as_str()
        ),
        ("v1.11.5", "amd64", "metal")
    );

    let status = h.api.machine_status(node).await.unwrap();
    assert_eq!(status.stage, MachineStage::Running);
    assert!(status.ready);
    assert!(status.unmet_conditions.is_empty());

    assert_eq!(h.api.node_name(node).await.unwrap(), "cp-1");

    // One channel for the node: every call above went to the same fake node, by COSI for the
    // status and the name.
    assert_eq!(
        h.cluster.methods(address(2)),
        ["MachineService/Version", "State/Get", "State/Get"]
    );
    let gets: Vec<String> = h
        .cluster
        .calls()
        .into_iter()
        .filter(|call| call.method == "State/Get")
        .map(|call| call.summary)
        .collect();
    assert_eq!(
        gets,
        [
            "runtime MachineStatuses.runtime.talos.dev/machine",
            "k8s Nodenames.kubernetes.talos.dev/nodename"
        ]
    );
}

#[tokio::test]
async fn kubeconfig_comes_out_of_the_unfinished_tar() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::control_plane(address(2), "cp-1"),
        NodeSpec::worker(address(3), "w-1"),
    ])
    .await;
    let text =
        "apiVersion: v1\nkind: Config\n# a kubeconfig longer than one tar block\n".repeat(20);
    h.cluster.set_kubeconfig(&text);

    let kubeconfig = h.api.kubeconfig(nodes[0]).await.unwrap();
    assert_eq!(kubeconfig.expose(), &text);
    assert!(!format!("{kubeconfig:?}").contains("apiVersion"));

    // Workers run no control plane.
    let error = h.api.kubeconfig(nodes[1]).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::FailedPrecondition),
        "{error}"
    );
}
