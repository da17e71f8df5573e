//! The store, tested once and run on both backends (`<test>::sqlite`, `<test>::postgres`), each
//! test on a fresh database.

use talos_manager_core::Architecture;
use talos_manager_core::ProviderKind;
use talos_manager_core::ids::{ConfigId, ServerId, VswitchId};
use talos_manager_core::store::{
    ClusterFields, ConfigFields, JobOutcome, JobStatus, LabelTaintRuleFields, MachineConfigFields,
    NewJob, ProbeResult, SchematicFields, ServerInventory, ServerUpsert, Settings,
};
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::{Secret, Store, StoreError};

/// Declares `$name::sqlite` and `$name::postgres`, each running `$body` with `$store` on a fresh
/// database of that backend (and `$db`, the [`TestDatabase`], when named).
macro_rules! store_test {
    ($name:ident, |$store:ident $(, $db:ident)?| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(::talos_manager_core::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run(::talos_manager_core::Backend::Postgres).await
            }

            async fn run(backend: ::talos_manager_core::Backend) {
                let database = ::talos_manager_core::testing::TestDatabase::new(backend).await;
                $(let $db = &database;)?
                let $store: &Store = database.store();
                $body
            }
        }
    };
}

fn robot_server(provider_id: &str, name: &str) -> ServerInventory {
    ServerInventory {
        provider: ProviderKind::HetznerRobot,
        provider_id: provider_id.into(),
        name: name.into(),
        ipv4: Some(format!("192.0.2.{provider_id}")),
        ipv6: Some("2001:db8::/64".into()),
        product: "AX41-NVMe".into(),
        data_center: "FSN1-DC14".into(),
        status: "ready".into(),
        cancelled: false,
        architecture: Architecture::Amd64,
        vswitch_id: None,
    }
}

fn config_fields(name: &str) -> ConfigFields {
    ConfigFields {
        name: name.into(),
        install_image: "ghcr.io/siderolabs/installer:v1.10.4".into(),
        kubernetes_version: "1.30.1".into(),
        kubespan: true,
        patch: "machine:\n  network:\n    hostname: ${hostname}\n".into(),
        patch_control_plane: String::new(),
        patch_worker: String::new(),
    }
}

fn machine_config_fields(config_id: ConfigId) -> MachineConfigFields {
    MachineConfigFields {
        config_id,
        hostname: "worker-1".into(),
        private_ip: "10.0.1.1".into(),
        install_disk: "/dev/nvme0n1".into(),
        ephemeral_disk_identifier: Some("wwid:eui.36344630528029720025384500000002".into()),
    }
}

async fn robot_account(store: &Store) -> talos_manager_core::store::ProviderAccount {
    store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "robot-user",
            &Secret::new("robot-password".into()),
        )
        .await
        .unwrap()
}

store_test!(provider_account_round_trip, |store| {
    let secret = Secret::new(String::from("cloud-token-value"));
    let account = store
        .create_provider_account(ProviderKind::HetznerCloud, "production", &secret)
        .await
        .unwrap();
    assert_eq!(account.provider, ProviderKind::HetznerCloud);
    assert_eq!(account.name, "production");
    assert_eq!(
        store.list_provider_accounts().await.unwrap(),
        vec![account.clone()]
    );
    assert_eq!(
        store.provider_account_secret(account.id).await.unwrap(),
        secret
    );

    let renamed = store
        .update_provider_account(account.id, "prod", None)
        .await
        .unwrap();
    assert_eq!(renamed.name, "prod");
    assert_eq!(
        store.provider_account_secret(account.id).await.unwrap(),
        secret
    );
    let new_secret = Secret::new(String::from("rotated-token"));
    store
        .update_provider_account(account.id, "prod", Some(&new_secret))
        .await
        .unwrap();
    assert_eq!(
        store.provider_account_secret(account.id).await.unwrap(),
        new_secret
    );
});

