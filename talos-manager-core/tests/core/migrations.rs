//! Both backends' migrations produce the same tables and columns, and re-running them is a no-op.

use talos_manager_core::Backend;
use talos_manager_core::testing::TestDatabase;

#[tokio::test]
async fn backends_agree_on_tables_and_columns() {
    let sqlite = TestDatabase::new(Backend::Sqlite).await;
    let postgres = TestDatabase::new(Backend::Postgres).await;
    let sqlite_columns = sqlite.store().schema_columns().await.unwrap();
    let postgres_columns = postgres.store().schema_columns().await.unwrap();
    assert!(
        sqlite_columns.iter().any(|c| c == "servers.provider_id"),
        "{sqlite_columns:?}"
    );
    let only_sqlite: Vec<_> = sqlite_columns
        .iter()
        .filter(|c| !postgres_columns.contains(c))
        .collect();
    let only_postgres: Vec<_> = postgres_columns
        .iter()
        .filter(|c| !sqlite_columns.contains(c))
        .collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "migrations disagree: only in SQLite {only_sqlite:?}, only in PostgreSQL {only_postgres:?}"
    );
}

#[tokio::test]
async fn migrating_again_changes_nothing() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let database = TestDatabase::new(backend).await;
        let before = database.store().schema_columns().await.unwrap();
        database.store().migrate().await.unwrap();
        assert_eq!(database.store().schema_columns().await.unwrap(), before);
    }
}
