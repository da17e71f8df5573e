//! Fleet sync against the wire-level fake Robot and Cloud APIs, on both backends.

use std::time::Duration;

use talos_manager_core::store::ProviderKind;
use talos_manager_core::sync::{ProviderFactory, sync_all};
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::{Backend, RetryPolicy, Secret, Store};
use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};

/// Fakes with `robot_servers` and `cloud_servers` generated servers, one account each, and a
/// factory pointing at them.
async fn fleet(
    store: &Store,
    robot_servers: usize,
    cloud_servers: usize,
) -> (FakeRobot, FakeCloud, ProviderFactory) {
    let robot = FakeRobot::start_empty().await.unwrap();
    let cloud = FakeCloud::start_empty().await.unwrap();
    robot.generate_servers(robot_servers);
    cloud.generate_servers(cloud_servers);
    store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            FakeRobot::USER,
            &Secret::new(FakeRobot::PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "project",
            &Secret::new(FakeCloud::TOKEN.to_owned()),
        )
        .await
        .unwrap();
    let factory =
        ProviderFactory::new(robot.url(), cloud.url()).with_retry_policy(RetryPolicy::for_fakes());
    (robot, cloud, factory)
}

store_test!(thousand_servers_twice_without_loss_or_duplicates, |store| {
    let (_robot, _cloud, factory) = fleet(store, 300, 700).await;
    let first = sync_all(store, &factory).await.unwrap();
    assert!(first.failures.is_empty(), "{first:?}");
    assert_eq!((first.added, first.updated, first.removed), (1000, 0, 0));
    let second = sync_all(store, &factory).await.unwrap();
    assert!(second.failures.is_empty(), "{second:?}");
    assert_eq!((second.added, second.updated, second.removed), (0, 1000, 0));
    let servers = store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 1000);
    let mut ids: Vec<_> = servers
        .iter()
        .map(|s| (s.inventory.provider, s.inventory.provider_id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
});

store_test!(vanished_server_is_removed, |store| {
    let (robot, _cloud, factory) = fleet(store, 2, 3).await;
    sync_all(store, &factory).await.unwrap();
    let robot_id = robot.servers()[0].number;
    assert!(robot.remove_server(robot_id));
    let report = sync_all(store, &factory).await.unwrap();
    assert_eq!(report.removed, 1);
    let servers = store.list_servers().await.unwrap();
    assert_eq!(servers.len(), 4);
    assert!(
        servers
            .iter()
            .all(|s| s.inventory.provider_id != robot_id.to_string()
                || s.inventory.provider != ProviderKind::HetznerRobot)
    );
});

store_test!(failing_account_does_not_stop_the_others, |store| {
    let (_robot, _cloud, factory) = fleet(store, 2, 3).await;
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "wrong token",
            &Secret::new("nope".to_owned()),
        )
        .await
        .unwrap();
    let report = sync_all(store, &factory).await.unwrap();
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].name, "wrong token");
    assert_eq!(report.accounts_synced, 2);
    assert_eq!(store.list_servers().await.unwrap().len(), 5);
});

store_test!(rate_limited_cloud_still_completes, |store| {
    let (_robot, cloud, factory) = fleet(store, 0, 200).await;
    cloud.set_rate_limit(2, Duration::from_millis(5));
    let report = sync_all(store, &factory).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert_eq!(report.added, 200);
});
