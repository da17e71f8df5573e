//! The reliability suite's load test: many nodes fetch their configs while an administrator
//! keeps editing, with no 5xx, no node given another's config and no update lost.
//!
//! It runs for a bounded time; how fast the service is belongs to the benchmarks
//! (docs/performance.md), not here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use talos_manager_core::Backend;
use talos_manager_core::ProviderKind;
use talos_manager_core::ids::ClusterId;
use talos_manager_core::node_config::TrustedProxies;

use super::api_servers_jobs::add_server;
use super::server::TestServer;

/// How many nodes ask for their config at once.
const CLIENTS: usize = 200;
/// How many configured servers they pretend to be.
const SERVERS: u32 = 10;
/// How long the load lasts.
const LOAD: Duration = Duration::from_secs(4);

/// The config's patch at each `generation` of the administrator's edits: the node's own
/// hostname (substituted per server) and a value that changes with every edit.
fn patch(generation: u64) -> String {
    format!(
        "machine:\n  sysctls:\n    fs.inotify.max_user_watches: \"{generation}\"\n---\napiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels:\n  example.com/node: ${{hostname}}\n"
    )
}

/// What `/config` answered, by outcome.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    server_errors: AtomicU64,
    other: AtomicU64,
    /// Answers whose body was not the config of the server asked for.
    wrong_body: AtomicU64,
}

async fn load_with_admin_writes(backend: Backend) {
    let server =
        TestServer::start_trusting(backend, TrustedProxies::parse("127.0.0.1").unwrap()).await;
    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": "https://prod.example.com:6443"})),
            201,
        )
        .await;
    let cluster_id = ClusterId(cluster["id"].as_str().unwrap().parse().unwrap());
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "patch": patch(0)})),
            201,
        )
        .await;
    let config_path = format!("/api/v1/configs/{}", config["id"].as_str().unwrap());
    for number in 1..=SERVERS {
        let name = format!("worker-{number}");
        add_server(
            &server,
            ProviderKind::HetznerRobot,
            &number.to_string(),
            &name,
        )
        .await;
        let stored = server
            .store()
            .list_servers()
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.inventory.name == name)
            .unwrap();
        server
            .store()
            .update_server_assignment(stored.id, &name, Some(cluster_id), None, None)
            .await
            .unwrap();
        server
            .expect(
                Method::POST,
                "/api/v1/machine-configs",
                Some(json!({"server_id": format!("robot-{number}"), "config_id": config["id"]})),
                201,
            )
            .await;
    }

    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + LOAD;
    let client = super::server::client();
    let nodes: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let tally = tally.clone();
            let client = client.clone();
            let url = server.url("/config");
            let number = index as u32 % SERVERS + 1;
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let response = client
                        .get(&url)
                        .header("x-forwarded-for", format!("127.0.113.{number}"))
                        .send()
                        .await
                        .expect("the service answers every node");
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    let counter = if status.is_success() {
                        if !body.contains(&format!("hostname: worker-{number}\n")) {
                            tally.wrong_body.fetch_add(1, Ordering::Relaxed);
                        }
                        &tally.ok
                    } else if status.is_server_error() {
                        &tally.server_errors
                    } else {
                        &tally.other
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Meanwhile an administrator keeps changing the config and the label and taint rules.
    let mut generation = 0;
    let mut rules = 0;
    while Instant::now() < deadline {
        generation += 1;
        server
            .expect(
                Method::PUT,
                &config_path,
                Some(json!({"name": "default", "patch": patch(generation)})),
                200,
            )
            .await;
        let rule = server
            .expect(
                Method::POST,
                "/api/v1/label-taint-rules",
                Some(json!({"match": format!("worker-{generation}"), "labels": format!("generation={generation}")})),
                201,
            )
            .await;
        rules += 1;
        if generation % 2 == 0 {
            let path = format!("/api/v1/label-taint-rules/{}", rule["id"].as_str().unwrap());
            server.expect(Method::DELETE, &path, None, 204).await;
            rules -= 1;
        }
    }
    for node in nodes {
        node.await.unwrap();
    }

    let ok = tally.ok.load(Ordering::Relaxed);
    eprintln!(
        "{backend:?}: {ok} configs served to {CLIENTS} clients in {LOAD:?} while {generation} config updates landed"
    );
    assert_eq!(
        tally.server_errors.load(Ordering::Relaxed),
        0,
        "no 5xx under load"
    );
    assert_eq!(
        tally.other.load(Ordering::Relaxed),
        0,
        "every configured node gets its config"
    );
    assert_eq!(
        tally.wrong_body.load(Ordering::Relaxed),
        0,
        "no node gets another's config"
    );
    assert!(ok > 0, "some configs were served");

    // No update was lost: the last one is what the API and every node see.
    let stored = server.expect(Method::GET, &config_path, None, 200).await;
    assert_eq!(stored["patch"], patch(generation));
    for number in 1..=SERVERS {
        let response = client
            .get(server.url("/config"))
            .header("x-forwarded-for", format!("127.0.113.{number}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!("fs.inotify.max_user_watches: \"{generation}\"")),
            "worker-{number} gets the last update ({generation})"
        );
    }
    let listed = server
        .expect(Method::GET, "/api/v1/label-taint-rules", None, 200)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), rules, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_under_load_with_admin_writes_sqlite() {
    load_with_admin_writes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_under_load_with_admin_writes_postgres() {
    load_with_admin_writes(Backend::Postgres).await;
}
