//! Reset and rolling upgrades/reboots against the in-memory Talos fake
//! (`testing::fake_talos`) and the fake Kubernetes API over mutual TLS, on both backends; the
//! drain against the fake Kubernetes API alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use talos_manager_core::ProviderKind;
use talos_manager_core::ids::ClusterId;
use talos_manager_core::ids::{SchematicId, ServerId};
use talos_manager_core::kubernetes::{
    ClientTimeouts, DrainError, DrainOptions, KubernetesClient, PodPolicy, drain_node,
};
use talos_manager_core::lifecycle::{ClusterBootstrapError, bootstrap_cluster};
use talos_manager_core::lifecycle::{
    JobCheckpoint, LifecycleContext, LifecycleTiming, NodeOutcome, QuorumRefusal, ResetError,
    ResetProfile, RollingAction, RollingPlanError, RollingTarget, plan_rolling, reset_server,
    run_rolling,
};
use talos_manager_core::progress::ProgressLog;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::store::{ClusterFields, NewJob};
use talos_manager_core::sync::{ProviderFactory, sync_all};
use talos_manager_core::talos::SecretsBundle;
use talos_manager_core::talos_api::TalosStatusCode;
use talos_manager_core::testing::fake_talos::{FakeFailure, FakeTalos};
use talos_manager_core::testing::fleet::{DEFAULT_SCHEMATIC_ID, FleetBuilder, pem, secrets_bundle};
use talos_manager_core::testing::wait_for;
use talos_manager_core::{RetryPolicy, Secret, Store};
use talos_manager_fake_hetzner::FakeRobot;
use talos_manager_fake_kubernetes::{FakeKubernetes, NewPod};

const FROM: &str = "v1.10.4";
const TO: &str = "v1.11.3";
const SCHEMATIC: &str = DEFAULT_SCHEMATIC_ID;
const FACTORY: &str = "https://factory.talos.dev";

/// A job log in memory.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl ProgressLog for Lines {
    async fn line(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Lines {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

fn timing() -> LifecycleTiming {
    LifecycleTiming {
        poll_interval: Duration::from_millis(20),
        node_down: Duration::from_secs(2),
        node_back: Duration::from_secs(2),
        drain: DrainOptions {
            timeout: Duration::from_secs(2),
            retry_interval: Duration::from_millis(20),
        },
        wipe_grace: Duration::ZERO,
        etcd_rejoin: Duration::from_secs(2),
    }
}

fn client_timeouts() -> ClientTimeouts {
    ClientTimeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(5),
    }
}

/// A cluster of named servers (names with `control-plane` are control planes), each
/// configured, running Talos `FROM` in the Talos fake and Ready in the Kubernetes fake; a
/// default schematic registered with the factory.
struct Cluster {
    talos: FakeTalos,
    kubernetes: FakeKubernetes,
    robot: FakeRobot,
    providers: ProviderFactory,
    servers: BTreeMap<String, (ServerId, SocketAddr)>,
    bundle: SecretsBundle,
    log: Arc<Lines>,
    key: Secret<String>,
    _keys: tempfile::TempDir,
}

impl Cluster {
    async fn new(store: &Store, names: &[&str]) -> Cluster {
        Cluster::named(store, names, |name| name.to_owned()).await
    }

    /// As [`Cluster::new`], but each node calls itself `node_name(server name)` in Talos
    /// (Nodename and etcd member) and in Kubernetes, while its machine config expects the
    /// server's name.
    async fn named(store: &Store, names: &[&str], node_name: impl Fn(&str) -> String) -> Cluster {
        Cluster::build(store, names, node_name, true).await
    }

    /// As [`Cluster::named`]; `bootstrapped`: whether the cluster is recorded as bootstrapped.
    async fn build(
        store: &Store,
        names: &[&str],
        node_name: impl Fn(&str) -> String,
        bootstrapped: bool,
    ) -> Cluster {
        let bundle = secrets_bundle().await;
        let kubernetes = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
            .await
            .unwrap();
        let robot = FakeRobot::start_empty().await.unwrap();
        let numbers = robot.generate_servers(names.len());
        store
            .create_provider_account(
                ProviderKind::HetznerRobot,
                FakeRobot::USER,
                &Secret::new(FakeRobot::PASSWORD.to_owned()),
            )
            .await
            .unwrap();
        let providers = ProviderFactory::new(robot.url(), "http://127.0.0.1:9")
            .with_retry_policy(RetryPolicy::for_fakes());
        sync_all(store, &providers, None).await.unwrap();
        let mut ids = Vec::new();
        for number in numbers {
            let server = store
                .get_server_by_provider_id(ProviderKind::HetznerRobot, &number.to_string())
                .await
                .unwrap();
            ids.push(server.id);
        }
        let fleet = FleetBuilder::new(names, kubernetes.url(), &bundle)
            .talos_version(FROM)
            .existing_servers(ids)
            .bootstrapped(bootstrapped)
            .build(store)
            .await
            .unwrap();
        let talos = FakeTalos::new();
        let mut servers = BTreeMap::new();
        for server in &fleet.servers {
            let address = SocketAddr::new(server.address.into(), 50000);
            let node_name = node_name(&server.name);
            talos.add_node(address, &node_name, server.control_plane, FROM);
            kubernetes.add_node(&node_name, serde_json::json!({}), serde_json::json!([]));
            servers.insert(server.name.clone(), (server.id, address));
        }
        let keys = tempfile::tempdir().unwrap();
        let key =
            talos_manager_rescue_host::KeyPair::generate(keys.path(), "id", "-t ed25519").private;
        Cluster {
            talos,
            kubernetes,
            robot,
            providers,
            servers,
            bundle,
            log: Arc::new(Lines::default()),
            key,
            _keys: keys,
        }
    }

    fn id(&self, name: &str) -> ServerId {
        self.servers[name].0
    }

    fn address(&self, name: &str) -> SocketAddr {
        self.servers[name].1
    }

    fn context<'a>(
        &'a self,
        store: &'a Store,
        is_cancelled: &'a (dyn Fn() -> bool + Send + Sync),
    ) -> LifecycleContext<'a> {
        LifecycleContext {
            store,
            talos: &self.talos,
            talos_port: 50000,
            providers: &self.providers,
            ssh_private_key: Some(&self.key),
            kubernetes: client_timeouts(),
            timing: timing(),
            log: &*self.log,
            is_cancelled,
        }
    }

    /// The cordons (`cordon x`) and uncordons (`uncordon x`) the Kubernetes fake saw.
    fn cordons(&self) -> Vec<String> {
        self.kubernetes
            .patches()
            .into_iter()
            .filter_map(|patch| {
                let value = patch.body.pointer("/spec/unschedulable")?;
                Some(match value {
                    serde_json::Value::Bool(true) => format!("cordon {}", patch.node),
                    _ => format!("uncordon {}", patch.node),
                })
            })
            .collect()
    }
}

