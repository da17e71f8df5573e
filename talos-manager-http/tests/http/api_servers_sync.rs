//! Fleet sync through the API (job, SSH probe of a real sshd, report in the job log), server
//! edits pushed to the fake providers, provider accounts seeded from the legacy variables, and
//! the servers' live events (`/servers/events`) following renames and deletions.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::ids::VswitchId;
use talos_manager_core::jobs::{JobQueue, SyncJob, Worker, WorkerTiming};
use talos_manager_core::store::ClusterFields;
use talos_manager_core::sync::{ProviderFactory, SshProber, SyncPolicy, sync_all, sync_all_with};
use talos_manager_core::testing::{TestDatabase, wait_for};
use talos_manager_core::{Backend, EncryptionKey, RetryPolicy, Secret};
use talos_manager_fake_hetzner::{
    CloudServer, FakeCloud, FakeRobot, Fault, RobotServer, RobotVswitch, Target, VswitchMember,
};
use talos_manager_rescue_host::{KeyPair, Sshd};

use super::process::{Service, talos_manager};
use super::server::{PASSWORD, TestServer, api_test};

/// The clients of the test server's fake providers.
fn factory(server: &TestServer) -> ProviderFactory {
    ProviderFactory::new(server.robot.url(), server.cloud.url())
        .with_retry_policy(RetryPolicy::for_fakes())
}

/// Adds a provider account for each fake through the API.
async fn add_accounts(server: &TestServer) {
    for (provider, name, secret) in [
        ("hetzner_robot", FakeRobot::USER, FakeRobot::PASSWORD),
        ("hetzner_cloud", "project", FakeCloud::TOKEN),
    ] {
        server
            .expect(
                Method::POST,
                "/api/v1/provider-accounts",
                Some(json!({"provider": provider, "name": name, "secret": secret})),
                201,
            )
            .await;
    }
}

fn robot_server(number: u64, name: &str, ip: &str) -> RobotServer {
    RobotServer {
        ip: Some(ip.to_owned()),
        ..RobotServer::new(number, name)
    }
}

/// The servers as `GET /servers` lists them, by id.
async fn servers_by_id(server: &TestServer) -> std::collections::BTreeMap<String, Value> {
    let list = server
        .expect(Method::GET, "/api/v1/servers", None, 200)
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|view| (view["id"].as_str().unwrap().to_owned(), view.clone()))
        .collect()
}

api_test!(sync_job_probes_the_fleet_and_reports_it, |server| {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    // sshd answers on 127.0.0.1 only; nothing listens on 127.0.1.8, like a server that is off.
    server
        .robot
        .add_server(robot_server(7, "in-rescue-7", "127.0.0.1"));
    server
        .robot
        .add_server(robot_server(8, "switched-off-8", "127.0.1.8"));
    server.cloud.add_server(CloudServer {
        ipv4: Some("127.0.0.1".into()),
        ..CloudServer::new(9, "cloud-in-rescue-9")
    });
    add_accounts(&server).await;

    let prober = SshProber::new(key.private.clone(), sshd.port)
        .unwrap()
        .with_timeouts(Duration::from_secs(3), Duration::from_secs(20));
    let worker = Worker::new(JobQueue::new(server.store().clone()), "sync-worker")
        .register(SyncJob::new(factory(&server)).with_prober(Arc::new(prober)))
        .timing(WorkerTiming {
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(200),
            abandoned_after: Duration::from_secs(30),
        });
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }));

    let job = server
        .expect(Method::POST, "/api/v1/servers/sync", None, 202)
        .await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    // The live log ends when the job ends.
    let response = server
        .client
        .get(server.url(&format!("/api/v1/jobs/{job_id}/log")))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(90), response.text())
        .await
        .expect("the sync job ends")
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(
        events.last().unwrap()["job_status"],
        "succeeded",
        "{events:#?}"
    );
    let report = events
        .iter()
        .filter_map(|event| event["line"].as_str())
        .find(|line| line.starts_with("sync done: "))
        .unwrap_or_else(|| panic!("no report in {events:#?}"));
    assert!(
        report.starts_with(
            "sync done: 3 added, 0 updated, 0 missing, 0 removed, 0 vswitch(es) removed; 2 account(s) \
             synced, 0 failed; probe: 2 of 3 server(s) reachable in rescue; SSH connection \
             refused or failed: 1 (e.g. "
        ),
        "{report}"
    );
    assert!(
        report.contains("switched-off-8 (hetzner_robot 8)"),
        "{report}"
    );

    let servers = servers_by_id(&server).await;
    let accessible: Vec<(&str, bool)> = servers
        .iter()
        .map(|(id, view)| (id.as_str(), view["accessible"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        accessible,
        [("cloud-9", true), ("robot-7", true), ("robot-8", false)]
    );
    assert_eq!(
        servers["robot-7"]["uuid"],
        "4c4c4544-0042-3510-8057-b4c04f4e3432"
    );
    assert_eq!(servers["robot-8"]["uuid"], Value::Null);
    let in_rescue = server
        .expect(Method::GET, "/api/v1/servers?accessible=true", None, 200)
        .await;
    assert_eq!(in_rescue.as_array().unwrap().len(), 2);

    stop.send_replace(true);
    worker.await.unwrap();
});

