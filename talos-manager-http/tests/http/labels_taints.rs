//! Label and taint rules reaching Kubernetes nodes: a node fetches its config, the
//! `label_and_taint` job patches its node in the fake Kubernetes API; rule changes are
//! re-applied and deleted rules removed (foreign labels and taints kept); an unreachable API
//! fails the job after its bound; the running Kubernetes version goes into new configs.

use super::api_servers_jobs::add_server;
use super::server::{TestServer, api_test};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use talos_manager_core::ProviderKind;
use talos_manager_core::Store;
use talos_manager_core::ids::ServerId;
use talos_manager_core::jobs::{JobKind, JobQueue, LabelAndTaintJob, Worker, WorkerTiming};
use talos_manager_core::kubernetes::ClientTimeouts;
use talos_manager_core::node_labels::ReconcileOptions;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::store::{Job, JobStatus, LabelTaintRuleFields};
use talos_manager_core::talos::SecretsBundle;
use talos_manager_core::testing::wait_for;
use talos_manager_fake_kubernetes::FakeKubernetes;
use tokio::sync::watch;

/// The server's (and node's) name: the `db` rule matches it, the `web` rule does not.
const NODE: &str = "db-worker-1";

/// Waits of a few seconds at most, polling quickly.
pub(crate) fn options(node_wait: Duration) -> ReconcileOptions {
    ReconcileOptions {
        node_wait,
        poll_min: Duration::from_millis(50),
        poll_max: Duration::from_millis(200),
        conflict_retries: 3,
        timeouts: ClientTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        },
    }
}

/// A worker running label and taint jobs until the returned sender is dropped.
fn start_worker(store: &Store, options: ReconcileOptions) -> watch::Sender<bool> {
    let worker = Worker::new(JobQueue::new(store.clone()), "labels-test")
        .register(LabelAndTaintJob::new(options))
        .timing(WorkerTiming {
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(50),
            abandoned_after: Duration::from_secs(30),
        });
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    stop
}

fn pem(b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// A fresh secrets bundle and a fake API server with its Kubernetes CA.
pub(crate) async fn bundle_and_fake() -> (SecretsBundle, FakeKubernetes) {
    let bundle = tokio::task::spawn_blocking(|| {
        SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap()
    })
    .await
    .unwrap();
    let api = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
        .await
        .unwrap();
    (bundle, api)
}

/// A cluster at `endpoint` with `bundle`, a config for Kubernetes 1.30.1, and the server
/// `db-worker-1` at 127.0.0.1 with a machine config (hostname `db-worker-1`). Returns the
/// cluster's API id and the server's id.
async fn configured_server(
    server: &TestServer,
    endpoint: &str,
    bundle: &SecretsBundle,
) -> (String, ServerId) {
    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": endpoint, "secrets": bundle.to_yaml()})),
            201,
        )
        .await;
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "kubernetes_version": "1.30.1"})),
            201,
        )
        .await;
    add_server(server, ProviderKind::HetznerRobot, "1", NODE).await;
    let row = server.store().list_servers().await.unwrap().remove(0);
    let mut inventory = row.inventory.clone();
    inventory.ipv4 = Some("127.0.0.1".into());
    server
        .store()
        .upsert_server(row.provider_account_id, &inventory)
        .await
        .unwrap();
    let cluster_id: i64 = cluster["id"].as_str().unwrap().parse().unwrap();
    server
        .store()
        .update_server_assignment(
            row.id,
            NODE,
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
            Some(json!({"server_id": "robot-1", "config_id": config["id"], "hostname": NODE, "install_disk": "/dev/nvme0n1"})),
            201,
        )
        .await;
    (cluster["id"].as_str().unwrap().to_owned(), row.id)
}