fn never() -> bool {
    false
}

const FIVE: [&str; 5] = [
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
    "worker-2",
];

store_test!(reset_to_maintenance_cleans_up_like_the_original, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1"]).await;
    let ctx = cluster.context(store, &never);
    let outcome = reset_server(
        &ctx,
        cluster.id("worker-1"),
        ResetProfile::Maintenance,
        false,
    )
    .await
    .unwrap();
    assert!(outcome.graceful);
    assert!(outcome.deleted_kubernetes_node);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert_eq!(
        cluster.talos.calls_of("reset"),
        ["reset worker-1 graceful=true reboot=true wipe=[STATE,EPHEMERAL]"]
    );
    assert!(cluster.kubernetes.node("worker-1").is_none());
    assert!(
        store
            .machine_config_for_server(cluster.id("worker-1"))
            .await
            .unwrap()
            .is_none()
    );
    let server = store.get_server(cluster.id("worker-1")).await.unwrap();
    assert_eq!(server.last_configured_at, None);
    assert_eq!(server.last_request_for_configuration_at, None);
    let log = cluster.log.text();
    assert!(
        log.contains("worker-1 is in maintenance mode, waiting for a machine config"),
        "{log}"
    );
    assert!(log.contains("Kubernetes node worker-1 deleted"), "{log}");
    // The control plane's config is untouched.
    assert!(
        store
            .machine_config_for_server(cluster.id("control-plane-1"))
            .await
            .unwrap()
            .is_some()
    );
});

store_test!(
    healthy_control_plane_leaves_etcd_gracefully_on_a_wipe,
    |store| {
        let cluster = Cluster::new(store, &FIVE).await;
        let ctx = cluster.context(store, &never);
        let outcome = reset_server(
            &ctx,
            cluster.id("control-plane-3"),
            ResetProfile::Wipe,
            false,
        )
        .await
        .unwrap();
        assert!(outcome.graceful && outcome.forced.is_none());
        // Talos left etcd itself (graceful); nothing left for us to remove.
        assert_eq!(outcome.removed_etcd_member, None);
        assert_eq!(
            cluster.talos.etcd_hostnames(),
            ["control-plane-1", "control-plane-2"]
        );
        assert_eq!(
            cluster.talos.calls_of("reset"),
            ["reset control-plane-3 graceful=true reboot=false wipe=[]"]
        );
        assert!(cluster.kubernetes.node("control-plane-3").is_none());
        assert!(cluster.log.text().contains("system disk is wiped"));
    }
);

store_test!(quorum_breaking_reset_is_refused_unless_forced, |store| {
    let cluster = Cluster::new(store, &FIVE).await;
    cluster
        .talos
        .set_reachable(cluster.address("control-plane-3"), false);
    let ctx = cluster.context(store, &never);
    let error = reset_server(
        &ctx,
        cluster.id("control-plane-1"),
        ResetProfile::Maintenance,
        false,
    )
    .await
    .unwrap_err();
    let ResetError::Refused { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        reason,
        &QuorumRefusal::QuorumLost {
            node: "control-plane-1".into(),
            remaining: 2,
            healthy: 1,
            unhealthy: vec!["control-plane-3".into()],
        }
    );
    assert!(
        talos_manager_core::error_chain(&error)
            .to_string()
            .contains("etcd would lose quorum (force to do it anyway)")
    );
    assert!(cluster.talos.calls_of("reset").is_empty());
    assert!(cluster.kubernetes.node("control-plane-1").is_some());

    let outcome = reset_server(
        &ctx,
        cluster.id("control-plane-1"),
        ResetProfile::Maintenance,
        true,
    )
    .await
    .unwrap();
    assert!(!outcome.graceful);
    assert!(matches!(
        outcome.forced,
        Some(QuorumRefusal::QuorumLost { .. })
    ));
    // Not graceful: the member was still listed and removed through control-plane-2.
    assert!(outcome.removed_etcd_member.is_some());
    assert_eq!(
        cluster.talos.etcd_hostnames(),
        ["control-plane-2", "control-plane-3"]
    );
    assert_eq!(cluster.talos.calls_of("etcd_remove_member").len(), 1);
});

store_test!(last_etcd_member_is_refused_unless_forced, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1"]).await;
    let ctx = cluster.context(store, &never);
    let error = reset_server(
        &ctx,
        cluster.id("control-plane-1"),
        ResetProfile::Wipe,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &error,
            ResetError::Refused {
                reason: QuorumRefusal::LastMember { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        talos_manager_core::error_chain(&error)
            .to_string()
            .contains("control-plane-1 is the last etcd member of the cluster")
    );
    assert!(cluster.talos.calls_of("reset").is_empty());

    let outcome = reset_server(
        &ctx,
        cluster.id("control-plane-1"),
        ResetProfile::Wipe,
        true,
    )
    .await
    .unwrap();
    // A graceful reset of the last member fails in Talos: forced means not graceful.
    assert_eq!(
        cluster.talos.calls_of("reset"),
        ["reset control-plane-1 graceful=false reboot=false wipe=[]"]
    );
    assert!(matches!(
        outcome.forced,
        Some(QuorumRefusal::LastMember { .. })
    ));
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
});

store_test!(wipe_to_rescue_boots_the_rescue_system, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1"]).await;
    let ctx = cluster.context(store, &never);
    let outcome = reset_server(
        &ctx,
        cluster.id("worker-1"),
        ResetProfile::WipeToRescue,
        false,
    )
    .await
    .unwrap();
    assert!(outcome.server.rescue_activated_at.is_some());
    assert!(!outcome.server.accessible);
    assert!(
        cluster
            .robot
            .requests()
            .iter()
            .any(|request| request.contains("/boot/") && request.contains("/rescue")),
        "{:?}",
        cluster.robot.requests()
    );
    assert!(
        cluster
            .log
            .text()
            .contains("is booting into the rescue system, ready for a new bootstrap")
    );
});