store_test!(provider_account_names_are_unique_ignoring_case, |store| {
    robot_account(store).await;
    let error = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "Robot-User",
            &Secret::new("x".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    // The same name under the other provider is another account.
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "robot-user",
            &Secret::new("x".into()),
        )
        .await
        .unwrap();
});

store_test!(
    upserting_a_server_twice_updates_it_and_keeps_local_fields,
    |store| {
        let account = robot_account(store).await;
        let (server, outcome) = store
            .upsert_server(account.id, &robot_server("1", "worker-1"))
            .await
            .unwrap();
        assert_eq!(outcome, ServerUpsert::Inserted);
        assert!(!server.accessible);

        let cluster = store
            .create_cluster(
                &ClusterFields {
                    name: "prod".into(),
                    endpoint: "https://prod.example.com:6443".into(),
                    vswitch_id: None,
                },
                &Secret::new("bundle".into()),
            )
            .await
            .unwrap();
        store
            .update_server_assignment(server.id, "worker-1", Some(cluster.id), None, None)
            .await
            .unwrap();
        let probe = ProbeResult {
            accessible: true,
            uuid: Some("1a462672-bd83-888c-df8f-a57e6b38f998".into()),
            lsblk: Some(r#"{"blockdevices":[]}"#.into()),
        };
        store.record_probe(server.id, &probe).await.unwrap();

        let mut renamed = robot_server("1", "renamed-at-hetzner");
        renamed.status = "in process".into();
        let (again, outcome) = store.upsert_server(account.id, &renamed).await.unwrap();
        assert_eq!(outcome, ServerUpsert::Updated);
        assert_eq!(again.id, server.id);
        assert_eq!(again.inventory, renamed);
        assert_eq!(again.cluster_id, Some(cluster.id));
        assert!(again.accessible);
        assert_eq!(again.uuid, probe.uuid);
        assert_eq!(store.list_servers().await.unwrap().len(), 1);
    }
);

store_test!(robot_and_cloud_ids_do_not_collide, |store| {
    let robot = robot_account(store).await;
    let cloud = store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "cloud",
            &Secret::new("t".into()),
        )
        .await
        .unwrap();
    let mut cloud_server = robot_server("7", "cloud-7");
    cloud_server.provider = ProviderKind::HetznerCloud;
    cloud_server.architecture = Architecture::Arm64;
    store
        .upsert_server(robot.id, &robot_server("7", "robot-7"))
        .await
        .unwrap();
    store.upsert_server(cloud.id, &cloud_server).await.unwrap();
    let servers = store.list_servers().await.unwrap();
    let mut names: Vec<_> = servers.iter().map(|s| s.inventory.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["cloud-7", "robot-7"]);
    let cloud_7 = servers
        .iter()
        .find(|s| s.inventory.name == "cloud-7")
        .unwrap();
    assert_eq!(cloud_7.inventory.architecture, Architecture::Arm64);
});

store_test!(servers_are_found_by_ipv4_and_uuid, |store| {
    let account = robot_account(store).await;
    let (one, _) = store
        .upsert_server(account.id, &robot_server("1", "a"))
        .await
        .unwrap();
    store
        .upsert_server(account.id, &robot_server("2", "b"))
        .await
        .unwrap();
    let found = store.find_servers_by_ipv4("192.0.2.1").await.unwrap();
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), [one.id]);
    assert!(
        store
            .find_servers_by_ipv4("198.51.100.1")
            .await
            .unwrap()
            .is_empty()
    );
    let probe = ProbeResult {
        accessible: true,
        uuid: Some("uuid-1".into()),
        lsblk: None,
    };
    store.record_probe(one.id, &probe).await.unwrap();
    assert_eq!(
        store.find_servers_by_uuid("uuid-1").await.unwrap()[0].id,
        one.id
    );
});

