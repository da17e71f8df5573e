//! The service tried as an attacker would (issue 18, the security review's recipes): each
//! test sends what the review's scenario sends, through the real HTTP surface, and checks that
//! nothing is given away, erased or grown.

use reqwest::Method;
use serde_json::json;
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::node_config::{ConfigService, MissLimiter, TrustedProxies};
use talos_manager_core::store::ProbeResult;

use super::api_servers_jobs::add_server_at;
use super::server::TestServer;

const UUID: &str = "11111111-2222-3333-4444-555555555555";

/// A configured node `worker-1` (cluster, config, machine config) at `ipv4` and `ipv6`, with
/// a recorded SMBIOS UUID when `uuid` is given.
async fn node(server: &TestServer, ipv4: &str, ipv6: Option<&str>, uuid: Option<&str>) {
    let (cluster, config) = server.cluster_and_config(json!({"name": "default"})).await;
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
        ConfigService::new(false),
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
        ConfigService::with_miss_limiter(
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

/// Review #6: a page on another site makes the browser post to the API with the Basic
/// password it cached. The review's recipe, and the same with `Sec-Fetch-Site`.
#[tokio::test]
async fn cross_site_writes_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    add_server_at(
        server.store(),
        ProviderKind::HetznerRobot,
        "1234567",
        "worker-1",
        "127.0.0.1",
    )
    .await;
    let post = |path: &str| {
        server
            .client
            .post(server.url(path))
            .basic_auth("admin", Some(super::server::PASSWORD))
    };
    let refused = [
        post("/api/v1/servers/robot-1234567/rescue")
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1"),
        post("/api/v1/servers/robot-1234567/rescue").header("sec-fetch-site", "cross-site"),
        post("/api/v1/servers/robot-1234567/rescue").header("sec-fetch-site", "same-site"),
        post("/api/v1/servers/sync").header("origin", "null"),
        post("/api/v1/tokens")
            .header("origin", "https://evil.example")
            .json(&json!({"name": "evil"})),
    ];
    for request in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "cross_site", "{body}");
    }
    assert!(
        server.store().list_jobs().await.unwrap().is_empty(),
        "nothing was queued"
    );
    let tokens = server.store().list_api_tokens().await.unwrap();
    assert!(tokens.iter().all(|token| token.name != "evil"));
    assert!(
        server.store().list_servers().await.unwrap()[0]
            .rescue_activated_at
            .is_none()
    );

    // The dashboard's own requests (same origin) and non-browser clients still work.
    let same_origin = post("/api/v1/tokens")
        .header("origin", server.base.clone())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "dashboard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 201);
    let old_browser = post("/api/v1/tokens")
        .header("origin", server.base.clone())
        .json(&json!({"name": "old-browser"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old_browser.status(), 201);
    let public_host = post("/api/v1/tokens")
        .header("origin", format!("https://{}", super::server::TEST_HOST))
        .json(&json!({"name": "behind-proxy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public_host.status(),
        201,
        "the service's HOST is its origin"
    );
    let curl = post("/api/v1/tokens")
        .json(&json!({"name": "curl"}))
        .send()
        .await
        .unwrap();
    assert_eq!(curl.status(), 201);
}

/// Review #6: a 401 invites the browser to cache a password only when one was sent.
#[tokio::test]
async fn a_401_does_not_invite_a_password_prompt() {
    let server = TestServer::start(Backend::Sqlite).await;
    for (method, path) in [
        (Method::GET, "/api/v1/servers"),
        (Method::POST, "/api/v1/servers/sync"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method}");
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{method}"
        );
    }
    let bearer = server
        .client
        .get(server.url("/api/v1/settings"))
        .bearer_auth("tm_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    assert!(bearer.headers().get("www-authenticate").is_none());
}

/// Review #20: wrong passwords are answered one at a time, slowly.
#[tokio::test]
async fn password_guessing_is_slowed() {
    let server = TestServer::start(Backend::Sqlite).await;
    let started = std::time::Instant::now();
    let guesses = (0..8).map(|n| {
        server
            .client
            .get(server.url("/api/v1/settings"))
            .basic_auth("admin", Some(format!("guess-{n}")))
            .send()
    });
    for response in futures_util::future::join_all(guesses).await {
        assert_eq!(response.unwrap().status(), 401);
    }
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(8 * 250),
        "8 parallel guesses took {took:?}"
    );
    // The right password is not held up.
    let started = std::time::Instant::now();
    let right = server
        .client
        .get(server.url("/api/v1/settings"))
        .basic_auth("admin", Some(super::server::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_millis(250));
}

/// Tokens can expire: made through the API with `expires_in_seconds`, they stop working.
#[tokio::test]
async fn an_expired_token_authenticates_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let created = server
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "short", "expires_in_seconds": 1})),
            201,
        )
        .await;
    assert!(created["expires_at"].is_string(), "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let status = || async {
        server
            .client
            .get(server.url("/api/v1/settings"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(status().await, 401);
    server
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "bad", "expires_in_seconds": 0})),
            400,
        )
        .await;
}