store_test!(rolling_upgrade_stops_at_the_failing_last_worker, |store| {
    let cluster = Cluster::new(store, &FIVE).await;
    cluster.talos.fail(
        cluster.address("worker-2"),
        "upgrade",
        FakeFailure::InstallFailed(1, "no space left on device".into()),
    );
    let ctx = cluster.context(store, &never);
    let plan = plan_rolling(
        store,
        &RollingTarget::Servers(FIVE.iter().rev().map(|name| cluster.id(name)).collect()),
        &RollingAction::Upgrade {
            talos_version: TO.into(),
        },
        FACTORY,
    )
    .await
    .unwrap();
    let checkpoint = talos_manager_core::lifecycle::MemoryCheckpoint::default();
    let report = run_rolling(&ctx, &plan, &checkpoint).await.unwrap();
    let outcomes: Vec<(&str, &NodeOutcome)> = report
        .nodes
        .iter()
        .map(|node| (node.hostname.as_str(), &node.outcome))
        .collect();
    assert_eq!(
        &outcomes[..4].iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        &FIVE[..4]
    );
    assert!(
        outcomes[..4].iter().all(|(_, o)| **o == NodeOutcome::Done),
        "{outcomes:?}"
    );
    let NodeOutcome::Failed { reason } = outcomes[4].1 else {
        panic!("{outcomes:?}");
    };
    assert!(reason.contains("no space left on device"), "{reason}");
    assert!(reason.contains("the node was uncordoned"), "{reason}");
    // Control planes strictly first, one node at a time: each uncordon before the next cordon.
    assert_eq!(
        cluster.cordons(),
        FIVE.iter()
            .flat_map(|name| [format!("cordon {name}"), format!("uncordon {name}")])
            .collect::<Vec<_>>()
    );
    let image = format!("factory.talos.dev/metal-installer/{SCHEMATIC}:{TO}");
    assert_eq!(
        cluster.talos.calls_of("upgrade"),
        FIVE.iter()
            .map(|name| format!("upgrade {name} {image}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(cluster.talos.calls_of("etcd_forfeit_leadership").len(), 3);
    for name in &FIVE[..4] {
        assert_eq!(cluster.talos.version_of(cluster.address(name)).unwrap(), TO);
        let server = store.get_server(cluster.id(name)).await.unwrap();
        assert_eq!(server.installed_schematic.as_deref(), Some(SCHEMATIC));
    }
    assert_eq!(
        cluster
            .talos
            .version_of(cluster.address("worker-2"))
            .unwrap(),
        FROM
    );
    assert!(!report.succeeded());
    let log = cluster.log.text();
    for step in [
        "control-plane-1: forfeited etcd leadership",
        "control-plane-1: cordoned",
        "control-plane-1: upgrading with",
        "control-plane-1: runs Talos v1.11.3, ready",
        "control-plane-1: uncordoned, done",
    ] {
        assert!(log.contains(step), "{step} missing from\n{log}");
    }
});

store_test!(a_failure_leaves_the_nodes_after_it_untouched, |store| {
    let cluster = Cluster::new(store, &FIVE).await;
    cluster
        .talos
        .roll_back_next_upgrade(cluster.address("control-plane-2"));
    let ctx = cluster.context(store, &never);
    let plan = plan_rolling(
        store,
        &RollingTarget::Cluster(store.list_clusters().await.unwrap()[0].id),
        &RollingAction::Upgrade {
            talos_version: TO.into(),
        },
        FACTORY,
    )
    .await
    .unwrap();
    let report = run_rolling(
        &ctx,
        &plan,
        &talos_manager_core::lifecycle::MemoryCheckpoint::default(),
    )
    .await
    .unwrap();
    let outcome = |i: usize| report.nodes[i].outcome.clone();
    assert_eq!(outcome(0), NodeOutcome::Done);
    let NodeOutcome::Failed { reason } = outcome(1) else {
        panic!("{report:?}");
    };
    assert!(
        reason.contains("runs Talos v1.10.4, waiting for v1.11.3"),
        "{reason}"
    );
    assert!(reason.contains("left cordoned"), "{reason}");
    for i in 2..5 {
        assert_eq!(outcome(i), NodeOutcome::Untouched);
    }
    for name in &FIVE[2..] {
        assert!(
            !cluster.talos.calls().iter().any(|call| call.contains(name)
                && !call.starts_with("version")
                && !call.starts_with("machine_status")
                // Reads: its name and its etcd's health, before another control plane goes.
                && !call.starts_with("node_name")
                && !call.starts_with("etcd_members")),
            "{name} was touched: {:?}",
            cluster.talos.calls()
        );
        assert!(!cluster.cordons().iter().any(|c| c.ends_with(name)));
    }
    assert!(
        report.summary().contains("3 untouched"),
        "{}",
        report.summary()
    );
});

store_test!(nodes_at_the_target_are_skipped, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1"]).await;
    let ctx = cluster.context(store, &never);
    let action = RollingAction::Upgrade {
        talos_version: TO.into(),
    };
    let plan = plan_rolling(
        store,
        &RollingTarget::Cluster(store.list_clusters().await.unwrap()[0].id),
        &action,
        FACTORY,
    )
    .await
    .unwrap();
    let first = run_rolling(
        &ctx,
        &plan,
        &talos_manager_core::lifecycle::MemoryCheckpoint::default(),
    )
    .await
    .unwrap();
    assert!(first.succeeded(), "{first:?}");
    // A new run: both are at the target version and schematic.
    let second = run_rolling(
        &ctx,
        &plan,
        &talos_manager_core::lifecycle::MemoryCheckpoint::default(),
    )
    .await
    .unwrap();
    assert!(
        second
            .nodes
            .iter()
            .all(|node| matches!(&node.outcome, NodeOutcome::Skipped { reason } if reason.contains("already runs Talos v1.11.3"))),
        "{second:?}"
    );
    assert_eq!(cluster.talos.calls_of("upgrade").len(), 2);
});

store_test!(a_restarted_run_resumes_without_upgrading_twice, |store| {
    let cluster = Arc::new(Cluster::new(store, &FIVE).await);
    cluster.talos.set_down_polls(10);
    let job = store
        .enqueue_job(&NewJob {
            kind: "rolling_upgrade".into(),
            server_id: None,
            args: serde_json::json!({}),
        })
        .await
        .unwrap();
    let action = RollingAction::Upgrade {
        talos_version: TO.into(),
    };
    let plan = plan_rolling(
        store,
        &RollingTarget::Cluster(store.list_clusters().await.unwrap()[0].id),
        &action,
        FACTORY,
    )
    .await
    .unwrap();
    // The first run "crashes" while control-plane-2 upgrades.
    let first = {
        let (cluster, store, plan) = (cluster.clone(), store.clone(), plan.clone());
        tokio::spawn(async move {
            let ctx = cluster.context(&store, &never);
            run_rolling(&ctx, &plan, &JobCheckpoint::new(store.clone(), job.id)).await
        })
    };
    wait_for(
        "the second upgrade",
        Duration::from_secs(30),
        Duration::from_millis(5),
        || async {
            let upgrades = cluster.talos.calls_of("upgrade");
            if upgrades.len() >= 2 {
                Ok(())
            } else {
                Err(upgrades)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    first.abort();
    let _ = first.await;
    let state = store.job_state(job.id).await.unwrap().unwrap();
    assert_eq!(
        state["phases"][cluster.id("control-plane-1").0.to_string()],
        "done"
    );
    assert_eq!(
        state["phases"][cluster.id("control-plane-2").0.to_string()],
        "requested"
    );

    let ctx = cluster.context(store, &never);
    let report = run_rolling(&ctx, &plan, &JobCheckpoint::new(store.clone(), job.id))
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        report.nodes[0].outcome,
        NodeOutcome::Skipped {
            reason: "done before the restart".into()
        }
    );
    // Each node asked to upgrade exactly once.
    let upgrades = cluster.talos.calls_of("upgrade");
    assert_eq!(upgrades.len(), 5, "{upgrades:?}");
    for name in FIVE {
        assert_eq!(cluster.talos.version_of(cluster.address(name)).unwrap(), TO);
    }
    assert!(
        cluster
            .log
            .text()
            .contains("control-plane-2: was asked to upgrade before the restart; waiting for it")
    );
    // Nothing stays cordoned.
    for name in FIVE {
        assert_eq!(
            cluster.kubernetes.node(name).unwrap()["spec"].get("unschedulable"),
            None
        );
    }
});

store_test!(rolling_reboot_waits_for_each_node, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1"]).await;
    let ctx = cluster.context(store, &never);
    let plan = plan_rolling(
        store,
        &RollingTarget::Server(cluster.id("worker-1")),
        &RollingAction::Reboot,
        FACTORY,
    )
    .await
    .unwrap();
    let report = run_rolling(
        &ctx,
        &plan,
        &talos_manager_core::lifecycle::MemoryCheckpoint::default(),
    )
    .await
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        cluster.talos.calls_of("reboot"),
        ["reboot worker-1 Default"]
    );
    assert_eq!(cluster.cordons(), ["cordon worker-1", "uncordon worker-1"]);
});

store_test!(plans_are_validated_in_words_a_user_understands, |store| {
    let cluster = Cluster::new(store, &["control-plane-1", "worker-1", "worker-2"]).await;
    let other = store
        .create_cluster(
            &ClusterFields {
                name: "staging".into(),
                endpoint: "https://staging.example.com:6443".into(),
                vswitch_id: None,
            },
            &Secret::new(cluster.bundle.to_yaml()),
        )
        .await
        .unwrap();
    let worker_2 = store.get_server(cluster.id("worker-2")).await.unwrap();
    store
        .update_server_assignment(worker_2.id, "worker-2", Some(other.id), None, None)
        .await
        .unwrap();
    let upgrade = RollingAction::Upgrade {
        talos_version: TO.into(),
    };
    let error = plan_rolling(
        store,
        &RollingTarget::Servers(vec![cluster.id("worker-1"), cluster.id("worker-2")]),
        &upgrade,
        FACTORY,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the servers are in different clusters (prod, staging): upgrade or reboot one cluster at a time"
    );
    let bad = RollingAction::Upgrade {
        talos_version: "1.11".into(),
    };
    let error = plan_rolling(
        store,
        &RollingTarget::Server(cluster.id("worker-1")),
        &bad,
        FACTORY,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RollingPlanError::InvalidVersion(_)),
        "{error:?}"
    );
    store
        .update_settings(FROM, None::<SchematicId>)
        .await
        .unwrap();
    let error = plan_rolling(
        store,
        &RollingTarget::Server(cluster.id("worker-1")),
        &upgrade,
        FACTORY,
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("no Image Factory schematic for worker-1"),
        "{error}"
    );
    let config = store
        .machine_config_for_server(cluster.id("worker-1"))
        .await
        .unwrap()
        .unwrap();
    store.delete_machine_config(config.id).await.unwrap();
    let error = plan_rolling(
        store,
        &RollingTarget::Server(cluster.id("worker-1")),
        &RollingAction::Reboot,
        FACTORY,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "server worker-1 has no machine config: it is not a configured node"
    );
});

/// A client of the fake Kubernetes API with admin credentials from a fresh bundle.
async fn kubernetes() -> (FakeKubernetes, KubernetesClient) {
    let (_, api, client) = kubernetes_and_bundle().await;
    (api, client)
}

/// As [`kubernetes`], with the bundle.
async fn kubernetes_and_bundle() -> (SecretsBundle, FakeKubernetes, KubernetesClient) {
    let bundle = tokio::task::spawn_blocking(|| {
        SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap()
    })
    .await
    .unwrap();
    let api = FakeKubernetes::start(&pem(&bundle.k8s.crt), &pem(&bundle.k8s.key))
        .await
        .unwrap();
    let client = KubernetesClient::for_cluster(
        &bundle,
        api.url(),
        client_timeouts(),
        time::OffsetDateTime::now_utc(),
        &mut SystemRandom,
    )
    .unwrap();
    (bundle, api, client)
}

fn pods_on(api: &FakeKubernetes, node: &str, blocked: u32) {
    api.add_node(node, serde_json::json!({}), serde_json::json!([]));
    let mut db = NewPod::new("shop", "db-0", node);
    db.blocked_evictions = blocked;
    api.add_pod(db);
    api.add_pod(NewPod::new("shop", "web-1", node));
    let mut agent = NewPod::new("kube-system", "agent-x", node);
    agent.owner_kind = Some("DaemonSet".into());
    api.add_pod(agent);
    let mut mirror = NewPod::new("kube-system", "kube-apiserver-x", node);
    mirror.owner_kind = None;
    mirror
        .annotations
        .insert("kubernetes.io/config.mirror".into(), "hash".into());
    api.add_pod(mirror);
    api.add_pod(NewPod::new("shop", "elsewhere", "worker-9"));
}

#[tokio::test]
async fn drain_waits_for_a_budget_that_unblocks() {
    let (api, client) = kubernetes().await;
    pods_on(&api, "worker-1", 3);
    let log = Lines::default();
    let options = DrainOptions {
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(20),
    };
    let report = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &log,
        &never,
    )
    .await
    .unwrap();
    assert_eq!(report.evicted, ["shop/web-1", "shop/db-0"]);
    assert_eq!(
        api.pods("worker-1"),
        ["kube-system/agent-x", "kube-system/kube-apiserver-x"]
    );
    assert_eq!(api.pods("worker-9"), ["shop/elsewhere"]);
    let statuses: Vec<(String, u16)> = api
        .evictions()
        .into_iter()
        .map(|eviction| (eviction.pod, eviction.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("shop/db-0".to_owned(), 429),
            ("shop/web-1".to_owned(), 201),
            ("shop/db-0".to_owned(), 429),
            ("shop/db-0".to_owned(), 429),
            ("shop/db-0".to_owned(), 201),
        ]
    );
    assert_eq!(api.node("worker-1").unwrap()["spec"]["unschedulable"], true);
    let text = log.text();
    assert!(
        text.contains("eviction of pod shop/db-0 blocked by a PodDisruptionBudget"),
        "{text}"
    );
    assert_eq!(
        text.matches("blocked by a PodDisruptionBudget").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("node worker-1: drained (2 pods evicted)"),
        "{text}"
    );
}