store_test!(
    vanished_servers_are_deleted_with_their_machine_configs,
    |store| {
        let account = robot_account(store).await;
        let (kept, _) = store
            .upsert_server(account.id, &robot_server("1", "a"))
            .await
            .unwrap();
        let (gone, _) = store
            .upsert_server(account.id, &robot_server("2", "b"))
            .await
            .unwrap();
        let config = store
            .create_config(&config_fields("default"))
            .await
            .unwrap();
        store
            .put_machine_config(gone.id, &machine_config_fields(config.id))
            .await
            .unwrap();

        let deleted = store
            .delete_servers_not_in(account.id, &["1".to_owned()])
            .await
            .unwrap();
        assert_eq!(deleted.iter().map(|s| s.id).collect::<Vec<_>>(), [gone.id]);
        let remaining: Vec<ServerId> = store
            .list_servers()
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(remaining, [kept.id]);
        assert!(store.list_machine_configs().await.unwrap().is_empty());
        assert!(matches!(
            store.get_server(gone.id).await.unwrap_err(),
            StoreError::NotFound {
                entity: "server",
                ..
            }
        ));
    }
);

store_test!(
    deleting_an_account_deletes_its_servers_and_vswitches,
    |store| {
        let account = robot_account(store).await;
        store
            .upsert_vswitch(VswitchId(4000), account.id, "vlan", 4000)
            .await
            .unwrap();
        let mut inventory = robot_server("1", "a");
        inventory.vswitch_id = Some(VswitchId(4000));
        store.upsert_server(account.id, &inventory).await.unwrap();
        store.delete_provider_account(account.id).await.unwrap();
        assert!(store.list_servers().await.unwrap().is_empty());
        assert!(store.list_vswitches().await.unwrap().is_empty());
    }
);

store_test!(
    clusters_keep_their_secrets_encrypted_and_are_not_deleted_in_use,
    |store| {
        let account = robot_account(store).await;
        store
            .upsert_vswitch(VswitchId(12), account.id, "private", 4001)
            .await
            .unwrap();
        let fields = ClusterFields {
            name: "prod".into(),
            endpoint: "https://prod.example.com:6443".into(),
            vswitch_id: Some(VswitchId(12)),
        };
        let bundle = Secret::new(String::from("cluster:\n  id: abc\n"));
        let cluster = store.create_cluster(&fields, &bundle).await.unwrap();
        assert_eq!(store.get_cluster(cluster.id).await.unwrap(), cluster);
        assert_eq!(store.cluster_secrets(cluster.id).await.unwrap(), bundle);

        let renamed = ClusterFields {
            name: "production".into(),
            ..fields.clone()
        };
        let updated = store
            .update_cluster(cluster.id, &renamed, None)
            .await
            .unwrap();
        assert_eq!(updated.name, "production");
        assert_eq!(store.cluster_secrets(cluster.id).await.unwrap(), bundle);

        let duplicate = store.create_cluster(&renamed, &bundle).await.unwrap_err();
        assert!(
            matches!(duplicate, StoreError::Conflict { .. }),
            "{duplicate:?}"
        );

        let (server, _) = store
            .upsert_server(account.id, &robot_server("1", "a"))
            .await
            .unwrap();
        store
            .update_server_assignment(server.id, "a", Some(cluster.id), None, None)
            .await
            .unwrap();
        // Its servers' nodes trust its PKI: not deleted while one belongs to it.
        let in_use = store.delete_cluster(cluster.id).await.unwrap_err();
        assert!(
            matches!(
                &in_use,
                StoreError::InUse {
                    entity: "cluster",
                    ..
                }
            ),
            "{in_use:?}"
        );
        assert_eq!(store.cluster_secrets(cluster.id).await.unwrap(), bundle);
        store
            .update_server_assignment(server.id, "a", None, None, None)
            .await
            .unwrap();
        store.delete_cluster(cluster.id).await.unwrap();
        assert!(matches!(
            store.delete_cluster(cluster.id).await.unwrap_err(),
            StoreError::NotFound { .. }
        ));
    }
);

