//! A node's machine type is recorded when it is configured and changes only by an admin's
//! explicit choice: whoever can rename a server at Hetzner cannot make talos-manager serve it a
//! control plane's config (the cluster's CA keys).

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::RetryPolicy;
use talos_manager_core::sync::{ProviderFactory, sync_all};
use talos_manager_fake_hetzner::{FakeRobot, RobotServer};

use super::server::{TestServer, api_test};

/// The Robot server number; it answers on 127.0.0.1, where the tests' requests come from.
const NUMBER: u64 = 77;

fn robot_server(name: &str) -> RobotServer {
    RobotServer {
        ip: Some("127.0.0.1".into()),
        ..RobotServer::new(NUMBER, name)
    }
}

async fn sync(server: &TestServer) {
    let factory = ProviderFactory::new(server.robot.url(), server.cloud.url())
        .with_retry_policy(RetryPolicy::for_fakes());
    sync_all(server.store(), &factory, None).await.unwrap();
}

/// `GET /config` as the node at 127.0.0.1 asks for it: its v1alpha1 document, parsed.
async fn served_config(server: &TestServer) -> Value {
    let response = crate::http::server::client()
        .get(server.url("/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    crate::http::server::v1alpha1_document(&response.text().await.unwrap())
}

fn has_ca_keys(config: &Value) -> bool {
    let key = |value: &Value| value.as_str().is_some_and(|key| !key.is_empty());
    key(&config["cluster"]["ca"]["key"]) || key(&config["cluster"]["etcd"]["ca"]["key"])
}

api_test!(
    a_server_renamed_at_the_provider_keeps_its_machine_type,
    |server| {
        server.robot.add_server(robot_server("worker-9"));
        server
        .expect(
            Method::POST,
            "/api/v1/provider-accounts",
            Some(json!({"provider": "hetzner_robot", "name": FakeRobot::USER, "secret": FakeRobot::PASSWORD})),
            201,
        )
        .await;
        sync(&server).await;
        let (cluster, config) = server.cluster_and_config(json!({"name": "default"})).await;
        let id = format!("robot-{NUMBER}");
        server
            .expect(
                Method::PATCH,
                &format!("/api/v1/servers/{id}"),
                Some(json!({"cluster_id": cluster["id"]})),
                200,
            )
            .await;
        let machine_config = server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": id, "config_id": config["id"], "hostname": "worker-9"})),
                201,
            )
            .await;
        assert_eq!(machine_config["machine_type"], "worker");
        let served = served_config(&server).await;
        assert_eq!(served["machine"]["type"], "worker");
        assert!(!has_ca_keys(&served));

        // Someone with Hetzner access renames it; the next sync stores the new name.
        server.robot.add_server(robot_server("x-control-plane-9"));
        sync(&server).await;
        assert_eq!(server.server_json(&id).await["name"], "x-control-plane-9");

        // Still a worker config, without the cluster's CA keys; the machine config says so too.
        let served = served_config(&server).await;
        assert_eq!(served["machine"]["type"], "worker");
        assert!(!has_ca_keys(&served), "a renamed worker got CA keys");
        let listed = server
            .expect(Method::GET, "/api/v1/machine-configs", None, 200)
            .await;
        assert_eq!(listed[0]["machine_type"], "worker");
        // Replacing its machine config without a type keeps the recorded one, whatever the name.
        let replaced = server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": id, "config_id": config["id"], "hostname": "worker-9"})),
                201,
            )
            .await;
        assert_eq!(replaced["machine_type"], "worker");
        assert_eq!(served_config(&server).await["machine"]["type"], "worker");

        // Only an admin's explicit choice makes it a control plane.
        let promoted = server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": id, "config_id": config["id"], "hostname": "worker-9", "machine_type": "controlplane"})),
            201,
        )
        .await;
        assert_eq!(promoted["machine_type"], "controlplane");
        let served = served_config(&server).await;
        assert_eq!(served["machine"]["type"], "controlplane");
        assert!(has_ca_keys(&served));

        // An unknown type is refused.
        server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": id, "config_id": config["id"], "machine_type": "master"})),
                400,
            )
            .await;
    }
);
