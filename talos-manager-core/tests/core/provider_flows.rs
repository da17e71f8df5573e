//! Sync, rescue and server edits through the provider seam: a [`ProviderFactory`] built from
//! in-memory [`FakeProvider`]s ([`FakeAccounts`]), as an embedder hands in its own providers,
//! on both backends. The Hetzner clients themselves are tested against the wire-level fakes
//! (`provider`, `sync`).

use std::sync::Arc;
use std::time::Duration;

use talos_manager_core::ids::VswitchId;
use talos_manager_core::provider::fake::{FakeAccounts, FakeProvider, FakeServerState, SimMode};
use talos_manager_core::rescue::{RescueError, enter_rescue};
use talos_manager_core::server_update::{ServerChanges, update_server};
use talos_manager_core::store::{ProviderAccount, Server};
use talos_manager_core::sync::{
    ProviderFactory, SyncError, SyncPolicy, sync_account, sync_all, sync_all_with,
};
use talos_manager_core::{
    Provider, ProviderKind, ProviderVswitch, Secret, SshPublicKey, Store, VswitchProvider,
    error_chain,
};
use talos_manager_rescue_host::KeyPair;

const ROBOT_USER: &str = "robot-user";
const CLOUD_PROJECT: &str = "project";

/// A Robot account with 3 servers and vSwitches 7 (server 1) and 8 (empty), a Cloud account
/// with 2 servers, both stored, and a factory handing each account its fake.
struct Fleet {
    robot: Arc<FakeProvider>,
    cloud: Arc<FakeProvider>,
    robot_account: ProviderAccount,
    factory: ProviderFactory,
}

async fn fleet(store: &Store) -> Fleet {
    let robot = Arc::new(FakeProvider::new(ProviderKind::HetznerRobot, SimMode::Auto));
    let cloud = Arc::new(FakeProvider::new(ProviderKind::HetznerCloud, SimMode::Auto));
    robot.generate_servers(3);
    cloud.generate_servers(2);
    for (id, name, server_ids) in [(7, "lan", vec!["1".to_owned()]), (8, "storage", vec![])] {
        robot.add_vswitch(ProviderVswitch {
            id,
            name: name.to_owned(),
            vlan: 4000 + id as u16,
            cancelled: false,
            server_ids,
            members_known: true,
        });
    }
    let robot_account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            ROBOT_USER,
            &Secret::new("password".to_owned()),
        )
        .await
        .unwrap();
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            CLOUD_PROJECT,
            &Secret::new("token".to_owned()),
        )
        .await
        .unwrap();
    let factory = ProviderFactory::from_source(
        FakeAccounts::new()
            .with(ROBOT_USER, robot.clone())
            .with(CLOUD_PROJECT, cloud.clone()),
    );
    Fleet {
        robot,
        cloud,
        robot_account,
        factory,
    }
}

async fn robot_server(store: &Store, provider_id: &str) -> Server {
    store
        .get_server_by_provider_id(ProviderKind::HetznerRobot, provider_id)
        .await
        .unwrap()
}

store_test!(sync_stores_every_accounts_servers_and_vswitches, |store| {
    let fleet = fleet(store).await;
    let report = sync_all(store, &fleet.factory, None).await.unwrap();
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(
        (report.added, report.updated, report.accounts_synced),
        (5, 0, 2)
    );
    let servers = store.list_servers().await.unwrap();
    let mut names: Vec<_> = servers
        .iter()
        .map(|server| (server.inventory.provider, server.inventory.name.as_str()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            (ProviderKind::HetznerRobot, "fake-1"),
            (ProviderKind::HetznerRobot, "fake-2"),
            (ProviderKind::HetznerRobot, "fake-3"),
            (ProviderKind::HetznerCloud, "fake-1"),
            (ProviderKind::HetznerCloud, "fake-2"),
        ]
    );
    let vswitches = store.list_vswitches().await.unwrap();
    assert_eq!(
        vswitches
            .iter()
            .map(|vswitch| (vswitch.id, vswitch.name.as_str(), vswitch.vlan))
            .collect::<Vec<_>>(),
        [(VswitchId(7), "lan", 4007), (VswitchId(8), "storage", 4008)]
    );
    assert_eq!(
        robot_server(store, "1").await.inventory.vswitch_id,
        Some(VswitchId(7))
    );
    assert_eq!(robot_server(store, "2").await.inventory.vswitch_id, None);

    let again = sync_all(store, &fleet.factory, None).await.unwrap();
    assert_eq!((again.added, again.updated), (0, 5), "{again}");
    assert_eq!(fleet.cloud.calls(), ["list_servers", "list_servers"]);
});

store_test!(a_vanished_server_is_marked_missing_then_removed, |store| {
    let fleet = fleet(store).await;
    sync_all(store, &fleet.factory, None).await.unwrap();
    assert!(fleet.robot.remove_server("3"));
    let two_syncs = SyncPolicy {
        missing_syncs: 2,
        missing_grace: Duration::ZERO,
        ..SyncPolicy::default()
    };
    let report = sync_all_with(store, &fleet.factory, None, &two_syncs)
        .await
        .unwrap();
    assert_eq!((report.missing, report.removed), (1, 0), "{report}");
    let marked = robot_server(store, "3").await;
    assert!(marked.missing_since.is_some());
    assert_eq!(marked.missing_syncs, 1);

    let report = sync_all_with(store, &fleet.factory, None, &two_syncs)
        .await
        .unwrap();
    assert_eq!((report.missing, report.removed), (0, 1), "{report}");
    assert_eq!(store.list_servers().await.unwrap().len(), 4);
});