api_test!(patch_renames_at_the_provider_before_storing, |server| {
    server
        .robot
        .add_server(RobotServer::new(321, "old-robot-name"));
    server
        .cloud
        .add_server(CloudServer::new(42, "old-cloud-name"));
    server.cloud.add_server(CloudServer::new(43, "taken"));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();

    let renamed = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"name": "control-plane-1"})),
            200,
        )
        .await;
    assert_eq!(renamed["name"], "control-plane-1");
    assert_eq!(server.robot.server(321).unwrap().name, "control-plane-1");
    let renamed = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/cloud-42",
            Some(json!({"name": "worker-1"})),
            200,
        )
        .await;
    assert_eq!(renamed["name"], "worker-1");
    assert_eq!(server.cloud.server(42).unwrap().name, "worker-1");
    assert_eq!(server.server_json("cloud-42").await["name"], "worker-1");

    // Cloud names are unique in a project: the refusal is about the name, nothing changes.
    let refused = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/cloud-42",
            Some(json!({"name": "taken"})),
            422,
        )
        .await;
    assert_eq!(refused["issues"][0]["path"], "name", "{refused}");
    assert!(
        refused["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("uniqueness_error"),
        "{refused}"
    );
    assert_eq!(server.server_json("cloud-42").await["name"], "worker-1");

    // Robot answers 503: a rename may have gone through behind it, so it is not sent again;
    // the answer says the outcome is unknown, and the stored name stays.
    server
        .robot
        .inject(Target::on("POST", "/server/321"), Fault::Status(503), 1);
    let unavailable = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"name": "control-plane-2"})),
            502,
        )
        .await;
    assert_eq!(
        unavailable["code"], "provider_outcome_unknown",
        "{unavailable}"
    );
    assert!(
        unavailable["message"]
            .as_str()
            .unwrap()
            .contains("it was not sent again"),
        "{unavailable}"
    );

    // A permanent refusal (the web-service user may not change this server) says what Robot
    // said and does not tell the operator to retry.
    server.robot.inject(
        Target::on("POST", "/server/321"),
        Fault::Answer(
            403,
            r#"{"error":{"status":403,"code":"FORBIDDEN","message":"not allowed"}}"#.into(),
        ),
        1,
    );
    let refused = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"name": "control-plane-2"})),
            502,
        )
        .await;
    assert_eq!(refused["code"], "provider_refused", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("FORBIDDEN"), "{refused}");
    assert!(!message.contains("retry"), "{refused}");
    assert_eq!(
        server.server_json("robot-321").await["name"],
        "control-plane-1"
    );
    assert_eq!(server.robot.server(321).unwrap().name, "control-plane-1");

    let empty = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"name": " "})),
            422,
        )
        .await;
    assert_eq!(empty["issues"][0]["path"], "name", "{empty}");
    server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-999",
            Some(json!({"name": "x"})),
            404,
        )
        .await;
});

