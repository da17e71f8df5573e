//! The service tried as an attacker would (issue 18, the security review's recipes): each
//! test sends what the review's scenario sends, through the real HTTP surface, and checks that
//! nothing is given away, erased or grown.

use reqwest::Method;
use serde_json::json;
use talos_manager_core::Backend;
use talos_manager_core::node_config::{MissLimiter, TrustedProxies};
use talos_manager_core::store::{ProbeResult, ProviderKind};
use talos_manager_http::node_config::ConfigServing;

use super::api_servers_jobs::add_server_at;
use super::server::TestServer;

const UUID: &str = "11111111-2222-3333-4444-555555555555";

/// A configured node `worker-1` (cluster, config, machine config) at `ipv4` and `ipv6`, with
/// a recorded SMBIOS UUID when `uuid` is given.
async fn node(server: &TestServer, ipv4: &str, ipv6: Option<&str>, uuid: Option<&str>) {
    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": "https://prod.example.com:6443"})),
            201,
        )
        .await;
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default"})),
            201,
        )
        .await;
    let row = add_server_at(
        server.store(),
        ProviderKind::HetznerRobot,
        "1",
        "worker-1",
        ipv4,
    )
    .await;
    let mut inventory = row.inventory.clone();
    inventory.ipv6 = ipv6.map(str::to_owned);
    server
        .store()
        .upsert_server(row.provider_account_id, &inventory)
        .await
        .unwrap();
    if let Some(uuid) = uuid {
        let probe = ProbeResult {
            accessible: false,
            uuid: Some(uuid.into()),
            lsblk: None,
        };
        server.store().record_probe(row.id, &probe).await.unwrap();
    }
    let cluster_id: i64 = cluster["id"].as_str().unwrap().parse().unwrap();
    server
        .store()
        .update_server_assignment(
            row.id,
            "worker-1",
            Some(talos_manager_core::ids::ClusterId(cluster_id)),
            None,
            None,
        )
        .await
        .unwrap();
    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": "robot-1", "config_id": config["id"], "install_disk": "/dev/nvme0n1"})),
            201,
        )
        .await;
}

/// `GET /config{query}` with these `X-Forwarded-For` lines, in order; the status and body.
async fn config(server: &TestServer, query: &str, forwarded_for: &[&str]) -> (u16, String) {
    let mut request = super::server::client().get(server.url(&format!("/config{query}")));
    for line in forwarded_for {
        request = request.header("x-forwarded-for", *line);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn trusting(networks: &str) -> TrustedProxies {
    TrustedProxies::parse(networks).unwrap()
}

/// Review #1: behind a proxy of ours, a client names a node in its own `X-Forwarded-For`.
#[tokio::test]
async fn a_forged_forwarded_for_gets_no_config() {
    let server = TestServer::start_trusting(Backend::Sqlite, trusting("127.0.0.1")).await;
    // A legacy node without a recorded UUID: served by address alone.
    node(&server, "203.0.113.10", None, None).await;
    let (status, body) = config(&server, "", &["203.0.113.10"]).await;
    assert_eq!(status, 200, "the proxy names the real node: {body}");

    // HAProxy `option forwardfor` adds its own line after the client's forged one.
    let (status, body) = config(&server, "", &["203.0.113.10", "198.51.100.77"]).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("198.51.100.77"),
        "the client is the last line: {body}"
    );
    assert!(!body.contains("machine:"));
    // A proxy that appends `ip:port` or `[v6]:port`.
    for line in [
        "203.0.113.10, 198.51.100.77:4711",
        "203.0.113.10, [2001:db8::77]:4711",
    ] {
        let (status, body) = config(&server, "", &[line]).await;
        assert_eq!(status, 404, "{line}: {body}");
    }
    // A hop that cannot be read: the peer counts, not the forged hop left of it.
    for line in ["203.0.113.10, unknown", "203.0.113.10, 198.51.100.77:99999"] {
        let (status, body) = config(&server, "", &[line]).await;
        assert_eq!(status, 404, "{line}: {body}");
        assert!(body.contains("127.0.0.1"), "{body}");
    }
}

/// Review #1: a client inside a trusted range, whose whole list is trusted.
#[tokio::test]
async fn an_all_trusted_list_counts_the_peer() {
    let server =
        TestServer::start_trusting(Backend::Sqlite, trusting("127.0.0.0/8, 203.0.113.0/24")).await;
    node(&server, "203.0.113.10", None, None).await;
    let (status, body) = config(&server, "", &["203.0.113.10, 127.0.0.9"]).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("address 127.0.0.1"), "{body}");
}

