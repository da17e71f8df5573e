//! Every operation of the OpenAPI document refuses a request without credentials, or with
//! wrong ones. The only public endpoints are listed in `tests/output/unauthenticated-endpoints.txt`,
//! so opening a new one shows in review.

use expect_test::expect_file;
use reqwest::Method;
use talos_manager_core::Backend;

use super::server::TestServer;

/// Every (method, path) of the document, with path parameters filled in.
fn operations() -> Vec<(Method, String)> {
    let document: serde_json::Value =
        serde_json::from_str(&talos_manager_http::api::openapi_document()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "1"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            operations.push((method, format!("/api/v1{path}")));
        }
    }
    operations
}

#[tokio::test]
async fn every_operation_requires_credentials() {
    let server = TestServer::start(Backend::Sqlite).await;
    let operations = operations();
    assert!(operations.len() >= 15, "{operations:?}");
    for (method, path) in operations {
        for credentials in [None, Some("tm_not-a-token")] {
            let mut request = server.client.request(method.clone(), server.url(&path));
            if let Some(token) = credentials {
                request = request.bearer_auth(token);
            }
            let response = request.json(&serde_json::json!({})).send().await.unwrap();
            assert_eq!(
                response.status(),
                401,
                "{method} {path} with credentials {credentials:?} answered {}",
                response.status()
            );
        }
        let wrong_password = server
            .client
            .request(method.clone(), server.url(&path))
            .basic_auth("admin", Some("wrong-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong_password.status(),
            401,
            "{method} {path} with a wrong password"
        );
    }
}

#[tokio::test]
async fn the_public_endpoints_are_the_listed_ones() {
    let server = TestServer::start(Backend::Sqlite).await;
    let candidates = [
        "/healthz",
        "/config",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/docs",
        // The dashboard's pages and scripts hold no data; it reads everything through the API.
        "/",
        "/servers",
        "/assets/app.js",
        "/assets/no-such-file.js",
    ];
    let mut public = Vec::new();
    for path in candidates {
        let status = reqwest::get(server.url(path)).await.unwrap().status();
        if status != 401 && status != 404 {
            public.push(format!("GET {path}"));
        }
    }
    expect_file!["../output/unauthenticated-endpoints.txt"].assert_eq(&(public.join("\n") + "\n"));
}
