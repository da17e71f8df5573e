//! The machine config a node runs (COSI `MachineConfigs.config.talos.dev/v1alpha1`), dry runs
//! and the apply modes on a configured node.

use talos_manager_core::Secret;
use talos_manager_core::talos_api::{ApplyMode, RebootMode, TalosStatusCode};
use talos_manager_fake_talos::NodeSpec;

use super::harness::{Harness, address, wait_for, wait_running};

const RUNNING: &str = "# generated\nversion: v1alpha1\nmachine:\n  type: worker\n  certSANs: []\n  kubelet:\n    extraArgs:\n      max-pods: \"110\"\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: w-1\n";

#[tokio::test]
async fn the_running_config_dry_runs_and_modes() {
    let (h, nodes) = Harness::start(vec![NodeSpec::worker(address(40), "w-1")]).await;
    let node = nodes[0];

    // No config yet: not found.
    let error = h.api.machine_config(node).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::NotFound),
        "{error}"
    );

    // The config is served back as Talos re-encodes it.
    h.cluster.set_running_config(address(40), RUNNING);
    let running = h.api.machine_config(node).await.unwrap();
    let running = running.expose();
    assert!(!running.contains("# generated"), "{running}");
    assert!(!running.contains("certSANs"), "{running}");
    assert!(running.starts_with("version: v1alpha1"), "{running}");
    assert!(running.contains("hostname: w-1"), "{running}");

    // A dry run answers the diff and changes nothing.
    let changed = Secret::new(RUNNING.replace("\"110\"", "\"250\""));
    let outcome = h
        .api
        .dry_run_configuration(node, &changed, ApplyMode::Auto)
        .await
        .unwrap();
    assert!(
        outcome.mode_details.starts_with(
            "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run)."
        ),
        "{}",
        outcome.mode_details
    );
    assert!(
        outcome.mode_details.contains("max-pods: '250'"),
        "{}",
        outcome.mode_details
    );
    assert_eq!(h.cluster.applied_configs(address(40)).len(), 1);

    // A kernel change needs a reboot: NO_REBOOT refuses it, a dry run of AUTO says so.
    let kernel = Secret::new(RUNNING.replace(
        "machine:\n",
        "machine:\n  kernel:\n    modules:\n      - name: br_netfilter\n",
    ));
    let outcome = h
        .api
        .dry_run_configuration(node, &kernel, ApplyMode::Auto)
        .await
        .unwrap();
    assert!(
        outcome
            .mode_details
            .contains("Applied configuration with a reboot"),
        "{}",
        outcome.mode_details
    );
    let error = h
        .api
        .apply_configuration(node, &kernel, ApplyMode::NoReboot)
        .await
        .unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::InvalidArgument),
        "{error}"
    );

    // NO_REBOOT applies a live change.
    h.api
        .apply_configuration(node, &changed, ApplyMode::NoReboot)
        .await
        .unwrap();
    assert!(
        h.api
            .machine_config(node)
            .await
            .unwrap()
            .expose()
            .contains("'250'")
    );

    // STAGED waits for the next boot.
    let staged = Secret::new(RUNNING.replace("\"110\"", "\"300\""));
    let outcome = h
        .api
        .apply_configuration(node, &staged, ApplyMode::Staged)
        .await
        .unwrap();
    assert_eq!(
        outcome.mode_details,
        "Staged configuration to be applied after a reboot"
    );
    assert!(
        h.api
            .machine_config(node)
            .await
            .unwrap()
            .expose()
            .contains("'250'")
    );
    assert!(h.cluster.staged_config(address(40)).is_some());
    h.api.reboot(node, RebootMode::Default).await.unwrap();
    wait_running(&*h.api, node, "v1.12.0").await;
    wait_for("the staged config runs", || async {
        let config = h.api.machine_config(node).await.ok()?;
        config.expose().contains("'300'").then_some(())
    })
    .await;
    assert!(h.cluster.staged_config(address(40)).is_none());
}