store_test!(a_config_in_use_cannot_be_deleted, |store| {
    let account = robot_account(store).await;
    let (server, _) = store
        .upsert_server(account.id, &robot_server("1", "a"))
        .await
        .unwrap();
    let config = store
        .create_config(&config_fields("default"))
        .await
        .unwrap();
    assert_eq!(store.get_config(config.id).await.unwrap(), config);
    let binding = store
        .put_machine_config(server.id, &machine_config_fields(config.id))
        .await
        .unwrap();

    let error = store.delete_config(config.id).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InUse {
                entity: "config",
                ..
            }
        ),
        "{error:?}"
    );

    store.delete_machine_config(binding.id).await.unwrap();
    store.delete_config(config.id).await.unwrap();
    assert!(store.list_configs().await.unwrap().is_empty());
});

store_test!(a_machine_config_is_replaced_not_duplicated, |store| {
    let account = robot_account(store).await;
    let (server, _) = store
        .upsert_server(account.id, &robot_server("1", "a"))
        .await
        .unwrap();
    let first = store.create_config(&config_fields("first")).await.unwrap();
    let second = store.create_config(&config_fields("second")).await.unwrap();
    store
        .put_machine_config(server.id, &machine_config_fields(first.id))
        .await
        .unwrap();
    let mut fields = machine_config_fields(second.id);
    fields.ephemeral_disk_identifier = None;
    let replaced = store.put_machine_config(server.id, &fields).await.unwrap();
    assert_eq!(replaced.fields, fields);
    assert_eq!(
        store.machine_config_for_server(server.id).await.unwrap(),
        Some(replaced)
    );
    assert_eq!(store.list_machine_configs().await.unwrap().len(), 1);

    let missing_config = store
        .put_machine_config(server.id, &machine_config_fields(ConfigId(999)))
        .await
        .unwrap_err();
    assert!(
        matches!(missing_config, StoreError::MissingReference { .. }),
        "{missing_config:?}"
    );
});

store_test!(configs_update_in_place, |store| {
    let config = store
        .create_config(&config_fields("default"))
        .await
        .unwrap();
    let mut fields = config_fields("renamed");
    fields.kubespan = false;
    fields.patch_worker = "machine:\n  kubelet: {}\n".into();
    let updated = store.update_config(config.id, &fields).await.unwrap();
    assert_eq!(updated.fields, fields);
    assert_eq!(updated.created_at, config.created_at);
    assert!(updated.updated_at >= config.updated_at);
    let error = store
        .update_config(ConfigId(999), &fields)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
});

store_test!(rules_schematics_and_settings_round_trip, |store| {
    let rule_fields = LabelTaintRuleFields {
        name_match: "database".into(),
        labels: "role=database,tier=stateful".into(),
        taints: "role=database:NoSchedule".into(),
    };
    let rule = store.create_label_taint_rule(&rule_fields).await.unwrap();
    assert_eq!(
        store.list_label_taint_rules().await.unwrap(),
        vec![rule.clone()]
    );
    let updated_fields = LabelTaintRuleFields {
        taints: String::new(),
        ..rule_fields
    };
    let updated = store
        .update_label_taint_rule(rule.id, &updated_fields)
        .await
        .unwrap();
    assert_eq!(updated.fields, updated_fields);
    store.delete_label_taint_rule(rule.id).await.unwrap();
    assert!(store.list_label_taint_rules().await.unwrap().is_empty());

    assert_eq!(store.settings().await.unwrap(), Settings::default());
    let schematic = store
        .create_schematic(&SchematicFields {
            name: "mdadm".into(),
            body: "customization:\n  systemExtensions: {}\n".into(),
            factory_id: Some(
                "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
            ),
        })
        .await
        .unwrap();
    let settings = store
        .update_settings("v1.11.5", Some(schematic.id))
        .await
        .unwrap();
    assert_eq!(settings.talos_version, "v1.11.5");
    assert_eq!(store.settings().await.unwrap(), settings);
    // Deleting the default schematic clears the default rather than failing.
    store.delete_schematic(schematic.id).await.unwrap();
    assert_eq!(store.settings().await.unwrap().default_schematic_id, None);
});

