//! Backups of talos-manager's own database (`store::backup`): made while writes happen,
//! restored into a fresh database of the other backend, which then serves the same `/config`
//! answers; refused into a database that holds rows, with another key, from another schema
//! version, or after any byte of the file changed.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use talos_manager_core::ids::ServerId;
use talos_manager_core::node_config::{
    ConfigAnswer, ConfigRequestParts, ConfigServedHook, ConfigService, TrustedProxies,
};
use talos_manager_core::store::backup::{BackupError, TableCount, restore_backup, write_backup};
use talos_manager_core::store::{EncryptionKey, NewJob, StoreError};
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::testing::fleet::{FleetBuilder, StoredFleet, secrets_bundle};
use talos_manager_core::{Backend, Store};
use time::OffsetDateTime;

struct NoHook;

#[async_trait]
impl ConfigServedHook for NoHook {
    async fn config_served(
        &self,
        _store: &Store,
        _server: ServerId,
    ) -> Result<OffsetDateTime, StoreError> {
        Ok(OffsetDateTime::now_utc() + Duration::from_secs(3600))
    }
}

/// A fleet of three control planes and `workers` workers, with jobs and their logs.
async fn fleet(store: &Store, workers: usize) -> StoredFleet {
    let mut names: Vec<String> = (1..=3).map(|n| format!("control-plane-{n}")).collect();
    names.extend((1..=workers).map(|n| format!("worker-{n}")));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let bundle = secrets_bundle().await;
    let fleet = FleetBuilder::new(&names, "https://127.0.0.1:6443", &bundle)
        .build(store)
        .await
        .unwrap();
    for server in &fleet.servers {
        let job = store
            .enqueue_job(&NewJob {
                kind: "label_and_taint".into(),
                server_id: Some(server.id),
                args: serde_json::json!({}),
            })
            .await
            .unwrap();
        store
            .append_job_log(job.id, "ünïcode ✓ line")
            .await
            .unwrap();
    }
    fleet
}

/// What `/config` answers each server of the fleet (its request from its own address).
async fn config_answers(store: &Store, fleet: &StoredFleet) -> Vec<(String, String)> {
    let service = ConfigService::default();
    let mut answers = Vec::new();
    for server in &fleet.servers {
        let parts = ConfigRequestParts {
            query: "",
            peer: Some(IpAddr::V4(server.address)),
            forwarded_for: &[],
            trusted_proxies: &TrustedProxies::default(),
        };
        let answer = service.answer(store, parts, &NoHook).await.unwrap();
        let ConfigAnswer::Config(config) = answer else {
            panic!("{}: {answer:?}", server.name);
        };
        answers.push((server.name.clone(), config.yaml.expose().clone()));
    }
    answers
}

async fn backup_bytes(store: &Store) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_backup(store, &mut bytes, &mut |_| {}).await.unwrap();
    bytes
}

async fn restore(store: &Store, bytes: &[u8]) -> Result<Vec<TableCount>, BackupError> {
    restore_backup(store, bytes, &mut |_| {})
        .await
        .map(|summary| summary.tables)
}

async fn count(store: &Store) -> usize {
    store.list_servers().await.unwrap().len() + store.list_jobs().await.unwrap().len()
}

