//! Provider accounts against the fake Robot and Cloud APIs: credentials verified on create and
//! update, never returned.

use reqwest::Method;
use serde_json::json;
use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};

use super::server::api_test;

api_test!(provider_accounts_crud_with_verified_credentials, |server| {
    server.robot.generate_servers(2);
    server.cloud.generate_servers(3);
    let refused = server
        .expect(
            Method::POST,
            "/api/v1/provider-accounts",
            Some(json!({"provider": "hetzner_robot", "name": FakeRobot::USER, "secret": "wrong"})),
            422,
        )
        .await;
    assert_eq!(refused["issues"][0]["path"], "secret", "{refused}");

    let unknown = server
        .expect(
            Method::POST,
            "/api/v1/provider-accounts",
            Some(json!({"provider": "aws", "name": "x", "secret": "y"})),
            422,
        )
        .await;
    assert_eq!(unknown["issues"][0]["path"], "provider", "{unknown}");

    let robot = server
        .expect(
            Method::POST,
            "/api/v1/provider-accounts",
            Some(json!({"provider": "hetzner_robot", "name": FakeRobot::USER, "secret": FakeRobot::PASSWORD})),
            201,
        )
        .await;
    assert!(robot.get("secret").is_none(), "{robot}");
    let cloud = server
        .expect(
            Method::POST,
            "/api/v1/provider-accounts",
            Some(
                json!({"provider": "hetzner_cloud", "name": "project", "secret": FakeCloud::TOKEN}),
            ),
            201,
        )
        .await;
    let cloud_path = format!(
        "/api/v1/provider-accounts/{}",
        cloud["id"].as_str().unwrap()
    );

    let list = server
        .expect(Method::GET, "/api/v1/provider-accounts", None, 200)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(FakeCloud::TOKEN));
    assert!(!list.to_string().contains(FakeRobot::PASSWORD));

    let renamed = server
        .expect(
            Method::PUT,
            &cloud_path,
            Some(json!({"name": "renamed"})),
            200,
        )
        .await;
    assert_eq!(renamed["name"], "renamed");
    server
        .expect(
            Method::PUT,
            &cloud_path,
            Some(json!({"name": "renamed", "secret": "bad-token"})),
            422,
        )
        .await;
    assert_eq!(
        server.expect(Method::GET, &cloud_path, None, 200).await["name"],
        "renamed"
    );
    server.expect(Method::DELETE, &cloud_path, None, 204).await;
    server.expect(Method::GET, &cloud_path, None, 404).await;
});

api_test!(sync_is_queued_as_a_job, |server| {
    let job = server
        .expect(Method::POST, "/api/v1/servers/sync", None, 202)
        .await;
    assert_eq!(job["kind"], "sync", "{job}");
    assert_eq!(job["status"], "queued", "{job}");
});
