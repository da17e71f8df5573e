//! A Talos node's view: clusters and configs made through the API, then `GET /config` as a
//! node asks for it, and what an impostor gets.

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::node_config::TrustedProxies;
use talos_manager_core::store::ProbeResult;

use super::api_servers_jobs::add_server;
use super::server::{TestServer, api_test};

const PATCH: &str = "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        addresses:\n          - ${private_ip}/24\n";

/// A cluster, a config and a server `worker-1` at `ipv4` with UUID `uuid`, configured.
async fn configured_worker(server: &TestServer, ipv4: &str, uuid: &str) {
    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": "https://prod.example.com:6443"})),
            201,
        )
        .await;
    assert!(
        cluster["secrets"].is_null(),
        "secrets are not returned unasked"
    );
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "patch": PATCH})),
            201,
        )
        .await;
    add_server(server, ProviderKind::HetznerRobot, "1", "worker-1").await;
    let row = server.store().list_servers().await.unwrap().remove(0);
    let mut inventory = row.inventory.clone();
    inventory.ipv4 = Some(ipv4.into());
    server
        .store()
        .upsert_server(row.provider_account_id, &inventory)
        .await
        .unwrap();
    let probe = ProbeResult {
        accessible: false,
        uuid: Some(uuid.into()),
        lsblk: None,
    };
    server.store().record_probe(row.id, &probe).await.unwrap();
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