store_test!(jobs_are_claimed_once_and_keep_their_log, |store| {
    let job = store
        .enqueue_job(&NewJob {
            kind: "sync".into(),
            server_id: None,
            args: serde_json::json!({"account": 1}),
        })
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Queued);

    let claimed = store
        .claim_job("worker-a")
        .await
        .unwrap()
        .expect("a runnable job");
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.locked_by.as_deref(), Some("worker-a"));
    assert_eq!(claimed.args, serde_json::json!({"account": 1}));
    assert!(store.claim_job("worker-b").await.unwrap().is_none());

    let first = store
        .append_job_log(job.id, "wiping /dev/nvme0n1")
        .await
        .unwrap();
    store
        .append_job_log(job.id, "writing image: 10%")
        .await
        .unwrap();
    let all = store.job_log(job.id, None).await.unwrap();
    assert_eq!(
        all.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["wiping /dev/nvme0n1", "writing image: 10%"]
    );
    let after_first = store.job_log(job.id, Some(first.id)).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].line, "writing image: 10%");

    assert!(
        matches!(
            store
                .finish_job(job.id, "worker-b", JobOutcome::Succeeded)
                .await,
            Err(StoreError::LeaseLost { .. })
        ),
        "only the worker holding a job finishes it"
    );
    let failed = store
        .finish_job(
            job.id,
            "worker-a",
            JobOutcome::Failed("ssh: connection refused"),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("ssh: connection refused")
    );
    assert!(failed.finished_at.is_some());
});

store_test!(abandoned_jobs_are_requeued_or_failed_by_kind, |store| {
    let enqueue = |kind: &'static str| {
        let store = store.clone();
        async move {
            store
                .enqueue_job(&NewJob {
                    kind: kind.into(),
                    server_id: None,
                    args: serde_json::json!({}),
                })
                .await
                .unwrap()
        }
    };
    let sync = enqueue("sync").await;
    let bootstrap = enqueue("bootstrap").await;
    let alive = enqueue("sync").await;
    for _ in 0..3 {
        store.claim_job("replica-1").await.unwrap().unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let stale_before = time::OffsetDateTime::now_utc();
    // The third job's worker is alive: its heartbeat is newer than the cut-off.
    assert_eq!(
        store.heartbeat_job(alive.id, "replica-1").await.unwrap(),
        Some(false)
    );

    let recovered = store
        .recover_abandoned_jobs(stale_before, &["sync"])
        .await
        .unwrap();
    let by_id = |id| recovered.iter().find(|job| job.id == id).unwrap();
    assert_eq!(recovered.len(), 2);
    assert_eq!(by_id(sync.id).status, JobStatus::Queued);
    assert_eq!(by_id(bootstrap.id).status, JobStatus::Failed);
    assert!(
        by_id(bootstrap.id)
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("abandoned")
    );
    assert_eq!(
        store.get_job(alive.id).await.unwrap().status,
        JobStatus::Running
    );

    // The crashed worker, should it come back, no longer holds the recovered job.
    assert_eq!(
        store.heartbeat_job(sync.id, "replica-1").await.unwrap(),
        None
    );
    let again = store.claim_job("replica-2").await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (sync.id, 2));
});