/// Review #9: revoking a token ends the live streams opened with it.
#[tokio::test]
async fn revoking_a_token_ends_its_live_streams() {
    let server = TestServer::start(Backend::Sqlite).await;
    let created = server
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "leaked"})),
            201,
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let job = server
        .store()
        .enqueue_job(&talos_manager_core::store::NewJob {
            kind: "sync".into(),
            server_id: None,
            args: json!({}),
        })
        .await
        .unwrap();
    let mut streams = Vec::new();
    for path in [
        "/api/v1/servers/events".to_owned(),
        format!("/api/v1/jobs/{}/log", job.id),
    ] {
        let response = server
            .client
            .get(server.url(&path))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        streams.push((path, response));
    }
    server
        .expect(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, 204)
        .await;
    for (path, mut response) in streams {
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while response.chunk().await.unwrap().is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "{path} still streams after the revocation");
    }
}

/// Review #3: made-up HTTP methods, without credentials, do not grow `/metrics`.
#[tokio::test]
async fn made_up_methods_do_not_grow_metrics() {
    let server = TestServer::start(Backend::Sqlite).await;
    for n in 0..200 {
        let method = format!("X{n}{}", "A".repeat(2_000));
        let response = server
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.url("/x"),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.len() < 20_000, "{} bytes", metrics.len());
    assert!(!metrics.contains("AAAA"));
    assert!(
        metrics.contains("method=\"other\""),
        "unknown methods share one label: {metrics}"
    );
}

/// No request body makes the API buffer more than its limit, declared or not.
#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let huge = format!(
        "{{\"name\": \"big\", \"patch\": \"{}\"}}",
        "x".repeat(9 << 20)
    );
    let response = server
        .client
        .post(server.url("/api/v1/configs"))
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The same without `Content-Length` (chunked), as a raw HTTP/1.1 request.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/configs HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.token
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    for chunk in huge.as_bytes().chunks(1 << 20) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if tcp.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tcp.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    assert!(
        status == 0 || (400..500).contains(&status),
        "a chunked body past the limit: {answer:.200}"
    );
    let configs = server
        .expect(Method::GET, "/api/v1/configs", None, 200)
        .await;
    assert_eq!(configs, json!([]));
}

/// Review #16: an alias bomb or a doubling JSON6902 patch in a config is refused, quickly.
#[tokio::test]
async fn config_patches_cannot_exhaust_memory() {
    let server = TestServer::start(Backend::Sqlite).await;
    let items = vec!["1"; 10_000].join(",");
    let uses = vec!["*a"; 10_000].join(",");
    let bomb = format!("a: &a [{items}]\nb: [{uses}]\n");
    // Each copy of the root into a new key doubles the document.
    let copies = (0..30)
        .map(|n| format!(r#"{{"op": "copy", "from": "", "path": "/machine/x{n}"}}"#))
        .collect::<Vec<_>>()
        .join(", ");
    let doubling = format!("[{copies}]");
    // JSON6902 patches apply to single-document configs only (Talos 1.11 and older; Talos
    // refuses them on multi-document ones): the newest such contract.
    let single_document = talos_manager_core::talos::TalosVersion::ALL
        .into_iter()
        .rfind(|version| !version.multi_document())
        .expect("a single-document contract");
    let install_image = format!("ghcr.io/siderolabs/installer:{}", single_document.release());
    for (what, patch) in [("alias bomb", bomb), ("copy doubling", doubling)] {
        let started = std::time::Instant::now();
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v1/configs",
                Some(json!({"name": "bomb", "patch": patch, "install_image": install_image})),
            )
            .await;
        assert_eq!(status, 422, "{what}: {body}");
        assert!(
            body.to_string().contains("too large") || body.to_string().contains("more than"),
            "{what}: {body}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{what} took {:?}",
            started.elapsed()
        );
    }
}

/// Review #22: wire types that carry secrets do not print them in `Debug`.
#[test]
fn wire_types_do_not_print_secrets() {
    use talos_manager_http::api::wire::{
        ClusterBody, CreateProviderAccount, UpdateProviderAccount,
    };
    let secret = "ca-key-5ecret";
    let printed = [
        format!(
            "{:?}",
            ClusterBody {
                name: "prod".into(),
                endpoint: "https://prod.example.com:6443".into(),
                vswitch_id: None,
                secrets: Some(secret.into()),
            }
        ),
        format!(
            "{:?}",
            CreateProviderAccount {
                provider: "hetzner_cloud".into(),
                name: "cloud".into(),
                secret: secret.into(),
            }
        ),
        format!(
            "{:?}",
            UpdateProviderAccount {
                name: "cloud".into(),
                secret: Some(secret.into()),
            }
        ),
    ];
    for text in printed {
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

/// Review #22: the bootstrap's Talos version is validated like the settings' one.
#[tokio::test]
async fn a_bootstrap_talos_version_must_be_a_version() {
    let server = TestServer::start(Backend::Sqlite).await;
    add_server_at(
        server.store(),
        ProviderKind::HetznerRobot,
        "1",
        "worker-1",
        "127.0.0.1",
    )
    .await;
    for path in [
        "/api/v1/servers/robot-1/bootstrap-plan?talos_version=v1.10.4%0Acurl%20evil",
        "/api/v1/servers/robot-1/upgrade-command?talos_version=latest;reboot",
    ] {
        let (status, body) = server.call(Method::GET, path, None).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["issues"][0]["path"], "talos_version", "{body}");
    }
}