/// Backs a fleet up from `source` while another task writes jobs and their logs, restores it
/// into a fresh `target` database, and compares.
async fn round_trip(source: Backend, target: Backend) {
    let source_db = TestDatabase::new(source).await;
    let store = source_db.store();
    let fleet = fleet(store, 9).await;
    let before = config_answers(store, &fleet).await;

    // Right after the backup has read the jobs table, and before it reads their log lines,
    // another task adds a job and a log line of it. Without one snapshot the backup would
    // hold a line of a job it lacks, and its restore would fail.
    let (start_writing, writer_may_start) = tokio::sync::oneshot::channel::<()>();
    let (wrote, written) = std::sync::mpsc::channel::<()>();
    let writer = tokio::spawn({
        let store = store.clone();
        let server = fleet.servers[0].id;
        async move {
            writer_may_start.await.unwrap();
            let job = store
                .enqueue_job(&NewJob {
                    kind: "sync".into(),
                    server_id: Some(server),
                    args: serde_json::json!({"n": 1}),
                })
                .await
                .unwrap();
            store
                .append_job_log(job.id, "written during the backup")
                .await
                .unwrap();
            wrote.send(()).unwrap();
        }
    });
    let mut start_writing = Some(start_writing);
    let mut progress = Vec::new();
    let mut bytes = Vec::new();
    let seen = &mut progress;
    let summary = write_backup(store, &mut bytes, &mut move |table| {
        seen.push(table.clone());
        if table.table == "jobs" {
            start_writing.take().unwrap().send(()).unwrap();
            written.recv_timeout(Duration::from_secs(30)).unwrap();
        }
    })
    .await
    .unwrap();
    writer.await.unwrap();
    assert_eq!(
        store.list_jobs().await.unwrap().len(),
        13,
        "the writer wrote"
    );
    assert_eq!(
        summary
            .tables
            .iter()
            .find(|t| t.table == "jobs")
            .unwrap()
            .rows,
        12,
        "the backup holds the jobs of its snapshot"
    );
    assert_eq!(
        summary
            .tables
            .iter()
            .find(|t| t.table == "job_log_lines")
            .unwrap()
            .rows,
        12,
        "and their log lines only"
    );
    assert_eq!(progress, summary.tables);
    let table = |name: &str| {
        summary
            .tables
            .iter()
            .find(|table| table.table == name)
            .unwrap_or_else(|| panic!("no table {name}: {:?}", summary.tables))
            .rows
    };
    assert_eq!(table("servers"), 12);
    assert_eq!(table("clusters"), 1);
    assert_eq!(table("machine_configs"), 12);
    // Nothing in the file is readable without the key: no secret, no server name.
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("TMBACKUP"), "{text:.40}");
    assert!(!text.contains("worker-1"));
    assert!(!text.contains("control-plane"));

    // Restored into a fresh database of the other backend, with the same key.
    let target_db = TestDatabase::with_key(target, source_db.key().clone()).await;
    let restored = target_db.store();
    let tables = restore(restored, &bytes).await.unwrap();
    assert_eq!(tables, summary.tables);
    assert_eq!(config_answers(restored, &fleet).await, before);
    // The secrets came back decryptable, and the ids keep counting after the restored ones.
    let cluster = restored.get_cluster(fleet.cluster).await.unwrap();
    assert_eq!(cluster.name, "prod");
    let jobs = restored.list_jobs().await.unwrap();
    assert_eq!(jobs.len() as u64, table("jobs"));
    let next = restored
        .enqueue_job(&NewJob {
            kind: "sync".into(),
            server_id: None,
            args: serde_json::json!({}),
        })
        .await
        .unwrap();
    assert!(jobs.iter().all(|job| job.id.0 < next.id.0));

    // A second restore into the now non-empty database is refused, naming what is there, and
    // changes nothing.
    let rows = count(restored).await;
    let error = restore(restored, &bytes).await.unwrap_err();
    assert!(matches!(error, BackupError::NotEmpty { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("refusing to restore into a database that is not empty (")
            && message.contains("servers has 12 rows"),
        "{message}"
    );
    assert_eq!(count(restored).await, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_restores_into_postgres_and_serves_the_same_configs() {
    round_trip(Backend::Sqlite, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_restores_into_sqlite_and_serves_the_same_configs() {
    round_trip(Backend::Postgres, Backend::Sqlite).await;
}

store_test!(a_backup_restores_into_its_own_backend, |store, db| {
    let fleet = fleet(store, 2).await;
    let bytes = backup_bytes(store).await;
    let backend = store.backend();
    let target = TestDatabase::with_key(backend, db.key().clone()).await;
    restore(target.store(), &bytes).await.unwrap();
    assert_eq!(
        config_answers(target.store(), &fleet).await,
        config_answers(store, &fleet).await
    );
    // A backup of the restored database is the same backup, but for its time and nonces.
    let again = backup_bytes(target.store()).await;
    let empty = TestDatabase::with_key(backend, db.key().clone()).await;
    restore(empty.store(), &again).await.unwrap();
    assert_eq!(count(empty.store()).await, count(store).await);
});

store_test!(a_changed_byte_anywhere_is_refused, |store, db| {
    fleet(store, 1).await;
    let bytes = backup_bytes(store).await;
    let target = TestDatabase::with_key(store.backend(), db.key().clone()).await;
    // Every byte of the header and salt, then bytes across the chunks, the last one included.
    let header_end =
        8 + 5 + 32 + usize::try_from(u32::from_be_bytes(bytes[9..13].try_into().unwrap())).unwrap();
    let mut positions: Vec<usize> = (0..header_end).collect();
    positions.extend((header_end..bytes.len()).step_by(997));
    positions.push(bytes.len() - 1);
    for position in positions {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x01;
        let error = restore(target.store(), &damaged).await.unwrap_err();
        assert!(
            matches!(
                error,
                BackupError::Authentication
                    | BackupError::NotABackup
                    | BackupError::UnsupportedFormat { .. }
            ),
            "byte {position}: {error:?}"
        );
    }
    // A truncated file, and one with bytes appended, too.
    for damaged in [&bytes[..bytes.len() - 1], &bytes[..bytes.len() / 2]] {
        let error = restore(target.store(), damaged).await.unwrap_err();
        assert!(matches!(error, BackupError::Authentication), "{error:?}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let error = restore(target.store(), &longer).await.unwrap_err();
    assert!(matches!(error, BackupError::Authentication), "{error:?}");
    assert_eq!(count(target.store()).await, 0, "nothing was restored");
    // The file itself restores.
    restore(target.store(), &bytes).await.unwrap();
});

store_test!(another_key_is_refused_with_a_clear_error, |store| {
    fleet(store, 1).await;
    let bytes = backup_bytes(store).await;
    let target = TestDatabase::with_key(store.backend(), EncryptionKey::generate()).await;
    let error = restore(target.store(), &bytes).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the backup does not decrypt: it was made with another encryption key, or the file is \
         damaged, truncated or was edited"
    );
    assert_eq!(count(target.store()).await, 0);
    let error = restore(target.store(), b"not a backup at all")
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::NotABackup), "{error:?}");
});

store_test!(a_backup_of_a_newer_schema_is_refused, |store, db| {
    fleet(store, 1).await;
    let bytes = backup_bytes(store).await;
    // The target lacks the newest migration: the backup is newer than it.
    let target = TestDatabase::with_key(store.backend(), db.key().clone()).await;
    target
        .execute("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .await;
    let error = restore(target.store(), &bytes).await.unwrap_err();
    let BackupError::SchemaMismatch { backup, database } = error else {
        panic!("{error:?}");
    };
    assert_eq!(backup, database + 1);
    assert!(
        error_text(backup, database).contains("the backup is newer than this build"),
        "{}",
        error_text(backup, database)
    );
    assert_eq!(count(target.store()).await, 0);
});

fn error_text(backup: i64, database: i64) -> String {
    BackupError::SchemaMismatch { backup, database }.to_string()
}

/// A table of types the schema does not use yet (added by a later migration, say), made on
/// both databases.
async fn extra_table(db: &TestDatabase) {
    let sql = match db.store().backend() {
        Backend::Sqlite => {
            "CREATE TABLE backup_extra (id INTEGER PRIMARY KEY, ratio REAL, doc TEXT, day DATE)"
        }
        Backend::Postgres => {
            "CREATE TABLE backup_extra (id BIGINT PRIMARY KEY, ratio DOUBLE PRECISION, doc JSONB, day DATE)"
        }
    };
    db.execute(sql).await;
}

async fn extra_rows(
    db: &TestDatabase,
) -> Vec<(i64, Option<String>, Option<String>, Option<String>)> {
    use sqlx::Connection as _;
    let sql = "SELECT id, CAST(ratio AS TEXT), CAST(doc AS TEXT), CAST(day AS TEXT) \
               FROM backup_extra ORDER BY id";
    match db.store().backend() {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
            sqlx::query_as(sql)
                .fetch_all(&mut connection)
                .await
                .unwrap()
        }
    }
}

#[tokio::test]
async fn columns_of_other_types_cross_backends_as_text() {
    let sqlite = TestDatabase::new(Backend::Sqlite).await;
    extra_table(&sqlite).await;
    sqlite
        .execute(
            "INSERT INTO backup_extra VALUES (1, 1.5, '{\"a\": [1, 2]}', '2026-12-07'), \
             (2, NULL, NULL, NULL)",
        )
        .await;
    let expected = vec![
        (
            1,
            Some("1.5".to_owned()),
            Some("{\"a\": [1, 2]}".to_owned()),
            Some("2026-12-07".to_owned()),
        ),
        (2, None, None, None),
    ];
    assert_eq!(extra_rows(&sqlite).await, expected);
    let postgres = TestDatabase::with_key(Backend::Postgres, sqlite.key().clone()).await;
    extra_table(&postgres).await;
    restore(postgres.store(), &backup_bytes(sqlite.store()).await)
        .await
        .unwrap();
    assert_eq!(extra_rows(&postgres).await, expected);
    let back = TestDatabase::with_key(Backend::Sqlite, sqlite.key().clone()).await;
    extra_table(&back).await;
    restore(back.store(), &backup_bytes(postgres.store()).await)
        .await
        .unwrap();
    assert_eq!(extra_rows(&back).await, expected);
}