store_test!(
    cancelling_a_queued_job_ends_it_and_a_running_one_asks_its_worker,
    |store| {
        let new_job = NewJob {
            kind: "bootstrap".into(),
            server_id: None,
            args: serde_json::json!({}),
        };
        let running = store.enqueue_job(&new_job).await.unwrap();
        let queued = store.enqueue_job(&new_job).await.unwrap();
        store.claim_job("worker").await.unwrap().unwrap();

        let cancelled = store.cancel_job(queued.id).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        assert!(cancelled.finished_at.is_some());
        assert!(store.claim_job("worker").await.unwrap().is_none());

        let asked = store.cancel_job(running.id).await.unwrap();
        assert_eq!(asked.status, JobStatus::Running);
        assert_eq!(
            store.heartbeat_job(running.id, "worker").await.unwrap(),
            Some(true)
        );
        let stopped = store
            .finish_job(running.id, "worker", JobOutcome::Cancelled)
            .await
            .unwrap();
        assert_eq!(stopped.status, JobStatus::Cancelled);
    }
);

store_test!(concurrent_workers_never_claim_the_same_job, |store| {
    let n_jobs = 40;
    for n in 0..n_jobs {
        store
            .enqueue_job(&NewJob {
                kind: "label_and_taint".into(),
                server_id: None,
                args: serde_json::json!({ "n": n }),
            })
            .await
            .unwrap();
    }
    let workers = (0..4).map(|worker| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(job) = store.claim_job(&format!("worker-{worker}")).await.unwrap() {
                claimed.push(job.id);
            }
            claimed
        })
    });
    let mut claimed = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        claimed.extend(worker.await.unwrap());
    }
    claimed.sort();
    let n_claimed = claimed.len();
    claimed.dedup();
    assert_eq!(claimed.len(), n_claimed, "a job was claimed twice");
    assert_eq!(n_claimed, n_jobs);
});

store_test!(secrets_are_not_stored_in_plaintext, |store, db| {
    let token = "plaintext-cloud-token-9f8e7d";
    let bundle = "plaintext-cluster-secret-1a2b3c";
    store
        .create_provider_account(
            ProviderKind::HetznerCloud,
            "cloud",
            &Secret::new(token.into()),
        )
        .await
        .unwrap();
    store
        .create_cluster(
            &ClusterFields {
                name: "prod".into(),
                endpoint: "https://prod.example.com:6443".into(),
                vswitch_id: None,
            },
            &Secret::new(bundle.into()),
        )
        .await
        .unwrap();
    let raw = raw_database_contents(db).await;
    // The dump holds the rows (their clear columns prove it was read)...
    for clear in ["prod.example.com", "hetzner_cloud"] {
        assert!(
            raw.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} not found: the scan did not read the rows"
        );
    }
    // ...but not the secrets.
    for secret in [token, bundle] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is stored in plaintext"
        );
    }
    // The values are there, encrypted: they decrypt with the key.
    let accounts = store.list_provider_accounts().await.unwrap();
    assert_eq!(
        store
            .provider_account_secret(accounts[0].id)
            .await
            .unwrap()
            .expose(),
        token
    );
});

/// Every byte the database holds: the SQLite files, or a text dump of every PostgreSQL table.
async fn raw_database_contents(db: &TestDatabase) -> Vec<u8> {
    match db.sqlite_dir() {
        Some(dir) => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            bytes
        }
        None => {
            use sqlx::Connection as _;
            let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public'",
            )
            .fetch_all(&mut connection)
            .await
            .unwrap();
            let mut bytes = Vec::new();
            for table in tables {
                let sql = format!("SELECT t::text FROM {table} t");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut connection)
                    .await
                    .unwrap();
                for row in rows {
                    bytes.extend(row.into_bytes());
                }
            }
            bytes
        }
    }
}

store_test!(api_tokens_expire, |store| {
    let now = time::OffsetDateTime::now_utc();
    let expired = talos_manager_core::api_token::generate_api_token().unwrap();
    let old = store
        .create_expiring_api_token("old", &expired, Some(now - time::Duration::SECOND))
        .await
        .unwrap();
    let current = talos_manager_core::api_token::generate_api_token().unwrap();
    let fresh = store
        .create_expiring_api_token("fresh", &current, Some(now + time::Duration::HOUR))
        .await
        .unwrap();
    assert!(old.expires_at.is_some());
    assert!(
        store
            .authenticate_api_token(expired.token.expose())
            .await
            .unwrap()
            .is_none(),
        "an expired token authenticates nothing"
    );
    assert!(!store.api_token_is_valid(old.id).await.unwrap());
    let found = store
        .authenticate_api_token(current.token.expose())
        .await
        .unwrap()
        .expect("a token before its expiry authenticates");
    assert_eq!(found.expires_at, fresh.expires_at);
    assert!(store.api_token_is_valid(fresh.id).await.unwrap());
    store.delete_api_token(fresh.id).await.unwrap();
    assert!(!store.api_token_is_valid(fresh.id).await.unwrap());
});

