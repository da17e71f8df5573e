//! Maintenance mode: unverified TLS without a client certificate, apply, then mutual TLS.

use talos_manager_core::Secret;
use talos_manager_core::talos_api::{ApplyMode, MachineStage, TalosApiError, TalosStatusCode};
use talos_manager_fake_talos::NodeSpec;

use super::harness::{Harness, address, wait_running};

#[tokio::test]
async fn apply_over_insecure_tls_turns_the_node_into_a_cluster_member() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::control_plane(address(2), "cp-1"),
        NodeSpec::control_plane(address(3), "cp-2").in_maintenance(),
    ])
    .await;
    let node = nodes[1];

    let status = h.maintenance.machine_status(node).await.unwrap();
    assert_eq!(status.stage, MachineStage::Maintenance);
    // Our cluster's client cannot reach it: its certificate is not from the OS CA.
    let error = h.api.version(node).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );

    // Talos 1.12 and older refuse NO_REBOOT in maintenance mode.
    let config = Secret::new("version: v1alpha1\nmachine:\n    type: controlplane\n".to_owned());
    let error = h
        .maintenance
        .apply_configuration(node, &config, ApplyMode::NoReboot)
        .await
        .unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::Unimplemented),
        "{error}"
    );

    let outcome = h
        .maintenance
        .apply_configuration(node, &config, ApplyMode::Auto)
        .await
        .unwrap();
    assert!(outcome.warnings.is_empty());
    assert_eq!(
        h.cluster.applied_configs(address(3)),
        [config.expose().clone()]
    );
    let call = h
        .cluster
        .calls()
        .into_iter()
        .find(|call| {
            call.method == "MachineService/ApplyConfiguration"
                && call.node == address(3)
                && call.summary.starts_with("mode AUTO")
        })
        .unwrap();
    assert!(!call.summary.contains("v1alpha1"), "{}", call.summary);

    // It comes back configured: now only mutual TLS reaches it, and it joined etcd.
    wait_running(h.api.as_ref(), node, "v1.12.0").await;
    let members: Vec<String> = h
        .api
        .etcd_members(nodes[0])
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.hostname)
        .collect();
    assert_eq!(members, ["cp-1", "cp-2"]);
    let error = h.maintenance.machine_status(node).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );
}
