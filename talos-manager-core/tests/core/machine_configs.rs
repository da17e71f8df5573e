//! Configuring a server through the library, as an embedder would: the per-node defaults the
//! API applies come from core's `assign_machine_config`.

use talos_manager_core::ids::ConfigId;
use talos_manager_core::node_config::{
    AssignMachineConfigError, MachineConfigChoices, assign_machine_config,
};
use talos_manager_core::store::{ConfigFields, Server};
use talos_manager_core::talos::MachineType;
use talos_manager_core::testing::fleet::add_server;
use talos_manager_core::{ProviderKind, Store, StoreError};

/// A Robot server named `name` at 192.0.2.3, as a sync stores it.
async fn server(store: &Store, name: &str) -> Server {
    add_server(store, ProviderKind::HetznerRobot, "3", name, "192.0.2.3")
        .await
        .unwrap()
}

async fn config(store: &Store) -> ConfigId {
    let fields = ConfigFields {
        name: "default".into(),
        install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
        kubernetes_version: "1.30.1".into(),
        kubespan: true,
        patch: String::new(),
        patch_control_plane: String::new(),
        patch_worker: String::new(),
    };
    store.create_config(&fields).await.unwrap().id
}

fn choices(config_id: ConfigId) -> MachineConfigChoices {
    MachineConfigChoices {
        config_id,
        hostname: None,
        private_ip: None,
        install_disk: None,
        ephemeral_disk_identifier: None,
        machine_type: None,
        already_configured: false,
    }
}

store_test!(a_server_gets_the_defaults_of_its_name_and_disk, |store| {
    let server = server(store, "control-plane-3").await;
    let config_id = config(store).await;

    let assigned = assign_machine_config(store, &server, choices(config_id))
        .await
        .unwrap();
    assert_eq!(assigned.fields.hostname, "control-plane-3");
    assert_eq!(assigned.fields.private_ip, "10.0.0.3");
    assert_eq!(assigned.fields.install_disk, "/dev/sda");
    assert_eq!(assigned.machine_type, MachineType::ControlPlane);
    assert_eq!(
        store
            .get_server(server.id)
            .await
            .unwrap()
            .last_configured_at,
        None
    );

    // Bootstrapped on a disk: that disk; configured outside talos-manager: marked configured.
    let server = store
        .record_bootstrapped(server.id, "/dev/nvme1n1", None)
        .await
        .unwrap();
    let replaced = assign_machine_config(
        store,
        &server,
        MachineConfigChoices {
            hostname: Some("worker-4".into()),
            already_configured: true,
            ..choices(config_id)
        },
    )
    .await
    .unwrap();
    assert_eq!(replaced.fields.private_ip, "10.0.1.4");
    assert_eq!(replaced.fields.install_disk, "/dev/nvme1n1");
    assert_eq!(replaced.machine_type, MachineType::ControlPlane, "kept");
    assert!(
        store
            .get_server(server.id)
            .await
            .unwrap()
            .last_configured_at
            .is_some()
    );
});

store_test!(invalid_values_and_unknown_configs_store_nothing, |store| {
    let server = server(store, "node").await;
    let config_id = config(store).await;

    // "node" ends with no number: no private IP by convention, and none given.
    let error = assign_machine_config(store, &server, choices(config_id))
        .await
        .unwrap_err();
    let AssignMachineConfigError::Invalid(invalid) = error else {
        panic!("{error:?}");
    };
    assert!(
        invalid
            .issues
            .iter()
            .any(|issue| issue.path == "private_ip"),
        "{invalid:?}"
    );

    let error = assign_machine_config(store, &server, choices(ConfigId(999)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AssignMachineConfigError::Store(StoreError::NotFound { .. })
        ),
        "{error:?}"
    );
    assert!(store.list_machine_configs().await.unwrap().is_empty());
});