store_test!(
    api_tokens_authenticate_by_value_and_are_revocable,
    |store| {
        let new = talos_manager_core::api_token::generate_api_token().unwrap();
        let token = store.create_api_token("terraform", &new).await.unwrap();
        assert_eq!(token.last_used_at, None);
        assert_eq!(store.count_api_tokens().await.unwrap(), 1);

        let found = store
            .authenticate_api_token(new.token.expose())
            .await
            .unwrap()
            .expect("the token authenticates");
        assert_eq!(found.id, token.id);
        assert!(found.last_used_at.is_some());
        assert!(
            store
                .authenticate_api_token("tm_wrong")
                .await
                .unwrap()
                .is_none()
        );

        let duplicate = talos_manager_core::api_token::generate_api_token().unwrap();
        let error = store
            .create_api_token("terraform", &duplicate)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");

        store.delete_api_token(token.id).await.unwrap();
        assert!(
            store
                .authenticate_api_token(new.token.expose())
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.list_api_tokens().await.unwrap().is_empty());
    }
);

store_test!(
    applied_labels_taints_and_running_version_are_recorded,
    |store| {
        let account = robot_account(store).await;
        let (server, _) = store
            .upsert_server(account.id, &robot_server("7", "db-worker-1"))
            .await
            .unwrap();
        assert_eq!(store.applied_labels_taints(server.id).await.unwrap(), None);
        let first = store
            .record_applied_labels_taints(server.id, "db-worker-1", "role=db", "")
            .await
            .unwrap();
        let second = store
            .record_applied_labels_taints(
                server.id,
                "db-worker-1",
                "role=database",
                "dedicated=db:NoSchedule",
            )
            .await
            .unwrap();
        assert!(second.applied_at >= first.applied_at);
        assert_eq!(
            store.applied_labels_taints(server.id).await.unwrap(),
            Some(second.clone())
        );
        assert_eq!(
            store
                .get_server(server.id)
                .await
                .unwrap()
                .label_and_taint_job_completed_at,
            Some(second.applied_at)
        );

        let fields = ClusterFields {
            name: "prod".into(),
            endpoint: "https://prod.example.com:6443".into(),
            vswitch_id: None,
        };
        let cluster = store
            .create_cluster(&fields, &Secret::new("cluster: {}\n".into()))
            .await
            .unwrap();
        assert_eq!(cluster.running_kubernetes_version, None);
        let at = time::macros::datetime!(2026-01-02 03:04:05.123456 UTC);
        store
            .record_running_kubernetes_version(cluster.id, Some("1.33.1"), at)
            .await
            .unwrap();
        // No answer later keeps the version last seen.
        let later = at + time::Duration::minutes(5);
        store
            .record_running_kubernetes_version(cluster.id, None, later)
            .await
            .unwrap();
        let cluster = store.get_cluster(cluster.id).await.unwrap();
        assert_eq!(
            cluster.running_kubernetes_version.as_deref(),
            Some("1.33.1")
        );
        assert_eq!(cluster.running_kubernetes_version_checked_at, Some(later));

        // Deleting the server deletes its record.
        store.delete_server(server.id).await.unwrap();
        assert_eq!(store.applied_labels_taints(server.id).await.unwrap(), None);
    }
);

