//! The OpenAPI document is a checked-in contract (`openapi/admin-api.json`): an API change
//! shows in the diff. Bless it with `UPDATE_EXPECT=1`.

use expect_test::expect_file;
use talos_manager_core::Backend;

use super::server::TestServer;

#[test]
fn the_checked_in_document_is_up_to_date() {
    let document: serde_json::Value =
        serde_json::from_str(&talos_manager_http::api::openapi_document()).unwrap();
    let pretty = serde_json::to_string_pretty(&document).unwrap() + "\n";
    expect_file!["../../openapi/admin-api.json"].assert_eq(&pretty);
}

#[tokio::test]
async fn the_service_serves_the_document_and_its_ui_without_credentials() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served: serde_json::Value = response.json().await.unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&talos_manager_http::api::openapi_document()).unwrap();
    assert_eq!(served, expected);
    let ui = reqwest::get(server.url("/api/docs")).await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "the UI page");
}