#[tokio::test]
async fn drain_gives_up_naming_the_pod_a_budget_keeps() {
    let (api, client) = kubernetes().await;
    pods_on(&api, "worker-1", u32::MAX);
    let options = DrainOptions {
        timeout: Duration::from_millis(300),
        retry_interval: Duration::from_millis(20),
    };
    let error = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &Lines::default(),
        &never,
    )
    .await
    .unwrap_err();
    let DrainError::Timeout { pods, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(pods, &["shop/db-0"]);
    assert!(
        error
            .to_string()
            .ends_with("1 pod is still on it (shop/db-0)"),
        "{error}"
    );
    // Whatever the budget allowed is gone.
    assert!(!api.pods("worker-1").contains(&"shop/web-1".to_owned()));
}

/// `kubectl drain`'s rules: a bare pod and a pod with an `emptyDir` fail the drain, naming
/// them, before anything is evicted; finished pods stay; the operator's policy lets them go.
#[tokio::test]
async fn drain_refuses_unmanaged_and_emptydir_pods_unless_allowed() {
    let (api, client) = kubernetes().await;
    pods_on(&api, "worker-1", 0);
    let mut bare = NewPod::new("default", "debug", "worker-1");
    bare.owner_kind = None;
    api.add_pod(bare);
    let mut cache = NewPod::new("shop", "cache-0", "worker-1");
    cache.empty_dirs = vec!["scratch".into()];
    api.add_pod(cache);
    let mut finished = NewPod::new("batch", "report-1", "worker-1");
    finished.owner_kind = None;
    finished.phase = Some("Succeeded".into());
    api.add_pod(finished);
    let options = DrainOptions {
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(20),
    };
    let error = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &Lines::default(),
        &never,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DrainError::Refused { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "refused to drain node worker-1: pod default/debug: no controller manages it, so nothing \
         would recreate it (allow with force); pod shop/cache-0: it keeps data in an emptyDir \
         volume that would be lost (allow with delete_emptydir_data)"
    );
    assert!(api.evictions().is_empty(), "{:?}", api.evictions());

    // Force alone still refuses the emptyDir pod.
    let only_force = PodPolicy {
        force: true,
        delete_emptydir_data: false,
    };
    let error = drain_node(
        &client,
        "worker-1",
        &options,
        only_force,
        &Lines::default(),
        &never,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("pod shop/cache-0"), "{error}");
    assert!(!error.to_string().contains("default/debug"), "{error}");

    let both = PodPolicy {
        force: true,
        delete_emptydir_data: true,
    };
    let report = drain_node(
        &client,
        "worker-1",
        &options,
        both,
        &Lines::default(),
        &never,
    )
    .await
    .unwrap();
    assert_eq!(
        report.evicted,
        ["default/debug", "shop/cache-0", "shop/db-0", "shop/web-1"]
    );
    assert_eq!(
        api.pods("worker-1"),
        [
            "batch/report-1",
            "kube-system/agent-x",
            "kube-system/kube-apiserver-x"
        ]
    );
}