store_test!(record_reset_is_all_or_nothing, |store, db| {
    let account = robot_account(store).await;
    let (server, _) = store
        .upsert_server(account.id, &robot_server("1", "a"))
        .await
        .unwrap();
    let config = store
        .create_config(&config_fields("default"))
        .await
        .unwrap();
    store
        .put_machine_config(server.id, &machine_config_fields(config.id))
        .await
        .unwrap();
    let at = time::OffsetDateTime::now_utc();
    store.mark_server_configured(server.id, at).await.unwrap();
    // The last statement of the reset fails, as when the database goes away mid-way.
    let trigger = match store.backend() {
        talos_manager_core::Backend::Sqlite => {
            "CREATE TRIGGER fail_reset BEFORE UPDATE OF last_configured_at ON servers \
             WHEN NEW.last_configured_at IS NULL BEGIN SELECT RAISE(ABORT, 'x'); END;"
        }
        talos_manager_core::Backend::Postgres => {
            "CREATE FUNCTION fail_reset() RETURNS trigger AS $$ BEGIN \
             IF NEW.last_configured_at IS NULL THEN RAISE EXCEPTION 'x'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER fail_reset BEFORE UPDATE ON servers FOR EACH ROW \
             EXECUTE FUNCTION fail_reset();"
        }
    };
    db.execute(trigger).await;
    assert!(store.record_reset(server.id).await.is_err());
    // Nothing changed: the machine config is still assigned, the server still configured.
    assert!(
        store
            .machine_config_for_server(server.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_server(server.id)
            .await
            .unwrap()
            .last_configured_at
            .is_some()
    );
});

store_test!(old_finished_jobs_are_deleted_with_their_logs, |store| {
    let new = |kind: &str| NewJob {
        kind: kind.into(),
        server_id: None,
        args: serde_json::json!({}),
    };
    let done = store.enqueue_job(&new("sync")).await.unwrap();
    store.claim_job("w").await.unwrap().unwrap();
    store.append_job_log(done.id, "synced").await.unwrap();
    store
        .finish_job(done.id, "w", JobOutcome::Succeeded)
        .await
        .unwrap();
    let queued = store.enqueue_job(&new("sync")).await.unwrap();
    assert!(store.has_active_job("sync").await.unwrap());
    assert!(!store.has_active_job("bootstrap").await.unwrap());

    // Nothing finished before a minute ago.
    let a_minute_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert_eq!(
        store
            .delete_jobs_finished_before(a_minute_ago, 100)
            .await
            .unwrap(),
        0
    );
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
    assert_eq!(
        store.delete_jobs_finished_before(later, 100).await.unwrap(),
        1
    );
    assert!(matches!(
        store.get_job(done.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.job_log(done.id, None).await.unwrap().is_empty());
    // The queued job stays, whatever its age.
    assert_eq!(
        store.get_job(queued.id).await.unwrap().status,
        JobStatus::Queued
    );
    let page = store.list_jobs_page(None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
});

store_test!(fenced_job_writes_need_the_lease, |store| {
    let job = store
        .enqueue_job(&NewJob {
            kind: "upgrade".into(),
            server_id: None,
            args: serde_json::json!({}),
        })
        .await
        .unwrap();
    store.claim_job("worker-a").await.unwrap().unwrap();
    let state = serde_json::json!({"node": 2});
    store
        .set_job_state(job.id, Some("worker-a"), &state)
        .await
        .unwrap();
    store
        .set_job_progress(job.id, Some("worker-a"), 40)
        .await
        .unwrap();
    for error in [
        store
            .set_job_state(job.id, Some("worker-b"), &serde_json::json!({"node": 1}))
            .await
            .unwrap_err(),
        store
            .set_job_progress(job.id, Some("worker-b"), 90)
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(error, StoreError::LeaseLost { .. }), "{error:?}");
    }
    let stored = store.get_job(job.id).await.unwrap();
    assert_eq!(stored.state, Some(state));
    assert_eq!(stored.progress, Some(40));
});
