//! Test support (feature `testing`): a fresh database per test, on either backend,
//! [`wait_for`], the bounded poll tests wait with, and [`config_documents`], the documents of
//! a served machine config.
//!
//! PostgreSQL is expected on `127.0.0.1:5432` with trust authentication (override with
//! `TALOS_MANAGER_TEST_POSTGRES_URL`). A test that cannot reach it fails with a message saying
//! how to start it; it never skips. A database whose test failed is kept for inspection.

pub mod config_documents;
pub mod fake_talos;
pub mod fleet;
pub mod fuzz;
mod wait;

pub use wait::{wait_for, wait_for_blocking};

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

use crate::store::{Backend, EncryptionKey, Store};

/// The server that test databases are created on, unless overridden.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test, dropped when the test passes.
pub struct TestDatabase {
    store: Store,
    url: String,
    key: EncryptionKey,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// Creates an empty, migrated database on `backend`.
    ///
    /// # Panics
    /// When the database cannot be created (for PostgreSQL: the server is not running).
    pub async fn new(backend: Backend) -> TestDatabase {
        TestDatabase::with_key(backend, EncryptionKey::generate()).await
    }

    /// As [`TestDatabase::new`], with secrets encrypted with `key` (a database to restore
    /// another's backup into).
    ///
    /// # Panics
    /// When the database cannot be created (for PostgreSQL: the server is not running).
    pub async fn with_key(backend: Backend, key: EncryptionKey) -> TestDatabase {
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("talos-manager-test-")
                    .tempdir()
                    .expect("create a temporary directory for the SQLite test database");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (url, Cleanup::Sqlite(dir))
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = unique_database_name();
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
                    panic!(
                        "PostgreSQL is not reachable at {admin_url} ({error}).\n\
                         The store tests need it. Start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                         or run ./scripts/test, which installs and starts it; or point \
                         TALOS_MANAGER_TEST_POSTGRES_URL at another server."
                    )
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|error| panic!("failed to create database {name}: {error}"));
                let _ = admin.close().await;
                let url = replace_database(&admin_url, &name);
                (url, Cleanup::Postgres { admin_url, name })
            }
        };
        let store = Store::connect(&url, &key)
            .await
            .unwrap_or_else(|error| panic!("failed to open test database {url}: {error:#?}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|error| panic!("failed to migrate test database {url}: {error:#?}"));
        TestDatabase {
            store,
            url,
            key,
            cleanup,
        }
    }

    /// The store on this database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The database URL (for starting a service on the same database).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The encryption key the store uses.
    pub fn key(&self) -> &EncryptionKey {
        &self.key
    }

    /// Runs `sql` (one or more statements) on the database, outside the store: tests inject
    /// faults with it (a trigger that fails some writes, as an unreachable database would).
    ///
    /// # Panics
    /// When the statements fail.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        let result = match &self.cleanup {
            Cleanup::Sqlite(_) => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect to the SQLite test database");
                sql.execute(&mut connection).await.map(|_| ())
            }
            Cleanup::Postgres { .. } => {
                let mut connection = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the PostgreSQL test database");
                sql.execute(&mut connection).await.map(|_| ())
            }
        };
        result.unwrap_or_else(|error| panic!("test SQL failed on {}: {error}", self.url));
    }

    /// The SQLite file's directory, for tests that read the raw file.
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => Some(dir.path()),
            Cleanup::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        match &mut self.cleanup {
            Cleanup::Sqlite(dir) => {
                if failed {
                    dir.disable_cleanup(true);
                    eprintln!("kept the failed test's database: {}", self.url);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if failed {
                    eprintln!("kept the failed test's database: {}", self.url);
                    return;
                }
                // Drop runs inside the test's runtime: use a thread with a runtime of its own.
                let admin_url = admin_url.clone();
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut admin)
                            .await
                            .ok()
                    })
                })
                .join();
            }
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("TALOS_MANAGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
}

fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tm_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// `postgres://user@host:port/db?x` with `db` replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut new = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        new.push('?');
        new.push_str(query);
    }
    new
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_of_a_url() {
        let check = |url, expect| assert_eq!(super::replace_database(url, "t"), expect);
        check("postgres://u@h:5432/postgres", "postgres://u@h:5432/t");
        check("postgres://u@h:5432", "postgres://u@h:5432/t");
        check(
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/t?sslmode=disable",
        );
    }
}
