//! `ConfigService`, `/config` behind one call: what it answers a request, and the metrics
//! outcome of each answer.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use talos_manager_core::Store;
use talos_manager_core::ids::ServerId;
use talos_manager_core::node_config::{
    ConfigAnswer, ConfigRequestParts, ConfigServedHook, ConfigService, MissLimiter, TrustedProxies,
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
