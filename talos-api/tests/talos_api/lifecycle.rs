//! Reboot, the legacy and the Talos 1.13+ upgrade paths, and a reset back to maintenance mode.

use talos_manager_core::talos_api::{
    MachineStage, RebootMode, ResetRequest, TalosApiError, TalosStatusCode, UpgradeRequest,
    WipeMode,
};
use talos_manager_fake_talos::{Faults, NodeSpec};

use super::harness::{Harness, address, wait_for, wait_running};

fn upgrade_to(tag: &str) -> UpgradeRequest {
    UpgradeRequest {
        image: format!(
            "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:{tag}"
        ),
        stage: false,
        force: false,
        reboot_mode: RebootMode::Powercycle,
    }
}

#[tokio::test]
async fn reboot_goes_down_and_comes_back() {
    let (h, nodes) = Harness::start(vec![NodeSpec::worker(address(2), "w-1")]).await;
    let node = nodes[0];
    h.api.version(node).await.unwrap();

    h.api.reboot(node, RebootMode::Default).await.unwrap();
    // Down: the cached connection is gone and new ones are refused.
    let error = wait_for("the node to go down", || async {
        h.api.version(node).await.err()
    })
    .await;
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());

    wait_running(h.api.as_ref(), node, "v1.12.0").await;
    assert!(
        h.cluster
            .calls()
            .iter()
            .any(|call| call.method == "MachineService/Reboot" && call.summary == "mode DEFAULT")
    );
}

#[tokio::test]
async fn before_1_13_the_legacy_upgrade_call_is_used() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::control_plane(address(2), "cp-1").version("v1.11.0"),
        NodeSpec::control_plane(address(3), "cp-2").version("v1.11.0"),
    ])
    .await;

    h.api
        .upgrade(nodes[0], &upgrade_to("v1.11.2"))
        .await
        .unwrap();
    wait_running(h.api.as_ref(), nodes[0], "v1.11.2").await;
    let calls = h.cluster.calls();
    let upgrade = calls
        .iter()
        .find(|call| call.method == "MachineService/Upgrade")
        .unwrap();
    assert!(
        upgrade.summary.ends_with(
            ":v1.11.2, preserve false, stage false, force false, reboot mode POWERCYCLE"
        ),
        "{}",
        upgrade.summary
    );
    assert!(
        !calls
            .iter()
            .any(|call| call.method.starts_with("ImageService")
                || call.method.starts_with("LifecycleService"))
    );

    // A failing legacy upgrade is the node's error status; the node stays as it was.
    h.cluster.set_faults(
        address(3),
        Faults {
            fail_upgrade: true,
            ..Faults::default()
        },
    );
    let error = h
        .api
        .upgrade(nodes[1], &upgrade_to("v1.11.2"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TalosApiError::Status {
                code: TalosStatusCode::Other(13),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(h.api.version(nodes[1]).await.unwrap().tag, "v1.11.0");
}

#[tokio::test]
async fn from_1_13_pull_then_lifecycle_upgrade_then_reboot() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::worker(address(2), "w-1").version("v1.13.0"),
        NodeSpec::worker(address(3), "w-2").version("v1.13.0"),
    ])
    .await;

    h.api
        .upgrade(nodes[0], &upgrade_to("v1.13.1"))
        .await
        .unwrap();
    wait_running(h.api.as_ref(), nodes[0], "v1.13.1").await;
    let methods = h.cluster.methods(address(2));
    assert_eq!(
        methods[..4],
        [
            "MachineService/Version",
            "ImageService/Pull",
            "LifecycleService/Upgrade",
            "MachineService/Reboot"
        ]
    );
    assert!(
        !methods
            .iter()
            .any(|method| method == "MachineService/Upgrade")
    );
    let calls = h.cluster.calls();
    let pull = calls
        .iter()
        .find(|call| call.method == "ImageService/Pull")
        .unwrap();
    assert!(
        pull.summary.ends_with(":v1.13.1, containerd CRI NS_SYSTEM"),
        "{}",
        pull.summary
    );
    let reboot = calls
        .iter()
        .find(|call| call.method == "MachineService/Reboot")
        .unwrap();
    assert_eq!(reboot.summary, "mode POWERCYCLE");

    // A failed install is an exit code in the stream: InstallFailed, and no reboot.
    h.cluster.set_faults(
        address(3),
        Faults {
            fail_upgrade: true,
            ..Faults::default()
        },
    );
    let error = h
        .api
        .upgrade(nodes[1], &upgrade_to("v1.13.1"))
        .await
        .unwrap_err();
    match &error {
        TalosApiError::InstallFailed {
            node,
            exit_code,
            message,
        } => {
            assert_eq!((*node, *exit_code), (nodes[1], 1));
            assert_eq!(message, "fake: the installer failed");
        }
        other => panic!("expected InstallFailed, got {other:?}"),
    }
    assert!(
        !h.cluster
            .methods(address(3))
            .iter()
            .any(|m| m == "MachineService/Reboot")
    );
    assert_eq!(h.api.version(nodes[1]).await.unwrap().tag, "v1.13.0");
}

#[tokio::test]
async fn a_reset_wiping_state_brings_the_node_back_in_maintenance_mode() {
    let (h, nodes) = Harness::start(vec![
        NodeSpec::control_plane(address(2), "cp-1"),
        NodeSpec::control_plane(address(3), "cp-2"),
    ])
    .await;
    let reset = ResetRequest {
        graceful: true,
        reboot: true,
        wipe_partitions: vec!["STATE".into(), "EPHEMERAL".into()],
        mode: WipeMode::All,
        user_disks: Vec::new(),
    };
    h.api.reset(nodes[1], &reset).await.unwrap();
    // Graceful: it left etcd.
    let members: Vec<String> = h
        .api
        .etcd_members(nodes[0])
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.hostname)
        .collect();
    assert_eq!(members, ["cp-1"]);

    let status = wait_for("maintenance mode", || async {
        h.maintenance.machine_status(nodes[1]).await.ok()
    })
    .await;
    assert_eq!(status.stage, MachineStage::Maintenance);
    // Its config is gone: our client certificate means nothing to it any more.
    let error = h.api.version(nodes[1]).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );
}
