//! Machine configs through the admin API: the original's defaults and validation.

use reqwest::Method;
use serde_json::json;
use talos_manager_core::ProviderKind;
use talos_manager_core::store::ConfigFields;

use super::api_servers_jobs::add_server;
use super::server::{TestServer, api_test};

async fn add_config(server: &TestServer) -> String {
    let config = server
        .store()
        .create_config(&ConfigFields {
            name: "default".into(),
            install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
            kubernetes_version: "1.30.1".into(),
            kubespan: true,
            patch: String::new(),
            patch_control_plane: String::new(),
            patch_worker: String::new(),
        })
        .await
        .unwrap();
    config.id.to_string()
}

api_test!(
    defaults_come_from_the_server_name_and_its_bootstrap_disk,
    |server| {
        add_server(&server, ProviderKind::HetznerRobot, "3", "database-3").await;
        let row = server.store().list_servers().await.unwrap().remove(0);
        server
            .store()
            .record_bootstrap_disk(row.id, "/dev/nvme1n1", Some("eui.0025388b21b4a3c2"))
            .await
            .unwrap();
        let config_id = add_config(&server).await;

        let created = server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": "robot-3", "config_id": config_id})),
                201,
            )
            .await;
        assert_eq!(created["server_id"], "robot-3");
        assert_eq!(created["hostname"], "database-3");
        assert_eq!(created["private_ip"], "10.0.2.3");
        assert_eq!(created["install_disk"], "/dev/nvme1n1");
        assert!(created["ephemeral_disk_identifier"].is_null());

        let id = created["id"].as_str().unwrap();
        let path = format!("/api/v1/machine-configs/{id}");
        assert_eq!(server.expect(Method::GET, &path, None, 200).await, created);
        assert_eq!(
            server
                .expect(Method::GET, "/api/v1/machine-configs", None, 200)
                .await,
            json!([created])
        );

        // A config in use cannot be deleted.
        let in_use = server
            .store()
            .delete_config(
                config_id
                    .parse()
                    .map(talos_manager_core::ids::ConfigId)
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(in_use.to_string().contains("still in use"), "{in_use}");

        server.expect(Method::DELETE, &path, None, 204).await;
        server.expect(Method::GET, &path, None, 404).await;
    }
);

api_test!(bad_values_are_all_reported, |server| {
    add_server(&server, ProviderKind::HetznerCloud, "5", "worker-5").await;
    let config_id = add_config(&server).await;
    let invalid = server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({
                "server_id": "cloud-5",
                "config_id": config_id,
                "hostname": "worker-5",
                "private_ip": "10.0.1.6",
                "ephemeral_disk_identifier": "disk:abc",
            })),
            422,
        )
        .await;
    assert_eq!(
        invalid["issues"],
        json!([
            {"path": "private_ip", "message": "last octet must match the hostname number (expected '5', got '6')"},
            {"path": "ephemeral_disk_identifier", "message": "must be wwid:<disk wwid> or uuid:<md array uuid>"},
        ])
    );
    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": "cloud-6", "config_id": config_id})),
            404,
        )
        .await;
    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": "cloud-5", "config_id": "999"})),
            404,
        )
        .await;
});

api_test!(already_configured_marks_the_server_configured, |server| {
    add_server(&server, ProviderKind::HetznerRobot, "1", "control-plane-1").await;
    let config_id = add_config(&server).await;
    let created = server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(
                json!({"server_id": "robot-1", "config_id": config_id, "already_configured": true}),
            ),
            201,
        )
        .await;
    assert_eq!(created["private_ip"], "10.0.0.1");
    assert_eq!(created["install_disk"], "/dev/sda");
    let row = server.server_json("robot-1").await;
    assert!(row["last_configured_at"].is_string(), "{row}");
});