api_test!(patch_moves_a_robot_server_between_vswitches, |server| {
    server.robot.add_server(RobotServer::new(321, "worker-1"));
    server
        .cloud
        .add_server(CloudServer::new(42, "cloud-worker"));
    let vswitch = |id: u64, vlan: u16, members: &[u64]| RobotVswitch {
        id,
        name: format!("vswitch-{id}"),
        vlan,
        cancelled: false,
        members: members
            .iter()
            .map(|&server_number| VswitchMember {
                server_number,
                pending_reads: 0,
            })
            .collect(),
    };
    server.robot.add_vswitch(vswitch(4321, 4000, &[321]));
    server.robot.add_vswitch(vswitch(1234, 4001, &[]));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    assert_eq!(server.server_json("robot-321").await["vswitch_id"], "4321");

    let requests_before = server.robot.requests().len();
    let moved = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"vswitch_id": "1234"})),
            200,
        )
        .await;
    assert_eq!(moved["vswitch_id"], "1234");
    assert_eq!(
        &server.robot.requests()[requests_before..],
        [
            "DELETE /vswitch/4321/server",
            "GET /vswitch/4321",
            "POST /vswitch/1234/server"
        ]
    );
    let members = |id: u64| -> Vec<u64> {
        server
            .robot
            .vswitch(id)
            .unwrap()
            .members
            .iter()
            .map(|member| member.server_number)
            .collect()
    };
    assert_eq!(members(4321), Vec::<u64>::new());
    assert_eq!(members(1234), [321]);

    // Robot is still joining it and locks the vSwitch (409 VSWITCH_IN_PROCESS): leaving now
    // waits the lock out and then works.
    let detached = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"vswitch_id": null})),
            200,
        )
        .await;
    assert_eq!(detached["vswitch_id"], Value::Null);
    assert_eq!(members(1234), Vec::<u64>::new());

    // Cloud servers have no vSwitch; unknown vSwitches are refused before Robot is asked.
    let requests_before = server.robot.requests().len();
    let cloud = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/cloud-42",
            Some(json!({"vswitch_id": "1234"})),
            422,
        )
        .await;
    assert_eq!(cloud["issues"][0]["path"], "vswitch_id", "{cloud}");
    let unknown = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"vswitch_id": "999", "name": ""})),
            422,
        )
        .await;
    let paths: Vec<&str> = unknown["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["name", "vswitch_id"], "{unknown}");
    assert_eq!(server.robot.requests().len(), requests_before);
    assert_eq!(server.server_json("robot-321").await["name"], "worker-1");
});

api_test!(patch_sets_the_cluster_locally, |server| {
    server.robot.add_server(RobotServer::new(321, "worker-1"));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    let cluster = server
        .store()
        .create_cluster(
            &ClusterFields {
                name: "prod".into(),
                endpoint: "https://10.0.0.1:6443".into(),
                vswitch_id: None::<VswitchId>,
            },
            &Secret::new("secrets".to_owned()),
        )
        .await
        .unwrap();
    let cluster_id = cluster.id.to_string();

    let requests_before = server.robot.requests().len();
    let joined = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"cluster_id": cluster_id})),
            200,
        )
        .await;
    assert_eq!(joined["cluster_id"], cluster_id.as_str());
    assert_eq!(joined["name"], "worker-1");
    assert_eq!(
        server.robot.requests().len(),
        requests_before,
        "a cluster change is local"
    );
    let filtered = server
        .expect(
            Method::GET,
            &format!("/api/v1/servers?cluster_id={cluster_id}"),
            None,
            200,
        )
        .await;
    assert_eq!(filtered[0]["id"], "robot-321");

    for bad in ["12345", "prod"] {
        let refused = server
            .expect(
                Method::PATCH,
                "/api/v1/servers/robot-321",
                Some(json!({"cluster_id": bad})),
                422,
            )
            .await;
        assert_eq!(refused["issues"][0]["path"], "cluster_id", "{refused}");
    }
    assert_eq!(
        server.server_json("robot-321").await["cluster_id"],
        cluster_id.as_str()
    );
    let left = server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"cluster_id": null})),
            200,
        )
        .await;
    assert_eq!(left["cluster_id"], Value::Null);
});