async fn fetch(
    server: &TestServer,
    query: &str,
    forwarded_for: Option<&str>,
) -> (u16, String, String) {
    let mut request = crate::http::server::client().get(server.url(&format!("/config{query}")));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

api_test!(a_node_fetches_its_config_by_uuid_and_address, |server| {
    configured_worker(&server, "127.0.0.1", "4C4C4544-0042-3510-8051-B4C04F564433").await;
    // Talos fills ${uuid} and percent-encodes the query; the UUID's case does not matter.
    let (status, content_type, body) = fetch(
        &server,
        "?uuid=4c4c4544%2D0042-3510-8051-b4c04f564433",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/yaml");
    let config: Value = crate::http::server::v1alpha1_document(&body);
    assert_eq!(config["machine"]["type"], "worker");
    assert_eq!(
        crate::http::server::node_install_disk(&body).as_deref(),
        Some("/dev/nvme0n1")
    );
    assert_eq!(
        crate::http::server::node_hostname(&body).as_deref(),
        Some("worker-1")
    );
    assert_eq!(
        config["machine"]["network"]["interfaces"][0]["addresses"][0],
        "10.0.1.1/24"
    );
    // Talos 1.14 (the default) writes the cluster's name and endpoint in their own document.
    let cluster = crate::http::server::typed_document(&body, "KubeClusterConfig")
        .expect("a KubeClusterConfig document");
    assert_eq!(cluster["endpoint"], "https://prod.example.com:6443");
    assert_eq!(cluster["clusterName"], "prod");

    // The original's way (no UUID, identified by address) is closed to a server with a
    // recorded UUID: that is whoever holds the address now.
    let (status, _, by_address) = fetch(&server, "", None).await;
    assert_eq!(status, 404, "{by_address}");

    let row = server.server_json("robot-1").await;
    assert!(row["last_configured_at"].is_string(), "{row}");
    let admin_copy = server
        .client
        .get(server.url("/api/v1/servers/robot-1/machine-config.yaml"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_copy.status(), 200);
    let admin_copy = admin_copy.text().await.unwrap();
    assert_eq!(
        crate::http::server::node_hostname(&admin_copy).as_deref(),
        Some("worker-1")
    );
});

api_test!(impostors_get_nothing, |server| {
    configured_worker(
        &server,
        "203.0.113.9",
        "11111111-2222-3333-4444-555555555555",
    )
    .await;
    // The right UUID from the wrong address, and a made-up UUID, answer alike.
    let denied = "No server matches this request (SMBIOS UUID and address 127.0.0.1)";
    let (status, _, body) =
        fetch(&server, "?uuid=11111111-2222-3333-4444-555555555555", None).await;
    assert_eq!((status, body.as_str()), (404, denied));
    let (status, _, body) =
        fetch(&server, "?uuid=00000000-0000-0000-0000-000000000001", None).await;
    assert_eq!((status, body.as_str()), (404, denied));
    // Claiming the server's address in X-Forwarded-For without being a trusted proxy.
    let (status, _, body) = fetch(&server, "", Some("203.0.113.9")).await;
    assert_eq!((status, body.as_str()), (404, denied));
});

#[tokio::test]
async fn a_trusted_proxy_names_the_node() {
    let server =
        TestServer::start_trusting(Backend::Sqlite, TrustedProxies::parse("127.0.0.1").unwrap())
            .await;
    configured_worker(
        &server,
        "203.0.113.9",
        "11111111-2222-3333-4444-555555555555",
    )
    .await;
    let (status, _, body) = fetch(
        &server,
        "?uuid=11111111-2222-3333-4444-555555555555",
        Some("203.0.113.9"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = fetch(
        &server,
        "?uuid=11111111-2222-3333-4444-555555555555",
        Some("198.51.100.1"),
    )
    .await;
    assert_eq!(status, 404);
}

api_test!(
    a_known_server_without_machine_config_gets_420_and_is_seen_waiting,
    |server| {
        add_server(&server, ProviderKind::HetznerCloud, "7", "worker-7").await;
        let row = server.store().list_servers().await.unwrap().remove(0);
        let mut inventory = row.inventory.clone();
        inventory.ipv4 = Some("127.0.0.1".into());
        server
            .store()
            .upsert_server(row.provider_account_id, &inventory)
            .await
            .unwrap();
        let (status, _, body) = fetch(&server, "", None).await;
        assert_eq!(status, 420);
        assert_eq!(body, "No configuration found for server with IP 127.0.0.1");
        let row = server.server_json("cloud-7").await;
        assert!(row["last_request_for_configuration_at"].is_string());
        assert!(row["last_configured_at"].is_null());
        let metrics = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("talos_manager_config_requests_total{outcome=\"not_configured\"} 1"),
            "{metrics}"
        );
    }
);

api_test!(runbooks_for_a_configured_node, |server| {
    configured_worker(
        &server,
        "203.0.113.9",
        "11111111-2222-3333-4444-555555555555",
    )
    .await;
    let text = |path: &'static str| {
        let request = server
            .client
            .get(server.url(path))
            .bearer_auth(&server.token);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, reboot) = text("/api/v1/servers/robot-1/reboot-command").await;
    assert_eq!(status, 200);
    assert!(
        reboot.contains("kubectl drain worker-1 --ignore-daemonsets"),
        "{reboot}"
    );
    assert!(
        reboot.contains("talosctl -n 203.0.113.9 reboot --wait"),
        "{reboot}"
    );
    assert!(
        !reboot.contains("forfeit"),
        "workers hold no etcd leadership"
    );
    // No schematic: Talos's own default installer of the version, on the service's factory
    // from 1.14 on (ghcr's installer is no longer published), as a rolling upgrade would.
    let stock = |version: &str| {
        talos_manager_core::image_factory::installer_image(server.factory().url(), None, version)
    };
    let (status, upgrade) = text("/api/v1/servers/robot-1/upgrade-command").await;
    assert_eq!(status, 200);
    assert!(
        upgrade.contains(&format!(
            "upgrade --image {} --wait",
            stock(talos_manager_core::store::DEFAULT_TALOS_VERSION)
        )),
        "{upgrade}"
    );
    let (_, v1_13) = text("/api/v1/servers/robot-1/upgrade-command?talos_version=v1.13.9").await;
    assert!(
        v1_13.contains("upgrade --image ghcr.io/siderolabs/installer:v1.13.9 --wait"),
        "{v1_13}"
    );
    let (_, v1_14) = text("/api/v1/servers/robot-1/upgrade-command?talos_version=v1.14.1").await;
    let factory_host = server.factory().url().split_once("://").unwrap().1;
    assert!(
        v1_14.contains(&format!(
            "upgrade --image {factory_host}/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1 --wait"
        )),
        "{v1_14}"
    );
    let (_, pinned) = text("/api/v1/servers/robot-1/upgrade-command?talos_version=v1.7.6").await;
    assert!(pinned.contains("--preserve"), "{pinned}");
    add_server(&server, ProviderKind::HetznerRobot, "2", "worker-2").await;
    let (status, _) = text("/api/v1/servers/robot-2/reboot-command").await;
    assert_eq!(status, 404);
});