/// Review #4: a server with a recorded UUID is not served by its address alone.
#[tokio::test]
async fn a_known_uuid_must_be_sent() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let server = TestServer::start(backend).await;
        node(&server, "127.0.0.1", None, Some(UUID)).await;
        let (status, body) = config(&server, "", &[]).await;
        assert_eq!(status, 404, "{backend:?}: {body}");
        assert!(!body.contains("machine:"));
        let (status, body) = config(&server, &format!("?uuid={UUID}"), &[]).await;
        assert_eq!(status, 200, "{backend:?}: {body}");
    }
}

/// The IP-only path can be switched off (`CONFIG_ALLOW_IP_ONLY=false`).
#[tokio::test]
async fn the_ip_only_path_can_be_switched_off() {
    let server = TestServer::start_serving(
        Backend::Sqlite,
        TrustedProxies::default(),
        ConfigServing::new(false),
    )
    .await;
    node(&server, "127.0.0.1", None, None).await;
    let (status, body) = config(&server, "", &[]).await;
    assert_eq!(status, 404, "{body}");
}

/// Review #12: a node inside its server's IPv6 /64 (stored as the bare network address).
#[tokio::test]
async fn ipv6_requests_from_the_servers_64_are_served() {
    let server = TestServer::start_trusting(Backend::Sqlite, trusting("127.0.0.1")).await;
    node(&server, "203.0.113.10", Some("2001:db8:1:2::"), Some(UUID)).await;
    let query = format!("?uuid={UUID}");
    let (status, body) = config(&server, &query, &["2001:db8:1:2::1"]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = config(&server, &query, &["[2001:db8:1:2:a:b:c:d]:33000"]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = config(&server, &query, &["2001:db8:1:3::1"]).await;
    assert_eq!(status, 404, "another /64: {body}");
}

/// Review #19: an unknown UUID and a known one from the wrong address answer alike, and
/// `/metrics` does not tell them apart either.
#[tokio::test]
async fn unknown_uuid_and_wrong_address_answer_alike() {
    let server = TestServer::start(Backend::Sqlite).await;
    node(&server, "203.0.113.10", None, Some(UUID)).await;
    let known = config(&server, &format!("?uuid={UUID}"), &[]).await;
    let unknown = config(&server, "?uuid=00000000-0000-0000-0000-00000000abcd", &[]).await;
    assert_eq!(known, unknown);
    assert_eq!(known.0, 404);
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("talos_manager_config_requests_total{outcome=\"denied\"} 2"),
        "{metrics}"
    );
}

/// Review #19: guessing is limited per address, and past the limit costs no database read
/// (the answers come while the database is closed). Other addresses are not affected.
#[tokio::test]
async fn repeated_misses_are_limited_without_database_reads() {
    let server = TestServer::start_serving(
        Backend::Sqlite,
        trusting("127.0.0.1"),
        ConfigServing::with_miss_limiter(
            true,
            MissLimiter::new(5, std::time::Duration::from_secs(600)),
        ),
    )
    .await;
    node(&server, "203.0.113.10", None, Some(UUID)).await;
    for n in 0..5 {
        let (status, body) = config(
            &server,
            &format!("?uuid=00000000-0000-0000-0000-{n:012}"),
            &["198.51.100.7"],
        )
        .await;
        assert_eq!(status, 404, "guess {n}: {body}");
    }
    let (status, body) = config(&server, &format!("?uuid={UUID}"), &["198.51.100.7"]).await;
    assert_eq!(status, 429, "{body}");
    // The node itself is still served.
    let (status, body) = config(&server, &format!("?uuid={UUID}"), &["203.0.113.10"]).await;
    assert_eq!(status, 200, "{body}");

    // A miss from another address goes to the database once, then it is remembered.
    let guess = "?uuid=00000000-0000-0000-0000-0000000000ff";
    let (status, body) = config(&server, guess, &["198.51.100.8"]).await;
    assert_eq!(status, 404, "{body}");
    server.store().close().await;
    let (status, body) = config(&server, guess, &["198.51.100.9"]).await;
    assert_eq!(status, 404, "a remembered miss, no database read: {body}");
    for n in 0..50 {
        let (status, body) = config(
            &server,
            &format!("?uuid=ffffffff-0000-0000-0000-{n:012}"),
            &["198.51.100.7"],
        )
        .await;
        assert_eq!(status, 429, "no database read: {body}");
    }
    // The database is closed indeed: a new guess from a fresh address needs it.
    let (status, body) = config(
        &server,
        "?uuid=12345678-0000-0000-0000-000000000000",
        &["198.51.100.9"],
    )
    .await;
    assert_eq!(status, 503, "{body}");
}