/// `GET /config` as the node (by its address); returns the config.
/// Fetches the node's config as the node does; answers the kubelet image it names (the
/// `KubeletConfig` document's from Talos 1.14, else `machine.kubelet.image`).
async fn fetch_config(server: &TestServer) -> Value {
    let response = crate::http::server::client()
        .get(server.url("/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    match crate::http::server::typed_document(&body, "KubeletConfig") {
        Some(kubelet) => kubelet["image"].clone(),
        None => {
            let config: Value = crate::http::server::v1alpha1_document(&body);
            config["machine"]["kubelet"]["image"].clone()
        }
    }
}

/// The label and taint jobs of the server, oldest first.
async fn jobs_of(store: &Store, server_id: ServerId) -> Vec<Job> {
    let mut jobs: Vec<Job> = store
        .list_jobs()
        .await
        .unwrap()
        .into_iter()
        .filter(|job| {
            job.kind == JobKind::LabelAndTaint.as_str() && job.server_id == Some(server_id)
        })
        .collect();
    jobs.reverse();
    jobs
}

/// Waits until the server's newest label and taint job finished; returns it and its log.
pub(crate) async fn finished_job(store: &Store, server_id: ServerId) -> (Job, String) {
    let job = wait_for(
        format!("the label and taint job of server {server_id} to finish"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let job = store
                .latest_server_job(JobKind::LabelAndTaint.as_str(), server_id)
                .await
                .unwrap()
                .expect("a label and taint job was queued");
            if matches!(job.status, JobStatus::Queued | JobStatus::Running) {
                Err(job)
            } else {
                Ok(job)
            }
        },
    )
    .await;
    let log: Vec<String> = store
        .job_log(job.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.line)
        .collect();
    (job, log.join("\n"))
}

async fn create_rule(server: &TestServer, name_match: &str, labels: &str, taints: &str) -> String {
    let rule = server
        .expect(
            Method::POST,
            "/api/v1/label-taint-rules",
            Some(json!({"match": name_match, "labels": labels, "taints": taints})),
            201,
        )
        .await;
    rule["id"].as_str().unwrap().to_owned()
}

fn labels_of(node: &Value) -> Value {
    node["metadata"]["labels"].clone()
}

api_test!(a_served_config_labels_and_taints_the_node, |server| {
    let (bundle, api) = bundle_and_fake().await;
    api.add_node(NODE, json!({"team": "storage"}), json!([]));
    create_rule(&server, "db", "role=db", "dedicated=db:NoSchedule").await;
    create_rule(&server, "web", "role=web", "").await;
    let (cluster_id, server_id) = configured_server(&server, api.url(), &bundle).await;
    let _worker = start_worker(server.store(), options(Duration::from_secs(10)));

    // The imported cluster's API server was asked when the cluster was created: the first
    // config is served the version the cluster runs, not the template's 1.30.1.
    let image = fetch_config(&server).await;
    assert_eq!(image, "ghcr.io/siderolabs/kubelet:v1.33.1");
    let (job, log) = finished_job(server.store(), server_id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}\n{log}");
    assert!(
        log.contains("node db-worker-1: label role=db added"),
        "{log}"
    );
    assert!(
        log.contains("node db-worker-1: taint dedicated=db:NoSchedule added"),
        "{log}"
    );
    let patches = api.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    let node = api.node(NODE).unwrap();
    assert_eq!(
        labels_of(&node),
        json!({"kubernetes.io/hostname": NODE, "role": "db", "team": "storage"})
    );
    assert_eq!(
        node["spec"]["taints"],
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    );
    let row = server.server_json("robot-1").await;
    assert!(row["label_and_taint_job_completed_at"].is_string(), "{row}");

    // The job read the running version; the cluster shows it and new configs use it.
    let cluster = server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{cluster_id}"),
            None,
            200,
        )
        .await;
    assert_eq!(cluster["running_kubernetes_version"], "1.33.1");
    let image = fetch_config(&server).await;
    assert_eq!(image, "ghcr.io/siderolabs/kubelet:v1.33.1");
    // Asking again within ten minutes queues no second job.
    assert_eq!(jobs_of(server.store(), server_id).await.len(), 1);

    // Once the cached version is old, `/config` asks the API server again, in the
    // background: the configs served after the answer use the new version.
    api.set_version("v1.34.2");
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let id = talos_manager_core::ids::ClusterId(cluster_id.parse().unwrap());
    server
        .store()
        .record_running_kubernetes_version(id, None, long_ago)
        .await
        .unwrap();
    let images = std::cell::RefCell::new(Vec::new());
    wait_for(
        "the new version to reach a config",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let image = fetch_config(&server).await;
            images.borrow_mut().push(image.clone());
            if image == "ghcr.io/siderolabs/kubelet:v1.34.2" {
                Ok(())
            } else {
                Err(images.borrow().clone())
            }
        },
    )
    .await;
    let images = images.into_inner();
    assert_eq!(
        images[0], "ghcr.io/siderolabs/kubelet:v1.33.1",
        "the request that noticed the old version is not held up"
    );
    let cluster = server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{cluster_id}"),
            None,
            200,
        )
        .await;
    assert_eq!(cluster["running_kubernetes_version"], "1.34.2");
});