/// `serve` twice with the legacy `HETZNER_*` variables: the accounts are made on the first start
/// only, and sync uses them.
async fn legacy_variables_seed_accounts_once(backend: Backend) {
    let robot = FakeRobot::start_empty().await.unwrap();
    let cloud = FakeCloud::start_empty().await.unwrap();
    robot.generate_servers(2);
    cloud.generate_servers(3);
    let database = TestDatabase::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate();
    let start = || {
        let mut command = talos_manager(dir.path());
        command
            .env("DATABASE_URL", database.url())
            .env("TALOS_MANAGER_ENCRYPTION_KEY", key.to_base64().expose())
            .env("BASIC_AUTH_PASSWORD", PASSWORD)
            .env("HETZNER_WEBSERVICE_USER", FakeRobot::USER)
            .env("HETZNER_WEBSERVICE_PASSWORD", FakeRobot::PASSWORD)
            .env("HETZNER_CLOUD_API_TOKEN", FakeCloud::TOKEN)
            .env("HETZNER_ROBOT_API_URL", robot.url())
            .env("HETZNER_CLOUD_API_URL", cloud.url())
            .env("SYNC_INTERVAL", "0");
        Service::start(command)
    };
    let client = super::server::client();
    let get = |service: &Service, path: &str| {
        client
            .get(service.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .send()
    };

    let mut first = start();
    let accounts: Value = get(&first, "/api/v1/provider-accounts")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seeded: Vec<(String, String)> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|account| {
            (
                account["provider"].as_str().unwrap().to_owned(),
                account["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seeded.sort();
    assert_eq!(
        seeded,
        [
            (
                "hetzner_cloud".to_owned(),
                "HETZNER_CLOUD_API_TOKEN".to_owned()
            ),
            ("hetzner_robot".to_owned(), FakeRobot::USER.to_owned()),
        ]
    );
    assert!(first.terminate(Duration::from_secs(20)).success());
    assert_eq!(
        first
            .log
            .iter()
            .filter(|line| line.contains("seeded from the environment"))
            .count(),
        2,
        "{:#?}",
        first.log
    );

    let mut second = start();
    let accounts: Value = get(&second, "/api/v1/provider-accounts")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 2, "{accounts}");

    // The seeded credentials work: a sync lists every server of both fakes.
    let job: Value = client
        .post(second.url("/api/v1/servers/sync"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let status = wait_for(
        "the sync job to end",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let job: Value = get(&second, &job_path).await.unwrap().json().await.unwrap();
            let status = job["status"].clone();
            if status != "queued" && status != "running" {
                Ok(status)
            } else {
                Err(job)
            }
        },
    )
    .await;
    assert_eq!(status, "succeeded");
    let servers: Value = get(&second, "/api/v1/servers")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(servers.as_array().unwrap().len(), 5, "{servers}");
    assert!(second.terminate(Duration::from_secs(20)).success());
    assert!(
        !second
            .log
            .iter()
            .any(|line| line.contains("seeded from the environment")),
        "{:#?}",
        second.log
    );
    let log = second.log.join("\n");
    assert!(
        log.contains("no SSH private key configured: servers are not probed"),
        "{log}"
    );
    for secret in [FakeRobot::PASSWORD, FakeCloud::TOKEN] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn legacy_variables_seed_accounts_once_on_sqlite() {
    legacy_variables_seed_accounts_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn legacy_variables_seed_accounts_once_on_postgres() {
    legacy_variables_seed_accounts_once(Backend::Postgres).await;
}

/// Reads server-sent events from a streamed answer, one JSON `data:` at a time.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

impl EventReader {
    /// The next event's JSON; fails the test when none comes within 10 s.
    async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(&data.join("\n")).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within 10 s; read so far: {:?}", self.buffer))
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

api_test!(server_events_follow_renames_and_deletions, |server| {
    // Without credentials: 401, like every admin operation.
    let anonymous = server
        .client
        .get(server.url("/api/v1/servers/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    server.robot.add_server(RobotServer::new(321, "worker-1"));
    server.robot.add_server(RobotServer::new(322, "worker-2"));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    let response = server
        .client
        .get(server.url("/api/v1/servers/events"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = EventReader {
        response,
        buffer: String::new(),
    };

    // First every server as it is.
    let mut first = [events.next().await, events.next().await];
    first.sort_by_key(|event| event["server_id"].as_str().unwrap().to_owned());
    assert_eq!(first[0]["server_id"], "robot-321");
    assert_eq!(first[0]["server"]["name"], "worker-1");
    assert_eq!(first[0]["server"]["state"], "unknown");
    assert_eq!(first[1]["server"]["name"], "worker-2");

    // A rename: only the renamed server comes.
    server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"name": "control-plane-1"})),
            200,
        )
        .await;
    let renamed = events.next().await;
    assert_eq!(renamed["server_id"], "robot-321", "{renamed:#}");
    assert_eq!(renamed["server"]["name"], "control-plane-1");

    // A server that vanished at the provider and is deleted at once: an event without
    // `server`.
    assert!(server.robot.remove_server(322));
    let at_once = SyncPolicy {
        missing_syncs: 1,
        missing_grace: Duration::ZERO,
        ..SyncPolicy::default()
    };
    sync_all_with(server.store(), &factory(&server), None, &at_once)
        .await
        .unwrap();
    let deleted = events.next().await;
    assert_eq!(deleted["server_id"], "robot-322", "{deleted:#}");
    assert!(deleted["server"].is_null(), "{deleted:#}");
    let text = serde_json::to_string(&first).unwrap();
    assert!(
        !text.contains(FakeRobot::PASSWORD),
        "no secret travels: {text}"
    );
});

api_test!(
    a_sync_stops_when_cancelled_and_the_next_one_completes,
    |server| {
        server
            .robot
            .add_server(robot_server(7, "robot-7", "127.0.1.7"));
        add_accounts(&server).await;
        // Robot's server list answers only after a minute: the sync is stuck in it.
        server.robot.inject(
            Target {
                method: Some("GET".into()),
                path_prefix: Some("/server".into()),
            },
            Fault::Slow(Duration::from_secs(60)),
            1,
        );
        let worker = Worker::new(JobQueue::new(server.store().clone()), "sync-worker")
            .register(SyncJob::new(factory(&server)))
            .timing(WorkerTiming {
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(200),
                abandoned_after: Duration::from_secs(30),
            });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }));

        let job = server
            .expect(Method::POST, "/api/v1/servers/sync", None, 202)
            .await;
        let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
        wait_for(
            "the sync job to run",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                let job = server.expect(Method::GET, &path, None, 200).await;
                if job["status"] == "running" {
                    Ok(())
                } else {
                    Err(job)
                }
            },
        )
        .await;
        server
            .expect(Method::POST, &format!("{path}/cancel"), None, 200)
            .await;
        let cancelled_at = std::time::Instant::now();
        let finished =
            job_finished(&server, &path, Duration::from_secs(20), "the sync to stop").await;
        assert_eq!(finished["status"], "cancelled", "{finished:#}");
        assert!(cancelled_at.elapsed() < Duration::from_secs(30));

        // Nothing was lost, and the next sync (the fault is used up) completes.
        let job = server
            .expect(Method::POST, "/api/v1/servers/sync", None, 202)
            .await;
        let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
        let finished = job_finished(
            &server,
            &path,
            Duration::from_secs(30),
            "the next sync to end",
        )
        .await;
        assert_eq!(finished["status"], "succeeded", "{finished:#}");
        assert!(servers_by_id(&server).await.contains_key("robot-7"));
        stop.send_replace(true);
        worker.await.unwrap();
    }
);

api_test!(
    a_server_missing_at_its_provider_is_shown_and_kept,
    |server| {
        server.robot.add_server(RobotServer::new(321, "worker-1"));
        add_accounts(&server).await;
        sync_all(server.store(), &factory(&server), None)
            .await
            .unwrap();
        server.robot.inject(
        Target::on("GET", "/server"),
        Fault::Answer(
            404,
            r#"{"error":{"status":404,"code":"SERVER_NOT_FOUND","message":"Server not found"}}"#
                .into(),
        ),
        1,
    );
        sync_all(server.store(), &factory(&server), None)
            .await
            .unwrap();
        let view = server
            .expect(Method::GET, "/api/v1/servers/robot-321", None, 200)
            .await;
        assert!(view["missing_since"].is_string(), "{view:#}");
        assert_eq!(view["missing_syncs"], 1, "{view:#}");
        // Listed again: no longer missing.
        sync_all(server.store(), &factory(&server), None)
            .await
            .unwrap();
        let view = server
            .expect(Method::GET, "/api/v1/servers/robot-321", None, 200)
            .await;
        assert!(view["missing_since"].is_null(), "{view:#}");
        assert_eq!(view["missing_syncs"], 0, "{view:#}");
    }
);

api_test!(new_credentials_must_list_the_accounts_servers, |server| {
    server.cloud.generate_servers(3);
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    let accounts = server
        .expect(Method::GET, "/api/v1/provider-accounts", None, 200)
        .await;
    let cloud = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["provider"] == "hetzner_cloud")
        .unwrap();
    let path = format!(
        "/api/v1/provider-accounts/{}",
        cloud["id"].as_str().unwrap()
    );
    let name = cloud["name"].as_str().unwrap().to_owned();
    // Working credentials of another project: a valid, empty list.
    server.cloud.inject(
        Target::on("GET", "/servers"),
        Fault::Answer(
            200,
            r#"{"servers":[],"meta":{"pagination":{"page":1,"per_page":50,"previous_page":null,"next_page":null,"last_page":1,"total_entries":0}}}"#.into(),
        ),
        1,
    );
    let refused = server
        .expect(
            Method::PUT,
            &path,
            Some(json!({"name": name, "secret": FakeCloud::TOKEN})),
            422,
        )
        .await;
    assert_eq!(refused["issues"][0]["path"], "secret", "{refused}");
    let message = refused["issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("do not list 3 of the account's known servers"),
        "{message}"
    );
    // The same account's credentials are accepted.
    server
        .expect(
            Method::PUT,
            &path,
            Some(json!({"name": name, "secret": FakeCloud::TOKEN})),
            200,
        )
        .await;
});

api_test!(concurrent_server_edits_keep_each_others_fields, |server| {
    server.robot.add_server(RobotServer::new(321, "worker-1"));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    let cluster = server
        .store()
        .create_cluster(
            &ClusterFields {
                name: "prod".into(),
                endpoint: "https://127.10.0.1:6443".into(),
                vswitch_id: None::<VswitchId>,
            },
            &Secret::new("secrets".to_owned()),
        )
        .await
        .unwrap();
    // The rename is slow at Robot; the cluster is set meanwhile.
    server.robot.inject(
        Target::on("POST", "/server/321"),
        // Below the fakes' 2 s request timeout.
        Fault::Slow(Duration::from_millis(1500)),
        1,
    );
    let rename = server.expect(
        Method::PATCH,
        "/api/v1/servers/robot-321",
        Some(json!({"name": "control-plane-1"})),
        200,
    );
    let assign = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
            .expect(
                Method::PATCH,
                "/api/v1/servers/robot-321",
                Some(json!({"cluster_id": cluster.id.to_string()})),
                200,
            )
            .await
    };
    tokio::join!(rename, assign);
    let view = server
        .expect(Method::GET, "/api/v1/servers/robot-321", None, 200)
        .await;
    assert_eq!(view["name"], "control-plane-1", "{view:#}");
    assert_eq!(view["cluster_id"], cluster.id.to_string(), "{view:#}");
});

/// The job at `path` once it has finished (`finished_at` set), polled every 50 ms for at most
/// `timeout`; `what` names the wait in the failure.
async fn job_finished(server: &TestServer, path: &str, timeout: Duration, what: &str) -> Value {
    wait_for(what, timeout, Duration::from_millis(50), || async {
        let job = server.expect(Method::GET, path, None, 200).await;
        if job["finished_at"].is_string() {
            Ok(job)
        } else {
            Err(job)
        }
    })
    .await
}

api_test!(a_spent_robot_budget_is_a_503_with_retry_after, |server| {
    server.robot.add_server(RobotServer::new(321, "worker-1"));
    add_accounts(&server).await;
    sync_all(server.store(), &factory(&server), None)
        .await
        .unwrap();
    // Robot says the hourly budget of renames is spent: not retried, and the next rename is not
    // even sent until the hour is over.
    server
        .robot
        .inject(Target::on("POST", "/server/321"), Fault::RateLimit, 1);
    for _ in 0..2 {
        let response = server
            .client
            .request(Method::PATCH, server.url("/api/v1/servers/robot-321"))
            .bearer_auth(&server.token)
            .json(&json!({"name": "worker-2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 503);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3500..=3600).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "provider_unavailable", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("request budget for POST /server/{id} is spent until"),
            "{body}"
        );
    }
    let renames = server
        .robot
        .requests()
        .iter()
        .filter(|request| *request == "POST /server/321")
        .count();
    assert_eq!(renames, 1);
    assert_eq!(server.robot.server(321).unwrap().name, "worker-1");
});