/// API Priority and Fairness answers 429 on any verb: a GET or PATCH waits (`Retry-After`)
/// and asks again instead of failing.
#[tokio::test]
async fn a_throttled_request_is_asked_again_after_retry_after() {
    let (api, client) = kubernetes().await;
    api.add_node("worker-1", serde_json::json!({}), serde_json::json!([]));
    api.throttle(2);
    let started = std::time::Instant::now();
    let node = client.get_node("worker-1").await.unwrap();
    assert_eq!(node.metadata.name, "worker-1");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    api.throttle(1);
    client.set_unschedulable("worker-1", true).await.unwrap();
    assert_eq!(api.node("worker-1").unwrap()["spec"]["unschedulable"], true);
}

/// A 403 to an eviction (a budget with negative `disruptionsAllowed`) is not a credentials
/// problem: the drain stops and says so.
#[tokio::test]
async fn a_forbidden_eviction_fails_the_drain_naming_the_pod() {
    let (api, client) = kubernetes().await;
    api.add_node("worker-1", serde_json::json!({}), serde_json::json!([]));
    let mut pod = NewPod::new("old-team", "web-1", "worker-1");
    pod.eviction_forbidden = true;
    api.add_pod(pod);
    let options = DrainOptions {
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(20),
    };
    let error = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &Lines::default(),
        &never,
    )
    .await
    .unwrap_err();
    let text = talos_manager_core::error_chain(&error).to_string();
    assert!(
        text.contains("forbids evicting pod old-team/web-1 (HTTP 403)")
            && text.contains("pdb disruptions allowed is negative"),
        "{text}"
    );
    assert!(!text.contains("certificate"), "{text}");
}

/// A 403 `NamespaceTerminating` is asked again, as `kubectl drain` does: the namespace
/// controller deletes the pod soon, and the drain waits for it to terminate.
#[tokio::test]
async fn an_eviction_in_a_namespace_being_deleted_is_asked_again_until_the_pod_goes() {
    let (api, client) = kubernetes().await;
    pods_on(&api, "worker-1", 0);
    api.add_pod(NewPod::new("old-team", "web-1", "worker-1"));
    api.terminate_namespace("old-team", Duration::from_millis(200));
    api.set_termination_grace(Duration::from_millis(200));
    let options = DrainOptions {
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(20),
    };
    let log = Lines::default();
    let report = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &log,
        &never,
    )
    .await
    .unwrap();
    assert_eq!(report.evicted, ["shop/db-0", "shop/web-1"]);
    assert!(!api.pods("worker-1").contains(&"old-team/web-1".to_owned()));
    let refused = api
        .evictions()
        .iter()
        .filter(|eviction| eviction.pod == "old-team/web-1")
        .map(|eviction| eviction.status)
        .collect::<Vec<_>>();
    assert!(
        !refused.is_empty() && refused.iter().all(|status| *status == 403),
        "{refused:?}"
    );
    let text = log.text();
    assert_eq!(
        text.matches("pod old-team/web-1 cannot be evicted while its namespace is being deleted")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("drained (2 pods evicted)"), "{text}");
}

