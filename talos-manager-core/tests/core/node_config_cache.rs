//! `NodeConfigCache`, what `/config` serves from under load: exact for writes through the same
//! store, at most its time to live behind writes from another process, and never an error
//! remembered.

use std::time::Duration;

use talos_manager_core::Architecture;
use talos_manager_core::ProviderKind;
use talos_manager_core::ids::ServerId;
use talos_manager_core::node_config::{NodeConfigCache, NodeConfigError, ServerLookup};
use talos_manager_core::store::{
    ClusterFields, ConfigFields, MachineConfigFields, ProbeResult, ServerInventory,
};
use talos_manager_core::{Secret, Store};

const SECRETS: &str = include_str!("../data/talos/secrets/secrets-bundle.yaml");

fn config_fields(hostname_patch: &str) -> ConfigFields {
    ConfigFields {
        name: "default".into(),
        install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
        kubernetes_version: "1.30.1".into(),
        kubespan: false,
        patch: format!("machine:\n  sysctls:\n    vm.max_map_count: \"{hostname_patch}\"\n"),
        patch_control_plane: String::new(),
        patch_worker: String::new(),
    }
}

/// A configured worker at 192.0.2.7 with SMBIOS UUID `Uuid-7`; its id.
pub(super) async fn configured_server(store: &Store) -> ServerId {
    let account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "robot-user",
            &Secret::new("robot-password".into()),
        )
        .await
        .unwrap();
    let inventory = ServerInventory {
        provider: ProviderKind::HetznerRobot,
        provider_id: "7".into(),
        name: "worker-7".into(),
        ipv4: Some("192.0.2.7".into()),
        ipv6: None,
        product: "AX41-NVMe".into(),
        data_center: "FSN1-DC14".into(),
        status: "ready".into(),
        cancelled: false,
        architecture: Architecture::Amd64,
        vswitch_id: None,
    };
    let (server, _) = store.upsert_server(account.id, &inventory).await.unwrap();
    let probe = ProbeResult {
        accessible: true,
        uuid: Some("Uuid-7".into()),
        lsblk: None,
    };
    store.record_probe(server.id, &probe).await.unwrap();
    let cluster = store
        .create_cluster(
            &ClusterFields {
                name: "prod".into(),
                endpoint: "https://prod.example.com:6443".into(),
                vswitch_id: None,
            },
            &Secret::new(SECRETS.to_owned()),
        )
        .await
        .unwrap();
    let config = store.create_config(&config_fields("262144")).await.unwrap();
    store
        .update_server_assignment(server.id, "worker-7", Some(cluster.id), None, None)
        .await
        .unwrap();
    store
        .put_machine_config(
            server.id,
            &MachineConfigFields {
                config_id: config.id,
                hostname: "worker-7".into(),
                private_ip: "10.0.1.7".into(),
                install_disk: "/dev/nvme0n1".into(),
                ephemeral_disk_identifier: None,
            },
        )
        .await
        .unwrap();
    server.id
}

async fn served_yaml(cache: &NodeConfigCache, store: &Store, lookup: &ServerLookup) -> String {
    let server = cache
        .find_server(store, lookup)
        .await
        .unwrap()
        .expect("the server is found");
    let rendered = cache.render(store, &server).await.unwrap();
    rendered.config.yaml.expose().clone()
}

store_test!(a_write_through_the_store_is_served_at_once, |store| {
    let server_id = configured_server(store).await;
    // A long time to live: only the store's generation can make the cache read again.
    let cache = NodeConfigCache::new(Duration::from_secs(3600));
    let lookup = ServerLookup::uuid("UUID-7");
    let first = served_yaml(&cache, store, &lookup).await;
    assert!(first.contains("vm.max_map_count: \"262144\""), "{first}");
    assert_eq!(served_yaml(&cache, store, &lookup).await, first);

    let config_id = store
        .machine_config_for_server(server_id)
        .await
        .unwrap()
        .unwrap()
        .fields
        .config_id;
    store
        .update_config(config_id, &config_fields("524288"))
        .await
        .unwrap();
    let changed = served_yaml(&cache, store, &lookup).await;
    assert!(
        changed.contains("vm.max_map_count: \"524288\""),
        "{changed}"
    );

    // A new UUID: the old one no longer finds the server, the new one does.
    let probe = ProbeResult {
        accessible: true,
        uuid: Some("uuid-8".into()),
        lsblk: None,
    };
    store.record_probe(server_id, &probe).await.unwrap();
    assert!(cache.find_server(store, &lookup).await.unwrap().is_none());
    assert_eq!(
        cache
            .find_server(store, &ServerLookup::uuid("uuid-8"))
            .await
            .unwrap()
            .map(|server| server.id),
        Some(server_id)
    );

    // Without a machine config there is nothing to serve, and no stale config either.
    let machine_config = store
        .machine_config_for_server(server_id)
        .await
        .unwrap()
        .unwrap();
    store
        .delete_machine_config(machine_config.id)
        .await
        .unwrap();
    let server = store.get_server(server_id).await.unwrap();
    assert!(matches!(
        cache.render(store, &server).await,
        Err(NodeConfigError::NotConfigured { .. })
    ));
});

store_test!(
    another_process_is_seen_after_the_time_to_live,
    |store, db| {
        let server_id = configured_server(store).await;
        let ttl = Duration::from_millis(300);
        let cache = NodeConfigCache::new(ttl);
        let lookup = ServerLookup::ipv4("192.0.2.7");
        let first = served_yaml(&cache, store, &lookup).await;

        // A second replica: its own store on the same database.
        let other = Store::connect(db.url(), db.key()).await.unwrap();
        let config_id = other
            .machine_config_for_server(server_id)
            .await
            .unwrap()
            .unwrap()
            .fields
            .config_id;
        other
            .update_config(config_id, &config_fields("524288"))
            .await
            .unwrap();
        assert_eq!(
            served_yaml(&cache, store, &lookup).await,
            first,
            "within the time to live the cache answers"
        );
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        let changed = served_yaml(&cache, store, &lookup).await;
        assert!(
            changed.contains("vm.max_map_count: \"524288\""),
            "{changed}"
        );
        other.close().await;
    }
);

store_test!(an_unusable_secrets_bundle_is_an_error_every_time, |store| {
    let server_id = configured_server(store).await;
    let cache = NodeConfigCache::new(Duration::from_secs(3600));
    let server = store.get_server(server_id).await.unwrap();
    cache.render(store, &server).await.unwrap();

    let cluster_id = server.cluster_id.unwrap();
    let cluster = store.get_cluster(cluster_id).await.unwrap();
    let fields = ClusterFields {
        name: cluster.name.clone(),
        endpoint: cluster.endpoint.clone(),
        vswitch_id: None,
    };
    store
        .update_cluster(
            cluster_id,
            &fields,
            Some(&Secret::new("cluster: {}\n".to_owned())),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            cache.render(store, &server).await,
            Err(NodeConfigError::Secrets { .. })
        ));
    }
});