api_test!(the_job_waits_for_a_node_that_joins_later, |server| {
    let (bundle, api) = bundle_and_fake().await;
    create_rule(&server, "worker", "role=worker", "").await;
    let (_, server_id) = configured_server(&server, api.url(), &bundle).await;
    let _worker = start_worker(server.store(), options(Duration::from_secs(20)));

    // The node joins two seconds after it was served its config.
    api.add_node_after(NODE, Duration::from_secs(2), json!({}), json!([]));
    fetch_config(&server).await;
    let (job, log) = finished_job(server.store(), server_id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}\n{log}");
    assert!(
        log.contains("waiting for node db-worker-1 to appear in the kubernetes API"),
        "{log}"
    );
    let gets = api
        .requests()
        .iter()
        .filter(|request| *request == "GET /api/v1/nodes/db-worker-1")
        .count();
    assert!(gets >= 2, "{:?}", api.requests());
    assert_eq!(labels_of(&api.node(NODE).unwrap())["role"], "worker");
});

api_test!(
    rule_changes_are_reapplied_and_deleted_rules_removed,
    |server| {
        let (bundle, api) = bundle_and_fake().await;
        api.add_node(NODE, json!({}), json!([]));
        let rule = create_rule(
            &server,
            "db",
            "role=db,tier=gold",
            "dedicated=db:NoSchedule",
        )
        .await;
        let (_, server_id) = configured_server(&server, api.url(), &bundle).await;
        let _worker = start_worker(server.store(), options(Duration::from_secs(10)));
        fetch_config(&server).await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{log}");

        // Someone else labels and taints the node too.
        api.change_node(
        NODE,
        json!({
            "metadata": {"labels": {"team": "storage"}},
            "spec": {"taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": "maintenance", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
            ]},
        }),
    );

        // Changed: role's value, tier dropped, the taint's value.
        server
        .expect(
            Method::PUT,
            &format!("/api/v1/label-taint-rules/{rule}"),
            Some(json!({"match": "db", "labels": "role=database", "taints": "dedicated=database:NoSchedule"})),
            200,
        )
        .await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{log}");
        assert!(
            log.contains("label role=database set (was role=db)"),
            "{log}"
        );
        assert!(log.contains("label tier=gold removed"), "{log}");
        let node = api.node(NODE).unwrap();
        assert_eq!(
            labels_of(&node),
            json!({"kubernetes.io/hostname": NODE, "role": "database", "team": "storage"})
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([
                {"key": "dedicated", "value": "database", "effect": "NoSchedule"},
                {"key": "maintenance", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
            ])
        );

        // Deleted: what the rule added goes, the rest stays.
        server
            .expect(
                Method::DELETE,
                &format!("/api/v1/label-taint-rules/{rule}"),
                None,
                204,
            )
            .await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{log}");
        let node = api.node(NODE).unwrap();
        assert_eq!(
            labels_of(&node),
            json!({"kubernetes.io/hostname": NODE, "team": "storage"})
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "maintenance", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}])
        );
        assert_eq!(jobs_of(server.store(), server_id).await.len(), 3);
        // Nothing but merge patches of that node reached the API.
        assert!(
            api.patches().iter().all(|patch| patch.status == 200),
            "{:?}",
            api.patches()
        );
    }
);

api_test!(an_unreachable_api_fails_the_job_after_its_bound, |server| {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bundle = tokio::task::spawn_blocking(|| {
        SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap()
    })
    .await
    .unwrap();
    create_rule(&server, "db", "role=db", "").await;
    let (cluster_id, server_id) =
        configured_server(&server, &format!("https://127.0.0.1:{port}"), &bundle).await;
    let _worker = start_worker(server.store(), options(Duration::from_secs(1)));

    fetch_config(&server).await;
    let (job, log) = finished_job(server.store(), server_id).await;
    assert_eq!(job.status, JobStatus::Failed, "{log}");
    let reason = job.last_error.unwrap();
    assert!(
        reason.starts_with("gave up waiting for node db-worker-1 after "),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "the kubernetes API at https://127.0.0.1:{port} is unreachable (get node db-worker-1)"
        )),
        "{reason}"
    );
    assert!(log.contains("waiting for the kubernetes API at"), "{log}");
    let cluster = server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{cluster_id}"),
            None,
            200,
        )
        .await;
    assert!(cluster["running_kubernetes_version"].is_null(), "{cluster}");
});

