//! `ConfigService`, `/config` behind one call: what it answers a request, and the metrics
//! outcome of each answer.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use talos_manager_core::Store;
use talos_manager_core::ids::ServerId;
use talos_manager_core::node_config::{
    ConfigAnswer, ConfigRequestParts, ConfigServedHook, ConfigService, FLUSH_INTERVAL, MissLimiter,
    RECORD_INTERVAL, TrustedProxies,
};
use talos_manager_core::store::StoreError;
use time::OffsetDateTime;

use super::node_config_cache::configured_server;

/// Counts the servers it is told were served; asks not to be told again for an hour.
#[derive(Default)]
struct CountingHook(AtomicUsize);

#[async_trait]
impl ConfigServedHook for CountingHook {
    async fn config_served(
        &self,
        _store: &Store,
        _server: ServerId,
    ) -> Result<OffsetDateTime, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(OffsetDateTime::now_utc() + Duration::from_secs(3600))
    }
}

async fn ask(
    service: &ConfigService,
    store: &Store,
    query: &str,
    peer: Option<&str>,
    hook: &CountingHook,
) -> ConfigAnswer {
    let peer: Option<IpAddr> = peer.map(|peer| peer.parse().unwrap());
    let parts = ConfigRequestParts {
        query,
        peer,
        forwarded_for: &[],
        trusted_proxies: &TrustedProxies::default(),
    };
    service.answer(store, parts, hook).await.unwrap()
}

store_test!(the_service_answers_each_kind_of_request, |store| {
    configured_server(store).await;
    let service =
        ConfigService::with_miss_limiter(true, MissLimiter::new(1, Duration::from_secs(600)));
    let hook = CountingHook::default();

    // The server's UUID (any case) from its address: its config, and the hook told once.
    for _ in 0..2 {
        let answer = ask(&service, store, "uuid=UUID-7", Some("192.0.2.7"), &hook).await;
        assert_eq!(answer.outcome(), "served");
        let ConfigAnswer::Config(config) = answer else {
            panic!("{answer:?}");
        };
        assert!(
            config
                .yaml
                .expose()
                .contains("vm.max_map_count: \"262144\""),
            "{}",
            config.yaml.expose()
        );
    }
    assert_eq!(hook.0.load(Ordering::SeqCst), 1);

    // No peer address: nothing to check the server's address against.
    let answer = ask(&service, store, "uuid=uuid-7", None, &hook).await;
    assert!(matches!(answer, ConfigAnswer::UnknownSource), "{answer:?}");
    assert_eq!(answer.outcome(), "denied");

    // The right UUID from another address: the same answer as an unknown one.
    let answer = ask(&service, store, "uuid=uuid-7", Some("198.51.100.7"), &hook).await;
    let source: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(
        matches!(answer, ConfigAnswer::NoSuchServer { source: s } if s == source),
        "{answer:?}"
    );
    assert_eq!(answer.outcome(), "denied");

    // Past the miss limit, that address is turned away, even with the right UUID.
    let answer = ask(&service, store, "uuid=uuid-7", Some("198.51.100.7"), &hook).await;
    assert!(
        matches!(answer, ConfigAnswer::TooManyMisses { source: s } if s == source),
        "{answer:?}"
    );
    assert_eq!(answer.outcome(), "rate_limited");

    // The server itself is still served; the hook is not told again within its guard.
    let answer = ask(&service, store, "uuid=uuid-7", Some("192.0.2.7"), &hook).await;
    assert_eq!(answer.outcome(), "served");
    assert_eq!(hook.0.load(Ordering::SeqCst), 1);
});

store_test!(
    a_server_without_machine_config_is_not_yet_configured,
    |store| {
        let server_id = configured_server(store).await;
        let machine_config = store
            .machine_config_for_server(server_id)
            .await
            .unwrap()
            .unwrap();
        store
            .delete_machine_config(machine_config.id)
            .await
            .unwrap();
        let service = ConfigService::default();
        let hook = CountingHook::default();
        let answer = ask(&service, store, "uuid=uuid-7", Some("192.0.2.7"), &hook).await;
        assert!(
            matches!(&answer, ConfigAnswer::NotConfigured { ip } if ip == "192.0.2.7"),
            "{answer:?}"
        );
        assert_eq!(answer.outcome(), "not_configured");
        assert_eq!(hook.0.load(Ordering::SeqCst), 0);
    }
);

// Issue #24: a request that changes what is recorded is written before the answer; one that
// only moves the times forward is buffered, written by itself within FLUSH_INTERVAL or on
// `flush_request_times` (shutdown), and dropped when a bootstrap or erase cleared the times
// after it.
store_test!(request_times_are_written_at_once_or_batched, |store| {
    let id = configured_server(store).await;
    let service = ConfigService::default();
    let hook = CountingHook::default();
    let served = async || {
        let answer = ask(&service, store, "uuid=uuid-7", Some("192.0.2.7"), &hook).await;
        assert_eq!(answer.outcome(), "served");
    };
    let times = async || {
        let server = store.get_server(id).await.unwrap();
        (
            server.last_request_for_configuration_at,
            server.last_configured_at,
        )
    };
    assert_eq!(times().await, (None, None));

    // Served for the first time: recorded before the answer (the bootstrap guard's live node).
    served().await;
    let (asked, configured) = times().await;
    let first = configured.expect("served at once");
    assert_eq!(asked, Some(first));

    // Served again: buffered, written on flush (as at shutdown), in one transaction.
    tokio::time::sleep(RECORD_INTERVAL).await;
    served().await;
    assert_eq!(times().await, (Some(first), Some(first)));
    service.flush_request_times(store).await;
    let (asked, configured) = times().await;
    assert!(configured.unwrap() > first);
    assert_eq!(asked, configured);

    // A refresh that an erase overtook does not bring the cleared time back.
    tokio::time::sleep(RECORD_INTERVAL).await;
    served().await;
    store.record_erase_started(id).await.unwrap();
    service.flush_request_times(store).await;
    assert_eq!(times().await.1, None);

    // Served after the erase: recorded at once again; a later refresh is written within the
    // flush interval without being asked.
    served().await;
    let again = times().await.1.expect("served at once");
    tokio::time::sleep(RECORD_INTERVAL).await;
    served().await;
    talos_manager_core::testing::wait_for(
        "the buffered request time to be written",
        FLUSH_INTERVAL * 10,
        Duration::from_millis(50),
        || async {
            match times().await.1 {
                Some(at) if at > again => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
});
