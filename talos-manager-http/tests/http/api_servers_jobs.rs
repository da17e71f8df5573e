//! Servers and jobs through the admin API, including a job's live log as server-sent events.

use super::server::{TestServer, api_test};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use talos_manager_core::ProviderKind;
use talos_manager_core::store::{JobOutcome, NewJob};

pub(crate) async fn add_server(
    server: &TestServer,
    provider: ProviderKind,
    provider_id: &str,
    name: &str,
) {
    let ipv4 = format!("127.0.113.{provider_id}");
    add_server_at(server.store(), provider, provider_id, name, &ipv4).await;
}

/// A server of `provider` (its account made when missing) at `ipv4`, as stored.
pub(crate) async fn add_server_at(
    store: &talos_manager_core::Store,
    provider: ProviderKind,
    provider_id: &str,
    name: &str,
    ipv4: &str,
) -> talos_manager_core::store::Server {
    talos_manager_core::testing::fleet::add_server(store, provider, provider_id, name, ipv4)
        .await
        .unwrap()
}

api_test!(servers_have_provider_prefixed_ids_and_filters, |server| {
    add_server(&server, ProviderKind::HetznerRobot, "7", "worker-1").await;
    add_server(&server, ProviderKind::HetznerCloud, "7", "worker-2").await;

    let all = server
        .expect(Method::GET, "/api/v1/servers", None, 200)
        .await;
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["cloud-7", "robot-7"]);

    let cloud = server
        .expect(
            Method::GET,
            "/api/v1/servers?provider=hetzner_cloud",
            None,
            200,
        )
        .await;
    assert_eq!(cloud.as_array().unwrap().len(), 1);
    assert_eq!(cloud[0]["name"], "worker-2");

    let robot = server
        .expect(Method::GET, "/api/v1/servers/robot-7", None, 200)
        .await;
    assert_eq!(robot["ipv4"], "127.0.113.7");
    assert_eq!(robot["architecture"], "amd64");
    assert_eq!(robot["accessible"], false);
    for missing in ["robot-8", "7", "gcp-7"] {
        let body = server
            .expect(
                Method::GET,
                &format!("/api/v1/servers/{missing}"),
                None,
                404,
            )
            .await;
        assert_eq!(body["code"], "not_found");
    }
});

api_test!(
    a_jobs_live_log_replays_then_follows_until_it_ends,
    |server| {
        add_server(&server, ProviderKind::HetznerRobot, "9", "worker-9").await;
        let server_row = server.store().list_servers().await.unwrap().remove(0);
        let store = server.store().clone();
        let job = store
            .enqueue_job(&NewJob {
                kind: "bootstrap".into(),
                server_id: Some(server_row.id),
                args: json!({"disk": "/dev/nvme0n1"}),
            })
            .await
            .unwrap();
        store.claim_job("test-worker").await.unwrap().unwrap();
        store
            .append_job_log(job.id, "wiping /dev/nvme0n1")
            .await
            .unwrap();

        let listed = server.expect(Method::GET, "/api/v1/jobs", None, 200).await;
        assert_eq!(listed[0]["server_id"], "robot-9");
        assert_eq!(listed[0]["status"], "running");

        // A worker keeps logging while the client follows, then finishes the job.
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store
                .append_job_log(job.id, "writing image: 50%")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.append_job_log(job.id, "rebooting").await.unwrap();
            store
                .finish_job(job.id, "test-worker", JobOutcome::Succeeded)
                .await
                .unwrap();
        });
        let response = server
            .client
            .get(server.url(&format!("/api/v1/jobs/{}/log", job.id)))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = tokio::time::timeout(Duration::from_secs(30), response.text())
            .await
            .expect("the live log ends when the job ends")
            .unwrap();
        writer.await.unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect();
        let lines: Vec<&str> = events.iter().filter_map(|e| e["line"].as_str()).collect();
        assert_eq!(
            lines,
            ["wiping /dev/nvme0n1", "writing image: 50%", "rebooting"]
        );
        assert_eq!(events.last().unwrap()["job_status"], "succeeded");

        let done = server
            .expect(Method::GET, &format!("/api/v1/jobs/{}", job.id), None, 200)
            .await;
        assert_eq!(done["status"], "succeeded");
    }
);
