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
    let page = ui.text().await.unwrap();
    assert!(page.contains("swagger"), "the UI page");
    // It shows the served document, with its corrections (`contentSchema` of event streams).
    assert!(
        page.contains("contentSchema"),
        "the UI's document is the served one"
    );
}

/// schemathesis found (docs/testing.md): `Option` fields are sent as `null`, which poem-openapi
/// did not document (OpenAPI 3.0 needs `nullable`), and the event streams' schema was read as
/// one event. Every `null` a job view carries is now allowed by the served document.
#[tokio::test]
async fn the_served_document_allows_the_nulls_the_api_sends() {
    let server = TestServer::start(Backend::Sqlite).await;
    let document: serde_json::Value = reqwest::get(server.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = server
        .expect(reqwest::Method::POST, "/api/v1/servers/sync", None, 202)
        .await;
    let properties = &document["components"]["schemas"]["JobView"]["properties"];
    let nulls: Vec<&String> = job
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, value)| value.is_null())
        .map(|(name, _)| name)
        .collect();
    assert!(nulls.len() >= 3, "a queued job has nulls: {job:#}");
    for name in nulls {
        assert_eq!(
            properties[name.as_str()]["nullable"],
            true,
            "JobView.{name} is sent as null: {:#}",
            properties[name.as_str()]
        );
    }
    // A required field is never null, and stays so in the document.
    assert!(properties["id"].get("nullable").is_none());
    // Every optional property without a default is nullable, in every schema.
    for (schema_name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            if !required.contains(&name.as_str().into()) && property.get("default").is_none() {
                assert_eq!(property["nullable"], true, "{schema_name}.{name}");
            }
        }
    }
    // An event stream's schema is one event whose data is the JSON payload.
    let stream = &document["paths"]["/jobs/{id}/log"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    assert_eq!(stream["type"], "object", "{stream:#}");
    assert_eq!(
        stream["properties"]["data"]["contentSchema"]["$ref"], "#/components/schemas/JobLogEvent",
        "{stream:#}"
    );
}
