//! `/metrics` and request ids: what an operator's Prometheus and log search see.

use reqwest::Method;
use talos_manager_core::Backend;

use super::server::TestServer;

#[tokio::test]
async fn requests_are_counted_by_route_and_status_and_carry_an_id() {
    let server = TestServer::start(Backend::Sqlite).await;
    server
        .expect(Method::GET, "/api/v1/settings", None, 200)
        .await;
    let unauthenticated = reqwest::get(server.url("/api/v1/settings")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let generated = unauthenticated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 16, "{generated}");

    let echoed = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc_123");
    let replaced = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");

    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for expected in [
        "talos_manager_http_requests_total{method=\"GET\",route=\"api\",status=\"200\"} 1",
        "talos_manager_http_requests_total{method=\"GET\",route=\"api\",status=\"401\"} 1",
        "talos_manager_http_requests_total{method=\"GET\",route=\"healthz\",status=\"200\"} 2",
        "talos_manager_http_request_duration_seconds_count{route=\"api\"} 2",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