store_test!(one_account_syncs_with_its_own_clients, |store| {
    let fleet = fleet(store).await;
    let secret = store
        .provider_account_secret(fleet.robot_account.id)
        .await
        .unwrap();
    let providers = fleet
        .factory
        .build(ProviderKind::HetznerRobot, ROBOT_USER, secret)
        .unwrap();
    let report = sync_account(store, fleet.robot_account.id, &providers)
        .await
        .unwrap();
    assert_eq!((report.added, report.vswitches), (3, 2), "{report:?}");
    assert_eq!(store.list_servers().await.unwrap().len(), 3);
    assert_eq!(fleet.robot.calls(), ["list_vswitches", "list_servers"]);
    assert!(fleet.cloud.calls().is_empty());
});

store_test!(an_account_the_provider_refuses_fails_alone, |store| {
    let fleet = fleet(store).await;
    let stranger = store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "someone else",
            &Secret::new("nope".to_owned()),
        )
        .await
        .unwrap();
    let report = sync_all(store, &fleet.factory, None).await.unwrap();
    assert_eq!((report.added, report.accounts_synced), (5, 2), "{report}");
    assert_eq!(report.failures.len(), 1, "{report}");
    let failure = &report.failures[0];
    assert_eq!(failure.account_id, stranger.id);
    assert!(
        matches!(failure.error, SyncError::ListServers { .. }),
        "{:?}",
        failure.error
    );
    let chain = error_chain(&failure.error).to_string();
    assert!(chain.contains("did not accept the credentials"), "{chain}");
});

store_test!(
    rescue_boots_the_server_with_our_key_and_is_recorded,
    |store| {
        let fleet = fleet(store).await;
        sync_all(store, &fleet.factory, None).await.unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key = KeyPair::generate(keys.path(), "id", "-t ed25519");
        let fingerprint = SshPublicKey::parse(&key.public)
            .unwrap()
            .md5_fingerprint()
            .to_owned();

        let server = robot_server(store, "2").await;
        assert_eq!(server.rescue_activated_at, None);
        let entered = enter_rescue(store, &fleet.factory, server.id, Some(&key.private))
            .await
            .unwrap();
        assert!(entered.server.rescue_activated_at.is_some());
        assert_eq!(
            robot_server(store, "2").await.rescue_activated_at,
            entered.server.rescue_activated_at
        );
        assert_eq!(
            fleet.robot.server_state("2"),
            Some(FakeServerState::InRescue)
        );
        assert_eq!(fleet.robot.rescue_keys("2").unwrap(), [fingerprint]);
        assert_eq!(
            fleet.robot.calls()[2..],
            ["ensure_ssh_key", "enable_rescue 2", "power_cycle 2"]
        );

        // A provider failure leaves the server as it was.
        let other = robot_server(store, "3").await;
        fleet.robot.fail_next(1);
        let error = enter_rescue(store, &fleet.factory, other.id, Some(&key.private))
            .await
            .unwrap_err();
        assert!(matches!(error, RescueError::Provider { .. }), "{error:?}");
        assert_eq!(robot_server(store, "3").await.rescue_activated_at, None);
        assert_eq!(
            fleet.robot.server_state("3"),
            Some(FakeServerState::Ordered)
        );
    }
);

store_test!(server_edits_go_to_the_provider_then_the_store, |store| {
    let fleet = fleet(store).await;
    sync_all(store, &fleet.factory, None).await.unwrap();

    let server = robot_server(store, "2").await;
    let changes = ServerChanges {
        name: Some("web-2".to_owned()),
        vswitch_id: Some(Some(VswitchId(7))),
        ..ServerChanges::default()
    };
    let updated = update_server(store, &fleet.factory, server.id, &changes)
        .await
        .unwrap();
    assert_eq!(updated.inventory.name, "web-2");
    assert_eq!(updated.inventory.vswitch_id, Some(VswitchId(7)));
    assert_eq!(fleet.robot.get_server("2").await.unwrap().name, "web-2");
    assert_eq!(
        fleet.robot.get_vswitch(7).await.unwrap().server_ids,
        ["1", "2"]
    );

    // Moving server 1 from vSwitch 7 to 8 leaves one and joins the other.
    let first = robot_server(store, "1").await;
    let moved = update_server(
        store,
        &fleet.factory,
        first.id,
        &ServerChanges {
            vswitch_id: Some(Some(VswitchId(8))),
            ..ServerChanges::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(moved.inventory.vswitch_id, Some(VswitchId(8)));
    assert_eq!(fleet.robot.get_vswitch(7).await.unwrap().server_ids, ["2"]);
    assert_eq!(fleet.robot.get_vswitch(8).await.unwrap().server_ids, ["1"]);

    // The next sync finds what the edits did.
    let report = sync_all(store, &fleet.factory, None).await.unwrap();
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(robot_server(store, "2").await.inventory.name, "web-2");
    assert_eq!(
        robot_server(store, "1").await.inventory.vswitch_id,
        Some(VswitchId(8))
    );

    // A refused call changes nothing in the store.
    fleet.robot.fail_next(1);
    let error = update_server(
        store,
        &fleet.factory,
        server.id,
        &ServerChanges {
            name: Some("web-two".to_owned()),
            ..ServerChanges::default()
        },
    )
    .await
    .unwrap_err();
    assert!(error.provider_error().is_some(), "{error:?}");
    assert_eq!(robot_server(store, "2").await.inventory.name, "web-2");
});