/// Evicted pods terminate for their grace period before they are gone; the drain waits.
#[tokio::test]
async fn the_drain_waits_for_evicted_pods_to_finish_terminating() {
    let (api, client) = kubernetes().await;
    pods_on(&api, "worker-1", 0);
    api.set_termination_grace(Duration::from_millis(400));
    let options = DrainOptions {
        timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(20),
    };
    let log = Lines::default();
    let started = std::time::Instant::now();
    let report = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &log,
        &never,
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(report.evicted, ["shop/db-0", "shop/web-1"]);
    assert_eq!(
        api.pods("worker-1"),
        ["kube-system/agent-x", "kube-system/kube-apiserver-x"]
    );
    let evictions = api.evictions();
    assert_eq!(evictions.len(), 2, "each evicted once: {evictions:?}");
    assert!(
        log.text()
            .contains("node worker-1: waiting for evicted pods to terminate"),
        "{}",
        log.text()
    );
}

/// Like a Talos cluster's API server, the fake answers 401 to a request without a client
/// certificate, and to a certificate not yet valid by its clock: the client says the cluster
/// refused our admin certificate. Ours is valid from five minutes back, so an API server whose
/// clock is a minute and a half behind accepts it.
#[tokio::test]
async fn the_admin_certificate_is_refused_only_when_the_clock_is_far_behind() {
    let (bundle, api, client) = kubernetes_and_bundle().await;
    api.add_node("worker-1", serde_json::json!({}), serde_json::json!([]));

    let anonymous = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem(&bundle.k8s.crt).as_bytes()).unwrap()])
        .build()
        .unwrap();
    let answer = anonymous
        .get(format!("{}/api/v1/nodes/worker-1", api.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["reason"], "Unauthorized");

    api.set_clock_behind(Duration::from_secs(90));
    let node = client.get_node("worker-1").await.unwrap();
    assert_eq!(node.metadata.name, "worker-1");

    api.set_clock_behind(Duration::from_secs(600));
    // A new connection is judged by the new clock.
    let fresh = KubernetesClient::for_cluster(
        &bundle,
        api.url(),
        client_timeouts(),
        time::OffsetDateTime::now_utc(),
        &mut SystemRandom,
    )
    .unwrap();
    let error = fresh.get_node("worker-1").await.unwrap_err();
    assert!(
        matches!(
            error,
            talos_manager_core::kubernetes::KubernetesError::CertificateRefused { .. }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("refused our admin certificate (get node worker-1, HTTP 401)"),
        "{error}"
    );
    assert!(!error.is_transient());
}

/// Evicted pods stay terminating while the kubelet is down: on a NotReady node the drain goes
/// on without them after a bounded wait; on a Ready node it still waits for them.
#[tokio::test]
async fn a_pod_stuck_terminating_on_a_node_whose_kubelet_is_down_is_skipped() {
    let (api, client) = kubernetes().await;
    for node in ["worker-1", "worker-2"] {
        api.add_node(node, serde_json::json!({}), serde_json::json!([]));
        let mut pod = NewPod::new("shop", &format!("web-{node}"), node);
        pod.stuck_terminating = true;
        api.add_pod(pod);
    }
    api.set_ready("worker-1", false);
    let options = DrainOptions {
        timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(20),
    };
    let log = Lines::default();
    let report = drain_node(
        &client,
        "worker-1",
        &options,
        PodPolicy::default(),
        &log,
        &never,
    )
    .await
    .unwrap();
    assert_eq!(report.evicted, ["shop/web-worker-1"]);
    assert_eq!(report.skipped_terminating, ["shop/web-worker-1"]);
    assert!(
        log.text().contains(
            "node worker-1: pod shop/web-worker-1 is still terminating after 0.5 s and the node's \
             kubelet is not ready; going on without it"
        ),
        "{}",
        log.text()
    );
    let error = drain_node(
        &client,
        "worker-2",
        &options,
        PodPolicy::default(),
        &Lines::default(),
        &never,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, DrainError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn deleting_a_missing_node_is_fine_and_readiness_is_read() {
    let (api, client) = kubernetes().await;
    api.add_node("worker-1", serde_json::json!({}), serde_json::json!([]));
    assert!(client.get_node("worker-1").await.unwrap().is_ready());
    api.set_ready("worker-1", false);
    assert!(!client.get_node("worker-1").await.unwrap().is_ready());
    assert!(client.delete_node("worker-1").await.unwrap());
    assert!(!client.delete_node("worker-1").await.unwrap());
    assert!(
        api.requests()
            .iter()
            .filter(|r| *r == "DELETE /api/v1/nodes/worker-1")
            .count()
            == 2
    );
}

async fn run_on_cluster(
    store: &Store,
    cluster: &Cluster,
    action: RollingAction,
) -> talos_manager_core::lifecycle::RollingReport {
    let ctx = cluster.context(store, &never);
    let plan = plan_rolling(
        store,
        &RollingTarget::Cluster(store.list_clusters().await.unwrap()[0].id),
        &action,
        FACTORY,
    )
    .await
    .unwrap();
    let checkpoint = talos_manager_core::lifecycle::MemoryCheckpoint::default();
    run_rolling(&ctx, &plan, &checkpoint).await.unwrap()
}

store_test!(
    upgrade_and_reboot_with_a_control_plane_down_stop_before_the_first,
    |store| {
        let cluster = Cluster::new(store, &FIVE).await;
        cluster
            .talos
            .set_reachable(cluster.address("control-plane-3"), false);
        for action in [
            RollingAction::Upgrade {
                talos_version: TO.into(),
            },
            RollingAction::Reboot,
        ] {
            let report = run_on_cluster(store, &cluster, action).await;
            assert!(!report.succeeded());
            let first = &report.nodes[0];
            assert_eq!(first.hostname, "control-plane-1");
            let NodeOutcome::Failed { reason } = &first.outcome else {
                panic!("{report:?}");
            };
            assert!(
                reason.contains(
                    "taking control-plane-1 down would leave 1 of etcd's 3 members healthy (not healthy: control-plane-3)"
                ),
                "{reason}"
            );
            assert!(reason.contains("nothing was sent to the node"), "{reason}");
            assert!(
                report.nodes[1..]
                    .iter()
                    .all(|node| node.outcome == NodeOutcome::Untouched),
                "{report:?}"
            );
        }
        // Nothing reached any node: no upgrade, reboot, leadership move, cordon or drain.
        for operation in ["upgrade", "reboot", "etcd_forfeit_leadership", "reset"] {
            assert!(
                cluster.talos.calls_of(operation).is_empty(),
                "{operation}: {:?}",
                cluster.talos.calls()
            );
        }
        assert!(cluster.cordons().is_empty(), "{:?}", cluster.cordons());
        let log = cluster.log.text();
        assert!(
            log.contains(
                "etcd member control-plane-3 is not healthy: its node's etcd does not answer"
            ),
            "{log}"
        );
    }
);

store_test!(
    a_control_plane_that_does_not_rejoin_etcd_stops_the_run,
    |store| {
        let cluster = Cluster::new(store, &FIVE).await;
        cluster
            .talos
            .never_rejoin_etcd(cluster.address("control-plane-1"));
        let report = run_on_cluster(store, &cluster, RollingAction::Reboot).await;
        let NodeOutcome::Failed { reason } = &report.nodes[0].outcome else {
            panic!("{report:?}");
        };
        assert!(
            reason
                .contains("control-plane-1 is back but had not rejoined etcd as a healthy member"),
            "{reason}"
        );
        assert!(reason.contains("it is left cordoned"), "{reason}");
        assert!(
            report.nodes[1..]
                .iter()
                .all(|node| node.outcome == NodeOutcome::Untouched),
            "{report:?}"
        );
        assert_eq!(
            cluster.talos.calls_of("reboot"),
            ["reboot control-plane-1 Default"]
        );
        assert_eq!(cluster.cordons(), ["cordon control-plane-1"]);
        // Another control plane is not taken down while it is not healthy.
        let ctx = cluster.context(store, &never);
        let plan = plan_rolling(
            store,
            &RollingTarget::Server(cluster.id("control-plane-2")),
            &RollingAction::Reboot,
            FACTORY,
        )
        .await
        .unwrap();
        let checkpoint = talos_manager_core::lifecycle::MemoryCheckpoint::default();
        let again = run_rolling(&ctx, &plan, &checkpoint).await.unwrap();
        let NodeOutcome::Failed { reason } = &again.nodes[0].outcome else {
            panic!("{again:?}");
        };
        assert!(
            reason.contains("refused to take it down: taking control-plane-2 down would leave 1 of etcd's 3 members healthy (not healthy: control-plane-1)"),
            "{reason}"
        );
        assert_eq!(cluster.talos.calls_of("reboot").len(), 1);
        let log = cluster.log.text();
        assert!(
            log.contains("control-plane-1: waiting to rejoin etcd"),
            "{log}"
        );
    }
);

store_test!(upgrade_and_reset_act_on_the_names_the_nodes_have, |store| {
    let cluster = Cluster::named(store, &FIVE, |name| format!("talos-{name}")).await;
    let report = run_on_cluster(
        store,
        &cluster,
        RollingAction::Upgrade {
            talos_version: TO.into(),
        },
    )
    .await;
    assert!(report.succeeded(), "{report:?}\n{}", cluster.log.text());
    assert!(
        report
            .nodes
            .iter()
            .all(|node| node.hostname == format!("talos-{}", node.server_name)),
        "the report names the nodes as they call themselves: {report:?}"
    );
    assert_eq!(
        cluster.cordons(),
        FIVE.iter()
            .flat_map(|name| [
                format!("cordon talos-{name}"),
                format!("uncordon talos-{name}")
            ])
            .collect::<Vec<_>>()
    );
    for name in FIVE {
        let server = store.get_server(cluster.id(name)).await.unwrap();
        assert_eq!(server.node_name, Some(format!("talos-{name}")));
    }
    let log = cluster.log.text();
    assert!(
            log.contains(
                "worker-1: name mismatch: the node calls itself talos-worker-1, its machine config expects worker-1; acting on talos-worker-1"
            ),
            "{log}"
        );

    let ctx = cluster.context(store, &never);
    let outcome = reset_server(
        &ctx,
        cluster.id("control-plane-3"),
        ResetProfile::Wipe,
        false,
    )
    .await
    .unwrap();
    assert!(outcome.graceful && outcome.forced.is_none(), "{outcome:?}");
    assert_eq!(outcome.node, "talos-control-plane-3");
    assert!(outcome.deleted_kubernetes_node);
    assert!(cluster.kubernetes.node("talos-control-plane-3").is_none());
    assert_eq!(
        cluster.talos.etcd_hostnames(),
        ["talos-control-plane-1", "talos-control-plane-2"]
    );
    let server = store
        .get_server(cluster.id("control-plane-3"))
        .await
        .unwrap();
    assert_eq!(server.node_name, None, "a reset forgets the name");
});

store_test!(
    the_label_job_labels_the_node_under_the_name_it_reports,
    |store| {
        let cluster = Cluster::named(store, &["control-plane-1", "worker-1"], |name| {
            format!("talos-{name}")
        })
        .await;
        let worker = cluster.id("worker-1");
        let name =
            talos_manager_core::lifecycle::refresh_node_name(store, &cluster.talos, 50000, worker)
                .await
                .unwrap();
        assert_eq!(name, "talos-worker-1");
        let options = talos_manager_core::node_labels::ReconcileOptions {
            timeouts: client_timeouts(),
            ..Default::default()
        };
        let outcome = talos_manager_core::node_labels::reconcile_labels_and_taints(
            store,
            worker,
            &options,
            &*cluster.log,
        )
        .await
        .unwrap();
        assert!(
            matches!(
                &outcome,
                talos_manager_core::node_labels::ReconcileOutcome::Reconciled { node, .. }
                    if node == "talos-worker-1"
            ),
            "{outcome:?}"
        );
        let log = cluster.log.text();
        assert!(
            log.contains("name mismatch: the node of worker-1 calls itself talos-worker-1, its machine config expects worker-1"),
            "{log}"
        );
    }
);

/// A cluster of `names` never bootstrapped: its control planes run without etcd in the Talos
/// fake until one is bootstrapped.
async fn unbootstrapped(store: &Store, names: &[&str]) -> (Cluster, ClusterId) {
    let mut cluster = Cluster::build(store, names, |name| name.to_owned(), false).await;
    cluster.talos = FakeTalos::new();
    for (name, (_, address)) in &cluster.servers {
        if name.contains("control-plane") {
            cluster.talos.add_unbootstrapped_node(*address, name, FROM);
        } else {
            cluster.talos.add_node(*address, name, false, FROM);
        }
    }
    let id = store
        .get_server(cluster.id(names[0]))
        .await
        .unwrap()
        .cluster_id
        .unwrap();
    (cluster, id)
}

const THREE_PLANES: [&str; 4] = [
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
];

store_test!(
    bootstrap_retries_while_not_ready_on_the_first_control_plane_only,
    |store| {
        let (cluster, id) = unbootstrapped(store, &THREE_PLANES).await;
        let first = cluster.address("control-plane-1");
        for _ in 0..2 {
            cluster.talos.fail(
                first,
                "bootstrap",
                FakeFailure::Status(
                    TalosStatusCode::FailedPrecondition,
                    "time is not in sync yet".into(),
                ),
            );
        }
        let ctx = cluster.context(store, &never);
        let outcome = bootstrap_cluster(&ctx, id, "job:1").await.unwrap();
        assert_eq!(
            outcome.bootstrapped_node.as_deref(),
            Some("control-plane-1")
        );
        assert_eq!(
            cluster.talos.calls_of("bootstrap"),
            [
                "bootstrap control-plane-1",
                "bootstrap control-plane-1",
                "bootstrap control-plane-1"
            ]
        );
        assert_eq!(
            cluster.talos.etcd_hostnames(),
            ["control-plane-1", "control-plane-2", "control-plane-3"]
        );
        let stored = store.get_cluster(id).await.unwrap();
        assert_eq!(stored.bootstrapped_at, Some(outcome.bootstrapped_at));
        assert_eq!(stored.bootstrap_claimed_by, None);
        let log = cluster.log.text();
        for part in [
            "bootstrapping control-plane-1",
            "not ready for Bootstrap yet",
            "time is not in sync yet",
            "Bootstrap accepted",
            "etcd answers: members control-plane-1",
            "the Kubernetes API answers",
            "recorded as bootstrapped",
        ] {
            assert!(log.contains(part), "{part:?} not in\n{log}");
        }

        // Never twice.
        let error = bootstrap_cluster(&ctx, id, "job:2").await.unwrap_err();
        assert!(
            matches!(error, ClusterBootstrapError::AlreadyBootstrapped { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("never bootstrapped twice"),
            "{error}"
        );
        assert_eq!(cluster.talos.calls_of("bootstrap").len(), 3);
    }
);

store_test!(already_bootstrapped_counts_as_done, |store| {
    let (cluster, id) = unbootstrapped(store, &["control-plane-1", "worker-1"]).await;
    let first = cluster.address("control-plane-1");
    // Bootstrapped behind our back (the previous run's call went through), its etcd not
    // answering yet when we ask: Talos answers AlreadyExists.
    cluster.talos.fail(
        first,
        "etcd_members",
        FakeFailure::Status(TalosStatusCode::Unavailable, "etcd starting".into()),
    );
    cluster.talos.fail(
        first,
        "bootstrap",
        FakeFailure::Status(
            TalosStatusCode::AlreadyExists,
            "etcd data directory is not empty".into(),
        ),
    );
    let ctx = cluster.context(store, &never);
    // The fake's node still awaits a bootstrap; the injected answer stands for Talos's.
    let result = bootstrap_cluster(&ctx, id, "job:1").await;
    let log = cluster.log.text();
    assert!(log.contains("already bootstrapped"), "{log}");
    assert_eq!(cluster.talos.calls_of("bootstrap").len(), 1);
    // etcd never answers in this fake (the node was not really bootstrapped): the wait ends
    // with a clear error and the claim is given up.
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            ClusterBootstrapError::NotHealthy { what: "etcd", .. }
        ),
        "{error:?}"
    );
    let stored = store.get_cluster(id).await.unwrap();
    assert_eq!(stored.bootstrapped_at, None);
    assert_eq!(stored.bootstrap_claimed_by, None);
});

store_test!(a_cluster_whose_etcd_runs_is_never_bootstrapped, |store| {
    // Every control plane is an etcd member, but the cluster was never recorded as
    // bootstrapped (bootstrapped by hand).
    let cluster = Cluster::build(
        store,
        &["control-plane-1", "control-plane-2", "worker-1"],
        |name| name.to_owned(),
        false,
    )
    .await;
    let id = store
        .get_server(cluster.id("worker-1"))
        .await
        .unwrap()
        .cluster_id
        .unwrap();
    let ctx = cluster.context(store, &never);
    let outcome = bootstrap_cluster(&ctx, id, "job:1").await.unwrap();
    assert_eq!(outcome.bootstrapped_node, None);
    assert!(cluster.talos.calls_of("bootstrap").is_empty());
    let log = cluster.log.text();
    assert!(
        log.contains("etcd runs already") && log.contains("Bootstrap is not called"),
        "{log}"
    );
    assert!(
        store
            .get_cluster(id)
            .await
            .unwrap()
            .bootstrapped_at
            .is_some()
    );
});

store_test!(two_concurrent_bootstraps_make_one_bootstrap_call, |store| {
    let (cluster, id) = unbootstrapped(store, &["control-plane-1", "control-plane-2"]).await;
    // The node is slow to get ready: both callers overlap.
    for _ in 0..3 {
        cluster.talos.fail(
            cluster.address("control-plane-1"),
            "bootstrap",
            FakeFailure::Status(TalosStatusCode::Unavailable, "services starting".into()),
        );
    }
    let ctx = cluster.context(store, &never);
    let (a, b) = tokio::join!(
        bootstrap_cluster(&ctx, id, "job:1"),
        bootstrap_cluster(&ctx, id, "job:2")
    );
    let (ok, refused) = match (a, b) {
        (Ok(ok), Err(refused)) | (Err(refused), Ok(ok)) => (ok, refused),
        other => panic!("expected one success and one refusal: {other:?}"),
    };
    assert_eq!(ok.bootstrapped_node.as_deref(), Some("control-plane-1"));
    assert!(
        matches!(
            refused,
            ClusterBootstrapError::InProgress { .. }
                | ClusterBootstrapError::AlreadyBootstrapped { .. }
        ),
        "{refused:?}"
    );
    // Three "not ready" answers, then the one that went through: all from one caller.
    assert_eq!(cluster.talos.calls_of("bootstrap").len(), 4);
    assert_eq!(
        cluster.talos.etcd_hostnames(),
        ["control-plane-1", "control-plane-2"]
    );
});

store_test!(
    a_bootstrap_interrupted_after_its_call_asks_etcd_and_does_not_call_again,
    |store| {
        let (cluster, id) = unbootstrapped(store, &["control-plane-1", "worker-1"]).await;
        // The first run claimed the bootstrap and its call went through, then the process died.
        assert_eq!(
            store.claim_cluster_bootstrap(id, "job:7").await.unwrap(),
            talos_manager_core::store::BootstrapClaim::Claimed
        );
        use talos_manager_core::talos_api::TalosApi as _;
        cluster
            .talos
            .bootstrap(cluster.address("control-plane-1"))
            .await
            .unwrap();
        // Another caller is refused while the claim is held.
        let ctx = cluster.context(store, &never);
        let error = bootstrap_cluster(&ctx, id, "job:8").await.unwrap_err();
        assert!(
            matches!(&error, ClusterBootstrapError::InProgress { holder, .. } if holder == "job:7"),
            "{error:?}"
        );
        // The same job run again goes on without calling Bootstrap a second time.
        let outcome = bootstrap_cluster(&ctx, id, "job:7").await.unwrap();
        assert_eq!(outcome.bootstrapped_node, None);
        assert_eq!(cluster.talos.calls_of("bootstrap").len(), 1);
        assert!(
            store
                .get_cluster(id)
                .await
                .unwrap()
                .bootstrapped_at
                .is_some()
        );
    }
);