api_test!(an_api_server_of_another_ca_is_not_trusted, |server| {
    // The fake's certificate is signed by another cluster's CA (and it trusts only that CA).
    let (_, impostor) = bundle_and_fake().await;
    let bundle = tokio::task::spawn_blocking(|| {
        SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap()
    })
    .await
    .unwrap();
    impostor.add_node(NODE, json!({}), json!([]));
    create_rule(&server, "db", "role=db", "").await;
    let (_, server_id) = configured_server(&server, impostor.url(), &bundle).await;
    let _worker = start_worker(server.store(), options(Duration::from_secs(1)));

    fetch_config(&server).await;
    let (job, log) = finished_job(server.store(), server_id).await;
    assert_eq!(job.status, JobStatus::Failed, "{log}");
    let reason = job.last_error.unwrap();
    assert!(
        reason.contains("is unreachable (get node db-worker-1)"),
        "{reason}"
    );
    assert!(
        impostor.requests().is_empty(),
        "no request got through TLS: {:?}",
        impostor.requests()
    );
});

api_test!(
    a_rule_the_kubernetes_api_would_refuse_is_refused_when_saved,
    |server| {
        let long = "a".repeat(64);
        let refused = server
            .expect(
                Method::POST,
                "/api/v1/label-taint-rules",
                Some(json!({"match": "db", "labels": format!("team={long},role=db"), "taints": "my_corp.io/x=y:NoSchedule"})),
                422,
            )
            .await;
        let issues = refused["issues"].as_array().unwrap();
        assert_eq!(issues.len(), 2, "{refused}");
        assert_eq!(issues[0]["path"], "labels", "{refused}");
        assert_eq!(
            issues[0]["message"],
            format!("\"team={long}\" values must be no more than 63 characters")
        );
        assert_eq!(issues[1]["path"], "taints", "{refused}");
        assert!(
            issues[1]["message"]
                .as_str()
                .unwrap()
                .contains("key's prefix part must be a lowercase DNS subdomain"),
            "{refused}"
        );
        // Kubernetes's own prefixes are fine with the admin credentials the rules use.
        create_rule(&server, "db", "node-role.kubernetes.io/database=", "").await;
    }
);

api_test!(
    one_bad_stored_rule_does_not_keep_the_others_from_the_node,
    |server| {
        let (bundle, api) = bundle_and_fake().await;
        api.add_node(NODE, json!({}), json!([]));
        create_rule(&server, "db", "role=db", "dedicated=db:NoSchedule").await;
        // Saved before the check was as strict as Kubernetes (straight into the store).
        server
            .store()
            .create_label_taint_rule(&LabelTaintRuleFields {
                name_match: "worker".into(),
                labels: format!("team={},tier=backend", "a".repeat(64)),
                taints: String::new(),
            })
            .await
            .unwrap();
        let (_cluster_id, server_id) = configured_server(&server, api.url(), &bundle).await;
        let _worker = start_worker(server.store(), options(Duration::from_secs(10)));
        fetch_config(&server).await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}\n{log}");
        assert!(
            log.contains(&format!(
                "node db-worker-1: rule \"worker\": label \"team={}\" values must be no more than 63 characters; left out",
                "a".repeat(64)
            )),
            "{log}"
        );
        let node = api.node(NODE).unwrap();
        assert_eq!(
            labels_of(&node),
            json!({"kubernetes.io/hostname": NODE, "role": "db", "tier": "backend"})
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        );
    }
);

api_test!(
    a_label_value_written_between_our_read_and_our_removal_is_kept,
    |server| {
        let (bundle, api) = bundle_and_fake().await;
        api.add_node(NODE, json!({}), json!([]));
        let rule = create_rule(&server, "db", "role=db", "").await;
        let (_, server_id) = configured_server(&server, api.url(), &bundle).await;
        let _worker = start_worker(server.store(), options(Duration::from_secs(10)));
        fetch_config(&server).await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{log}");

        // The rule goes; someone sets role=cache after the job read the node (role=db) and
        // before its removal lands.
        api.change_node_before_next_patch(NODE, json!({"metadata": {"labels": {"role": "cache"}}}));
        server
            .expect(
                Method::DELETE,
                &format!("/api/v1/label-taint-rules/{rule}"),
                None,
                204,
            )
            .await;
        let (job, log) = finished_job(server.store(), server_id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{log}");
        assert!(
            log.contains("node db-worker-1 changed while we patched it; reading it again"),
            "{log}"
        );
        assert!(
            log.contains("label role=cache kept: no rule sets it any more"),
            "{log}"
        );
        assert_eq!(
            labels_of(&api.node(NODE).unwrap()),
            json!({"kubernetes.io/hostname": NODE, "role": "cache"}),
            "their value survives"
        );
        let statuses: Vec<u16> = api.patches().iter().map(|patch| patch.status).collect();
        assert_eq!(
            statuses,
            [200, 409],
            "the removal was conditional and lost the race"
        );
    }
);
